"""The continuation sunburst (``coilvis.sunburst``): the prompt in the centre, ring d the d-th next token, angles the probability mass, zoomable in the page.

Each wedge is a node of a :class:`~coilvis.continuations.Tree`: its angle is its path
probability (the whole circle is the prompt's mass), ring ``d`` holds the tokens ``d``
after the prompt, each wedge's children lie just outside it, and the grey wedges are
the "other" nodes (the mass outside a node's kept children). Colour is the conditional
probability, the path probability or the entropy of the distribution a token was chosen
from (``color=``). The hover shows the whole continuation, the token and its id, both
probabilities and the entropy.

Tapping a wedge zooms into it: it becomes the centre and its subtree fills the rings;
tapping the centre zooms out one level. The page does it alone (no server): a script
recomputes the wedges' angles and radii from numbers in the data source
(:data:`ZOOM_JS`, the same geometry as :func:`sunburst_geometry`) and filters the
wedges and labels shown (``sunburst_wedge_filter``, ``sunburst_label_filter``); the
focus is held in ``sunburst_state``. Models are named ``sunburst_*``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from bokeh.core.properties import value as bokeh_value
from bokeh.layouts import column
from bokeh.models import CDSView, ColumnDataSource, CustomJS, HoverTool, IndexFilter, Range1d, SaveTool, TapTool
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis.views import _style, _tree
from coilvis.views.output import View

__all__ = ["R_CENTRE", "R_OUTER", "ZOOM_JS", "sunburst", "sunburst_geometry"]

#: Radius of the centre (the focus: the prompt, or the node zoomed into), in data units.
R_CENTRE = 1.0
#: Radius of the outermost ring's edge; the rings share ``R_OUTER - R_CENTRE`` equally.
R_OUTER = 4.0
_MARGIN = 1.02

# Mirrors sunburst_geometry: the focus fills the centre, its subtree the rings.
ZOOM_JS = """
const f = focus, rings = Math.max(1, max_depth - d.depth[f])
const ring = (r_outer - r_centre) / rings
const w = Math.max(d.x1[f] - d.x0[f], 1e-300), a0 = d.x0[f]
const shown = [], labelled = []
for (let i = 0; i < n; i++) {
  let start = 0, end = 0, inner = 0, outer = 0
  if (i === f) { end = 2 * Math.PI; outer = r_centre }
  else if (d.depth[i] > d.depth[f] && inside(i, f)) {
    const rel = d.depth[i] - d.depth[f]
    inner = r_centre + (rel - 1) * ring
    outer = inner + ring
    start = Math.PI / 2 - 2 * Math.PI * (d.x1[i] - a0) / w
    end = Math.PI / 2 - 2 * Math.PI * (d.x0[i] - a0) / w
  }
  d.start_angle[i] = start; d.end_angle[i] = end; d.inner_radius[i] = inner; d.outer_radius[i] = outer
  d.line_alpha[i] = i === f ? 0 : 1
  if (end <= start) { d.label_x[i] = 0; d.label_y[i] = 0; d.label_angle[i] = 0; continue }
  shown.push(i)
  const text_px = d.label_chars[i] * char_px + 4
  let fits
  if (i === f) {
    d.label_x[i] = 0; d.label_y[i] = 0; d.label_angle[i] = 0
    fits = text_px <= 2 * r_centre * px
  } else {
    const mid = (start + end) / 2, r = (inner + outer) / 2
    d.label_x[i] = r * Math.cos(mid); d.label_y[i] = r * Math.sin(mid)
    d.label_angle[i] = Math.cos(mid) < 0 ? mid + Math.PI : mid
    fits = text_px <= ring * px && (end - start) * r * px >= font_px + 2
  }
  if (fits) labelled.push(i)
}
wedges.indices = shown
labels.indices = labelled
source.change.emit()
"""


def sunburst_geometry(columns: dict[str, Any], focus: int, *, max_depth: int, px_per_unit: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Where every wedge and label goes with ``focus`` in the centre (what the page's zoom computes).

    Args:
        columns: the node columns (:func:`coilvis.views._tree.node_columns`).
        focus: the node in the centre (0: the prompt).
        max_depth: the tree's deepest node's depth (the rings the root's view shows).
        px_per_unit: screen pixels per data unit.

    Returns:
        ``(geometry, shown, labelled)``: the float32 columns ``start_angle``,
        ``end_angle`` (radians, anticlockwise; the first child starts at the top and
        they run clockwise), ``inner_radius``, ``outer_radius``, ``label_x``,
        ``label_y``, ``label_angle``, ``line_alpha`` (0 at the focus: a whole disc
        has no edge to draw from its centre); the nodes drawn (the focus and its subtree, of
        non-zero angle); the nodes whose label fits.
    """
    depth, parent = columns["depth"], columns["parent"]
    x0, x1 = columns["x0"], columns["x1"]
    n = depth.shape[0]
    below = _subtree(parent, depth, focus)
    rings = max(1, max_depth - int(depth[focus]))
    ring = (R_OUTER - R_CENTRE) / rings
    width = max(float(x1[focus] - x0[focus]), 1e-300)
    rel = (depth - depth[focus]).astype(np.float64)
    geo = {name: np.zeros(n, dtype=np.float64) for name in ("start_angle", "end_angle", "inner_radius", "outer_radius", "label_x", "label_y", "label_angle")}
    sub = below & (np.arange(n) != focus)
    geo["inner_radius"][sub] = R_CENTRE + (rel[sub] - 1) * ring
    geo["outer_radius"][sub] = geo["inner_radius"][sub] + ring
    geo["start_angle"][sub] = math.pi / 2 - 2 * math.pi * (x1[sub] - x0[focus]) / width
    geo["end_angle"][sub] = math.pi / 2 - 2 * math.pi * (x0[sub] - x0[focus]) / width
    geo["end_angle"][focus], geo["outer_radius"][focus] = 2 * math.pi, R_CENTRE
    geo["line_alpha"] = np.where(np.arange(n) == focus, 0.0, 1.0)  # no seam across the centre
    shown = geo["end_angle"] > geo["start_angle"]
    mid = (geo["start_angle"] + geo["end_angle"]) / 2
    r_mid = (geo["inner_radius"] + geo["outer_radius"]) / 2
    geo["label_x"] = np.where(shown & sub, r_mid * np.cos(mid), 0.0)
    geo["label_y"] = np.where(shown & sub, r_mid * np.sin(mid), 0.0)
    geo["label_angle"] = np.where(shown & sub, np.where(np.cos(mid) < 0, mid + math.pi, mid), 0.0)
    text_px = columns["label_chars"] * _tree.CHAR_PX + 4
    fits = (text_px <= ring * px_per_unit) & ((geo["end_angle"] - geo["start_angle"]) * r_mid * px_per_unit >= _tree.FONT_PX + 2)
    fits[focus] = text_px[focus] <= 2 * R_CENTRE * px_per_unit
    return {k: v.astype(np.float32) for k, v in geo.items()}, np.flatnonzero(shown), np.flatnonzero(shown & fits)


