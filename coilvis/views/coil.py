"""The coil: a prompt's positions coiled like film on a spool, coloured by what the model believed.

``coilvis.coil(record)`` lays the positions of a :class:`~coilvis.record.Record` along
a spiral (or a circle) with segments of equal length (:mod:`coilvis.geometry`), colours
each segment by a statistic of the model's next-token prediction there, bands the
outside by words and sentences, labels the segments that have room, and draws
attention inside the coil as arcs. The result is a :class:`CoilView`: save it with
``coilvis.save(view, "coil.html")`` (one offline HTML file), ``"coil.png"``, or show it
in Jupyter.

Reading it
----------
Segment ``i`` is input token ``i``. Its colour, tooltip and arcs describe the model's
prediction *after* reading tokens ``0..i`` (position ``i`` of the Record): the
probability, surprisal and rank of the token that actually came next (token ``i + 1``;
unknown, grey, at the last position), the entropy of the whole next-token distribution,
and the top-k next tokens. Arcs go from each query position to the earlier positions it
attends to most.

Named models (for page scripts, the unwind animation and tests)
---------------------------------------------------------------
``coil_figure``; ``coil_segments`` (patches) over ``coil_segment_source``, one row per
position with columns:

* ``pos`` (int32), ``token`` (raw text), ``token_id`` (int32, -1 when unknown),
  ``label`` (exact display text, :func:`coilvis.tokens.display`), ``word``,
  ``sentence`` (int32 group indices);
* ``top_prob_pct`` (float32; probability in % of the model's top next token),
  ``prob_pct``, ``entropy_bits``, ``surprisal_bits``, ``rank`` (float32; probability in %
  of the actual next token, entropy and surprisal in bits, its 1-based rank; NaN where
  the next token is unknown; the next token's label is ``label[pos + 1]``);
* ``topk_vocab`` (n, k) int32 and ``topk_pct`` (n, k) float32: the top-k next tokens as
  rows of ``coil_vocab_source`` (columns ``token_id``, ``label``) and their probability
  in %; ``next_vocab`` (int32): the actual next token's row there, -1 when unknown. The
  ``CustomJSHover`` named ``coil_text_format`` writes the tooltip's text from them, each
  token as its label and its id: ``fmt.format(pos, "token", {})``,
  ``fmt.format(pos, "next", {})`` or ``fmt.format(pos, "topk", {})`` in page JavaScript
  gives the same lines (escape them, e.g. show them in a ``PreText``);
* ``xs``, ``ys``: (n, m) float32 segment polygons (a ``rows_transform`` hands the glyph
  its rows);
* ``x``, ``y``, ``angle_rad``: segment centres and direction on the coil;
  ``x_line``, ``y_line``, ``angle_line_rad``: the same on the unwound line
  (:func:`coilvis.geometry.unwound_layout`), for the unwind animation;
* ``anchor_x``, ``anchor_y``: where arcs attach (the inner edge's midpoint).

``coil_bands`` over ``coil_band_source`` (word/sentence band, NaN-separated polygons,
four rows: sentence parity x word parity), ``coil_sentence_marks``, ``coil_labels``
over ``coil_label_source`` (only the labels that fit: ``pos, x, y, angle_rad, text,
text_color``), ``coil_markers`` (start/end), ``coil_color_bar``, ``coil_color_mapper``,
``coil_hover``. With attention: ``coil_arcs`` and ``coil_arc_highlight`` over
``coil_link_source`` (``query, key, weight, choice``: the arcs' end and control points
are computed in the page from ``anchor_x/anchor_y`` of the segment source, as
:func:`coilvis.geometry.arc_curves` places them, by the transforms ``coil_anchor_x``,
``coil_anchor_y``, ``coil_control_x``, ``coil_control_y``; after moving the anchors,
emit ``coil_link_source.change`` to redraw the arcs), ``coil_choice_filter`` (a
``GroupFilter`` on ``choice``), ``coil_highlight_filter`` (an ``IndexFilter``), and
``coil_attention_select`` when more than one layer/head is embedded.
"""

from __future__ import annotations

import math
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from bokeh.core.properties import value
from bokeh.layouts import column
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    CustomJSTransform,
    GroupFilter,
    HoverTool,
    IndexFilter,
    IntersectionFilter,
    LinearInterpolator,
    PanTool,
    Range1d,
    ResetTool,
    SaveTool,
    Select,
    TapTool,
    Title,
    WheelZoomTool,
)
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis import geometry
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.record import HEAD_MAX, HEAD_MEAN, Record
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.output import View

__all__ = ["coil", "CoilView", "AttentionChoice", "attention_option", "token_groups", "fit_labels", "label_width_px"]

_ARC_COLOR = "#2b2b2b"
_HIGHLIGHT_COLOR = "#e6550d"
_BAND_COLORS = ("#d4d4d4", "#8f8f8f", "#c6dbef", "#4a8bc4")  # (sentence even: word even/odd, sentence odd: ...)
_MARK_COLOR = "#1a1a1a"
_MIN_FONT_PX = 7
_LABEL_MAX_CHARS = 16
_TIP_LABEL_MAX_CHARS = 40
_TOPK_LABEL_MAX_CHARS = 32
_MARGIN_PX = 36
_SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")
START_MARK = "▶ start"
END_MARK = "end ■"

# Hovering (cb_data.index) or tapping (segments.selected) a segment shows its own arcs.
_HIGHLIGHT_JS = """
const hit = (cb_data != null && cb_data.index != null) ? cb_data.index.indices : null
let pos = -1
if (hit != null && hit.length > 0) pos = hit[0]
else if (segments.selected.indices.length > 0) pos = segments.selected.indices[0]
if (highlight.__coilvis_pos === pos) return
highlight.__coilvis_pos = pos
const q = links.data.query, k = links.data.key
const out = []
if (pos >= 0) for (let j = 0; j < q.length; j++) if (q[j] === pos || k[j] === pos) out.push(j)
highlight.indices = out
"""

_SELECT_JS = "choice.group = Number(cb_obj.value)"

# Depth of the arcs inside the coil (see coilvis.geometry.arc_curves).
_ARC_DEPTH_SCALE = 2.0
_ARC_DEPTH_MAX = 0.9

