"""Tests of coilvis.geometry: spiral and circle layouts, polygons, group bands, arcs, unwinding."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisTypeError, CoilvisValueError

TWO_PI = 2.0 * math.pi
FAST = settings(max_examples=40, deadline=None)
HEAVY = settings(max_examples=15, deadline=None)

# ---------------------------------------------------------------------------------------
# helpers independent of the module under test


def spiral_point(phi: np.ndarray, *, r_start: float, pitch: float, start: float, sign: float):
    """(x, y) of the spiral r = r_start + pitch * phi / (2 pi) at polar angle start + sign*phi."""
    r = r_start + pitch * phi / TWO_PI
    return r * np.cos(start + sign * phi), r * np.sin(start + sign * phi)


def simpson_arc_len(
    phi_a: np.ndarray, phi_b: np.ndarray, *, r_start: float, pitch: float, k: int = 64
) -> np.ndarray:
    """Arc length of the spiral between phi_a and phi_b by Simpson's rule (k panels)."""
    b = pitch / TWO_PI
    u = np.linspace(0.0, 1.0, k + 1)
    phi = phi_a[:, None] + (phi_b - phi_a)[:, None] * u[None, :]
    f = np.sqrt((r_start + b * phi) ** 2 + b * b)
    w = np.ones(k + 1)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return (f * w).sum(axis=1) * (phi_b - phi_a) / (3.0 * k)


def shoelace(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Signed area of each (open) polygon row."""
    return 0.5 * (xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys).sum(axis=1)


def ray_intervals(poly_xs: np.ndarray, poly_ys: np.ndarray, angle: float) -> np.ndarray:
    """[t_min, t_max] along the ray from the origin at `angle` for every polygon it crosses."""
    dx, dy = math.cos(angle), math.sin(angle)
    px, py = poly_xs, poly_ys
    ex, ey = np.roll(px, -1, axis=1) - px, np.roll(py, -1, axis=1) - py
    den = dx * ey - dy * ex
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (px * ey - py * ex) / den
        s = (px * dy - py * dx) / den
    hit = (den != 0) & (s >= 0) & (s < 1) & (t > 0)
    rows = np.flatnonzero(hit.any(axis=1))
    lo = np.where(hit, t, np.inf).min(axis=1)[rows]
    hi = np.where(hit, t, -np.inf).max(axis=1)[rows]
    order = np.argsort(lo)
    return np.stack([lo[order], hi[order]], axis=1)


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest signed difference a - b of angles."""
    return np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b))))


def r_start_of(lay: geo.Layout) -> float:
    """The spiral's start radius, read off segment 0's start edge."""
    r_out = math.hypot(lay.poly_xs[0, 0], lay.poly_ys[0, 0])
    r_in = math.hypot(lay.poly_xs[0, -1], lay.poly_ys[0, -1])
    return 0.5 * (r_out + r_in)


@st.composite
def spiral_options(draw: Any, *, max_n: int = 400) -> dict[str, Any]:
    pitch = draw(st.floats(0.05, 20.0))
    band_frac = draw(st.floats(0.05, 0.95))
    opts: dict[str, Any] = dict(
        n=draw(st.integers(1, max_n)),
        pitch=pitch,
        band_width=band_frac * pitch,
        arc_len=draw(st.floats(0.2, 3.0)) * pitch,
        clockwise=draw(st.booleans()),
        start_angle_rad=draw(st.floats(-7.0, 7.0)),
    )
    if draw(st.booleans()):
        opts["r_start"] = draw(st.floats(band_frac / 2 + 0.01, 6.0)) * pitch
    return opts


def make_spiral(opts: dict[str, Any]) -> geo.Layout:
    opts = dict(opts)
    return geo.spiral_layout(opts.pop("n"), **opts)


# ---------------------------------------------------------------------------------------
# the arc length of the spiral and its inverse


@FAST
@given(
    r_start=st.floats(0.0, 50.0),
    pitch=st.floats(1e-3, 50.0),
    s=st.lists(st.floats(0.0, 1e4), min_size=1, max_size=20),
)
def test_spiral_phi_inverts_arc_len(r_start: float, pitch: float, s: list[float]) -> None:
    arc = np.array(s)
    phi = geo.spiral_phi_rad(arc, r_start=r_start, pitch=pitch)
    assert np.all(phi >= 0)
    back = geo.spiral_arc_len(phi, r_start=r_start, pitch=pitch)
    np.testing.assert_allclose(back, arc, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    ("r_start", "pitch"), [(0.0, 1.0), (1.27, 1.0), (8.0, 1.0), (0.4, 0.05), (3.0, 12.0)]
)
def test_spiral_arc_len_matches_quadrature(r_start: float, pitch: float) -> None:
    phi_b = np.array([0.5, 3.0, 20.0, 200.0])
    want = simpson_arc_len(np.zeros(4), phi_b, r_start=r_start, pitch=pitch, k=20_000)
    got = geo.spiral_arc_len(phi_b, r_start=r_start, pitch=pitch)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_spiral_arc_len_tends_to_the_circle_for_tiny_pitch() -> None:
    # a start radius 1e10 pitches out: cancellation would lose every digit here
    got = geo.spiral_arc_len(np.array([1.0, TWO_PI]), r_start=10.0, pitch=1e-9)
    np.testing.assert_allclose(got, [10.0, 10.0 * TWO_PI], rtol=1e-9)
    phi = geo.spiral_phi_rad(np.array([10.0, 10.0 * TWO_PI]), r_start=10.0, pitch=1e-9)
    np.testing.assert_allclose(phi, [1.0, TWO_PI], rtol=1e-9)


