"""The unwind's timing: how long the playhead dwells on each position.

The unwind spends the viewer's time where the model hesitated. Position ``i`` gets a
weight ``floor_bits + x_i``, where ``x_i`` is its entropy in bits (``pace="entropy"``) or
the surprisal of the actual next token in bits (``pace="surprisal"``; the last position,
whose next token is unknown, uses its entropy). Dwell times are proportional to the
weights and sum to the total duration::

    dwell_i = duration_s * (floor_bits + x_i) / sum_j (floor_bits + x_j)

so a position with 4 bits of entropy holds the playhead ``(floor + 4) / floor`` times
longer than a certain one (0 bits). The floor keeps certain positions visible. For
readers of the views: docs/concepts/unwind.md.

>>> import numpy as np
>>> s = unwind_schedule(np.array([0.0, 1.0, 3.0]), floor_bits=1.0, duration_s=7.0)
>>> s.dwell_s.tolist(), s.start_s.tolist()
([1.0, 2.0, 4.0], [0.0, 1.0, 3.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.record import Record

__all__ = ["Schedule", "unwind_schedule", "record_schedule", "default_duration_s", "PACES"]

PACES = ("entropy", "surprisal")


@dataclass(frozen=True, eq=False)
class Schedule:
    """When the playhead reaches and leaves each position.

    Attributes:
        dwell_s: (seq_len,) seconds spent on each position (all > 0).
        start_s: (seq_len,) time the playhead reaches each position (``start_s[0] == 0``).
        weight: (seq_len,) the pace weights ``floor_bits + x_i``.
        duration_s: total duration, ``sum(dwell_s)``.
        pace: what the weights measure ("entropy" or "surprisal").
        floor_bits: the floor added to every weight.
    """

    dwell_s: np.ndarray
    start_s: np.ndarray
    weight: np.ndarray
    duration_s: float
    pace: str
    floor_bits: float

    def position_at(self, t_s: float) -> float:
        """Fractional position (the playhead) at time ``t_s`` (clipped to the schedule).

        >>> s = unwind_schedule(np.array([0.0, 1.0]), floor_bits=1.0, duration_s=3.0)
        >>> s.position_at(0.5), s.position_at(2.0), s.position_at(10.0)
        (0.5, 1.5, 2.0)
        """
        n = self.dwell_s.shape[0]
        if t_s <= 0:
            return 0.0
        if t_s >= self.duration_s:
            return float(n)
        i = int(np.searchsorted(self.start_s, t_s, side="right") - 1)
        # start_s[i] + dwell_s[i] can round past start_s[i + 1] (or past duration_s for
        # the last position): clamp the fraction so the playhead never overshoots the
        # next position and stays monotone in t_s.
        fraction = min(1.0, float((t_s - self.start_s[i]) / self.dwell_s[i]))
        return i + fraction


def default_duration_s(seq_len: int) -> float:
    """Default total unwind duration: 0.25 s per position, between 4 s and 180 s."""
    return float(min(180.0, max(4.0, 0.25 * seq_len)))


def unwind_schedule(x_bits: np.ndarray, *, floor_bits: float = 0.5, duration_s: float | None = None, pace: str = "entropy") -> Schedule:
    """Dwell times proportional to ``floor_bits + x_bits``.

    Args:
        x_bits: (seq_len,) non-negative pace values in bits (entropy or surprisal).
        floor_bits: added to every value, > 0.
        duration_s: total duration in seconds (default :func:`default_duration_s`).
        pace: a label stored in the schedule.

    Returns:
        :class:`Schedule`.
    """
    x = np.asarray(x_bits, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < 1:
        raise CoilvisValueError(f"x_bits: expected a non-empty 1-D array, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise CoilvisValueError("x_bits: pace values must be finite and >= 0")
    if isinstance(floor_bits, bool) or not isinstance(floor_bits, (int, float)) or not (floor_bits > 0 and math.isfinite(floor_bits)):
        raise CoilvisValueError(f"floor_bits: expected a finite number > 0, got {floor_bits!r}")
    total = default_duration_s(x.shape[0]) if duration_s is None else duration_s
    if isinstance(total, bool) or not isinstance(total, (int, float)):
        raise CoilvisTypeError(f"duration_s: expected a number of seconds, got {type(total).__name__}")
    if not (total > 0 and math.isfinite(total)):
        raise CoilvisValueError(f"duration_s: expected > 0 seconds, got {total}")
    weight = float(floor_bits) + x
    dwell = float(total) * weight / weight.sum()
    start = np.concatenate([[0.0], np.cumsum(dwell)[:-1]])
    return Schedule(dwell_s=dwell, start_s=start, weight=weight, duration_s=float(total), pace=pace, floor_bits=float(floor_bits))


def record_schedule(record: Record, *, pace: str = "entropy", floor_bits: float = 0.5, duration_s: float | None = None) -> Schedule:
    """The unwind schedule of a Record.

    Args:
        record: a Record.
        pace: "entropy" (of the next-token distribution) or "surprisal" (of the actual
            next token; the last position uses its entropy).
        floor_bits: added to every position's value, > 0.
        duration_s: total duration (default :func:`default_duration_s`).

    Returns:
        :class:`Schedule` over ``record.seq_len`` positions.
    """
    if pace not in PACES:
        raise CoilvisValueError(f"pace: expected one of {PACES}, got {pace!r}")
    h = record.entropy_in(bits=True).astype(np.float64)
    if pace == "surprisal":
        s = record.surprisal(bits=True).astype(np.float64)
        x = np.where(np.isfinite(s), s, h)
    else:
        x = h
    x = np.where(np.isfinite(x), x, 0.0)  # a served Record's positions the server sent no distribution for
    return unwind_schedule(np.clip(x, 0.0, None), floor_bits=floor_bits, duration_s=duration_s, pace=pace)
