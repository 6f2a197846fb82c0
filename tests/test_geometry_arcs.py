"""Tests of coilvis.geometry.arcs: arcs between positions, their anchors and their constants."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisTypeError, CoilvisValueError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, make_spiral, spiral_options
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, make_spiral, spiral_options


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


@pytest.mark.parametrize("kind", ["spiral", "circle"])
def test_arc_curves_on_a_coil_are_bent_arcs_between_its_anchors(kind: str) -> None:
    lay = geo.coil_layout(70, kind=kind)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    src, dst = rng.integers(0, 70, 200), rng.integers(0, 70, 200)
    for anchor in ("inner", "centre"):
        ax, ay = geo.arc_anchors(lay, anchor=anchor)  # type: ignore[arg-type]
        want = geo.bent_arcs(ax, ay, src, dst)
        got = geo.arc_curves(lay, src, dst, anchor=anchor)  # type: ignore[arg-type]
        for name in ("x0", "y0", "x1", "y1", "cx", "cy"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_js_constants_are_the_arc_defaults() -> None:
    assert geo.arcs.js_constants() == {"depth_scale": geo.ARC_DEPTH_SCALE, "depth_max": geo.ARC_DEPTH_MAX}
    lay = geo.spiral_layout(50)
    default = geo.arc_curves(lay, [0, 3], [40, 4])
    explicit = geo.arc_curves(lay, [0, 3], [40, 4], **geo.arcs.js_constants())
    np.testing.assert_array_equal(default.cx, explicit.cx)


def test_bent_arcs_errors() -> None:
    with pytest.raises(CoilvisValueError, match="anchor_x, anchor_y"):
        geo.bent_arcs([0.0, 1.0], [0.0], [0], [1])
    with pytest.raises(CoilvisValueError, match="dst: expected values in \\[0, 2\\)"):
        geo.bent_arcs([0.0, 1.0], [0.0, 1.0], [0], [2])
    with pytest.raises(CoilvisValueError, match="depth_max"):
        geo.bent_arcs([0.0, 1.0], [0.0, 1.0], [0], [1], depth_max=1.0)
