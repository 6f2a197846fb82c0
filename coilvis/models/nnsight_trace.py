"""One nnsight trace that reduces a prompt to coilvis's statistics where the model runs (here or on NDIF).

``coilvis.run(prompt, language_model, remote=True)`` sends this trace to NDIF, the
shared service that runs large models for interpretability: the forward pass, the
top-k, entropies, ranks, the logit lens (every block's residual through the model's
own final norm and head) and pruned attention are all computed inside the trace,
next to the weights, and only those reduced tensors are saved. What comes back is
``(n_rows, seq_len, k)`` numbers, kilobytes, instead of
``n_rows x seq_len x d_vocab`` floats (:func:`full_bytes` and :func:`returned_bytes`
say how many bytes each would be).

Two halves live here:

* the client half, which reads the wrapped transformers model (no weights needed: a
  remote model is a skeleton on the ``meta`` device) for the paths of its blocks,
  final norm, head and attention modules (:func:`plan_trace`), and opens the trace
  (:func:`trace_stats`);
* the traced half, plain functions of torch tensors (:func:`reduce_logits`,
  :func:`position_stats`, :func:`row_stats`, :func:`prune_pattern`), which is what
  the server runs. They use torch and each other only and raise builtin errors only;
  this module is shipped to the server by value (its source, not a reference) for
  the trace, so NDIF needs no coilvis installed.

The statistics are those of :func:`coilvis.stats.position_stats` and
:func:`coilvis.lens_kernel.row_stats`, by the same formulas, in float32 on the logits'
device (so a traced Record equals a plain run's to float32 rounding). The lens is
decoded ``chunk_rows`` positions and one row at a time, so the server holds the
residual stream plus a few ``(chunk_rows, d_vocab)`` blocks.

nnsight is imported only inside :func:`trace_stats`.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch

from coilvis.errors import CoilvisValueError
from coilvis.models.anatomy import (
    _hf_final_norm,
    _hf_layers,
    _mid_residual_input,
    n_layers_of,
    text_config,
)
from coilvis.models.hf import attention_modules

__all__ = [
    "TRACE_CHUNK_ROWS",
    "TracePlan",
    "full_bytes",
    "plan_trace",
    "position_stats",
    "prune_pattern",
    "reduce_logits",
    "returned_bytes",
    "row_stats",
    "trace_stats",
]

#: Positions decoded at once inside the trace: 256 rows of a 128k vocabulary are
#: 128 MB of float32, and a few such blocks are all the lens adds on the server.
TRACE_CHUNK_ROWS = 256
#: Positions of the last block's residual decoded to check the head against the logits.
CHECK_POSITIONS = 8
#: Query rows of one attention pattern pruned at once.
ATTENTION_CHUNK = 256


class TracePlan(NamedTuple):
    """Where the trace reads a transformers model: envoy paths (``lm.get(path)``) and sizes."""

    n_layers: int
    layers: str  # the list of blocks, e.g. "model.layers"
    norm: str  # the final norm, e.g. "model.norm"
    head: str  # the output head, e.g. "lm_head"
    softcap: float | None  # final logit soft-capping (Gemma 2/3), applied to decoded rows
    mid: str | None  # per block, the module whose input is the residual after attention
    attention: tuple[str, ...]  # per block, its attention module (empty without attention)


def plan_trace(model: Any, *, lens_mid: bool, attention: bool) -> TracePlan:
    """Find a transformers model's blocks, final norm, head and attention modules by path.

    Reads module names only, so it works on a remote model's weightless skeleton.

    Args:
        model: a transformers causal LM (the one an nnsight model wraps).
        lens_mid: also find where each block keeps its residual after attention.
        attention: also find each block's attention module.

    Raises:
        CoilvisValueError: a piece cannot be found (the message names it).
    """
    names = {id(m): name for name, m in model.named_modules()}

    def path_of(module: Any, what: str) -> str:
        name = names.get(id(module))
        if not name:
            raise CoilvisValueError(f"model: coilvis cannot find {what} among the modules of {type(model).__name__}")
        return name

    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Module):
        raise CoilvisValueError(f"model: {type(model).__name__} has no output head (get_output_embeddings() returned {type(head).__name__})")
    softcap = getattr(text_config(model), "final_logit_softcapping", None)
    return TracePlan(
        n_layers=n_layers_of(model),
        layers=path_of(_hf_layers(model), "the list of blocks"),
        norm=path_of(_hf_final_norm(model)[0], "the final norm"),
        head=path_of(head, "the output head"),
        softcap=float(softcap) if softcap else None,
        mid=_mid_residual_input(model) if lens_mid else None,
        attention=tuple(path_of(m, f"the attention of block {i}") for i, m in enumerate(attention_modules(model))) if attention else (),
    )


@contextlib.contextmanager
def _shipped_by_value(execution: bool | str) -> Iterator[None]:
    """While a trace is serialised (``execution`` True or ``"local"``), pickle this
    module's functions by their source, so the server rebuilds them without coilvis."""
    if execution is False:
        yield
        return
    import cloudpickle

    module = sys.modules[__name__]
    registered = __name__ in getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", ())
    if not registered:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        if not registered:
            cloudpickle.unregister_pickle_by_value(module)


