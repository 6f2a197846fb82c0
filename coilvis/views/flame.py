"""The continuation flame graph (``coilvis.flame``): the prompt on top, row d the d-th next token, widths the probability mass, zoomable in the page.

The same :class:`~coilvis.continuations.Tree` as the sunburst, laid out as an icicle:
the root (the prompt) spans the top row, each node's children share out its width in
the row below, most likely first and the grey "other" node last, so a token's width is
its path probability. Colour, hover and labels are the sunburst's (see
:mod:`coilvis.views._tree`).

Tapping a node zooms into it: its subtree fills the width and its ancestors stay on top
as full-width bars; tapping an ancestor (the prompt's row, at the top, zooms out all
the way) or the node zoomed into (one level) zooms out. The page does it alone: a script
recomputes the bars from numbers in the data source (:data:`ZOOM_JS`, the same geometry
as :func:`flame_geometry`) and filters the bars and labels shown
(``flame_bar_filter``, ``flame_label_filter``); the focus is held in ``flame_state``.
Models are named ``flame_*``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.core.properties import value as bokeh_value
from bokeh.layouts import column
from bokeh.models import CDSView, ColumnDataSource, CustomJS, HoverTool, IndexFilter, Range1d, SaveTool, TapTool
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis.views import _style, _tree
from coilvis.views.output import View

__all__ = ["LABEL_PAD_PX", "ZOOM_JS", "flame", "flame_geometry"]

#: Space between a bar's left edge and its label, in pixels.
LABEL_PAD_PX = 4

# Mirrors flame_geometry: the focus's subtree spans the width, its ancestors full bars above.
ZOOM_JS = """
const f = focus, w = Math.max(d.x1[f] - d.x0[f], 1e-300), a0 = d.x0[f]
const shown = [], labelled = []
for (let i = 0; i < n; i++) {
  let left = 0, right = 0
  if (inside(i, f)) { left = (d.x0[i] - a0) / w; right = (d.x1[i] - a0) / w }
  else if (d.depth[i] < d.depth[f] && inside(f, i)) right = 1
  d.left[i] = left; d.right[i] = right
  d.label_x[i] = left + pad_px / width_px
  if (right <= left) continue
  shown.push(i)
  if ((right - left) * width_px >= d.label_chars[i] * char_px + 2 * pad_px) labelled.push(i)
}
bars.indices = shown
labels.indices = labelled
source.change.emit()
"""


def flame_geometry(columns: dict[str, Any], focus: int, *, width_px: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Where every bar and label goes with ``focus`` zoomed into (what the page's zoom computes).

    Args:
        columns: the node columns (:func:`coilvis.views._tree.node_columns`).
        focus: the node whose subtree spans the width (0: the whole tree).
        width_px: the plot area's width in pixels (the x axis runs from 0 to 1).

    Returns:
        ``(geometry, shown, labelled)``: the float32 columns ``left``, ``right`` and
        ``label_x`` (fractions of the width); the nodes drawn (the focus's subtree of
        non-zero width, and its ancestors); the nodes whose label fits.
    """
    depth, parent, x0, x1 = columns["depth"], columns["parent"], columns["x0"], columns["x1"]
    n = depth.shape[0]
    below = np.zeros(n, dtype=bool)
    below[focus] = True
    for level in range(int(depth[focus]) + 1, int(depth.max()) + 1):
        at = np.flatnonzero(depth == level)
        below[at] = below[parent[at]]
    above = np.zeros(n, dtype=bool)
    i = int(parent[focus]) if focus else -1
    while i >= 0:
        above[i] = True
        i = int(parent[i])
    width = max(float(x1[focus] - x0[focus]), 1e-300)
    left = np.where(below, (x0 - x0[focus]) / width, 0.0)
    right = np.where(below, (x1 - x0[focus]) / width, np.where(above, 1.0, 0.0))
    shown = right > left
    fits = (right - left) * width_px >= columns["label_chars"] * _tree.CHAR_PX + 2 * LABEL_PAD_PX
    geo = {"left": left, "right": right, "label_x": left + LABEL_PAD_PX / width_px}
    return {k: v.astype(np.float32) for k, v in geo.items()}, np.flatnonzero(shown), np.flatnonzero(shown & fits)


