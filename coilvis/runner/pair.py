"""Two runs side by side: two prompts through one model, one prompt through two models, or two saved Records.

:func:`compare` runs both forwards in one call and, while both full distributions exist,
computes their exact divergences over the whole vocabulary (:mod:`coilvis.lens_pair`),
per position and, with ``lens=True``, per layer x position. Everything it can check
(arguments, tokenizers, lengths, the metric's tokens, the context length) is checked
before the first model runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from coilvis import stats
from coilvis.comparison import Comparison, Metric, PairLens
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.lens_pair import compare_lens, compare_logits
from coilvis.models import LoadedModel, resolve_model
from coilvis.models.kinds import is_transformer_lens
from coilvis.options import check_k
from coilvis.pair_kernel import MetricIds, pair_kernel_name
from coilvis.record import LensStats, Record
from coilvis.runner.assemble import (
    AttentionCollector,
    check_progress,
    show_progress,
    tokenizer_record,
)
from coilvis.runner.compare_records import compare_records
from coilvis.runner.inputs import check_flag, check_prompt
from coilvis.runner.pair_inputs import (
    DEFAULT_MOVERS,
    aligned,
    check_align,
    check_label,
    check_movers,
    first_difference,
    metric_spec,
    resolve_metric,
)
from coilvis.runner.prompt import (
    Pass,
    device_meta,
    encode_prompt,
    fit_context,
    forward_prompt,
)
from coilvis.tokens import display

__all__ = ["compare"]


class _Side(NamedTuple):
    """One run to be: its prompt, model and token ids."""

    prompt: str
    loaded: LoadedModel
    ids: np.ndarray


def _vocab_of(tokenizer: Any) -> dict[str, int] | None:
    get = getattr(tokenizer, "get_vocab", None)
    return dict(get()) if callable(get) else None


def _check_tokenizers(a: LoadedModel, b: LoadedModel) -> None:
    """Refuse two models whose tokenizers give token ids different meanings."""
    if a.tokenizer is b.tokenizer:
        return
    va, vb = _vocab_of(a.tokenizer), _vocab_of(b.tokenizer)
    if va is None or vb is None or va == vb:
        return
    only_a = sorted(set(va) - set(vb))[:3]
    moved = sorted(t for t in set(va) & set(vb) if va[t] != vb[t])[:3]
    detail = f"{len(va)} and {len(vb)} entries"
    if moved:
        detail += "; " + ", ".join(f"{display(t)!r} is {va[t]} in one and {vb[t]} in the other" for t in moved)
    elif only_a:
        detail += "; " + ", ".join(f"{display(t)!r} is only in {a.name}'s" for t in only_a)
    raise CoilvisValueError(
        f"model_b: {b.name}'s tokenizer differs from {a.name}'s ({detail}); runs of models with different "
        "tokenizers cannot be compared position by position"
    )


def _sides(a: str, b: str | None, model: Any, model_b: Any, tokenizer: Any, tokenizer_b: Any, prepend_bos: bool | None) -> tuple[_Side, _Side]:
    """Both prompts and models, checked, tokenized and fitted to the context; no model has run."""
    prompt_a = check_prompt(a)
    if b is None and model_b is None:
        raise CoilvisValueError("b: give a second prompt, or model_b= to run the same prompt through a second model")
    prompt_b = prompt_a if b is None else check_prompt(b)
    loaded_a = resolve_model(model, tokenizer)
    loaded_b = loaded_a if model_b is None else resolve_model(model_b, tokenizer_b)
    _check_tokenizers(loaded_a, loaded_b)
    sides = []
    for name, prompt, loaded in (("a", prompt_a, loaded_a), ("b", prompt_b, loaded_b)):
        ids = encode_prompt(loaded, prompt, prepend_bos=prepend_bos, name=name)
        fit_context(ids, loaded, None, name=name)
        sides.append(_Side(prompt, loaded, ids))
    return sides[0], sides[1]


def _metric(spec: Any, side: _Side, d_vocab: int) -> tuple[Metric, MetricIds] | None:
    """The metric's token ids through run a's tokenizer (each string must be one token)."""
    parsed = metric_spec(spec)
    if parsed is None:
        return None
    from coilvis.tokens import vocab_texts

    tok = side.loaded.tokenizer
    if is_transformer_lens(side.loaded.model):
        def encode(text: str) -> list[int]:
            return [int(i) for i in side.loaded.model.to_tokens(text, prepend_bos=False)[0].tolist()]
    else:
        def encode(text: str) -> list[int]:
            return list(tok(text, add_special_tokens=False)["input_ids"])

    def text_of(token_id: int) -> str:
        return vocab_texts(tok, [token_id])[token_id]

    plus, minus, plus_text, minus_text = resolve_metric(parsed, encode=encode, text_of=text_of, d_vocab=d_vocab)
    return Metric(plus, minus, plus_text, minus_text), MetricIds(torch.tensor(plus), torch.tensor(minus))


def _d_vocab(loaded: LoadedModel) -> int | None:
    """The model's output size when its config says it (for checks before running)."""
    cfg = getattr(loaded.model, "config", None) or getattr(loaded.model, "cfg", None)
    for attr in ("vocab_size", "d_vocab_out", "d_vocab"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _record(side: _Side, fwd: Pass, pos_stats: dict[str, np.ndarray], lens_stats: LensStats | None, collector: AttentionCollector | None, forward_s: float) -> Record:
    loaded = side.loaded
    adapter = "transformer_lens" if is_transformer_lens(loaded.model) else "transformers"
    return tokenizer_record(
        loaded.tokenizer, fwd.ids, pos_stats, d_vocab=int(fwd.logits.shape[-1]), model_name=loaded.name, prompt=side.prompt,
        lens_stats=lens_stats, attention=collector.links(fwd.n_layers) if collector is not None else None,
        meta={**device_meta(loaded.model), "adapter": adapter}, extra={"forward_s": round(forward_s, 4)},
    )


def _compare_saved(a: Any, b: Any, *, models: tuple[Any, ...], lens: bool, attention: bool, **options: Any) -> Comparison:
    """:func:`compare` of two Records: what they kept, no model run."""
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Record):
            raise CoilvisTypeError(f"{name}: expected a Record like the other argument, got {type(value).__name__}")
    if any(m is not None for m in models):
        raise CoilvisValueError("model: comparing two saved Records runs no model; drop model=/model_b=/tokenizer=")
    if attention:
        raise CoilvisValueError("attention: comparing saved Records uses the attention they kept; drop attention=True")
    if lens and (a.lens is None or b.lens is None):
        raise CoilvisValueError(f"lens: record {'a' if a.lens is None else 'b'} has no lens statistics; run it with lens=True")
    return compare_records(a, b, **options)