def trace_stats(
    lm: Any,
    input_ids: torch.Tensor,
    plan: TracePlan,
    *,
    next_ids: torch.Tensor,
    k: int,
    lens: bool,
    lens_k: int,
    attention_layers: frozenset[int] | None,
    keys_per_query: int,
    min_weight: float,
    chunk_rows: int = TRACE_CHUNK_ROWS,
    execution: bool | str = False,
) -> dict[str, Any]:
    """Run one nnsight trace of ``input_ids`` and bring back only its reduced statistics.

    Args:
        lm: an nnsight ``LanguageModel``.
        input_ids: (seq_len,) int64 token ids, as coilvis encoded them.
        plan: from :func:`plan_trace` of the wrapped model.
        next_ids: (seq_len,) int64 the next token per position, -1 where unknown.
        k: top tokens kept per position (at most ``d_vocab``).
        lens: also decode every block's residual (and, when ``plan.mid``, each
            residual after attention) through the final norm and head.
        lens_k: top tokens kept per lens cell (at most ``d_vocab``).
        attention_layers: prune these blocks' attention patterns (``None``: none).
        keys_per_query: keys kept per query, head, and mean and max over heads.
        min_weight: lighter links are dropped.
        chunk_rows: positions decoded at once inside the trace.
        execution: nnsight's ``remote=``: ``False`` runs the trace here, ``True`` on
            NDIF, ``"local"`` serialises it as for NDIF and runs it here.

    Returns:
        What :func:`reduce_logits` returns (CPU tensors), with ``"links"``: one
        :func:`prune_pattern` dict per block in ``attention_layers``.
    """
    import nnsight

    n_layers, layers, norm, head, softcap, mid, attn = plan
    attn_layers = sorted(attention_layers) if attention_layers is not None else []
    batch = input_ids.reshape(1, -1)
    # nested, not one `with`: nnsight finds the block it ships by the trace's own `with`
    with _shipped_by_value(execution):  # noqa: SIM117
        with lm.trace(batch, remote=execution):
            with torch.no_grad():
                rows = [lm.get(f"{layers}.0.input")] if lens else []
                last = None
                links = []
                for i in range(n_layers):
                    if i in attn_layers:
                        links.append(prune_pattern(lm.get(f"{attn[i]}.output"), layer=i, top_k=keys_per_query, min_weight=min_weight))
                    if lens and mid is not None:
                        rows.append(lm.get(f"{layers}.{i}.{mid}.input"))
                    if lens:
                        out = lm.get(f"{layers}.{i}.output")
                        out = out[0] if isinstance(out, tuple) else out
                        if i < n_layers - 1:
                            rows.append(out)
                        else:
                            last = out
                output = lm.output
                logits = output.logits if hasattr(output, "logits") else output[0]
                result = reduce_logits(
                    logits[0], [r[0] for r in rows], last[0] if last is not None else None, lm.get(norm), lm.get(head), softcap,
                    next_ids, k=k, lens_k=lens_k, chunk_rows=chunk_rows,
                )
                result["links"] = links
                saved = nnsight.save(result)
    return saved


