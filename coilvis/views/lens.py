"""The logit lens as a heatmap: layers up, positions across, the top token in every cell.

``coilvis.lens(record)`` draws :class:`~coilvis.record.LensStats` (computed by
``coilvis.run(prompt, lens=True)``): one row per decoded residual stream (the embedding
at the bottom, the model's output at the top), one column per position. Each cell shows
the layer's top next-token guess, coloured by a statistic; the input tokens label the
bottom edge and the actual next tokens the top edge (``✓`` where the model's final
prediction was right); cells whose top token *is* the actual next token are outlined.

Positions are numbers on the x axis with token labels as overrides, so a token that
occurs twice keeps two columns. Cells have a fixed size in pixels: a long prompt makes a
figure you pan through (drag, or wheel-zoom), never a squashed one; when zooming out
makes cells too small for their labels, the labels shorten and then hide.

``coilvis.lens(record_a, compare=record_b, stat="js")`` colours each cell by how much the
two runs' distributions differ there (see :func:`coilvis.compare.topk_divergence`).

Token text reaches the page only as data: one table of distinct strings
(``lens_strings``) that the cells index with binary int32 columns (a 30 x 1024 lens
is about 2 MB of data, not 6), and axis-label overrides drawn on the canvas. Tooltips
are fixed templates of ``@field`` references; the small scripts that look strings up
by index only move data, and Bokeh escapes what they return (never the ``safe`` format).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    CustomJSTransform,
    FixedTicker,
    HoverTool,
    IndexFilter,
    LinearAxis,
    LinearColorMapper,
    NoOverlap,
    Range1d,
    TapTool,
)
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis.compare import topk_divergence
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.record import Record
from coilvis.tokens import display
from coilvis.views._style import (
    FONT,
    ColorScale,
    color_bar,
    color_mapper,
    map_colors,
    plain_text,
    resolve_palette,
    text_colors,
    tooltip_html,
)
from coilvis.views.output import View

__all__ = ["COMPARE_STATS", "LENS_STATS", "LensFigure", "lens", "lens_figure", "select_rows"]

_LN2 = math.log(2.0)

#: Statistics a single-record lens colours by (``stat=``).
LENS_STATS: tuple[str, ...] = ("prob", "entropy", "kl", "rank", "target_prob")
#: Divergences a comparison lens colours by (``stat=`` with ``compare=``).
COMPARE_STATS: tuple[str, ...] = ("kl", "js", "tv")

# stat -> (colour bar title, palette, reversed, log scale, tick format)
_SPECS: dict[str, tuple[str, str, bool, bool, str | None]] = {
    "prob": ("probability of top token (%)", "Viridis", True, False, "%d%%"),
    "entropy": ("entropy (bits)", "Magma", False, False, None),
    "kl": ("KL(final \u2016 layer) (bits)", "Magma", False, False, None),
    "rank": ("rank of final top token (log scale)", "Cividis", False, True, None),
    "target_prob": ("probability of the actual next token (%)", "Viridis", True, False, "%d%%"),
}
_COMPARE_SPECS: dict[str, tuple[str, str, bool, bool, str | None]] = {
    "kl": ("KL(record \u2016 compare) (bits, lower bound)", "Magma", False, False, None),
    "js": ("Jensen-Shannon divergence (bits, \u2264 1, lower bound)", "Magma", False, False, None),
    "tv": ("total variation distance (lower bound)", "Magma", False, False, None),
}
_LEGEND = {
    "prob": "Colour: probability of the cell's top token (bright = unsure).",
    "entropy": "Colour: entropy of the layer's next-token distribution (bright = spread out).",
    "kl": "Colour: KL divergence from the final prediction to the layer's (bright = far from the final answer).",
    "rank": "Colour: where the final top token ranks in the layer (1 = top; bright = far down).",
    "target_prob": "Colour: probability the layer gives the actual next token (bright = unexpected).",
}

_FONT_PX = 10
#: Average width of one label character at ``_FONT_PX``, for deciding what fits a cell.
_CHAR_PX = 6.2
_SHORT_LEN = 3
_HOVER_LEN = 24
#: Smallest frame height a lens of few rows is stretched to, in pixels.
_MIN_FRAME_PX = 160
_CHECK = "\u2713"  # ✓


def _check_record(record: Any, name: str) -> Record:
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"{name}: expected a coilvis Record, got {type(record).__name__}")
    if record.lens is None:
        raise CoilvisValueError(f"{name}: has no lens statistics; run coilvis.run(prompt, lens=True)")
    return record


def _check_int(value: Any, name: str, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CoilvisTypeError(f"{name}: expected an int, got {type(value).__name__}")
    if low is not None and value < low:
        raise CoilvisValueError(f"{name}: expected an int >= {low}, got {value}")
    return int(value)


def select_rows(
    layer_names: Sequence[str],
    *,
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
) -> np.ndarray:
    """Which lens rows to draw; the first and the last row are always kept.

    Args:
        layer_names: (n_rows,) names of the lens rows (``"embed"``, ``"0"``, ...).
        layers: rows to draw: row indices into ``layer_names`` (0 is the embedding,
            negative counts from the end) or layer names. The first and last rows are
            added when missing.
        stride: draw every ``stride``-th row (from the first), plus the last.

    Returns:
        (n_shown,) int64 sorted, distinct row indices.

    Raises:
        CoilvisValueError: both ``layers`` and ``stride``, an unknown name, an index out
            of range, an empty list, ``stride`` < 1.
        CoilvisTypeError: ``layers`` holds something other than ints and strs.

    Examples:
        >>> names = ["embed", *map(str, range(6))]
        >>> select_rows(names, stride=3).tolist()
        [0, 3, 6]
        >>> select_rows(names, layers=["2", -2]).tolist()
        [0, 3, 5, 6]
    """
    n_rows = len(layer_names)
    if layers is not None and stride is not None:
        raise CoilvisValueError("layers: give either layers= or stride=, not both")
    keep = {0, n_rows - 1}
    if stride is not None:
        step = _check_int(stride, "stride", low=1)
        keep.update(range(0, n_rows, step))
    elif layers is not None:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise CoilvisTypeError(f"layers: expected a list of row indices or layer names, got {type(layers).__name__}")
        if len(layers) == 0:
            raise CoilvisValueError("layers: expected at least one layer")
        index = {name: i for i, name in enumerate(layer_names)}
        for item in layers:
            if isinstance(item, str):
                if item not in index:
                    raise CoilvisValueError(f"layers: no layer named {item!r}; the lens has {list(layer_names)}")
                keep.add(index[item])
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                if not -n_rows <= item < n_rows:
                    raise CoilvisValueError(f"layers: row {item} is out of range for {n_rows} lens rows")
                keep.add(int(item) % n_rows)
            else:
                raise CoilvisTypeError(f"layers: expected row indices (int) or layer names (str), got {type(item).__name__}")
    else:
        keep.update(range(n_rows))
    return np.array(sorted(keep), dtype=np.int64)


def _window(seq_len: int, start: Any, end: Any) -> tuple[int, int]:
    lo = 0 if start is None else _check_int(start, "start")
    hi = seq_len if end is None else _check_int(end, "end")
    if lo < 0:
        lo += seq_len
    if hi < 0:
        hi += seq_len
    if not 0 <= lo < seq_len:
        raise CoilvisValueError(f"start: {start} is out of range for seq_len {seq_len}")
    if not lo < hi <= seq_len:
        raise CoilvisValueError(f"end: {end} must be after start ({lo}) and at most seq_len ({seq_len})")
    return lo, hi


def _cell_px(cell_px: Any) -> tuple[int, int]:
    if isinstance(cell_px, (int, np.integer)) and not isinstance(cell_px, bool):
        w = h = _check_int(cell_px, "cell_px", low=2)
    elif isinstance(cell_px, Sequence) and not isinstance(cell_px, str) and len(cell_px) == 2:
        w = _check_int(cell_px[0], "cell_px", low=2)
        h = _check_int(cell_px[1], "cell_px", low=2)
    else:
        raise CoilvisTypeError(f"cell_px: expected an int or a (width, height) pair of ints, got {cell_px!r}")
    return w, h


def _label_px(n_chars: int) -> float:
    """Width a label of ``n_chars`` characters needs, in pixels."""
    return n_chars * _CHAR_PX + 4.0


def _scale(stat: str, values: np.ndarray, *, compare: bool, palette: Any) -> ColorScale:
    title, default, reverse, log, tick_format = (_COMPARE_SPECS if compare else _SPECS)[stat]
    colors = resolve_palette(palette, default=default, reverse=reverse)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    if stat in ("prob", "target_prob"):
        low, high = 0.0, 100.0
    elif log:
        low, high = 1.0, max(10.0, top)
    elif compare and stat in ("js", "tv"):
        low, high = 0.0, 1.0
    else:
        low, high = 0.0, max(1.0, top)
    legend = _LEGEND.get(stat, "") if not compare else "Colour: how much the two runs' next-token distributions differ."
    return ColorScale(
        column="value", title=title, legend=legend, palette=colors, low=low, high=high, log=log, tick_format=tick_format
    )


@dataclass
class LensFigure:
    """The parts of a drawn lens that a page links to other views.

    Attributes:
        figure: the Bokeh figure (named ``"lens_figure"``).
        cells: the cells' data source (named ``"lens_cells"``), one row per cell, all
            columns numeric (binary in the page): ``pos``, ``y`` (row on the figure),
            ``row`` (lens row index), ``value`` (the colour statistic in its bar's
            unit), ``top_prob``, ``entropy_bits``, ``kl_bits``, ``next_prob``,
            ``final_rank`` (1 = top), ``light`` (1 where the label is white); and
            indices into ``strings``: ``layer_ix``, ``token_ix`` (input token),
            ``next_ix`` (actual next token, -1 at the last position), ``top_ix``,
            ``tk0..`` with probabilities ``tp0..`` (the top-k), and in compare mode
            ``ctk0..``, ``ctp0..``, ``compare_token_ix``.
        strings: data source (named ``"lens_strings"``) of the distinct texts the cells
            refer to (tokens and layer names), with columns ``full`` (the exact label of
            :func:`coilvis.tokens.display`), ``hover`` (cut to 24 characters), ``label``
            (cut to ``max_label_len``), ``short`` (3) and ``token_id`` (int32; -1 for
            layer names and tokens of unknown id). The hover shows every token with
            its id.
        highlight: data source (named ``"lens_highlight"``) with one column ``pos``:
            the selected position(s), outlined as a column.
        rows: (n_shown,) lens row indices drawn, bottom to top.
        positions: (n_pos,) positions drawn, left to right.
        scale: the colour scale.
    """

    figure: Any
    cells: ColumnDataSource
    strings: ColumnDataSource
    highlight: ColumnDataSource
    rows: np.ndarray
    positions: np.ndarray
    scale: ColorScale


class _Strings:
    """A table of distinct (raw text, token id) pairs; cells hold row indices into it
    (binary int32). The id is -1 for layer names and for tokens of unknown id."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, int], int] = {}

    def add(self, text: str, token_id: int = -1) -> int:
        return self.index.setdefault((text, int(token_id)), len(self.index))

    def ids(self, record: Record, token_ids: np.ndarray) -> np.ndarray:
        """Row indices of the tokens ``token_ids`` (any shape; -1 stays -1)."""
        flat = np.asarray(token_ids).reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = np.array([self.add(record.token_text(i), i) if i >= 0 else -1 for i in uniq.tolist()], dtype=np.int32)
        return rows[inverse].reshape(np.shape(token_ids))

    def tokens(self, record: Record) -> np.ndarray:
        """(seq_len,) row indices of the record's input tokens, by their text and id."""
        pairs = zip(record.tokens, record.token_ids.tolist(), strict=True)
        return np.array([self.add(text, token_id) for text, token_id in pairs], dtype=np.int32)

    def source(self, *, max_label_len: int) -> ColumnDataSource:
        texts = [text for text, _ in self.index]
        return ColumnDataSource(
            data={
                "full": [display(t) for t in texts],
                "hover": [display(t, max_len=_HOVER_LEN) for t in texts],
                "label": [display(t, max_len=max_label_len) for t in texts],
                "short": [display(t, max_len=_SHORT_LEN) for t in texts],
                "token_id": np.array([i for _, i in self.index], dtype=np.int32),
            },
            name="lens_strings",
        )


