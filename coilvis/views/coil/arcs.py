"""Attention arcs in the coil's figure: the renderers, their control points in the page, highlight, switch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    CustomJSTransform,
    GroupFilter,
    IndexFilter,
    IntersectionFilter,
    LinearInterpolator,
    Select,
)
from bokeh.transform import transform

from coilvis.geometry.arcs import js_constants
from coilvis.record import Record
from coilvis.views import _style
from coilvis.views.coil.attention import AttentionChoice
from coilvis.views.coil.links import select_links

__all__ = ["ArcParts", "arc_ends", "arc_style", "draw_arcs", "highlight_callback"]

_ARC_COLOR = "#2b2b2b"
_HIGHLIGHT_COLOR = "#e6550d"

# Hovering (cb_data.index) or tapping (segments.selected) a segment shows its own arcs.
_HIGHLIGHT_JS = """
const hit = (cb_data != null && cb_data.index != null) ? cb_data.index.indices : null
let pos = -1
if (hit != null && hit.length > 0) pos = hit[0]
else if (highlight.__coilvis_playing === true) pos = -1  // the unwind's front highlights the playhead's links
else if (segments.selected.indices.length > 0) pos = segments.selected.indices[0]
const q = links.data.query, k = links.data.key
// the same position's links again: nothing to do, unless the links or the filter were
// set anew since (a live explorer shows a new run in the views it has)
if (highlight.__coilvis_pos === pos && highlight.__coilvis_query === q && highlight.__coilvis_set === highlight.indices) return
const out = []
if (pos >= 0) for (let j = 0; j < q.length; j++) if (q[j] === pos || k[j] === pos) out.push(j)
highlight.indices = out
highlight.__coilvis_pos = pos
highlight.__coilvis_query = q
highlight.__coilvis_set = highlight.indices
"""

_SELECT_JS = "choice.group = Number(cb_obj.value)"

# Control point of each link's arc, as coilvis.geometry.bent_arcs places it on a coil:
# the anchors' midpoint pulled toward the centre by f = min(depth_max, depth_scale *
# |key - query| / n). Computed in the page from the link's ends, so a link costs its
# query, key, weight and choice only. xs: the query column. The constants come from
# coilvis.geometry.arcs.js_constants() as data (the transform's args), never as source.
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


@dataclass
class ArcParts:
    """What :func:`draw_arcs` adds to a coil figure.

    Attributes:
        links: ``coil_link_source`` (``query, key, weight, choice``).
        highlight: ``coil_highlight_filter``, the links of the hovered or tapped segment.
        select: ``coil_attention_select``, or None with one choice.
        n_dropped: links that passed the top-k and threshold but exceeded ``max_links``.
        choice: ``coil_choice_filter``, the choice shown.
        style: the arcs' width and opacity (:func:`arc_style`), for more arcs drawn alike
            (the unwind's front layer).
    """

    links: ColumnDataSource
    highlight: IndexFilter
    select: Select | None
    n_dropped: int
    choice: GroupFilter | None = None
    style: dict[str, Any] | None = None


def _control_transform(
    links: ColumnDataSource, anchors: ColumnDataSource, column: str, *, name: str | None
) -> CustomJSTransform:
    args = {
        "links": links,
        "anchors": anchors,
        "column": column,
        **js_constants(),
    }
    return CustomJSTransform(args=args, v_func=_CONTROL_JS, name=name)


def arc_ends(links: ColumnDataSource, segments: ColumnDataSource, *, prefix: str = "coil") -> dict[str, Any]:
    """The quadratic glyph's end and control points of ``links``, computed in the page from
    the anchors of ``segments`` (transforms named ``{prefix}_anchor_x``, ...)."""
    look_x = _style.lookup_transform(segments, "anchor_x", name=f"{prefix}_anchor_x")
    look_y = _style.lookup_transform(segments, "anchor_y", name=f"{prefix}_anchor_y")
    return {
        "x0": transform("query", look_x),
        "y0": transform("query", look_y),
        "x1": transform("key", look_x),
        "y1": transform("key", look_y),
        "cx": transform("query", _control_transform(links, segments, "anchor_x", name=f"{prefix}_control_x")),
        "cy": transform("query", _control_transform(links, segments, "anchor_y", name=f"{prefix}_control_y")),
    }


def arc_style(weights: np.ndarray, n_choices: int) -> dict[str, Any]:
    """Width and opacity of the arcs and of their highlight, growing with the weight; many
    arcs at once are fainter, so that the strongest still stand out.

    Args:
        weights: (n_links,) the weights of every link in the page.
        n_choices: the attention choices they belong to.

    Returns:
        ``{"arcs": {...}, "highlight": {...}}``: keyword arguments of ``figure.quadratic``.
    """
    w_max = max(float(weights.max()) if weights.size else 1.0, 1e-6)
    per_choice = weights.size / max(n_choices, 1)
    alpha_max = float(np.clip(2500.0 / max(per_choice, 1.0), 0.2, 0.8))

    def ramp(lo: float, hi: float) -> Any:
        return transform("weight", LinearInterpolator(x=[0.0, w_max], y=[lo, hi]))

    return {
        "arcs": {
            "line_color": _ARC_COLOR,
            "line_width": ramp(0.3, 3.5),
            "line_alpha": ramp(0.1 * alpha_max, alpha_max),
        },
        "highlight": {"line_color": _HIGHLIGHT_COLOR, "line_width": ramp(1.2, 5.0), "line_alpha": ramp(0.55, 1.0)},
    }


def _choice_select(choices: tuple[AttentionChoice, ...], choice_filter: GroupFilter, initial: int) -> Select:
    select = Select(
        title="Attention arcs",
        value=str(initial),
        options=[(str(c), choice.label) for c, choice in enumerate(choices)],
        width=280,
        name="coil_attention_select",
    )
    select.js_on_change("value", CustomJS(args={"choice": choice_filter}, code=_SELECT_JS))
    return select


def draw_arcs(
    figure: Any,
    record: Record,
    choices: tuple[AttentionChoice, ...],
    segments: ColumnDataSource,
    *,
    top_k: int | None,
    threshold: float,
    hide_sink: bool,
    max_links: int,
    initial: int = 0,
) -> ArcParts:
    """Draw the links of ``choices`` as arcs (``coil_arcs``) and their highlight
    (``coil_arc_highlight``); with more than one choice, a control switches between them,
    showing ``choices[initial]`` first.

    Width and opacity grow with the weight (:func:`arc_style`). Links are chosen by
    :func:`~coilvis.views.coil.links.select_links`. The highlight is on the figure's
    overlay layer (see :func:`~coilvis.views.coil.figure.draw_hover_outline`): hovering
    a segment repaints it, not every arc.
    """
    link_cols, n_dropped = select_links(
        record, choices, top_k=top_k, threshold=threshold, hide_sink=hide_sink, max_links=max_links
    )
    links = ColumnDataSource(link_cols, name="coil_link_source")
    style = arc_style(link_cols["weight"], len(choices))
    ends = arc_ends(links, segments)
    choice_filter = GroupFilter(column_name="choice", group=initial, name="coil_choice_filter")
    figure.quadratic(**ends, source=links, view=CDSView(filter=choice_filter), name="coil_arcs", **style["arcs"])
    highlight = IndexFilter(indices=[], name="coil_highlight_filter")
    figure.quadratic(
        **ends,
        source=links,
        view=CDSView(filter=IntersectionFilter(operands=[choice_filter, highlight])),
        level="overlay",
        name="coil_arc_highlight",
        **style["highlight"],
    )
    select = _choice_select(choices, choice_filter, initial) if len(choices) > 1 else None
    return ArcParts(
        links=links, highlight=highlight, select=select, n_dropped=int(n_dropped), choice=choice_filter, style=style
    )


def highlight_callback(arcs: ArcParts, segments: ColumnDataSource) -> CustomJS:
    """The script that shows the hovered (``cb_data``) or tapped segment's arcs."""
    return CustomJS(args={"links": arcs.links, "highlight": arcs.highlight, "segments": segments}, code=_HIGHLIGHT_JS)