def test_spiral_arc_len_from_the_centre() -> None:
    # r_start = 0, b = 1: s(phi) = (phi sqrt(1 + phi^2) + asinh(phi)) / 2
    s = geo.spiral_arc_len(np.array([0.0, 1.0, 10.0]), r_start=0.0, pitch=TWO_PI)
    want = [0.0, (math.sqrt(2.0) + math.asinh(1.0)) / 2, (10 * math.sqrt(101) + math.asinh(10)) / 2]
    np.testing.assert_allclose(s, want, rtol=1e-14)


# ---------------------------------------------------------------------------------------
# spiral layout


@FAST
@given(opts=spiral_options())
def test_spiral_radius_increases_strictly_and_centres_lie_on_the_spiral(
    opts: dict[str, Any],
) -> None:
    lay = make_spiral(opts)
    assert lay.kind == "spiral" and lay.n == opts["n"]
    assert np.all(np.diff(lay.r) > 0)
    r0 = r_start_of(lay)
    sign = -1.0 if opts["clockwise"] else 1.0
    phi = sign * (lay.theta_rad - opts["start_angle_rad"])
    assert np.all(np.diff(phi) > 0)
    x, y = spiral_point(
        phi, r_start=r0, pitch=opts["pitch"], start=opts["start_angle_rad"], sign=sign
    )
    scale = lay.r.max()
    np.testing.assert_allclose(lay.x, x, atol=1e-9 * scale)
    np.testing.assert_allclose(lay.y, y, atol=1e-9 * scale)
    np.testing.assert_allclose(np.hypot(lay.x, lay.y), lay.r, rtol=1e-12)


@FAST
@given(opts=spiral_options())
def test_spiral_segments_have_equal_arc_length(opts: dict[str, Any]) -> None:
    lay = make_spiral(opts)
    r0 = r_start_of(lay)
    sign = -1.0 if opts["clockwise"] else 1.0
    phi = sign * (lay.theta_rad - opts["start_angle_rad"])
    # from the start to centre 0 is half a segment, then a whole one between centres
    first = simpson_arc_len(np.zeros(1), phi[:1], r_start=r0, pitch=opts["pitch"])
    np.testing.assert_allclose(first, 0.5 * lay.arc_len, rtol=1e-3)
    gaps = simpson_arc_len(phi[:-1], phi[1:], r_start=r0, pitch=opts["pitch"])
    np.testing.assert_allclose(gaps, lay.arc_len, rtol=1e-3)
    if lay.n > 1:
        assert gaps.max() / gaps.min() < 1.01


@HEAVY
@given(
    opts=spiral_options(max_n=250), angles=st.lists(st.floats(-4.0, 4.0), min_size=4, max_size=8)
)
def test_spiral_turns_never_overlap_along_any_ray(
    opts: dict[str, Any], angles: list[float]
) -> None:
    lay = make_spiral(opts)
    gap = lay.pitch - lay.band_width
    sagitta = 4e-4 * lay.r_outer  # chords of 3-degree steps cut at most this into the gap
    vertex_angles = np.arctan2(lay.poly_ys, lay.poly_xs).ravel()
    for angle in angles:
        # a ray along a radial edge or through a vertex has no clean crossings: nudge it
        while np.abs(angle_diff(vertex_angles, angle)).min() < 1e-7:
            angle += 1.234e-5
        iv = ray_intervals(lay.poly_xs, lay.poly_ys, angle)
        assert np.all(iv[:, 1] > iv[:, 0])
        if len(iv) > 1:
            between = iv[1:, 0] - iv[:-1, 1]
            assert between.min() > 0
            assert between.min() >= gap - sagitta


@FAST
@given(opts=spiral_options())
def test_spiral_polygon_edges_are_radial_offsets_of_the_centre_line(opts: dict[str, Any]) -> None:
    lay = make_spiral(opts)
    k = lay.n_arc + 1
    out_x, out_y = lay.poly_xs[:, :k], lay.poly_ys[:, :k]
    in_x, in_y = lay.poly_xs[:, k:][:, ::-1], lay.poly_ys[:, k:][:, ::-1]
    r_out, r_in = np.hypot(out_x, out_y), np.hypot(in_x, in_y)
    np.testing.assert_allclose(r_out - r_in, lay.band_width, rtol=1e-9, atol=1e-9 * lay.pitch)
    same_angle = angle_diff(np.arctan2(out_y, out_x), np.arctan2(in_y, in_x))
    assert np.abs(same_angle).max() < 1e-9
    # the mid line is the spiral: one pitch per turn at the same angle
    r_mid = 0.5 * (r_out + r_in)
    r0 = r_start_of(lay)
    sign = -1.0 if opts["clockwise"] else 1.0
    frac = np.mod(sign * (np.arctan2(out_y, out_x) - opts["start_angle_rad"]), TWO_PI)
    turns = np.round((r_mid - r0) / lay.pitch - frac / TWO_PI)
    want = r0 + lay.pitch * (frac / TWO_PI + turns)
    np.testing.assert_allclose(r_mid, want, rtol=1e-9, atol=1e-9 * lay.pitch)


