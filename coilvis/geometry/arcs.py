"""Arcs: quadratic Bézier curves between positions (attention links), the one definition of their shape.

A coil's arcs run between anchors (the middle of each segment's inner edge, by default)
and bend toward the coil's centre: the control point is the chord's midpoint ``M``
pulled toward the origin, ``C = (1 - f) M`` with ``f = min(depth_max, depth_scale *
|dst - src| / n)``. A page computes the same control points in JavaScript from its
anchors (which move during the unwind); it takes ``depth_scale`` and ``depth_max`` from
:func:`js_constants`, and the browser tests hold it to :func:`bent_arcs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.geometry._checks import check_positions, frozen
from coilvis.geometry.layout import Layout, check_layout

__all__ = [
    "Arcs",
    "ARC_DEPTH_SCALE",
    "ARC_DEPTH_MAX",
    "LINE_ARC_RISE",
    "js_constants",
    "arc_anchors",
    "bent_arcs",
    "arc_curves",
    "sample_arcs",
]

#: Depth of an arc per relative distance ``|dst - src| / n`` (the default of :func:`arc_curves`).
ARC_DEPTH_SCALE = 2.0
#: Cap of an arc's depth, in ``[0, 1)``: how far the control point goes toward the centre.
ARC_DEPTH_MAX = 0.9
#: Arcs on a line: the control point sits this many chord lengths off the line.
LINE_ARC_RISE = 0.5


def js_constants() -> dict[str, float]:
    """The arc shape's constants, for JavaScript that draws the same arcs as :func:`bent_arcs`.

    Returns:
        ``{"depth_scale": ARC_DEPTH_SCALE, "depth_max": ARC_DEPTH_MAX}`` (pass them to a
        Bokeh ``CustomJS``/``CustomJSTransform`` as ``args``).

    Example:
        >>> js_constants()
        {'depth_scale': 2.0, 'depth_max': 0.9}
    """
    return {"depth_scale": ARC_DEPTH_SCALE, "depth_max": ARC_DEPTH_MAX}


@dataclass(frozen=True, eq=False)
class Arcs:
    """Quadratic Bézier curves between positions, as Bokeh's ``quadratic`` glyph takes them.

    The curve is ``B(u) = (1-u)^2 P0 + 2 (1-u) u C + u^2 P1`` for ``u`` in ``[0, 1]``.

    Attributes:
        x0: (m,) start point, at position ``src``.
        y0: (m,)
        x1: (m,) end point, at position ``dst``.
        y1: (m,)
        cx: (m,) control point.
        cy: (m,)
    """

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    cx: np.ndarray
    cy: np.ndarray

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1", "cx", "cy"):
            object.__setattr__(self, name, frozen(getattr(self, name)))
        m = self.x0.shape
        for name in ("y0", "x1", "y1", "cx", "cy"):
            if getattr(self, name).shape != m or len(m) != 1:
                raise CoilvisValueError(f"Arcs.{name}: expected shape {m} like x0")

    @property
    def m(self) -> int:
        """Number of arcs."""
        return int(self.x0.shape[0])


def _check_depth(depth_scale: Any, depth_max: Any) -> tuple[float, float]:
    scale = check_float("depth_scale", depth_scale)
    if scale < 0.0:
        raise CoilvisValueError(f"depth_scale: expected >= 0, got {scale}")
    cap = check_float("depth_max", depth_max)
    if not 0.0 <= cap < 1.0:
        raise CoilvisValueError(f"depth_max: expected in [0, 1), got {cap}")
    return scale, cap


def _check_pairs(src: Any, dst: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    i = check_positions("src", src, n)
    j = check_positions("dst", dst, n)
    if i.shape != j.shape:
        raise CoilvisValueError(f"dst: expected the shape of src {i.shape}, got {j.shape}")
    return i, j


def arc_anchors(
    layout: Layout, *, anchor: Literal["centre", "inner"] = "inner"
) -> tuple[np.ndarray, np.ndarray]:
    """Where arcs attach to each segment.

    On a spiral or circle the inner anchor is the middle of the segment's inner edge
    (half a band width toward the centre); on a line it is half a band width off the
    line on the inner side (away from the outer edges, which face the group bands).

    Args:
        layout: a ``"spiral"``, ``"circle"`` or ``"line"`` layout.
        anchor: ``"inner"`` (the middle of the segment's inner edge) or ``"centre"``.

    Returns:
        ``(x, y)``: (n,) each.

    Example:
        >>> from coilvis.geometry import circle_layout
        >>> x, y = arc_anchors(circle_layout(4, r_ring=2.0))
        >>> float(np.hypot(x, y)[0].round(4))  # r_ring - band_width / 2
        1.6
    """
    layout = check_layout(layout)
    if layout.kind not in ("spiral", "circle", "line"):
        raise CoilvisValueError(
            f"layout: expected a 'spiral', 'circle' or 'line' layout, got kind={layout.kind!r}"
        )
    if anchor not in ("centre", "inner"):
        raise CoilvisValueError(f"anchor: expected 'centre' or 'inner', got {anchor!r}")
    half = 0.5 * layout.band_width
    if layout.kind == "line":
        inward = -1.0 if layout.clockwise else 1.0  # away from the outer edges
        return layout.x, layout.y + (inward * half if anchor == "inner" else 0.0)
    if anchor == "inner":
        shrink = (layout.r - half) / layout.r
        return layout.x * shrink, layout.y * shrink
    return layout.x, layout.y


def bent_arcs(
    anchor_x: Any,
    anchor_y: Any,
    src: Any,
    dst: Any,
    *,
    depth_scale: float = ARC_DEPTH_SCALE,
    depth_max: float = ARC_DEPTH_MAX,
) -> Arcs:
    """Arcs between anchors, each bent toward the origin (the coil's centre).

    Arc ``a`` runs from anchor ``src[a]`` to anchor ``dst[a]``; its control point is the
    chord's midpoint ``M`` pulled toward the origin, ``C = (1 - f) M`` with ``f =
    min(depth_max, depth_scale * |dst - src| / n)``, so pairs further apart bend deeper.
    This is the curve of a coil's arcs, and the one a page draws at every moment of the
    unwind (with the anchors of :func:`coilvis.geometry.unwind_anchors`).

    Args:
        anchor_x: (n,) where arcs attach to each position.
        anchor_y: (n,)
        src: (m,) start positions, integers in ``[0, n)``.
        dst: (m,) end positions.
        depth_scale: depth per relative distance ``|dst - src| / n``, >= 0.
        depth_max: cap of the depth, in ``[0, 1)``.

    Returns:
        ``Arcs`` with ``x0, y0, x1, y1, cx, cy`` of shape ``(m,)``.

    Example:
        >>> arcs = bent_arcs([1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, -1.0], [0], [1])
        >>> arcs.cx.tolist(), arcs.cy.tolist()  # f = 2 * 1/4: halfway to the centre
        ([0.25], [0.25])
    """
    ax = np.asarray(anchor_x, dtype=np.float64)
    ay = np.asarray(anchor_y, dtype=np.float64)
    if ax.ndim != 1 or ay.shape != ax.shape:
        raise CoilvisValueError(
            f"anchor_x, anchor_y: expected two arrays of shape (n,), got {ax.shape} and {ay.shape}"
        )
    scale, cap = _check_depth(depth_scale, depth_max)
    n = ax.shape[0]
    i, j = _check_pairs(src, dst, n)
    x0, y0, x1, y1 = ax[i], ay[i], ax[j], ay[j]
    mx, my = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    f = np.minimum(cap, scale * np.abs(j - i) / n)
    return Arcs(x0=x0, y0=y0, x1=x1, y1=y1, cx=(1.0 - f) * mx, cy=(1.0 - f) * my)


def arc_curves(
    layout: Layout,
    src: Any,
    dst: Any,
    *,
    anchor: Literal["centre", "inner"] = "inner",
    depth_scale: float = ARC_DEPTH_SCALE,
    depth_max: float = ARC_DEPTH_MAX,
) -> Arcs:
    """Curves inside the coil between pairs of positions (attention, for instance).

    On a spiral or circle each curve runs from ``src``'s anchor to ``dst``'s
    (:func:`arc_anchors`), bent toward the coil's centre as :func:`bent_arcs` says:
    ``C = (1 - f) M`` with ``f = min(depth_max, depth_scale * |dst - src| / n)``. The
    curve stays within the disc through its farther end point, inside the coil. On a
    line (:func:`coilvis.geometry.unwound_layout`) the control point sits ``0.5 * chord``
    off the line on the inner side (the side away from the outer edges), as in an arc
    diagram.

    Args:
        layout: a ``"spiral"``, ``"circle"`` or ``"line"`` layout.
        src: (m,) start positions, integers in ``[0, n)``.
        dst: (m,) end positions.
        anchor: ``"inner"`` (the middle of the segment's inner edge) or ``"centre"``.
        depth_scale: depth per relative distance ``|dst - src| / n``, >= 0.
        depth_max: cap of the depth, in ``[0, 1)``.

    Returns:
        ``Arcs`` with ``x0, y0, x1, y1, cx, cy`` of shape ``(m,)``.

    Example:
        >>> from coilvis.geometry import circle_layout
        >>> lay = circle_layout(4, r_ring=2.0)
        >>> arcs = arc_curves(lay, [0], [1], anchor="centre")
        >>> float(np.hypot(arcs.cx, arcs.cy)[0].round(4))  # 2 cos(pi/4) * (1 - 2 * 1/4)
        0.7071
    """
    ax, ay = arc_anchors(layout, anchor=anchor)
    if layout.kind != "line":
        return bent_arcs(ax, ay, src, dst, depth_scale=depth_scale, depth_max=depth_max)
    _check_depth(depth_scale, depth_max)
    i, j = _check_pairs(src, dst, layout.n)
    x0, y0, x1, y1 = ax[i], ay[i], ax[j], ay[j]
    inward = -1.0 if layout.clockwise else 1.0  # away from the outer edges
    chord = np.hypot(x1 - x0, y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) + inward * LINE_ARC_RISE * chord
    return Arcs(x0=x0, y0=y0, x1=x1, y1=y1, cx=cx, cy=cy)


def sample_arcs(arcs: Arcs, *, n_samples: int = 32) -> np.ndarray:
    """Points along each arc, evenly spaced in the curve parameter.

    Args:
        arcs: m arcs from :func:`arc_curves`.
        n_samples: points per arc, >= 2 (the first is the start, the last the end).

    Returns:
        (m, n_samples, 2) points ``(x, y)``.

    Example:
        >>> arcs = Arcs(x0=[0.0], y0=[0.0], x1=[2.0], y1=[0.0], cx=[1.0], cy=[2.0])
        >>> sample_arcs(arcs, n_samples=3).tolist()
        [[[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]]
    """
    if not isinstance(arcs, Arcs):
        raise CoilvisTypeError(f"arcs: expected Arcs, got {type(arcs).__name__}")
    k = check_int("n_samples", n_samples, minimum=2)
    u = np.linspace(0.0, 1.0, k)[None, :]
    a, b, c = (1.0 - u) ** 2, 2.0 * (1.0 - u) * u, u * u
    x = a * arcs.x0[:, None] + b * arcs.cx[:, None] + c * arcs.x1[:, None]
    y = a * arcs.y0[:, None] + b * arcs.cy[:, None] + c * arcs.y1[:, None]
    return np.stack([x, y], axis=-1)
