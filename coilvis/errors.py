"""The errors coilvis raises.

Every error coilvis raises on bad input is a subclass of both :class:`CoilvisError`
and the builtin that fits (:class:`ValueError` or :class:`TypeError`), so callers can
catch either.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

__all__ = [
    "CoilvisError",
    "CoilvisValueError",
    "CoilvisTypeError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "RecordFormatError",
    "CoilvisFileNotFoundError",
    "ServerUnavailableError",
    "ServerRequestError",
    "ServedModelNotFoundError",
    "NoLogprobsError",
    "InconsistentLogprobsError",
    "check_int",
    "check_float",
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


class CoilvisFileNotFoundError(CoilvisError, FileNotFoundError):
    """A file coilvis was asked to read is not there (the message names the argument)."""


class ServerUnavailableError(CoilvisError, ConnectionError):
    """A model server could not be reached (down, refused, timed out) after the retries."""


class ServerRequestError(CoilvisError, RuntimeError):
    """A model server answered a request with an error (the message gives its status and words)."""


class ServedModelNotFoundError(ModelNotFoundError):
    """A model server does not serve the model asked for (the message lists those it does)."""


class NoLogprobsError(CoilvisError, ValueError):
    """A server's response holds no log-probabilities, or no top alternatives, to draw."""


class InconsistentLogprobsError(CoilvisError, ValueError):
    """A response's log-probabilities contradict each other (rows misaligned, sums above 1, ...)."""


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


def check_float(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """``value`` as a finite float (ints and numpy numbers too, never a bool or a str),
    within ``[minimum, maximum]``.

    Raises:
        CoilvisTypeError: not a real number (the message names ``name``).
        CoilvisValueError: NaN, infinite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise CoilvisTypeError(f"{name}: expected a number, got {type(value).__name__}")
    number = float(value)
    too_low = minimum is not None and number < minimum
    too_high = maximum is not None and number > maximum
    if not math.isfinite(number) or too_low or too_high:
        if minimum is not None and maximum is not None:
            where = f" in [{minimum}, {maximum}]"
        elif minimum is not None:
            where = f" >= {minimum}"
        else:
            where = f" <= {maximum}" if maximum is not None else ""
        raise CoilvisValueError(f"{name}: expected a finite number{where}, got {number}")
    return number