# --------------------------------------------------------------------------- what the trace runs
# Torch only, and each other: these functions are shipped to the server by source.


def decode_rows(resid: Any, norm: Any, head: Any, softcap: float | None) -> Any:
    """(rows, d_model) residual -> (rows, d_vocab) float32 logits through the model's
    final norm and head (and soft-capping), as the model makes its own."""
    x = head(norm(resid.unsqueeze(0)))[0].float()
    if softcap is not None:
        x = torch.tanh(x / softcap) * softcap
    return x


def position_stats(x: Any, next_ids: Any, k: int) -> dict[str, Any]:
    """What :func:`coilvis.stats.position_stats` keeps of (rows, V) float32 logits, by
    its formulas: ``log Z = max - log p[argmax]``, ``H = -sum p (x - max) - log
    p[argmax]`` (terms with ``p = 0`` count 0), the next token's log-probability and
    rank (1 + tokens strictly above it; NaN and -1 where ``next_ids`` is -1)."""
    probs = torch.softmax(x, dim=-1)
    top_v, top_i = torch.topk(x, k, dim=-1)
    log_p_top = probs.gather(1, top_i[:, :1]).squeeze(1).log()
    log_z = top_v[:, 0] - log_p_top
    terms = torch.where(probs > 0, probs * (x - top_v[:, :1]), x.new_zeros(()))
    entropy = -terms.sum(dim=-1) - log_p_top
    known = next_ids >= 0
    next_logit = x.gather(1, next_ids.clamp(min=0).unsqueeze(1))
    next_rank = (x > next_logit).sum(dim=-1) + 1
    return {
        "topk_ids": top_i,
        "topk_logits": top_v,
        "topk_probs": (top_v - log_z.unsqueeze(1)).exp(),
        "log_z": log_z,
        "entropy": entropy.clamp(min=0.0),
        "next_logprob": torch.where(known, next_logit[:, 0] - log_z, torch.full_like(log_z, float("nan"))),
        "next_rank": torch.where(known, next_rank, torch.full_like(next_rank, -1)),
    }


def row_stats(x: Any, next_ids: Any, k: int, final: Any = None) -> dict[str, Any]:
    """What :func:`coilvis.lens_kernel.row_stats` keeps of (rows, V) float32 logits, by its formulas.

    One softmax gives ``p`` and ``log Z = max - log p[argmax]``; ``H = -sum p (x -
    max) - log p[argmax]``; with ``final = (probs, neg_entropy, top_ids)`` of the
    final row at the same positions, ``KL(final || x) = sum p_f log p_f - sum p_f (x -
    max) - log p[argmax]`` and the final top token's probability and rank. Terms with
    ``p = 0`` count 0 (masked vocabularies). Without ``final`` the row is the final
    one: its KL is 0, and ``final`` for the other rows is returned as ``compare``.
    """
    zero = x.new_zeros(())
    top_v, top_i = torch.topk(x, k, dim=-1)
    known = next_ids >= 0
    next_logit = x.gather(1, next_ids.clamp(min=0).unsqueeze(1))
    next_rank = (x > next_logit).sum(dim=-1) + 1
    probs = torch.softmax(x, dim=-1)
    log_p_top = probs.gather(1, top_i[:, :1]).squeeze(1).log()
    log_z = top_v[:, 0] - log_p_top
    shifted = x - top_v[:, :1]
    entropy = (-torch.where(probs > 0, probs * shifted, zero).sum(dim=-1) - log_p_top).clamp(min=0.0)
    out = {
        "topk_ids": top_i,
        "topk_probs": (top_v - log_z.unsqueeze(1)).exp(),
        "log_z": log_z,
        "entropy": entropy,
        "next_prob": torch.where(known, (next_logit[:, 0] - log_z).exp(), torch.full_like(log_z, float("nan"))),
        "next_rank": torch.where(known, next_rank, torch.full_like(next_rank, -1)),
    }
    if final is None:
        out["kl_to_final"] = torch.zeros_like(log_z)
        out["final_top_prob"] = out["topk_probs"][:, 0]
        out["final_top_rank"] = torch.ones_like(next_rank)
        out["compare"] = (probs, -entropy, top_i[:, :1])
        return out
    final_probs, final_neg_entropy, final_top = final
    cross = torch.where(final_probs > 0, final_probs * shifted, zero).sum(dim=-1)
    out["kl_to_final"] = (final_neg_entropy - cross - log_p_top).clamp(min=0.0)
    top_logit = x.gather(1, final_top)
    out["final_top_prob"] = (top_logit[:, 0] - log_z).exp()
    out["final_top_rank"] = (x > top_logit).sum(dim=-1) + 1
    return out