# JavaScript that only moves data: indices in, strings of the "lens_strings" source out.
# What the hover shows passes through Bokeh's escaping (never the safe format).
_LABELS_JS = """
const values = strings.data[column]
return Array.from(xs, (i) => (i >= 0 ? values[i] : ""))
"""
# A token shows its exact label and its id (see coilvis.tokens.display); a layer its name.
_TEXT_HOVER_JS = """
if (value < 0) return missing
const text = strings.data.full[value], id = strings.data.token_id[value]
return with_id ? text + "  (" + (id >= 0 ? "id " + id : "no id") + ")" : text
"""
_TOPK_HOVER_JS = """
const i = special_vars.index
const names = [], probs = [], ids = []
for (let j = 0; j < k; j++) {
  const row = source.data[prefix + "k" + j][i]
  names.push(strings.data.hover[row])
  ids.push(strings.data.token_id[row])
  probs.push((100 * source.data[prefix + "p" + j][i]).toFixed(1).padStart(5) + "%")
}
const width = Math.max(...names.map((n) => n.length))
return names.map((n, j) => n.padEnd(width) + "  " + probs[j] + "  id " + ids[j]).join("\\n")
"""


_VISIBILITY_JS = """
const px_w = plot.inner_width / Math.max(x_range.end - x_range.start, 1e-9)
const px_h = plot.inner_height / Math.max(y_range.end - y_range.start, 1e-9)
const tall = px_h >= min_h
long_text.visible = tall && px_w >= long_w
short_text.visible = tall && !long_text.visible && px_w >= short_w
"""

