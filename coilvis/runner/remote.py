"""Run a prompt through an nnsight model as one reducing trace (on NDIF, or here) and assemble its Record.

``coilvis.run(prompt, language_model, remote=True)`` comes here once its arguments
are checked and the prompt is encoded: :func:`coilvis.models.nnsight_trace.trace_stats`
computes every statistic inside the trace, where the model is, and this module turns
the small tensors that come back into the same Record a plain run gives (the same
fields, to float32 rounding; ranks and top-k orders up to near-ties).

On NDIF (with an API key, see the README) ``lm = LanguageModel("meta-llama/Llama-3.1-70B")``
then ``coilvis.run("The Eiffel Tower is in", lm, remote=True, lens=True)``. The same trace
runs here, serialised as for NDIF, with ``remote="local"``; on the embedded default model:

>>> import coilvis  # doctest: +MODEL
>>> from nnsight import LanguageModel
>>> model, tokenizer, name = coilvis.load_model()
>>> lm = LanguageModel(model, tokenizer=tokenizer)
>>> record = coilvis.run("The Eiffel Tower is in", lm, remote="local", lens=True)
>>> sent = record.extra["trace_bytes"]
>>> sent["returned"] < sent["full"] / 100, record.save("eiffel.coil").name
(True, 'eiffel.coil')
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import torch

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.models import LoadedModel, hf
from coilvis.models.anatomy import final_row_name, residual_layout, text_config
from coilvis.models.kinds import is_nnsight
from coilvis.models.nnsight_trace import (
    TRACE_CHUNK_ROWS,
    full_bytes,
    plan_trace,
    returned_bytes,
    trace_stats,
)
from coilvis.options import check_k
from coilvis.record import AttentionLinks, LensStats, Record, next_ids_of
from coilvis.runner.assemble import tokenizer_record

__all__ = ["check_remote", "run_traced"]

#: How far the decoded last block may be from the logits, relative to the largest
#: logit, by the logits' dtype (as :mod:`coilvis.logit_lens` checks its decoder).
_CHECK_RTOL = {"float32": 1e-4, "float64": 1e-6}
_CHECK_RTOL_LOW_PRECISION = 3e-2


def check_remote(remote: Any, model: Any) -> bool | str:
    """``remote=`` of :func:`coilvis.run`: ``False``, ``True`` (NDIF) or ``"local"``
    (nnsight's dry run: the trace serialised as for NDIF, run here); anything but
    ``False`` needs an nnsight model.

    Raises:
        CoilvisTypeError: not a bool or a str, or ``model`` is not an nnsight model.
        CoilvisValueError: a str other than ``"local"``.
    """
    if isinstance(remote, (bool, np.bool_)):
        remote = bool(remote)
    elif isinstance(remote, str):
        if remote != "local":
            raise CoilvisValueError(f"remote: expected True (NDIF), False or 'local' (the same trace run here), got {remote!r}")
    else:
        raise CoilvisTypeError(f"remote: expected True, False or 'local', got {type(remote).__name__}")
    if remote is False:
        return False
    if not is_nnsight(model):
        raise CoilvisTypeError(
            f"remote: runs the statistics inside an nnsight trace (on NDIF), so model must be an nnsight "
            f"LanguageModel, got {type(model).__name__}; wrap it (nnsight.LanguageModel(...)) or pass remote=False"
        )
    return remote


def run_traced(
    lm: Any,
    loaded: LoadedModel,
    ids: np.ndarray,
    *,
    prompt: str,
    truncated: dict[str, Any] | None,
    k: int,
    attention: bool,
    attention_layers: frozenset[int] | None,
    keys_per_query: int,
    min_weight: float,
    lens: bool,
    lens_k: int,
    lens_mid: bool,
    execution: bool | str,
    chunk_rows: int = TRACE_CHUNK_ROWS,
) -> Record:
    """The Record of one reducing nnsight trace of ``ids`` (arguments checked by :func:`coilvis.run`).

    Args:
        lm: the nnsight ``LanguageModel``.
        loaded: what :func:`coilvis.models.resolve_model` made of it (the wrapped
            transformers model and the tokenizer).
        ids: (seq_len,) int64 token ids, fitted to the context.
        prompt, truncated: kept in the Record.
        k, lens, lens_k, lens_mid: as :func:`coilvis.run`.
        attention: keep pruned attention links.
        attention_layers: the blocks whose links are kept (``None``: all of them).
        keys_per_query, min_weight: how attention is pruned.
        execution: nnsight's ``remote=``: ``True`` (NDIF), ``"local"`` or ``False``
            (both here; ``False`` without serialising the trace).
        chunk_rows: positions decoded at once inside the trace.

    Raises:
        CoilvisValueError: NaN or infinite logits, a head that does not reproduce the
            logits, or no attention patterns (a fused attention kernel).
    """
    model = loaded.model
    d_vocab = _vocab_size(model)
    k, lens_k = check_k(k, available=d_vocab), check_k(lens_k, available=d_vocab, name="lens_k")
    plan = plan_trace(model, lens_mid=lens_mid, attention=attention)
    if attention and attention_layers is None:
        attention_layers = frozenset(range(plan.n_layers))
    next_ids = torch.from_numpy(next_ids_of(ids))
    # here the model can be switched to eager attention for the pass; NDIF's cannot
    eager = hf.eager_attention(model) if attention and execution is not True else contextlib.nullcontext()
    t0 = time.perf_counter()
    try:
        with eager:
            saved = trace_stats(
                lm, torch.from_numpy(ids), plan, next_ids=next_ids, k=k, lens=lens, lens_k=lens_k,
                attention_layers=attention_layers if attention else None,
                keys_per_query=keys_per_query, min_weight=min_weight, chunk_rows=chunk_rows, execution=execution,
            )
    except ValueError as exc:
        if str(exc).startswith("attention:"):
            raise CoilvisValueError(str(exc)) from None
        raise
    forward_s = time.perf_counter() - t0
    pos = _position_stats(saved["position"])
    lens_stats = _lens_stats(saved, plan.n_layers, lens_mid) if lens else None
    links = _links(saved["links"], plan.n_layers, keys_per_query, min_weight, model) if attention else None
    n_lens_rows = lens_stats.n_rows - 1 if lens_stats is not None else 0
    n_heads = links.n_heads if links is not None else 0
    sizes = {
        "returned": returned_bytes(saved),
        "full": full_bytes(seq_len=int(ids.shape[0]), d_vocab=d_vocab, n_lens_rows=n_lens_rows, attention=(len(saved["links"]), n_heads)),
    }
    extra: dict[str, Any] = {"forward_s": round(forward_s, 4), "remote": execution, "trace_bytes": sizes}
    if truncated is not None:
        extra["truncated"] = truncated
    return tokenizer_record(
        loaded.tokenizer, ids, pos, d_vocab=d_vocab, model_name=loaded.name, prompt=prompt, lens_stats=lens_stats, attention=links,
        meta={"device": "ndif" if execution is True else saved["device"], "dtype": saved["dtype"], "adapter": "nnsight"}, extra=extra,
    )


def _vocab_size(model: Any) -> int:
    """Rows of the output head (a padded vocabulary counts its padding), else the config's ``vocab_size``."""
    weight = getattr(model.get_output_embeddings(), "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return int(weight.shape[0])
    return int(text_config(model).vocab_size)


def _position_stats(position: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The Record's per-position arrays from the trace's, NaN or infinite logits refused."""
    out = {name: t.numpy() for name, t in position.items()}
    bad = np.flatnonzero(~np.isfinite(out["log_z"]))
    if bad.size:
        where = ", ".join(str(int(p)) for p in bad[:10])
        raise CoilvisValueError(f"logits: NaN or infinite logits (or every logit -inf) at position(s) {where}")
    for name in ("topk_ids", "next_rank"):
        out[name] = out[name].astype(np.int64)
    return out


def _lens_stats(saved: dict[str, Any], n_layers: int, lens_mid: bool) -> LensStats:
    """The lens of the trace, its decoder check passed and its rows finite."""
    names = [row.name for row in residual_layout(n_layers, mid=lens_mid) if row.name != final_row_name(n_layers)]
    names.append(final_row_name(n_layers))
    check = saved["check"]
    if check is not None:
        err, scale = float(check[0]), max(1.0, float(check[1]))
        rtol = _CHECK_RTOL.get(saved["dtype"], _CHECK_RTOL_LOW_PRECISION)
        if not err <= rtol * scale:
            raise CoilvisValueError(
                f"model: decoding the last block's residual through its final norm and head does not reproduce the model's "
                f"own logits (max difference {err:.3g}, logits up to {scale:.3g}); this architecture changes its logits "
                "in a way coilvis does not know, so it refuses to draw a wrong lens"
            )
    arrays = {name: t.numpy() for name, t in saved["lens"].items()}
    bad = np.argwhere(~np.isfinite(arrays.pop("log_z")))
    if bad.size:
        row, position = (int(v) for v in bad[0])
        raise CoilvisValueError(f"residuals: row {names[row]!r} decodes to NaN or infinite logits at position {position}")
    return LensStats(layer_names=tuple(names), **arrays)


def _links(parts: list[dict[str, Any]], n_layers: int, keys_per_query: int, min_weight: float, model: Any) -> AttentionLinks:
    """The pruned links of each block, ordered as :func:`coilvis.stats.prune_attention` orders them."""
    n_heads = parts[0]["n_heads"] if parts else int(getattr(text_config(model), "num_attention_heads", 0) or 0)
    layers, cols = [], {name: [] for name in ("head", "query", "key", "weight")}
    for part in parts:
        head = part["head"].numpy()
        order = np.lexsort((-part["weight"].numpy(), part["query"].numpy(), np.where(head < 0, n_heads - head, head)))
        layers.append(np.full(order.shape[0], part["layer"], dtype=np.int16))
        for name, values in cols.items():
            values.append(part[name].numpy()[order])
    cat = {name: np.concatenate(v) if v else np.empty(0) for name, v in cols.items()}
    return AttentionLinks(
        layer=np.concatenate(layers) if layers else np.empty(0), **cat, n_layers=n_layers, n_heads=n_heads,
        top_k=keys_per_query, min_weight=min_weight,
    )

