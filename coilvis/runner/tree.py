"""Grow a continuation tree: the model's likely next tokens after a prompt, depth by depth, kept as a :class:`~coilvis.continuations.Tree`."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import torch

from coilvis import stats
from coilvis.continuations import Tree, level_sizes, max_tree_nodes
from coilvis.errors import CoilvisValueError, check_float, check_int
from coilvis.models import LoadedModel, context_length, resolve_model
from coilvis.models.kinds import is_transformer_lens
from coilvis.options import check_k
from coilvis.runner.inputs import check_flag, check_prompt
from coilvis.runner.prompt import device_meta, encode_prompt
from coilvis.runner.tree_passes import (
    BatchPasses,
    CachedPasses,
    MaskNotHonoured,
    TreePasses,
    make_passes,
)

__all__ = ["check_tree_size", "tree"]

#: Expanded nodes (distributions to compute) from which a progress bar shows by default.
PROGRESS_FROM = 256


def check_tree_size(depth: int, k: int, min_prob: float, max_nodes: int) -> int:
    """The most nodes a tree can hold (see :func:`~coilvis.continuations.max_tree_nodes`), refused above ``max_nodes``.

    Raises:
        CoilvisValueError: the count exceeds ``max_nodes`` (the message gives both).
    """
    sizes = level_sizes(depth, k, min_prob)
    count = sum(sizes)
    if count > max_nodes:
        terms = " + ".join(f"{n:,}" for n in sizes[:5]) + (" + ..." if depth > 4 else "")
        capped = f", each depth capped at {int(1 / min_prob):,} by min_prob={min_prob:g}" if min_prob > 0 else ""
        raise CoilvisValueError(
            f"max_nodes: depth={depth}, k={k} gives up to {count:,} nodes ({terms}{capped}), more than "
            f"max_nodes={max_nodes:,}; lower depth or k, raise min_prob, or pass a larger max_nodes"
        )
    return count


class _Level(NamedTuple):
    """The distributions of one depth's expanded nodes."""

    topk_ids: np.ndarray  # (n, k) int64
    topk_probs: np.ndarray  # (n, k) float32
    entropy: np.ndarray  # (n,) float32 nats


def tree(
    prompt: str,
    model: Any = None,
    *,
    tokenizer: Any = None,
    depth: int = 3,
    k: int = 5,
    min_prob: float = 0.0,
    max_nodes: int = 20_000,
    prepend_bos: bool | None = None,
    kv_cache: bool = True,
    progress: bool | None = None,
) -> Tree:
    """The model's likely continuations of a prompt, as a tree of tokens and where the probability mass goes.

    The root is the prompt. Each node's children are the ``k`` most likely next tokens
    after the path to it (whose path probability is at least ``min_prob``), most likely
    first, and one "other" node holding the rest of the mass, so that every node's
    children share out exactly its mass. Nodes down to ``depth`` tokens after the
    prompt are kept; every node above that depth, "other" nodes aside, is expanded.

    The forward passes are batched, one batch per depth (cut in chunks when large):
    a transformers model with eager or sdpa attention runs the prompt once and each
    depth's tokens on its KV cache with tree attention; TransformerLens models (and
    models whose outputs show they ignore the tree's attention mask) run each depth's
    whole paths as a batch, without a KV cache. See :mod:`coilvis.runner.tree_passes`.
    Every argument, the tree's size included, is checked before a model is loaded.

    Args:
        prompt: the text (non-empty).
        model: anything :func:`coilvis.run` accepts (``None``: the embedded default model).
        tokenizer: the model's tokenizer, when ``model`` is a transformers model object
            without a folder to load it from.
        depth: tokens after the prompt (>= 1).
        k: most likely next tokens kept per node (>= 1; more than the vocabulary keeps all).
        min_prob: a token whose path probability is below this goes to its parent's
            "other" node and is not expanded; in [0, 1).
        max_nodes: refuse a tree that could hold more nodes than this, the root
            included, "other" nodes not (``1 + k + ... + k**depth``, each depth capped
            at ``1 / min_prob`` when ``min_prob > 0``); nothing runs then.
        prepend_bos: force a BOS token on or off (``None``: the tokenizer's default).
        kv_cache: reuse the prompt's KV cache (tree attention) where the model allows;
            ``False`` runs whole paths (for comparison; the values are the same).
        progress: show a progress bar (default: on for trees of 256 expanded nodes or more).

    Returns:
        A :class:`~coilvis.continuations.Tree`.

    Raises:
        CoilvisTypeError: an argument has the wrong type (the message names it).
        CoilvisValueError: ``depth < 1``, ``k < 1``, ``min_prob`` outside [0, 1), a tree
            larger than ``max_nodes``, or a prompt whose continuation would pass the
            model's context.
        ModelNotFoundError / MissingDependencyError: see :func:`coilvis.load_model`.

    Example:
        >>> import coilvis  # doctest: +MODEL
        >>> t = coilvis.tree("The Eiffel Tower is in the city of", depth=2, k=3)
        >>> t.continuation(1), round(float(t.path_prob[1]), 1)
        (' Paris', 0.7)
    """
    prompt = check_prompt(prompt)
    depth = check_int("depth", depth, minimum=1)
    k = check_k(k)
    min_prob = check_float("min_prob", min_prob, minimum=0.0, maximum=1.0)
    if min_prob >= 1:
        raise CoilvisValueError(f"min_prob: expected a number in [0, 1), got {min_prob:g} (no token could be kept)")
    max_nodes = check_int("max_nodes", max_nodes, minimum=1)
    check_tree_size(depth, k, min_prob, max_nodes)
    prepend_bos = check_flag("prepend_bos", prepend_bos, optional=True)
    kv_cache = bool(check_flag("kv_cache", kv_cache))
    progress = check_flag("progress", progress, optional=True)
    loaded = resolve_model(model, tokenizer)
    ids = encode_prompt(loaded, prompt, prepend_bos=prepend_bos)
    _check_context(ids, depth, loaded)
    show = progress if progress is not None else max_tree_nodes(depth - 1, k, min_prob) >= PROGRESS_FROM
    t0 = time.perf_counter()
    grown = _grow(make_passes(loaded.model, ids, cache=kv_cache), depth=depth, k=k, min_prob=min_prob, progress=show)
    forward_s = time.perf_counter() - t0
    return _assemble(loaded, ids, grown, prompt=prompt, depth=depth, min_prob=min_prob, extra={"forward_s": round(forward_s, 4)})


