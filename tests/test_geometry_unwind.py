"""Tests of coilvis.geometry.unwind: the blend from coil to line, the reference of the page's unwind.js."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisValueError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, shoelace
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, shoelace


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


def _documented_blend(coil: geo.Layout, line: geo.Layout, w: np.ndarray):
    """The module notes' formulas, written out independently: centre, angle, polygon, label."""
    wrap = lambda a: np.angle(np.exp(1j * a))  # noqa: E731  (-pi, pi]
    c = coil.x + w * (line.x - coil.x), coil.y + w * (line.y - coil.y)
    a = coil.angle_rad + w * wrap(line.angle_rad - coil.angle_rad)

    def local(lay: geo.Layout) -> np.ndarray:
        v = (lay.poly_xs - lay.x[:, None]) + 1j * (lay.poly_ys - lay.y[:, None])
        return v * np.exp(-1j * lay.angle_rad[:, None])

    v = (c[0] + 1j * c[1])[:, None] + np.exp(1j * a[:, None]) * (
        local(coil) + w[:, None] * (local(line) - local(coil))
    )
    label = coil.label_angle_rad + w * wrap(line.label_angle_rad - coil.label_angle_rad)
    return c, wrap(a), v.real, v.imag, label


@pytest.mark.parametrize("kind", ["spiral", "circle"])
@pytest.mark.parametrize("clockwise", [False, True])
def test_unwind_positions_follows_the_documented_blend(kind: str, clockwise: bool) -> None:
    coil = geo.coil_layout(30, kind=kind, clockwise=clockwise)  # type: ignore[arg-type]
    line = geo.wrapped_line_layout(coil, scale=0.5)
    for progress, front_width in ((0.3, 1.0), (12.6, 1.0), (17.0, 9.5), (29.99, 1.0)):
        mid = geo.unwind_positions(coil, progress, unwound=line, front_width=front_width)
        w = geo.unwind_weights(30, progress, front_width=front_width)
        (cx, cy), angle, vx, vy, label = _documented_blend(coil, line, w)
        np.testing.assert_allclose(mid.x, cx, atol=1e-12)
        np.testing.assert_allclose(mid.y, cy, atol=1e-12)
        np.testing.assert_allclose(np.angle(np.exp(1j * (mid.angle_rad - angle))), 0.0, atol=1e-12)
        np.testing.assert_allclose(mid.poly_xs, vx, atol=1e-9)
        np.testing.assert_allclose(mid.poly_ys, vy, atol=1e-9)
        np.testing.assert_allclose(mid.label_angle_rad, label, atol=1e-12)


@pytest.mark.parametrize("kind", ["spiral", "circle"])
def test_labels_turn_smoothly_and_never_read_upside_down(kind: str) -> None:
    coil = geo.coil_layout(40, kind=kind)  # type: ignore[arg-type]
    line = geo.unwound_layout(coil)
    progress = np.linspace(0.0, 40.0, 4001)
    labels = np.stack([geo.unwind_positions(coil, float(p), unwound=line).label_angle_rad for p in progress])
    assert np.all((labels > -np.pi / 2 - 1e-12) & (labels <= np.pi / 2 + 1e-12))
    # no jumps: a label turns at most its smoothstep's steepest slope (1.5 per position) times
    # its turn (< pi) over a step of 0.01 positions
    assert np.abs(np.diff(labels, axis=0)).max() < 1.5 * np.pi * 0.01 + 1e-9


@pytest.mark.parametrize("clockwise", [False, True])
def test_anchors_travel_with_their_segment(clockwise: bool) -> None:
    coil = geo.circle_layout(24, clockwise=clockwise)
    line = geo.wrapped_line_layout(coil, scale=0.5)
    start = geo.unwind_anchors(coil, 0.0, unwound=line)
    end = geo.unwind_anchors(coil, 24.0, unwound=line)
    for got, want in ((start, geo.arc_anchors(coil)), (end, geo.arc_anchors(line))):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # the inner anchor sits half a band width to the inner side of the travel direction, on
    # the circle (band 0.8) as on the rows (band 0.4): it turns with its segment on the way
    side = -1.0 if clockwise else 1.0
    for progress in (3.2, 11.5, 20.9):
        mid = geo.unwind_positions(coil, progress, unwound=line)
        ax, ay = geo.unwind_anchors(coil, progress, unwound=line)
        w = geo.unwind_weights(24, progress)
        half = 0.5 * (coil.band_width + w * (line.band_width - coil.band_width))
        want = (mid.x + 1j * mid.y) + side * 1j * half * np.exp(1j * mid.angle_rad)
        np.testing.assert_allclose(ax, want.real, atol=1e-12)
        np.testing.assert_allclose(ay, want.imag, atol=1e-12)
    centre = geo.unwind_anchors(coil, 7.5, unwound=line, anchor="centre")
    mid = geo.unwind_positions(coil, 7.5, unwound=line)
    np.testing.assert_allclose(centre[0], mid.x, atol=1e-12)
    np.testing.assert_allclose(centre[1], mid.y, atol=1e-12)


def test_unwinding_argument_errors() -> None:
    with pytest.raises(CoilvisValueError, match="progress: expected in \\[0, 3.0\\]"):
        geo.unwind_weights(3, -0.1)
    coil = geo.spiral_layout(10)
    with pytest.raises(CoilvisValueError, match="unwound: expected n=10"):
        geo.unwind_anchors(coil, 1.0, unwound=geo.unwound_layout(geo.spiral_layout(11)))
    with pytest.raises(CoilvisValueError, match="anchor"):
        geo.unwind_anchors(coil, 1.0, anchor="outer")  # type: ignore[arg-type]
