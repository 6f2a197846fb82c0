"""The logit lens: every layer's residual stream decoded through the model's own head.

Row ``i`` of a :class:`~coilvis.record.LensStats` is one residual stream (the
embedding output, the output of each block, optionally the residual after each
block's attention) passed through what the model itself applies before its logits:
the final norm (GPT-2's LayerNorm, Llama's RMSNorm, Gemma's ``(1 + w)`` RMSNorm: the
model's own norm module is called), the unembedding (the model's own output head, tied
or not) and, for Gemma 2/3, the final logit soft-capping ``cap * tanh(logits / cap)``.
The last row is the model's own output, taken from its logits.

Memory and speed: the ``(n_rows, seq_len, d_vocab)`` tensor never exists. Positions
are cut into chunks; for each chunk the final row's probabilities are computed first
and kept, then every layer of that chunk is decoded (one matmul of up to
``chunk_rows`` rows; several layers per matmul when the prompt is short) and reduced
to statistics block by block (32 rows at a time, so the passes stay in the CPU's
cache): a blocked top-k, one softmax, two row-wise sums of products (entropy, KL to
the final row) and two comparison counts (ranks). Only ``(n_rows, seq_len, k)``
numbers are kept. On the default model the lens costs about 1.1-1.3x the bare
unembedding matmul it cannot avoid (``benchmarks/bench_lens.py``).

Statistics (natural logarithms, float32):
    * ``entropy = log Z - sum_v p_v x_v``, in nats.
    * ``kl_to_final = sum_v p^final_v (log p^final_v - log p_v)``, in nats, >= 0.
    * a rank is 1 + the number of tokens with a strictly greater logit (1 = top; ties
      share a rank), as everywhere in coilvis.

Example:
    >>> import torch
    >>> from coilvis.logit_lens import compute_lens
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> w_u = torch.randn(7, 4)
    >>> resid = [("embed", torch.randn(3, 4)), ("0", torch.randn(3, 4))]
    >>> final = torch.randn(3, 4) @ w_u.T
    >>> lens = compute_lens(None, resid, logits=final, next_ids=[2, 5, -1], k=2,
    ...                     decoder=lambda x: x @ w_u.T)
    >>> lens.layer_names, lens.topk_ids.shape, float(lens.kl_to_final[-1].max())
    (('embed', '0', '1'), (3, 3, 2), 0.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.models import is_transformer_lens
from coilvis.models.hf import is_hf_model
from coilvis.record import LensStats

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Decoder",
    "decoder_for",
    "compute_lens",
    "lens_from_tl_cache",
    "mid_residual_hooks",
    "final_residual_hook",
    "n_layers_of",
]

#: Rows decoded per matmul. 256 rows of a 49k vocabulary are 50 MB of float32 logits
#: (and as much again for the final row's probabilities of those positions); fewer
#: rows make the matmul less efficient, more rows only hold more memory.
DEFAULT_CHUNK_ROWS = 256
#: Rows whose statistics are computed at once, within one matmul's rows: 32 rows of a
#: 49k vocabulary and their two scratch buffers (18 MB) stay in a CPU's last-level
#: cache across the dozen passes the statistics make.
_STATS_BLOCK_ROWS = 32
#: Blocks timed per thread count before choosing one, and how often the other is retried.
_TRIAL_BLOCKS = 3
_RETRY_BLOCKS = 64

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
#: Relative tolerance when checking the decoder against the model's own logits.
_CHECK_RTOL = {torch.float32: 1e-4, torch.float64: 1e-6}
_CHECK_RTOL_LOW_PRECISION = 3e-2
_CHECK_POSITIONS = 8


# --------------------------------------------------------------------------- model inspection


def _text_config(model: Any) -> Any:
    config = model.config
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def n_layers_of(model: Any) -> int:
    """Number of blocks of a transformers or TransformerLens model.

    Raises:
        CoilvisTypeError: ``model`` is neither.
        CoilvisValueError: its config does not say.
    """
    if is_transformer_lens(model):
        return int(model.cfg.n_layers)
    if is_hf_model(model):
        config = _text_config(model)
        for name in ("num_hidden_layers", "n_layer", "num_layers"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        raise CoilvisValueError(
            f"model: the config of {type(model).__name__} has no num_hidden_layers / n_layer; "
            "coilvis cannot tell how many layers to decode"
        )
    raise CoilvisTypeError(
        f"model: expected a transformers or TransformerLens model, got {type(model).__name__}"
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
    """

    norm: Callable[[torch.Tensor], torch.Tensor]
    unembed: Callable[[torch.Tensor], torch.Tensor]
    softcap: float | None
    description: str
    dtype: torch.dtype = torch.float32
    device: torch.device | None = None

    def __call__(self, resid: torch.Tensor) -> torch.Tensor:
        x = resid.to(device=self.device or resid.device, dtype=self.dtype).unsqueeze(0)
        logits = self.unembed(self.norm(x))[0].to(torch.float32)
        if self.softcap is not None:
            logits = torch.tanh(logits.div_(self.softcap)).mul_(self.softcap)
        return logits


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
        cap = getattr(cfg, "output_logits_soft_cap", None)
        softcap = float(cap) if cap is not None and float(cap) > 0 else None
        w = _weight_of(unembed)
        return Decoder(
            norm=norm,
            unembed=unembed,
            softcap=softcap,
            description=f"{norm_text} -> unembed" + (f" -> softcap {softcap:g}" if softcap else ""),
            dtype=w.dtype if w is not None and w.is_floating_point() else torch.float32,
            device=w.device if w is not None else None,
        )
    if not is_hf_model(model):
        raise CoilvisTypeError(
            f"model: expected a transformers or TransformerLens model, got {type(model).__name__}"
        )
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Module):
        raise CoilvisValueError(
            f"model: {type(model).__name__}.get_output_embeddings() returned {type(head).__name__}; "
            "the logit lens needs the model's output head (is this a causal LM?)"
        )
    config = _text_config(model)
    for name in _UNSUPPORTED_LOGIT_SCALES:
        value = getattr(config, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) != 1.0:
            raise CoilvisValueError(
                f"model: {type(model).__name__} rescales its logits after the output head "
                f"(config.{name} = {value}); coilvis does not apply this, so its lens would not match the model"
            )
    norm, norm_text = _hf_final_norm(model)
    cap = getattr(config, "final_logit_softcapping", None)
    softcap = float(cap) if cap is not None and float(cap) > 0 else None
    w = _weight_of(head)
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = w is not None and _weight_of(embed) is w
    return Decoder(
        norm=norm,
        unembed=head,
        softcap=softcap,
        description=(
            f"{norm_text} -> {type(head).__name__} head ({'tied' if tied else 'untied'})"
            + (f" -> softcap {softcap:g}" if softcap else "")
        ),
        dtype=w.dtype if w is not None and w.is_floating_point() else torch.float32,
        device=w.device if w is not None else None,
    )


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