def _subtree(parent: np.ndarray, depth: np.ndarray, focus: int) -> np.ndarray:
    """(n,) bool: ``focus`` and every node below it (parents come before their children)."""
    inside = np.zeros(parent.shape[0], dtype=bool)
    inside[focus] = True
    for level in range(int(depth[focus]) + 1, int(depth.max()) + 1):
        at = np.flatnonzero(depth == level)
        inside[at] = inside[parent[at]]
    return inside


def sunburst(
    tree: Any,
    *,
    color: str = "prob",
    palette: Any = None,
    size_px: int = 640,
    label_chars: int = 14,
    whitespace: str = "subtle",
    title: str | None = None,
) -> View:
    """Draw a continuation tree as a sunburst: where the model's probability mass goes after the prompt.

    Args:
        tree: a :class:`~coilvis.continuations.Tree` (:func:`coilvis.tree`, or ``Tree.load``).
        color: ``"prob"`` (each token's probability given the tokens before it),
            ``"path_prob"`` (the whole continuation's) or ``"entropy"`` (of the
            distribution each token was chosen from, in bits).
        palette: a palette name from :data:`coilvis.views._style.PALETTES` (``"_r"``
            reverses it) or a list of ``"#rrggbb"`` colours; default Viridis (bright =
            unlikely) for probabilities, Magma for entropy.
        size_px: width and height of the plot area in pixels (200 to 4000).
        label_chars: most characters of a token's label drawn on its wedge (labels
            that do not fit are left off; the hover always has the whole text).
        whitespace: leading and trailing spaces in the drawn labels: ``"markers"``
            (``␣``), ``"subtle"`` (a light ``·``) or ``"plain"``.
        title: the title (default: the model, depth and k).

    Returns:
        A :class:`~coilvis.views.output.View`: save it as HTML or PNG
        (``coilvis.save``), or show it in a notebook.

    Raises:
        CoilvisTypeError / CoilvisValueError: a bad argument (the message names it).
    """
    tree = _tree.check_tree(tree)
    scale, values = _tree.tree_scale(tree, color, palette)
    size_px = _tree.check_px("size_px", size_px, minimum=200, maximum=4000)
    label_chars = _tree.check_label_chars(label_chars)
    title = _tree.check_title(title)
    columns = _tree.node_columns(tree, values, label_chars=label_chars, whitespace=whitespace)
    px_per_unit = size_px / (2 * _MARGIN * R_OUTER)
    max_depth = int(tree.depth.max())
    geometry, shown, labelled = sunburst_geometry(columns, 0, max_depth=max_depth, px_per_unit=px_per_unit)
    columns.update(geometry, text_color=_tree.text_colors(values, scale))
    source = ColumnDataSource(columns, name="sunburst_source")
    p = _figure(tree, size_px, title)
    mapper = _style.color_mapper(scale, name="sunburst_color_mapper")
    mapper.nan_color = _tree.OTHER_COLOR
    wedge_filter = IndexFilter(indices=shown.tolist(), name="sunburst_wedge_filter")
    label_filter = IndexFilter(indices=labelled.tolist(), name="sunburst_label_filter")
    wedges = _draw(p, source, mapper, wedge_filter, label_filter)
    state = ColumnDataSource({"focus": [0]}, name="sunburst_state")
    zoom = CustomJS(
        args={"source": source, "state": state, "wedges": wedge_filter, "labels": label_filter, "max_depth": max_depth,
              "r_centre": R_CENTRE, "r_outer": R_OUTER, "px": px_per_unit, "char_px": _tree.CHAR_PX, "font_px": _tree.FONT_PX},
        code=_tree.ZOOM_JS_HELPERS + ZOOM_JS,
        name="sunburst_zoom",
    )
    source.selected.js_on_change("indices", zoom)
    hover = HoverTool(renderers=[wedges], tooltips=_tree.tree_tooltip(), formatters=dict(_tree.TOOLTIP_FORMATTERS),
                      name="sunburst_hover", point_policy="follow_mouse")
    p.add_tools(hover, TapTool(renderers=[wedges], name="sunburst_tap"))
    notes = [
        "Centre: the prompt. Ring d: the d-th token after it. Angle: the probability of the whole continuation.",
        scale.legend + " Grey: the mass of every token not shown.",
        "Tap a wedge to zoom into it; tap the centre to zoom out.",
    ]
    _tree.add_notes(p, mapper, scale, width=size_px, notes=notes, prefix="sunburst")
    return View(column(p, name="sunburst_layout"), title=title or "coilvis sunburst", kind="sunburst")