@FAST
@given(opts=spiral_options())
def test_spiral_consecutive_polygons_share_their_edge_exactly(opts: dict[str, Any]) -> None:
    lay = make_spiral(opts)
    k = lay.n_arc
    for poly in (lay.poly_xs, lay.poly_ys):
        assert np.array_equal(poly[:-1, k], poly[1:, 0])
        assert np.array_equal(poly[:-1, k + 1], poly[1:, -1])
    assert np.isfinite(lay.poly_xs).all() and np.isfinite(lay.poly_ys).all()


@FAST
@given(opts=spiral_options())
def test_spiral_tangent_and_label_angles(opts: dict[str, Any]) -> None:
    lay = make_spiral(opts)
    r0 = r_start_of(lay)
    sign = -1.0 if opts["clockwise"] else 1.0
    phi = sign * (lay.theta_rad - opts["start_angle_rad"])
    h = 1e-6
    kw = dict(r_start=r0, pitch=opts["pitch"], start=opts["start_angle_rad"], sign=sign)
    xa, ya = spiral_point(phi - h, **kw)
    xb, yb = spiral_point(phi + h, **kw)
    assert np.abs(angle_diff(lay.angle_rad, np.arctan2(yb - ya, xb - xa))).max() < 1e-6
    assert np.all((lay.angle_rad > -math.pi) & (lay.angle_rad <= math.pi))
    label = lay.label_angle_rad
    assert np.all((label > -math.pi / 2) & (label <= math.pi / 2))
    turned = np.abs(angle_diff(label, lay.angle_rad))
    assert np.all((turned < 1e-12) | (np.abs(turned - math.pi) < 1e-12))


@FAST
@given(opts=spiral_options())
def test_spiral_default_n_arc_keeps_edges_smooth(opts: dict[str, Any]) -> None:
    lay = make_spiral(opts)
    k = lay.n_arc + 1
    theta = np.unwrap(np.arctan2(lay.poly_ys[:, :k], lay.poly_xs[:, :k]), axis=1)
    assert np.abs(np.diff(theta, axis=1)).max() <= math.pi / 60 + 1e-9 or lay.n_arc == 128


@FAST
@given(opts=spiral_options())
def test_spiral_bounds_are_the_polygons_box(opts: dict[str, Any]) -> None:
    lay = make_spiral(opts)
    assert lay.bounds == (
        lay.poly_xs.min(),
        lay.poly_ys.min(),
        lay.poly_xs.max(),
        lay.poly_ys.max(),
    )
    x_min, y_min, x_max, y_max = lay.bounds
    assert np.all((lay.x > x_min) & (lay.x < x_max) & (lay.y > y_min) & (lay.y < y_max))


def test_spiral_clockwise_mirrors_counter_clockwise() -> None:
    ccw = geo.spiral_layout(50, start_angle_rad=0.0)
    cw = geo.spiral_layout(50, start_angle_rad=0.0, clockwise=True)
    np.testing.assert_allclose(cw.x, ccw.x, atol=1e-12)
    np.testing.assert_allclose(cw.y, -ccw.y, atol=1e-12)
    np.testing.assert_allclose(cw.poly_ys, -ccw.poly_ys, atol=1e-12)
    np.testing.assert_allclose(cw.theta_rad, -ccw.theta_rad, atol=1e-12)
    assert np.abs(angle_diff(cw.angle_rad, -ccw.angle_rad)).max() < 1e-12
    assert np.all(np.diff(cw.theta_rad) < 0) and np.all(np.diff(ccw.theta_rad) > 0)


@pytest.mark.parametrize(
    ("n", "r_start", "n_arc"),
    [
        (1, 8 / TWO_PI, 15),
        (100, 8 / TWO_PI, 15),
        (400, 10 / TWO_PI, 12),
        (10_000, 50 / TWO_PI, 3),
    ],
)
def test_spiral_defaults_from_n(n: int, r_start: float, n_arc: int) -> None:
    lay = geo.spiral_layout(n)
    assert (lay.pitch, lay.arc_len, lay.band_width) == (1.0, 1.0, 0.8)
    assert r_start_of(lay) == pytest.approx(r_start, rel=1e-12)
    assert lay.n_arc == n_arc
    assert lay.poly_xs.shape == lay.poly_ys.shape == (n, 2 * (n_arc + 1))
    # the first turn holds at least 8 segments
    turn = geo.spiral_arc_len(TWO_PI, r_start=r_start, pitch=1.0)
    assert turn / lay.arc_len >= 8.0
    # segment 0 starts at 12 o'clock and heads left (counter-clockwise)
    assert lay.poly_xs[0, 0] == pytest.approx(0.0, abs=1e-12) and lay.poly_ys[0, 0] > 0
    assert math.cos(lay.angle_rad[0]) < 0


def test_spiral_n1_and_n10000_are_finite() -> None:
    for n in (1, 10_000):
        lay = geo.spiral_layout(n)
        for name in (
            "x",
            "y",
            "angle_rad",
            "label_angle_rad",
            "r",
            "theta_rad",
            "poly_xs",
            "poly_ys",
        ):
            assert np.isfinite(getattr(lay, name)).all(), name
        assert all(math.isfinite(v) for v in lay.bounds)
    # 10,000 positions reach out to about sqrt(n / pi + r_start^2)
    assert lay.r_outer == pytest.approx(math.sqrt(10_000 / math.pi + (50 / TWO_PI) ** 2), rel=0.02)