def _check_context(ids: np.ndarray, depth: int, loaded: LoadedModel) -> None:
    """The prompt and ``depth - 1`` tokens after it (the deepest ones never run) must fit the model's context."""
    limit = context_length(loaded.model, loaded.tokenizer)
    need = int(ids.shape[0]) + depth - 1
    if limit is not None and need > limit[0]:
        raise CoilvisValueError(
            f"prompt: {ids.shape[0]:,} tokens and depth={depth} need {need:,} positions, but {loaded.name} takes at "
            f"most {limit[0]:,} ({limit[1]}); shorten the prompt or lower depth"
        )


def _distributions(logits: torch.Tensor, k: int) -> _Level:
    """Top-k and entropy of (n, d_vocab) logits, normalised in float64.

    In float32 the normalisation alone moves a probability of 0.7 by about 1e-5 when
    logits are in the tens (as a real model's are); in float64 the tree's values are as
    exact as the logits, so they match separate passes of each path to float32 logits'
    own rounding. Rows go 32 at a time (a 50k vocabulary: 13 MB of float64).
    """
    t = stats.as_logits(logits, ndim=(2,))
    n = t.shape[0]
    out = _Level(np.empty((n, k), dtype=np.int64), np.empty((n, k), dtype=np.float32), np.empty(n, dtype=np.float32))
    with torch.inference_mode():
        for start in range(0, n, stats.DEFAULT_CHUNK_SIZE):
            x = t[start : start + stats.DEFAULT_CHUNK_SIZE].to(torch.float64)
            logp = torch.log_softmax(x, dim=-1)
            _check_finite(logp, start)
            top, ids = torch.topk(logp, k, dim=-1)
            p = logp.exp()
            entropy = -torch.where(p > 0, p * logp, torch.zeros((), dtype=p.dtype)).sum(dim=-1)
            stop = start + x.shape[0]
            out.topk_ids[start:stop] = stats.to_numpy(ids)
            out.topk_probs[start:stop] = stats.to_numpy(top.exp())
            out.entropy[start:stop] = stats.to_numpy(entropy.clamp(min=0.0))
    return out


def _check_finite(logp: torch.Tensor, start: int) -> None:
    """Refuse NaN logits (a broken model), which would make every statistic NaN."""
    bad = torch.isnan(logp).any(dim=-1)
    if bool(bad.any()):
        row = start + int(bad.nonzero()[0])
        raise CoilvisValueError(f"model: its logits hold NaN (row {row} of a depth's batch); the model's weights or dtype may be broken")


class _Grown(NamedTuple):
    columns: dict[str, np.ndarray]
    d_vocab: int
    k: int
    strategy: str
    n_forward: int


def _grow(passes: TreePasses, *, depth: int, k: int, min_prob: float, progress: bool) -> _Grown:
    """Expand the tree depth by depth: each depth's children from the previous depth's distributions, then theirs."""
    root_logits = passes.prompt_logits()
    d_vocab = int(root_logits.shape[-1])
    k = check_k(k, available=d_vocab)
    if isinstance(passes, CachedPasses) and not passes.usable():
        passes = _fallback(passes, d_vocab)
    level = _distributions(root_logits.reshape(1, -1), k)
    cols = _new_columns()
    frontier = np.zeros(1, dtype=np.int64)  # node indices whose distributions `level` holds
    paths = np.zeros((1, 0), dtype=np.int64)
    bar = _bar(progress)
    try:
        for d in range(1, depth + 1):
            kids, kid_rows, kid_ids = _add_children(cols, frontier, level, depth=d, min_prob=min_prob)
            if d == depth or kids.size == 0:
                break
            paths = np.concatenate([paths[kid_rows], kid_ids.reshape(-1, 1)], axis=1)
            parents = kid_rows if d > 1 else np.full(kids.size, -1, dtype=np.int64)
            _grow_bar(bar, kids.size)
            level, passes = _level(passes, paths, parents, k, d_vocab, bar)
            frontier = kids
    finally:
        if bar is not None:
            bar.close()
    return _Grown({name: np.concatenate(parts) for name, parts in cols.items()}, d_vocab, k, passes.strategy, passes.n_forward)


