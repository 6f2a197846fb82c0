"""Segments split radially into shares: each polygon cut, inner edge to outer, into pieces of given area fractions.

A segment polygon (see :mod:`coilvis.geometry`) is its outer edge from start to end, then
its inner edge back. Matching the two edges vertex by vertex (``inner_j`` and
``outer_j``), the curve at radial parameter ``t`` in ``[0, 1]`` is::

    E_j(t) = (1 - t) * inner_j + t * outer_j        # t = 0: the inner edge, 1: the outer

and the piece between ``t_a < t_b`` is ``E(t_b)`` from start to end, then ``E(t_a)`` back:
a polygon of the segment's own vertex count and orientation. On a coil these curves are
arcs at intermediate radii; on a straight line, lines parallel to it. The pieces between
consecutive boundaries ``0 = t_0 <= t_1 <= ... <= t_p = 1`` tile the segment: each
boundary is computed once, so neighbouring pieces share it bit for bit.

The area between the inner edge and ``E(t)`` is a quadratic ``a t^2 + b t`` (the
shoelace formula is bilinear in the vertices, and the outer half of the piece's
vertices is linear in ``t``), so the boundary that leaves a fraction ``c`` of the area
inside it solves ``a t^2 + b t = c (a + b)`` exactly: on a rectangle (the unwound line)
``t = c``; on an annular sector (the coil) ``t`` grows like the square root of the
area, so shares far out are thinner than shares near the centre of the same area. The
pieces' areas are the fractions of the segment's, to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError

__all__ = ["share_bounds", "split_radially", "radial_pieces"]

_SUM_TOL = 1e-5  # fractions of one segment sum to 1 within this (float32 probabilities)


def _check_polygons(poly_xs: Any, poly_ys: Any) -> tuple[np.ndarray, np.ndarray]:
    xs = np.asarray(poly_xs, dtype=np.float64)
    ys = np.asarray(poly_ys, dtype=np.float64)
    if xs.ndim != 2 or xs.shape[1] < 4 or xs.shape[1] % 2:
        raise CoilvisValueError(f"poly_xs: expected shape (n, m) with m even and >= 4, got {xs.shape}")
    if ys.shape != xs.shape:
        raise CoilvisValueError(f"poly_ys: expected the shape of poly_xs {xs.shape}, got {ys.shape}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise CoilvisValueError("poly_xs, poly_ys: expected finite vertices")
    return xs, ys


def _check_fractions(fractions: Any, n: int) -> np.ndarray:
    arr = np.asarray(fractions)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise CoilvisTypeError(f"fractions: expected numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        raise CoilvisValueError(f"fractions: expected shape ({n}, p) with p >= 1, got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0.0):
        raise CoilvisValueError("fractions: expected finite values >= 0")
    total = arr.sum(axis=1)
    bad = np.abs(total - 1.0) > _SUM_TOL
    if np.any(bad):
        row = int(np.argmax(bad))
        raise CoilvisValueError(f"fractions: expected each row to sum to 1, got {float(total[row])!r} in row {row}")
    return arr


def _edges(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(inner_x, inner_y, outer_x, outer_y)``, each (n, h): both edges from start to end."""
    h = xs.shape[1] // 2
    return xs[:, h:][:, ::-1], ys[:, h:][:, ::-1], xs[:, :h], ys[:, :h]


def _area_inside(ix: np.ndarray, iy: np.ndarray, ox: np.ndarray, oy: np.ndarray, t: float) -> np.ndarray:
    """(n,) signed area between the inner edge and the curve at ``t``."""
    ex, ey = (1.0 - t) * ix + t * ox, (1.0 - t) * iy + t * oy
    px = np.concatenate([ex, ix[:, ::-1]], axis=1)
    py = np.concatenate([ey, iy[:, ::-1]], axis=1)
    return 0.5 * (px * np.roll(py, -1, axis=1) - np.roll(px, -1, axis=1) * py).sum(axis=1)


