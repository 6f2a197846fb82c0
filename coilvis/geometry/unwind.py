"""Unwinding: the coil moved toward its line, segment by segment (the reference of the page's unwind.js).

:func:`coilvis.geometry.unwound_layout` (or :func:`~coilvis.geometry.wrapped_line_layout`)
lays the coil's segments straight. The animation moves each position from the coil to
the line with a weight ``w_i`` in ``[0, 1]`` (:func:`unwind_weights`)::

    w_i   = smoothstep(clip((progress - i) / front_width, 0, 1)),  smoothstep(u) = u*u*(3 - 2*u)
    c     = c_coil + w_i * (c_line - c_coil)                 # centre, linear
    a     = a_coil + w_i * wrap(a_line - a_coil)             # angle: shortest turn, (-pi, pi]
    local = R(-a_coil) (v_coil - c_coil)  (and likewise on the line, with a_line = 0)
    v     = c + R(a) (local_coil + w_i * (local_line - local_coil))   # each polygon vertex
    label = l_coil + w_i * wrap(l_line - l_coil)             # text angle, stays in (-pi/2, pi/2]

``R(a)`` is the rotation by ``a``. Each segment travels as a (slowly reshaped) rigid body,
so no segment collapses on the way, as a point-wise blend would make the segments whose
tangent points against the line's direction do; the points where arcs attach
(:func:`unwind_anchors`) travel with their segment in the same way, and a label turns
from its upright angle on the coil to the line's without ever reading upside down.
A segment's shares (:mod:`coilvis.geometry.shares`: the coil's mass rings) are cut from
the moving segment at radial parameters blended by the same weight
(:func:`unwind_shares`), so they tile it at every moment.
Weights 0 and 1 return the coiled and the unwound values exactly. With ``front_width =
1`` positions below ``floor(progress)`` are on the line, positions at or above
``ceil(progress)`` are still coiled, and the one in between is on its way: the coil
unwinds token by token.

The page's animation (``coilvis/views/unwind.js``) runs this blend in the browser with
``front_width = 1``; a headless-Chromium test (``tests/test_unwind.py``) holds its
segments, labels, anchors and arcs to these functions at intermediate playhead times.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from coilvis.errors import CoilvisValueError, check_float, check_int
from coilvis.geometry.angles import rotate, upright_angle_rad, wrap_angle_rad
from coilvis.geometry.arcs import arc_anchors
from coilvis.geometry.layout import Layout, check_layout, layout_bounds
from coilvis.geometry.line import unwound_layout
from coilvis.geometry.shares import radial_pieces

__all__ = ["unwind_weights", "unwind_positions", "unwind_anchors", "unwind_shares", "interpolate"]


def unwind_weights(n: int, progress: float, *, front_width: float = 1.0) -> np.ndarray:
    """How far each position has moved from the coil to the line.

    ``w_i = smoothstep(clip((progress - i) / front_width, 0, 1))`` with
    ``smoothstep(u) = u^2 (3 - 2u)``: 0 on the coil, 1 on the line.

    Args:
        n: number of positions, >= 1.
        progress: position of the unwinding front, in ``[0, n - 1 + front_width]``.
        front_width: positions on their way at once, >= 1 (1: token by token).

    Returns:
        (n,) weights in ``[0, 1]``, non-increasing in i and non-decreasing in ``progress``.

    Example:
        >>> unwind_weights(5, 2.5).tolist()
        [1.0, 1.0, 0.5, 0.0, 0.0]
    """
    n = check_int("n", n, minimum=1)
    width = _check_front_width(front_width)
    p = check_float("progress", progress)
    p_max = n - 1 + width
    if not 0.0 <= p <= p_max:
        raise CoilvisValueError(f"progress: expected in [0, {p_max}], got {p}")
    u = np.clip((p - np.arange(n, dtype=np.float64)) / width, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _check_front_width(front_width: Any) -> float:
    width = check_float("front_width", front_width)
    if width < 1.0:
        raise CoilvisValueError(f"front_width: expected >= 1, got {width}")
    return width


def _check_pair(layout: Any, unwound: Any) -> tuple[Layout, Layout]:
    # the coil and the line it unwinds to (default: unwound_layout(layout))
    layout = check_layout(layout)
    unwound = check_layout(unwound_layout(layout) if unwound is None else unwound, "unwound")
    if layout.n != unwound.n or layout.n_arc != unwound.n_arc:
        raise CoilvisValueError(
            f"unwound: expected n={layout.n} and n_arc={layout.n_arc} like the coil, "
            f"got n={unwound.n} and n_arc={unwound.n_arc}"
        )
    return layout, unwound


def _carry(
    coiled: Layout,
    unwound: Layout,
    w: np.ndarray,
    coil_points: tuple[np.ndarray, np.ndarray],
    line_points: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Points attached to each segment, (n, k), carried with it at weights w (n,).

    Each point is taken into its segment's own frame on the coil and on the line, blended
    there, and put back at the blended centre and angle. Exact at weights 0 and 1.
    """
    cx = coiled.x + w * (unwound.x - coiled.x)
    cy = coiled.y + w * (unwound.y - coiled.y)
    angle = coiled.angle_rad + w * wrap_angle_rad(unwound.angle_rad - coiled.angle_rad)

    def local(lay: Layout, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rotate(px - lay.x[:, None], py - lay.y[:, None], -lay.angle_rad[:, None])

    lcx, lcy = local(coiled, *coil_points)
    lux, luy = local(unwound, *line_points)
    wc = w[:, None]
    vx, vy = rotate(lcx + wc * (lux - lcx), lcy + wc * (luy - lcy), angle[:, None])
    vx, vy = vx + cx[:, None], vy + cy[:, None]
    at_coil, at_line = (w == 0.0)[:, None], (w == 1.0)[:, None]
    vx = np.where(at_coil, coil_points[0], np.where(at_line, line_points[0], vx))
    vy = np.where(at_coil, coil_points[1], np.where(at_line, line_points[1], vy))
    return vx, vy


def _blend(coiled: Layout, unwound: Layout, w: np.ndarray) -> Layout:
    """The layout at weights w (n,): centres, angles, polygons and labels blended."""
    at_coil, at_line = w == 0.0, w == 1.0

    def pick(coil_value: np.ndarray, line_value: np.ndarray, value: np.ndarray) -> np.ndarray:
        return np.where(at_coil, coil_value, np.where(at_line, line_value, value))

    x = pick(coiled.x, unwound.x, coiled.x + w * (unwound.x - coiled.x))
    y = pick(coiled.y, unwound.y, coiled.y + w * (unwound.y - coiled.y))
    turn = wrap_angle_rad(unwound.angle_rad - coiled.angle_rad)
    angle = pick(coiled.angle_rad, unwound.angle_rad, wrap_angle_rad(coiled.angle_rad + w * turn))
    label_turn = wrap_angle_rad(unwound.label_angle_rad - coiled.label_angle_rad)
    label = pick(
        coiled.label_angle_rad,
        unwound.label_angle_rad,
        upright_angle_rad(coiled.label_angle_rad + w * label_turn),
    )
    poly_xs, poly_ys = _carry(
        coiled, unwound, w, (coiled.poly_xs, coiled.poly_ys), (unwound.poly_xs, unwound.poly_ys)
    )
    return Layout(
        kind="unwind",
        x=x,
        y=y,
        angle_rad=angle,
        label_angle_rad=label,
        r=np.hypot(x, y),
        theta_rad=np.arctan2(y, x),
        arc_len=coiled.arc_len,
        band_width=coiled.band_width,
        pitch=coiled.pitch,
        poly_xs=poly_xs,
        poly_ys=poly_ys,
        bounds=layout_bounds(poly_xs, poly_ys),
        clockwise=coiled.clockwise,
        n_arc=coiled.n_arc,
    )


def unwind_positions(
    layout: Layout,
    progress: float,
    *,
    unwound: Layout | None = None,
    front_width: float = 1.0,
) -> Layout:
    """The coil part-unwound: positions below ``progress`` on the line, the rest coiled.

    Each position moves with the weight of :func:`unwind_weights` by the blend given in
    the module notes (centre linear, angle by the shortest turn, polygon as a rigid body
    reshaped on the way, label angle by the shortest turn between upright angles).

    Args:
        layout: the coiled ``Layout`` (``"spiral"`` or ``"circle"``).
        progress: unwinding front, in ``[0, n - 1 + front_width]`` (``[0, n]`` by default).
        unwound: the line to unwind to (default ``unwound_layout(layout)``); same n and
            ``n_arc`` as ``layout``.
        front_width: positions on their way at once, >= 1.

    Returns:
        A ``Layout`` of kind ``"unwind"``, arrays ``(n,)`` and ``(n, m)``.

    Example:
        >>> from coilvis.geometry import spiral_layout
        >>> coil = spiral_layout(6)
        >>> mid = unwind_positions(coil, 2.5)
        >>> line = unwound_layout(coil)
        >>> [bool(mid.x[i] == line.x[i]) for i in range(6)]
        [True, True, False, False, False, False]
        >>> [bool(mid.x[i] == coil.x[i]) for i in range(6)]
        [False, False, False, True, True, True]
    """
    layout, unwound = _check_pair(layout, unwound)
    w = unwind_weights(layout.n, progress, front_width=front_width)
    return _blend(layout, unwound, w)


def unwind_anchors(
    layout: Layout,
    progress: float,
    *,
    unwound: Layout | None = None,
    front_width: float = 1.0,
    anchor: Literal["centre", "inner"] = "inner",
) -> tuple[np.ndarray, np.ndarray]:
    """Where arcs attach to each segment while the coil unwinds.

    Each anchor (:func:`coilvis.geometry.arc_anchors`) travels with its segment as a
    rigid body, from the coil's anchor to the line's. With these anchors
    :func:`coilvis.geometry.bent_arcs` gives the arcs a page draws at that moment.

    Args:
        layout: the coiled ``Layout``.
        progress: unwinding front, in ``[0, n - 1 + front_width]``.
        unwound: the line to unwind to (default ``unwound_layout(layout)``).
        front_width: positions on their way at once, >= 1.
        anchor: ``"inner"`` or ``"centre"``, as in :func:`coilvis.geometry.arc_anchors`.

    Returns:
        ``(x, y)``: (n,) each; the coil's anchors at ``progress = 0``, the line's at the end.

    Example:
        >>> from coilvis.geometry import arc_anchors, circle_layout
        >>> coil = circle_layout(8)
        >>> x, y = unwind_anchors(coil, 8.0)
        >>> bool(np.array_equal(x, arc_anchors(unwound_layout(coil))[0]))
        True
    """
    layout, unwound = _check_pair(layout, unwound)
    w = unwind_weights(layout.n, progress, front_width=front_width)
    coil_x, coil_y = arc_anchors(layout, anchor=anchor)
    line_x, line_y = arc_anchors(unwound, anchor=anchor)
    x, y = _carry(
        layout, unwound, w, (coil_x[:, None], coil_y[:, None]), (line_x[:, None], line_y[:, None])
    )
    return x[:, 0], y[:, 0]


def unwind_shares(
    layout: Layout,
    progress: float,
    coil_bounds: Any,
    line_bounds: Any,
    *,
    unwound: Layout | None = None,
    front_width: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's shares (:mod:`coilvis.geometry.shares`) while the coil unwinds.

    The pieces are cut from the moving segment itself (:func:`unwind_positions`), at radial
    parameters blended linearly by its weight, ``t = t_coil + w * (t_line - t_coil)``: they
    tile it at every moment, and are the coil's pieces at weight 0 and the line's at 1.

    Args:
        layout: the coiled ``Layout``.
        progress: unwinding front, in ``[0, n - 1 + front_width]``.
        coil_bounds: (n, p + 1) the shares' radial parameters on the coil
            (:func:`~coilvis.geometry.share_bounds` of its polygons).
        line_bounds: (n, p + 1) the same on the line.
        unwound: the line to unwind to (default ``unwound_layout(layout)``).
        front_width: positions on their way at once, >= 1.

    Returns:
        ``(xs, ys)``: (n, p, m) each, as :func:`~coilvis.geometry.radial_pieces` gives them.

    Example:
        >>> from coilvis.geometry import circle_layout, share_bounds, split_radially
        >>> coil = circle_layout(6)
        >>> line = unwound_layout(coil)
        >>> frac = [[0.8, 0.2]] * 6
        >>> t0, t1 = share_bounds(coil.poly_xs, coil.poly_ys, frac), share_bounds(line.poly_xs, line.poly_ys, frac)
        >>> xs, _ = unwind_shares(coil, 6.0, t0, t1)
        >>> bool(np.array_equal(xs, split_radially(line.poly_xs, line.poly_ys, frac)[0]))
        True
    """
    layout, unwound = _check_pair(layout, unwound)
    t0, t1 = np.asarray(coil_bounds, dtype=np.float64), np.asarray(line_bounds, dtype=np.float64)
    if t0.ndim != 2 or t0.shape[0] != layout.n:
        raise CoilvisValueError(f"coil_bounds: expected shape ({layout.n}, p + 1), got {t0.shape}")
    if t1.shape != t0.shape:
        raise CoilvisValueError(f"line_bounds: expected the shape of coil_bounds {t0.shape}, got {t1.shape}")
    w = unwind_weights(layout.n, progress, front_width=front_width)
    mid = _blend(layout, unwound, w)
    wc = w[:, None]
    t = np.where(wc == 0.0, t0, np.where(wc == 1.0, t1, t0 + wc * (t1 - t0)))
    return radial_pieces(mid.poly_xs, mid.poly_ys, t)

def interpolate(
    layout: Layout,
    t: float,
    *,
    unwound: Layout | None = None,
    front_width: float = 1.0,
) -> Layout:
    """The coil a fraction t of the way to the line: ``t = 0`` coiled, ``t = 1`` unwound.

    Same as ``unwind_positions(layout, t * (n - 1 + front_width))``. With
    ``front_width = 1`` the coil unwinds token by token; a wider front moves more
    positions at once (``front_width`` much larger than n approaches one global blend with
    weight ``smoothstep(t)``).

    Args:
        layout: the coiled ``Layout``.
        t: fraction of the animation, in ``[0, 1]``.
        unwound: the line to unwind to (default ``unwound_layout(layout)``).
        front_width: positions on their way at once, >= 1.

    Returns:
        A ``Layout`` of kind ``"unwind"``: at ``t = 0`` the coil's values, at ``t = 1``
        the line's, exactly.

    Example:
        >>> from coilvis.geometry import circle_layout
        >>> coil = circle_layout(8)
        >>> bool(np.array_equal(interpolate(coil, 0.0).poly_xs, coil.poly_xs))
        True
        >>> bool(np.array_equal(interpolate(coil, 1.0).x, unwound_layout(coil).x))
        True
    """
    layout = check_layout(layout)
    t_f = check_float("t", t)
    if not 0.0 <= t_f <= 1.0:
        raise CoilvisValueError(f"t: expected in [0, 1], got {t_f}")
    width = _check_front_width(front_width)
    p_max = layout.n - 1 + width
    return unwind_positions(layout, min(t_f * p_max, p_max), unwound=unwound, front_width=width)