def _figure(tree: Any, size_px: int, title: str | None) -> Any:
    """The empty square figure (``sunburst_figure``), no axes, a title."""
    extent = _MARGIN * R_OUTER
    p = figure(
        frame_width=size_px,
        frame_height=size_px,
        x_range=Range1d(-extent, extent, name="sunburst_x_range"),
        y_range=Range1d(-extent, extent, name="sunburst_y_range"),
        tools=[SaveTool()],
        toolbar_location="above",
        name="sunburst_figure",
        min_border=12,
        outline_line_color=None,
        x_axis_type=None,
        y_axis_type=None,
    )
    p.title.text = _style.plain_text(title if title is not None else _tree.default_title(tree))
    p.title.text_font_size = "14px"
    return p


def _draw(p: Any, source: ColumnDataSource, mapper: Any, wedge_filter: IndexFilter, label_filter: IndexFilter) -> Any:
    """The wedges (``sunburst_wedges``) and their labels (``sunburst_labels``)."""
    fill = transform("value", mapper)
    wedges = p.annular_wedge(
        x=0, y=0, inner_radius="inner_radius", outer_radius="outer_radius", start_angle="start_angle", end_angle="end_angle",
        source=source, view=CDSView(filter=wedge_filter), fill_color=fill, fill_alpha="fill_alpha", line_color="#ffffff",
        line_alpha="line_alpha", line_width=1.0, hover_fill_color=fill, hover_fill_alpha="fill_alpha", hover_line_color="#000000", hover_line_width=2.0,
        selection_fill_color=fill, selection_fill_alpha="fill_alpha", nonselection_fill_color=fill, nonselection_fill_alpha="fill_alpha",
        nonselection_line_color="#ffffff", name="sunburst_wedges",
    )
    p.text(
        x="label_x", y="label_y", text="label", angle="label_angle", text_align="center", text_baseline="middle",
        text_color="text_color", text_font=bokeh_value(_style.FONT), text_font_size=f"{_tree.FONT_PX}px",
        source=source, view=CDSView(filter=label_filter), name="sunburst_labels",
    )
    return wedges
