"""Where each token position sits: spiral and circle layouts, segment polygons, arcs, unwinding.

Pure numpy. Every function is vectorised over positions (``n`` up to 10,000 and beyond)
and over arcs (``m`` up to 50,000 and beyond).

Scale
-----
All lengths are in *data units*, scaled by ``pitch``: the radial distance between two
consecutive turns of the spiral (``pitch = 2*pi*b`` for the spiral ``r = r_start + b*phi``).
With the defaults (``pitch=1``) a segment is ``arc_len = 1`` long along the spiral and
``band_width = 0.8`` wide, so segments are roughly square, and ``n`` positions cover an
area of about ``n * arc_len * pitch``: the spiral of ``n`` positions has an outer radius of
about ``sqrt(n * arc_len * pitch / pi + r_start^2)`` (10,000 positions: about 57). Coils
are centred on the origin.
``Layout.bounds`` is the bounding box of the segment polygons, to which a renderer fits
its plot range (a group band adds at most ``pitch - band_width`` outside it).

Segments
--------
Segment ``i`` covers the arc-length interval ``[i * arc_len, (i + 1) * arc_len)`` of the
centre line, so all segments have the same length along the spiral (equal angles would
crowd the centre). Its polygon is the centre line offset radially by ``+-band_width/2``:
the outer edge from the segment's start to its end (``n_arc + 1`` vertices), then the
inner edge back (``n_arc + 1`` vertices), so ``poly_xs`` and ``poly_ys`` are ``(n, m)``
arrays with ``m = 2 * (n_arc + 1)``, open (a renderer closes them). Radial offsets keep
consecutive turns exactly ``pitch - band_width`` apart at every angle, and segment ``i``'s
end edge is bit-for-bit segment ``i + 1``'s start edge (column ``n_arc`` and ``n_arc + 1``
of row ``i`` equal columns ``0`` and ``m - 1`` of row ``i + 1``). Bokeh's ``patches``
takes ``list(layout.poly_xs)`` (see :meth:`Layout.as_patches`).

Unwinding
---------
:func:`unwound_layout` lays the same segments on one straight line (segment ``i``
centred at ``x_start + (i + 0.5) * arc_len``, so the line is ``n * arc_len`` long). The
animation moves each position from the coil to the line with a weight ``w_i`` in
``[0, 1]`` (:func:`unwind_weights`)::

    w_i   = smoothstep(clip((progress - i) / front_width, 0, 1)),  smoothstep(u) = u*u*(3 - 2*u)
    c     = c_coil + w_i * (c_line - c_coil)                 # centre, linear
    a     = a_coil + w_i * wrap(a_line - a_coil)             # angle: shortest turn, (-pi, pi]
    local = R(-a_coil) (v_coil - c_coil)  (and likewise on the line, with a_line = 0)
    v     = c + R(a) (local_coil + w_i * (local_line - local_coil))   # each polygon vertex

``R(a)`` is the rotation by ``a``. Each segment travels as a (slowly reshaped) rigid body,
so no segment collapses on the way, as a point-wise blend would make the segments whose
tangent points against the line's direction do. Weights 0 and 1 return the coiled and
the unwound values exactly. With ``front_width = 1`` positions below ``floor(progress)``
are on the line, positions at or above ``ceil(progress)`` are still coiled, and the one
in between is on its way: the coil unwinds token by token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int

__all__ = [
    "Layout",
    "Arcs",
    "CIRCLE_MAX_N",
    "spiral_layout",
    "circle_layout",
    "coil_layout",
    "unwound_layout",
    "wrapped_line_layout",
    "unwind_weights",
    "unwind_positions",
    "interpolate",
    "group_band",
    "arc_curves",
    "sample_arcs",
    "spiral_arc_len",
    "spiral_phi_rad",
    "upright_angle_rad",
    "wrap_angle_rad",
]

#: :func:`coil_layout` draws a closed circle up to this many positions, a spiral above.
CIRCLE_MAX_N = 32

_TWO_PI = 2.0 * math.pi
_BAND_FRAC = 0.8  # default band_width / pitch
_MIN_FIRST_TURN_SEGMENTS = 8.0  # default spiral: the first turn holds at least this many
_MAX_STEP_RAD = math.pi / 60.0  # default n_arc: polygon edges turn at most 3 degrees a step
_MAX_N_ARC = 128
_LINE_ARC_RISE = 0.5  # arcs on a line: control point this many chord lengths off the line

# ---------------------------------------------------------------------------------------
# argument checks


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise CoilvisTypeError(f"{name}: expected a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise CoilvisValueError(f"{name}: expected a finite number, got {out}")
    return out


def _check_positive(name: str, value: Any) -> float:
    out = _check_real(name, value)
    if out <= 0.0:
        raise CoilvisValueError(f"{name}: expected > 0, got {out}")
    return out


def _check_positions(name: str, value: Any, n: int, *, end: bool = False) -> np.ndarray:
    # integer positions in [0, n), or in [1, n] for ends of half-open ranges
    low, high = (1, n + 1) if end else (0, n)
    arr = np.asarray(value)
    if arr.size == 0 and arr.ndim == 1:
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise CoilvisTypeError(f"{name}: expected integer positions, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise CoilvisValueError(f"{name}: expected shape (m,), got {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < low or arr.max() >= high):
        bad = int(arr[(arr < low) | (arr >= high)][0])
        raise CoilvisValueError(f"{name}: expected values in [{low}, {high}), got {bad}")
    return arr


def _frozen(arr: Any) -> np.ndarray:
    # a private read-only copy: never freezes (or aliases) the caller's array
    out = np.array(arr, dtype=np.float64, order="C", copy=True)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------------------
# angles


def wrap_angle_rad(angle_rad: Any) -> np.ndarray:
    """Wraps angles to ``(-pi, pi]``.

    Args:
        angle_rad: (...) angles in radians.

    Returns:
        (...) the same angles in ``(-pi, pi]``.

    Example:
        >>> wrap_angle_rad([0.0, 3 * np.pi / 2, -np.pi]).round(4).tolist()
        [0.0, -1.5708, 3.1416]
    """
    a = np.asarray(angle_rad, dtype=np.float64)
    return math.pi - np.mod(math.pi - a, _TWO_PI)


def upright_angle_rad(angle_rad: Any) -> np.ndarray:
    """Turns text angles by pi where the text would read upside down.

    Args:
        angle_rad: (...) direction of the text baseline, in radians.

    Returns:
        (...) the same baseline direction in ``(-pi/2, pi/2]``: the angle itself, or the
        angle plus or minus pi. Text drawn at it reads left to right, never upside down.

    Example:
        >>> upright_angle_rad([0.25, np.pi, -np.pi / 2, 3.0]).round(4).tolist()
        [0.25, 0.0, 1.5708, -0.1416]
    """
    a = np.asarray(angle_rad, dtype=np.float64)
    return math.pi / 2 - np.mod(math.pi / 2 - a, math.pi)


def _rotate(x: np.ndarray, y: np.ndarray, angle_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return c * x - s * y, s * x + c * y


# ---------------------------------------------------------------------------------------
# the Archimedean spiral r = r_start + b * phi, b = pitch / (2 pi)


def _arc_primitive(u: np.ndarray) -> np.ndarray:
    # s(u) / b for the spiral r = b * u: integral of sqrt(1 + u^2) du
    return 0.5 * (u * np.sqrt(1.0 + u * u) + np.arcsinh(u))


def _arc_between(u0: float, phi: np.ndarray) -> np.ndarray:
    # F(u0 + phi) - F(u0) without cancellation (r_start much larger than the pitch):
    # u1 a1 - u0 a0 = phi (a1 + u0 (u1 + u0) / (a1 + a0)), a = sqrt(1 + u^2), and
    # asinh(u1) - asinh(u0) = asinh(u1 a0 - u0 a1) = asinh(phi (u1 + u0) / (u1 a0 + u0 a1))
    u1 = u0 + phi
    a0, a1 = math.sqrt(1.0 + u0 * u0), np.sqrt(1.0 + u1 * u1)
    algebraic = phi * (a1 + u0 * (u1 + u0) / (a1 + a0))
    den = u1 * a0 + u0 * a1
    ratio = np.divide(phi * (u1 + u0), den, out=np.zeros_like(phi), where=den > 0.0)
    return 0.5 * (algebraic + np.arcsinh(ratio))


def _spiral_args(r_start: Any, pitch: Any) -> tuple[float, float]:
    pitch_f = _check_positive("pitch", pitch)
    r_start_f = _check_real("r_start", r_start)
    if r_start_f < 0.0:
        raise CoilvisValueError(f"r_start: expected >= 0, got {r_start_f}")
    return r_start_f, pitch_f / _TWO_PI


def spiral_arc_len(phi_rad: Any, *, r_start: float, pitch: float) -> np.ndarray:
    """Arc length of the spiral ``r = r_start + pitch * phi / (2 pi)`` from ``phi = 0``.

    Closed form: with ``b = pitch / (2 pi)`` and ``u = r / b``, the arc length is
    ``b/2 * [u sqrt(1 + u^2) + asinh(u)]`` between ``u = r_start / b`` and ``u``.

    Args:
        phi_rad: (...) angle turned since the start of the spiral, in radians, >= 0.
        r_start: radius at ``phi = 0``, >= 0.
        pitch: radial distance between consecutive turns, > 0.

    Returns:
        (...) arc length in data units.

    Example:
        >>> float(spiral_arc_len(2 * np.pi, r_start=10.0, pitch=1e-9).round(6))  # a circle
        62.831853
    """
    r0, b = _spiral_args(r_start, pitch)
    phi = np.asarray(phi_rad, dtype=np.float64)
    return b * _arc_between(r0 / b, phi)


def spiral_phi_rad(arc_len: Any, *, r_start: float, pitch: float) -> np.ndarray:
    """Inverse of :func:`spiral_arc_len`: the angle at which the spiral is ``arc_len`` long.

    Solved by Newton's method on the closed-form arc length (written without
    cancellation, so a start radius many pitches out keeps full precision), vectorised.
    Both starting guesses (the circle at ``r_start`` and ``u = sqrt(2 F)``) are never left
    of the root, so the iteration on the convex arc length converges monotonically, in a
    handful of steps, to machine precision.

    Args:
        arc_len: (...) arc length from the start of the spiral, data units, >= 0.
        r_start: radius at ``phi = 0``, >= 0.
        pitch: radial distance between consecutive turns, > 0.

    Returns:
        (...) angle in radians turned since the start of the spiral.

    Example:
        >>> phi = spiral_phi_rad([0.0, 1.0, 100.0], r_start=1.0, pitch=1.0)
        >>> spiral_arc_len(phi, r_start=1.0, pitch=1.0).round(9).tolist()
        [0.0, 1.0, 100.0]
    """
    r0, b = _spiral_args(r_start, pitch)
    s = np.asarray(arc_len, dtype=np.float64)
    if s.size and not np.all(np.isfinite(s)):
        raise CoilvisValueError("arc_len: expected finite values")
    if s.size and s.min() < 0.0:
        raise CoilvisValueError(f"arc_len: expected >= 0, got {float(s.min())}")
    u0 = r0 / b
    target = s / b
    # both guesses are never left of the root: F(u) >= u^2 / 2, and the integrand
    # sqrt(1 + u^2) is at least its value at u0
    phi = np.minimum(
        target / math.sqrt(1.0 + u0 * u0),
        np.sqrt(2.0 * (_arc_primitive(np.float64(u0)) + target)) - u0,
    )
    phi = np.maximum(phi, 0.0)
    for _ in range(60):
        u = u0 + phi
        step = (_arc_between(u0, phi) - target) / np.sqrt(1.0 + u * u)
        phi = np.maximum(phi - step, 0.0)
        if not step.size or np.all(np.abs(step) <= 1e-12 * phi):
            break
    return phi


# ---------------------------------------------------------------------------------------
# the Layout


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
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "poly_xs", _frozen(self.poly_xs))
        object.__setattr__(self, "poly_ys", _frozen(self.poly_ys))
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


def _bounds(poly_xs: np.ndarray, poly_ys: np.ndarray) -> tuple[float, float, float, float]:
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
    pitch_f = _check_positive("pitch", pitch)
    arc_len_f = None if arc_len is None else _check_positive("arc_len", arc_len)
    band_f = (
        _BAND_FRAC * pitch_f if band_width is None else _check_positive("band_width", band_width)
    )
    return pitch_f, arc_len_f, band_f


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
    pitch_f, arc_len_f, band_f = _resolve_sizes(pitch, arc_len, band_width)
    if arc_len_f is None:
        arc_len_f = pitch_f
    if band_f >= pitch_f:
        raise CoilvisValueError(
            f"band_width: expected < pitch ({pitch_f}) so turns do not overlap, got {band_f}"
        )
    if r_start is None:
        first_turn = max(_MIN_FIRST_TURN_SEGMENTS, math.sqrt(n) / 2.0)
        r_start_f = max(pitch_f, arc_len_f * first_turn / _TWO_PI)
    else:
        r_start_f = _check_real("r_start", r_start)
    if r_start_f <= 0.5 * band_f:
        raise CoilvisValueError(
            f"r_start: expected > band_width / 2 ({0.5 * band_f}) so the inner edge does "
            f"not cross the centre, got {r_start_f}"
        )
    start = _check_real("start_angle_rad", start_angle_rad)
    sign = -1.0 if clockwise else 1.0
    b = pitch_f / _TWO_PI

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
    theta_centre = start + sign * phi_centre
    angle = wrap_angle_rad(theta_centre + sign * np.arctan2(r_centre, b))
    poly_xs, poly_ys = _radial_polygons(
        start + sign * phi_edge,
        r_start_f + b * phi_edge,
        n=n,
        n_arc=n_arc_i,
        band_width=band_f,
        closed=False,
    )
    return Layout(
        kind="spiral",
        x=r_centre * np.cos(theta_centre),
        y=r_centre * np.sin(theta_centre),
        angle_rad=angle,
        label_angle_rad=upright_angle_rad(angle),
        r=r_centre,
        theta_rad=theta_centre,
        arc_len=arc_len_f,
        band_width=band_f,
        pitch=pitch_f,
        poly_xs=poly_xs,
        poly_ys=poly_ys,
        bounds=_bounds(poly_xs, poly_ys),
        clockwise=bool(clockwise),
        n_arc=n_arc_i,
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
    span = _TWO_PI / n
    if r_ring is not None:
        if arc_len_f is not None:
            raise CoilvisValueError("arc_len, r_ring: expected at most one of them, got both")
        radius = _check_positive("r_ring", r_ring)
        seg_len = radius * span
    else:
        seg_len = pitch_f if arc_len_f is None else arc_len_f
        radius = n * seg_len / _TWO_PI
        if radius < pitch_f:  # too short to close a ring of at least one pitch
            radius = pitch_f
            seg_len = radius * span
    if 0.5 * band_f >= radius:
        raise CoilvisValueError(
            f"band_width: expected < 2 * r_ring ({2 * radius}) so the inner edge does not "
            f"cross the centre, got {band_f}"
        )
    start = _check_real("start_angle_rad", start_angle_rad)
    sign = -1.0 if clockwise else 1.0
    n_arc_i = _default_n_arc(span) if n_arc is None else check_int("n_arc", n_arc, minimum=1)

    n_edge = n * n_arc_i  # the edge after the last is the first again
    theta_edge = start + sign * (np.arange(n_edge, dtype=np.float64) * (span / n_arc_i))
    theta_centre = start + sign * ((np.arange(n, dtype=np.float64) + 0.5) * span)
    r_centre = np.full(n, radius)
    angle = wrap_angle_rad(theta_centre + sign * (math.pi / 2))
    poly_xs, poly_ys = _radial_polygons(
        theta_edge,
        np.full(n_edge, radius),
        n=n,
        n_arc=n_arc_i,
        band_width=band_f,
        closed=True,
    )
    return Layout(
        kind="circle",
        x=radius * np.cos(theta_centre),
        y=radius * np.sin(theta_centre),
        angle_rad=angle,
        label_angle_rad=upright_angle_rad(angle),
        r=r_centre,
        theta_rad=theta_centre,
        arc_len=seg_len,
        band_width=band_f,
        pitch=pitch_f,
        poly_xs=poly_xs,
        poly_ys=poly_ys,
        bounds=_bounds(poly_xs, poly_ys),
        clockwise=bool(clockwise),
        n_arc=n_arc_i,
    )


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
    """The coil for n positions: a circle up to :data:`CIRCLE_MAX_N` positions, else a spiral.

    Args:
        n: number of positions, >= 1.
        kind: ``"auto"``, ``"spiral"`` or ``"circle"``.
        pitch: radial distance between consecutive turns, data units.
        arc_len: length of each segment (default ``pitch``).
        band_width: width of each segment (default ``0.8 * pitch``).
        clockwise: turn clockwise instead of counter-clockwise.
        start_angle_rad: polar angle where segment 0 starts.
        n_arc: steps along each polygon edge per segment.

    Returns:
        A ``Layout`` of kind ``"circle"`` or ``"spiral"``, arrays ``(n,)`` and ``(n, m)``.

    Example:
        >>> coil_layout(20).kind, coil_layout(33).kind, coil_layout(20, kind="spiral").kind
        ('circle', 'spiral', 'spiral')
    """
    n = check_int("n", n, minimum=1)
    if kind not in ("auto", "spiral", "circle"):
        raise CoilvisValueError(f"kind: expected 'auto', 'spiral' or 'circle', got {kind!r}")
    options: dict[str, Any] = dict(
        pitch=pitch,
        arc_len=arc_len,
        band_width=band_width,
        clockwise=clockwise,
        start_angle_rad=start_angle_rad,
        n_arc=n_arc,
    )
    if kind == "circle" or (kind == "auto" and n <= CIRCLE_MAX_N):
        return circle_layout(n, **options)
    return spiral_layout(n, **options)


# ---------------------------------------------------------------------------------------
# unwinding


def _check_coil(layout: Any, name: str = "layout") -> Layout:
    if not isinstance(layout, Layout):
        raise CoilvisTypeError(f"{name}: expected a Layout, got {type(layout).__name__}")
    return layout


def unwound_layout(
    layout: Layout, *, x_start: float | None = None, y_centre: float | None = None
) -> Layout:
    """The coil's segments laid straight, left to right, as a timeline.

    Segment ``i`` covers ``x`` in ``x_start + [i, i + 1) * arc_len`` (centre at
    ``x_start + (i + 0.5) * arc_len``), so the line is ``n * arc_len`` long, with the
    coil's band width and polygon vertex count. The coil's outer side goes below the line
    for a counter-clockwise coil and above it for a clockwise one, so segments keep their
    orientation while unwinding (arcs then go on the other side, group bands on this one).

    Args:
        layout: a ``"spiral"`` or ``"circle"`` layout.
        x_start: x where segment 0 starts (default: the coil's left bound).
        y_centre: y of the centre line (default: one ``pitch`` below the coil's
            bottom bound).

    Returns:
        A ``Layout`` of kind ``"line"``: ``angle_rad = 0``, ``r`` and ``theta_rad`` the
        polar coordinates of the centres, polygons ``(n, 2 * (n_arc + 1))``.

    Example:
        >>> line = unwound_layout(spiral_layout(10), x_start=0.0, y_centre=0.0)
        >>> line.x[:3].tolist(), float(line.poly_xs[-1].max()), line.bounds[1::2]
        ([0.5, 1.5, 2.5], 10.0, (-0.4, 0.4))
    """
    layout = _check_coil(layout)
    if layout.kind not in ("spiral", "circle"):
        raise CoilvisValueError(
            f"layout: expected a 'spiral' or 'circle' layout, got kind={layout.kind!r}"
        )
    x0 = layout.bounds[0] if x_start is None else _check_real("x_start", x_start)
    yc = layout.bounds[1] - layout.pitch if y_centre is None else _check_real("y_centre", y_centre)
    n, n_arc, step = layout.n, layout.n_arc, layout.arc_len
    half = 0.5 * layout.band_width
    x_edge = x0 + np.arange(n * n_arc + 1, dtype=np.float64) * (step / n_arc)
    idx = np.arange(n)[:, None] * n_arc + np.arange(n_arc + 1)[None, :]
    out_sign = 1.0 if layout.clockwise else -1.0
    poly_xs = np.concatenate([x_edge[idx], x_edge[idx][:, ::-1]], axis=1)
    poly_ys = np.concatenate(
        [
            np.full((n, n_arc + 1), yc + out_sign * half),
            np.full((n, n_arc + 1), yc - out_sign * half),
        ],
        axis=1,
    )
    x = x0 + (np.arange(n, dtype=np.float64) + 0.5) * step
    return _line_layout(layout, x, np.full(n, yc), poly_xs, poly_ys)


def _line_layout(
    coil: Layout, x: np.ndarray, y: np.ndarray, poly_xs: np.ndarray, poly_ys: np.ndarray, *, scale: float = 1.0
) -> Layout:
    """A ``"line"`` layout of straight segments (angle 0) made from a coil, sizes times ``scale``."""
    zeros = np.zeros(x.shape[0])
    return Layout(
        kind="line",
        x=x,
        y=y,
        angle_rad=zeros,
        label_angle_rad=zeros,
        r=np.hypot(x, y),
        theta_rad=np.arctan2(y, x),
        arc_len=coil.arc_len * scale,
        band_width=coil.band_width * scale,
        pitch=coil.pitch * scale,
        poly_xs=poly_xs,
        poly_ys=poly_ys,
        bounds=_bounds(poly_xs, poly_ys),
        clockwise=coil.clockwise,
        n_arc=coil.n_arc,
    )


def wrapped_line_layout(
    layout: Layout,
    *,
    row_len: float | None = None,
    row_pitch: float | None = None,
    x_start: float | None = None,
    y_top: float | None = None,
    scale: float = 1.0,
) -> Layout:
    """The coil's segments laid straight in rows, like lines of text, below the coil.

    A long coil unwound into one line would be ``n * arc_len`` long (4,096 positions:
    4,096 units beside a coil ~75 units wide); wrapped into rows as wide as the coil, the
    timeline reads left to right, top to bottom, and fits under it.

    Args:
        layout: a ``"spiral"`` or ``"circle"`` layout.
        row_len: length of a row (default: the coil's width, at least one segment).
        row_pitch: distance between rows (default: ``1.5 * pitch``).
        x_start: x where each row starts (default: the coil's left bound).
        y_top: y of the first row's centre line (default: one ``pitch`` below the coil).
        scale: size of the segments on the rows relative to the coil's (0 < scale <= 1),
            so a long prompt's rows take less room; ``row_pitch`` scales with it.

    Returns:
        A ``Layout`` of kind ``"line"``: segment ``i`` sits in row ``i // per_row`` at
        column ``i % per_row`` (``per_row = floor(row_len / arc_len)``), ``angle_rad = 0``;
        its polygon is the one :func:`unwound_layout` gives, moved there.

    Example:
        >>> lay = spiral_layout(10)
        >>> w = wrapped_line_layout(lay, row_len=4.0, row_pitch=2.0, x_start=0.0, y_top=0.0)
        >>> w.x[:5].tolist(), w.y[[0, 3, 4, 9]].tolist()
        ([0.5, 1.5, 2.5, 3.5, 0.5], [0.0, 0.0, -2.0, -4.0])
    """
    straight = unwound_layout(layout, x_start=0.0, y_centre=0.0)  # checks the layout
    x_min, y_min, x_max, _ = layout.bounds
    length = (x_max - x_min) if row_len is None else _check_positive("row_len", row_len)
    scale = _check_positive("scale", scale)
    if scale > 1.0:
        raise CoilvisValueError(f"scale: expected 0 < scale <= 1, got {scale}")
    pitch_rows = 1.5 * layout.pitch * scale if row_pitch is None else _check_positive("row_pitch", row_pitch)
    x0 = x_min if x_start is None else _check_real("x_start", x_start)
    y0 = y_min - layout.pitch if y_top is None else _check_real("y_top", y_top)
    n, step = layout.n, layout.arc_len * scale
    per_row = max(1, int(math.floor(length / step + 1e-9)))
    row, col = np.divmod(np.arange(n), per_row)
    x = x0 + (col + 0.5) * step
    y = y0 - row * pitch_rows
    poly_xs = x[:, None] + scale * (straight.poly_xs - straight.x[:, None])
    poly_ys = y[:, None] + scale * (straight.poly_ys - straight.y[:, None])
    return _line_layout(layout, x, y, poly_xs, poly_ys, scale=scale)


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
    width = _check_real("front_width", front_width)
    if width < 1.0:
        raise CoilvisValueError(f"front_width: expected >= 1, got {width}")
    p = _check_real("progress", progress)
    p_max = n - 1 + width
    if not 0.0 <= p <= p_max:
        raise CoilvisValueError(f"progress: expected in [0, {p_max}], got {p}")
    u = np.clip((p - np.arange(n, dtype=np.float64)) / width, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _blend(coiled: Layout, unwound: Layout, w: np.ndarray) -> Layout:
    if coiled.n != unwound.n or coiled.n_arc != unwound.n_arc:
        raise CoilvisValueError(
            f"unwound: expected n={coiled.n} and n_arc={coiled.n_arc} like the coil, "
            f"got n={unwound.n} and n_arc={unwound.n_arc}"
        )
    cx = coiled.x + w * (unwound.x - coiled.x)
    cy = coiled.y + w * (unwound.y - coiled.y)
    angle = coiled.angle_rad + w * wrap_angle_rad(unwound.angle_rad - coiled.angle_rad)

    def local(lay: Layout) -> tuple[np.ndarray, np.ndarray]:
        return _rotate(
            lay.poly_xs - lay.x[:, None], lay.poly_ys - lay.y[:, None], -lay.angle_rad[:, None]
        )

    lcx, lcy = local(coiled)
    lux, luy = local(unwound)
    wc = w[:, None]
    vx, vy = _rotate(lcx + wc * (lux - lcx), lcy + wc * (luy - lcy), angle[:, None])
    vx, vy = vx + cx[:, None], vy + cy[:, None]

    at_coil, at_line = w == 0.0, w == 1.0
    x = np.where(at_coil, coiled.x, np.where(at_line, unwound.x, cx))
    y = np.where(at_coil, coiled.y, np.where(at_line, unwound.y, cy))
    angle = wrap_angle_rad(angle)
    angle = np.where(at_coil, coiled.angle_rad, np.where(at_line, unwound.angle_rad, angle))
    poly_xs = np.where(
        at_coil[:, None], coiled.poly_xs, np.where(at_line[:, None], unwound.poly_xs, vx)
    )
    poly_ys = np.where(
        at_coil[:, None], coiled.poly_ys, np.where(at_line[:, None], unwound.poly_ys, vy)
    )
    label = np.where(
        at_coil,
        coiled.label_angle_rad,
        np.where(at_line, unwound.label_angle_rad, upright_angle_rad(angle)),
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
        bounds=_bounds(poly_xs, poly_ys),
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
    reshaped on the way).

    Args:
        layout: the coiled ``Layout`` (``"spiral"`` or ``"circle"``).
        progress: unwinding front, in ``[0, n - 1 + front_width]`` (``[0, n]`` by default).
        unwound: the line to unwind to (default ``unwound_layout(layout)``); same n and
            ``n_arc`` as ``layout``.
        front_width: positions on their way at once, >= 1.

    Returns:
        A ``Layout`` of kind ``"unwind"``, arrays ``(n,)`` and ``(n, m)``.

    Example:
        >>> coil = spiral_layout(6)
        >>> mid = unwind_positions(coil, 2.5)
        >>> line = unwound_layout(coil)
        >>> [bool(mid.x[i] == line.x[i]) for i in range(6)]
        [True, True, False, False, False, False]
        >>> [bool(mid.x[i] == coil.x[i]) for i in range(6)]
        [False, False, False, True, True, True]
    """
    layout = _check_coil(layout)
    if unwound is None:
        unwound = unwound_layout(layout)
    unwound = _check_coil(unwound, "unwound")
    w = unwind_weights(layout.n, progress, front_width=front_width)
    return _blend(layout, unwound, w)


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
        >>> coil = circle_layout(8)
        >>> bool(np.array_equal(interpolate(coil, 0.0).poly_xs, coil.poly_xs))
        True
        >>> bool(np.array_equal(interpolate(coil, 1.0).x, unwound_layout(coil).x))
        True
    """
    layout = _check_coil(layout)
    t_f = _check_real("t", t)
    if not 0.0 <= t_f <= 1.0:
        raise CoilvisValueError(f"t: expected in [0, 1], got {t_f}")
    width = _check_real("front_width", front_width)
    if width < 1.0:
        raise CoilvisValueError(f"front_width: expected >= 1, got {width}")
    p_max = layout.n - 1 + width
    return unwind_positions(layout, min(t_f * p_max, p_max), unwound=unwound, front_width=width)


# ---------------------------------------------------------------------------------------
# group bands (outside) and arcs (inside)


def group_band(
    layout: Layout,
    starts: Any,
    ends: Any,
    *,
    offset: float | None = None,
    width: float | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Thin bands just outside the segments, one per group of positions (words, sentences).

    Group ``g`` spans positions ``[starts[g], ends[g])``. Its band follows the outer edge
    of those segments, from ``offset`` to ``offset + width`` beyond it (measured along
    each edge's outward direction: radially on a coil). On a spiral the band must stay
    clear of the next turn: ``offset + width < pitch - band_width``. For a second level of
    hierarchy, call again with a larger ``offset``.

    Args:
        layout: any ``Layout``.
        starts: (g,) first position of each group.
        ends: (g,) one past the last position of each group, ``starts < ends <= n``.
        offset: gap between a segment's outer edge and the band (default
            ``0.15 * (pitch - band_width)``).
        width: width of the band (default ``0.5 * (pitch - band_width)``).

    Returns:
        ``(xs, ys)``: two lists of g arrays, group ``g``'s of shape
        ``(2 * (ends[g] - starts[g]) * (n_arc + 1),)``: the band's inner side from start
        to end, then its outer side back (open, ready for Bokeh ``patches``).

    Example:
        >>> lay = spiral_layout(20)
        >>> xs, ys = group_band(lay, [0, 3], [3, 20])
        >>> len(xs), xs[0].shape
        (2, (96,))
        >>> r = np.hypot(xs[0], ys[0]) - np.hypot(lay.poly_xs[:3, :16], lay.poly_ys[:3, :16]).min()
        >>> bool(r.min() > 0)
        True
    """
    layout = _check_coil(layout)
    n = layout.n
    starts_a = _check_positions("starts", starts, n)
    ends_a = _check_positions("ends", ends, n, end=True)
    if starts_a.shape != ends_a.shape:
        raise CoilvisValueError(
            f"ends: expected the shape of starts {starts_a.shape}, got {ends_a.shape}"
        )
    if starts_a.size and np.any(ends_a <= starts_a):
        g = int(np.argmax(ends_a <= starts_a))
        raise CoilvisValueError(
            f"ends: expected ends > starts, got group {g} = [{starts_a[g]}, {ends_a[g]})"
        )
    gap = layout.pitch - layout.band_width
    off = 0.15 * gap if offset is None else _check_real("offset", offset)
    wid = 0.5 * gap if width is None else _check_positive("width", width)
    if off < 0.0:
        raise CoilvisValueError(f"offset: expected >= 0, got {off}")
    if layout.kind == "spiral" and off + wid >= gap:
        raise CoilvisValueError(
            f"offset + width: expected < pitch - band_width ({gap}) so the band stays clear "
            f"of the next turn, got {off + wid}"
        )
    k = layout.n_arc + 1
    out_x, out_y = layout.poly_xs[:, :k], layout.poly_ys[:, :k]
    in_x, in_y = layout.poly_xs[:, k:][:, ::-1], layout.poly_ys[:, k:][:, ::-1]
    dx, dy = out_x - in_x, out_y - in_y
    norm = np.hypot(dx, dy)
    norm = np.where(norm > 0.0, norm, 1.0)
    dx, dy = dx / norm, dy / norm
    near_x, near_y = (out_x + off * dx).ravel(), (out_y + off * dy).ravel()
    far_x, far_y = (out_x + (off + wid) * dx).ravel(), (out_y + (off + wid) * dy).ravel()
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for a, b in zip((starts_a * k).tolist(), (ends_a * k).tolist(), strict=True):
        xs.append(np.concatenate([near_x[a:b], far_x[a:b][::-1]]))
        ys.append(np.concatenate([near_y[a:b], far_y[a:b][::-1]]))
    return xs, ys


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
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        m = self.x0.shape
        for name in ("y0", "x1", "y1", "cx", "cy"):
            if getattr(self, name).shape != m or len(m) != 1:
                raise CoilvisValueError(f"Arcs.{name}: expected shape {m} like x0")

    @property
    def m(self) -> int:
        """Number of arcs."""
        return int(self.x0.shape[0])


def arc_curves(
    layout: Layout,
    src: Any,
    dst: Any,
    *,
    anchor: Literal["centre", "inner"] = "inner",
    depth_scale: float = 2.0,
    depth_max: float = 0.9,
) -> Arcs:
    """Curves inside the coil between pairs of positions (attention, for instance).

    On a spiral or circle each curve runs from ``src``'s anchor to ``dst``'s, with its
    control point pulled from the chord's midpoint ``M`` toward the coil's centre:
    ``C = (1 - f) M`` with ``f = min(depth_max, depth_scale * |dst - src| / n)``, so
    pairs further apart bend deeper. The curve stays within the disc through its farther
    end point, inside the coil. On a line (:func:`unwound_layout`) the control point
    sits ``0.5 * chord`` off the line on the inner side (the side away from the outer
    edges), as in an arc diagram.

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
        >>> lay = circle_layout(4, r_ring=2.0)
        >>> arcs = arc_curves(lay, [0], [1], anchor="centre")
        >>> float(np.hypot(arcs.cx, arcs.cy)[0].round(4))  # 2 cos(pi/4) * (1 - 2 * 1/4)
        0.7071
    """
    layout = _check_coil(layout)
    if layout.kind not in ("spiral", "circle", "line"):
        raise CoilvisValueError(
            f"layout: expected a 'spiral', 'circle' or 'line' layout, got kind={layout.kind!r}"
        )
    if anchor not in ("centre", "inner"):
        raise CoilvisValueError(f"anchor: expected 'centre' or 'inner', got {anchor!r}")
    scale = _check_real("depth_scale", depth_scale)
    if scale < 0.0:
        raise CoilvisValueError(f"depth_scale: expected >= 0, got {scale}")
    cap = _check_real("depth_max", depth_max)
    if not 0.0 <= cap < 1.0:
        raise CoilvisValueError(f"depth_max: expected in [0, 1), got {cap}")
    n = layout.n
    i = _check_positions("src", src, n)
    j = _check_positions("dst", dst, n)
    if i.shape != j.shape:
        raise CoilvisValueError(f"dst: expected the shape of src {i.shape}, got {j.shape}")

    half = 0.5 * layout.band_width
    if layout.kind == "line":
        inward = -1.0 if layout.clockwise else 1.0  # away from the outer edges
        ax, ay = layout.x, layout.y + (inward * half if anchor == "inner" else 0.0)
    elif anchor == "inner":
        shrink = (layout.r - half) / layout.r
        ax, ay = layout.x * shrink, layout.y * shrink
    else:
        ax, ay = layout.x, layout.y
    x0, y0, x1, y1 = ax[i], ay[i], ax[j], ay[j]
    mx, my = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    if layout.kind == "line":
        chord = np.hypot(x1 - x0, y1 - y0)
        cx, cy = mx, my + inward * _LINE_ARC_RISE * chord
    else:
        f = np.minimum(cap, scale * np.abs(j - i) / n)
        cx, cy = (1.0 - f) * mx, (1.0 - f) * my
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
