"""Tests of coilvis.geometry.bands: group bands outside the segments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisTypeError, CoilvisValueError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, TWO_PI, make_spiral, r_start_of, spiral_options
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, TWO_PI, make_spiral, r_start_of, spiral_options


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
