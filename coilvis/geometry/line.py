"""Straight layouts: the coil's segments laid on one line or in rows, the unwind's targets."""

from __future__ import annotations

import math

import numpy as np

from coilvis.errors import CoilvisValueError, check_float
from coilvis.geometry._checks import check_positive
from coilvis.geometry.layout import Layout, check_layout, layout_bounds

__all__ = ["unwound_layout", "wrapped_line_layout"]


def unwound_layout(
    layout: Layout, *, x_start: float | None = None, y_centre: float | None = None
) -> Layout:
    """The coil's segments laid straight, left to right, as a timeline.

    Segment ``i`` covers ``x`` in ``x_start + [i, i + 1) * arc_len`` (centre at
    ``x_start + (i + 0.5) * arc_len``), so the line is ``n * arc_len`` long, with the
    coil's band width and polygon vertex count. The coil's outer side goes below the line
    for a counter-clockwise coil and above it for a clockwise one, so segments keep their
    orientation while unwinding (arcs then go on the other side, group bands on this one).

    Args:
        layout: a ``"spiral"`` or ``"circle"`` layout.
        x_start: x where segment 0 starts (default: the coil's left bound).
        y_centre: y of the centre line (default: one ``pitch`` below the coil's
            bottom bound).

    Returns:
        A ``Layout`` of kind ``"line"``: ``angle_rad = 0``, ``r`` and ``theta_rad`` the
        polar coordinates of the centres, polygons ``(n, 2 * (n_arc + 1))``.

    Example:
        >>> from coilvis.geometry import spiral_layout
        >>> line = unwound_layout(spiral_layout(10), x_start=0.0, y_centre=0.0)
        >>> line.x[:3].tolist(), float(line.poly_xs[-1].max()), line.bounds[1::2]
        ([0.5, 1.5, 2.5], 10.0, (-0.4, 0.4))
    """
    layout = check_layout(layout)
    if layout.kind not in ("spiral", "circle"):
        raise CoilvisValueError(
            f"layout: expected a 'spiral' or 'circle' layout, got kind={layout.kind!r}"
        )
    x0 = layout.bounds[0] if x_start is None else check_float("x_start", x_start)
    yc = layout.bounds[1] - layout.pitch if y_centre is None else check_float("y_centre", y_centre)
    n, n_arc, step = layout.n, layout.n_arc, layout.arc_len
    half = 0.5 * layout.band_width
    x_edge = x0 + np.arange(n * n_arc + 1, dtype=np.float64) * (step / n_arc)
    idx = np.arange(n)[:, None] * n_arc + np.arange(n_arc + 1)[None, :]
    out_sign = 1.0 if layout.clockwise else -1.0
    poly_xs = np.concatenate([x_edge[idx], x_edge[idx][:, ::-1]], axis=1)
    poly_ys = np.concatenate(
        [
            np.full((n, n_arc + 1), yc + out_sign * half),
            np.full((n, n_arc + 1), yc - out_sign * half),
        ],
        axis=1,
    )
    x = x0 + (np.arange(n, dtype=np.float64) + 0.5) * step
    return _line_layout(layout, x, np.full(n, yc), poly_xs, poly_ys)


def _line_layout(
    coil: Layout, x: np.ndarray, y: np.ndarray, poly_xs: np.ndarray, poly_ys: np.ndarray, *, scale: float = 1.0
) -> Layout:
    """A ``"line"`` layout of straight segments (angle 0) made from a coil, sizes times ``scale``."""
    zeros = np.zeros(x.shape[0])
    return Layout(
        kind="line",
        x=x,
        y=y,
        angle_rad=zeros,
        label_angle_rad=zeros,
        r=np.hypot(x, y),
        theta_rad=np.arctan2(y, x),
        arc_len=coil.arc_len * scale,
        band_width=coil.band_width * scale,
        pitch=coil.pitch * scale,
        poly_xs=poly_xs,
        poly_ys=poly_ys,
        bounds=layout_bounds(poly_xs, poly_ys),
        clockwise=coil.clockwise,
        n_arc=coil.n_arc,
    )


def wrapped_line_layout(
    layout: Layout,
    *,
    row_len: float | None = None,
    row_pitch: float | None = None,
    x_start: float | None = None,
    y_top: float | None = None,
    scale: float = 1.0,
) -> Layout:
    """The coil's segments laid straight in rows, like lines of text, below the coil.

    A long coil unwound into one line would be ``n * arc_len`` long (4,096 positions:
    4,096 units beside a coil ~75 units wide); wrapped into rows as wide as the coil, the
    timeline reads left to right, top to bottom, and fits under it.

    Args:
        layout: a ``"spiral"`` or ``"circle"`` layout.
        row_len: length of a row (default: the coil's width, at least one segment).
        row_pitch: distance between rows (default: ``1.5 * pitch``).
        x_start: x where each row starts (default: the coil's left bound).
        y_top: y of the first row's centre line (default: one ``pitch`` below the coil).
        scale: size of the segments on the rows relative to the coil's (0 < scale <= 1),
            so a long prompt's rows take less room; ``row_pitch`` scales with it.

    Returns:
        A ``Layout`` of kind ``"line"``: segment ``i`` sits in row ``i // per_row`` at
        column ``i % per_row`` (``per_row = floor(row_len / arc_len)``), ``angle_rad = 0``;
        its polygon is the one :func:`unwound_layout` gives, moved there.

    Example:
        >>> from coilvis.geometry import spiral_layout
        >>> lay = spiral_layout(10)
        >>> w = wrapped_line_layout(lay, row_len=4.0, row_pitch=2.0, x_start=0.0, y_top=0.0)
        >>> w.x[:5].tolist(), w.y[[0, 3, 4, 9]].tolist()
        ([0.5, 1.5, 2.5, 3.5, 0.5], [0.0, 0.0, -2.0, -4.0])
    """
    straight = unwound_layout(layout, x_start=0.0, y_centre=0.0)  # checks the layout
    x_min, y_min, x_max, _ = layout.bounds
    length = (x_max - x_min) if row_len is None else check_positive("row_len", row_len)
    scale = check_positive("scale", scale)
    if scale > 1.0:
        raise CoilvisValueError(f"scale: expected 0 < scale <= 1, got {scale}")
    pitch_rows = 1.5 * layout.pitch * scale if row_pitch is None else check_positive("row_pitch", row_pitch)
    x0 = x_min if x_start is None else check_float("x_start", x_start)
    y0 = y_min - layout.pitch if y_top is None else check_float("y_top", y_top)
    n, step = layout.n, layout.arc_len * scale
    per_row = max(1, int(math.floor(length / step + 1e-9)))
    row, col = np.divmod(np.arange(n), per_row)
    x = x0 + (col + 0.5) * step
    y = y0 - row * pitch_rows
    poly_xs = x[:, None] + scale * (straight.poly_xs - straight.x[:, None])
    poly_ys = y[:, None] + scale * (straight.poly_ys - straight.y[:, None])
    return _line_layout(layout, x, y, poly_xs, poly_ys, scale=scale)