def mid_residual_hooks(model: Any, mids: dict[int, torch.Tensor]) -> list[Any]:
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

    Returns:
        The hook handles; call ``.remove()`` on each after the forward pass.

    Raises:
        CoilvisValueError: the architecture is not one coilvis knows (the message lists
            those it knows), or its layers lack the expected module.
    """
    if not is_hf_model(model):
        raise CoilvisTypeError(f"model: lens_mid needs a transformers model, got {type(model).__name__}")
    config = _text_config(model)
    model_type = str(getattr(config, "model_type", ""))
    attr = _MID_RESIDUAL_INPUT.get(model_type)
    if attr is None:
        raise CoilvisValueError(
            f"lens_mid: coilvis does not know where {type(model).__name__} (model_type {model_type!r}) keeps "
            f"the residual after attention; it knows {', '.join(sorted(_MID_RESIDUAL_INPUT))}"
        )
    if model_type == "gpt2" and getattr(config, "add_cross_attention", False):
        raise CoilvisValueError("lens_mid: GPT-2 with cross-attention has no single residual after attention")
    layers = _hf_layers(model)
    handles = []
    for i, layer in enumerate(layers):
        module = getattr(layer, attr, None)
        if not isinstance(module, torch.nn.Module):
            for h in handles:
                h.remove()
            raise CoilvisValueError(
                f"lens_mid: layer {i} of {type(model).__name__} has no {attr} module, where a "
                f"{model_type} layer reads its residual after attention"
            )

        def hook(mod: Any, args: Any, i: int = i) -> None:
            mids[i] = args[0][0].detach().clone()

        handles.append(module.register_forward_pre_hook(hook))
    return handles


def final_residual_hook(model: Any, store: dict[str, torch.Tensor]) -> Any:
    """A hook that keeps the last block's output, the input of the final norm.

    ``store["final"]`` becomes ``(seq_len, d_model)`` (batch row 0). Passing it to
    :func:`compute_lens` as the entry named ``str(n_layers - 1)`` lets the lens check
    its decoder against the model's own logits.

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
        store["final"] = args[0][0].detach().clone()

    return norm.register_forward_pre_hook(hook)


