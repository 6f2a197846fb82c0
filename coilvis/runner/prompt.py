"""Run a prompt through a model once (transformers or TransformerLens) and keep a Record."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.logit_lens import compute_lens
from coilvis.models import LoadedModel, context_length, hf, resolve_model, tlens
from coilvis.models.anatomy import n_layers_of
from coilvis.models.kinds import is_transformer_lens
from coilvis.options import check_k
from coilvis.record import LensStats, Record
from coilvis.runner.assemble import (
    AttentionCollector,
    check_progress,
    show_progress,
    tokenizer_record,
)
from coilvis.runner.inputs import RunOptions, check_prompt, check_run_options
from coilvis.runner.remote import check_remote, run_traced

__all__ = ["Pass", "device_meta", "encode_prompt", "fit_context", "forward_prompt", "resolve_layers", "run"]


def resolve_layers(spec: tuple[int, ...] | None, model: Any) -> frozenset[int] | None:
    """Layer indices checked against the model's layer count, negative ones counted from the end."""
    if spec is None:
        return None
    try:
        n_layers = n_layers_of(model)
    except CoilvisValueError:  # the config does not say: count the attention modules
        n_layers = len(hf.attention_modules(model))
    for layer in spec:
        if not -n_layers <= layer < n_layers:
            raise CoilvisValueError(
                f"attention_layers: layer {layer} does not exist; the model has {n_layers} layers "
                f"(0..{n_layers - 1}, or -{n_layers}..-1 counting from the last)"
            )
    return frozenset(layer % n_layers for layer in spec)


def fit_context(ids: np.ndarray, loaded: LoadedModel, truncate: str | None, *, name: str = "prompt") -> tuple[np.ndarray, dict[str, Any] | None]:
    """Refuse (or truncate, when asked) token ids longer than the model's context."""
    limit = context_length(loaded.model, loaded.tokenizer)
    n = int(ids.shape[0])
    if limit is None or n <= limit[0]:
        return ids, None
    n_ctx, source = limit
    if truncate is None:
        raise CoilvisValueError(
            f"{name}: {n} tokens, but {loaded.name} takes at most {n_ctx} positions ({source}); shorten it, "
            f"or pass truncate='left' (keep the last {n_ctx} tokens) or truncate='right' (keep the first {n_ctx})"
        )
    kept = ids[-n_ctx:] if truncate == "left" else ids[:n_ctx]
    return kept, {"side": truncate, "dropped_tokens": n - n_ctx}


def encode_prompt(loaded: LoadedModel, prompt: str, *, prepend_bos: bool | None, name: str = "prompt") -> np.ndarray:
    """(seq_len,) int64 the prompt's token ids, through the model's own adapter."""
    if is_transformer_lens(loaded.model):
        ids = tlens.encode(loaded.model, prompt, prepend_bos=prepend_bos)
    else:
        ids = hf.encode(loaded.tokenizer, prompt, prepend_bos=prepend_bos)
    if ids.shape[0] == 0:
        raise CoilvisValueError(f"{name}: the tokenizer produced no tokens for this prompt")
    return ids


class Pass(NamedTuple):
    """What one forward pass of :func:`run` gives."""

    ids: np.ndarray  # (seq_len,) int64 token ids that ran
    truncated: dict[str, Any] | None  # which side lost how many tokens
    logits: torch.Tensor  # (seq_len, d_vocab)
    residuals: list[tuple[str, torch.Tensor]] | None  # the residual layout, when the lens is on
    n_layers: int


def forward_prompt(
    loaded: LoadedModel, prompt: str, *, prepend_bos: bool | None, truncate: str | None, collector: AttentionCollector | None, lens: bool, lens_mid: bool
) -> Pass:
    """Encode the prompt with the model's adapter, fit it to the context, run the model once."""
    ids = encode_prompt(loaded, prompt, prepend_bos=prepend_bos)
    forward = tlens.forward if is_transformer_lens(loaded.model) else hf.forward_for_record
    ids, truncated = fit_context(ids, loaded, truncate)
    logits, residuals, n_layers = forward(loaded.model, torch.as_tensor(ids), attention_hook=collector, residuals=lens, mid=lens_mid)
    if collector is not None and not collector.parts and collector.layers != set():
        raise CoilvisValueError(
            "attention: the model ran but returned no attention patterns (it uses a fused attention kernel); "
            "load it with attn_implementation='eager'"
        )
    return Pass(ids, truncated, logits, residuals, n_layers)


def device_meta(model: Any) -> dict[str, str]:
    """``device`` and ``dtype`` of a model's first parameter (``"cpu"`` and ``""`` without one)."""
    first = next(iter(model.parameters()), None)
    return {
        "device": str(first.device) if first is not None else "cpu",
        "dtype": str(first.dtype).replace("torch.", "") if first is not None else "",
    }


