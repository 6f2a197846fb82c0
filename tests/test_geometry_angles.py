"""Tests of coilvis.geometry.angles: wrapping, upright text angles, rotations."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, angle_diff
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, angle_diff


@FAST
@given(a=st.floats(-100.0, 100.0))
def test_wrap_and_upright_angles(a: float) -> None:
    w = float(geo.wrap_angle_rad(a))
    assert -math.pi < w <= math.pi and abs(angle_diff(w, a)) < 1e-9
    u = float(geo.upright_angle_rad(a))
    assert -math.pi / 2 < u <= math.pi / 2
    assert abs(angle_diff(u, a)) < 1e-9 or abs(abs(angle_diff(u, a)) - math.pi) < 1e-9
    assert math.cos(u) >= -1e-12  # never reads right to left


@FAST
@given(a=st.floats(-10.0, 10.0), x=st.floats(-5.0, 5.0), y=st.floats(-5.0, 5.0))
def test_rotate_is_a_turn_about_the_origin(a: float, x: float, y: float) -> None:
    rx, ry = geo.angles.rotate(np.float64(x), np.float64(y), a)
    want = (x + 1j * y) * np.exp(1j * a)
    assert abs(rx - want.real) < 1e-12 and abs(ry - want.imag) < 1e-12
