"""Records with logit-lens statistics built by hand from real distributions (no model).

Every lens row is the softmax of random logits; the statistics (top-k, entropy, KL to
the final row, probability and rank of the actual next token and of the final top
token) are computed from the full distributions with numpy, so tests of the lens view
can compare what it draws with exact values; :func:`lens_record_and_logits` also
returns the full logits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

import coilvis
from coilvis.record import LensStats, Record

#: A vocabulary with hostile and whitespace-only strings among ordinary ones.
HOSTILE_IMG = '<img src=x onerror="window.__pwned=1">'
HOSTILE_SCRIPT = "</script>"
VOCAB: tuple[str, ...] = (
    *(f"w{i}" for i in range(30)),
    " Paris",
    "\n",
    "  ",
    "&amp;",
    "{safe}",
    "@token",
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
)


def lens_record_and_logits(
    tokens: Sequence[str],
    *,
    n_layers: int = 4,
    k: int = 5,
    seed: int = 0,
    vocab: Sequence[str] = VOCAB,
    scale: float = 2.5,
) -> tuple[Record, np.ndarray]:
    """A Record with lens statistics, and the full lens logits it was computed from.

    Args:
        tokens: the input tokens, each a string of ``vocab``.
        n_layers: blocks; the lens has ``n_layers + 1`` rows (``"embed"``, ``"0"``, ...).
        k: top tokens kept per lens cell.
        seed: random seed of the logits.
        vocab: token strings; the id of a token is its index.
        scale: standard deviation of the random logits.

    Returns:
        ``(record, logits)`` with ``logits`` of shape ``(n_layers + 1, seq_len, d_vocab)``;
        its last row is the model's output (the record's final predictions).
    """
    vocab = list(vocab)
    ids = np.array([vocab.index(t) for t in tokens], dtype=np.int64)
    seq_len, d_vocab, n_rows = len(ids), len(vocab), n_layers + 1
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, size=(n_rows, seq_len, d_vocab))
    final = logits[-1]
    record = coilvis.from_logits(final.astype(np.float32), tokens=ids.tolist(), vocab=vocab, k=min(10, d_vocab))

    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    p = np.exp(logp)
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    next_ids = np.append(ids[1:], -1)
    next_prob = np.full((n_rows, seq_len), np.nan)
    next_rank = np.full((n_rows, seq_len), -1, dtype=np.int64)
    for pos in range(seq_len - 1):
        target = next_ids[pos]
        next_prob[:, pos] = p[:, pos, target]
        next_rank[:, pos] = 1 + (logits[:, pos, :] > logits[:, pos, target, None]).sum(axis=-1)
    final_top = np.broadcast_to(final.argmax(axis=-1)[None, :, None], (n_rows, seq_len, 1))
    lens = LensStats(
        layer_names=("embed", *map(str, range(n_layers))),
        topk_ids=order,
        topk_probs=np.take_along_axis(p, order, axis=-1),
        entropy=-(p * logp).sum(axis=-1),
        kl_to_final=(p[-1][None] * (logp[-1][None] - logp)).sum(axis=-1),
        next_prob=next_prob,
        next_rank=next_rank,
        final_top_prob=np.take_along_axis(p, final_top, axis=-1)[..., 0],
        final_top_rank=1 + (logits > np.take_along_axis(logits, final_top, axis=-1)).sum(axis=-1),
    )
    texts = dict(record.vocab)
    texts.update({int(i): vocab[int(i)] for i in np.unique(order)})
    return dataclasses.replace(record, lens=lens, vocab=texts), logits


def lens_record(tokens: Sequence[str], **options: object) -> Record:
    """A Record with lens statistics (see :func:`lens_record_and_logits`)."""
    return lens_record_and_logits(tokens, **options)[0]  # type: ignore[arg-type]