def _forward(side: _Side, *, lens: bool, attention: bool, prepend_bos: bool | None, k: int) -> tuple[Pass, dict[str, np.ndarray], AttentionCollector | None, float]:
    """One run's forward pass and position statistics."""
    collector = AttentionCollector(keys_per_query=4, min_weight=0.01, layers=None) if attention else None
    t0 = time.perf_counter()
    fwd = forward_prompt(side.loaded, side.prompt, prepend_bos=prepend_bos, truncate=None, collector=collector, lens=lens, lens_mid=False)
    d_vocab = int(fwd.logits.shape[-1])
    pos_stats = stats.position_stats(fwd.logits, k=check_k(k, available=d_vocab), next_ids=stats.next_ids_of(fwd.ids))
    return fwd, pos_stats, collector, time.perf_counter() - t0


def compare(
    a: str | Record,
    b: str | Record | None = None,
    *,
    model: Any = None,
    model_b: Any = None,
    tokenizer: Any = None,
    tokenizer_b: Any = None,
    metric: Any = None,
    lens: bool = False,
    attention: bool = False,
    align: str | None = None,
    k: int = 10,
    lens_k: int = 5,
    movers: int = DEFAULT_MOVERS,
    label_a: str | None = None,
    label_b: str | None = None,
    prepend_bos: bool | None = None,
    progress: bool | None | Callable[[int, int], None] = None,
) -> Comparison:
    """Run two prompts (or one prompt through two models) and compare them position by position.

    Shapes: run a has ``seq_len_a`` positions, run b ``seq_len_b``; the comparison has
    ``n_pos`` positions (equal lengths, or the last ``min(seq_len_a, seq_len_b)`` with
    ``align="end"``), its lens ``(n_layers + 1, n_pos)`` cells.

    Both forwards run in this call; while both full next-token distributions exist,
    every divergence is computed exactly over the whole vocabulary, a block of positions
    at a time (a few hundred MB of scratch at most beyond the logits): KL(a||b), KL(b||a),
    Jensen-Shannon and total variation, the change in a's actual next token's
    log-probability, and the top movers. With ``lens=True`` the same per decoded layer and
    position, each block decoded once for both runs' own lens statistics and their
    comparison. Given two saved Records instead of prompts, it compares what they kept
    (see :func:`coilvis.runner.compare_records.compare_records`: exact where both kept
    every token, top-k lower bounds elsewhere, labelled so). The divergences and the
    bound: :doc:`/concepts/statistics` (docs/concepts/statistics.md).

    Args:
        a: the reference prompt (clean), or a Record.
        b: the other prompt (corrupted, edited), a Record, or ``None`` to run ``a``
            through ``model_b`` as well.
        model: the model (as :func:`coilvis.run` takes it; ``None``: the embedded default).
        model_b: a second model for run b (base vs tuned); it must share the tokenizer.
        tokenizer: ``model``'s tokenizer, when it cannot be found from the model.
        tokenizer_b: ``model_b``'s.
        metric: a logit difference evaluated on both runs (and every lens layer):
            ``(" Mary", " John")`` (two tokens) or two lists of tokens (the mean logit
            of each list), strings that are each one token, or token ids.
        lens: also compare every layer through the logit lens (both Records get their
            own lens statistics too).
        attention: keep attention links in both Records.
        align: ``None`` (the prompts must tokenize to the same length) or ``"end"``
            (compare the last positions of each).
        k: top next tokens kept per position in each Record.
        lens_k: top tokens kept per lens cell.
        movers: tokens kept each way per position whose probability rose / fell most.
        label_a: a short name for run a (default ``"a"``, or its model's name when the
            models differ).
        label_b: a short name for run b.
        prepend_bos: force a BOS token on or off (``None``: the tokenizer's default).
        progress: show a progress bar for the lens (default: on for long prompts); or a
            callable, called with ``(rows done, rows in all)`` as the lens decodes.

    Returns:
        A :class:`~coilvis.comparison.Comparison`.

    Raises:
        CoilvisTypeError: an argument of the wrong type (named).
        CoilvisValueError: prompts of different token lengths without ``align="end"``
            (the message gives both lengths and the first differing position), models
            with different tokenizers or depths (with ``lens=True``), a metric string
            that is not one token (the message says how it tokenizes), a prompt over
            the model's context; all before any model runs, where they can be known.
    """
    k, lens_k, movers = check_k(k), check_k(lens_k, name="lens_k"), check_movers(movers)
    lens_flag, attention_flag = check_flag("lens", lens), check_flag("attention", attention)
    prepend_bos, progress = check_flag("prepend_bos", prepend_bos, optional=True), check_progress(progress)
    align = check_align(align)
    pair_kernel_name()  # a bad COILVIS_PAIR_KERNEL is refused before any model runs
    if isinstance(a, Record) or isinstance(b, Record):
        return _compare_saved(
            a, b, models=(model, model_b, tokenizer, tokenizer_b), lens=bool(lens_flag), attention=bool(attention_flag),
            align=align, metric=metric, movers=movers, label_a=label_a, label_b=label_b,
        )
    if not isinstance(a, str):
        raise CoilvisTypeError(f"a: expected a prompt (str) or a Record, got {type(a).__name__}")
    if b is not None and not isinstance(b, str):
        raise CoilvisTypeError(f"b: expected a prompt (str), a Record or None, got {type(b).__name__}")
    side_a, side_b = _sides(a, b, model, model_b, tokenizer, tokenizer_b, prepend_bos)
    two_models = side_a.loaded is not side_b.loaded
    label_a = check_label("label_a", label_a, side_a.loaded.name if two_models else "a")
    label_b = check_label("label_b", label_b, side_b.loaded.name if two_models else "b")
    offsets = _offsets(side_a, side_b, align)
    the_metric = _metric(metric, side_a, _d_vocab(side_a.loaded) or 2**62)
    return _run_pair(
        side_a, side_b, offsets=offsets, metric=the_metric, lens=bool(lens_flag), attention=bool(attention_flag), k=k, lens_k=lens_k,
        movers=movers, labels=(label_a, label_b), prepend_bos=prepend_bos, progress=progress,
    )


