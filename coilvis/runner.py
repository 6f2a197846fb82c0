"""Run a prompt through a model (or take raw logits) and keep a :class:`Record`.

>>> import numpy as np, coilvis
>>> logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
>>> rec = coilvis.from_logits(logits, tokens=[0, 2], vocab=["a", "b", "c"])
>>> rec.topk_ids[:, 0].tolist(), round(float(rec.next_prob[0]), 3)
([0, 2], 0.1)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.record import AttentionLinks, Record

__all__ = ["run", "from_logits"]


def _check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not prompt:
        raise CoilvisValueError("prompt: is empty; give at least one character of text")
    return prompt


class _AttentionCollector:
    """Receives each layer's pattern during the forward pass and keeps pruned links."""

    def __init__(self, *, top_k: int, min_weight: float, layers: Sequence[int] | None) -> None:
        self.top_k = top_k
        self.min_weight = min_weight
        self.layers = None if layers is None else set(int(x) for x in layers)
        self.parts: list[dict[str, np.ndarray]] = []
        self.n_heads = 0
        self.n_layers = 0

    def __call__(self, layer: int, pattern: torch.Tensor) -> None:
        self.n_layers = max(self.n_layers, layer + 1)
        self.n_heads = int(pattern.shape[0])
        if self.layers is not None and layer not in self.layers:
            return
        links = stats.prune_attention(pattern, top_k=self.top_k, min_weight=self.min_weight)
        links["layer"] = np.full(links["head"].shape[0], layer, dtype=np.int16)
        self.parts.append(links)

    def links(self, n_layers: int) -> AttentionLinks:
        cat = {k: np.concatenate([p[k] for p in self.parts]) if self.parts else np.empty(0) for k in ("layer", "head", "query", "key", "weight")}
        return AttentionLinks(**cat, n_layers=max(n_layers, self.n_layers), n_heads=self.n_heads, top_k=self.top_k, min_weight=self.min_weight)


def run(
    prompt: str,
    model: Any = None,
    *,
    tokenizer: Any = None,
    k: int = 10,
    attention: bool = False,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    attention_layers: Sequence[int] | None = None,
    lens: bool = False,
    lens_k: int = 5,
    lens_mid: bool = False,
    prepend_bos: bool | None = None,
    progress: bool | None = None,
) -> Record:
    """Run a prompt through a model once and keep what coilvis draws.

    One forward pass (batch of 1, no gradients, on whatever device and dtype the
    model has). Position i of the Record holds the model's prediction for token i + 1.

    Args:
        prompt: the text (non-empty).
        model: ``None`` (the embedded default model), a model id or local folder, a
            transformers causal LM, a :class:`~coilvis.models.LoadedModel`, a
            TransformerLens ``HookedTransformer``/``TransformerBridge``, or an nnsight
            ``LanguageModel``.
        tokenizer: the model's tokenizer, when ``model`` is a transformers model
            object without a folder to load it from.
        k: top next tokens kept per position.
        attention: keep attention as pruned links (needs eager attention; a
            transformers model is switched to it for this pass and switched back).
        attention_top_k: keys kept per query, per head and for the mean/max over heads.
        attention_min_weight: drop links lighter than this.
        attention_layers: keep links of these layers only (default: all).
        lens: also compute logit-lens statistics for every layer (see
            :mod:`coilvis.logit_lens`).
        lens_k: top tokens kept per lens cell.
        lens_mid: also decode the residual after each layer's attention.
        prepend_bos: force a BOS token on or off (``None``: the tokenizer's default).
        progress: show progress bars (default: on for long prompts).

    Returns:
        A :class:`~coilvis.record.Record`.

    Raises:
        CoilvisTypeError: ``prompt`` is not a str, or ``model`` is not a model.
        CoilvisValueError: empty prompt, bad ``k``.
        ModelNotFoundError / MissingDependencyError: see :func:`coilvis.load_model`.
    """
    from coilvis.models import is_transformer_lens, resolve_model
    from coilvis.tokens import detect_scheme, vocab_texts

    prompt = _check_prompt(prompt)
    k = check_int("k", k, minimum=1)
    attention_top_k = check_int("attention_top_k", attention_top_k, minimum=1)
    lens_k = check_int("lens_k", lens_k, minimum=1)
    loaded = resolve_model(model, tokenizer)
    tl = is_transformer_lens(loaded.model)
    t0 = time.perf_counter()
    if tl:
        from coilvis.models import tlens

        ids = tlens.encode(loaded.model, prompt, prepend_bos=prepend_bos)
        forward = tlens.forward
    else:
        from coilvis.models import hf

        ids = hf.encode(loaded.tokenizer, prompt, prepend_bos=prepend_bos)
        forward = hf.forward_for_record
    if ids.shape[0] == 0:
        raise CoilvisValueError("prompt: the tokenizer produced no tokens for this prompt")
    seq_len = int(ids.shape[0])
    collector = _AttentionCollector(top_k=attention_top_k, min_weight=attention_min_weight, layers=attention_layers) if attention else None
    input_ids = torch.as_tensor(ids)
    lens_stats = None
    logits, residuals, n_layers = forward(loaded.model, input_ids, attention_hook=collector, residuals=lens, mid=lens_mid)
    if collector is not None and not collector.parts and collector.layers != set():
        raise CoilvisValueError(
            "attention: the model ran but returned no attention patterns (it uses a fused attention kernel); "
            "load it with attn_implementation='eager'"
        )
    next_ids = np.append(ids[1:], -1)
    d_vocab = int(logits.shape[-1])
    k = min(k, d_vocab)
    pos_stats = stats.position_stats(logits, k=k, next_ids=next_ids)
    forward_s = time.perf_counter() - t0
    if lens:
        from coilvis.logit_lens import compute_lens

        show = progress if progress is not None else seq_len >= 256
        lens_stats = compute_lens(loaded.model, residuals, logits=logits, next_ids=next_ids, k=min(lens_k, d_vocab), progress=show)
    ids_needed = set(ids.tolist()) | set(np.unique(pos_stats["topk_ids"]).tolist())
    if lens_stats is not None:
        ids_needed |= set(np.unique(lens_stats.topk_ids).tolist())
    scheme = detect_scheme(loaded.tokenizer)
    texts = vocab_texts(loaded.tokenizer, sorted(ids_needed), scheme=scheme)
    first_param = next(iter(loaded.model.parameters()), None)
    extra = {
        "device": str(first_param.device) if first_param is not None else "cpu",
        "dtype": str(first_param.dtype).replace("torch.", "") if first_param is not None else "",
        "adapter": "transformer_lens" if tl else "transformers",
        "tokenizer_scheme": scheme,
        "forward_s": round(forward_s, 4),
    }
    return Record(
        token_ids=ids,
        tokens=tuple(texts[int(i)] for i in ids),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=loaded.name,
        prompt=prompt,
        attention=collector.links(n_layers) if collector is not None else None,
        lens=lens_stats,
        extra=extra,
    )


