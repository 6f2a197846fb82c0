"""Coiled layouts: the Layout type, spiral and circle layouts, and the one circle-or-spiral choice.

Lengths are in data units scaled by ``pitch`` (see :mod:`coilvis.geometry`): segment
``i`` covers the arc-length interval ``[i * arc_len, (i + 1) * arc_len)`` of the centre
line, and its polygon is the centre line offset radially by ``+-band_width/2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.geometry._checks import check_positive, frozen
from coilvis.geometry.angles import TWO_PI, upright_angle_rad, wrap_angle_rad
from coilvis.geometry.spiral import spiral_phi_rad

__all__ = [
    "Layout",
    "CIRCLE_MAX_N",
    "check_layout",
    "layout_bounds",
    "coil_kind",
    "spiral_layout",
    "circle_layout",
    "coil_layout",
]

#: :func:`coil_layout` draws a closed circle up to this many positions, a spiral above.
CIRCLE_MAX_N = 32

_BAND_FRAC = 0.8  # default band_width / pitch
_MIN_FIRST_TURN_SEGMENTS = 8.0  # default spiral: the first turn holds at least this many
_MAX_STEP_RAD = math.pi / 60.0  # default n_arc: polygon edges turn at most 3 degrees a step
_MAX_N_ARC = 128


@dataclass(frozen=True, eq=False)
class Layout:
    """Where every position sits, and the polygon of its segment.

    Arrays are read-only float64. Lengths are in data units (see the module notes).

    Attributes:
        kind: ``"spiral"``, ``"circle"``, ``"line"`` (unwound) or ``"unwind"`` (on the way).
        x: (n,) centre of each segment.
        y: (n,) centre of each segment.
        angle_rad: (n,) direction of travel along the layout at the centre, in
            ``(-pi, pi]`` (counter-clockwise from the x axis).
        label_angle_rad: (n,) ``angle_rad`` turned by pi where text would read upside
            down; in ``(-pi/2, pi/2]``.
        r: (n,) distance of the centre from the origin (the coil's centre).
        theta_rad: (n,) polar angle of the centre. Unwrapped on a spiral or circle
            (``start_angle_rad`` plus or minus the angle turned), in ``(-pi, pi]`` otherwise.
        arc_len: length of each segment along the centre line.
        band_width: width of each segment across the centre line.
        pitch: radial distance between consecutive turns.
        poly_xs: (n, m) polygon of each segment, ``m = 2 * (n_arc + 1)``: outer edge from
            start to end, then inner edge from end to start (open; renderers close it).
        poly_ys: (n, m) as ``poly_xs``.
        bounds: ``(x_min, y_min, x_max, y_max)`` of all polygon vertices.
        clockwise: whether the coil turns clockwise (on a line: the coil it came from).
        n_arc: polygon edge steps per segment edge.
    """

    kind: str
    x: np.ndarray
    y: np.ndarray
    angle_rad: np.ndarray
    label_angle_rad: np.ndarray
    r: np.ndarray
    theta_rad: np.ndarray
    arc_len: float
    band_width: float
    pitch: float
    poly_xs: np.ndarray
    poly_ys: np.ndarray
    bounds: tuple[float, float, float, float]
    clockwise: bool
    n_arc: int

    def __post_init__(self) -> None:
        for name in ("x", "y", "angle_rad", "label_angle_rad", "r", "theta_rad"):
            object.__setattr__(self, name, frozen(getattr(self, name)))
        object.__setattr__(self, "poly_xs", frozen(self.poly_xs))
        object.__setattr__(self, "poly_ys", frozen(self.poly_ys))
        n = self.x.shape[0]
        for name in ("x", "y", "angle_rad", "label_angle_rad", "r", "theta_rad"):
            if getattr(self, name).shape != (n,):
                raise CoilvisValueError(
                    f"Layout.{name}: expected shape ({n},), got {getattr(self, name).shape}"
                )
        m = 2 * (self.n_arc + 1)
        for name in ("poly_xs", "poly_ys"):
            if getattr(self, name).shape != (n, m):
                raise CoilvisValueError(
                    f"Layout.{name}: expected shape ({n}, {m}), got {getattr(self, name).shape}"
                )

    @property
    def n(self) -> int:
        """Number of positions."""
        return int(self.x.shape[0])

    @property
    def n_vertices(self) -> int:
        """Vertices per segment polygon, ``m = 2 * (n_arc + 1)``."""
        return 2 * (self.n_arc + 1)

    @property
    def r_outer(self) -> float:
        """Largest distance of a polygon vertex from the origin."""
        return float(np.sqrt(np.max(self.poly_xs**2 + self.poly_ys**2)))

    def as_patches(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The polygons as Bokeh ``patches`` wants them.

        Returns:
            ``(xs, ys)``: two lists of n arrays of shape ``(m,)`` (views, no copy).
        """
        return list(self.poly_xs), list(self.poly_ys)


def check_layout(layout: Any, name: str = "layout") -> Layout:
    """``layout`` itself if it is a :class:`Layout` (else a type error naming ``name``)."""
    if not isinstance(layout, Layout):
        raise CoilvisTypeError(f"{name}: expected a Layout, got {type(layout).__name__}")
    return layout


def layout_bounds(poly_xs: np.ndarray, poly_ys: np.ndarray) -> tuple[float, float, float, float]:
    """``(x_min, y_min, x_max, y_max)`` of polygon vertices ``(n, m)``."""
    return (
        float(poly_xs.min()),
        float(poly_ys.min()),
        float(poly_xs.max()),
        float(poly_ys.max()),
    )


def _default_n_arc(span_rad: float) -> int:
    return int(min(_MAX_N_ARC, max(2, math.ceil(span_rad / _MAX_STEP_RAD - 1e-9))))


def _radial_polygons(
    edge_theta: np.ndarray,
    edge_r: np.ndarray,
    *,
    n: int,
    n_arc: int,
    band_width: float,
    closed: bool,
) -> tuple[np.ndarray, np.ndarray]:
    # edge samples along the centre line -> (n, 2 * (n_arc + 1)) polygons
    c, s = np.cos(edge_theta), np.sin(edge_theta)
    r_out = edge_r + 0.5 * band_width
    r_in = edge_r - 0.5 * band_width
    idx = np.arange(n)[:, None] * n_arc + np.arange(n_arc + 1)[None, :]
    if closed:
        idx = idx % edge_theta.shape[0]
    out_x, out_y = (r_out * c)[idx], (r_out * s)[idx]
    in_x, in_y = (r_in * c)[idx][:, ::-1], (r_in * s)[idx][:, ::-1]
    return np.concatenate([out_x, in_x], axis=1), np.concatenate([out_y, in_y], axis=1)


def _resolve_sizes(pitch: Any, arc_len: Any, band_width: Any) -> tuple[float, float | None, float]:
    pitch_f = check_positive("pitch", pitch)
    arc_len_f = None if arc_len is None else check_positive("arc_len", arc_len)
    band_f = (
        _BAND_FRAC * pitch_f if band_width is None else check_positive("band_width", band_width)
    )
    return pitch_f, arc_len_f, band_f


def _spiral_sizes(
    n: int, pitch: Any, arc_len: Any, band_width: Any, r_start: Any
) -> tuple[float, float, float, float]:
    # (pitch, arc_len, band_width, r_start) of a spiral, defaults filled in from n
    pitch_f, arc_len_f, band_f = _resolve_sizes(pitch, arc_len, band_width)
    if arc_len_f is None:
        arc_len_f = pitch_f
    if band_f >= pitch_f:
        raise CoilvisValueError(
            f"band_width: expected < pitch ({pitch_f}) so turns do not overlap, got {band_f}"
        )
    if r_start is None:
        first_turn = max(_MIN_FIRST_TURN_SEGMENTS, math.sqrt(n) / 2.0)
        r_start_f = max(pitch_f, arc_len_f * first_turn / TWO_PI)
    else:
        r_start_f = check_float("r_start", r_start)
    if r_start_f <= 0.5 * band_f:
        raise CoilvisValueError(
            f"r_start: expected > band_width / 2 ({0.5 * band_f}) so the inner edge does "
            f"not cross the centre, got {r_start_f}"
        )
    return pitch_f, arc_len_f, band_f, r_start_f


def _coiled(
    kind: Literal["spiral", "circle"],
    *,
    theta_centre: np.ndarray,
    r_centre: np.ndarray,
    tangent_rad: Any,
    theta_edge: np.ndarray,
    r_edge: np.ndarray,
    sizes: tuple[float, float, float],
    n_arc: int,
    clockwise: bool,
) -> Layout:
    # a coil from its centre line: centres at (theta_centre, r_centre), travel direction
    # turned tangent_rad from the polar angle, polygon edges sampled at (theta_edge, r_edge)
    arc_len, band_width, pitch = sizes
    sign = -1.0 if clockwise else 1.0
    angle = wrap_angle_rad(theta_centre + sign * tangent_rad)
    poly_xs, poly_ys = _radial_polygons(
        theta_edge,
        r_edge,
        n=theta_centre.shape[0],
        n_arc=n_arc,
        band_width=band_width,
        closed=kind == "circle",
    )
    return Layout(
        kind=kind,
        x=r_centre * np.cos(theta_centre),
        y=r_centre * np.sin(theta_centre),
        angle_rad=angle,
        label_angle_rad=upright_angle_rad(angle),
        r=r_centre,
        theta_rad=theta_centre,
        arc_len=arc_len,
        band_width=band_width,
        pitch=pitch,
        poly_xs=poly_xs,
        poly_ys=poly_ys,
        bounds=layout_bounds(poly_xs, poly_ys),
        clockwise=bool(clockwise),
        n_arc=n_arc,
    )


def spiral_layout(
    n: int,
    *,
    pitch: float = 1.0,
    arc_len: float | None = None,
    band_width: float | None = None,
    r_start: float | None = None,
    clockwise: bool = False,
    start_angle_rad: float = math.pi / 2,
    n_arc: int | None = None,
) -> Layout:
    """Lays n positions along an Archimedean spiral in segments of equal arc length.

    The centre line is ``r = r_start + pitch * phi / (2 pi)`` at polar angle
    ``start_angle_rad + phi`` (counter-clockwise) or ``start_angle_rad - phi``
    (clockwise). Segment ``i`` covers arc lengths ``[i, i + 1) * arc_len``; its centre is
    at ``(i + 0.5) * arc_len``.

    Defaults, chosen from n: ``arc_len = pitch`` and ``band_width = 0.8 * pitch``
    (segments roughly square, a gap of ``0.2 * pitch`` between turns); ``r_start =
    max(pitch, arc_len * max(8, sqrt(n) / 2) / (2 pi))``, so the first turn holds at least
    8 segments (and about ``sqrt(n) / 2`` for long sequences, leaving a hole for arcs);
    ``n_arc = ceil(arc_len / r_start / 3 degrees)``, between 2 and 128, so polygon edges
    turn at most 3 degrees per step even on the innermost (most curved) segment.

    Args:
        n: number of positions, >= 1.
        pitch: radial distance between consecutive turns, data units.
        arc_len: length of each segment along the centre line (default ``pitch``).
        band_width: width of each segment, ``< pitch`` (default ``0.8 * pitch``).
        r_start: radius where segment 0 starts, ``> band_width / 2``.
        clockwise: turn clockwise instead of counter-clockwise.
        start_angle_rad: polar angle where segment 0 starts (default: 12 o'clock).
        n_arc: steps along each polygon edge per segment, >= 1.

    Returns:
        A ``Layout`` of kind ``"spiral"``: ``x, y, r, theta_rad, angle_rad,
        label_angle_rad`` of shape ``(n,)``, ``poly_xs, poly_ys`` of shape
        ``(n, 2 * (n_arc + 1))``.

    Example:
        >>> lay = spiral_layout(100)
        >>> lay.n, lay.poly_xs.shape, lay.arc_len, lay.band_width
        (100, (100, 32), 1.0, 0.8)
        >>> bool(np.all(np.diff(lay.r) > 0))
        True
        >>> round(float(lay.r[-1]), 2)  # about sqrt(n / pi + r_start^2)
        5.77
    """
    n = check_int("n", n, minimum=1)
    pitch_f, arc_len_f, band_f, r_start_f = _spiral_sizes(n, pitch, arc_len, band_width, r_start)
    start = check_float("start_angle_rad", start_angle_rad)
    sign = -1.0 if clockwise else 1.0
    b = pitch_f / TWO_PI
    if n_arc is None:
        # an edge step of arc_len / n_arc turns by at most that over r_start
        n_arc_i = _default_n_arc(arc_len_f / r_start_f)
    else:
        n_arc_i = check_int("n_arc", n_arc, minimum=1)

    n_edge = n * n_arc_i + 1
    s_edge = np.arange(n_edge, dtype=np.float64) * (arc_len_f / n_arc_i)
    s_centre = (np.arange(n, dtype=np.float64) + 0.5) * arc_len_f
    phi = spiral_phi_rad(np.concatenate([s_edge, s_centre]), r_start=r_start_f, pitch=pitch_f)
    phi_edge, phi_centre = phi[:n_edge], phi[n_edge:]
    r_centre = r_start_f + b * phi_centre
    return _coiled(
        "spiral",
        theta_centre=start + sign * phi_centre,
        r_centre=r_centre,
        tangent_rad=np.arctan2(r_centre, b),
        theta_edge=start + sign * phi_edge,
        r_edge=r_start_f + b * phi_edge,
        sizes=(arc_len_f, band_f, pitch_f),
        n_arc=n_arc_i,
        clockwise=clockwise,
    )


def circle_layout(
    n: int,
    *,
    pitch: float = 1.0,
    arc_len: float | None = None,
    band_width: float | None = None,
    r_ring: float | None = None,
    clockwise: bool = False,
    start_angle_rad: float = math.pi / 2,
    n_arc: int | None = None,
) -> Layout:
    """Lays n positions on one closed ring of equal segments (for short sequences).

    The ring's radius is ``r_ring``, or the radius at which n segments of ``arc_len``
    close the circle, but at least ``pitch`` (so very short sequences still get a hole).
    Give ``arc_len`` or ``r_ring``, not both; the layout's ``arc_len`` is the actual
    ``2 pi r_ring / n``. The last segment's end edge is bit-for-bit the first segment's
    start edge.

    Args:
        n: number of positions, >= 1.
        pitch: the unit of the layout (as on a spiral; used by :func:`group_band`).
        arc_len: target length of each segment (default ``pitch``).
        band_width: width of the ring, ``< 2 * r_ring`` (default ``0.8 * pitch``).
        r_ring: radius of the ring's centre line.
        clockwise: go round clockwise instead of counter-clockwise.
        start_angle_rad: polar angle where segment 0 starts (default: 12 o'clock).
        n_arc: steps along each polygon edge per segment (default: at most 3 degrees
            a step, between 2 and 128).

    Returns:
        A ``Layout`` of kind ``"circle"``; arrays as in :func:`spiral_layout`.

    Example:
        >>> lay = circle_layout(12)
        >>> lay.n, lay.n_arc, lay.arc_len, round(float(lay.r[0]), 4)  # 12 / (2 pi)
        (12, 10, 1.0, 1.9099)
        >>> bool(lay.poly_xs[-1, lay.n_arc] == lay.poly_xs[0, 0])  # closes
        True
    """
    n = check_int("n", n, minimum=1)
    pitch_f, arc_len_f, band_f = _resolve_sizes(pitch, arc_len, band_width)
    span = TWO_PI / n
    if r_ring is not None:
        if arc_len_f is not None:
            raise CoilvisValueError("arc_len, r_ring: expected at most one of them, got both")
        radius = check_positive("r_ring", r_ring)
        seg_len = radius * span
    else:
        seg_len = pitch_f if arc_len_f is None else arc_len_f
        radius = n * seg_len / TWO_PI
        if radius < pitch_f:  # too short to close a ring of at least one pitch
            radius = pitch_f
            seg_len = radius * span
    if 0.5 * band_f >= radius:
        raise CoilvisValueError(
            f"band_width: expected < 2 * r_ring ({2 * radius}) so the inner edge does not "
            f"cross the centre, got {band_f}"
        )
    start = check_float("start_angle_rad", start_angle_rad)
    sign = -1.0 if clockwise else 1.0
    n_arc_i = _default_n_arc(span) if n_arc is None else check_int("n_arc", n_arc, minimum=1)

    n_edge = n * n_arc_i  # the edge after the last is the first again
    return _coiled(
        "circle",
        theta_centre=start + sign * ((np.arange(n, dtype=np.float64) + 0.5) * span),
        r_centre=np.full(n, radius),
        tangent_rad=math.pi / 2,
        theta_edge=start + sign * (np.arange(n_edge, dtype=np.float64) * (span / n_arc_i)),
        r_edge=np.full(n_edge, radius),
        sizes=(seg_len, band_f, pitch_f),
        n_arc=n_arc_i,
        clockwise=clockwise,
    )


def coil_kind(n: int, kind: str = "auto") -> Literal["spiral", "circle"]:
    """The one circle-or-spiral choice: ``"auto"`` is a circle up to :data:`CIRCLE_MAX_N`
    positions, a spiral above; ``"spiral"`` and ``"circle"`` are themselves.

    Args:
        n: number of positions, >= 1.
        kind: ``"auto"``, ``"spiral"`` or ``"circle"``.

    Returns:
        ``"spiral"`` or ``"circle"``.

    Example:
        >>> coil_kind(32), coil_kind(33), coil_kind(5, "spiral")
        ('circle', 'spiral', 'spiral')
    """
    n = check_int("n", n, minimum=1)
    if kind not in ("auto", "spiral", "circle"):
        raise CoilvisValueError(f"kind: expected 'auto', 'spiral' or 'circle', got {kind!r}")
    if kind == "circle" or (kind == "auto" and n <= CIRCLE_MAX_N):
        return "circle"
    return "spiral"


def coil_layout(
    n: int,
    *,
    kind: Literal["auto", "spiral", "circle"] = "auto",
    pitch: float = 1.0,
    arc_len: float | None = None,
    band_width: float | None = None,
    clockwise: bool = False,
    start_angle_rad: float = math.pi / 2,
    n_arc: int | None = None,
) -> Layout:
    """The coil for n positions, of the kind :func:`coil_kind` picks: a circle up to
    :data:`CIRCLE_MAX_N` positions, else a spiral.

    Args:
        n: number of positions, >= 1.
        kind: ``"auto"``, ``"spiral"`` or ``"circle"``.
        pitch: radial distance between consecutive turns, data units.
        arc_len: length of each segment (default ``pitch``).
        band_width: width of each segment (default ``0.8 * pitch``).
        clockwise: turn clockwise instead of counter-clockwise.
        start_angle_rad: polar angle where segment 0 starts.
        n_arc: steps along each polygon edge per segment (default: the layout's own,
            at most 3 degrees a step).

    Returns:
        A ``Layout`` of kind ``"circle"`` or ``"spiral"``, arrays ``(n,)`` and ``(n, m)``.

    Example:
        >>> coil_layout(20).kind, coil_layout(33).kind, coil_layout(20, kind="spiral").kind
        ('circle', 'spiral', 'spiral')
    """
    make = circle_layout if coil_kind(n, kind) == "circle" else spiral_layout
    return make(
        n,
        pitch=pitch,
        arc_len=arc_len,
        band_width=band_width,
        clockwise=clockwise,
        start_angle_rad=start_angle_rad,
        n_arc=n_arc,
    )
