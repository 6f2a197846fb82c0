"""Records for the coil's tests: random logits and causal attention, built without a model."""

from __future__ import annotations

import numpy as np

import coilvis


def causal_pattern(rng: np.random.Generator, n_layers: int, n_heads: int, n: int) -> np.ndarray:
    scores = rng.normal(size=(n_layers, n_heads, n, n)) * 2.0
    scores[..., 0] += 1.5  # a sink
    scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def make_record(
    n: int = 24,
    *,
    vocab: list[str] | None = None,
    tokens: list[int] | None = None,
    n_layers: int = 2,
    n_heads: int = 3,
    attention: bool = True,
    seed: int = 0,
) -> coilvis.Record:
    rng = np.random.default_rng(seed)
    if vocab is None:
        vocab = [" the", " cat", " sat", ".", " on", " mat", "\n", "A", " dog", " ran"]
    logits = rng.normal(size=(n, len(vocab))) * 3.0
    if tokens is None:
        tokens = rng.integers(0, len(vocab), size=n).tolist()
    pattern = causal_pattern(rng, n_layers, n_heads, n) if attention else None
    return coilvis.from_logits(logits, tokens=tokens, vocab=vocab, attention=pattern, attention_top_k=4)
