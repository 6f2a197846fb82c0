"""Tests of coilvis.geometry.layout: the Layout type, spiral and circle layouts, the circle-or-spiral choice."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisTypeError, CoilvisValueError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, HEAVY, TWO_PI, angle_diff, make_spiral, r_start_of, ray_intervals, shoelace, simpson_arc_len, spiral_options, spiral_point
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, HEAVY, TWO_PI, angle_diff, make_spiral, r_start_of, ray_intervals, shoelace, simpson_arc_len, spiral_options, spiral_point


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
        (lambda: geo.coil_kind(5, "ring"), CoilvisValueError, "kind: expected"),
        (lambda: geo.coil_kind(0), CoilvisValueError, "n: expected >= 1"),
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


@pytest.mark.parametrize(("n", "kind", "want"), [(1, "auto", "circle"), (32, "auto", "circle"), (33, "auto", "spiral"), (5, "spiral", "spiral"), (500, "circle", "circle")])
def test_coil_kind_is_the_one_choice(n: int, kind: str, want: str) -> None:
    assert geo.coil_kind(n, kind) == want
    assert geo.coil_layout(n, kind=kind).kind == want  # type: ignore[arg-type]
    assert geo.CIRCLE_MAX_N == 32
