"""TransformerLens adapter: ``HookedTransformer`` (3.x) and ``TransformerBridge`` (4.x).

:func:`forward` runs the model for :func:`coilvis.run`; the ``cache_*`` functions read
what a TransformerLens user already holds (``run_with_cache``'s cache, tokens and
logits) for :func:`coilvis.from_cache`.

The model runs once with hooks: attention patterns are pruned to links layer by layer
(``blocks.{i}.attn.hook_pattern``), and the residual stream is read, live or from a
cache, in the one layout of :func:`coilvis.models.anatomy.residual_layout` at
``blocks.0.hook_resid_pre`` (the embedding), ``blocks.{i}.hook_resid_mid`` (after
attention) and ``blocks.{i}.hook_resid_post`` (see :func:`hook_name`).
transformer_lens itself is never imported here: the model object brings everything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.models.anatomy import ResidualRow, collect_residuals, decoder_for, residual_layout
from coilvis.models.hf import eager_attention
from coilvis.models.kinds import is_hf_model

__all__ = [
    "encode",
    "hook_name",
    "forward",
    "cache_tensor",
    "cache_tokens",
    "cache_logits",
    "cache_residuals",
    "cache_patterns",
]

_RESIDUAL_HOOKS = {"pre": "hook_resid_pre", "mid": "hook_resid_mid", "post": "hook_resid_post"}


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


def hook_name(row: ResidualRow) -> str:
    """The TransformerLens hook point of a residual row, e.g. ``"blocks.3.hook_resid_post"``.

    >>> from coilvis.models.anatomy import residual_layout
    >>> [hook_name(row) for row in residual_layout(1, mid=True)]
    ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.0.hook_resid_post']
    """
    return f"blocks.{row.layer}.{_RESIDUAL_HOOKS[row.where]}"


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
            :func:`coilvis.models.anatomy.residual_layout`, the last block's output
            (the input of ``ln_final``) included so that the lens checks its decoder.
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
    layout = residual_layout(n_layers, mid=mid) if residuals else ()
    for row in layout:

        def keep(t: torch.Tensor, hook: Any, name: str = row.name) -> torch.Tensor:
            resid[name] = t[0].detach()
            return t

        hooks.append((need(hook_name(row)), keep))
    device = getattr(model.cfg, "device", None) or next(model.parameters()).device
    ids = input_ids.reshape(1, -1).to(device)
    inner = getattr(model, "original_model", None)  # a TransformerBridge wraps a transformers model
    ctx = eager_attention(inner) if attention_hook is not None and inner is not None and is_hf_model(inner) else contextlib.nullcontext()
    with ctx, torch.inference_mode():
        logits = model.run_with_hooks(ids, return_type="logits", fwd_hooks=hooks)
    out = collect_residuals(layout, lambda row: resid[row.name]) if residuals else None
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


def cache_tokens(tokens: Any, seq_len: int, d_vocab: int) -> np.ndarray:
    """(seq_len,) int64 ids from ``(seq_len,)`` or ``(1, seq_len)`` ints (``model.to_tokens``).

    Raises:
        CoilvisTypeError: a string, or not integers.
        CoilvisValueError: a shape unlike the cache's, or an id outside [0, d_vocab).
    """
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


def cache_logits(model: Any, cache: Any, logits: Any, seq_len: int) -> torch.Tensor:
    """(seq_len, d_vocab) logits: the given ones (a batch of one squeezed), or, when
    ``logits`` is ``None``, the last block's output decoded through the model's own head
    (``ln_final`` then ``unembed``).

    Raises:
        CoilvisValueError: a batch of more than one, or a length unlike the cache's.
    """
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


def cache_residuals(model: Any, cache: Any, *, mid: bool = False) -> list[tuple[str, torch.Tensor]]:
    """The residual rows of a cache, in the layout of :func:`coilvis.models.anatomy.residual_layout`.

    Args:
        model: the TransformerLens model that filled the cache (for its layer count).
        cache: its ``ActivationCache`` (batch of one, or none) or a dict of hook name -> tensor.
        mid: include ``blocks.{i}.hook_resid_mid``.

    Returns:
        ``(name, (seq_len, d_model) tensor)`` pairs, the last block's output last.

    Raises:
        CoilvisValueError / CoilvisTypeError: as :func:`cache_tensor`.
    """
    layout = residual_layout(int(model.cfg.n_layers), mid=mid)
    return collect_residuals(layout, lambda row: cache_tensor(cache, hook_name(row)))


def cache_patterns(cache: Any, n_layers: int, layers: Sequence[int] | None) -> Iterator[tuple[int, torch.Tensor]]:
    """``(layer, (n_heads, seq_len, seq_len) float32 pattern)`` of the cached layers.

    Args:
        cache: the ``ActivationCache`` holding ``blocks.{i}.attn.hook_pattern``.
        n_layers: the model's number of blocks.
        layers: the layers to read (default: all), each in [0, n_layers); checked
            before anything is read.

    Raises:
        CoilvisTypeError: ``layers`` is not a sequence of ints.
        CoilvisValueError: a layer out of range, or a pattern missing from the cache.
    """
    if layers is not None:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise CoilvisTypeError(f"attention_layers: expected a sequence of layer numbers, got {type(layers).__name__}")
        for layer in layers:
            if check_int("attention_layers", layer, minimum=0) >= n_layers:
                raise CoilvisValueError(f"attention_layers: layer {layer} is out of range [0, {n_layers})")
    return (
        (layer, cache_tensor(cache, f"blocks.{layer}.attn.hook_pattern").to(torch.float32))
        for layer in range(n_layers)
        if layers is None or layer in layers
    )
