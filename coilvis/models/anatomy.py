"""Model anatomy: where each family keeps its blocks, final norm, output head and residual stream.

Two families are read: transformers causal LMs (by architecture, ``config.model_type``)
and TransformerLens models (``HookedTransformer`` 3.x, ``TransformerBridge`` 4.x). What
the logit lens needs from a model comes from here:

* :func:`residual_layout`: the one order of residual-stream rows every adapter returns
  (``"embed"``, then per block ``"i.mid"`` when asked and ``"i"``); the last block's
  output (:func:`final_row_name`) closes it, and the lens uses that row to check its
  decoder against the model's own logits rather than drawing it.
* :func:`decoder_for`: final norm, output head and logit soft-capping as one function.
* :func:`n_layers_of`, :func:`mid_residual_hooks`, :func:`final_residual_hook`.

Example:
    >>> [row.name for row in residual_layout(2, mid=True)]
    ['embed', '0.mid', '0', '1.mid', '1']
    >>> final_row_name(2)
    '1'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.models.kinds import is_hf_model, is_transformer_lens

__all__ = [
    "ResidualRow",
    "residual_layout",
    "final_row_name",
    "collect_residuals",
    "text_config",
    "n_layers_of",
    "Decoder",
    "decoder_for",
    "mid_residual_hooks",
    "final_residual_hook",
]

#: Attribute names of a transformers model's final norm, looked up on the base model
#: (``model.base_model``) and on its ``decoder`` / ``language_model`` submodules.
_FINAL_NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm", "final_norm")
_NORM_OWNERS = ("", "decoder", "language_model", "text_model")
#: Config attributes that change logits after the output head in ways coilvis does not
#: apply (their meaning differs between architectures: Granite divides by
#: ``logits_scaling``, HyperCLOVA X multiplies by it); a lens would be wrong, so refuse.
_UNSUPPORTED_LOGIT_SCALES = ("logit_scale", "logits_scaling", "output_multiplier", "output_multiplier_scale")
#: Where each architecture (``config.model_type``) keeps the residual after attention:
#: the input of this per-layer module.
_MID_RESIDUAL_INPUT = {
    "llama": "post_attention_layernorm",
    "mistral": "post_attention_layernorm",
    "qwen2": "post_attention_layernorm",
    "qwen3": "post_attention_layernorm",
    "gemma": "post_attention_layernorm",
    "gemma2": "pre_feedforward_layernorm",
    "gemma3": "pre_feedforward_layernorm",
    "gemma3_text": "pre_feedforward_layernorm",
    "gpt2": "ln_2",
}


# --------------------------------------------------------------------------- the residual layout


@dataclass(frozen=True)
class ResidualRow:
    """One row of the residual layout.

    Attributes:
        name: ``"embed"``, ``"i.mid"`` or ``"i"``: the row's name in a lens.
        layer: the block it belongs to (0 for ``"embed"``, the input of block 0).
        where: ``"pre"`` (the input of block ``layer``: the embedding), ``"mid"`` (the
            residual after the block's attention) or ``"post"`` (the block's output).
    """

    name: str
    layer: int
    where: str


def residual_layout(n_layers: int, *, mid: bool = False) -> tuple[ResidualRow, ...]:
    """The rows of residual stream an adapter returns, in lens order.

    ``"embed"``, then for each block ``"i.mid"`` (when ``mid``) and ``"i"``. The last
    row, the last block's output before the final norm (named :func:`final_row_name`),
    is not drawn: the lens decodes a few of its positions and checks them against the
    model's own logits, which are the final row.

    Args:
        n_layers: the model's number of blocks, >= 1.
        mid: include the residual after each block's attention.
    """
    rows = [ResidualRow("embed", 0, "pre")]
    for layer in range(n_layers):
        if mid:
            rows.append(ResidualRow(f"{layer}.mid", layer, "mid"))
        rows.append(ResidualRow(str(layer), layer, "post"))
    return tuple(rows)


def final_row_name(n_layers: int) -> str:
    """Name of the final lens row (the model's own logits): the last block, ``str(n_layers - 1)``."""
    return str(n_layers - 1)


def collect_residuals(
    layout: tuple[ResidualRow, ...], tensor_of: Callable[[ResidualRow], torch.Tensor | None]
) -> list[tuple[str, torch.Tensor]]:
    """``(name, (seq_len, d_model) tensor)`` pairs of a layout, in its order.

    Args:
        layout: from :func:`residual_layout`.
        tensor_of: the tensor an adapter holds for a row, or ``None`` when it has none
            (that row is left out: a model whose final norm is not a module gives no
            check row).
    """
    out = []
    for row in layout:
        t = tensor_of(row)
        if t is not None:
            out.append((row.name, t))
    return out


# --------------------------------------------------------------------------- blocks and head


def text_config(model: Any) -> Any:
    """A transformers model's text config (``config.get_text_config()`` where it exists)."""
    config = model.config
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def _not_a_model(model: Any) -> CoilvisTypeError:
    return CoilvisTypeError(f"model: expected a transformers or TransformerLens model, got {type(model).__name__}")


def n_layers_of(model: Any) -> int:
    """Number of blocks of a transformers or TransformerLens model.

    Raises:
        CoilvisTypeError: ``model`` is neither.
        CoilvisValueError: its config does not say.
    """
    if is_transformer_lens(model):
        return int(model.cfg.n_layers)
    if not is_hf_model(model):
        raise _not_a_model(model)
    config = text_config(model)
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise CoilvisValueError(
        f"model: the config of {type(model).__name__} has no num_hidden_layers / n_layer; "
        "coilvis cannot tell how many layers to decode"
    )


def _is_norm(module: Any) -> bool:
    if isinstance(module, (torch.nn.LayerNorm, getattr(torch.nn, "RMSNorm", torch.nn.LayerNorm))):
        return True
    return isinstance(module, torch.nn.Module) and "norm" in type(module).__name__.lower()


def _hf_final_norm(model: Any) -> tuple[torch.nn.Module, str]:
    base = getattr(model, "base_model", None) or model
    prefix = getattr(model, "base_model_prefix", "") or ""
    looked: list[str] = []
    for owner_name in _NORM_OWNERS:
        owner = getattr(base, owner_name, None) if owner_name else base
        if not isinstance(owner, torch.nn.Module):
            continue
        for attr in _FINAL_NORM_NAMES:
            path = ".".join(p for p in ("model", prefix if base is not model else "", owner_name, attr) if p)
            looked.append(path)
            module = getattr(owner, attr, None)
            if module is not None and _is_norm(module):
                return module, f"{path} ({type(module).__name__})"
    raise CoilvisValueError(
        f"model: coilvis cannot find the final norm of {type(model).__name__} "
        f"(model_type {getattr(model.config, 'model_type', '?')!r}); it looked for a norm module at "
        f"{', '.join(looked)}. The logit lens needs the norm the model applies before its output head."
    )


@dataclass(frozen=True)
class Decoder:
    """What a model applies to its last residual stream to get logits.

    Calling it decodes rows of residual stream: ``resid: (rows, d_model)`` (any float
    dtype, any device) -> ``(rows, d_vocab)`` float32 logits on the head's device,
    ``softcap * tanh(unembed(norm(resid)) / softcap)`` when ``softcap`` is set, else
    ``unembed(norm(resid))``.

    Attributes:
        norm: the model's final norm module (identity when the model has none).
        unembed: the model's output head (its own module, so tied or untied embeddings
            and biases are whatever the model uses).
        softcap: final logit soft-capping (Gemma 2/3), or ``None``.
        description: where the pieces were found, for messages.
        dtype: the dtype rows are cast to before the norm (the head's own).
        device: the device rows are moved to (the head's; ``None``: where they are).
    """

    norm: Callable[[torch.Tensor], torch.Tensor]
    unembed: Callable[[torch.Tensor], torch.Tensor]
    softcap: float | None
    description: str
    dtype: torch.dtype = torch.float32
    device: torch.device | None = None

    def __call__(self, resid: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """Decode ``resid: (rows, d_model)`` to ``(rows, d_vocab)`` float32 logits.

        ``out``: a (rows, d_vocab) float32 buffer on the head's device that the logits
        may be written into (and are, when the head is a plain float32 matrix and bias
        of that device): a fresh block of logits is new memory every call, whose first
        touch costs a sixth to a third of the matmul on a CPU. Read the returned tensor,
        which is ``out`` or a new one.
        """
        x = resid.to(device=self.device or resid.device, dtype=self.dtype).unsqueeze(0)
        head = _plain_head(self.unembed, out) if out is not None else None
        if head is not None and out is not None:
            weight_t, bias = head
            logits = torch.mm(self.norm(x)[0], weight_t, out=out)
            if bias is not None:
                logits.add_(bias)
        else:
            logits = self.unembed(self.norm(x))[0].to(torch.float32)
        if self.softcap is not None:
            logits = torch.tanh(logits.div_(self.softcap), out=logits).mul_(self.softcap)
        return logits


def _plain_head(unembed: Any, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(W: (d_model, d_vocab), bias or None)`` of an output head that is only a matrix
    product, in float32 on ``out``'s device: a ``torch.nn.Linear`` (``x @ weight.T + bias``)
    or TransformerLens's unembedding (``x @ W_U + b_U``); ``None`` for anything else (a
    head with hooks, such as accelerate's, or another dtype), which is then called."""
    if getattr(unembed, "_hf_hook", None) is not None or getattr(unembed, "_forward_hooks", None) or getattr(unembed, "_forward_pre_hooks", None):
        return None
    if type(unembed) is torch.nn.Linear:
        weight_t, bias = unembed.weight.t(), unembed.bias
    elif isinstance(getattr(unembed, "W_U", None), torch.Tensor) and type(unembed).__name__ == "Unembed":
        weight_t, bias = unembed.W_U, getattr(unembed, "b_U", None)
    else:
        return None
    tensors = [weight_t] + ([bias] if isinstance(bias, torch.Tensor) else [])
    if any(t.dtype != torch.float32 or t.device != out.device for t in tensors):
        return None
    if out.dtype != torch.float32 or out.shape[1] != weight_t.shape[1]:
        return None
    return weight_t, bias if isinstance(bias, torch.Tensor) else None


def _weight_of(module: Any) -> torch.Tensor | None:
    for name in ("weight", "W_U"):
        w = getattr(module, name, None)
        if isinstance(w, torch.Tensor):
            return w
    for p in getattr(module, "parameters", lambda: iter(()))():
        return p
    return None


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _softcap(value: Any) -> float | None:
    return float(value) if value is not None and float(value) > 0 else None


def execution_device(module: Any) -> torch.device | None:
    """Where a module computes: the device accelerate's hook moves its inputs to (a
    dispatched model's layers may keep their weights on another device, or on ``meta``
    while offloaded to CPU or disk), else the device of its weight; ``None`` when it
    has no weight."""
    hook = getattr(module, "_hf_hook", None)
    for candidate in (hook, *getattr(hook, "hooks", ())):
        device = getattr(candidate, "execution_device", None)
        if device is not None:
            return torch.device(device) if not isinstance(device, torch.device) else device
    w = _weight_of(module)
    return w.device if w is not None else None


def input_device(model: Any) -> torch.device:
    """Where a transformers model wants its input ids: the device its input embeddings
    compute on (accelerate's hook when the model is dispatched; its embeddings may be
    offloaded), else its first parameter's."""
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    device = execution_device(embed) if embed is not None else None
    if device is None or device.type == "meta":
        hook = getattr(model, "_hf_hook", None)
        device = getattr(hook, "execution_device", None) or next(model.parameters()).device
    return torch.device(device)


def _decoder(norm: Any, head: Any, softcap: float | None, description: str) -> Decoder:
    """A :class:`Decoder` in the dtype of the head's weight, on the device it computes on."""
    w = _weight_of(head)
    device = execution_device(head)
    if device is not None and device.type == "meta":
        raise CoilvisValueError(
            "model: its output head has no weights (they are on the 'meta' device and no accelerate hook loads them); "
            "load or dispatch the model fully before running it"
        )
    return Decoder(
        norm=norm,
        unembed=head,
        softcap=softcap,
        description=description + (f" -> softcap {softcap:g}" if softcap else ""),
        dtype=w.dtype if w is not None and w.is_floating_point() else torch.float32,
        device=device,
    )


def _tl_decoder(model: Any) -> Decoder:
    """``ln_final`` (or none), ``unembed`` and ``cfg.output_logits_soft_cap`` of a TransformerLens model."""
    cfg = getattr(model, "cfg", None)
    unembed = getattr(model, "unembed", None)
    if not isinstance(unembed, torch.nn.Module):
        raise CoilvisValueError(f"model: {type(model).__name__} has no unembed module; the logit lens needs it")
    norm = getattr(model, "ln_final", None)
    if norm is None:
        if getattr(cfg, "normalization_type", None) not in (None, "None"):
            raise CoilvisValueError(
                f"model: {type(model).__name__} has normalization_type {cfg.normalization_type!r} but no ln_final module"
            )
        norm, norm_text = _identity, "no final norm"
    else:
        norm_text = f"ln_final ({type(norm).__name__})"
    softcap = _softcap(getattr(cfg, "output_logits_soft_cap", None))
    return _decoder(norm, unembed, softcap, f"{norm_text} -> unembed")


def _hf_decoder(model: Any) -> Decoder:
    """Final norm, ``get_output_embeddings()`` and ``final_logit_softcapping`` of a transformers model."""
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Module):
        raise CoilvisValueError(
            f"model: {type(model).__name__}.get_output_embeddings() returned {type(head).__name__}; "
            "the logit lens needs the model's output head (is this a causal LM?)"
        )
    config = text_config(model)
    for name in _UNSUPPORTED_LOGIT_SCALES:
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) != 1.0:
            raise CoilvisValueError(
                f"model: {type(model).__name__} rescales its logits after the output head "
                f"(config.{name} = {value}); coilvis does not apply this, so its lens would not match the model"
            )
    norm, norm_text = _hf_final_norm(model)
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    w = _weight_of(head)
    tied = w is not None and _weight_of(embed) is w
    softcap = _softcap(getattr(config, "final_logit_softcapping", None))
    return _decoder(norm, head, softcap, f"{norm_text} -> {type(head).__name__} head ({'tied' if tied else 'untied'})")


def decoder_for(model: Any) -> Decoder:
    """The model's own head as a function of the residual stream.

    transformers models are handled by architecture: the output head is
    ``model.get_output_embeddings()``; the final norm is found on the base model
    (``model.model.norm`` for Llama/Gemma/Mistral/Qwen, ``model.transformer.ln_f`` for
    GPT-2, ``final_layernorm`` / ``final_layer_norm`` for others, also under
    ``decoder`` or ``language_model``) and must be a norm module; Gemma 2/3's
    ``config.final_logit_softcapping`` is applied. TransformerLens models
    (``HookedTransformer`` 3.x, ``TransformerBridge`` 4.x) use ``model.ln_final``
    then ``model.unembed`` and ``cfg.output_logits_soft_cap``.

    Args:
        model: a transformers causal LM or a TransformerLens model.

    Returns:
        A :class:`Decoder`: ``(rows, d_model) -> (rows, d_vocab)`` float32 logits.

    Raises:
        CoilvisValueError: a piece of the head cannot be found, or the model changes its
            logits in a way coilvis does not apply (the message names it).
        CoilvisTypeError: ``model`` is neither a transformers nor a TransformerLens model.
    """
    if is_transformer_lens(model):
        return _tl_decoder(model)
    if not is_hf_model(model):
        raise _not_a_model(model)
    return _hf_decoder(model)


# --------------------------------------------------------------------------- hooks


def _hf_layers(model: Any) -> Any:
    base = getattr(model, "base_model", None) or model
    for owner in (base, getattr(base, "language_model", None), getattr(base, "decoder", None)):
        if owner is None:
            continue
        for attr in ("layers", "h"):
            layers = getattr(owner, attr, None)
            if isinstance(layers, torch.nn.ModuleList):
                return layers
    raise CoilvisValueError(
        f"lens_mid: coilvis cannot find the list of layers of {type(model).__name__} "
        "(looked for base_model.layers / .h / .language_model.layers / .decoder.layers)"
    )


def _mid_residual_input(model: Any) -> str:
    """The per-layer module whose input is the residual after attention, by ``model_type``."""
    config = text_config(model)
    model_type = str(getattr(config, "model_type", ""))
    attr = _MID_RESIDUAL_INPUT.get(model_type)
    if attr is None:
        raise CoilvisValueError(
            f"lens_mid: coilvis does not know where {type(model).__name__} (model_type {model_type!r}) keeps "
            f"the residual after attention; it knows {', '.join(sorted(_MID_RESIDUAL_INPUT))}"
        )
    if model_type == "gpt2" and getattr(config, "add_cross_attention", False):
        raise CoilvisValueError("lens_mid: GPT-2 with cross-attention has no single residual after attention")
    return attr


def mid_residual_hooks(model: Any, mids: dict[int, torch.Tensor], *, batch: bool = False) -> list[Any]:
    """Hooks that keep the residual stream after each layer's attention.

    After the forward pass ``mids[i]`` holds layer ``i``'s residual after attention
    (``hidden_states + attention output``; for Gemma 2/3, ``+ post_attention_layernorm``
    of it), ``(seq_len, d_model)`` of batch row 0. The residual is found by
    architecture (``config.model_type``) as the input of the module that reads it:
    ``post_attention_layernorm`` (Llama, Mistral, Qwen2/3, Gemma),
    ``pre_feedforward_layernorm`` (Gemma 2/3), ``ln_2`` (GPT-2).

    Args:
        model: a transformers causal LM.
        mids: filled in place, layer index -> tensor.
        batch: keep every batch row, ``(batch, seq_len, d_model)``, not row 0 only.

    Returns:
        The hook handles; call ``.remove()`` on each after the forward pass.

    Raises:
        CoilvisValueError: the architecture is not one coilvis knows (the message lists
            those it knows), or its layers lack the expected module.
    """
    if not is_hf_model(model):
        raise CoilvisTypeError(f"model: lens_mid needs a transformers model, got {type(model).__name__}")
    attr = _mid_residual_input(model)
    handles = []
    for i, layer in enumerate(_hf_layers(model)):
        module = getattr(layer, attr, None)
        if not isinstance(module, torch.nn.Module):
            for h in handles:
                h.remove()
            raise CoilvisValueError(
                f"lens_mid: layer {i} of {type(model).__name__} has no {attr} module, where a "
                f"{text_config(model).model_type} layer reads its residual after attention"
            )

        def hook(mod: Any, args: Any, i: int = i) -> None:
            mids[i] = (args[0] if batch else args[0][0]).detach().clone()

        handles.append(module.register_forward_pre_hook(hook))
    return handles


def final_residual_hook(model: Any, store: dict[str, torch.Tensor], *, batch: bool = False) -> Any:
    """A hook that keeps the last block's output, the input of the final norm.

    ``store["final"]`` becomes ``(seq_len, d_model)`` (batch row 0): the layout's last
    row (:func:`final_row_name`), with which the lens checks its decoder against the
    model's own logits; with ``batch``, ``(batch, seq_len, d_model)``, every row.

    Returns:
        The hook handle (``.remove()`` it after the forward pass), or ``None`` when the
        model's final norm is not a module.

    Raises:
        CoilvisValueError / CoilvisTypeError: as :func:`decoder_for`.
    """
    norm = decoder_for(model).norm
    if not isinstance(norm, torch.nn.Module):
        return None

    def hook(mod: Any, args: Any) -> None:
        store["final"] = (args[0] if batch else args[0][0]).detach().clone()

    return norm.register_forward_pre_hook(hook)