def _level(passes: TreePasses, paths: np.ndarray, parents: np.ndarray, k: int, d_vocab: int, bar: Any) -> tuple[_Level, TreePasses]:
    """One depth's distributions; falls back to whole paths when tree attention proves unfaithful."""
    n = paths.shape[0]
    out = _Level(np.empty((n, k), dtype=np.int64), np.empty((n, k), dtype=np.float32), np.empty(n, dtype=np.float32))
    try:
        for start, logits in passes.level_logits(paths, parents):
            part = _distributions(logits, k)
            stop = start + logits.shape[0]
            out.topk_ids[start:stop], out.topk_probs[start:stop], out.entropy[start:stop] = part
            if bar is not None:
                bar.update(logits.shape[0])
    except MaskNotHonoured:
        passes = _fallback(passes, d_vocab)
        return _level(passes, paths, parents, k, d_vocab, None)
    return out, passes


def _fallback(passes: TreePasses, d_vocab: int) -> BatchPasses:
    """Whole-path batches for the rest of the tree, keeping the forward-pass count."""
    batches = BatchPasses(passes.model, passes.prompt_ids, d_vocab=d_vocab)
    batches.n_forward = passes.n_forward
    return batches


def _new_columns() -> dict[str, list[Any]]:
    return {
        "parent": [np.array([-1])],
        "token_id": [np.array([-1])],
        "depth": [np.array([0])],
        "cond_prob": [np.array([1.0])],
        "path_prob": [np.array([1.0])],
        "entropy": [np.array([np.nan])],
        "is_other": [np.array([False])],
    }


def _add_children(
    cols: dict[str, Any], frontier: np.ndarray, level: _Level, *, depth: int, min_prob: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append the children of ``frontier`` (kept top-k, then "other") to ``cols``.

    Returns:
        ``(kids, rows, ids)``: node indices of the kept (non-"other") children, the row
        of ``frontier`` each came from, and their token ids.
    """
    n, k = level.topk_ids.shape
    path = np.concatenate(cols["path_prob"])[frontier] if depth > 1 else np.ones(1)
    probs = level.topk_probs.astype(np.float64)
    keep = path[:, None] * probs >= min_prob
    other = np.clip(1.0 - np.where(keep, probs, 0.0).sum(axis=1), 0.0, 1.0)
    cond = np.concatenate([probs, other[:, None]], axis=1)
    kept = np.concatenate([keep, np.ones((n, 1), dtype=bool)], axis=1).ravel()
    ids = np.concatenate([level.topk_ids, np.full((n, 1), -1)], axis=1).ravel()[kept]
    rows = np.repeat(np.arange(n), k + 1)[kept]
    first = sum(part.shape[0] for part in cols["parent"])
    is_other = ids < 0
    cols["parent"].append(frontier[rows])
    cols["token_id"].append(ids)
    cols["depth"].append(np.full(ids.size, depth))
    cols["cond_prob"].append(cond.ravel()[kept])
    cols["path_prob"].append(path[rows] * cond.ravel()[kept])
    cols["entropy"].append(level.entropy[rows])
    cols["is_other"].append(is_other)
    index = first + np.arange(ids.size)
    return index[~is_other], rows[~is_other], ids[~is_other]


def _bar(progress: bool) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=0, desc="coilvis tree", unit="node", leave=False)


def _grow_bar(bar: Any, more: int) -> None:
    if bar is not None:
        bar.total += more
        bar.refresh()


def _assemble(loaded: LoadedModel, ids: np.ndarray, grown: _Grown, *, prompt: str, depth: int, min_prob: float, extra: dict[str, Any]) -> Tree:
    """The Tree: columns concatenated, the texts of every id it mentions, metadata."""
    from coilvis.tokens import detect_scheme, vocab_texts

    cols = grown.columns
    needed = sorted(set(ids.tolist()) | set(cols["token_id"][cols["token_id"] >= 0].tolist()))
    scheme = detect_scheme(loaded.tokenizer)
    adapter = "transformer_lens" if is_transformer_lens(loaded.model) else "transformers"
    return Tree(
        **cols,
        prompt_ids=ids,
        vocab=vocab_texts(loaded.tokenizer, needed, scheme=scheme),
        d_vocab=grown.d_vocab,
        k=grown.k,
        depth_limit=depth,
        min_prob=min_prob,
        model_name=loaded.name,
        prompt=prompt,
        extra={**device_meta(loaded.model), "adapter": adapter, "tokenizer_scheme": scheme, "strategy": grown.strategy,
               "forward_passes": grown.n_forward, **extra},
    )
