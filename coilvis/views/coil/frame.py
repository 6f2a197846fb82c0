"""Where the coil sits in its figure: its layouts, the unwind's rows, the frame and its scale."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from coilvis import geometry
from coilvis.errors import CoilvisValueError, check_int

__all__ = ["MAX_ARC_STEPS", "MARGIN_PX", "Frame", "coil_layouts", "rows_layout", "fit_frame"]

#: Most polygon edge steps of one coil (``n_arc`` x ``seq_len``): each is 4 vertices in the page.
MAX_ARC_STEPS = 1_000_000
#: Least space between the coil (with its band) and the frame's edges, in pixels.
MARGIN_PX = 36


def coil_layouts(
    n: int, kind: str, *, n_arc: Any, clockwise: bool
) -> tuple[geometry.Layout, geometry.Layout]:
    """The coil and a coarser copy for the outer band (polygons dominate a page's size).

    The circle-or-spiral choice is :func:`coilvis.geometry.coil_kind`'s; this only
    bounds the polygons' detail.

    Args:
        n: positions.
        kind: ``"spiral"``, ``"circle"`` or ``"auto"`` (a circle up to
            :data:`coilvis.geometry.CIRCLE_MAX_N` positions).
        n_arc: polygon steps along each segment edge, or None (smooth for short prompts,
            about 8k vertices in all for long ones).
        clockwise: wind clockwise.

    Raises:
        CoilvisValueError: ``n_arc`` < 1, or ``n_arc * n`` over :data:`MAX_ARC_STEPS`.
    """
    n_arc = None if n_arc is None else check_int("n_arc", n_arc, minimum=1)
    if n_arc is not None and n_arc * n > MAX_ARC_STEPS:
        raise CoilvisValueError(
            f"n_arc: {n_arc} steps for each of {n} segments is too many polygon steps; "
            f"use at most {max(1, MAX_ARC_STEPS // n)}"
        )
    lay = geometry.coil_layout(n, kind=kind, clockwise=clockwise, n_arc=n_arc)
    cap = max(2, 8192 // n)  # vertices per page stay about 8k x 2, whatever n
    if n_arc is None and lay.n_arc > cap:
        lay = geometry.coil_layout(n, kind=kind, clockwise=clockwise, n_arc=cap)
    band_n_arc = max(1, lay.n_arc // 2)
    band = lay if band_n_arc == lay.n_arc else geometry.coil_layout(n, kind=kind, clockwise=clockwise, n_arc=band_n_arc)
    return lay, band


def rows_layout(lay: geometry.Layout) -> geometry.Layout:
    """Rows below the coil for the unwind, their segments scaled so the rows take at most
    about half the coil's height (``scale = sqrt(W H / (2 * 1.5 * n * arc_len * pitch))``)."""
    x_min, y_min, x_max, y_max = lay.bounds
    width, height = x_max - x_min, y_max - y_min
    scale = math.sqrt(width * height / (3.0 * lay.n * lay.arc_len * lay.pitch))
    scale = float(min(1.0, max(scale, 0.05)))
    return geometry.wrapped_line_layout(lay, scale=scale, y_top=y_min - lay.pitch)


@dataclass(frozen=True)
class Frame:
    """The figure's drawing area: its size in pixels and the data it shows (1:1 aspect).

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels (taller than asked when the unwind's rows go below).
        px_per_unit: screen pixels per data unit.
        x_start, x_end, y_start, y_end: the ranges shown, data units.
    """

    width: int
    height: int
    px_per_unit: float
    x_start: float
    x_end: float
    y_start: float
    y_end: float


def fit_frame(lay: geometry.Layout, line: geometry.Layout, *, width: int, height: int, animate: bool) -> Frame:
    """The coil and its band fitted in a ``width`` x ``height`` frame with a margin.

    With ``animate`` the rows the coil unwinds into (``line``) go below it: the frame
    grows taller at the same scale (at most 3 times ``height``), the coil at its top; rows
    that still overflow are reached by panning.
    """
    gap = lay.pitch - lay.band_width
    x_min, y_min, x_max, y_max = lay.bounds
    pad = gap + (1.2 * lay.pitch if lay.kind == "circle" else 0.6 * lay.pitch)
    x_min, x_max, y_min, y_max = x_min - pad, x_max + pad, y_min - pad, y_max + pad
    px_per_unit = min((width - 2 * MARGIN_PX) / (x_max - x_min), (height - 2 * MARGIN_PX) / (y_max - y_min))
    if animate:  # the rows the coil unwinds into go below it: a taller frame, same scale
        y_low = min(y_min, line.bounds[1] - pad)
        height = int(min(3 * height, round(height + (y_min - y_low) * px_per_unit)))
        y_min = y_low
    cx, cy = 0.5 * (x_min + x_max), 0.5 * (y_min + y_max)
    half_w, half_h = 0.5 * width / px_per_unit, 0.5 * height / px_per_unit
    if animate:  # keep the coil at the top of a frame the rows may overflow (then pan)
        cy = y_max + 0.5 * MARGIN_PX / px_per_unit - half_h
    return Frame(
        width=width,
        height=height,
        px_per_unit=px_per_unit,
        x_start=cx - half_w,
        x_end=cx + half_w,
        y_start=cy - half_h,
        y_end=cy + half_h,
    )
