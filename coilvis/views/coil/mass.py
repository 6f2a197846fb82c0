"""Mass rings on the coil: each segment split radially into its top-k next tokens' shares of probability and the rest.

``coilvis.coil(record, mass=True)`` cuts every segment, from its inner edge outward, into
``k + 1`` pieces (:func:`coilvis.geometry.split_radially`): the model's top ``k`` next
tokens there, the largest innermost, each piece's area that token's probability as a
share of the segment's, then the rest of the mass (``1 - sum of the top k``) in grey at
the outer edge. A confident position reads as one dark ring; a spread one as a ladder
of bright pieces and a wide grey rim.

Colour
------
Each share is coloured by its own probability on the coil's probability scale (the
``"prob"`` statistic: Viridis reversed from 0 to 100 %, or the ``palette`` given), the
rest in the scale's grey. Probability rather than a categorical colour per rank: the
rank is already where a piece sits (inner to outer), so the colour is free to say how
much it holds, on the one colour bar the coil already has, and a certain position reads
dark whatever its top token. A segment coloured by a statistic of the whole position
would hide under the pieces, so with rings the coil colours by ``"prob"`` only.

Named models
------------
``coil_mass_outline`` (a white hairline round each segment over the rings, the
selected one in black: patches over ``coil_segment_source``); ``coil_mass`` (patches,
drawn above the segments and under the outline, arcs and labels) over
``coil_mass_source``: ``n * (k + 1)`` rows, position by position (rows ``i * (k + 1)``
to ``i * (k + 1) + k`` are segment ``i``'s, innermost first), with columns ``pos``
(int32), ``rank`` (int32: 1-based rank of the share's token, 0 for the rest),
``vocab`` (int32: the token's row of ``coil_vocab_source``; -1 for the rest, -2 for
the rest of a position without a distribution, a served model's unsent row), ``pct``
(float32: the piece's probability in %, the rest's too; NaN where unknown),
``color_pct`` (``pct`` for shares, NaN for the rest: the grey), ``xs``, ``ys``
((rows, m) float32 polygons, the segment's vertex count) and, with the unwind,
``t_lo``, ``t_hi``, ``t_line_lo``, ``t_line_hi`` (float32: the piece's radial bounds
on the coil and on the line, :func:`coilvis.geometry.share_bounds`; ``unwind.js`` cuts
the moving segment there, :func:`coilvis.geometry.unwind_shares`). ``coil_mass_hover``
(its tooltip: the position, its token, the share's token as its exact label and id,
its probability and rank, and the actual next token) with ``coil_mass_format`` (a
``CustomJSHover``: ``"share"``, ``"pct"`` and ``"rank"`` formats); ``coil_mass_hover_outline``
over ``coil_mass_hover_outline_source``: the hovered piece's outline, on the overlay canvas.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, CustomJSHover, GlyphRenderer, HoverTool
from bokeh.transform import transform

from coilvis import geometry
from coilvis.errors import CoilvisValueError
from coilvis.options import check_k
from coilvis.record import Record
from coilvis.views import _style
from coilvis.views.coil.figure import draw_hover_outline, hover_callback

__all__ = [
    "MASS_TITLE",
    "DEFAULT_MASS_K",
    "Shares",
    "MassParts",
    "check_mass",
    "mass_shares",
    "mass_scale",
    "mass_columns",
    "middle_pct",
    "mass_style",
    "outline_style",
    "draw_mass",
    "draw_outline",
    "add_mass_hover",
    "build_mass",
]

#: Shares per segment when ``mass_k`` is not given (at most the record's k).
DEFAULT_MASS_K = 5
#: The colour bar's title with rings.
MASS_TITLE = "probability of each of the top next tokens (%)"

_UNSENT = -2  # ``vocab`` of the rest of a position without a distribution
_REST = -1  # ``vocab`` of the rest

# The mass tooltip's text. ``value`` is the row's vocab index (format "share"), its
# probability in % ("pct") or its rank ("rank"); labels come from the vocabulary source
# and the tooltip escapes the result.
_MASS_JS = """
const labels = vocab.data.label, ids = vocab.data.token_id
if (format === "share") {
  if (value >= 0) return labels[value] + "  (id " + ids[value] + ")"
  return value === -1 ? "the rest: every token outside the top " + k : "no distribution for this position"
}
if (format === "pct") {
  const p = value
  if (!Number.isFinite(p)) return "unknown"
  return p >= 9.995 ? p.toFixed(1) + "%" : p >= 0.0995 ? p.toFixed(2) + "%" : p.toPrecision(2) + "%"
}
return value > 0 ? value + " of the top " + k : "below the top " + k
"""


@dataclass(frozen=True)
class Shares:
    """Each position's top-k shares and the rest, as fractions of its segment.

    Attributes:
        fractions: (n, k + 1) float64, >= 0, rows summing to 1: the top-k tokens' shares
            (largest first) then the rest; a position without a distribution is all rest.
        pct: (n, k + 1) float32 each piece's probability in % (NaN where unknown).
        known: (n,) whether the position has a distribution.
    """

    fractions: np.ndarray
    pct: np.ndarray
    known: np.ndarray

    @property
    def k(self) -> int:
        """Shares per position (the pieces are ``k + 1``)."""
        return int(self.fractions.shape[1] - 1)


def check_mass(mass: bool, mass_k: Any, *, record: Record, color: str) -> int:
    """``mass_k`` clamped to the record's k (:func:`coilvis.options.check_k`); refuses rings
    on a coil coloured by anything but probability.

    Raises:
        CoilvisTypeError: ``mass_k`` is not an int.
        CoilvisValueError: ``mass_k`` < 1, or ``mass`` with a ``color`` other than ``"prob"``.
    """
    k = check_k(mass_k, available=record.k, name="mass_k", default=DEFAULT_MASS_K)
    if mass and color != "prob":
        raise CoilvisValueError(
            f"color: mass rings colour each share by its probability; expected 'prob' with mass=True, got {color!r}"
        )
    return k


def mass_shares(record: Record, *, k: int) -> Shares:
    """The top-``k`` shares of every position of ``record`` and the rest.

    A share whose probability is unknown (a served model's short row) is a share of no
    area; rounding that makes the top-k sum pass 1 leaves no rest.

    Returns:
        :class:`Shares`.
    """
    probs = record.topk_probs[:, :k].astype(np.float64)
    known = np.isfinite(probs).any(axis=1)
    shares = np.clip(np.where(np.isfinite(probs), probs, 0.0), 0.0, 1.0)
    total = shares.sum(axis=1, keepdims=True)
    shares = np.where(total > 1.0, shares / np.where(total > 0, total, 1.0), shares)
    rest = np.clip(1.0 - shares.sum(axis=1, keepdims=True), 0.0, 1.0)
    fractions = np.concatenate([shares, rest], axis=1)
    fractions[~known] = 0.0
    fractions[~known, -1] = 1.0
    fractions /= fractions.sum(axis=1, keepdims=True)
    pct = np.concatenate([probs, 1.0 - np.where(np.isfinite(probs), probs, 0.0).sum(axis=1, keepdims=True)], axis=1)
    pct = np.where(known[:, None], np.clip(pct, 0.0, 1.0) * 100.0, np.nan)
    pct[:, :-1] = np.where(np.isfinite(probs), pct[:, :-1], np.nan)
    return Shares(fractions=fractions, pct=pct.astype(np.float32), known=known)


def mass_scale(scale: _style.ColorScale, *, k: int) -> _style.ColorScale:
    """The coil's probability scale, its colour bar title and legend saying what the rings are."""
    legend = (
        f"Rings: each segment is cut from its inner edge outward into the model's top {k} next tokens, the most "
        "likely innermost, each piece's area its probability, coloured by it (bright = a small share); grey at the "
        "outer edge: the rest of the probability."
    )
    return replace(scale, title=MASS_TITLE, legend=legend)


def mass_columns(
    record: Record,
    lay: geometry.Layout,
    line: geometry.Layout | None,
    *,
    shares: Shares,
    vocab_ids: np.ndarray,
) -> dict[str, Any]:
    """Every column of ``coil_mass_source`` (see the module notes).

    Args:
        record: the Record drawn.
        lay: the coil's layout.
        line: the layout the segments unwind to (its radial bounds are kept), or None
            without the unwind.
        shares: :func:`mass_shares` of ``record``.
        vocab_ids: (v,) sorted token ids of ``coil_vocab_source``; holds every top-k id.
    """
    n, p = shares.fractions.shape
    f32 = np.float32
    bounds = geometry.share_bounds(lay.poly_xs, lay.poly_ys, shares.fractions)
    xs, ys = geometry.radial_pieces(lay.poly_xs, lay.poly_ys, bounds)
    vocab = np.full((n, p), _REST, dtype=np.int32)
    vocab[:, :-1] = np.searchsorted(vocab_ids, record.topk_ids[:, : p - 1]).clip(0, max(vocab_ids.size - 1, 0))
    vocab[~shares.known, -1] = _UNSENT
    rank = np.zeros((n, p), dtype=np.int32)
    rank[:, :-1] = np.arange(1, p, dtype=np.int32)
    color_pct = shares.pct.copy()
    color_pct[:, -1] = np.nan
    columns: dict[str, Any] = {
        "pos": np.repeat(np.arange(n, dtype=np.int32), p),
        "rank": rank.ravel(),
        "vocab": vocab.ravel(),
        "pct": shares.pct.ravel(),
        "color_pct": color_pct.ravel(),
        "xs": xs.reshape(n * p, -1).astype(f32),
        "ys": ys.reshape(n * p, -1).astype(f32),
    }
    if line is not None:
        line_bounds = geometry.share_bounds(line.poly_xs, line.poly_ys, shares.fractions)
        columns["t_lo"], columns["t_hi"] = bounds[:, :-1].ravel().astype(f32), bounds[:, 1:].ravel().astype(f32)
        columns["t_line_lo"] = line_bounds[:, :-1].ravel().astype(f32)
        columns["t_line_hi"] = line_bounds[:, 1:].ravel().astype(f32)
    return columns


def middle_pct(lay: geometry.Layout, shares: Shares) -> np.ndarray:
    """(n,) the probability in % of the piece under each segment's centre line (NaN on the
    rest): what a label there is read against."""
    bounds = geometry.share_bounds(lay.poly_xs, lay.poly_ys, shares.fractions)
    piece = np.clip((bounds[:, 1:] <= 0.5).sum(axis=1), 0, shares.k)
    pct = shares.pct[np.arange(lay.n), piece].astype(np.float64)
    return np.where(piece == shares.k, np.nan, pct)


def mass_style(mapper: Any) -> dict[str, Any]:
    """The rings' fill and line (``color_pct`` by ``mapper``; NaN: grey): keyword arguments
    of ``figure.patches`` shared by ``coil_mass`` and the unwind's front layer."""
    fill = transform("color_pct", mapper)
    return {"fill_color": fill, "line_color": fill, "line_width": 0.3}


def outline_style() -> dict[str, Any]:
    """The white hairline round each segment, the selected one's in black: keyword arguments
    of ``figure.patches`` shared by ``coil_mass_outline`` and the unwind's front layer."""
    return {
        "fill_color": None,
        "line_color": "#ffffff",
        "line_width": 0.7,
        "selection_fill_color": None,
        "selection_line_color": "#000000",
        "selection_line_width": 2.0,
        "nonselection_fill_color": None,
        "nonselection_line_color": "#ffffff",
        "nonselection_line_alpha": 1.0,
    }


def draw_mass(p: Any, columns: dict[str, Any], mapper: Any) -> tuple[GlyphRenderer, ColumnDataSource]:
    """The rings (``coil_mass`` over ``coil_mass_source``), filled by ``mapper`` (NaN: grey),
    and the hovered piece's outline (``coil_mass_hover_outline``, on the overlay canvas:
    :func:`~coilvis.views.coil.figure.draw_hover_outline`, set by the rings' hover).

    Returns:
        ``(renderer, source)``.
    """
    source = ColumnDataSource(columns, name="coil_mass_source")
    rows = _style.rows_transform(name="coil_mass_rows")
    renderer = p.patches(
        xs=transform("xs", rows), ys=transform("ys", rows), source=source, name="coil_mass", **mass_style(mapper)
    )
    draw_hover_outline(p, source, name="coil_mass_hover_outline", line_width=1.5)
    return renderer, source


def draw_outline(p: Any, segments: ColumnDataSource) -> GlyphRenderer:
    """A hairline round each segment over its rings (``coil_mass_outline``, over the segment
    source, so it moves with the unwind): positions stay apart where neighbours' rings
    match, and the selected position (a tap, the unwind's playhead) is outlined in black."""
    rows = _style.rows_transform(name="coil_mass_outline_rows")
    return p.patches(
        xs=transform("xs", rows), ys=transform("ys", rows), source=segments, name="coil_mass_outline", **outline_style()
    )


def add_mass_hover(p: Any, renderer: GlyphRenderer, *, k: int, text_format: CustomJSHover) -> HoverTool:
    """The rings' hover (``coil_mass_hover``): the position and its token (the coil's own
    ``coil_text_format``), the share's token, probability and rank, and the next token."""
    vocab = text_format.args["vocab"]
    share_format = CustomJSHover(args={"vocab": vocab, "k": int(k)}, code=_MASS_JS, name="coil_mass_format")
    tooltip = _style.tooltip_html(
        [
            ("position", "@pos"),
            ("token", "@pos{token}"),
            ("share", "@vocab{share}"),
            ("probability", "@pct{pct}"),
            ("rank", "@rank{rank}"),
            ("next", "@pos{next}"),
        ]
    )
    outline = p.select_one({"name": "coil_mass_hover_outline_source"})
    hover = HoverTool(
        renderers=[renderer],
        tooltips=tooltip,
        formatters={"@pos": text_format, "@vocab": share_format, "@pct": share_format, "@rank": share_format},
        name="coil_mass_hover",
        point_policy="follow_mouse",
        callback=hover_callback(outline, renderer.data_source, None, name="coil_mass_hover_js"),
    )
    p.add_tools(hover)
    return hover


@dataclass
class MassParts:
    """What :func:`build_mass` adds to a coil.

    Attributes:
        renderer: the rings' renderer (``coil_mass``).
        source: ``coil_mass_source``.
        shares: the shares drawn.
        label_pct: (n,) the probability in % under each segment's centre line (NaN on
            the rest), for the labels' text colour.
    """

    renderer: GlyphRenderer
    source: ColumnDataSource
    shares: Shares
    label_pct: np.ndarray


def build_mass(
    p: Any,
    record: Record,
    lay: geometry.Layout,
    line: geometry.Layout | None,
    *,
    k: int,
    vocab_ids: np.ndarray,
    mapper: Any,
    segments: ColumnDataSource,
) -> MassParts:
    """Draw the rings of ``record`` on the coil's figure ``p`` (above what is drawn so far).

    Args:
        p: the coil's figure.
        record: the Record drawn.
        lay: the coil's layout.
        line: the layout the segments unwind to, or None without the unwind.
        k: shares per segment (the pieces are ``k + 1``), at most ``record.k``.
        vocab_ids: (v,) sorted token ids of ``coil_vocab_source``.
        mapper: the coil's colour mapper (the probability scale).
        segments: the coil's segment source (the outline is drawn over it).
    """
    shares = mass_shares(record, k=k)
    columns = mass_columns(record, lay, line, shares=shares, vocab_ids=vocab_ids)
    renderer, source = draw_mass(p, columns, mapper)
    draw_outline(p, segments)
    return MassParts(renderer=renderer, source=source, shares=shares, label_pct=middle_pct(lay, shares))
