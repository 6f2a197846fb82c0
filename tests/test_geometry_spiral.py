"""Tests of coilvis.geometry.spiral: the arc length of the spiral and its inverse."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisValueError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, TWO_PI, simpson_arc_len
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, TWO_PI, simpson_arc_len


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


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
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
    ],
)
def test_argument_errors(call: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        call()
