"""TransformerLens adapter: ``HookedTransformer`` (3.x) and ``TransformerBridge`` (4.x).

:func:`forward` runs the model for :func:`coilvis.run`; :func:`from_cache` builds a
Record from what a TransformerLens user already holds (``run_with_cache``'s cache,
tokens and logits).

The model runs once with hooks: attention patterns are pruned to links layer by layer
(``blocks.{i}.attn.hook_pattern``), and the residual stream is read at
``blocks.0.hook_resid_pre`` (the embedding), ``blocks.{i}.hook_resid_mid`` (after
attention) and ``blocks.{i}.hook_resid_post``. transformer_lens itself is never imported
here: the model object brings everything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int

if TYPE_CHECKING:
    from coilvis.record import Record

__all__ = ["encode", "forward", "from_cache", "cache_tensor"]


def encode(model: Any, prompt: str, *, prepend_bos: bool | None = None) -> np.ndarray:
    """Token ids of a prompt, (seq_len,) int64, through the model's own ``to_tokens``.

    TransformerLens prepends a BOS token by default, which a plain Hugging Face
    tokenizer (GPT-2, SmolLM2) does not; ``prepend_bos=None`` leaves it off, so logits
    agree with the plain transformers run. Pass ``True`` for models trained with BOS.
    """
    toks = model.to_tokens(prompt, prepend_bos=bool(prepend_bos))
    return np.asarray(toks[0].detach().cpu().numpy(), dtype=np.int64)


def _hook_names(model: Any) -> set[str]:
    names = getattr(model, "hook_dict", None)
    return set(names) if names is not None else set()


def forward(
    model: Any,
    input_ids: torch.Tensor,
    *,
    attention_hook: Any = None,
    residuals: bool = False,
    mid: bool = False,
) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]] | None, int]:
    """One hooked forward pass of a TransformerLens model (batch of 1, no gradients).

    Args:
        model: a ``HookedTransformer`` or ``TransformerBridge``.
        input_ids: (seq_len,) token ids.
        attention_hook: called as ``hook(layer, pattern)`` with each layer's
            (n_heads, seq_len, seq_len) pattern.
        residuals: also return the residual stream per layer, in the layout of
            :func:`coilvis.models.hf.forward_for_record`: ``"embed"``, ``"i.mid"`` and
            ``"i"`` for each block, the last block's output (``str(n_layers - 1)``,
            the input of ``ln_final``) included so that the lens checks its decoder.
        mid: also return the residual after attention.

    Returns:
        ``(logits, residuals, n_layers)`` as :func:`coilvis.models.hf.forward_for_record`.
    """
    n_layers = int(model.cfg.n_layers)
    available = _hook_names(model)
    resid: dict[str, torch.Tensor] = {}
    hooks: list[tuple[str, Any]] = []

    def need(name: str) -> str:
        if available and name not in available:
            raise CoilvisValueError(f"model: this TransformerLens model has no hook point {name!r}")
        return name

    if attention_hook is not None:
        for layer in range(n_layers):

            def pattern_hook(t: torch.Tensor, hook: Any, layer: int = layer) -> torch.Tensor:
                attention_hook(layer, t[0])
                return t

            hooks.append((need(f"blocks.{layer}.attn.hook_pattern"), pattern_hook))
    wanted: list[tuple[str, str]] = []
    if residuals:
        wanted.append(("embed", "blocks.0.hook_resid_pre"))
        for layer in range(n_layers):
            if mid:
                wanted.append((f"{layer}.mid", f"blocks.{layer}.hook_resid_mid"))
            # the last block's output is the input of ln_final: the lens decodes it
            # to check its decoder against the logits instead of showing it as a row
            wanted.append((str(layer), f"blocks.{layer}.hook_resid_post"))
        for label, name in wanted:

            def keep(t: torch.Tensor, hook: Any, label: str = label) -> torch.Tensor:
                resid[label] = t[0].detach()
                return t

            hooks.append((need(name), keep))
    device = getattr(model.cfg, "device", None) or next(model.parameters()).device
    ids = input_ids.reshape(1, -1).to(device)
    from coilvis.models.hf import eager_attention, is_hf_model

    inner = getattr(model, "original_model", None)  # a TransformerBridge wraps a transformers model
    ctx = eager_attention(inner) if attention_hook is not None and inner is not None and is_hf_model(inner) else contextlib.nullcontext()
    with ctx, torch.inference_mode():
        logits = model.run_with_hooks(ids, return_type="logits", fwd_hooks=hooks)
    out = [(label, resid[label]) for label, _ in wanted] if residuals else None
    return logits[0], out, n_layers


# --------------------------------------------------------------------------- from a cache


def cache_tensor(cache: Any, name: str) -> torch.Tensor:
    """One entry of a TransformerLens cache, without its batch dimension of one.

    Args:
        cache: an ``ActivationCache`` (batched or after ``remove_batch_dim()``) or a
            dict of hook name -> tensor.
        name: the hook name, e.g. ``"blocks.0.hook_resid_pre"``.

    Returns:
        The detached tensor: (seq_len, d_model) for a residual, (n_heads, seq_len,
        seq_len) for an ``attn.hook_pattern``.

    Raises:
        CoilvisTypeError: ``cache`` is not a mapping of tensors.
        CoilvisValueError: ``name`` is missing, or the batch holds more than one prompt.
    """
    if not callable(getattr(cache, "keys", None)) or not hasattr(cache, "__getitem__"):
        raise CoilvisTypeError(f"cache: expected a TransformerLens ActivationCache, got {type(cache).__name__}")
    try:
        t = cache[name]
    except KeyError:
        raise CoilvisValueError(
            f"cache: has no {name!r}; run the model with run_with_cache() without a names_filter that drops it"
        ) from None
    if not isinstance(t, torch.Tensor):
        raise CoilvisTypeError(f"cache: {name!r} is a {type(t).__name__}, expected a tensor")
    batched = getattr(cache, "has_batch_dim", True) and t.dim() == (4 if name.endswith("hook_pattern") else 3)
    if batched:
        if t.shape[0] != 1:
            raise CoilvisValueError(f"cache: {name!r} has a batch of {t.shape[0]}; coilvis takes one prompt (index the batch first)")
        t = t[0]
    return t.detach()


def _cache_tokens(tokens: Any, seq_len: int, d_vocab: int) -> np.ndarray:
    """(seq_len,) int64 ids from ``(seq_len,)`` or ``(1, seq_len)`` ints (``model.to_tokens``)."""
    if isinstance(tokens, (str, bytes)):
        raise CoilvisTypeError("tokens: expected token ids (model.to_tokens(prompt)), got a string")
    try:
        arr = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
    except (TypeError, ValueError) as exc:
        raise CoilvisTypeError(f"tokens: expected an array of token ids ({exc})") from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise CoilvisTypeError(f"tokens: expected integer token ids, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.shape[0] != seq_len:
        raise CoilvisValueError(f"tokens: expected ({seq_len},) or (1, {seq_len}) ids like the cache, got shape {arr.shape}")
    ids = arr.astype(np.int64)
    bad = np.nonzero((ids < 0) | (ids >= d_vocab))[0]
    if bad.size:
        raise CoilvisValueError(f"tokens: token id {ids[bad[0]]} at position {bad[0]} is out of range [0, {d_vocab})")
    return ids


def _cache_logits(model: Any, cache: Any, logits: Any, seq_len: int) -> torch.Tensor:
    """(seq_len, d_vocab) logits: the given ones, or the last block's output decoded
    through the model's own head (``ln_final`` then ``unembed``)."""
    from coilvis import stats
    from coilvis.logit_lens import decoder_for

    if logits is None:
        final = cache_tensor(cache, f"blocks.{int(model.cfg.n_layers) - 1}.hook_resid_post")
        with torch.inference_mode():
            return decoder_for(model)(final)
    t = stats.as_logits(logits, ndim=(2, 3))
    if t.dim() == 3:
        if t.shape[0] != 1:
            raise CoilvisValueError(f"logits: expected a batch of 1, got shape {tuple(t.shape)}")
        t = t[0]
    if t.shape[0] != seq_len:
        raise CoilvisValueError(f"logits: {t.shape[0]} positions, but the cache holds {seq_len}")
    return t