def _offsets(side_a: _Side, side_b: _Side, align: str | None) -> tuple[int, int, int]:
    """Where the compared positions start in each run, and how many there are."""
    from coilvis.tokens import vocab_texts

    def describe(_: int) -> str:
        at = first_difference(side_a.ids, side_b.ids)
        if at >= min(side_a.ids.shape[0], side_b.ids.shape[0]):
            return f"one is a prefix of the other, up to position {at}"
        ta = vocab_texts(side_a.loaded.tokenizer, [int(side_a.ids[at])])[int(side_a.ids[at])]
        tb = vocab_texts(side_b.loaded.tokenizer, [int(side_b.ids[at])])[int(side_b.ids[at])]
        return f"they first differ at position {at}: {display(ta)!r} in a, {display(tb)!r} in b"

    return aligned(int(side_a.ids.shape[0]), int(side_b.ids.shape[0]), align=align, describe=describe)


def _run_pair(
    side_a: _Side, side_b: _Side, *, offsets: tuple[int, int, int], metric: tuple[Metric, MetricIds] | None, lens: bool, attention: bool,
    k: int, lens_k: int, movers: int, labels: tuple[str, str], prepend_bos: bool | None, progress: bool | None,
) -> Comparison:
    """Both forwards, the exact comparison, and the Comparison."""
    off_a, off_b, n_pos = offsets
    fwd_a, stats_a, coll_a, secs_a = _forward(side_a, lens=lens, attention=attention, prepend_bos=prepend_bos, k=k)
    fwd_b, stats_b, coll_b, secs_b = _forward(side_b, lens=lens, attention=attention, prepend_bos=prepend_bos, k=k)
    d_vocab = int(fwd_a.logits.shape[-1])
    if int(fwd_b.logits.shape[-1]) != d_vocab:
        raise CoilvisValueError(
            f"model_b: its logits have {int(fwd_b.logits.shape[-1])} entries per position, model a's {d_vocab}; "
            "the models' output vocabularies differ"
        )
    metric_ids = None if metric is None else MetricIds(metric[1].plus.to(fwd_a.logits.device), metric[1].minus.to(fwd_a.logits.device))
    next_a, next_b = stats.next_ids_of(fwd_a.ids), stats.next_ids_of(fwd_b.ids)
    t0 = time.perf_counter()
    lens_a = lens_b = pair_lens = None
    if lens:
        show = show_progress(progress, max(fwd_a.ids.shape[0], fwd_b.ids.shape[0]))
        out = compare_lens(
            (side_a.loaded.model, side_b.loaded.model), (fwd_a.residuals or [], fwd_b.residuals or []),
            logits=(fwd_a.logits, fwd_b.logits), next_ids=(next_a, next_b), offsets=(off_a, off_b), n_pos=n_pos,
            k=check_k(lens_k, available=d_vocab, name="lens_k"), movers=movers, metric=metric_ids, progress=show,
        )
        lens_a, lens_b, positions = out.lens_a, out.lens_b, out.positions
        pair_lens = PairLens(layer_names=lens_a.layer_names, exact=True, **out.cells)
    else:
        positions = compare_logits(
            fwd_a.logits, fwd_b.logits, offset_a=off_a, offset_b=off_b, n_pos=n_pos, next_ids_a=next_a, movers=movers, metric=metric_ids
        )
    compare_s = time.perf_counter() - t0
    record_a = _record(side_a, fwd_a, stats_a, lens_a, coll_a, secs_a)
    record_b = _record(side_b, fwd_b, stats_b, lens_b, coll_b, secs_b)
    return _comparison(record_a, record_b, side_a, positions, offsets=(off_a, off_b), metric=metric, lens=pair_lens, labels=labels, compare_s=compare_s)