# Control point of each link's arc, as coilvis.geometry.arc_curves places it on a coil:
# the anchors' midpoint pulled toward the centre by f = min(depth_max, depth_scale *
# |key - query| / n). Computed in the page from the link's ends, so a link costs its
# query, key, weight and choice only. xs: the query column.
_CONTROL_JS = """
const key = links.data.key, a = anchors.data[column], n = a.length
const out = new Float64Array(xs.length)
for (let i = 0; i < xs.length; i++) {
  const q = xs[i], k = key[i]
  const f = Math.min(depth_max, depth_scale * Math.abs(k - q) / n)
  out[i] = (1 - f) * 0.5 * (a[q] + a[k])
}
return out
"""

# The tooltip's text for a position (value): format "token" gives the input token,
# "next" the actual next token with its probability, rank and surprisal, "topk" the
# top-k next tokens, one a line. Every token shows its label and its id (labels are
# exact, ids tell apart what one text can stand for: see coilvis.tokens.display).
# Labels come from data sources and the tooltip escapes the result.
_TOOLTIP_JS = """
const d = segments.data, labels = vocab.data.label, vocab_ids = vocab.data.token_id, i = value
const pct = (p) => !Number.isFinite(p) ? "?"
  : p >= 9.995 ? p.toFixed(1) + "%" : p >= 0.0995 ? p.toFixed(2) + "%" : p.toPrecision(2) + "%"
const named = (label, id) => label + "  (" + (id >= 0 ? "id " + id : "no id") + ")"
if (format === "token") return named(d.label[i], d.token_id[i])
if (format === "next") {
  if (i + 1 >= d.pos.length) return "unknown (end of the prompt)"
  const next = named(d.label[i + 1], d.token_id[i + 1]), p = d.prob_pct[i]
  if (!Number.isFinite(p)) return next + "   (probability unknown)"
  const rank = d.rank[i].toLocaleString("en-US"), bits = d.surprisal_bits[i].toFixed(2)
  return next + "   " + pct(p) + " · rank " + rank + " · " + bits + " bits"
}
const ids = d.topk_vocab, probs = d.topk_pct, k = ids.shape[1], target = d.next_vocab[i]
let width = 0
for (let j = 0; j < k; j++) width = Math.max(width, labels[ids[i * k + j]].length)
const lines = []
for (let j = 0; j < k; j++) {
  const v = ids[i * k + j]
  lines.push(pct(probs[i * k + j]).padStart(7) + "  " + labels[v].padEnd(width) + "  id " + vocab_ids[v] +
    (v === target ? "   ← next" : ""))
}
return lines.join("\\n")
"""


def attention_option(value: Any, *, layer: Any = None, name: str = "attention", layer_name: str = "layer") -> Any:
    """The coil's ``attention=`` value for a text spec, as a command line or a prompts
    file gives it.

    Args:
        value: None, ``"mean"`` or ``"max"`` (with ``layer``: that layer only),
            ``"LAYER:HEAD"``, or a ``[LAYER, HEAD]`` pair.
        layer: a layer index for ``"mean"``/``"max"``, or None for every layer.
        name: the argument name for error messages.
        layer_name: the name of ``layer`` for error messages.

    Returns:
        What :func:`coil` takes as ``attention``.

    Examples:
        >>> attention_option("3:1"), attention_option("mean", layer=-1), attention_option([2, 0])
        ((3, 1), (-1, 'mean'), (2, 0))
    """
    if value is None:
        return None
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
        raise CoilvisTypeError(f"{layer_name}: expected an int, got {type(layer).__name__}")
    if value in ("mean", "max"):
        return value if layer is None else (layer, value)
    if isinstance(value, str) and ":" in value:
        a, b = value.split(":", 1)
        try:
            return (int(a), int(b))
        except ValueError:
            pass
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    ):
        return (int(value[0]), int(value[1]))
    raise CoilvisValueError(f"{name}: expected 'mean', 'max', 'LAYER:HEAD' or [LAYER, HEAD], got {value!r}")


@dataclass(frozen=True)
class AttentionChoice:
    """One embedded attention pattern: a layer and a head (or the mean/max over heads).

    Attributes:
        layer: layer index in ``[0, n_layers)``.
        head: head index, or :data:`~coilvis.record.HEAD_MEAN` (-1) /
            :data:`~coilvis.record.HEAD_MAX` (-2).
    """

    layer: int
    head: int

    @property
    def label(self) -> str:
        """How the in-page control names it, e.g. ``"layer 3 · head 5"``."""
        if self.head == HEAD_MEAN:
            return f"layer {self.layer} · mean of heads"
        if self.head == HEAD_MAX:
            return f"layer {self.layer} · max over heads"
        return f"layer {self.layer} · head {self.head}"


class CoilView(View):
    """The coil of one Record: a :class:`~coilvis.views.output.View` with handles on its parts.

    Attributes:
        figure: the Bokeh figure (named ``coil_figure``).
        segments: the per-position ``ColumnDataSource`` (see the module notes).
        links: the attention links' ``ColumnDataSource``, or None without attention.
        labels: the fitted labels' ``ColumnDataSource``, or None with ``labels=False``.
        coiled: the coil's :class:`~coilvis.geometry.Layout`.
        unwound: the same segments laid straight (:func:`~coilvis.geometry.unwound_layout`).
        choices: the embedded attention choices, in ``choice`` order.
        scale: the colour scale.
        record: the Record drawn.
        px_per_unit: screen pixels per data unit at the initial zoom.
        font_px: label font size in pixels (0 when no label fits).
        n_links_dropped: links that passed the top-k and threshold but exceeded ``max_links``.
        schedule: the unwind's :class:`~coilvis.views.schedule.Schedule` (None without
            ``animate``).
        ready: CustomJS callbacks the page runs when ready (autoplay); a page that moves
            this view's layout into its own document registers them there.
    """

    def __init__(
        self,
        layout: Any,
        *,
        title: str,
        figure: Any,
        segments: ColumnDataSource,
        links: ColumnDataSource | None,
        labels: ColumnDataSource | None,
        coiled: geometry.Layout,
        unwound: geometry.Layout,
        choices: tuple[AttentionChoice, ...],
        scale: _style.ColorScale,
        record: Record,
        px_per_unit: float,
        font_px: int,
        n_links_dropped: int,
        schedule: Any = None,
        ready: Sequence[CustomJS] = (),
    ) -> None:
        super().__init__(layout, title=title, kind="coil")
        self.schedule = schedule
        self.ready = list(ready)
        for callback in self.ready:
            self.doc.js_on_event("document_ready", callback)
        self.figure = figure
        self.segments = segments
        self.links = links
        self.labels = labels
        self.coiled = coiled
        self.unwound = unwound
        self.choices = choices
        self.scale = scale
        self.record = record
        self.px_per_unit = px_per_unit
        self.font_px = font_px
        self.n_links_dropped = n_links_dropped


