"""The Archimedean spiral r = r_start + pitch * phi / (2 pi): arc length and its inverse, closed form."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from coilvis.errors import CoilvisValueError, check_float
from coilvis.geometry._checks import check_positive
from coilvis.geometry.angles import TWO_PI

__all__ = ["spiral_arc_len", "spiral_phi_rad"]


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
    pitch_f = check_positive("pitch", pitch)
    r_start_f = check_float("r_start", r_start)
    if r_start_f < 0.0:
        raise CoilvisValueError(f"r_start: expected >= 0, got {r_start_f}")
    return r_start_f, pitch_f / TWO_PI


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
