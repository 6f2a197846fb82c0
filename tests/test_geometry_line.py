"""Tests of coilvis.geometry.line: the coil's segments laid on one line or in rows."""

from __future__ import annotations

import numpy as np
import pytest

from coilvis import geometry as geo
from coilvis.errors import CoilvisTypeError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import shoelace
except ImportError:  # tests is a package
    from tests.geometry_cases import shoelace


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


def test_wrapped_rows_fit_below_the_coil() -> None:
    lay = geo.spiral_layout(300)
    rows = geo.wrapped_line_layout(lay, scale=0.5)
    assert rows.n == 300 and np.all(rows.angle_rad == 0.0)
    assert rows.bounds[2] <= lay.bounds[2] + 1e-9 and rows.bounds[0] >= lay.bounds[0] - 1e-9
    assert rows.bounds[3] < lay.bounds[1]
    np.testing.assert_allclose(rows.poly_xs.max(axis=1) - rows.poly_xs.min(axis=1), 0.5 * lay.arc_len)
    # reading order: left to right, then the next row down
    order = np.lexsort((rows.x, -rows.y))
    np.testing.assert_array_equal(order, np.arange(300))


def test_a_line_needs_a_coil() -> None:
    with pytest.raises(CoilvisTypeError, match="layout: expected a Layout"):
        geo.unwound_layout("coil")  # type: ignore[arg-type]
