"""The unwind's front layer: the positions about to move, drawn on the figure's overlay canvas while the unwind plays.

Why
---
Bokeh paints a figure on two canvases: the main one (every renderer but those of level
``"overlay"``) and the overlay canvas above it, and repaints only the overlay canvas when
only overlay renderers changed. Repainting the main canvas means every segment and every
arc: at 4,096 positions with arcs, longer than a frame. So while the unwind plays, the
positions from the playhead to about a second ahead (the *front*) are drawn by the
renderers built here, on the overlay canvas, and hidden from the main ones; a frame moves
them and repaints the overlay only. When the playhead leaves the front, or stops, the
unwind *commits*: the main renderers take the moved positions back (one repaint of the
main canvas) and a new front is cut ahead. ``unwind.js`` does all this; this module builds
the models.

Drawn as before: the front's segments, rings and outlines are drawn as the main ones
(same styles, same selection: the playhead's position selected), and above them its arcs:
every link with an end in the front, and the arcs of other positions that pass over it
(at most ``MAX_CROSSING`` of them, the heaviest: thousands cross the inner turns of a long
coil). The overlays already above the arcs (the arcs' highlight, the labels, the start
and end marks, the playhead) stay above. What differs while it plays: lighter arcs beyond
that budget pass under the front instead of over it, and a segment on its way to the rows
is drawn above the coil's other segments (on a single canvas it passed under the outer
turns). Paused, stopped or scrubbed, the front is empty and the picture is the one
canvas' again.

Named models
------------
``coil_unwind_hidden`` (an ``IndexFilter``: the front's positions, hidden from
``coil_segments`` by an ``InversionFilter``);
``coil_unwind_front_source`` (``pos``, ``xs``, ``ys`` (lists of arrays) and the colour
column) under ``coil_unwind_front``; with rings, ``coil_unwind_hidden_pieces`` and
``coil_unwind_front_mass_source`` (``xs``, ``ys``, ``color_pct``) under
``coil_unwind_front_mass``, and ``coil_unwind_hidden_outline`` and
``coil_unwind_front_outline_source`` (``pos``, ``xs``, ``ys``: the front's positions and
one more on each side, whose hairlines the front's rings would otherwise cover) under
``coil_unwind_front_outline``; with arcs,
``coil_unwind_hidden_links`` (hidden from ``coil_arcs``), ``coil_unwind_front_link_source``
(``query, key, weight, choice``: the links of the front's positions, which move with them)
under ``coil_unwind_front_arcs`` and ``coil_unwind_front_arc_highlight`` (its filter
``coil_unwind_front_highlight_filter``: the playhead's links), and
``coil_unwind_front_crossing_source`` (the other arcs that cross the front, which do not
move until the next commit) under ``coil_unwind_front_crossing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.models import CDSView, ColumnDataSource, GlyphRenderer, IndexFilter, IntersectionFilter, InversionFilter

from coilvis.views import _style
from coilvis.views.coil.arcs import ArcParts, arc_ends
from coilvis.views.coil.figure import segment_style
from coilvis.views.coil.mass import mass_style, outline_style

__all__ = ["FrontParts", "build_front", "OVERLAY_ORDER", "order_overlays"]

#: Paint order of the coil's overlay renderers, bottom to top (the main canvas is below all).
OVERLAY_ORDER = (
    "coil_unwind_front",
    "coil_unwind_front_mass",
    "coil_unwind_front_outline",
    "coil_hover_outline",
    "coil_mass_hover_outline",
    "coil_unwind_front_crossing",
    "coil_unwind_front_arcs",
    "coil_unwind_front_arc_highlight",
    "coil_arc_highlight",
    "coil_labels",
    "coil_markers",
    "coil_unwind_playhead",
)


@dataclass
class FrontParts:
    """What :func:`build_front` adds to a coil figure (the sources start empty).

    Attributes:
        segments: ``coil_unwind_front_source``.
        hidden: ``coil_unwind_hidden``: the front's positions.
        color_column: the segment column the fill is mapped from.
        mass: ``coil_unwind_front_mass_source``, or None without rings.
        hidden_pieces: ``coil_unwind_hidden_pieces``, or None without rings.
        outline: ``coil_unwind_front_outline_source``, or None without rings.
        hidden_outline: ``coil_unwind_hidden_outline``, or None without rings.
        links: ``coil_unwind_front_link_source``, or None without arcs.
        crossing: ``coil_unwind_front_crossing_source``, or None without arcs.
        hidden_links: ``coil_unwind_hidden_links``, or None without arcs.
        highlight: ``coil_unwind_front_highlight_filter``, or None without arcs.
    """

    segments: ColumnDataSource
    hidden: IndexFilter
    color_column: str
    mass: ColumnDataSource | None = None
    hidden_pieces: IndexFilter | None = None
    outline: ColumnDataSource | None = None
    hidden_outline: IndexFilter | None = None
    links: ColumnDataSource | None = None
    crossing: ColumnDataSource | None = None
    hidden_links: IndexFilter | None = None
    highlight: IndexFilter | None = None


def _hide(renderer: GlyphRenderer, hidden: IndexFilter) -> None:
    """Leave ``hidden``'s rows out of ``renderer`` (on top of the filter it has)."""
    inverse = InversionFilter(operand=hidden)
    current = renderer.view.filter
    operands = [inverse] if current is None or type(current).__name__ == "AllIndices" else [current, inverse]
    renderer.view = CDSView(filter=operands[0] if len(operands) == 1 else IntersectionFilter(operands=operands))


