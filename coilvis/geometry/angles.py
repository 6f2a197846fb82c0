"""Angles: wrapping to (-pi, pi], upright text directions, and rotations of points."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["wrap_angle_rad", "upright_angle_rad", "rotate"]

TWO_PI = 2.0 * math.pi


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
    return math.pi - np.mod(math.pi - a, TWO_PI)


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


def rotate(x: np.ndarray, y: np.ndarray, angle_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points turned about the origin by ``angle_rad`` (counter-clockwise).

    Args:
        x: (...) x of the points.
        y: (...) y of the points.
        angle_rad: (...) angles, broadcast against ``x`` and ``y``.

    Returns:
        ``(x, y)`` of the turned points.

    Example:
        >>> [float(v.round(9)) for v in rotate(np.float64(1.0), np.float64(0.0), np.pi / 2)]
        [0.0, 1.0]
    """
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return c * x - s * y, s * x + c * y
