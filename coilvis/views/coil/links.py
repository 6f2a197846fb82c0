"""Which attention links a coil's page holds: no self-links, a threshold, top-k per query, one budget."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coilvis.record import Record
from coilvis.views.coil.attention import AttentionChoice

__all__ = ["select_links"]

_Links = tuple[np.ndarray, np.ndarray, np.ndarray]  # query, key, weight


def _filter_links(q: np.ndarray, k: np.ndarray, w: np.ndarray, *, top_k: int | None, threshold: float, hide_sink: bool) -> _Links:
    """One choice's links without self-links, below ``threshold``, to position 0 (with
    ``hide_sink``), or past the ``top_k`` heaviest of their query."""
    keep = (q != k) & (w >= threshold)
    if hide_sink:
        keep &= k != 0
    q, k, w = q[keep], k[keep], w[keep]
    if top_k is not None and q.size:
        order = np.lexsort((-w, q))
        q, k, w = q[order], k[order], w[order]
        first = np.r_[0, np.flatnonzero(np.diff(q)) + 1]
        rank = np.arange(q.size) - np.repeat(first, np.diff(np.r_[first, q.size]))
        sel = rank < top_k
        q, k, w = q[sel], k[sel], w[sel]
    return q, k, w


def share_budget(counts: Sequence[int], max_links: int) -> list[int]:
    """How many links each choice keeps: choices with few links keep them all, the rest
    split what is left evenly.

    Examples:
        >>> share_budget([2, 100, 50], 60)
        [2, 29, 29]
    """
    budget = [0] * len(counts)
    remaining = max_links
    for done, i in enumerate(sorted(range(len(counts)), key=counts.__getitem__)):
        budget[i] = min(counts[i], remaining // (len(counts) - done))
        remaining -= budget[i]
    return budget


def select_links(
    record: Record,
    choices: tuple[AttentionChoice, ...],
    *,
    top_k: int | None,
    threshold: float,
    hide_sink: bool,
    max_links: int,
) -> tuple[dict[str, np.ndarray], int]:
    """The links to draw, per choice: no self-links, threshold, top-k per query, then the page budget.

    Args:
        record: a Record with attention links.
        choices: the embedded choices (``choice`` c is ``choices[c]``).
        top_k: most keys per query and choice, or None for all.
        threshold: least weight drawn.
        hide_sink: leave out links to position 0.
        max_links: most links over all choices (the heaviest of each choice are kept).

    Returns:
        ``(columns, n_dropped)``: ``query``, ``key``, ``choice`` (int32) and ``weight``
        (float32) of every link kept, each choice's lightest first (heavier links are
        drawn last, on top); ``n_dropped`` the links over the budget.
    """
    assert record.attention is not None
    parts = [
        _filter_links(*record.attention.select(c.layer, c.head), top_k=top_k, threshold=threshold, hide_sink=hide_sink)
        for c in choices
    ]
    counts = [p[0].size for p in parts]
    budget = share_budget(counts, max_links)
    dropped = sum(counts) - sum(budget)
    cols: dict[str, list[np.ndarray]] = {"query": [], "key": [], "weight": [], "choice": []}
    for c, ((q, k, w), b) in enumerate(zip(parts, budget, strict=True)):
        if b < q.size:
            top = np.argpartition(-w, b - 1)[:b] if b > 0 else np.zeros(0, dtype=np.int64)
            q, k, w = q[top], k[top], w[top]
        order = np.argsort(w, kind="stable")  # heavier links drawn last, on top
        cols["query"].append(q[order].astype(np.int32))
        cols["key"].append(k[order].astype(np.int32))
        cols["weight"].append(w[order].astype(np.float32))
        cols["choice"].append(np.full(q.size, c, dtype=np.int32))
    out = {
        name: (np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.float32 if name == "weight" else np.int32))
        for name, arrays in cols.items()
    }
    return out, dropped
