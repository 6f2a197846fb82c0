"""Group bands: thin bands just outside the segments, one per group of positions (words, sentences)."""

from __future__ import annotations

from typing import Any

import numpy as np

from coilvis.errors import CoilvisValueError, check_float
from coilvis.geometry._checks import check_positions, check_positive
from coilvis.geometry.layout import Layout, check_layout

__all__ = ["group_band"]


def group_band(
    layout: Layout,
    starts: Any,
    ends: Any,
    *,
    offset: float | None = None,
    width: float | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Thin bands just outside the segments, one per group of positions (words, sentences).

    Group ``g`` spans positions ``[starts[g], ends[g])``. Its band follows the outer edge
    of those segments, from ``offset`` to ``offset + width`` beyond it (measured along
    each edge's outward direction: radially on a coil). On a spiral the band must stay
    clear of the next turn: ``offset + width < pitch - band_width``. For a second level of
    hierarchy, call again with a larger ``offset``.

    Args:
        layout: any ``Layout``.
        starts: (g,) first position of each group.
        ends: (g,) one past the last position of each group, ``starts < ends <= n``.
        offset: gap between a segment's outer edge and the band (default
            ``0.15 * (pitch - band_width)``).
        width: width of the band (default ``0.5 * (pitch - band_width)``).

    Returns:
        ``(xs, ys)``: two lists of g arrays, group ``g``'s of shape
        ``(2 * (ends[g] - starts[g]) * (n_arc + 1),)``: the band's inner side from start
        to end, then its outer side back (open, ready for Bokeh ``patches``).

    Example:
        >>> from coilvis.geometry import spiral_layout
        >>> lay = spiral_layout(20)
        >>> xs, ys = group_band(lay, [0, 3], [3, 20])
        >>> len(xs), xs[0].shape
        (2, (96,))
        >>> r = np.hypot(xs[0], ys[0]) - np.hypot(lay.poly_xs[:3, :16], lay.poly_ys[:3, :16]).min()
        >>> bool(r.min() > 0)
        True
    """
    layout = check_layout(layout)
    n = layout.n
    starts_a = check_positions("starts", starts, n)
    ends_a = check_positions("ends", ends, n, end=True)
    if starts_a.shape != ends_a.shape:
        raise CoilvisValueError(
            f"ends: expected the shape of starts {starts_a.shape}, got {ends_a.shape}"
        )
    if starts_a.size and np.any(ends_a <= starts_a):
        g = int(np.argmax(ends_a <= starts_a))
        raise CoilvisValueError(
            f"ends: expected ends > starts, got group {g} = [{starts_a[g]}, {ends_a[g]})"
        )
    gap = layout.pitch - layout.band_width
    off = 0.15 * gap if offset is None else check_float("offset", offset)
    wid = 0.5 * gap if width is None else check_positive("width", width)
    if off < 0.0:
        raise CoilvisValueError(f"offset: expected >= 0, got {off}")
    if layout.kind == "spiral" and off + wid >= gap:
        raise CoilvisValueError(
            f"offset + width: expected < pitch - band_width ({gap}) so the band stays clear "
            f"of the next turn, got {off + wid}"
        )
    k = layout.n_arc + 1
    out_x, out_y = layout.poly_xs[:, :k], layout.poly_ys[:, :k]
    in_x, in_y = layout.poly_xs[:, k:][:, ::-1], layout.poly_ys[:, k:][:, ::-1]
    dx, dy = out_x - in_x, out_y - in_y
    norm = np.hypot(dx, dy)
    norm = np.where(norm > 0.0, norm, 1.0)
    dx, dy = dx / norm, dy / norm
    near_x, near_y = (out_x + off * dx).ravel(), (out_y + off * dy).ravel()
    far_x, far_y = (out_x + (off + wid) * dx).ravel(), (out_y + (off + wid) * dy).ravel()
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for a, b in zip((starts_a * k).tolist(), (ends_a * k).tolist(), strict=True):
        xs.append(np.concatenate([near_x[a:b], far_x[a:b][::-1]]))
        ys.append(np.concatenate([near_y[a:b], far_y[a:b][::-1]]))
    return xs, ys