def test_spiral_layout_of_10000_positions_is_fast() -> None:
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        geo.spiral_layout(10_000)
        geo.spiral_layout(10_000, n_arc=16)
        best = min(best, time.perf_counter() - t0)
    assert best < 0.5


def test_layout_is_immutable() -> None:
    lay = geo.spiral_layout(5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lay.pitch = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        lay.x[0] = 1.0
    xs, ys = lay.as_patches()
    assert len(xs) == len(ys) == 5 and np.array_equal(xs[3], lay.poly_xs[3])
    # the caller's arrays are copied, not frozen or aliased
    mine = np.array([0.0, 1.0])
    arcs = geo.Arcs(x0=mine, y0=mine, x1=mine, y1=mine, cx=mine, cy=mine)
    mine[0] = 5.0
    assert mine.flags.writeable and arcs.x0[0] == 0.0 and arcs.m == 2


def test_layout_checks_shapes() -> None:
    lay = geo.spiral_layout(5)
    with pytest.raises(CoilvisValueError, match=r"Layout\.poly_xs"):
        dataclasses.replace(lay, poly_xs=lay.poly_xs[:, :-1])
    with pytest.raises(CoilvisValueError, match=r"Layout\.r"):
        dataclasses.replace(lay, r=lay.r[:-1])


# ---------------------------------------------------------------------------------------
# circle layout


@FAST
@given(
    n=st.integers(1, 300),
    clockwise=st.booleans(),
    start=st.floats(-7.0, 7.0),
    band_frac=st.floats(0.05, 0.95),
)
def test_circle_closes_and_has_equal_segments(
    n: int, clockwise: bool, start: float, band_frac: float
) -> None:
    lay = geo.circle_layout(n, clockwise=clockwise, start_angle_rad=start, band_width=band_frac)
    k = lay.n_arc
    assert lay.kind == "circle"
    for poly in (lay.poly_xs, lay.poly_ys):
        assert np.array_equal(poly[-1, k], poly[0, 0])  # last end meets the first start
        assert np.array_equal(poly[-1, k + 1], poly[0, -1])
        assert np.array_equal(poly[:-1, k], poly[1:, 0])
    radius = max(1.0, n / TWO_PI)
    np.testing.assert_allclose(lay.r, radius)
    np.testing.assert_allclose(np.hypot(lay.x, lay.y), radius, rtol=1e-12)
    assert lay.arc_len == pytest.approx(TWO_PI * radius / n, rel=1e-12)
    sign = -1.0 if clockwise else 1.0
    np.testing.assert_allclose(np.diff(lay.theta_rad), sign * TWO_PI / n, rtol=1e-9)
    # tangent is perpendicular to the radius, in the direction of travel
    np.testing.assert_allclose(
        angle_diff(lay.angle_rad, lay.theta_rad + sign * math.pi / 2), 0.0, atol=1e-9
    )
    r_v = np.hypot(lay.poly_xs, lay.poly_ys)
    np.testing.assert_allclose(r_v[:, : k + 1], radius + band_frac / 2, rtol=1e-12)
    np.testing.assert_allclose(r_v[:, k + 1 :], radius - band_frac / 2, rtol=1e-12)


def test_circle_of_one_is_a_full_ring() -> None:
    lay = geo.circle_layout(1)
    assert lay.n == 1 and lay.n_arc == 120
    area = abs(shoelace(lay.poly_xs, lay.poly_ys)[0])
    # annulus between 0.6 and 1.4, drawn with 3-degree chords
    assert area == pytest.approx(math.pi * (1.4**2 - 0.6**2), rel=1e-3)


def test_circle_r_ring_and_arc_len() -> None:
    lay = geo.circle_layout(10, r_ring=3.0)
    assert lay.arc_len == pytest.approx(TWO_PI * 3.0 / 10)
    np.testing.assert_allclose(lay.r, 3.0)
    assert geo.circle_layout(64, arc_len=0.5).r[0] == pytest.approx(64 * 0.5 / TWO_PI)
    with pytest.raises(CoilvisValueError, match="arc_len, r_ring"):
        geo.circle_layout(10, r_ring=3.0, arc_len=1.0)
    with pytest.raises(CoilvisValueError, match="band_width"):
        geo.circle_layout(3, r_ring=0.3)


@pytest.mark.parametrize(
    ("n", "kind"), [(1, "circle"), (32, "circle"), (33, "spiral"), (500, "spiral")]
)
def test_coil_layout_picks_circle_for_short_sequences(n: int, kind: str) -> None:
    assert geo.coil_layout(n).kind == kind
    assert geo.coil_layout(n, kind="spiral").kind == "spiral"
    assert geo.coil_layout(n, kind="circle").kind == "circle"


# ---------------------------------------------------------------------------------------
# unwound layout and the unwinding


@pytest.mark.parametrize("clockwise", [False, True])
def test_unwound_layout_is_a_straight_strip(clockwise: bool) -> None:
    coil = geo.spiral_layout(40, clockwise=clockwise, arc_len=1.5, band_width=0.6)
    line = geo.unwound_layout(coil, x_start=2.0, y_centre=-1.0)
    assert line.kind == "line" and line.n == 40 and line.n_arc == coil.n_arc
    np.testing.assert_allclose(line.x, 2.0 + 1.5 * (np.arange(40) + 0.5))
    np.testing.assert_allclose(line.y, -1.0)
    assert line.poly_xs.max() - line.poly_xs.min() == pytest.approx(40 * 1.5)
    assert line.poly_ys.max() - line.poly_ys.min() == pytest.approx(0.6)
    np.testing.assert_array_equal(line.angle_rad, 0.0)
    k = line.n_arc
    assert np.array_equal(line.poly_xs[:-1, k], line.poly_xs[1:, 0])
    assert np.array_equal(line.poly_ys[:-1, k + 1], line.poly_ys[1:, -1])
    outer_y, inner_y = line.poly_ys[:, : k + 1], line.poly_ys[:, k + 1 :]
    if clockwise:
        assert np.all(outer_y > inner_y)
    else:
        assert np.all(outer_y < inner_y)
    # same orientation (winding) as the coil's polygons
    assert np.all(
        np.sign(shoelace(line.poly_xs, line.poly_ys))
        == np.sign(shoelace(coil.poly_xs, coil.poly_ys))
    )


def test_unwound_layout_default_sits_below_the_coil() -> None:
    coil = geo.spiral_layout(200)
    line = geo.unwound_layout(coil)
    assert line.poly_xs.min() == pytest.approx(coil.bounds[0])
    assert line.bounds[3] < coil.bounds[1]
    assert line.y[0] == pytest.approx(coil.bounds[1] - coil.pitch)


@pytest.mark.parametrize(
    ("n", "progress", "front_width", "want"),
    [
        (5, 0.0, 1.0, [0, 0, 0, 0, 0]),
        (5, 2.5, 1.0, [1, 1, 0.5, 0, 0]),
        (5, 2.25, 1.0, [1, 1, 0.15625, 0, 0]),
        (5, 5.0, 1.0, [1, 1, 1, 1, 1]),
        (4, 2.0, 2.0, [1, 0.5, 0, 0]),
        (1, 0.5, 1.0, [0.5]),
    ],
)
def test_unwind_weights_values(
    n: int, progress: float, front_width: float, want: list[float]
) -> None:
    np.testing.assert_allclose(geo.unwind_weights(n, progress, front_width=front_width), want)


@FAST
@given(
    n=st.integers(1, 200),
    a=st.floats(0.0, 1.0),
    b=st.floats(0.0, 1.0),
    front_width=st.floats(1.0, 50.0),
)
def test_unwind_weights_are_monotone(n: int, a: float, b: float, front_width: float) -> None:
    p_max = n - 1 + front_width
    lo, hi = sorted((a * p_max, b * p_max))
    w_lo = geo.unwind_weights(n, lo, front_width=front_width)
    w_hi = geo.unwind_weights(n, hi, front_width=front_width)
    assert np.all((w_lo >= 0) & (w_hi <= 1))
    assert np.all(w_hi >= w_lo)  # later progress: never further from the line
    assert np.all(np.diff(w_lo) <= 0)  # earlier positions unwind first


@FAST
@given(n=st.integers(1, 120), progress_frac=st.floats(0.0, 1.0), clockwise=st.booleans())
def test_unwind_positions_splits_line_and_coil(
    n: int, progress_frac: float, clockwise: bool
) -> None:
    coil = geo.coil_layout(n, clockwise=clockwise)
    line = geo.unwound_layout(coil)
    progress = progress_frac * n
    mid = geo.unwind_positions(coil, progress, unwound=line)
    assert mid.kind == "unwind" and mid.n == n
    i = np.arange(n)
    done, waiting = i + 1 <= progress, i >= progress
    for name in ("x", "y", "angle_rad", "label_angle_rad", "poly_xs", "poly_ys"):
        got = getattr(mid, name)
        assert np.array_equal(got[done], getattr(line, name)[done]), name
        assert np.array_equal(got[waiting], getattr(coil, name)[waiting]), name
    moving = ~done & ~waiting
    assert moving.sum() <= 1
    w = geo.unwind_weights(n, progress)
    np.testing.assert_allclose(mid.x[moving], (coil.x + w * (line.x - coil.x))[moving])
    assert np.isfinite(mid.poly_xs).all() and np.isfinite(mid.poly_ys).all()


@FAST
@given(
    n=st.integers(1, 80),
    a=st.floats(0.0, 1.0),
    b=st.floats(0.0, 1.0),
    front_width=st.floats(1.0, 30.0),
)
def test_unwind_positions_is_monotone(n: int, a: float, b: float, front_width: float) -> None:
    coil = geo.coil_layout(n)
    line = geo.unwound_layout(coil)
    p_max = n - 1 + front_width
    lo, hi = sorted((a * p_max, b * p_max))
    d_lo, d_hi = (
        np.hypot(lay.x - line.x, lay.y - line.y)
        for lay in (
            geo.unwind_positions(coil, p, unwound=line, front_width=front_width) for p in (lo, hi)
        )
    )
    assert np.all(d_hi <= d_lo + 1e-9)


@pytest.mark.parametrize("n", [1, 7, 40, 300])
@pytest.mark.parametrize("front_width", [1.0, 5.0])
def test_interpolate_endpoints_are_exact(n: int, front_width: float) -> None:
    coil = geo.coil_layout(n)
    line = geo.unwound_layout(coil)
    start = geo.interpolate(coil, 0.0, front_width=front_width)
    end = geo.interpolate(coil, 1.0, front_width=front_width)
    for name in ("x", "y", "angle_rad", "label_angle_rad", "poly_xs", "poly_ys"):
        assert np.array_equal(getattr(start, name), getattr(coil, name)), name
        assert np.array_equal(getattr(end, name), getattr(line, name)), name
    half = geo.interpolate(coil, 0.5, front_width=front_width)
    ref = geo.unwind_positions(coil, 0.5 * (n - 1 + front_width), front_width=front_width)
    assert np.array_equal(half.poly_xs, ref.poly_xs)


def test_interpolate_with_a_wide_front_is_nearly_global() -> None:
    coil = geo.spiral_layout(50)
    line = geo.unwound_layout(coil)
    mid = geo.interpolate(coil, 0.5, front_width=1e6)
    frac = (mid.x - coil.x) / (line.x - coil.x)
    np.testing.assert_allclose(frac, 0.5, atol=1e-4)  # smoothstep(0.5) = 0.5


@pytest.mark.parametrize("kind", ["spiral", "circle"])
def test_unwinding_segments_never_collapse(kind: str) -> None:
    coil = geo.coil_layout(60, kind=kind)  # type: ignore[arg-type]
    line = geo.unwound_layout(coil)
    a_coil = shoelace(coil.poly_xs, coil.poly_ys)
    a_line = shoelace(line.poly_xs, line.poly_ys)
    floor = 0.5 * np.minimum(np.abs(a_coil), np.abs(a_line))
    # a wide front puts every weight in (0, 1) somewhere along the way
    for progress in np.linspace(0.0, 60 - 1 + 60, 23):
        mid = geo.unwind_positions(coil, float(progress), front_width=60.0)
        area = shoelace(mid.poly_xs, mid.poly_ys)
        assert np.all(np.sign(area) == np.sign(a_coil))
        assert np.all(np.abs(area) >= floor)
        # the band keeps its width at the segment's start edge
        width = np.hypot(
            mid.poly_xs[:, 0] - mid.poly_xs[:, -1], mid.poly_ys[:, 0] - mid.poly_ys[:, -1]
        )
        assert width.min() > 0.7 * coil.band_width


def test_unwinding_rejects_mismatched_layouts() -> None:
    coil = geo.spiral_layout(10)
    other = geo.unwound_layout(geo.spiral_layout(11))
    with pytest.raises(CoilvisValueError, match="unwound"):
        geo.unwind_positions(coil, 1.0, unwound=other)
    with pytest.raises(CoilvisValueError, match="progress"):
        geo.unwind_positions(coil, 10.5)
    with pytest.raises(CoilvisValueError, match="t: expected in"):
        geo.interpolate(coil, 1.5)
    with pytest.raises(CoilvisValueError, match="front_width"):
        geo.interpolate(coil, 0.5, front_width=0.5)
    with pytest.raises(CoilvisValueError, match="layout: expected a 'spiral' or 'circle'"):
        geo.unwound_layout(geo.unwound_layout(coil))


# ---------------------------------------------------------------------------------------
# group bands


@FAST
@given(opts=spiral_options(max_n=200), data=st.data())
def test_group_band_stays_between_its_turn_and_the_next(opts: dict[str, Any], data: Any) -> None:
    lay = make_spiral(opts)
    n = lay.n
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=10)) if n > 1 else []))
    starts, ends = [0, *cuts], [*cuts, n]
    gap = lay.pitch - lay.band_width
    offset, width = 0.1 * gap, 0.6 * gap
    xs, ys = geo.group_band(lay, starts, ends, offset=offset, width=width)
    assert len(xs) == len(ys) == len(starts)
    k = lay.n_arc + 1
    r0 = r_start_of(lay)
    sign = -1.0 if opts["clockwise"] else 1.0
    for g, (a, b) in enumerate(zip(starts, ends, strict=True)):
        assert xs[g].shape == ys[g].shape == (2 * (b - a) * k,)
        r_band = np.hypot(xs[g], ys[g])
        r_edge = np.hypot(lay.poly_xs[a:b, :k], lay.poly_ys[a:b, :k]).ravel()
        half = (b - a) * k
        np.testing.assert_allclose(r_band[:half], r_edge + offset, rtol=1e-9)
        np.testing.assert_allclose(r_band[half:][::-1], r_edge + offset + width, rtol=1e-9)
        # the next turn's inner edge, one pitch further out at the same angle
        theta = np.arctan2(ys[g], xs[g])
        frac = np.mod(sign * (theta - opts["start_angle_rad"]), TWO_PI)
        r_mid = (
            r_band - lay.band_width / 2 - offset - np.where(np.arange(2 * half) < half, 0, width)
        )
        turns = np.round((r_mid - r0) / lay.pitch - frac / TWO_PI)
        next_inner = r0 + lay.pitch * (frac / TWO_PI + turns + 1) - lay.band_width / 2
        assert np.all(r_band < next_inner)