def flame(
    tree: Any,
    *,
    color: str = "prob",
    palette: Any = None,
    width_px: int = 900,
    row_px: int = 28,
    label_chars: int = 24,
    whitespace: str = "subtle",
    title: str | None = None,
) -> View:
    """Draw a continuation tree as a flame graph (an icicle): the prompt on top, each token's width its probability.

    Args:
        tree: a :class:`~coilvis.continuations.Tree` (:func:`coilvis.tree`, or ``Tree.load``).
        color: ``"prob"``, ``"path_prob"`` or ``"entropy"`` (see :func:`coilvis.sunburst`).
        palette: a palette name or a list of ``"#rrggbb"`` colours (see :func:`coilvis.sunburst`).
        width_px: width of the plot area in pixels (200 to 8000).
        row_px: height of one row (one token) in pixels (12 to 200).
        label_chars: most characters of a token's label drawn on its bar.
        whitespace: leading and trailing spaces in the drawn labels: ``"markers"``,
            ``"subtle"`` or ``"plain"``.
        title: the title (default: the model, depth and k).

    Returns:
        A :class:`~coilvis.views.output.View`.

    Raises:
        CoilvisTypeError / CoilvisValueError: a bad argument (the message names it).
    """
    tree = _tree.check_tree(tree)
    scale, values = _tree.tree_scale(tree, color, palette)
    width_px = _tree.check_px("width_px", width_px, minimum=200, maximum=8000)
    row_px = _tree.check_px("row_px", row_px, minimum=12, maximum=200)
    label_chars = _tree.check_label_chars(label_chars)
    title = _tree.check_title(title)
    columns = _tree.node_columns(tree, values, label_chars=label_chars, whitespace=whitespace)
    geometry, shown, labelled = flame_geometry(columns, 0, width_px=width_px)
    rows = int(tree.depth.max()) + 1
    columns.update(geometry, top=(-columns["depth"]).astype(np.float32), label_y=(-columns["depth"] - 0.5).astype(np.float32),
                   text_color=_tree.text_colors(values, scale))
    columns["bottom"] = columns["top"] - 1
    source = ColumnDataSource(columns, name="flame_source")
    p = figure(
        frame_width=width_px, frame_height=rows * row_px, x_range=Range1d(0, 1, name="flame_x_range"),
        y_range=Range1d(-rows, 0, name="flame_y_range"), tools=[SaveTool()], toolbar_location="above", name="flame_figure",
        min_border=12, outline_line_color=None, x_axis_type=None, y_axis_type=None,
    )
    p.title.text = _style.plain_text(title if title is not None else _tree.default_title(tree))
    p.title.text_font_size = "14px"
    mapper = _style.color_mapper(scale, name="flame_color_mapper")
    mapper.nan_color = _tree.OTHER_COLOR
    bar_filter = IndexFilter(indices=shown.tolist(), name="flame_bar_filter")
    label_filter = IndexFilter(indices=labelled.tolist(), name="flame_label_filter")
    bars = _draw(p, source, mapper, bar_filter, label_filter)
    state = ColumnDataSource({"focus": [0]}, name="flame_state")
    zoom = CustomJS(
        args={"source": source, "state": state, "bars": bar_filter, "labels": label_filter, "width_px": width_px,
              "pad_px": LABEL_PAD_PX, "char_px": _tree.CHAR_PX},
        code=_tree.ZOOM_JS_HELPERS + ZOOM_JS,
        name="flame_zoom",
    )
    source.selected.js_on_change("indices", zoom)
    hover = HoverTool(renderers=[bars], tooltips=_tree.tree_tooltip(), formatters=dict(_tree.TOOLTIP_FORMATTERS),
                      name="flame_hover", point_policy="follow_mouse")
    p.add_tools(hover, TapTool(renderers=[bars], name="flame_tap"))
    notes = [
        "Top row: the prompt. Row d: the d-th token after it. Width: the probability of the whole continuation.",
        scale.legend + " Grey: the mass of every token not shown.",
        "Tap a bar to zoom into it; tap a bar above it (the prompt: all the way) or the bar zoomed into to zoom out.",
    ]
    _tree.add_notes(p, mapper, scale, width=width_px, notes=notes, prefix="flame", bar="below")
    return View(column(p, name="flame_layout"), title=title or "coilvis flame graph", kind="flame")


def _draw(p: Any, source: ColumnDataSource, mapper: Any, bar_filter: IndexFilter, label_filter: IndexFilter) -> Any:
    """The bars (``flame_bars``) and their labels (``flame_labels``)."""
    fill = transform("value", mapper)
    bars = p.quad(
        left="left", right="right", top="top", bottom="bottom", source=source, view=CDSView(filter=bar_filter),
        fill_color=fill, fill_alpha="fill_alpha", line_color="#ffffff", line_width=1.0, hover_fill_color=fill,
        hover_fill_alpha="fill_alpha", hover_line_color="#000000", hover_line_width=2.0, selection_fill_color=fill,
        selection_fill_alpha="fill_alpha", nonselection_fill_color=fill, nonselection_fill_alpha="fill_alpha",
        nonselection_line_color="#ffffff", name="flame_bars",
    )
    p.text(
        x="label_x", y="label_y", text="label", text_align="left", text_baseline="middle", text_color="text_color",
        text_font=bokeh_value(_style.FONT), text_font_size=f"{_tree.FONT_PX}px", source=source,
        view=CDSView(filter=label_filter), name="flame_labels",
    )
    return bars