#: Per-position fields the Record keeps, and the lens fields per row.
POSITION_FIELDS = ("topk_ids", "topk_logits", "topk_probs", "log_z", "entropy", "next_logprob", "next_rank")
LENS_FIELDS = ("topk_ids", "topk_probs", "entropy", "kl_to_final", "next_prob", "next_rank", "final_top_prob", "final_top_rank", "log_z")


def _empty(shape: tuple[int, ...], name: str, device: Any) -> Any:
    integer = name.endswith(("_ids", "_rank"))
    return torch.empty(shape, dtype=torch.int32 if integer else torch.float32, device=device)


def _store(out: dict[str, Any], stats: dict[str, Any], where: Any) -> None:
    for name, target in out.items():
        target[where] = stats[name]


def reduce_logits(
    logits: Any, rows: list[Any], last: Any, norm: Any, head: Any, softcap: float | None, next_ids: Any, *, k: int, lens_k: int, chunk_rows: int
) -> dict[str, Any]:
    """The statistics of a prompt's final logits and, when ``rows`` are given, of its lens.

    Args:
        logits: (seq_len, d_vocab) the model's logits.
        rows: (seq_len, d_model) residuals to decode, in lens order (the final row,
            the logits, is added last).
        last: (seq_len, d_model) the last block's output, or ``None``: a few of its
            positions are decoded to check the head against the logits.
        norm, head: the model's final norm and output head (callables).
        softcap: final logit soft-capping, or ``None``.
        next_ids: (seq_len,) int64 next token ids, -1 where unknown.
        k, lens_k: top tokens kept per position and per lens cell.
        chunk_rows: positions decoded at once.

    Returns:
        CPU tensors: ``position`` (the :data:`POSITION_FIELDS`, (seq_len, ...)),
        ``lens`` (the :data:`LENS_FIELDS`, (n_rows, seq_len, ...), or ``None``),
        ``check`` ((max difference, largest logit) of the decoder check, or ``None``),
        ``dtype`` and ``device`` of the logits.
    """
    seq_len = logits.shape[0]
    device = logits.device
    next_ids = next_ids.to(device)
    n_rows = len(rows) + 1
    position = {name: _empty((seq_len, k) if name.startswith("topk") else (seq_len,), name, device) for name in POSITION_FIELDS}
    lens = {name: _empty((n_rows, seq_len, lens_k) if name.startswith("topk") else (n_rows, seq_len), name, device) for name in LENS_FIELDS} if rows else None
    for p0 in range(0, seq_len, chunk_rows):
        p1 = min(seq_len, p0 + chunk_rows)
        ids, x = next_ids[p0:p1], logits[p0:p1].float()
        _store(position, position_stats(x, ids, k), slice(p0, p1))
        if lens is None:
            continue
        final = row_stats(x, ids, lens_k)
        _store(lens, final, (n_rows - 1, slice(p0, p1)))
        compare = final.pop("compare")
        del final, x
        for r, resid in enumerate(rows):
            x = decode_rows(resid[p0:p1], norm, head, softcap).to(device)
            _store(lens, row_stats(x, ids, lens_k, compare), (r, slice(p0, p1)))
    check = None
    if last is not None:
        pos = torch.unique(torch.linspace(0, seq_len - 1, min(seq_len, CHECK_POSITIONS)).round().long()).to(device)
        want = logits[pos].float()
        got = decode_rows(last[pos.to(last.device)], norm, head, softcap).to(device)
        check = torch.stack([(got - want).abs().max(), want.abs().max()]).cpu()
    return {
        "position": {name: t.cpu() for name, t in position.items()},
        "lens": {name: t.cpu() for name, t in lens.items()} if lens is not None else None,
        "check": check,
        "dtype": str(logits.dtype).replace("torch.", ""),
        "device": str(device),
    }