def test_group_band_on_a_line_goes_below_and_defaults() -> None:
    coil = geo.spiral_layout(30)
    line = geo.unwound_layout(coil, x_start=0.0, y_centre=0.0)
    xs, ys = geo.group_band(line, np.array([0, 4]), np.array([4, 30]))
    # default offset 0.15 * 0.2 = 0.03, width 0.5 * 0.2 = 0.1, below the outer edge at -0.4
    half = 4 * (line.n_arc + 1)
    np.testing.assert_allclose(ys[0][:half], -0.43)
    np.testing.assert_allclose(ys[0][half:], -0.53)
    assert xs[0].min() == 0.0 and xs[0].max() == pytest.approx(4.0)
    assert xs[1].min() == pytest.approx(4.0) and xs[1].max() == pytest.approx(30.0)
    assert geo.group_band(line, np.zeros(0, dtype=int), np.zeros(0, dtype=int)) == ([], [])
    assert geo.group_band(line, [], []) == ([], [])


@pytest.mark.parametrize(
    ("starts", "ends", "kwargs", "exc", "match"),
    [
        ([0], [0], {}, CoilvisValueError, "ends: expected values in"),
        ([2], [1], {}, CoilvisValueError, "ends: expected ends > starts"),
        ([0], [11], {}, CoilvisValueError, "ends: expected values in"),
        ([-1], [3], {}, CoilvisValueError, "starts: expected values in"),
        ([0.0], [3], {}, CoilvisTypeError, "starts: expected integer"),
        ([0, 1], [3], {}, CoilvisValueError, "ends: expected the shape"),
        ([0], [3], {"offset": 0.1, "width": 0.1}, CoilvisValueError, "offset \\+ width"),
        ([0], [3], {"offset": -0.01}, CoilvisValueError, "offset: expected >= 0"),
        ([0], [3], {"width": 0.0}, CoilvisValueError, "width: expected > 0"),
    ],
)
def test_group_band_errors(
    starts: Any, ends: Any, kwargs: dict[str, Any], exc: type, match: str
) -> None:
    with pytest.raises(exc, match=match):
        geo.group_band(geo.spiral_layout(10), starts, ends, **kwargs)