def _comparison(
    a: Record, b: Record, side_a: _Side, positions: dict[str, np.ndarray], *, offsets: tuple[int, int],
    metric: tuple[Metric, MetricIds] | None, lens: PairLens | None, labels: tuple[str, str], compare_s: float,
) -> Comparison:
    from coilvis.tokens import vocab_texts

    ids = set(np.unique(positions["rise_ids"]).tolist()) | set(np.unique(positions["fall_ids"]).tolist())
    if metric is not None:
        ids |= set(metric[0].plus_ids) | set(metric[0].minus_ids)
    metric_values = {"metric_a": positions["metric_a"], "metric_b": positions["metric_b"]} if metric is not None else {}
    return Comparison(
        a=a, b=b, offset_a=offsets[0], offset_b=offsets[1],
        **{name: positions[name] for name in ("kl_ab", "kl_ba", "js", "tv")},
        exact=np.ones(positions["kl_ab"].shape[0], dtype=bool),
        delta_next_logprob=positions["delta_logprob"],
        **{name: positions[name] for name in ("rise_ids", "rise_prob_a", "rise_prob_b", "fall_ids", "fall_prob_a", "fall_prob_b")},
        vocab=vocab_texts(side_a.loaded.tokenizer, sorted(ids)),
        metric=None if metric is None else metric[0], **metric_values,
        lens=lens, label_a=labels[0], label_b=labels[1],
        extra={"source": "compare", "compare_s": round(compare_s, 4)},
    )