def prune_pattern(output: Any, *, layer: int, top_k: int, min_weight: float) -> dict[str, Any]:
    """The strongest keys of each query in one block's attention, per head and for the
    mean and max over heads, as :func:`coilvis.stats.prune_attention` keeps them.

    Args:
        output: the attention module's output; its second item is the
            (1, n_heads, seq_len, seq_len) pattern (eager attention only).
        layer: the block, for messages.
        top_k: keys kept per query and head.
        min_weight: lighter links are dropped (and links of weight 0).

    Returns:
        CPU tensors ``head`` (int16; -1 mean, -2 max), ``query``, ``key`` (int32),
        ``weight`` (float32), one entry per link, unordered; ``n_heads`` and ``layer``.

    Raises:
        ValueError: the module returned no pattern (a fused attention kernel).
    """
    pattern = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
    if pattern is None:
        raise ValueError(
            f"attention: block {layer} returned no attention pattern (the model runs a fused attention kernel such as "
            "sdpa, which never forms one); run it with attn_implementation='eager', or without attention"
        )
    pattern = pattern[0]
    n_heads, seq_len = pattern.shape[0], pattern.shape[1]
    kk = min(top_k, seq_len)
    ids = torch.arange(n_heads + 2, device=pattern.device)
    ids = torch.where(ids == n_heads, -1, torch.where(ids == n_heads + 1, -2, ids))
    parts: dict[str, list[Any]] = {"head": [], "query": [], "key": [], "weight": []}
    for q0 in range(0, seq_len, ATTENTION_CHUNK):
        q1 = min(seq_len, q0 + ATTENTION_CHUNK)
        block = pattern[:, q0:q1].float()
        stacked = torch.cat([block, block.mean(dim=0, keepdim=True), block.amax(dim=0, keepdim=True)], dim=0)
        w, key = torch.topk(stacked, kk, dim=-1)
        keep = (w > 0) & (w >= min_weight)
        parts["head"].append(ids.view(-1, 1, 1).expand_as(w)[keep].to(torch.int16))
        parts["query"].append(torch.arange(q0, q1, device=w.device).view(1, -1, 1).expand_as(w)[keep].to(torch.int32))
        parts["key"].append(key[keep].to(torch.int32))
        parts["weight"].append(w[keep])
    out: dict[str, Any] = {name: torch.cat(values).cpu() for name, values in parts.items()}
    out["n_heads"] = int(n_heads)
    out["layer"] = int(layer)
    return out


# --------------------------------------------------------------------------- sizes


def returned_bytes(saved: Any) -> int:
    """Bytes of what a trace saved, as ``torch.save`` writes them (how NDIF sends results)."""
    buf = io.BytesIO()
    torch.save(saved, buf)
    return buf.tell()


def full_bytes(*, seq_len: int, d_vocab: int, n_lens_rows: int, attention: tuple[int, int]) -> int:
    """Bytes of the float32 tensors the trace avoids bringing back: the logits of every
    position and lens row, and the dense ``(n_layers, n_heads, seq_len, seq_len)``
    patterns of ``attention = (n_layers, n_heads)``."""
    n_layers, n_heads = attention
    return 4 * (seq_len * d_vocab * (1 + n_lens_rows) + n_layers * n_heads * seq_len * seq_len)