# ---------------------------------------------------------------------------------------
# arcs


@FAST
@given(
    opts=spiral_options(max_n=300),
    data=st.data(),
    anchor=st.sampled_from(["inner", "centre"]),
)
def test_arcs_stay_inside_the_coil(opts: dict[str, Any], data: Any, anchor: str) -> None:
    lay = make_spiral(opts)
    n = lay.n
    pairs = st.lists(st.integers(0, n - 1), min_size=1, max_size=30)
    src = np.array(data.draw(pairs))
    dst = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=len(src), max_size=len(src))))
    arcs = geo.arc_curves(lay, src, dst, anchor=anchor)  # type: ignore[arg-type]
    assert arcs.m == len(src)
    r_c = np.hypot(arcs.cx, arcs.cy)
    assert np.all(r_c <= lay.r_outer)
    # the control point is on the way from the chord's midpoint to the centre
    mx, my = (arcs.x0 + arcs.x1) / 2, (arcs.y0 + arcs.y1) / 2
    f = np.minimum(0.9, 2.0 * np.abs(dst - src) / n)
    np.testing.assert_allclose(arcs.cx, (1 - f) * mx, atol=1e-12 * lay.r_outer)
    np.testing.assert_allclose(arcs.cy, (1 - f) * my, atol=1e-12 * lay.r_outer)
    # anchors: the centre, or the middle of the inner edge
    depth = lay.band_width / 2 if anchor == "inner" else 0.0
    np.testing.assert_allclose(np.hypot(arcs.x0, arcs.y0), lay.r[src] - depth, rtol=1e-12)
    np.testing.assert_allclose(np.hypot(arcs.x1, arcs.y1), lay.r[dst] - depth, rtol=1e-12)
    pts = geo.sample_arcs(arcs, n_samples=17)
    assert pts.shape == (len(src), 17, 2)
    reach = np.maximum(np.hypot(arcs.x0, arcs.y0), np.hypot(arcs.x1, arcs.y1))
    assert np.all(np.hypot(pts[..., 0], pts[..., 1]) <= reach[:, None] * (1 + 1e-12))


