"""Run many prompts through a model in padded batches and keep one Record each (:func:`run_many`).

Each Record equals what :func:`coilvis.run` gives for its prompt alone, up to float
rounding: prompts are right-padded, so every real token keeps its position (and its
rotary angle), and causal attention keeps every real query off the padding after it.
The statistics and the lens are computed per prompt, from the batch's tensors, by the
same code :func:`coilvis.run` uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.logit_lens import compute_lens
from coilvis.models import LoadedModel, hf, resolve_model
from coilvis.models.kinds import is_transformer_lens
from coilvis.options import check_k
from coilvis.record import Record
from coilvis.runner.assemble import AttentionCollector, check_progress, tokenizer_record
from coilvis.runner.inputs import RunOptions, check_run_options
from coilvis.runner.prompt import (
    device_meta,
    encode_prompt,
    fit_context,
    resolve_layers,
    run,
)

__all__ = ["DEFAULT_MAX_BATCH_TOKENS", "batches", "run_many"]

#: Padded positions one batch may hold (beyond its first prompt): 2,048 positions of a
#: 49k vocabulary are 400 MB of float32 logits.
DEFAULT_MAX_BATCH_TOKENS = 2048


def _check_prompts(prompts: Any) -> list[str]:
    """A list or tuple of non-empty str, each refused by its index."""
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        hint = " (for one prompt use coilvis.run, or pass [prompt])" if isinstance(prompts, str) else ""
        raise CoilvisTypeError(f"prompts: expected a list of str, got {type(prompts).__name__}{hint}")
    out = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise CoilvisTypeError(f"prompts[{i}]: expected a str, got {type(prompt).__name__}")
        if not prompt:
            raise CoilvisValueError(f"prompts[{i}]: is empty; give at least one character of text")
        out.append(prompt)
    return out


def batches(lengths: Sequence[int], *, batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Prompt indices grouped into batches, longest prompts first.

    A batch holds at most ``batch_size`` prompts, and more than one only while its
    padded size (prompts x the longest one's length) stays within ``max_batch_tokens``.
    Sorting by length keeps the padding small.

    >>> batches([3, 9, 4, 8, 1], batch_size=2, max_batch_tokens=100)
    [[1, 3], [2, 0], [4]]
    >>> batches([3, 9, 4, 8, 1], batch_size=8, max_batch_tokens=16)
    [[1], [3, 2], [0, 4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and (len(out[-1]) + 1) * lengths[out[-1][0]] <= max_batch_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _batch_records(
    loaded: LoadedModel, prompts: list[str], encoded: list[tuple[np.ndarray, dict[str, Any] | None]], opts: RunOptions,
    layers: frozenset[int] | None,
) -> list[Record]:
    """The Records of one batch: one padded forward pass, then statistics and lens per prompt."""
    collectors = None
    if opts.attention:
        collectors = [AttentionCollector(keys_per_query=opts.keys_per_query, min_weight=opts.min_weight, layers=layers) for _ in prompts]
    t0 = time.perf_counter()
    outs = hf.forward_batch_for_record(
        loaded.model, [torch.as_tensor(ids) for ids, _ in encoded], attention_hooks=collectors, residuals=opts.lens, mid=opts.lens_mid
    )
    if collectors is not None and any(not c.parts for c in collectors) and layers != frozenset():
        raise CoilvisValueError(
            "attention: the model ran but returned no attention patterns (it uses a fused attention kernel); "
            "load it with attn_implementation='eager'"
        )
    share = (time.perf_counter() - t0) / len(prompts)
    meta = {**device_meta(loaded.model), "adapter": "transformers"}
    records = []
    for i, (prompt, (ids, truncated), (logits, residuals, n_layers)) in enumerate(zip(prompts, encoded, outs)):
        t1 = time.perf_counter()
        next_ids = stats.next_ids_of(ids)
        d_vocab = int(logits.shape[-1])
        pos_stats = stats.position_stats(logits, k=check_k(opts.k, available=d_vocab), next_ids=next_ids)
        extra: dict[str, Any] = {"forward_s": round(share + time.perf_counter() - t1, 4)}
        lens_stats = None
        if opts.lens:
            lens_k = check_k(opts.lens_k, available=d_vocab, name="lens_k")
            lens_stats = compute_lens(loaded.model, residuals, logits=logits, next_ids=next_ids, k=lens_k, progress=False)
        if truncated is not None:
            extra["truncated"] = truncated
        records.append(tokenizer_record(
            loaded.tokenizer, ids, pos_stats, d_vocab=d_vocab, model_name=loaded.name, prompt=prompt, lens_stats=lens_stats,
            attention=collectors[i].links(n_layers) if collectors is not None else None, meta=meta, extra=extra,
        ))
    return records


def _progress_bar(progress: bool | None | Callable[[int, int], None], n_batches: int, n_prompts: int) -> Callable[[int], None]:
    """``advance(prompts done in this batch)``: a callable's ``(done, total)``, a bar over
    batches (by default when there is more than one), or nothing."""
    if callable(progress):
        done = [0]

        def call(n: int) -> None:
            done[0] += n
            progress(done[0], n_prompts)

        return call
    if not (progress if progress is not None else n_batches > 1):
        return lambda n: None
    import sys

    from tqdm import tqdm

    bar = tqdm(total=n_batches, desc="coilvis run_many", unit="batch", file=sys.stderr, leave=False)

    def advance(n: int) -> None:
        bar.update(1)
        if bar.n >= n_batches:
            bar.close()

    return advance


def run_many(
    prompts: Sequence[str],
    model: Any = None,
    *,
    batch_size: int = 8,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
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
) -> list[Record]:
    """Run many prompts through a model in padded batches; one Record per prompt.

    Each Record is the one :func:`coilvis.run` gives for its prompt alone (the same
    statistics, lens and attention links, equal up to float rounding), only faster:
    prompts are sorted by length, grouped into batches and each batch runs as one
    right-padded forward pass with an attention mask. Statistics and the lens are then
    computed prompt by prompt, so memory holds one batch's tensors at a time (at most
    ``batch_size`` prompts, and more than one only within ``max_batch_tokens`` padded
    positions). Every argument, every prompt and its length are checked before the
    model runs. TransformerLens models run the prompts one by one (:func:`coilvis.run`).

    Args:
        prompts: the texts (a list of non-empty str; errors name the index,
            ``prompts[3]``).
        model: as :func:`coilvis.run` (``None``: the embedded default model).
        batch_size: most prompts per forward pass, >= 1.
        max_batch_tokens: most padded positions per batch (prompts x the longest
            one's tokens); a longer prompt runs alone.
        tokenizer, k, attention, attention_top_k, attention_min_weight, attention_layers, lens, lens_k, lens_mid, prepend_bos, truncate:
            as :func:`coilvis.run`, the same for every prompt.
        progress: a bar over batches (``None``: when there is more than one batch),
            or a callable called with ``(prompts done, prompts in all)`` after each batch.

    Returns:
        One :class:`~coilvis.record.Record` per prompt, in the order of ``prompts``;
        ``extra["forward_s"]`` is the prompt's share of its batch's pass plus its own
        statistics.

    Raises:
        CoilvisTypeError / CoilvisValueError: as :func:`coilvis.run`, naming the
            prompt's index for a prompt's own problem (empty, too long, no tokens).
    """
    texts = _check_prompts(prompts)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    max_batch_tokens = check_int("max_batch_tokens", max_batch_tokens, minimum=1)
    opts = check_run_options(
        k=k, attention=attention, attention_top_k=attention_top_k, attention_min_weight=attention_min_weight,
        attention_layers=attention_layers, lens=lens, lens_k=lens_k, lens_mid=lens_mid, prepend_bos=prepend_bos, truncate=truncate,
    )
    progress = check_progress(progress)
    if not texts:
        return []
    loaded = resolve_model(model, tokenizer)
    if is_transformer_lens(loaded.model):
        return _one_by_one(texts, loaded, opts, progress)
    layers = resolve_layers(opts.layer_spec, loaded.model) if opts.attention else None
    encoded = [
        fit_context(encode_prompt(loaded, text, prepend_bos=opts.prepend_bos, name=f"prompts[{i}]"), loaded, opts.truncate, name=f"prompts[{i}]")
        for i, text in enumerate(texts)
    ]
    groups = batches([int(ids.shape[0]) for ids, _ in encoded], batch_size=batch_size, max_batch_tokens=max_batch_tokens)
    advance = _progress_bar(progress, len(groups), len(texts))
    records: list[Record | None] = [None] * len(texts)
    for group in groups:
        for i, record in zip(group, _batch_records(loaded, [texts[i] for i in group], [encoded[i] for i in group], opts, layers)):
            records[i] = record
        advance(len(group))
    return [r for r in records if r is not None]


def _one_by_one(texts: list[str], loaded: LoadedModel, opts: RunOptions, progress: Any) -> list[Record]:
    """TransformerLens models: each prompt through :func:`coilvis.run`, every prompt encoded and fitted first."""
    for i, text in enumerate(texts):
        fit_context(encode_prompt(loaded, text, prepend_bos=opts.prepend_bos, name=f"prompts[{i}]"), loaded, opts.truncate, name=f"prompts[{i}]")
    advance = _progress_bar(progress, len(texts), len(texts))
    records = []
    for text in texts:
        records.append(run(text, loaded, progress=False, **opts.run_kwargs()))
        advance(1)
    return records