# ------------------------------------------------------------------------------ checks


def _check_choice_option(name: str, value: Any, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise CoilvisValueError(f"{name}: expected one of {list(options)}, got {value!r}")
    return value


def _parse_head(value: Any, n_heads: int) -> int:
    if value == "mean":
        return HEAD_MEAN
    if value == "max":
        return HEAD_MAX
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CoilvisTypeError(f"attention: a head is an int, 'mean' or 'max', got {value!r}")
    head = int(value)
    if not (-2 <= head < n_heads):
        raise CoilvisValueError(f"attention: head {head} is out of range [0, {n_heads}) (or 'mean', 'max')")
    return head


def _parse_attention(spec: Any, record: Record) -> tuple[AttentionChoice, ...]:
    if spec is None:
        return ()
    links = record.attention
    if links is None:
        raise CoilvisValueError(
            "attention: the record has no attention links; make it with "
            "coilvis.run(prompt, attention=True) or coilvis.from_logits(..., attention=pattern)"
        )
    items = list(spec) if isinstance(spec, list) else [spec]
    if not items:
        raise CoilvisValueError("attention: expected at least one choice, got an empty list")
    present = set(zip(links.layer.tolist(), links.head.tolist(), strict=True))
    choices: list[AttentionChoice] = []
    for item in items:
        if isinstance(item, str):
            if item not in ("mean", "max"):
                raise CoilvisValueError(f"attention: expected 'mean', 'max' or (layer, head), got {item!r}")
            head = HEAD_MEAN if item == "mean" else HEAD_MAX
            layers = sorted({layer for layer, h in present if h == head})
            if not layers:
                raise CoilvisValueError(f"attention: the record holds no {item!r}-over-heads links")
            choices.extend(AttentionChoice(layer, head) for layer in layers)
        elif isinstance(item, tuple) and len(item) == 2:
            layer_arg, head_arg = item
            if isinstance(layer_arg, bool) or not isinstance(layer_arg, (int, np.integer)):
                raise CoilvisTypeError(f"attention: a layer is an int, got {layer_arg!r}")
            n_layers = links.n_layers
            if not (-n_layers <= int(layer_arg) < n_layers):
                raise CoilvisValueError(f"attention: layer {int(layer_arg)} is out of range for {n_layers} layers")
            layer = int(layer_arg) % n_layers
            head = _parse_head(head_arg, links.n_heads)
            if (layer, head) not in present:
                raise CoilvisValueError(
                    f"attention: the record holds no links for {AttentionChoice(layer, head).label} "
                    f"(were they recorded? see coilvis.run(..., attention_layers=...))"
                )
            choices.append(AttentionChoice(layer, head))
        else:
            raise CoilvisTypeError(
                f"attention: expected None, 'mean', 'max', a (layer, head) tuple or a list of these, got {item!r}"
            )
    return tuple(dict.fromkeys(choices))


# ------------------------------------------------------------------------------ pieces


def token_groups(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Words and sentences of a token sequence, for the coil's outer band.

    A word starts at the first token, at a token beginning with whitespace (byte-level
    ``Ġ`` and SentencePiece ``▁`` are spaces in a Record's raw text) and after a token
    ending in a newline. A sentence ends at a token holding a newline, or ending in
    ``.``, ``!``, ``?`` (their CJK forms, ``…``) when the next token starts with
    whitespace (so ``3.14`` ends nothing); the next token that is not blank starts the
    next sentence, and each sentence start is also a word start.

    Args:
        tokens: (n,) raw token texts.

    Returns:
        ``(word, sentence)``: (n,) int32 group index of each position, each starting at
        0 and non-decreasing.

    Examples:
        >>> w, s = token_groups(["The", " E", "iffel", " Tower", ".", " It", "\\n", "Yes"])
        >>> w.tolist(), s.tolist()
        ([0, 1, 1, 2, 2, 3, 4, 5], [0, 0, 0, 0, 0, 1, 1, 2])
    """
    n = len(tokens)
    word_start = np.zeros(n, dtype=bool)
    sentence_start = np.zeros(n, dtype=bool)
    pending = False  # a sentence has ended: the next token that is not blank starts one
    for i, token in enumerate(tokens):
        starts_space = token[:1].isspace()
        if i == 0:
            word_start[i] = sentence_start[i] = True
        else:
            prev = tokens[i - 1]
            if starts_space and prev.rstrip(" ").endswith(_SENTENCE_END):
                pending = True
            if pending and token.strip():
                sentence_start[i] = True
                pending = False
            word_start[i] = starts_space or prev.endswith("\n") or sentence_start[i]
        if "\n" in token:
            pending = True
    word = (np.cumsum(word_start) - 1).astype(np.int32)
    sentence = (np.cumsum(sentence_start) - 1).astype(np.int32)
    return word, sentence


def label_width_px(text: str, font_px: float) -> float:
    """A generous estimate of the width of a label drawn at ``font_px`` (sans-serif).

    Meant never to fall short of the real width in common sans-serif fonts (Helvetica,
    Arial, Liberation Sans, DejaVu Sans; the browser tests check it against the canvas's
    own measurement): narrow letters and punctuation count 0.42 em, ``m w M W @ %``
    1.05 em, other capitals 0.82 em, other ASCII 0.66 em, wide East Asian characters and
    emoji 1.3 em, any other character (arrows, ``␣``, accented letters) 1.05 em.

    Examples:
        >>> round(label_width_px("il", 10.0), 6), round(label_width_px("ab", 10.0), 6)
        (8.4, 13.2)
    """
    em = 0.0
    for ch in text:
        if ch in "ijlI.,:;'!| ":
            em += 0.42
        elif ch in "mwMW@%":
            em += 1.05
        elif ch.isascii() and ch.isupper():
            em += 0.82
        elif ch.isascii():
            em += 0.66
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            em += 1.3
        else:
            em += 1.05
    return em * font_px


def fit_labels(
    along_px: np.ndarray,
    widths_px: np.ndarray,
    *,
    gap_px: float,
    closed_px: float | None = None,
) -> np.ndarray:
    """Which labels fit along a track without touching each other (greedy, in order).

    Label ``i`` is centred at ``along_px[i]`` along the track and is ``widths_px[i]``
    long; it is kept when it starts at least ``gap_px`` after the end of the last kept
    label. On a closed track (a circle of length ``closed_px``) the last kept label must
    also end ``gap_px`` before the first kept one starts, one lap later.

    Args:
        along_px: (n,) label centres along the track, increasing, in pixels.
        widths_px: (n,) label lengths in pixels (``inf`` for labels never to draw).
        gap_px: least space between two labels.
        closed_px: length of a closed track, or None.

    Returns:
        (n,) bool, True for the labels kept.

    Examples:
        >>> fit_labels(np.array([5.0, 15.0, 25.0, 35.0]), np.array([8.0, 8.0, 30.0, 8.0]), gap_px=2.0).tolist()
        [True, True, False, True]
    """
    keep = np.zeros(along_px.shape[0], dtype=bool)
    last_end = -math.inf
    first_start = math.nan
    last_kept = -1
    for i, (centre, width) in enumerate(zip(along_px.tolist(), widths_px.tolist(), strict=True)):
        if not math.isfinite(width):
            continue
        start = centre - 0.5 * width
        if start >= last_end + gap_px:
            keep[i] = True
            last_end = centre + 0.5 * width
            last_kept = i
            if math.isnan(first_start):
                first_start = start
    wraps_onto_first = closed_px is not None and first_start + closed_px < last_end + gap_px
    if wraps_onto_first and keep.sum() > 1:
        keep[last_kept] = False
    return keep


#: Most polygon edge steps of one coil (``n_arc`` x ``seq_len``): each is 4 vertices in the page.
MAX_ARC_STEPS = 1_000_000


def _layouts(n: int, kind: str, *, n_arc: int | None, clockwise: bool) -> tuple[geometry.Layout, geometry.Layout]:
    """The coil and a coarser copy for the outer band (polygons dominate a page's size)."""
    circle = kind == "circle" or (kind == "auto" and n <= geometry.CIRCLE_MAX_N)
    make = geometry.circle_layout if circle else geometry.spiral_layout
    if n_arc is None:
        lay = make(n, clockwise=clockwise)
        cap = max(2, 8192 // n)  # vertices per page stay about 8k x 2, whatever n
        if lay.n_arc > cap:
            lay = make(n, clockwise=clockwise, n_arc=cap)
    else:
        lay = make(n, clockwise=clockwise, n_arc=n_arc)
    band_n_arc = max(1, lay.n_arc // 2)
    band = lay if band_n_arc == lay.n_arc else make(n, clockwise=clockwise, n_arc=band_n_arc)
    return lay, band


def _band_rows(band_layout: geometry.Layout, word: np.ndarray, sentence: np.ndarray) -> dict[str, Any]:
    n = word.shape[0]
    starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
    ends = np.r_[starts[1:], n]
    xs, ys = geometry.group_band(band_layout, starts, ends)
    bucket = 2 * (sentence[starts] % 2) + (word[starts] % 2)
    sep = np.array([np.nan], dtype=np.float32)
    rows_x: list[np.ndarray] = []
    rows_y: list[np.ndarray] = []
    for b in range(4):
        members = np.flatnonzero(bucket == b).tolist()
        if members:
            rows_x.append(np.concatenate([part for g in members for part in (xs[g].astype(np.float32), sep)])[:-1])
            rows_y.append(np.concatenate([part for g in members for part in (ys[g].astype(np.float32), sep)])[:-1])
        else:
            rows_x.append(np.zeros(0, dtype=np.float32))
            rows_y.append(np.zeros(0, dtype=np.float32))
    return {"xs": rows_x, "ys": rows_y, "color": list(_BAND_COLORS)}


def _sentence_marks(lay: geometry.Layout, sentence: np.ndarray) -> dict[str, np.ndarray]:
    starts = np.flatnonzero(np.r_[False, sentence[1:] != sentence[:-1]])
    gap = lay.pitch - lay.band_width
    ox, oy = lay.poly_xs[starts, 0], lay.poly_ys[starts, 0]
    ix, iy = lay.poly_xs[starts, -1], lay.poly_ys[starts, -1]
    dx, dy = ox - ix, oy - iy
    norm = np.hypot(dx, dy)
    norm = np.where(norm > 0, norm, 1.0)
    dx, dy = dx / norm, dy / norm
    reach = 0.7 * gap
    return {
        "x0": (ix - 0.1 * gap * dx).astype(np.float32),
        "y0": (iy - 0.1 * gap * dy).astype(np.float32),
        "x1": (ox + reach * dx).astype(np.float32),
        "y1": (oy + reach * dy).astype(np.float32),
    }


def _topk_columns(record: Record, *, tooltip_k: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-k and next-token columns as indices into one table of vocabulary labels.

    A page holds each token's label once (``coil_vocab_source``); per position it holds
    the (n, k) indices of its top-k tokens, their probabilities, and the index of the
    actual next token. The tooltip's formatter turns them into text in the browser.
    """
    ids = record.topk_ids[:, :tooltip_k]
    known_tokens = record.token_ids[record.token_ids >= 0]
    table = np.unique(np.concatenate([ids.ravel(), known_tokens]))
    next_ids = np.append(record.token_ids[1:], -1)
    next_local = np.searchsorted(table, next_ids).clip(0, max(table.size - 1, 0))
    next_vocab = np.where((next_ids >= 0) & np.isfinite(record.next_logprob), next_local, -1)
    columns = {
        "label": [display(t, max_len=_TIP_LABEL_MAX_CHARS) for t in record.tokens],
        "topk_vocab": np.searchsorted(table, ids).astype(np.int32),
        "topk_pct": (record.topk_probs[:, :tooltip_k].astype(np.float64) * 100.0).astype(np.float32),
        "next_vocab": next_vocab.astype(np.int32),
    }
    vocab = {
        "token_id": table.astype(np.int64),
        "label": [display(record.token_text(int(t)), max_len=_TOPK_LABEL_MAX_CHARS) for t in table.tolist()],
    }
    return columns, vocab


def _select_links(
    record: Record,
    choices: tuple[AttentionChoice, ...],
    *,
    top_k: int | None,
    threshold: float,
    hide_sink: bool,
    max_links: int,
) -> tuple[dict[str, np.ndarray], int]:
    """Links to draw, per choice: no self-links, threshold, top-k per query, then the page budget."""
    assert record.attention is not None
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for choice in choices:
        q, k, w = record.attention.select(choice.layer, choice.head)
        keep = (q != k) & (w >= threshold)
        if hide_sink:
            keep &= k != 0
        q, k, w = q[keep], k[keep], w[keep]
        if top_k is not None and q.size:
            order = np.lexsort((-w, q))
            q, k, w = q[order], k[order], w[order]
            first = np.r_[0, np.flatnonzero(np.diff(q)) + 1]
            rank = np.arange(q.size) - np.repeat(first, np.diff(np.r_[first, q.size]))
            sel = rank < top_k
            q, k, w = q[sel], k[sel], w[sel]
        parts.append((q, k, w))
    # share the budget: choices with few links keep them all, the rest split what is left
    counts = [p[0].size for p in parts]
    budget = [0] * len(parts)
    remaining = max_links
    for done, i in enumerate(sorted(range(len(parts)), key=counts.__getitem__)):
        budget[i] = min(counts[i], remaining // (len(parts) - done))
        remaining -= budget[i]
    dropped = sum(counts) - sum(budget)
    cols: dict[str, list[np.ndarray]] = {"query": [], "key": [], "weight": [], "choice": []}
    for c, ((q, k, w), b) in enumerate(zip(parts, budget, strict=True)):
        if b < q.size:
            top = np.argpartition(-w, b - 1)[:b] if b > 0 else np.zeros(0, dtype=np.int64)
            q, k, w = q[top], k[top], w[top]
        order = np.argsort(w, kind="stable")  # heavier links drawn last, on top
        cols["query"].append(q[order].astype(np.int32))
        cols["key"].append(k[order].astype(np.int32))
        cols["weight"].append(w[order].astype(np.float32))
        cols["choice"].append(np.full(q.size, c, dtype=np.int32))
    out = {
        name: (np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32 if name == "weight" else np.int32))
        for name, arrays in cols.items()
    }
    return out, dropped


def _control_transform(
    links: ColumnDataSource, anchors: ColumnDataSource, column: str, *, name: str
) -> CustomJSTransform:
    args = {
        "links": links,
        "anchors": anchors,
        "column": column,
        "depth_scale": _ARC_DEPTH_SCALE,
        "depth_max": _ARC_DEPTH_MAX,
    }
    return CustomJSTransform(args=args, v_func=_CONTROL_JS, name=name)


def _marker_data(lay: geometry.Layout) -> dict[str, list[Any]]:
    n = lay.n
    first, last = 0, n - 1
    r0 = max(float(lay.r[first]), 1e-9)
    rn = max(float(lay.r[last]), 1e-9)
    reach = 0.5 * lay.band_width + 0.55 * lay.pitch
    if lay.kind == "circle":
        start_scale = (r0 + reach) / r0
    else:  # the spiral starts at its inner end: mark it inside the hole
        inner = r0 - 0.5 * lay.band_width
        start_scale = max(inner - min(0.5 * lay.pitch, 0.5 * inner), 0.0) / r0
    end_scale = (rn + reach) / rn
    sx, sy = float(lay.x[first]) * start_scale, float(lay.y[first]) * start_scale
    ex, ey = float(lay.x[last]) * end_scale, float(lay.y[last]) * end_scale
    start_align = ("right" if sx < 0 else "left") if lay.kind == "circle" else "center"
    end_align = "left" if ex >= 0 else "right"
    if n == 1:
        end_align = "left"
        start_align = "right"
    return {
        "x": [sx, ex],
        "y": [sy, ey],
        "text": [START_MARK, END_MARK],
        "align": [start_align, end_align],
    }


# ------------------------------------------------------------------------------ the view


def _rows_layout(lay: geometry.Layout) -> geometry.Layout:
    """Rows below the coil for the unwind, their segments scaled so the rows take at most
    about half the coil's height (``scale = sqrt(W H / (2 * 1.5 * n * arc_len * pitch))``)."""
    x_min, y_min, x_max, y_max = lay.bounds
    width, height = x_max - x_min, y_max - y_min
    scale = math.sqrt(width * height / (3.0 * lay.n * lay.arc_len * lay.pitch))
    scale = float(min(1.0, max(scale, 0.05)))
    return geometry.wrapped_line_layout(lay, scale=scale, y_top=y_min - lay.pitch)


def coil(
    record: Record,
    *,
    layout: Literal["spiral", "circle", "auto"] = "spiral",
    color: Literal["prob", "target_prob", "entropy", "surprisal", "rank"] = "prob",
    attention: Any = None,
    attention_threshold: float = 0.02,
    attention_top_k: int | None = 3,
    max_links: int = 50_000,
    hide_sink: bool = False,
    palette: Any = None,
    width: int = 720,
    height: int = 720,
    title: str | None = None,
    labels: bool = True,
    label_font_px: int = 11,
    tooltip_k: int | None = None,
    n_arc: int | None = None,
    clockwise: bool = False,
    animate: bool = False,
    pace: Literal["entropy", "surprisal"] = "entropy",
    duration_s: float | None = None,
    floor_bits: float = 0.5,
    autoplay: bool = False,
) -> CoilView:
    """Draw a Record as a coil: coloured segments, word/sentence band, labels, attention arcs.

    Args:
        record: the :class:`~coilvis.record.Record` to draw (n = ``seq_len`` >= 1).
        layout: ``"spiral"`` (Archimedean, equal-length segments), ``"circle"`` (one
            closed ring, for short prompts) or ``"auto"`` (a circle up to
            :data:`coilvis.geometry.CIRCLE_MAX_N` positions).
        color: the statistic segments are coloured by: ``"prob"`` (probability of the
            model's top next token, %: how sure it was), ``"target_prob"`` (probability of
            the actual next token, %), ``"entropy"``  (of the next-token distribution, bits),
            ``"surprisal"`` (of the actual next token, bits) or ``"rank"`` (of the actual
            next token, 1 = top, log scale). Bright means unexpected for every default
            palette.
        attention: None (no arcs); ``"mean"`` or ``"max"`` (that reduction over heads, for
            every layer the record holds); ``(layer, head)`` with ``head`` an int,
            ``"mean"`` or ``"max"`` (negative layers count from the end); or a list of
            these. Every choice is embedded; with more than one, a control in the page
            switches between them.
        attention_threshold: links lighter than this weight are not drawn.
        attention_top_k: at most this many keys per query and choice (None: all kept).
        max_links: at most this many links in the page, over all choices (the heaviest
            of each choice are kept; choices share the budget evenly).
        hide_sink: leave out links to position 0 (the attention sink).
        palette: None (the statistic's default: Viridis reversed for probability,
            Magma for entropy and surprisal, Cividis for rank), a palette name
            (``"Viridis"``, ``"Cividis"``, ``"Magma"``, ``"Inferno"``, ``"Plasma"``,
            ``"_r"`` to reverse) or a sequence of ``"#rrggbb"`` colours, low to high.
        width: width of the drawing area in screen pixels (the colour bar, titles and
            controls come on top).
        height: height of the drawing area in screen pixels.
        title: figure title (default: the model name and the number of tokens).
        labels: draw token labels on the segments that have room for them.
        label_font_px: largest label font size in pixels (smaller when segments are
            thin; labels are left out below 7 px).
        tooltip_k: top next tokens listed in the hover (default: all the record kept,
            at most 10).
        n_arc: polygon steps along each segment edge (default: smooth for short prompts,
            2 for long ones to keep pages small).
        clockwise: wind clockwise.
        animate: add the unwind (:mod:`coilvis.views.unwind`): play/pause, restart,
            loop, speed and scrub controls; the coil unrolls into rows below it, the
            playhead dwelling on position i for
            ``duration_s * (floor_bits + x_i) / sum_j (floor_bits + x_j)`` seconds, x the
            entropy (or surprisal) in bits (:mod:`coilvis.views.schedule`).
        pace: ``"entropy"`` (of the next-token distribution) or ``"surprisal"`` (of the
            actual next token) sets the dwell times.
        duration_s: total unwind duration at speed 1 (default: 0.25 s per position,
            between 4 s and 180 s).
        floor_bits: added to every position's pace value, so certain positions still
            take a moment.
        autoplay: start the unwind as soon as the page is ready.

    Returns:
        A :class:`CoilView`; ``coilvis.save(view, "coil.html")`` writes it.

    Raises:
        CoilvisTypeError: ``record`` is not a Record, or an option has the wrong type.
        CoilvisValueError: an option is out of range, or ``attention`` asks for links the
            record does not hold.

    Examples:
        >>> import numpy as np, coilvis
        >>> rec = coilvis.from_logits(np.zeros((5, 4)), tokens=[0, 1, 2, 3, 0], vocab=["a", " b", "c", "."])
        >>> view = coilvis.coil(rec)
        >>> len(view.segments.data["pos"]), view.model("coil_segments").name
        (5, 'coil_segments')
    """
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"record: expected a coilvis Record, got {type(record).__name__}")
    kind = _check_choice_option("layout", layout, ("spiral", "circle", "auto"))
    color = _check_choice_option("color", color, tuple(_style.STATS))
    if isinstance(attention_threshold, bool) or not isinstance(attention_threshold, (int, float, np.floating)):
        raise CoilvisTypeError(f"attention_threshold: expected a number, got {type(attention_threshold).__name__}")
    threshold = float(attention_threshold)
    if not (0.0 <= threshold <= 1.0):
        raise CoilvisValueError(f"attention_threshold: expected a weight in [0, 1], got {threshold}")
    top_k = None if attention_top_k is None else check_int("attention_top_k", attention_top_k, minimum=1)
    max_links = check_int("max_links", max_links, minimum=0)
    width = check_int("width", width, minimum=100)
    height = check_int("height", height, minimum=100)
    label_font_px = check_int("label_font_px", label_font_px, minimum=1)
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    for name, flag in (("hide_sink", hide_sink), ("labels", labels), ("clockwise", clockwise), ("animate", animate), ("autoplay", autoplay)):
        if not isinstance(flag, bool):
            raise CoilvisTypeError(f"{name}: expected True or False, got {type(flag).__name__}")
    k = record.k if tooltip_k is None else check_int("tooltip_k", tooltip_k, minimum=1)
    k = min(k, record.k, 10 if tooltip_k is None else record.k)
    choices = _parse_attention(attention, record)

    n = record.seq_len
    n_arc = None if n_arc is None else check_int("n_arc", n_arc, minimum=1)
    if n_arc is not None and n_arc * n > MAX_ARC_STEPS:
        raise CoilvisValueError(f"n_arc: {n_arc} steps for each of {n} segments is too many polygon steps; use at most {max(1, MAX_ARC_STEPS // n)}")
    lay, band_lay = _layouts(n, kind, n_arc=n_arc, clockwise=clockwise)
    line = _rows_layout(lay) if animate else geometry.unwound_layout(lay)
    schedule = None
    if animate:
        from coilvis.views.unwind import schedule_columns

        pace = _check_choice_option("pace", pace, ("entropy", "surprisal"))
        schedule, schedule_cols = schedule_columns(record, pace=pace, duration_s=duration_s, floor_bits=floor_bits)
    anchors = geometry.arc_curves(
        lay, np.arange(n), np.arange(n), anchor="inner", depth_scale=_ARC_DEPTH_SCALE, depth_max=_ARC_DEPTH_MAX
    )
    word, sentence = token_groups(record.tokens)

    # ---- per-position data
    rank = np.where(record.next_rank >= 1, record.next_rank, np.nan).astype(np.float32)
    stats = {
        "top_prob_pct": (record.topk_probs[:, 0].astype(np.float64) * 100.0).astype(np.float32),
        "prob_pct": (record.next_prob.astype(np.float64) * 100.0).astype(np.float32),
        "entropy_bits": record.entropy_in(bits=True),
        "surprisal_bits": record.surprisal(bits=True),
        "rank": rank,
    }
    scale = _style.stat_scale(color, stats[_style.STATS[color].column], palette=palette)
    f32 = np.float32
    topk_cols, vocab_data = _topk_columns(record, tooltip_k=k)
    seg_data: dict[str, Any] = {
        "pos": np.arange(n, dtype=np.int32),
        "token": list(record.tokens),
        "token_id": record.token_ids.astype(np.int32),
        **topk_cols,
        **stats,
        "word": word,
        "sentence": sentence,
        "xs": lay.poly_xs.astype(f32),
        "ys": lay.poly_ys.astype(f32),
        "x": lay.x.astype(f32),
        "y": lay.y.astype(f32),
        "angle_rad": lay.angle_rad.astype(f32),
        "x_line": line.x.astype(f32),
        "y_line": line.y.astype(f32),
        "angle_line_rad": line.angle_rad.astype(f32),
        "anchor_x": anchors.x0.astype(f32),
        "anchor_y": anchors.y0.astype(f32),
    }
    if schedule is not None:
        seg_data.update(schedule_cols)
    segments = ColumnDataSource(seg_data, name="coil_segment_source")

    # ---- the frame: 1:1 aspect, the coil and its band fitted with a margin
    gap = lay.pitch - lay.band_width
    x_min, y_min, x_max, y_max = lay.bounds
    pad = gap + (1.2 * lay.pitch if lay.kind == "circle" else 0.6 * lay.pitch)
    x_min, x_max, y_min, y_max = x_min - pad, x_max + pad, y_min - pad, y_max + pad
    px_per_unit = min((width - 2 * _MARGIN_PX) / (x_max - x_min), (height - 2 * _MARGIN_PX) / (y_max - y_min))
    if animate:  # the rows the coil unwinds into go below it: a taller frame, same scale
        y_low = min(y_min, line.bounds[1] - pad)
        height = int(min(3 * height, round(height + (y_min - y_low) * px_per_unit)))
        y_min = y_low
    cx, cy = 0.5 * (x_min + x_max), 0.5 * (y_min + y_max)
    half_w, half_h = 0.5 * width / px_per_unit, 0.5 * height / px_per_unit
    if animate:  # keep the coil at the top of a frame the rows may overflow (then pan)
        cy = y_max + 0.5 * _MARGIN_PX / px_per_unit - half_h

    p = figure(
        frame_width=width,
        frame_height=height,
        x_range=Range1d(cx - half_w, cx + half_w, name="coil_x_range"),
        y_range=Range1d(cy - half_h, cy + half_h, name="coil_y_range"),
        tools=[PanTool(), WheelZoomTool(), ResetTool(), SaveTool()],
        toolbar_location="above",
        name="coil_figure",
        min_border=12,
        outline_line_color=None,
        background_fill_color="#ffffff",
        x_axis_type=None,
        y_axis_type=None,
    )
    # the model name comes from the record: shown as token text is
    model_label = display(record.model_name, whitespace="none") if record.model_name else "coil"
    p.title.text = _style.plain_text(title if title is not None else f"{model_label} · {n:,} tokens")
    p.title.text_font_size = "14px"

    # ---- outer band (words, sentences), then segments
    bands = ColumnDataSource(_band_rows(band_lay, word, sentence), name="coil_band_source")
    p.patches("xs", "ys", source=bands, fill_color="color", line_color=None, name="coil_bands")
    marks = ColumnDataSource(_sentence_marks(lay, sentence), name="coil_sentence_mark_source")
    p.segment("x0", "y0", "x1", "y1", source=marks, line_color=_MARK_COLOR, line_width=1.5, name="coil_sentence_marks")

    mapper = _style.color_mapper(scale, name="coil_color_mapper")
    rows = _style.rows_transform(name="coil_rows")
    fill = transform(scale.column, mapper)
    seg_renderer = p.patches(
        xs=transform("xs", rows),
        ys=transform("ys", rows),
        source=segments,
        fill_color=fill,
        line_color=fill,
        line_width=0.5,
        hover_fill_color=fill,
        hover_line_color="#000000",
        hover_line_width=2.0,
        selection_fill_color=fill,
        selection_line_color="#000000",
        selection_line_width=2.0,
        nonselection_fill_color=fill,
        nonselection_line_color=fill,
        nonselection_fill_alpha=0.45,
        nonselection_line_alpha=0.45,
        name="coil_segments",
    )

    # ---- attention arcs
    links_source: ColumnDataSource | None = None
    highlight_filter: IndexFilter | None = None
    select: Select | None = None
    n_dropped = 0
    if choices:
        link_cols, n_dropped = _select_links(
            record, choices, top_k=top_k, threshold=threshold, hide_sink=hide_sink, max_links=max_links
        )
        links_source = ColumnDataSource(link_cols, name="coil_link_source")
        w_max = float(link_cols["weight"].max()) if link_cols["weight"].size else 1.0
        w_max = max(w_max, 1e-6)
        # many arcs at once: fainter, so the strongest still stand out instead of a smear
        per_choice = link_cols["weight"].size / max(len(choices), 1)
        alpha_max = float(np.clip(2500.0 / max(per_choice, 1.0), 0.2, 0.8))
        look_x = _style.lookup_transform(segments, "anchor_x", name="coil_anchor_x")
        look_y = _style.lookup_transform(segments, "anchor_y", name="coil_anchor_y")
        ends = {
            "x0": transform("query", look_x),
            "y0": transform("query", look_y),
            "x1": transform("key", look_x),
            "y1": transform("key", look_y),
            "cx": transform("query", _control_transform(links_source, segments, "anchor_x", name="coil_control_x")),
            "cy": transform("query", _control_transform(links_source, segments, "anchor_y", name="coil_control_y")),
        }
        choice_filter = GroupFilter(column_name="choice", group=0, name="coil_choice_filter")
        p.quadratic(
            **ends,
            source=links_source,
            view=CDSView(filter=choice_filter),
            line_color=_ARC_COLOR,
            line_width=transform("weight", LinearInterpolator(x=[0.0, w_max], y=[0.3, 3.5])),
            line_alpha=transform("weight", LinearInterpolator(x=[0.0, w_max], y=[0.1 * alpha_max, alpha_max])),
            name="coil_arcs",
        )
        highlight_filter = IndexFilter(indices=[], name="coil_highlight_filter")
        p.quadratic(
            **ends,
            source=links_source,
            view=CDSView(filter=IntersectionFilter(operands=[choice_filter, highlight_filter])),
            line_color=_HIGHLIGHT_COLOR,
            line_width=transform("weight", LinearInterpolator(x=[0.0, w_max], y=[1.2, 5.0])),
            line_alpha=transform("weight", LinearInterpolator(x=[0.0, w_max], y=[0.55, 1.0])),
            name="coil_arc_highlight",
        )
        if len(choices) > 1:
            select = Select(
                title="Attention arcs",
                value="0",
                options=[(str(c), choice.label) for c, choice in enumerate(choices)],
                width=280,
                name="coil_attention_select",
            )
            select.js_on_change("value", CustomJS(args={"choice": choice_filter}, code=_SELECT_JS))

    # ---- labels that fit, start/end markers
    label_source: ColumnDataSource | None = None
    band_px = lay.band_width * px_per_unit
    font_px = min(label_font_px, int(0.8 * band_px))
    if labels and font_px >= _MIN_FONT_PX:
        texts = [display(t, max_len=_LABEL_MAX_CHARS) for t in record.tokens]
        widths = np.array([label_width_px(t, font_px) for t in texts])
        if lay.kind == "spiral":  # a straight label on a curved turn must not reach the next turn
            sag_px = widths**2 / (8.0 * lay.r * px_per_unit)
            widths = np.where(sag_px <= 0.5 * (lay.pitch * px_per_unit - font_px), widths, np.inf)
        along = (np.arange(n) + 0.5) * lay.arc_len * px_per_unit
        closed = n * lay.arc_len * px_per_unit if lay.kind == "circle" else None
        kept = np.flatnonzero(fit_labels(along, widths, gap_px=0.5 * font_px, closed_px=closed))
        colors = _style.text_colors(_style.map_colors(stats[scale.column][kept], scale))
        label_source = ColumnDataSource(
            {
                "pos": kept.astype(np.int32),
                "x": lay.x[kept].astype(f32),
                "y": lay.y[kept].astype(f32),
                "angle_rad": lay.label_angle_rad[kept].astype(f32),
                "text": [texts[i] for i in kept.tolist()],
                "text_color": colors,
            },
            name="coil_label_source",
        )
        p.text(
            x="x",
            y="y",
            text="text",
            angle="angle_rad",
            text_color="text_color",
            text_font=value(_style.FONT),
            text_font_size=f"{font_px}px",
            text_align="center",
            text_baseline="middle",
            source=label_source,
            name="coil_labels",
        )
    else:
        font_px = 0
    markers = ColumnDataSource(_marker_data(lay), name="coil_marker_source")
    p.text(
        x="x",
        y="y",
        text="text",
        text_align="align",
        text_baseline="middle",
        text_font=value(_style.FONT),
        text_font_size="12px",
        text_font_style="bold",
        text_color=_MARK_COLOR,
        background_fill_color="#ffffff",
        background_fill_alpha=0.85,
        source=markers,
        name="coil_markers",
    )

    # ---- hover, tap, colour bar, legend lines
    tooltip = _style.tooltip_html(
        [
            ("position", "@pos"),
            ("token", "@pos{token}"),
            ("next", "@pos{next}"),
            ("entropy", "@entropy_bits{0.00} bits"),
            (f"top {k} next tokens", "pre:@pos{topk}"),
        ]
    )
    vocab = ColumnDataSource(vocab_data, name="coil_vocab_source")
    text_format = CustomJSHover(args={"segments": segments, "vocab": vocab}, code=_TOOLTIP_JS, name="coil_text_format")
    hover = HoverTool(
        renderers=[seg_renderer],
        tooltips=tooltip,
        formatters={"@pos": text_format},
        name="coil_hover",
        point_policy="follow_mouse",
    )
    tap = TapTool(renderers=[seg_renderer], name="coil_tap")
    p.add_tools(hover, tap)
    if links_source is not None and highlight_filter is not None:
        code = CustomJS(
            args={"links": links_source, "highlight": highlight_filter, "segments": segments}, code=_HIGHLIGHT_JS
        )
        hover.callback = code
        segments.selected.js_on_change("indices", code)

    p.add_layout(_style.color_bar(mapper, scale, name="coil_color_bar"), "right")
    notes = [
        scale.legend,
        "Outer band: words in alternating shades, sentences in alternating hues, a dark tick where a sentence starts.",
    ]
    if choices:
        notes.append(
            "Arcs: from each position to the earlier positions it attends to most; width and opacity grow with the "
            "weight. Hover or tap a segment to highlight its arcs."
        )
    chars_per_line = max(30, int((width + 60) / (0.56 * 11)))  # titles do not wrap by themselves
    for note in notes:
        for text in textwrap.wrap(note, chars_per_line):
            p.add_layout(
                Title(
                    text=_style.plain_text(text),
                    text_font_size="11px",
                    text_font_style="normal",
                    text_color="#555555",
                    standoff=2,
                ),
                "below",
            )

    unwind_parts = None
    if schedule is not None:
        from coilvis.views.unwind import build_unwind

        unwind_parts = build_unwind(
            figure=p,
            segments=segments,
            links=links_source,
            labels=label_source,
            text_format=text_format,
            coiled=lay,
            line=line,
            schedule=schedule,
            autoplay=autoplay,
            width_px=width,
        )
    parts = [x for x in (select, unwind_parts.controls if unwind_parts else None, p, unwind_parts.readout if unwind_parts else None) if x is not None]
    root = column(*parts, name="coil_root") if len(parts) > 1 else p
    return CoilView(
        root,
        title=title if title is not None else "coilvis · coil",
        figure=p,
        segments=segments,
        links=links_source,
        labels=label_source,
        coiled=lay,
        unwound=line,
        choices=choices,
        scale=scale,
        record=record,
        px_per_unit=float(px_per_unit),
        font_px=int(font_px),
        n_links_dropped=int(n_dropped),
        schedule=schedule,
        ready=unwind_parts.ready if unwind_parts else [],
    )