def test_arcs_bend_deeper_for_distant_pairs() -> None:
    lay = geo.circle_layout(24)
    dst = np.arange(1, 13)
    arcs = geo.arc_curves(lay, np.zeros(12, dtype=int), dst, anchor="centre")
    mid_r = np.hypot((arcs.x0 + arcs.x1) / 2, (arcs.y0 + arcs.y1) / 2)
    ratio = np.hypot(arcs.cx, arcs.cy) / np.where(mid_r > 0, mid_r, 1)
    np.testing.assert_allclose(ratio[:10], 1 - 2 * dst[:10] / 24)
    np.testing.assert_allclose(ratio[10], 0.1)  # capped at depth_max = 0.9
    assert np.all(np.diff(ratio[:11]) < 0)


def test_sample_arcs_is_the_quadratic_bezier() -> None:
    lay = geo.spiral_layout(500)
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 500, 50_000), rng.integers(0, 500, 50_000)
    t0 = time.perf_counter()
    arcs = geo.arc_curves(lay, src, dst)
    pts = geo.sample_arcs(arcs, n_samples=9)
    elapsed = time.perf_counter() - t0
    assert pts.shape == (50_000, 9, 2) and elapsed < 2.0
    np.testing.assert_array_equal(pts[:, 0, 0], arcs.x0)
    np.testing.assert_array_equal(pts[:, -1, 1], arcs.y1)
    np.testing.assert_allclose(pts[:, 4, 0], (arcs.x0 + 2 * arcs.cx + arcs.x1) / 4)
    np.testing.assert_allclose(pts[:, 4, 1], (arcs.y0 + 2 * arcs.cy + arcs.y1) / 4)