def _front_arcs(p: Any, arcs: ArcParts, segments: ColumnDataSource, parts: FrontParts) -> None:
    """The front's arcs and their highlight, drawn as the main ones, and the main arcs'
    filter leaving the front's links out."""
    assert arcs.style is not None and arcs.choice is not None
    link_dtype = {name: arcs.links.data[name].dtype for name in ("query", "key", "weight", "choice")}

    def source(name: str) -> ColumnDataSource:
        return ColumnDataSource({column: np.zeros(0, dtype=dtype) for column, dtype in link_dtype.items()}, name=name)

    parts.links = source("coil_unwind_front_link_source")
    parts.crossing = source("coil_unwind_front_crossing_source")
    parts.hidden_links = IndexFilter(indices=[], name="coil_unwind_hidden_links")
    parts.highlight = IndexFilter(indices=[], name="coil_unwind_front_highlight_filter")
    _hide(p.select_one({"name": "coil_arcs"}), parts.hidden_links)
    crossing_ends = arc_ends(parts.crossing, segments, prefix="coil_unwind_front_crossing")
    p.quadratic(
        **crossing_ends, source=parts.crossing, view=CDSView(filter=arcs.choice), level="overlay",
        name="coil_unwind_front_crossing", **arcs.style["arcs"],
    )  # fmt: skip
    ends = arc_ends(parts.links, segments, prefix="coil_unwind_front")
    p.quadratic(
        **ends, source=parts.links, view=CDSView(filter=arcs.choice), level="overlay",
        name="coil_unwind_front_arcs", **arcs.style["arcs"],
    )  # fmt: skip
    p.quadratic(
        **ends, source=parts.links, view=CDSView(filter=IntersectionFilter(operands=[arcs.choice, parts.highlight])),
        level="overlay", name="coil_unwind_front_arc_highlight", **arcs.style["highlight"],
    )  # fmt: skip


def build_front(
    p: Any,
    segments: ColumnDataSource,
    *,
    scale: _style.ColorScale,
    mapper: Any,
    mass: ColumnDataSource | None = None,
    arcs: ArcParts | None = None,
) -> FrontParts:
    """Build the unwind's front layer on the coil figure ``p`` (drawn so far: the segments,
    the rings and their outline with ``mass``, the arcs with ``arcs``).

    Args:
        p: the coil's figure.
        segments: the coil's segment source.
        scale: the segments' colour scale.
        mapper: its colour mapper (``coil_color_mapper``; the rings' too).
        mass: the rings' source, or None.
        arcs: the arcs, or None.

    Returns:
        :class:`FrontParts`.
    """
    f32 = np.float32
    parts = FrontParts(
        segments=ColumnDataSource(
            {"pos": np.zeros(0, dtype=np.int32), "xs": [], "ys": [], scale.column: np.zeros(0, dtype=f32)},
            name="coil_unwind_front_source",
        ),
        hidden=IndexFilter(indices=[], name="coil_unwind_hidden"),
        color_column=scale.column,
    )
    _hide(p.select_one({"name": "coil_segments"}), parts.hidden)
    style = segment_style(scale, mapper, hover_glyph=False)
    p.patches(xs="xs", ys="ys", source=parts.segments, level="overlay", name="coil_unwind_front", **style)
    if mass is not None:
        parts.mass = ColumnDataSource(
            {"xs": [], "ys": [], "color_pct": np.zeros(0, dtype=f32)}, name="coil_unwind_front_mass_source"
        )
        parts.hidden_pieces = IndexFilter(indices=[], name="coil_unwind_hidden_pieces")
        _hide(p.select_one({"name": "coil_mass"}), parts.hidden_pieces)
        parts.outline = ColumnDataSource(
            {"pos": np.zeros(0, dtype=np.int32), "xs": [], "ys": []}, name="coil_unwind_front_outline_source"
        )
        parts.hidden_outline = IndexFilter(indices=[], name="coil_unwind_hidden_outline")
        _hide(p.select_one({"name": "coil_mass_outline"}), parts.hidden_outline)
        overlay = {"xs": "xs", "ys": "ys", "level": "overlay"}
        p.patches(source=parts.mass, name="coil_unwind_front_mass", **overlay, **mass_style(mapper))
        p.patches(source=parts.outline, name="coil_unwind_front_outline", **overlay, **outline_style())
    if arcs is not None:
        _front_arcs(p, arcs, segments, parts)
    return parts


def order_overlays(p: Any) -> None:
    """Put the figure's overlay renderers last, in :data:`OVERLAY_ORDER` (others keep their order)."""
    rank = {name: r for r, name in enumerate(OVERLAY_ORDER)}
    overlays = [r for r in p.renderers if getattr(r, "level", None) == "overlay"]
    others = [r for r in p.renderers if getattr(r, "level", None) != "overlay"]
    overlays.sort(key=lambda r: rank.get(r.name, len(rank)))
    p.renderers = others + overlays