def run(
    prompt: str,
    model: Any = None,
    *,
    tokenizer: Any = None,
    k: int = 10,
    attention: bool = False,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    attention_layers: int | Sequence[int] | None = None,
    lens: bool = False,
    lens_k: int = 5,
    lens_mid: bool = False,
    prepend_bos: bool | None = None,
    truncate: str | None = None,
    progress: bool | None | Callable[[int, int], None] = None,
    remote: bool | str = False,
    on_forward: Callable[[Record], None] | None = None,
) -> Record:
    """Run a prompt through a model once and keep what coilvis draws.

    One forward pass (batch of 1, no gradients, on whatever device and dtype the
    model has). Position i of the Record holds the model's prediction for token i + 1.
    Every argument is checked before the model is loaded or run.

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
        attention_top_k: keys kept in the Record per query, per head and for the
            mean/max over heads (``AttentionLinks.top_k``); a view draws at most these
            (how many of them it draws is the view's own ``attention_top_k``).
        attention_min_weight: drop links lighter than this, a weight in [0, 1].
        attention_layers: keep links of these layers only (default: all): one layer
            index or a list of them; negative indices count from the last layer, as in
            Python (-1 is the last). Needs ``attention=True``.
        lens: also compute logit-lens statistics for every layer (see
            :mod:`coilvis.logit_lens`).
        lens_k: top tokens kept per lens cell.
        lens_mid: also decode the residual after each layer's attention.
        prepend_bos: force a BOS token on or off (``None``: the tokenizer's default).
        truncate: what to do with a prompt longer than the model's context (see
            :func:`coilvis.models.context_length`): ``None`` refuses it, ``"left"`` drops
            the first tokens (keeps the last ones), ``"right"`` drops the last tokens.
            ``Record.prompt`` keeps the whole prompt; ``extra["truncated"]`` says how
            many tokens were dropped, and from which side.
        progress: show progress bars (default: on for long prompts); or a callable,
            called with ``(rows done, rows in all)`` as the lens decodes.
        remote: ``True`` runs an nnsight ``LanguageModel`` on NDIF as one trace that
            computes every statistic there, so only they come back (see
            :mod:`coilvis.runner.remote`; the API key is nnsight's); ``"local"`` runs
            that trace here, serialised as for NDIF (a dry run). ``progress`` is not shown.
        on_forward: with ``lens=True``, called with the Record of the forward pass
            (everything but the lens) before the lens is computed, so a caller can show
            the coil and the table while the lens runs (the explorer does); not called
            for ``remote`` runs, whose one trace computes everything at once.

    Returns:
        A :class:`~coilvis.record.Record`.

    Raises:
        CoilvisTypeError: an argument has the wrong type (the message names it), or
            ``model`` is not a model.
        CoilvisValueError: empty prompt, a prompt longer than the model's context,
            a bad ``k``, a layer the model does not have, a weight outside [0, 1].
        ModelNotFoundError / MissingDependencyError: see :func:`coilvis.load_model`.
    """
    prompt = check_prompt(prompt)
    opts = check_run_options(
        k=k, attention=attention, attention_top_k=attention_top_k, attention_min_weight=attention_min_weight,
        attention_layers=attention_layers, lens=lens, lens_k=lens_k, lens_mid=lens_mid, prepend_bos=prepend_bos, truncate=truncate,
    )
    progress = check_progress(progress)
    if on_forward is not None and not callable(on_forward):
        raise CoilvisTypeError(f"on_forward: expected a callable or None, got {type(on_forward).__name__}")
    remote = check_remote(remote, model)
    loaded = resolve_model(model, tokenizer)
    layers = resolve_layers(opts.layer_spec, loaded.model) if opts.attention else None
    if remote:
        ids, truncated = fit_context(encode_prompt(loaded, prompt, prepend_bos=opts.prepend_bos), loaded, opts.truncate)
        return run_traced(
            model, loaded, ids, prompt=prompt, truncated=truncated, k=opts.k, attention=opts.attention, attention_layers=layers,
            keys_per_query=opts.keys_per_query, min_weight=opts.min_weight, lens=opts.lens, lens_k=opts.lens_k,
            lens_mid=opts.lens_mid, execution=remote,
        )
    return _run_here(loaded, prompt, opts, layers, progress, on_forward)


def _run_here(
    loaded: LoadedModel, prompt: str, opts: RunOptions, layers: frozenset[int] | None, progress: Any,
    on_forward: Callable[[Record], None] | None = None,
) -> Record:
    """:func:`run` on this machine, its arguments checked: the forward pass, the
    statistics of the logits, the Record without the lens for ``on_forward``, the lens,
    and the Record."""
    collector = AttentionCollector(keys_per_query=opts.keys_per_query, min_weight=opts.min_weight, layers=layers) if opts.attention else None
    t0 = time.perf_counter()
    fwd = forward_prompt(
        loaded, prompt, prepend_bos=opts.prepend_bos, truncate=opts.truncate, collector=collector, lens=opts.lens, lens_mid=opts.lens_mid
    )
    next_ids = stats.next_ids_of(fwd.ids)
    d_vocab = int(fwd.logits.shape[-1])
    pos_stats = stats.position_stats(fwd.logits, k=check_k(opts.k, available=d_vocab), next_ids=next_ids)
    forward_s = time.perf_counter() - t0
    links = collector.links(fwd.n_layers) if collector is not None else None
    adapter = "transformer_lens" if is_transformer_lens(loaded.model) else "transformers"
    extra: dict[str, Any] = {"forward_s": round(forward_s, 4)}
    if fwd.truncated is not None:
        extra["truncated"] = fwd.truncated

    def record(lens_stats: LensStats | None) -> Record:
        return tokenizer_record(
            loaded.tokenizer, fwd.ids, pos_stats, d_vocab=d_vocab, model_name=loaded.name, prompt=prompt, lens_stats=lens_stats,
            attention=links, meta={**device_meta(loaded.model), "adapter": adapter}, extra=dict(extra),
        )

    if not opts.lens:
        return record(None)
    lens_k = check_k(opts.lens_k, available=d_vocab, name="lens_k")
    if on_forward is not None:
        on_forward(record(None))
    show = show_progress(progress, fwd.ids.shape[0])
    return record(compute_lens(loaded.model, fwd.residuals, logits=fwd.logits, next_ids=next_ids, k=lens_k, progress=show))
