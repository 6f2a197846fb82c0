"""A Record, logit lens included, from what a TransformerLens user already holds: ``run_with_cache``'s cache."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.logit_lens import DEFAULT_CHUNK_ROWS, compute_lens
from coilvis.models import tlens
from coilvis.models.anatomy import n_layers_of
from coilvis.models.kinds import is_transformer_lens
from coilvis.options import check_k
from coilvis.record import AttentionLinks, LensStats, Record
from coilvis.runner.assemble import AttentionCollector, show_progress, tokenizer_record

__all__ = ["from_cache", "lens_from_tl_cache"]


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
    (``"i"``), and with ``mid`` ``blocks.{i}.hook_resid_mid`` (``"i.mid"``), read by
    :func:`coilvis.models.tlens.cache_residuals` in the layout every adapter uses; the
    last block's ``hook_resid_post`` checks the decoder against ``logits``, the final
    row. Each row goes through the model's own ``ln_final`` (statistics recomputed per
    row) and ``unembed``, as ``model.unembed(cache.accumulated_resid(apply_ln=True))``
    does in TransformerLens 3.9 and later. :func:`from_cache` is the public way to a
    Record from a cache.

    Args:
        model: the ``HookedTransformer`` / ``TransformerBridge`` that filled the cache.
        cache: its ``ActivationCache`` (from ``run_with_cache``), batch size 1 or
            without a batch dimension.
        logits: (1, seq_len, d_vocab) or (seq_len, d_vocab) the logits of the same run.
        next_ids: (seq_len,) actual next token ids, -1 where unknown.
        k: top tokens kept per cell.
        mid: also decode the residual after each block's attention.
        chunk_rows: see :func:`coilvis.logit_lens.compute_lens`.
        stats_threads: see :func:`coilvis.logit_lens.compute_lens`.
        progress: show a progress bar.

    Returns:
        :class:`~coilvis.record.LensStats`, rows named as the layout names them.

    Raises:
        CoilvisTypeError: ``model`` is not a TransformerLens model.
        CoilvisValueError: a hook is missing from the cache, or the batch is not 1.
    """
    if not is_transformer_lens(model):
        raise CoilvisTypeError(f"model: expected a TransformerLens model, got {type(model).__name__}")
    t_logits = stats.as_logits(logits, ndim=(2, 3))
    if t_logits.dim() == 3:
        if t_logits.shape[0] != 1:
            raise CoilvisValueError(f"logits: expected a batch of 1, got shape {tuple(t_logits.shape)}")
        t_logits = t_logits[0]
    residuals = tlens.cache_residuals(model, cache, mid=mid)
    return compute_lens(
        model, residuals, logits=t_logits, next_ids=next_ids, k=k, chunk_rows=chunk_rows, stats_threads=stats_threads, progress=progress
    )


def _cache_model(cache: Any, model: Any, tokenizer: Any, model_name: Any) -> tuple[Any, Any, str]:
    """The TransformerLens model behind a cache, its tokenizer and the name to show."""
    model = getattr(cache, "model", None) if model is None else model
    if not is_transformer_lens(model):
        raise CoilvisTypeError(
            f"model: expected the TransformerLens model that filled the cache, got {type(model).__name__}"
        )
    tokenizer = getattr(model, "tokenizer", None) if tokenizer is None else tokenizer
    if tokenizer is None:
        raise CoilvisTypeError("tokenizer: this TransformerLens model has no tokenizer; pass tokenizer=")
    if model_name is None:
        model_name = str(getattr(model.cfg, "model_name", None) or type(model).__name__)
    elif not isinstance(model_name, str):
        raise CoilvisTypeError(f"model_name: expected a str, got {type(model_name).__name__}")
    return model, tokenizer, model_name


def _collector(attention_top_k: Any, attention_min_weight: Any) -> AttentionCollector:
    """The attention collector of :func:`from_cache`'s options (checked: each error names its argument)."""
    keys_per_query = check_int("attention_top_k", attention_top_k, minimum=1)
    min_weight = check_float("attention_min_weight", attention_min_weight, minimum=0.0, maximum=1.0)
    return AttentionCollector(keys_per_query=keys_per_query, min_weight=min_weight, layers=None)


def _links(collector: AttentionCollector, patterns: Iterable[tuple[int, torch.Tensor]], n_layers: int) -> AttentionLinks:
    """The pruned links of the cache's ``(layer, (n_heads, seq_len, seq_len) pattern)`` pairs."""
    for layer, pattern in patterns:
        collector(layer, pattern)
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
    ``HookedTransformer`` (3.x) or ``TransformerBridge`` (4.x); here a bridge around the
    embedded default model:

    >>> import coilvis  # doctest: +MODEL
    >>> from transformer_lens.model_bridge import TransformerBridge
    >>> hf_model, tokenizer, name = coilvis.load_model()
    >>> model = TransformerBridge.boot_transformers(name, hf_model=hf_model, tokenizer=tokenizer, device="cpu")
    >>> tokens = model.to_tokens("The Eiffel Tower is located in the city of", prepend_bos=False)
    >>> logits, cache = model.run_with_cache(tokens)
    >>> record = coilvis.from_cache(cache, tokens=tokens, logits=logits, attention=True)
    >>> record.table().token.iloc[0], record.lens.layer_names[0]
    (' Paris', 'embed')

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
        attention_top_k: keys kept in the Record per query, per head and for the
            mean/max over heads (``AttentionLinks.top_k``; a view's own
            ``attention_top_k`` chooses how many of them it draws).
        attention_min_weight: drop links lighter than this.
        attention_layers: keep links of these layers only (default: all).
        model_name: a name to show (default ``model.cfg.model_name``).
        prompt: the prompt text, if any.
        progress: show a progress bar for the lens (default: on for long prompts).

    Returns:
        A :class:`~coilvis.record.Record` like :func:`run` gives.

    Raises:
        CoilvisTypeError: ``model`` is not a TransformerLens model, or bad argument types.
        CoilvisValueError: a hook the options need is missing from the cache, a batch of
            more than one, shapes that disagree, or a head that does not reproduce
            ``logits``.
    """
    model, tokenizer, model_name = _cache_model(cache, model, tokenizer, model_name)
    k, lens_k = check_k(k), check_k(lens_k, name="lens_k")
    collector = _collector(attention_top_k, attention_min_weight)
    if prompt is not None and not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str or None, got {type(prompt).__name__}")
    n_layers = n_layers_of(model)
    patterns = tlens.cache_patterns(cache, n_layers, attention_layers) if attention else None
    seq_len = int(tlens.cache_tensor(cache, "blocks.0.hook_resid_pre").shape[0])
    t_logits = tlens.cache_logits(model, cache, logits, seq_len)
    d_vocab = int(t_logits.shape[-1])
    ids = tlens.cache_tokens(tokens, seq_len, d_vocab)
    next_ids = stats.next_ids_of(ids)
    pos_stats = stats.position_stats(t_logits, k=check_k(k, available=d_vocab), next_ids=next_ids)
    lens_stats = None
    if lens:
        lens_stats = lens_from_tl_cache(
            model, cache, logits=t_logits, next_ids=next_ids, k=check_k(lens_k, available=d_vocab, name="lens_k"), mid=lens_mid,
            progress=show_progress(progress, seq_len),
        )
    links = _links(collector, patterns, n_layers) if patterns is not None else None
    return tokenizer_record(
        tokenizer, ids, pos_stats, d_vocab=d_vocab, model_name=model_name, prompt=prompt, lens_stats=lens_stats,
        attention=links, meta={"adapter": "transformer_lens_cache"},
    )
