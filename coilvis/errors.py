"""The errors coilvis raises.

Every error coilvis raises on bad input is a subclass of both :class:`CoilvisError`
and the builtin that fits (:class:`ValueError` or :class:`TypeError`), so callers can
catch either.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

__all__ = [
    "CoilvisError",
    "CoilvisValueError",
    "CoilvisTypeError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "RecordFormatError",
    "check_int",
]


class CoilvisError(Exception):
    """Base class of every error coilvis raises on purpose."""


class CoilvisValueError(CoilvisError, ValueError):
    """An argument has the right type but a bad value (shape, range, NaN, ...)."""


class CoilvisTypeError(CoilvisError, TypeError):
    """An argument has the wrong type."""


class MissingDependencyError(CoilvisError, ImportError):
    """An optional dependency is not installed; the message says which ``pip install``."""


class ModelNotFoundError(CoilvisError, ValueError):
    """A model id or path could not be resolved (offline, or no such directory)."""


class RecordFormatError(CoilvisError, ValueError):
    """A saved Record file is corrupt or from a newer format version."""


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as an int (numpy integers too, never a bool), at least ``minimum``.

    Raises:
        CoilvisTypeError: not an integer (the message names ``name``).
        CoilvisValueError: below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise CoilvisTypeError(f"{name}: expected an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise CoilvisValueError(f"{name}: expected >= {minimum}, got {value}")
    return int(value)