def _cache_attention(cache: Any, n_layers: int, layers: Sequence[int] | None, top_k: int, min_weight: float) -> Any:
    from coilvis.runner import _AttentionCollector

    if layers is not None:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise CoilvisTypeError(f"attention_layers: expected a sequence of layer numbers, got {type(layers).__name__}")
        for layer in layers:
            if check_int("attention_layers", layer, minimum=0) >= n_layers:
                raise CoilvisValueError(f"attention_layers: layer {layer} is out of range [0, {n_layers})")
    collector = _AttentionCollector(top_k=top_k, min_weight=min_weight, layers=layers)
    for layer in range(n_layers):
        if layers is None or layer in layers:
            collector(layer, cache_tensor(cache, f"blocks.{layer}.attn.hook_pattern").to(torch.float32))
    return collector.links(n_layers)


def from_cache(
    cache: Any,
    *,
    tokens: Any,
    logits: Any = None,
    model: Any = None,
    tokenizer: Any = None,
    k: int = 10,
    lens: bool = True,
    lens_k: int = 5,
    lens_mid: bool = False,
    attention: bool = False,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    attention_layers: Sequence[int] | None = None,
    model_name: str | None = None,
    prompt: str | None = None,
    progress: bool | None = None,
) -> Record:
    """A Record, logit lens included, from a TransformerLens ``ActivationCache``.

    For a user who already ran ``logits, cache = model.run_with_cache(tokens)`` with a
    ``HookedTransformer`` (3.x) or ``TransformerBridge`` (4.x)::

        tokens = model.to_tokens(prompt)
        logits, cache = model.run_with_cache(tokens)
        record = coilvis.from_cache(cache, tokens=tokens, logits=logits, attention=True)

    The lens decodes ``blocks.0.hook_resid_pre`` (row ``"embed"``), each
    ``blocks.{i}.hook_resid_post`` (row ``"i"``) and with ``lens_mid`` each
    ``blocks.{i}.hook_resid_mid`` (``"i.mid"``) through the model's own ``ln_final``,
    its statistics recomputed for every row, and ``unembed``: TransformerLens's own
    logit lens, ``model.unembed(cache.accumulated_resid(apply_ln=True))`` (3.9 and
    later; older releases divided every row by the final row's cached norm scale
    instead). The last block's output is decoded and checked against ``logits``; a
    mismatch raises.

    Args:
        cache: the ``ActivationCache`` (or a plain dict of hook name -> tensor, then
            pass ``model``) of one prompt: batch size 1, or no batch dimension.
        tokens: (seq_len,) or (1, seq_len) int token ids of that run, e.g.
            ``model.to_tokens(prompt)`` (BOS included when the run had it).
        logits: (1, seq_len, d_vocab) or (seq_len, d_vocab) logits of the same run;
            ``None``: the last block's output decoded through the model's head.
        model: the model that filled the cache (default ``cache.model``).
        tokenizer: to show token text (default ``model.tokenizer``).
        k: top next tokens kept per position.
        lens: compute the logit lens (needs the ``hook_resid_*`` entries).
        lens_k: top tokens kept per lens cell.
        lens_mid: also decode the residual after each block's attention.
        attention: keep each layer's ``blocks.{i}.attn.hook_pattern`` as pruned links.
        attention_top_k: keys kept per query, per head and for the mean/max over heads.
        attention_min_weight: drop links lighter than this.
        attention_layers: keep links of these layers only (default: all).
        model_name: a name to show (default ``model.cfg.model_name``).
        prompt: the prompt text, if any.
        progress: show a progress bar for the lens (default: on for long prompts).

    Returns:
        A :class:`~coilvis.record.Record` like :func:`coilvis.run` gives.

    Raises:
        CoilvisTypeError: ``model`` is not a TransformerLens model, or bad argument types.
        CoilvisValueError: a hook the options need is missing from the cache, a batch of
            more than one, shapes that disagree, or a head that does not reproduce
            ``logits``.
    """
    from coilvis import stats
    from coilvis.logit_lens import lens_from_tl_cache
    from coilvis.models import is_transformer_lens
    from coilvis.record import Record
    from coilvis.tokens import detect_scheme, vocab_texts

    model = getattr(cache, "model", None) if model is None else model
    if not is_transformer_lens(model):
        raise CoilvisTypeError(
            f"model: expected the TransformerLens model that filled the cache, got {type(model).__name__}"
        )
    k, lens_k = check_int("k", k, minimum=1), check_int("lens_k", lens_k, minimum=1)
    attention_top_k = check_int("attention_top_k", attention_top_k, minimum=1)
    attention_min_weight = check_float("attention_min_weight", attention_min_weight, minimum=0.0, maximum=1.0)
    if prompt is not None and not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str or None, got {type(prompt).__name__}")
    tokenizer = getattr(model, "tokenizer", None) if tokenizer is None else tokenizer
    if tokenizer is None:
        raise CoilvisTypeError("tokenizer: this TransformerLens model has no tokenizer; pass tokenizer=")
    n_layers = int(model.cfg.n_layers)
    seq_len = int(cache_tensor(cache, "blocks.0.hook_resid_pre").shape[0])
    t_logits = _cache_logits(model, cache, logits, seq_len)
    d_vocab = int(t_logits.shape[-1])
    ids = _cache_tokens(tokens, seq_len, d_vocab)
    next_ids = np.append(ids[1:], -1)
    pos_stats = stats.position_stats(t_logits, k=min(k, d_vocab), next_ids=next_ids)
    lens_stats = None
    if lens:
        show = progress if progress is not None else seq_len >= 256
        lens_stats = lens_from_tl_cache(
            model, cache, logits=t_logits, next_ids=next_ids, k=min(lens_k, d_vocab), mid=lens_mid, progress=show
        )
    links = _cache_attention(cache, n_layers, attention_layers, attention_top_k, attention_min_weight) if attention else None
    needed = set(ids.tolist()) | set(np.unique(pos_stats["topk_ids"]).tolist())
    if lens_stats is not None:
        needed |= set(np.unique(lens_stats.topk_ids).tolist())
    scheme = detect_scheme(tokenizer)
    texts = vocab_texts(tokenizer, sorted(needed), scheme=scheme)
    if model_name is None:
        model_name = str(getattr(model.cfg, "model_name", None) or type(model).__name__)
    elif not isinstance(model_name, str):
        raise CoilvisTypeError(f"model_name: expected a str, got {type(model_name).__name__}")
    return Record(
        token_ids=ids,
        tokens=tuple(texts[int(i)] for i in ids),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=model_name,
        prompt=prompt,
        attention=links,
        lens=lens_stats,
        extra={"adapter": "transformer_lens_cache", "tokenizer_scheme": scheme},
    )
