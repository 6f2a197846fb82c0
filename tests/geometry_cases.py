"""Shared cases for the geometry tests: independent references (spiral points, Simpson
arc lengths, polygon areas, ray crossings) and hypothesis strategies for spiral options."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from coilvis import geometry as geo

__all__ = [
    "TWO_PI",
    "FAST",
    "HEAVY",
    "spiral_point",
    "simpson_arc_len",
    "shoelace",
    "ray_intervals",
    "angle_diff",
    "r_start_of",
    "spiral_options",
    "make_spiral",
]

TWO_PI = 2.0 * math.pi
FAST = settings(max_examples=40, deadline=None)
HEAVY = settings(max_examples=15, deadline=None)


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
