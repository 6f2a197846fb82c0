"""Checks of what users hand :func:`coilvis.compare`: alignment, the metric's tokens, labels, mover counts.

Each check names the argument it refuses and runs before any model does.

Example:
    >>> metric_spec((" Mary", " John"))
    ((' Mary',), (' John',))
    >>> aligned(3, 5, align="end")
    (0, 2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.tokens import display

__all__ = ["ALIGNS", "aligned", "check_align", "check_label", "check_movers", "first_difference", "metric_spec", "resolve_metric"]

#: ``align=`` values: ``None`` (equal lengths required) or ``"end"`` (the last positions).
ALIGNS = (None, "end")
#: Top movers kept each way per position when a caller gives none.
DEFAULT_MOVERS = 10

MetricSide = tuple[str | int, ...]


def check_align(align: Any) -> str | None:
    """``None`` or ``"end"``."""
    if align is None:
        return None
    if not isinstance(align, str) or align not in ALIGNS:
        raise CoilvisValueError(f"align: expected None or 'end', got {align!r}")
    return align


def check_label(name: str, label: Any, default: str) -> str:
    """A short run name (``None``: ``default``)."""
    if label is None:
        return default
    if not isinstance(label, str):
        raise CoilvisTypeError(f"{name}: expected a str, got {type(label).__name__}")
    return label


def check_movers(movers: Any) -> int:
    """Top movers kept each way, >= 1."""
    return check_int("movers", movers, minimum=1)


def first_difference(ids_a: np.ndarray, ids_b: np.ndarray) -> int:
    """The first position where two id sequences differ (the shorter length if one is a prefix)."""
    n = min(ids_a.shape[0], ids_b.shape[0])
    diff = np.nonzero(ids_a[:n] != ids_b[:n])[0]
    return int(diff[0]) if diff.size else n


def aligned(n_a: int, n_b: int, *, align: str | None, describe: Callable[[int], str] | None = None) -> tuple[int, int, int]:
    """``(offset_a, offset_b, n_pos)`` of a position-wise comparison of runs of ``n_a`` and
    ``n_b`` positions.

    Args:
        n_a: positions of run a.
        n_b: positions of run b.
        align: ``None`` (lengths must be equal) or ``"end"`` (compare the last
            ``min(n_a, n_b)`` positions of each).
        describe: given the first differing position, a few words naming the tokens
            there, for the error message.

    Raises:
        CoilvisValueError: lengths differ and ``align`` is None.
    """
    if n_a == n_b:
        return 0, 0, n_a
    if align == "end":
        n = min(n_a, n_b)
        return n_a - n, n_b - n, n
    where = f" ({describe(min(n_a, n_b))})" if describe is not None else ""
    raise CoilvisValueError(
        f"b: has {n_b} tokens and a has {n_a}; a position-wise comparison needs equal lengths{where}. "
        f"Make the prompts tokenize to the same length, or pass align='end' to compare the last {min(n_a, n_b)} positions"
    )


def _side(value: Any, which: str) -> MetricSide:
    items = [value] if isinstance(value, (str, int, np.integer)) else value
    if isinstance(items, (bytes, bytearray)) or not isinstance(items, Sequence) or not items:
        raise CoilvisTypeError(f"metric: the {which} side must be a token (str or id) or a non-empty list of them, got {value!r}")
    out: list[str | int] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, np.integer)):
            raise CoilvisTypeError(f"metric: the {which} side holds {item!r}; give token strings or ids")
        if isinstance(item, str) and not item:
            raise CoilvisValueError(f"metric: the {which} side holds an empty string")
        out.append(item if isinstance(item, str) else int(item))
    return tuple(out)


def metric_spec(metric: Any) -> tuple[MetricSide, MetricSide] | None:
    """``(plus, minus)`` of a ``metric=`` argument: two tokens, or two lists of tokens
    (strings or ids); ``None`` passes through."""
    if metric is None:
        return None
    if isinstance(metric, (str, bytes)) or not isinstance(metric, Sequence) or len(metric) != 2:
        raise CoilvisTypeError(
            f"metric: expected two tokens or two lists of tokens, e.g. (' Mary', ' John'), got {metric!r}"
        )
    return _side(metric[0], "first"), _side(metric[1], "second")


def resolve_metric(
    spec: tuple[MetricSide, MetricSide], *, encode: Callable[[str], list[int]], text_of: Callable[[int], str], d_vocab: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...], tuple[str, ...]]:
    """Token ids and texts of a metric: each string must be exactly one token.

    Args:
        spec: from :func:`metric_spec`.
        encode: text -> token ids, without special tokens.
        text_of: token id -> raw text.
        d_vocab: vocabulary size (ids must lie in ``[0, d_vocab)``).

    Returns:
        ``(plus_ids, minus_ids, plus_text, minus_text)``.

    Raises:
        CoilvisValueError: a string is not one token (the message says how it tokenizes),
            or an id is out of range.
    """
    sides: list[tuple[int, ...]] = []
    for side in spec:
        ids: list[int] = []
        for item in side:
            if isinstance(item, int):
                if not 0 <= item < d_vocab:
                    raise CoilvisValueError(f"metric: token id {item} is outside the vocabulary [0, {d_vocab})")
                ids.append(item)
                continue
            got = list(encode(item))
            if len(got) != 1:
                parts = " + ".join(f"{display(text_of(i))!s} ({i})" for i in got) or "no tokens"
                raise CoilvisValueError(
                    f"metric: {item!r} is not one token of the model's vocabulary; it tokenizes as {parts}. "
                    "Give a single token (often with its leading space, like ' Mary') or its id"
                )
            ids.append(int(got[0]))
        sides.append(tuple(ids))
    plus, minus = sides
    return plus, minus, tuple(text_of(i) for i in plus), tuple(text_of(i) for i in minus)