@pytest.mark.parametrize("clockwise", [False, True])
def test_arcs_on_a_line_rise_on_the_inner_side(clockwise: bool) -> None:
    line = geo.unwound_layout(geo.spiral_layout(40, clockwise=clockwise), x_start=0.0, y_centre=0.0)
    arcs = geo.arc_curves(line, [0, 5], [10, 6])
    side = -1.0 if clockwise else 1.0
    np.testing.assert_allclose(arcs.y0, side * 0.4)
    np.testing.assert_allclose(arcs.cy - arcs.y0, side * 0.5 * np.array([10.0, 1.0]))
    np.testing.assert_allclose(arcs.cx, [5.5, 6.0])  # centres at i + 0.5


@pytest.mark.parametrize(
    ("src", "dst", "kwargs", "exc", "match"),
    [
        ([0.5], [1], {}, CoilvisTypeError, "src: expected integer"),
        ([True], [1], {}, CoilvisTypeError, "src: expected integer"),
        ([0], [10], {}, CoilvisValueError, "dst: expected values in \\[0, 10\\), got 10"),
        ([0, 1], [1], {}, CoilvisValueError, "dst: expected the shape"),
        ([[0]], [[1]], {}, CoilvisValueError, "src: expected shape \\(m,\\)"),
        ([0], [1], {"anchor": "outer"}, CoilvisValueError, "anchor"),
        ([0], [1], {"depth_max": 1.0}, CoilvisValueError, "depth_max"),
        ([0], [1], {"depth_scale": -1.0}, CoilvisValueError, "depth_scale"),
    ],
)
def test_arc_errors(src: Any, dst: Any, kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        geo.arc_curves(geo.spiral_layout(10), src, dst, **kwargs)


def test_arcs_need_a_still_layout() -> None:
    mid = geo.interpolate(geo.spiral_layout(10), 0.5)
    with pytest.raises(CoilvisValueError, match="kind='unwind'"):
        geo.arc_curves(mid, [0], [1])
    with pytest.raises(CoilvisTypeError, match="arcs: expected Arcs"):
        geo.sample_arcs((0, 0, 1, 1, 0, 0))  # type: ignore[arg-type]
    with pytest.raises(CoilvisValueError, match="n_samples: expected >= 2"):
        geo.sample_arcs(geo.arc_curves(geo.spiral_layout(10), [0], [1]), n_samples=1)


# ---------------------------------------------------------------------------------------
# angles and argument checks


@FAST
@given(a=st.floats(-100.0, 100.0))
def test_wrap_and_upright_angles(a: float) -> None:
    w = float(geo.wrap_angle_rad(a))
    assert -math.pi < w <= math.pi and abs(angle_diff(w, a)) < 1e-9
    u = float(geo.upright_angle_rad(a))
    assert -math.pi / 2 < u <= math.pi / 2
    assert abs(angle_diff(u, a)) < 1e-9 or abs(abs(angle_diff(u, a)) - math.pi) < 1e-9
    assert math.cos(u) >= -1e-12  # never reads right to left


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: geo.spiral_layout(0), CoilvisValueError, "n: expected >= 1, got 0"),
        (lambda: geo.spiral_layout(2.0), CoilvisTypeError, "n: expected an int"),
        (lambda: geo.spiral_layout(True), CoilvisTypeError, "n: expected an int"),
        (lambda: geo.spiral_layout(5, pitch=0.0), CoilvisValueError, "pitch: expected > 0"),
        (
            lambda: geo.spiral_layout(5, pitch=math.nan),
            CoilvisValueError,
            "pitch: expected a finite",
        ),
        (lambda: geo.spiral_layout(5, pitch="1"), CoilvisTypeError, "pitch: expected a number"),
        (
            lambda: geo.spiral_layout(5, band_width=1.0),
            CoilvisValueError,
            "band_width: expected < pitch",
        ),
        (
            lambda: geo.spiral_layout(5, r_start=0.3),
            CoilvisValueError,
            "r_start: expected > band_width / 2",
        ),
        (lambda: geo.spiral_layout(5, arc_len=-1.0), CoilvisValueError, "arc_len: expected > 0"),
        (lambda: geo.spiral_layout(5, n_arc=0), CoilvisValueError, "n_arc: expected >= 1, got 0"),
        (
            lambda: geo.spiral_layout(5, start_angle_rad=math.inf),
            CoilvisValueError,
            "start_angle_rad",
        ),
        (lambda: geo.circle_layout(0), CoilvisValueError, "n: expected >= 1"),
        (lambda: geo.coil_layout(5, kind="ring"), CoilvisValueError, "kind: expected"),
        (
            lambda: geo.spiral_phi_rad(-1.0, r_start=1.0, pitch=1.0),
            CoilvisValueError,
            "arc_len: expected >= 0",
        ),
        (
            lambda: geo.spiral_arc_len(1.0, r_start=-1.0, pitch=1.0),
            CoilvisValueError,
            "r_start: expected >= 0",
        ),
        (lambda: geo.unwound_layout("coil"), CoilvisTypeError, "layout: expected a Layout"),
        (
            lambda: geo.unwind_weights(3, -0.1),
            CoilvisValueError,
            "progress: expected in \\[0, 3.0\\]",
        ),
    ],
)
def test_argument_errors(call: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_errors_are_builtin_subclasses() -> None:
    with pytest.raises(ValueError):
        geo.spiral_layout(0)
    with pytest.raises(TypeError):
        geo.spiral_layout(1.5)
