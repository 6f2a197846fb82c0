"""Argument checks and read-only array copies shared by the geometry modules."""

from __future__ import annotations

from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float

__all__ = ["check_positive", "check_positions", "frozen"]


def check_positive(name: str, value: Any) -> float:
    """``value`` as a finite float > 0 (errors name ``name``)."""
    out = check_float(name, value)
    if out <= 0.0:
        raise CoilvisValueError(f"{name}: expected > 0, got {out}")
    return out


def check_positions(name: str, value: Any, n: int, *, end: bool = False) -> np.ndarray:
    """(m,) integer positions in ``[0, n)``, or in ``[1, n]`` for ends of half-open ranges.

    Returns:
        (m,) int64 copy of ``value``.
    """
    low, high = (1, n + 1) if end else (0, n)
    arr = np.asarray(value)
    if arr.size == 0 and arr.ndim == 1:
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise CoilvisTypeError(f"{name}: expected integer positions, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise CoilvisValueError(f"{name}: expected shape (m,), got {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < low or arr.max() >= high):
        bad = int(arr[(arr < low) | (arr >= high)][0])
        raise CoilvisValueError(f"{name}: expected values in [{low}, {high}), got {bad}")
    return arr


def frozen(arr: Any) -> np.ndarray:
    """A private read-only float64 copy: never freezes (or aliases) the caller's array."""
    out = np.array(arr, dtype=np.float64, order="C", copy=True)
    out.setflags(write=False)
    return out