# --------------------------------------------------------------------------- statistics


@dataclass
class _Final:
    """The final row of one position chunk: what every layer's row is compared with."""

    probs: torch.Tensor  # (P, V) softmax of the final logits
    probs_sum: torch.Tensor  # (P,) their float32 sum (1 up to rounding)
    neg_entropy: torch.Tensor  # (P,) sum p log p
    top_ids: torch.Tensor  # (P, 1) int64 top token of the final row

    def rows(self, start: int, stop: int) -> _Final:
        return _Final(self.probs[start:stop], self.probs_sum[start:stop], self.neg_entropy[start:stop], self.top_ids[start:stop])


class _Workspace:
    """Float32 buffers reused from block to block, so that the statistics allocate no
    block-sized memory (large allocations are fresh pages every time) and their passes
    stay in the CPU's cache."""

    def __init__(self, d_vocab: int) -> None:
        self._bufs: dict[str, torch.Tensor] = {}
        self.block = _block_size(d_vocab)

    def get(self, name: str, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        buf = self._bufs.get(name)
        n = shape[0] * shape[1]
        if buf is None or buf.numel() < n or buf.device != device:
            buf = torch.empty(n, dtype=torch.float32, device=device)
            self._bufs[name] = buf
        return buf[:n].view(shape)


def _block_size(d_vocab: int) -> int | None:
    """The divisor of ``d_vocab`` in [256, 4096] nearest to 1024, or ``None``."""
    best = None
    for size in range(256, min(4096, d_vocab // 8) + 1):
        if d_vocab % size == 0 and (best is None or abs(size - 1024) < abs(best - 1024)):
            best = size
    return best


def _topk(x: torch.Tensor, k: int, block: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(x, k)`` of a (rows, V) block, sorted, in a few cheap passes.

    The vocabulary is cut into blocks of ``block`` tokens; the k largest logits lie in
    the k blocks with the largest maxima (a block outside them has k maxima of other
    blocks at least as large as everything it holds), so one ``amax`` pass picks k
    blocks and the full top-k runs on those ``k * block`` logits only. Ties may be
    ordered differently from ``torch.topk`` (whose order among ties is unspecified).
    """
    rows, d_vocab = x.shape
    if block is None or k * block * 2 > d_vocab:
        return torch.topk(x, k, dim=-1)
    blocks = x.reshape(rows, d_vocab // block, block)
    best_blocks = torch.topk(blocks.amax(dim=-1), k, dim=-1).indices  # (rows, k)
    candidates = blocks.gather(1, best_blocks.unsqueeze(-1).expand(rows, k, block)).view(rows, k * block)
    values, where = torch.topk(candidates, k, dim=-1)
    ids = best_blocks.gather(1, where // block) * block + where % block
    return values, ids


def _rank(x: torch.Tensor, value: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    """(rows,) int32 1-based rank of ``value`` (rows, 1) in each row of ``x``: 1 + the
    number of entries strictly greater, counted as float32 ones (exact below 2**24
    entries; summing bools casts the whole block to integers first, several times
    slower)."""
    return torch.gt(x, value, out=buf).sum(dim=-1).to(torch.int32) + 1


def _row_stats(
    x: torch.Tensor,
    *,
    k: int,
    next_ids: torch.Tensor,
    final: _Final | None,
    n_groups: int,
    work: _Workspace,
    probs_out: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], _Final | None]:
    """Statistics of ``x: (n_groups * P, V)`` float32 logits (``n_groups`` layers of the
    same P positions, layer-major).

    One softmax gives ``p`` and ``log Z = max - log p[argmax]``; then, with sums that
    carry their own rounding of ``sum p`` (so no ``log Z * (1 - sum p)`` error creeps
    in): ``H = log Z * sum p - sum p x`` and
    ``KL(f || x) = sum p_f log p_f - sum p_f x + log Z * sum p_f``. torch's pairwise
    sums keep these differences of ~30-nat terms accurate to ~1e-5 nats.

    Args:
        x: (n_groups * P, V) float32 logits (not modified).
        k: top tokens kept.
        next_ids: (P,) int64 actual next token, -1 where unknown.
        final: the final row of these positions; ``None`` when ``x`` is that row.
        n_groups: number of layers stacked in ``x``.
        work: reusable buffers.
        probs_out: (P, V) where the final row's probabilities go (``final is None``).

    Returns:
        ``(stats, final)``: tensors of shape (n_groups * P, ...) (or ``{"bad": mask}``
        when a row has NaN/inf logits) and, when ``final`` is ``None``, the final row
        to compare the layers with.
    """
    rows, d_vocab = x.shape
    n_pos = rows // n_groups
    top_v, top_i = _topk(x, k, work.block)
    buf = work.get("buf", (rows, d_vocab), x.device)
    tgt = next_ids.clamp(min=0).unsqueeze(1).repeat(n_groups, 1)
    next_logit = x.gather(1, tgt)
    next_rank = _rank(x, next_logit, buf)
    if final is not None:
        top_logit = x.gather(1, final.top_ids.repeat(n_groups, 1))
        top_rank = _rank(x, top_logit, buf)
    probs = torch.softmax(x, dim=-1)
    log_z = top_v[:, 0] - probs.gather(1, top_i[:, :1]).squeeze(1).log()
    if not bool(torch.isfinite(log_z).all()):  # NaN or +inf logits
        return {"bad": ~torch.isfinite(log_z)}, None
    probs_sum = probs.sum(dim=-1)
    entropy = log_z * probs_sum - torch.mul(probs, x, out=buf).sum(dim=-1)
    masked = ~torch.isfinite(entropy)
    if bool(masked.any()):  # -inf logits (a masked vocabulary): 0 * -inf terms count as 0
        pm, xm = probs[masked], x[masked]
        entropy[masked] = log_z[masked] * probs_sum[masked] - torch.where(pm > 0, pm * xm, torch.zeros((), dtype=pm.dtype)).sum(-1)
    entropy.clamp_(min=0.0)
    out = {
        "topk_ids": top_i,
        "topk_probs": (top_v - log_z.unsqueeze(1)).exp_(),
        "entropy": entropy,
        "next_prob": (next_logit.squeeze(1) - log_z).exp_(),
        "next_rank": next_rank,
    }
    if final is None:
        assert probs_out is not None
        out["kl_to_final"] = torch.zeros_like(log_z)
        out["final_top_prob"] = out["topk_probs"][:, 0].clone()
        out["final_top_rank"] = torch.ones_like(next_rank)
        probs_out.copy_(probs)
        return out, _Final(
            probs=probs_out,
            probs_sum=probs_sum,
            neg_entropy=-entropy,
            top_ids=top_i[:, :1].to(torch.int64),
        )
    out["final_top_rank"] = top_rank
    out["final_top_prob"] = (top_logit.squeeze(1) - log_z).exp_()
    del probs
    cross = torch.cat(
        [torch.mul(final.probs, x[g * n_pos : (g + 1) * n_pos], out=buf[:n_pos]).sum(dim=-1) for g in range(n_groups)]
    )
    kl = final.neg_entropy.repeat(n_groups) - cross + log_z * final.probs_sum.repeat(n_groups)
    out["kl_to_final"] = kl.clamp_(min=0.0)
    return out, None


class _StatsThreads:
    """Runs each block's statistics with a chosen number of torch threads, restoring
    torch's own count afterwards (for the matmuls in between).

    With ``fixed`` the count is fixed. Otherwise it is chosen between torch's count and
    1 by timing the blocks as they run: the statistics are many short passes over a
    cache-sized block, and a short multi-threaded pass waits for every thread, which
    on an idle machine saves time but on a loaded one costs a scheduler time slice per
    pass. Each count is tried on a few blocks, the faster per row is kept, and the
    other is tried again every :data:`_RETRY_BLOCKS` blocks (costs are moving averages,
    so a change of load is followed within a retry or two). Results do not depend on
    the choice.
    """

    def __init__(self, fixed: int | None, *, enabled: bool, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        own = torch.get_num_threads()
        if not enabled:
            self.candidates: list[int | None] = [None]
        elif fixed is not None:
            self.candidates = [fixed]
        else:
            self.candidates = sorted({1, own})
        #: seconds per row, a moving average (each block weighs half)
        self.cost: dict[int | None, float] = {n: 0.0 for n in self.candidates}
        self.trials: dict[int | None, int] = {n: 0 for n in self.candidates}
        self.n_blocks = 0

    def _choose(self) -> int | None:
        if len(self.candidates) == 1:
            return self.candidates[0]
        self.n_blocks += 1
        for n in self.candidates:
            if self.trials[n] < _TRIAL_BLOCKS:
                return n
        ranked = sorted(self.candidates, key=lambda n: self.cost[n])
        return ranked[1] if self.n_blocks % _RETRY_BLOCKS == 0 else ranked[0]

    def run(self, n_rows: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        n = self._choose()
        before = torch.get_num_threads()
        switch = n is not None and n != before
        if switch:
            torch.set_num_threads(n)
        t0 = self.clock()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds = self.clock() - t0
            if switch:
                torch.set_num_threads(before)
            if len(self.candidates) > 1:
                per_row = seconds / max(1, n_rows)
                self.cost[n] = per_row if self.trials[n] == 0 else (self.cost[n] + per_row) / 2
                self.trials[n] += 1


def _blocks(n_groups: int, n_pos: int, block_rows: int) -> list[tuple[int, int, int, int]]:
    """Cut ``n_groups`` layers x ``n_pos`` positions into blocks of about ``block_rows``
    rows for the statistics: ``(g0, g1, p0, p1)``, several whole layers per block when
    positions are few, else one layer and a range of positions."""
    if n_pos <= block_rows:
        step = max(1, block_rows // n_pos)
        return [(g, min(n_groups, g + step), 0, n_pos) for g in range(0, n_groups, step)]
    return [(g, g + 1, p, min(n_pos, p + block_rows)) for g in range(n_groups) for p in range(0, n_pos, block_rows)]


_FIELDS = ("topk_ids", "topk_probs", "entropy", "kl_to_final", "next_prob", "next_rank", "final_top_prob", "final_top_rank")


def _check_residuals(residuals: Any, seq_len: int) -> list[tuple[str, torch.Tensor]]:
    if isinstance(residuals, (str, bytes)) or not isinstance(residuals, Sequence):
        raise CoilvisTypeError(
            f"residuals: expected a list of (name, (seq_len, d_model) tensor) pairs, got {type(residuals).__name__}"
        )
    out: list[tuple[str, torch.Tensor]] = []
    seen: set[str] = set()
    for j, item in enumerate(residuals):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise CoilvisTypeError(f"residuals: entry {j} is not a (name, tensor) pair")
        name, t = item
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(np.asarray(t))
        if t.dim() == 3 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 2 or t.shape[0] != seq_len:
            raise CoilvisValueError(
                f"residuals: {name!r} has shape {tuple(t.shape)}, expected ({seq_len}, d_model) like the logits"
            )
        if not t.is_floating_point():
            raise CoilvisTypeError(f"residuals: {name!r} has dtype {t.dtype}, expected floats")
        if name in seen:
            raise CoilvisValueError(f"residuals: the name {name!r} appears twice")
        seen.add(name)
        out.append((name, t.detach()))
    return out


def _check_next_ids(next_ids: Any, seq_len: int, d_vocab: int) -> torch.Tensor:
    if next_ids is None:
        return torch.full((seq_len,), -1, dtype=torch.int64)
    arr = stats.to_numpy(next_ids) if isinstance(next_ids, torch.Tensor) else np.asarray(next_ids)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)):
        raise CoilvisTypeError(f"next_ids: expected integer token ids, got dtype {arr.dtype}")
    arr = arr.reshape(-1).astype(np.int64)
    if arr.shape[0] != seq_len:
        raise CoilvisValueError(f"next_ids: expected {seq_len} token ids (one per position), got {arr.shape[0]}")
    bad = np.nonzero((arr < -1) | (arr >= d_vocab))[0]
    if bad.size:
        raise CoilvisValueError(
            f"next_ids: token id {arr[bad[0]]} at position {bad[0]} is out of range [0, {d_vocab}) (or -1 for unknown)"
        )
    return torch.from_numpy(arr)


def _check_decoder(decoder: Callable[[torch.Tensor], torch.Tensor], resid: torch.Tensor, logits: torch.Tensor, name: str, what: str) -> None:
    """Decode a few positions of the last block's residual and compare with the logits."""
    seq_len = resid.shape[0]
    pos = torch.unique(torch.linspace(0, seq_len - 1, min(seq_len, _CHECK_POSITIONS)).round().long())
    want = logits[pos.to(logits.device)].to(torch.float32)
    got = decoder(resid[pos.to(resid.device)]).to(want.device)
    scale = max(1.0, float(want.abs().max()))
    rtol = _CHECK_RTOL.get(logits.dtype, _CHECK_RTOL_LOW_PRECISION)
    err = float((got - want).abs().max())
    if not err <= rtol * scale:
        raise CoilvisValueError(
            f"model: decoding the last block's residual ({name!r}) through {what} does not reproduce the model's "
            f"own logits (max difference {err:.3g}, logits up to {scale:.3g}); this architecture changes its "
            "logits in a way coilvis does not know, so it refuses to draw a wrong lens"
        )


def compute_lens(
    model: Any,
    residuals: Sequence[tuple[str, torch.Tensor]],
    *,
    logits: torch.Tensor,
    next_ids: Any = None,
    k: int = 5,
    decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
    final_name: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats_threads: int | None = None,
    progress: bool = False,
) -> LensStats:
    """Logit-lens statistics for every residual stream and position.

    Args:
        model: the transformers or TransformerLens model the residuals come from (its
            head decodes them, see :func:`decoder_for`); may be ``None`` when
            ``decoder`` is given.
        residuals: ``(name, (seq_len, d_model) tensor)`` pairs in row order, as
            :func:`coilvis.models.hf.forward_for_record` returns them (``"embed"``,
            ``"0"`` .. ``"n_layers-2"``, ``"i.mid"``). An entry named like the final
            row (``str(n_layers - 1)``), the last block's output before the final
            norm, is not decoded as a row: a few of its positions are decoded to check
            the decoder against ``logits``, and a mismatch raises.
        logits: (seq_len, d_vocab) the model's own logits, any float dtype and
            device: the final row.
        next_ids: (seq_len,) actual next token ids, -1 where unknown (the last
            position); ``None`` means unknown everywhere.
        k: top tokens kept per cell, 1 <= k <= d_vocab.
        decoder: ``(rows, d_model) -> (rows, d_vocab)`` logits, instead of the model's
            head (then ``model`` may be ``None``).
        final_name: name of the final row (default ``str(n_layers - 1)``, or one more
            than the largest block number in ``residuals`` when ``model`` is ``None``).
        chunk_rows: rows decoded per matmul; positions are chunked to
            ``min(seq_len, chunk_rows)`` and short prompts stack several layers.
        stats_threads: CPU threads for the statistics (the matmul keeps torch's
            setting; torch's count is set for each block of statistics and restored).
            ``None`` (default): chosen between torch's count and 1 by timing the
            blocks as they run; multi-threaded short passes are faster on an idle
            machine and much slower on a loaded one. The numbers do not depend on it.
        progress: show a progress bar.

    Returns:
        :class:`~coilvis.record.LensStats` with ``len(residuals) + 1`` rows (the last is
        ``logits``), or ``len(residuals)`` when the check entry was given.

    Raises:
        CoilvisValueError: shapes disagree, bad ``k``, NaN/inf in a decoded row (the
            message names the row and position), or the decoder does not reproduce
            the model's logits.
        CoilvisTypeError: bad argument types.
    """
    t_logits = stats.as_logits(logits, ndim=(2,))
    seq_len, d_vocab = int(t_logits.shape[0]), int(t_logits.shape[1])
    if seq_len < 1:
        raise CoilvisValueError("logits: no positions (shape (0, d_vocab))")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise CoilvisTypeError(f"k: expected an int, got {type(k).__name__}")
    if not 1 <= k <= d_vocab:
        raise CoilvisValueError(f"k: expected 1 <= k <= d_vocab ({d_vocab}), got {k}")
    k = int(k)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise CoilvisValueError(f"chunk_rows: expected an int >= 1, got {chunk_rows!r}")
    rows_in = _check_residuals(residuals, seq_len)
    if decoder is None:
        if model is None:
            raise CoilvisTypeError("model: pass the model the residuals come from, or a decoder=")
        decoder = decoder_for(model)
    elif not callable(decoder):
        raise CoilvisTypeError(f"decoder: expected a callable, got {type(decoder).__name__}")
    if final_name is None:
        if model is not None:
            final_name = str(n_layers_of(model) - 1)
        else:
            blocks = [int(n) for n, _ in rows_in if n.isdigit()]
            final_name = str(max(blocks) + 1 if blocks else 0)
    layer_rows = []
    for name, t in rows_in:
        if name == final_name:
            what = decoder.description if isinstance(decoder, Decoder) else "the decoder"
            with torch.inference_mode():
                _check_decoder(decoder, t, t_logits, name, what)
        else:
            layer_rows.append((name, t))
    names = [n for n, _ in layer_rows] + [final_name]
    n_dec = len(layer_rows)
    n_rows = n_dec + 1
    device = t_logits.device
    tid = _check_next_ids(next_ids, seq_len, d_vocab).to(device)
    out = {
        "topk_ids": np.empty((n_rows, seq_len, k), dtype=np.int32),
        "topk_probs": np.empty((n_rows, seq_len, k), dtype=np.float32),
    }
    for name in _FIELDS[2:]:
        out[name] = np.empty((n_rows, seq_len), dtype=np.int32 if name.endswith("rank") else np.float32)
    n_pos = min(seq_len, int(chunk_rows))
    n_groups = max(1, int(chunk_rows) // n_pos)
    work = _Workspace(d_vocab)
    block_rows = min(int(chunk_rows), _STATS_BLOCK_ROWS)
    if stats_threads is not None and (isinstance(stats_threads, bool) or not isinstance(stats_threads, int) or stats_threads < 1):
        raise CoilvisValueError(f"stats_threads: expected an int >= 1 or None, got {stats_threads!r}")
    threads = _StatsThreads(stats_threads, enabled=device.type == "cpu")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_rows * seq_len, desc="coilvis lens", unit="row", leave=False)

    def store(row0: int, p0: int, n_g: int, n_p: int, values: dict[str, torch.Tensor]) -> None:
        for name in _FIELDS:
            v = stats.to_numpy(values[name]).reshape((n_g, n_p) + out[name].shape[2:])
            out[name][row0 : row0 + n_g, p0 : p0 + n_p] = v

    def raise_bad(bad: torch.Tensor, row0: int, n_p: int, p0: int) -> None:
        j = int(bad.nonzero()[0, 0])
        raise CoilvisValueError(
            f"residuals: row {names[row0 + j // n_p]!r} decodes to NaN or infinite logits at position {p0 + j % n_p}"
        )

    try:
        with torch.inference_mode():
            for start in range(0, seq_len, n_pos):
                stop = min(seq_len, start + n_pos)
                n_p = stop - start
                ids_s = tid[start:stop]
                # the final row of these positions first: every layer is compared with it
                probs_f = torch.empty((n_p, d_vocab), dtype=torch.float32, device=device)
                parts: list[_Final] = []
                for _, _, p0, p1 in _blocks(1, n_p, block_rows):
                    x = t_logits[start + p0 : start + p1].to(torch.float32)
                    values, part = threads.run(
                        p1 - p0, _row_stats, x, k=k, next_ids=ids_s[p0:p1], final=None, n_groups=1, work=work,
                        probs_out=probs_f[p0:p1],
                    )
                    if "bad" in values:
                        raise_bad(values["bad"], n_dec, p1 - p0, start + p0)
                    assert part is not None
                    parts.append(part)
                    store(n_dec, start + p0, 1, p1 - p0, values)
                final = _Final(
                    probs=probs_f,
                    probs_sum=torch.cat([f.probs_sum for f in parts]),
                    neg_entropy=torch.cat([f.neg_entropy for f in parts]),
                    top_ids=torch.cat([f.top_ids for f in parts]),
                )
                del parts, x
                if bar is not None:
                    bar.update(n_p)
                for l0 in range(0, n_dec, n_groups):
                    group = layer_rows[l0 : l0 + n_groups]
                    h = torch.cat([t[start:stop].to(device) for _, t in group]) if len(group) > 1 else group[0][1][start:stop]
                    x = decoder(h)
                    if tuple(x.shape) != (h.shape[0], d_vocab):
                        raise CoilvisValueError(
                            f"decoder: returned shape {tuple(x.shape)} for {h.shape[0]} rows, expected "
                            f"({h.shape[0]}, {d_vocab}) like the logits"
                        )
                    x = x.to(device=device, dtype=torch.float32).reshape(len(group), n_p, d_vocab)
                    for g0, g1, p0, p1 in _blocks(len(group), n_p, block_rows):
                        rows = x[g0:g1, p0:p1].reshape(-1, d_vocab)
                        values, _ = threads.run(
                            rows.shape[0], _row_stats, rows, k=k, next_ids=ids_s[p0:p1], final=final.rows(p0, p1),
                            n_groups=g1 - g0, work=work,
                        )
                        if "bad" in values:
                            raise_bad(values["bad"], l0 + g0, p1 - p0, start + p0)
                        store(l0 + g0, start + p0, g1 - g0, p1 - p0, values)
                    del x
                    if bar is not None:
                        bar.update(len(group) * n_p)
                del final, probs_f
                unknown = ~(ids_s >= 0).cpu().numpy()
                if unknown.any():
                    cols = np.arange(start, stop)[unknown]
                    out["next_prob"][:, cols] = np.nan
                    out["next_rank"][:, cols] = -1
    finally:
        if bar is not None:
            bar.close()
    return LensStats(layer_names=tuple(names), **out)


# --------------------------------------------------------------------------- TransformerLens


def lens_from_tl_cache(
    model: Any,
    cache: Any,
    *,
    logits: torch.Tensor,
    next_ids: Any = None,
    k: int = 5,
    mid: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats_threads: int | None = None,
    progress: bool = False,
) -> LensStats:
    """Logit lens from a TransformerLens ``ActivationCache`` (batch of one).

    Rows: ``blocks.0.hook_resid_pre`` (``"embed"``), ``blocks.{i}.hook_resid_post``
    (``"i"``), and with ``mid`` ``blocks.{i}.hook_resid_mid`` (``"i.mid"``); the last
    block's ``hook_resid_post`` checks the decoder against ``logits``, the final row.
    Each row goes through the model's own ``ln_final`` (statistics recomputed per row)
    and ``unembed``, as ``model.unembed(cache.accumulated_resid(apply_ln=True))`` does
    in TransformerLens 3.9 and later.
    :func:`coilvis.from_cache` is the public way to a Record from a cache.

    Args:
        model: the ``HookedTransformer`` / ``TransformerBridge`` that filled the cache.
        cache: its ``ActivationCache`` (from ``run_with_cache``), batch size 1 or
            without a batch dimension.
        logits: (1, seq_len, d_vocab) or (seq_len, d_vocab) the logits of the same run.
        next_ids: (seq_len,) actual next token ids, -1 where unknown.
        k: top tokens kept per cell.
        mid: also decode the residual after each block's attention.
        chunk_rows: see :func:`compute_lens`.
        stats_threads: see :func:`compute_lens`.
        progress: show a progress bar.

    Returns:
        :class:`~coilvis.record.LensStats`, rows named as :func:`compute_lens` names them.

    Raises:
        CoilvisValueError: a hook is missing from the cache, or the batch is not 1.
    """
    if not is_transformer_lens(model):
        raise CoilvisTypeError(f"model: expected a TransformerLens model, got {type(model).__name__}")
    from coilvis.models.tlens import cache_tensor as get

    n_layers = n_layers_of(model)
    t_logits = stats.as_logits(logits, ndim=(2, 3))
    if t_logits.dim() == 3:
        if t_logits.shape[0] != 1:
            raise CoilvisValueError(f"logits: expected a batch of 1, got shape {tuple(t_logits.shape)}")
        t_logits = t_logits[0]

    residuals: list[tuple[str, torch.Tensor]] = [("embed", get(cache, "blocks.0.hook_resid_pre"))]
    for i in range(n_layers):
        if mid:
            residuals.append((f"{i}.mid", get(cache, f"blocks.{i}.hook_resid_mid")))
        residuals.append((str(i), get(cache, f"blocks.{i}.hook_resid_post")))
    return compute_lens(
        model,
        residuals,
        logits=t_logits,
        next_ids=next_ids,
        k=k,
        chunk_rows=chunk_rows,
        stats_threads=stats_threads,
        progress=progress,
    )