def share_bounds(poly_xs: Any, poly_ys: Any, fractions: Any) -> np.ndarray:
    """The radial parameters of the boundaries between a segment's shares.

    Args:
        poly_xs: (n, m) segment polygons (outer edge start to end, inner edge back; m even).
        poly_ys: (n, m) as ``poly_xs``.
        fractions: (n, p) each segment's shares of its area, inner first: >= 0, each row
            summing to 1 (within 1e-5; the last boundary is the outer edge whatever the sum).

    Returns:
        (n, p + 1) float64 ``t`` from 0 (the inner edge) to 1 (the outer edge),
        non-decreasing along each row: share ``j`` lies between ``t[:, j]`` and
        ``t[:, j + 1]``.

    Raises:
        CoilvisValueError: polygons or fractions of the wrong shape, non-finite, or
            fractions negative or not summing to 1.
        CoilvisTypeError: fractions that are not numbers.

    Example:
        >>> from coilvis.geometry import spiral_layout, unwound_layout
        >>> coil = spiral_layout(3)
        >>> line = unwound_layout(coil)
        >>> np.round(share_bounds(line.poly_xs, line.poly_ys, [[0.5, 0.5]] * 3)[0], 12).tolist()
        [0.0, 0.5, 1.0]
        >>> t = share_bounds(coil.poly_xs, coil.poly_ys, [[0.5, 0.5]] * 3)
        >>> bool(np.all(t[:, 1] > 0.5))  # the outer half of an annulus is the thinner
        True
    """
    xs, ys = _check_polygons(poly_xs, poly_ys)
    frac = _check_fractions(fractions, xs.shape[0])
    ix, iy, ox, oy = _edges(xs, ys)
    whole = _area_inside(ix, iy, ox, oy, 1.0)
    half = _area_inside(ix, iy, ox, oy, 0.5)
    flat = np.abs(whole) <= 1e-300
    safe = np.where(flat, 1.0, whole)
    b = np.where(flat, 1.0, (4.0 * half - whole) / safe)  # area(t) / area(1) = a t^2 + b t, a + b = 1
    a = 1.0 - b
    cum = np.cumsum(frac, axis=1)
    c = cum / cum[:, -1:]  # the share of the area inside each boundary
    disc = np.maximum(b[:, None] ** 2 + 4.0 * a[:, None] * c, 0.0)
    denom = b[:, None] + np.sqrt(disc)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(denom > 0.0, 2.0 * c / denom, c)
    t = np.clip(t, 0.0, 1.0)
    t[:, -1] = 1.0
    t = np.maximum.accumulate(t, axis=1)
    return np.concatenate([np.zeros((t.shape[0], 1)), t], axis=1)


def radial_pieces(poly_xs: Any, poly_ys: Any, bounds: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pieces of each segment between given radial parameters.

    Args:
        poly_xs: (n, m) segment polygons (outer edge start to end, inner edge back).
        poly_ys: (n, m) as ``poly_xs``.
        bounds: (n, p + 1) radial parameters in ``[0, 1]``, non-decreasing along each row
            (:func:`share_bounds`).

    Returns:
        ``(xs, ys)``: (n, p, m) float64; piece ``j`` of segment ``i`` is the curve at
        ``bounds[i, j + 1]`` from start to end, then the curve at ``bounds[i, j]`` back.

    Raises:
        CoilvisValueError: shapes that do not match, or bounds outside [0, 1] or decreasing.
    """
    xs, ys = _check_polygons(poly_xs, poly_ys)
    t = np.asarray(bounds, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != xs.shape[0] or t.shape[1] < 2:
        raise CoilvisValueError(f"bounds: expected shape ({xs.shape[0]}, p + 1) with p >= 1, got {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0.0) or np.any(t > 1.0) or np.any(np.diff(t, axis=1) < 0.0):
        raise CoilvisValueError("bounds: expected values in [0, 1], non-decreasing along each row")
    ix, iy, ox, oy = _edges(xs, ys)
    tt = t[:, :, None]  # each boundary's curve once: (n, p + 1, h)
    cx = (1.0 - tt) * ix[:, None, :] + tt * ox[:, None, :]
    cy = (1.0 - tt) * iy[:, None, :] + tt * oy[:, None, :]
    piece_xs = np.concatenate([cx[:, 1:, :], cx[:, :-1, ::-1]], axis=2)
    piece_ys = np.concatenate([cy[:, 1:, :], cy[:, :-1, ::-1]], axis=2)
    return piece_xs, piece_ys


def split_radially(poly_xs: Any, poly_ys: Any, fractions: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each segment polygon split radially into pieces whose areas are the given fractions of its own.

    Args:
        poly_xs: (n, m) segment polygons (outer edge start to end, inner edge back; m even),
            e.g. a :class:`~coilvis.geometry.Layout`'s ``poly_xs``.
        poly_ys: (n, m) as ``poly_xs``.
        fractions: (n, p) each segment's shares, the innermost first: >= 0, rows summing to 1.

    Returns:
        ``(xs, ys)``: (n, p, m) float64 pieces, innermost first, each with the segment's
        orientation; they tile the segment (piece 0 starts at its inner edge, piece
        ``p - 1`` ends at its outer edge, neighbours share their boundary exactly) and
        piece ``j``'s area is ``fractions[:, j]`` times the segment's.

    Raises:
        CoilvisValueError: see :func:`share_bounds`.

    Example:
        >>> from coilvis.geometry import circle_layout
        >>> lay = circle_layout(4)
        >>> xs, ys = split_radially(lay.poly_xs, lay.poly_ys, [[0.7, 0.2, 0.1]] * 4)
        >>> xs.shape == (4, 3, lay.n_vertices)
        True
        >>> bool(np.array_equal(xs[:, 0, lay.n_arc + 1:], lay.poly_xs[:, lay.n_arc + 1:]))  # the inner edge
        True
    """
    return radial_pieces(poly_xs, poly_ys, share_bounds(poly_xs, poly_ys, fractions))
