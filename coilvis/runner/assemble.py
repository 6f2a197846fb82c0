"""What the runs share: attention links collected layer by layer, and the Record of a tokenizer's ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.record import AttentionLinks, LensStats, Record

__all__ = ["AttentionCollector", "check_progress", "show_progress", "tokenizer_record"]


class AttentionCollector:
    """Receives each layer's pattern (during the forward pass, or read from a cache) and
    keeps its ``keys_per_query`` strongest keys per query as links."""

    def __init__(self, *, keys_per_query: int, min_weight: float, layers: frozenset[int] | None) -> None:
        self.keys_per_query = keys_per_query
        self.min_weight = min_weight
        self.layers = layers
        self.parts: list[dict[str, np.ndarray]] = []
        self.n_heads = 0
        self.n_layers = 0

    def __call__(self, layer: int, pattern: torch.Tensor) -> None:
        self.n_layers = max(self.n_layers, layer + 1)
        self.n_heads = int(pattern.shape[0])
        if self.layers is not None and layer not in self.layers:
            return
        links = stats.prune_attention(pattern, top_k=self.keys_per_query, min_weight=self.min_weight)
        links["layer"] = np.full(links["head"].shape[0], layer, dtype=np.int16)
        self.parts.append(links)

    def links(self, n_layers: int) -> AttentionLinks:
        cat = {k: np.concatenate([p[k] for p in self.parts]) if self.parts else np.empty(0) for k in ("layer", "head", "query", "key", "weight")}
        return AttentionLinks(
            **cat, n_layers=max(n_layers, self.n_layers), n_heads=self.n_heads, top_k=self.keys_per_query, min_weight=self.min_weight
        )


def check_progress(progress: Any) -> bool | None | Callable[[int, int], None]:
    """``progress=``: True, False, None (automatic) or a callable ``(done, total)``."""
    if callable(progress):
        return progress
    from coilvis.runner.inputs import check_flag

    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        from coilvis.errors import CoilvisTypeError

        raise CoilvisTypeError(f"progress: expected True, False, None or a callable (done, total), got {type(progress).__name__}")
    return check_flag("progress", progress, optional=True)


def show_progress(progress: bool | None | Callable[[int, int], None], seq_len: int) -> bool | Callable[[int, int], None]:
    """The lens's progress: a callable as given, a bar as asked, else a bar for long prompts."""
    if callable(progress):
        return progress
    return progress if progress is not None else seq_len >= 256


def tokenizer_record(
    tokenizer: Any,
    ids: np.ndarray,
    pos_stats: dict[str, np.ndarray],
    *,
    d_vocab: int,
    model_name: str,
    prompt: str | None,
    lens_stats: LensStats | None,
    attention: AttentionLinks | None,
    meta: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Record:
    """The Record of a tokenizer's ids: the text of every id it mentions (inputs, top-k
    and lens top-k), and ``extra`` = ``meta``, the tokenizer's scheme, then ``extra``."""
    from coilvis.tokens import detect_scheme, vocab_texts

    needed = set(ids.tolist()) | set(np.unique(pos_stats["topk_ids"]).tolist())
    if lens_stats is not None:
        needed |= set(np.unique(lens_stats.topk_ids).tolist())
    scheme = detect_scheme(tokenizer)
    texts = vocab_texts(tokenizer, sorted(needed), scheme=scheme)
    return Record(
        token_ids=ids,
        tokens=tuple(texts[int(i)] for i in ids),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=model_name,
        prompt=prompt,
        attention=attention,
        lens=lens_stats,
        extra={**meta, "tokenizer_scheme": scheme, **(extra or {})},
    )