_TAP_JS = """
const i = source.selected.indices
if (i.length == 0) return
const pos = source.data.pos[i[0]]
highlight.data = {pos: [pos]}
"""


def lens_figure(
    record: Record,
    *,
    stat: str | None = None,
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
    start: int | None = None,
    end: int | None = None,
    compare: Record | None = None,
    cell_px: int | tuple[int, int] = (56, 20),
    max_label_len: int = 8,
    hover_k: int = 5,
    max_width_px: int = 1400,
    max_height_px: int = 900,
    palette: Any = None,
    title: str | None = None,
) -> LensFigure:
    """The lens heatmap as Bokeh models (see :func:`lens`, which wraps it in a View).

    Returns:
        A :class:`LensFigure`.
    """
    record = _check_record(record, "record")
    if compare is not None:
        compare = _check_record(compare, "compare")
        if compare.seq_len != record.seq_len:
            raise CoilvisValueError(
                f"compare: has {compare.seq_len} positions, record has {record.seq_len}; compare runs of equal length"
            )
        if compare.d_vocab != record.d_vocab:
            raise CoilvisValueError(
                f"compare: d_vocab {compare.d_vocab} differs from the record's {record.d_vocab}; "
                "compare models that share a tokenizer"
            )
        if compare.lens.layer_names != record.lens.layer_names:
            raise CoilvisValueError(
                f"compare: its lens rows {list(compare.lens.layer_names)} differ from the record's "
                f"{list(record.lens.layer_names)}"
            )
    allowed = COMPARE_STATS if compare is not None else LENS_STATS
    if stat is None:
        stat = "js" if compare is not None else "prob"
    if not isinstance(stat, str) or stat not in allowed:
        mode = "with compare=" if compare is not None else "for one record"
        raise CoilvisValueError(f"stat: expected one of {allowed} {mode}, got {stat!r}")
    max_label_len = _check_int(max_label_len, "max_label_len", low=1)
    hover_k = _check_int(hover_k, "hover_k", low=1)
    max_width_px = _check_int(max_width_px, "max_width_px", low=50)
    max_height_px = _check_int(max_height_px, "max_height_px", low=50)
    cell_w, cell_h = _cell_px(cell_px)
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")

    ls = record.lens
    rows = select_rows(ls.layer_names, layers=layers, stride=stride)
    lo, hi = _window(record.seq_len, start, end)
    positions = np.arange(lo, hi, dtype=np.int64)
    n_shown, n_pos = rows.shape[0], positions.shape[0]

    # cells in row-major order: cell c = (rows[c // n_pos], positions[c % n_pos])
    grid_row = np.repeat(rows, n_pos)
    grid_y = np.repeat(np.arange(n_shown, dtype=np.float64), n_pos)
    grid_pos = np.tile(positions, n_shown)
    sub = (rows[:, None], positions[None, :])
    hk = min(hover_k, ls.topk_ids.shape[2])
    topk_ids = ls.topk_ids[sub][:, :, :hk].reshape(-1, hk)
    topk_probs = ls.topk_probs[sub][:, :, :hk].reshape(-1, hk)
    top_ids = ls.topk_ids[sub][:, :, 0].reshape(-1)
    top_probs = ls.topk_probs[sub][:, :, 0].reshape(-1).astype(np.float64)
    entropy_bits = ls.entropy[sub].reshape(-1).astype(np.float64) / _LN2
    kl_bits = ls.kl_to_final[sub].reshape(-1).astype(np.float64) / _LN2
    next_prob = ls.next_prob[sub].reshape(-1).astype(np.float64)
    final_rank = ls.final_top_rank[sub].reshape(-1).astype(np.int64)

    if compare is None:
        values = {
            "prob": 100.0 * top_probs,
            "entropy": entropy_bits,
            "kl": kl_bits,
            "rank": final_rank.astype(np.float64),
            "target_prob": 100.0 * next_prob,
        }[stat]
    else:
        cl = compare.lens
        values = topk_divergence(
            ls.topk_ids[sub], ls.topk_probs[sub], cl.topk_ids[sub], cl.topk_probs[sub], kind=stat, bits=True
        ).reshape(-1)
    scale = _scale(stat, values, compare=compare is not None, palette=palette)

    strings = _Strings()
    # input tokens by their text and id (a record built from strings may have no ids)
    token_ix = strings.tokens(record)
    next_ids = np.append(record.token_ids[1:], -1)
    cell_next = next_ids[grid_pos]
    f32 = np.float32
    data: dict[str, Any] = {
        "pos": grid_pos.astype(np.int32),
        "y": grid_y.astype(f32),
        "row": grid_row.astype(np.int32),
        "layer_ix": np.array([strings.add(ls.layer_names[r]) for r in grid_row.tolist()], dtype=np.int32),
        "value": values.astype(f32),
        "top_ix": strings.ids(record, top_ids),
        "top_prob": top_probs.astype(f32),
        "light": np.array([c == "#ffffff" for c in text_colors(map_colors(values, scale))], dtype=np.uint8),
        "token_ix": token_ix[grid_pos],
        "next_ix": np.append(token_ix[1:], -1).astype(np.int32)[grid_pos],
        "entropy_bits": entropy_bits.astype(f32),
        "kl_bits": kl_bits.astype(f32),
        "next_prob": next_prob.astype(f32),
        "final_rank": final_rank.astype(np.int32),
    }
    for j in range(hk):
        data[f"tk{j}"] = strings.ids(record, topk_ids[:, j])
        data[f"tp{j}"] = topk_probs[:, j].astype(f32)
    if compare is not None:
        cl = compare.lens
        chk = min(hover_k, cl.topk_ids.shape[2])
        c_ids = cl.topk_ids[sub][:, :, :chk].reshape(-1, chk)
        c_probs = cl.topk_probs[sub][:, :, :chk].reshape(-1, chk)
        for j in range(chk):
            data[f"ctk{j}"] = strings.ids(compare, c_ids[:, j])
            data[f"ctp{j}"] = c_probs[:, j].astype(f32)
        data["compare_token_ix"] = strings.tokens(compare)[grid_pos]
    cells = ColumnDataSource(data=data, name="lens_cells")
    string_source = strings.source(max_label_len=max_label_len)
    highlight = ColumnDataSource(data={"pos": []}, name="lens_highlight")
    match = (top_ids == cell_next) & (cell_next >= 0)

    # ----------------------------------------------------------------- figure
    # a lens of few rows gets taller cells, so that its colour bar stays readable
    cell_h = max(cell_h, min(3 * cell_h, math.ceil(_MIN_FRAME_PX / n_shown)))
    vis_cols = min(n_pos, max(1, max_width_px // cell_w))
    vis_rows = min(n_shown, max(1, max_height_px // cell_h))
    x_range = Range1d(lo - 0.5, lo - 0.5 + vis_cols, bounds=(lo - 0.5, hi - 0.5), name="lens_x_range")
    y_range = Range1d(n_shown - 0.5 - vis_rows, n_shown - 0.5, bounds=(-0.5, n_shown - 0.5), name="lens_y_range")
    if title is None:
        what = "logit lens" if compare is None else "logit lens comparison"
        # the model name comes from the record: shown as token text is
        title = f"{what} \u00b7 {display(record.model_name, whitespace='none')}" if record.model_name else what
    fig = figure(
        name="lens_figure",
        x_range=x_range,
        y_range=y_range,
        frame_width=vis_cols * cell_w,
        frame_height=vis_rows * cell_h,
        tools="xpan,ypan,pan,xwheel_zoom,wheel_zoom,reset,save",
        active_drag="pan" if vis_rows < n_shown and vis_cols < n_pos else ("ypan" if vis_rows < n_shown else "xpan"),
        active_scroll=None,
        toolbar_location="above",
        x_axis_location=None,
        y_axis_location=None,
        min_border_left=10,
        output_backend="canvas",
    )
    fig.grid.visible = False
    fig.outline_line_color = None
    fig.background_fill_color = "#ffffff"
    fig.title.text = plain_text(title)
    fig.title.text_font = FONT

    mapper = color_mapper(scale, name="lens_color_mapper")
    cell_renderer = fig.rect(
        x="pos",
        y="y",
        width=1.0,
        height=1.0,
        source=cells,
        fill_color={"field": "value", "transform": mapper},
        line_color="#ffffff",
        line_width=0.5,
        name="lens_cell_renderer",
    )
    # a tap selects a cell; selection must not dim the rest of the heatmap
    cell_renderer.nonselection_glyph = None
    cell_renderer.selection_glyph = None
    text_kw: dict[str, Any] = {
        "x": "pos",
        "y": "y",
        "source": cells,
        "text_color": transform("light", LinearColorMapper(palette=["#000000", "#ffffff"], low=0, high=1)),
        "text_align": "center",
        "text_baseline": "middle",
        "text_font_size": f"{_FONT_PX}px",
        "text_font": {"value": FONT},
    }
    long_text = fig.text(
        text=transform("top_ix", CustomJSTransform(args={"strings": string_source, "column": "label"}, v_func=_LABELS_JS)),
        name="lens_text",
        **text_kw,
    )
    short_text = fig.text(
        text=transform("top_ix", CustomJSTransform(args={"strings": string_source, "column": "short"}, v_func=_LABELS_JS)),
        name="lens_text_short",
        **text_kw,
    )
    min_h = _FONT_PX + 1.0
    long_w, short_w = _label_px(max_label_len), _label_px(_SHORT_LEN)
    long_text.visible = cell_h >= min_h and cell_w >= long_w
    short_text.visible = cell_h >= min_h and not long_text.visible and cell_w >= short_w
    for r in (long_text, short_text):
        r.nonselection_glyph = None
        r.selection_glyph = None

    match_idx = np.nonzero(match)[0]
    fig.rect(
        x="pos",
        y="y",
        width=0.9,
        height=0.84,
        source=cells,
        view=CDSView(filter=IndexFilter(indices=match_idx.tolist(), name="lens_match_filter")),
        fill_color=None,
        line_color="#e8175d",
        line_width=1.5,
        name="lens_match_renderer",
    )
    fig.rect(
        x="pos",
        y=(n_shown - 1) / 2.0,
        width=1.0,
        height=float(n_shown),
        source=highlight,
        fill_color=None,
        line_color="#000000",
        line_width=2.5,
        name="lens_highlight_renderer",
    )

    # ----------------------------------------------------------------- axes
    ticks = positions.tolist()
    bottom = LinearAxis(
        ticker=FixedTicker(ticks=ticks, minor_ticks=[]),
        major_label_overrides={p: plain_text(display(record.tokens[p], max_len=max_label_len + 4)) for p in ticks},
        major_label_orientation=math.pi / 2,
        major_label_policy=NoOverlap(),
        major_label_text_font_size=f"{_FONT_PX + 1}px",
        axis_label=plain_text("input token"),
        name="lens_input_axis",
    )
    next_ok = np.zeros(record.seq_len, dtype=bool)
    next_ok[:-1] = record.topk_ids[:-1, 0] == record.token_ids[1:]

    def next_label(p: int) -> str:
        if p + 1 >= record.seq_len:
            return ""
        label = display(record.tokens[p + 1], max_len=max_label_len + 4)
        return f"{_CHECK} {label}" if next_ok[p] else label

    top = LinearAxis(
        ticker=FixedTicker(ticks=ticks, minor_ticks=[]),
        major_label_overrides={p: plain_text(next_label(p)) for p in ticks},
        major_label_orientation=math.pi / 2,
        major_label_policy=NoOverlap(),
        major_label_text_font_size=f"{_FONT_PX + 1}px",
        axis_label=plain_text(f"actual next token ({_CHECK} = the model's top prediction)"),
        name="lens_next_axis",
    )
    left = LinearAxis(
        ticker=FixedTicker(ticks=list(range(n_shown)), minor_ticks=[]),
        major_label_overrides={i: plain_text(display(ls.layer_names[r])) for i, r in enumerate(rows.tolist())},
        major_label_policy=NoOverlap(),
        axis_label=plain_text("layer"),
        name="lens_layer_axis",
    )
    fig.add_layout(bottom, "below")
    fig.add_layout(top, "above")
    fig.add_layout(left, "left")
    fig.add_layout(color_bar(mapper, scale, name="lens_color_bar"), "right")

    # ----------------------------------------------------------------- interaction
    text_hover = CustomJSHover(
        args={"strings": string_source, "missing": "(end of prompt)", "with_id": True}, code=_TEXT_HOVER_JS
    )
    layer_hover = CustomJSHover(args={"strings": string_source, "missing": "", "with_id": False}, code=_TEXT_HOVER_JS)
    formatters: dict[str, Any] = {f"@{c}": text_hover for c in ("token_ix", "next_ix", "top_ix")}
    formatters["@layer_ix"] = layer_hover
    formatters["@tk0"] = CustomJSHover(args={"strings": string_source, "source": cells, "k": hk, "prefix": "t"}, code=_TOPK_HOVER_JS)
    rows_html: list[tuple[str, str]] = [
        ("layer", "@layer_ix{custom}"),
        ("position", "@pos"),
        ("input", "@token_ix{custom}"),
        ("next", "@next_ix{custom}"),
        ("top token", "@top_ix{custom}"),
    ]
    if compare is not None:
        formatters["@compare_token_ix"] = text_hover
        formatters["@ctk0"] = CustomJSHover(
            args={"strings": string_source, "source": cells, "k": chk, "prefix": "ct"}, code=_TOPK_HOVER_JS
        )
        rows_html += [
            ("input (compare)", "@compare_token_ix{custom}"),
            (scale.title, "@value{0.000}"),
            ("top-k (record)", "pre:@tk0{custom}"),
            ("top-k (compare)", "pre:@ctk0{custom}"),
        ]
    else:
        rows_html.append(("top-k", "pre:@tk0{custom}"))
    rows_html += [
        ("entropy", "@entropy_bits{0.00} bits"),
        ("KL(final \u2016 layer)", "@kl_bits{0.000} bits"),
        ("p(actual next)", "@next_prob{0.0%}"),
        ("rank of final top token", "@final_rank"),
    ]
    fig.add_tools(
        HoverTool(renderers=[cell_renderer], tooltips=tooltip_html(rows_html), formatters=formatters, name="lens_hover"),
        TapTool(renderers=[cell_renderer], name="lens_tap"),
    )
    cells.selected.js_on_change("indices", CustomJS(args={"source": cells, "highlight": highlight}, code=_TAP_JS))
    visibility = CustomJS(
        args={
            "plot": fig,
            "x_range": x_range,
            "y_range": y_range,
            "long_text": long_text,
            "short_text": short_text,
            "long_w": long_w,
            "short_w": short_w,
            "min_h": min_h,
        },
        code=_VISIBILITY_JS,
    )
    for rng in (x_range, y_range):
        rng.js_on_change("start", visibility)
        rng.js_on_change("end", visibility)
    return LensFigure(
        figure=fig, cells=cells, strings=string_source, highlight=highlight, rows=rows, positions=positions, scale=scale
    )


def lens(
    record: Record,
    *,
    stat: str | None = None,
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
    start: int | None = None,
    end: int | None = None,
    compare: Record | None = None,
    cell_px: int | tuple[int, int] = (56, 20),
    max_label_len: int = 8,
    hover_k: int = 5,
    max_width_px: int = 1400,
    max_height_px: int = 900,
    palette: Any = None,
    title: str | None = None,
) -> View:
    """Draw the logit lens: layers x positions, the top token in every cell.

    Rows are the record's lens rows (embedding at the bottom, the model's output at the
    top); columns are positions ``start .. end - 1``. Every cell prints the top token
    of that layer's decoded residual (whitespace visible, cut to ``max_label_len``; the
    full string and the top-k with probabilities are in the hover) and is coloured by
    ``stat``. The input tokens label the bottom edge, the actual next tokens the top
    edge (``✓`` where the model's final top prediction was right); a cell whose top
    token is the actual next token is outlined. Tapping a cell outlines its column.

    Statistics (``stat``), with their colour bar:

    * ``"prob"``: probability of the cell's top token (%).
    * ``"entropy"``: entropy of the layer's distribution (bits).
    * ``"kl"``: KL(final ‖ layer), from the model's output to the layer (bits).
    * ``"rank"``: rank of the final top token in the layer (1 = top; log scale).
    * ``"target_prob"``: probability of the actual next token (%; grey at the last
      position, whose next token is unknown).

    Compare mode, ``compare=other`` (a Record of equal length, same ``d_vocab`` and lens
    rows: two prompts of equal length, or two models sharing a tokenizer):
    ``stat="kl"`` (KL(record ‖ compare), bits), ``"js"`` (Jensen-Shannon, bits, in
    ``[0, 1]``; the default) or ``"tv"`` (total variation, half the L1 distance, in
    ``[0, 1]``). A record keeps only each cell's top-k, so the value is the divergence
    between *coarse-grained* distributions (the tokens in both top-k lists, the tokens
    in only one, and the rest), minimised over what the top-k lists leave unknown: by
    the data-processing inequality a **lower bound** of the true divergence, exact when
    the top-k covers the probability mass. See :func:`coilvis.compare.topk_divergence`.

    Cells have a fixed size (``cell_px``); a lens larger than ``max_width_px`` x
    ``max_height_px`` shows part of itself and pans (drag; wheel zoom is on the
    toolbar). Labels shorten, then hide, when zooming out makes cells too small.

    Args:
        record: a Record with lens statistics (``coilvis.run(prompt, lens=True)``).
        stat: the colour statistic (default ``"prob"``; ``"js"`` with ``compare``).
        layers: rows to draw, as row indices into ``record.lens.layer_names`` (0 is
            the embedding) or layer names; the first and last rows are always drawn.
        stride: draw every ``stride``-th row, plus the last.
        start: first position drawn (negative counts from the end).
        end: one past the last position drawn.
        compare: a second Record to compare with (see above).
        cell_px: cell size in pixels, ``(width, height)`` or one int for both (a
            lens of few rows gets taller cells, up to 160 px in all).
        max_label_len: characters of the top token printed in a cell.
        hover_k: top tokens listed in the hover.
        max_width_px: widest the heatmap's frame grows before it pans.
        max_height_px: tallest the heatmap's frame grows before it pans.
        palette: a palette name (``"Viridis"``, ``"Magma_r"``, ...) or colours.
        title: the figure's title (default: "logit lens" and the model name).

    Returns:
        A :class:`~coilvis.views.output.View`; ``coilvis.save(view, "lens.html")``.

    Raises:
        CoilvisTypeError: ``record`` (or ``compare``) is not a Record; a bad argument type.
        CoilvisValueError: the record has no lens statistics ("run
            coilvis.run(prompt, lens=True)"), an unknown ``stat``, records that cannot
            be compared, a bad window, both ``layers`` and ``stride``.

    Example (runs the embedded default model)::

        record = coilvis.run("The capital of France is the city of", lens=True)
        coilvis.save(coilvis.lens(record, stat="entropy", stride=2), "lens.html")
        other = coilvis.run("The capital of Italy is the city of", lens=True)  # as many tokens
        coilvis.save(coilvis.lens(record, compare=other, stat="js"), "compare.html")
    """
    parts = lens_figure(
        record,
        stat=stat,
        layers=layers,
        stride=stride,
        start=start,
        end=end,
        compare=compare,
        cell_px=cell_px,
        max_label_len=max_label_len,
        hover_k=hover_k,
        max_width_px=max_width_px,
        max_height_px=max_height_px,
        palette=palette,
        title=title,
    )
    return View(parts.figure, title="coilvis lens" if title is None else title, kind="lens")
