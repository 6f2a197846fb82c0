"""A Record from raw logits (and, optionally, an attention pattern), with no model at all."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, check_float, check_int
from coilvis.options import check_k
from coilvis.record import AttentionLinks, Record
from coilvis.runner.assemble import AttentionCollector
from coilvis.runner.inputs import check_attention_pattern, check_logits, token_ids

__all__ = ["from_logits"]


def _links_of_pattern(pattern: torch.Tensor | None, keys_per_query: int, min_weight: float) -> AttentionLinks | None:
    """Pruned links of a checked (n_layers, n_heads, seq_len, seq_len) pattern, or ``None``."""
    if pattern is None:
        return None
    collector = AttentionCollector(keys_per_query=keys_per_query, min_weight=min_weight, layers=None)
    for layer in range(pattern.shape[0]):
        collector(layer, pattern[layer])
    return collector.links(int(pattern.shape[0]))


def from_logits(
    logits: Any,
    *,
    tokens: Any = None,
    vocab: Any = None,
    k: int = 10,
    attention: Any = None,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    model_name: str = "",
    prompt: str | None = None,
) -> Record:
    """Build a Record from raw logits, with no model at all.

    What a TransformerLens user holds works as it is:
    ``from_logits(model(text), tokens=model.to_tokens(text), vocab=model.tokenizer)``.
    Every argument is checked before any statistic is computed.

    Args:
        logits: (seq_len, d_vocab) logits, or (1, seq_len, d_vocab) (a batch of one);
            position i predicts token i + 1.
        tokens: (seq_len,) or (1, seq_len) input token ids (a list, numpy array or
            torch tensor), or their strings (a list, never one bare str). Strings get
            ids from ``vocab`` when it is a list or dict that holds them (a string that
            is the text of several ids is refused: pass ids then); else the
            actual-next-token statistics are unknown. ``None``: positions are unlabelled.
        vocab: a tokenizer, a list of token strings (index = id) or a dict id -> string.
        k: top next tokens kept per position (at most d_vocab; larger values keep all).
        attention: optional (n_layers, n_heads, seq_len, seq_len) or
            (n_heads, seq_len, seq_len) causal attention pattern: probabilities in
            [0, 1], zero for keys after the query. Pruned to links.
        attention_top_k: keys kept in the Record per query and head (and for the
            mean/max over heads); a view's own ``attention_top_k`` chooses how many of
            them it draws.
        attention_min_weight: drop links lighter than this, a weight in [0, 1].
        model_name: a name to show.
        prompt: the prompt text, if any.

    Returns:
        A :class:`~coilvis.record.Record`.

    Raises:
        CoilvisTypeError: an argument has the wrong type (the message names it).
        CoilvisValueError: shapes that do not fit, a batch of more than one, NaN
            logits or weights, attention weights outside [0, 1] or to later positions.
    """
    from coilvis.table import resolve_vocab

    t = check_logits(logits)
    seq_len, d_vocab = int(t.shape[0]), int(t.shape[1])
    k = check_k(k, available=d_vocab)  # the default k=10 fits any vocabulary
    keys_per_query = check_int("attention_top_k", attention_top_k, minimum=1)
    min_weight = check_float("attention_min_weight", attention_min_weight, minimum=0, maximum=1)
    if not isinstance(model_name, str):
        raise CoilvisTypeError(f"model_name: expected a str, got {type(model_name).__name__}")
    if prompt is not None and not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str or None, got {type(prompt).__name__}")
    lookup = resolve_vocab(vocab, d_vocab, name="vocab")
    ids, token_texts = token_ids(tokens, seq_len=seq_len, d_vocab=d_vocab, vocab=vocab)
    pattern = check_attention_pattern(attention, seq_len) if attention is not None else None
    pos_stats = stats.position_stats(t, k=k, next_ids=stats.next_ids_of(ids))
    texts = lookup(sorted(set(np.unique(pos_stats["topk_ids"]).tolist()) | {int(i) for i in ids if i >= 0}))
    if token_texts is None:
        token_texts = [texts[int(i)] if i >= 0 else f"[{p}]" for p, i in enumerate(ids)]
    return Record(
        token_ids=ids,
        tokens=tuple(token_texts),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=model_name,
        prompt=prompt,
        attention=_links_of_pattern(pattern, keys_per_query, min_weight),
        extra={"adapter": "from_logits"},
    )