def from_logits(
    logits: Any,
    *,
    tokens: Sequence[int] | Sequence[str] | None = None,
    vocab: Any = None,
    k: int = 10,
    attention: Any = None,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    model_name: str = "",
    prompt: str | None = None,
) -> Record:
    """Build a Record from raw logits, with no model at all.

    Args:
        logits: (seq_len, d_vocab) logits; position i predicts token i + 1.
        tokens: (seq_len,) input token ids, or their strings when ``vocab`` is ``None``
            (then the actual-next-token statistics are unknown unless the strings are
            found in ``vocab``). ``None``: positions are unlabelled.
        vocab: a tokenizer, a list of token strings (index = id) or a dict id -> string.
        k: top next tokens kept per position (at most d_vocab; larger values keep all).
        attention: optional (n_layers, n_heads, seq_len, seq_len) or
            (n_heads, seq_len, seq_len) attention pattern, pruned to links.
        attention_top_k: keys kept per query and head.
        attention_min_weight: drop links lighter than this.
        model_name: a name to show.
        prompt: the prompt text, if any.

    Returns:
        A :class:`~coilvis.record.Record`.
    """
    from coilvis.table import resolve_vocab

    t = stats.as_logits(logits, ndim=(2,))
    seq_len, d_vocab = int(t.shape[0]), int(t.shape[1])
    if seq_len < 1:
        raise CoilvisValueError("logits: no positions (shape (0, d_vocab))")
    k = min(check_int("k", k, minimum=1), d_vocab)  # as in run(): the default k=10 fits any vocabulary
    lookup = resolve_vocab(vocab, d_vocab, name="vocab")
    token_texts: list[str] | None = None
    if tokens is None:
        ids = np.full(seq_len, -1, dtype=np.int64)
    else:
        tok_list = list(tokens)
        if len(tok_list) != seq_len:
            raise CoilvisValueError(f"tokens: expected {seq_len} tokens (one per position), got {len(tok_list)}")
        if all(isinstance(x, str) for x in tok_list):
            token_texts = [str(x) for x in tok_list]
            inverse: dict[str, int] = {}
            if vocab is not None and isinstance(vocab, (Sequence, Mapping)) and not isinstance(vocab, str):
                from coilvis.tokens import vocab_from_list

                for i, s in vocab_from_list(vocab).items():
                    inverse.setdefault(s, i)
            ids = np.array([inverse.get(s, -1) for s in token_texts], dtype=np.int64)
        elif all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in tok_list):
            ids = np.asarray(tok_list, dtype=np.int64)
            bad = np.nonzero((ids < 0) | (ids >= d_vocab))[0]
            if bad.size:
                raise CoilvisValueError(f"tokens: token id {ids[bad[0]]} at position {bad[0]} is out of range [0, {d_vocab})")
        else:
            raise CoilvisTypeError("tokens: expected a sequence of token ids (ints) or of strings")
    next_ids = np.append(ids[1:], -1)
    pos_stats = stats.position_stats(t, k=k, next_ids=next_ids)
    needed = set(np.unique(pos_stats["topk_ids"]).tolist()) | {int(i) for i in ids if i >= 0}
    texts = lookup(sorted(needed))
    if token_texts is None:
        token_texts = [texts[int(i)] if i >= 0 else f"[{p}]" for p, i in enumerate(ids)]
    links = None
    if attention is not None:
        pat = attention if isinstance(attention, torch.Tensor) else torch.as_tensor(np.asarray(attention))
        if pat.dim() == 3:
            pat = pat.unsqueeze(0)
        if pat.dim() != 4 or pat.shape[-1] != seq_len or pat.shape[-2] != seq_len:
            raise CoilvisValueError(
                f"attention: expected (n_layers, n_heads, {seq_len}, {seq_len}) or (n_heads, {seq_len}, {seq_len}), got shape {tuple(pat.shape)}"
            )
        collector = _AttentionCollector(top_k=check_int("attention_top_k", attention_top_k, minimum=1), min_weight=attention_min_weight, layers=None)
        for layer in range(pat.shape[0]):
            collector(layer, pat[layer])
        links = collector.links(int(pat.shape[0]))
    return Record(
        token_ids=ids,
        tokens=tuple(token_texts),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=model_name,
        prompt=prompt,
        attention=links,
        extra={"adapter": "from_logits"},
    )
