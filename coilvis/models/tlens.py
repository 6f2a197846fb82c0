"""TransformerLens adapter: ``HookedTransformer`` (3.x) and ``TransformerBridge`` (4.x).

The model runs once with hooks: attention patterns are pruned to links layer by layer
(``blocks.{i}.attn.hook_pattern``), and the residual stream is read at
``blocks.0.hook_resid_pre`` (the embedding), ``blocks.{i}.hook_resid_mid`` (after
attention) and ``blocks.{i}.hook_resid_post``. transformer_lens itself is never imported
here: the model object brings everything.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from coilvis.errors import CoilvisValueError

__all__ = ["encode", "forward"]


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
        residuals: also return the residual stream per layer (see
            :func:`coilvis.models.hf.forward_for_record` for the layout).
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
            if layer < n_layers - 1:
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
