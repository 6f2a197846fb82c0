"""The coil's per-position data: statistics, the tooltip's top-k table, polygons, centres and anchors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coilvis import geometry
from coilvis.record import Record
from coilvis.tokens import display

__all__ = ["stat_columns", "topk_columns", "segment_columns"]

_TIP_LABEL_MAX_CHARS = 40
_TOPK_LABEL_MAX_CHARS = 32


def stat_columns(record: Record) -> dict[str, np.ndarray]:
    """The statistics a coil can colour by, one (n,) float32 column each.

    Returns:
        ``top_prob_pct`` (probability of the model's top next token, %), ``prob_pct``,
        ``entropy_bits``, ``surprisal_bits`` and ``rank`` (of the actual next token: %,
        bits, bits, 1-based; NaN where the next token is unknown).
    """
    rank = np.where(record.next_rank >= 1, record.next_rank, np.nan).astype(np.float32)
    return {
        "top_prob_pct": (record.topk_probs[:, 0].astype(np.float64) * 100.0).astype(np.float32),
        "prob_pct": (record.next_prob.astype(np.float64) * 100.0).astype(np.float32),
        "entropy_bits": record.entropy_in(bits=True),
        "surprisal_bits": record.surprisal(bits=True),
        "rank": rank,
    }


def topk_columns(record: Record, *, tooltip_k: int, table_k: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-k and next-token columns as indices into one table of vocabulary labels.

    A page holds each token's label once (``coil_vocab_source``); per position it holds
    the (n, k) indices of its top-k tokens, their probabilities, and the index of the
    actual next token. The tooltip's formatter turns them into text in the browser.
    ``table_k`` > ``tooltip_k`` puts more of each position's top tokens in the table
    (the mass rings' shares), without listing them in the tooltip.

    Returns:
        ``(columns, vocab)``: the segment columns ``label``, ``topk_vocab``,
        ``topk_pct`` and ``next_vocab``, and the vocabulary table's columns
        ``token_id`` and ``label``.
    """
    ids = record.topk_ids[:, :tooltip_k]
    known_tokens = record.token_ids[record.token_ids >= 0]
    table = np.unique(np.concatenate([record.topk_ids[:, : max(tooltip_k, table_k)].ravel(), known_tokens]))
    next_ids = record.next_ids
    next_local = np.searchsorted(table, next_ids).clip(0, max(table.size - 1, 0))
    next_vocab = np.where((next_ids >= 0) & np.isfinite(record.next_logprob), next_local, -1)
    columns = {
        "label": [display(t, max_len=_TIP_LABEL_MAX_CHARS) for t in record.tokens],
        "topk_vocab": np.searchsorted(table, ids).astype(np.int32),
        "topk_pct": (record.topk_probs[:, :tooltip_k].astype(np.float64) * 100.0).astype(np.float32),
        "next_vocab": next_vocab.astype(np.int32),
    }
    vocab = {
        "token_id": table.astype(np.int64),
        "label": [display(record.token_text(int(t)), max_len=_TOPK_LABEL_MAX_CHARS) for t in table.tolist()],
    }
    return columns, vocab


def segment_columns(
    record: Record,
    lay: geometry.Layout,
    line: geometry.Layout,
    *,
    topk: Mapping[str, Any],
    stats: Mapping[str, np.ndarray],
    word: np.ndarray,
    sentence: np.ndarray,
    schedule: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Every column of ``coil_segment_source`` (see :mod:`coilvis.views.coil`), in page order.

    Args:
        record: the Record drawn.
        lay: the coil's layout.
        line: the layout the segments unwind to.
        topk: the top-k columns (:func:`topk_columns`).
        stats: the statistics (:func:`stat_columns`).
        word: (n,) word index of each position.
        sentence: (n,) sentence index of each position.
        schedule: the unwind's ``start_s`` and ``dwell_s`` columns, or None.
    """
    n = record.seq_len
    f32 = np.float32
    anchor_x, anchor_y = geometry.arc_anchors(lay, anchor="inner")
    return {
        "pos": np.arange(n, dtype=np.int32),
        "token": list(record.tokens),
        "token_id": record.token_ids.astype(np.int32),
        **topk,
        **stats,
        "word": word,
        "sentence": sentence,
        "xs": lay.poly_xs.astype(f32),
        "ys": lay.poly_ys.astype(f32),
        "x": lay.x.astype(f32),
        "y": lay.y.astype(f32),
        "angle_rad": lay.angle_rad.astype(f32),
        "x_line": line.x.astype(f32),
        "y_line": line.y.astype(f32),
        "angle_line_rad": line.angle_rad.astype(f32),
        "anchor_x": anchor_x.astype(f32),
        "anchor_y": anchor_y.astype(f32),
        **(schedule or {}),
    }
