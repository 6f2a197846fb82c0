"""Any logit vector as a pandas DataFrame.

The logits may be a torch tensor or a numpy array over the full vocabulary; the
statistics go through :mod:`coilvis.stats`. A Record's table, which needs no torch,
is :func:`coilvis.frames.record_table` (re-exported here with :class:`LogitsTable`).

>>> import torch, coilvis
>>> logits = torch.tensor([0.0, 2.0, 1.0])
>>> coilvis.logits_table(logits, ["a", " b", "c"], k=2)[["token_id", "token", "rank"]]
   token_id token  rank
0         1    ␣b     1
1         2     c     2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from coilvis import tokens as _tokens
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import check_k
from coilvis.frames import COLUMNS, LogitsTable, check_pos, record_table, token_column

__all__ = ["LogitsTable", "logits_table", "record_table", "resolve_vocab", "COLUMNS"]

#: How far a model's logits may be padded beyond its tokenizer's vocabulary.
MAX_VOCAB_PADDING = 1024


def resolve_vocab(tokenizer_or_vocab: Any, d_vocab: int, *, name: str = "tokenizer_or_vocab") -> Any:
    """Check a tokenizer or vocabulary against a logits width; return a text lookup.

    Args:
        tokenizer_or_vocab: ``None``, a HF-style tokenizer (has ``convert_ids_to_tokens``),
            a sequence of strings (index = token id) or a mapping id -> string.
        d_vocab: the last dimension of the logits.
        name: argument name for error messages.

    Returns:
        A function ``ids -> dict[int, str]`` giving raw token text.

    Raises:
        CoilvisValueError: the vocabulary is larger than ``d_vocab``, or smaller by more
            than :data:`MAX_VOCAB_PADDING` (models pad their output beyond the tokenizer's
            vocabulary only a little).
        CoilvisTypeError: not a tokenizer or vocabulary.
    """
    if tokenizer_or_vocab is None:
        return lambda ids: {int(i): f"<id {int(i)}>" for i in ids}
    if hasattr(tokenizer_or_vocab, "convert_ids_to_tokens"):
        tok = tokenizer_or_vocab
        size = len(tok)
        scheme = _tokens.detect_scheme(tok)
        lookup = lambda ids: _tokens.vocab_texts(tok, ids, scheme=scheme)  # noqa: E731
    elif isinstance(tokenizer_or_vocab, (Sequence, Mapping)) and not isinstance(tokenizer_or_vocab, (str, bytes)):
        vocab = _tokens.vocab_from_list(tokenizer_or_vocab, name=name)
        size = (max(vocab) + 1) if vocab else 0
        lookup = lambda ids: {int(i): vocab.get(int(i), f"<id {int(i)}>") for i in ids}  # noqa: E731
    else:
        raise CoilvisTypeError(
            f"{name}: expected a tokenizer, a list of token strings or a dict id -> string, "
            f"got {type(tokenizer_or_vocab).__name__}"
        )
    if size > d_vocab or d_vocab - size > MAX_VOCAB_PADDING:
        raise CoilvisValueError(
            f"{name}: vocabulary has {size} tokens but the logits have d_vocab={d_vocab}; "
            f"they must match (the logits may be padded beyond the vocabulary by at most "
            f"{MAX_VOCAB_PADDING}). Is this the model's own tokenizer?"
        )
    return lookup


def _one_row_frame(
    row: np.ndarray,
    k: int | None,
    target: int | None,
    lookup: Any,
) -> pd.DataFrame:
    """Table of one float32 logits row (d_vocab,)."""
    from coilvis import stats

    d_vocab = row.shape[0]
    logp = stats.log_softmax(row)
    if k is None:
        order = np.argsort(-row, kind="stable")
    else:
        k = check_k(k, available=d_vocab)
        part = np.argpartition(-row, k - 1)[:k] if k < d_vocab else np.arange(d_vocab)
        order = part[np.argsort(-row[part], kind="stable")]
    if target is not None and target not in set(order[: len(order)].tolist()):
        order = np.append(order, target)
    sorted_desc = -np.sort(-row) if k is None else None
    vals = row[order]
    if sorted_desc is not None:
        ranks = np.searchsorted(-sorted_desc, -vals, side="left") + 1
    else:
        ranks = np.array([(row > v).sum() + 1 for v in vals], dtype=np.int64)
    texts = lookup(order.tolist())
    df = pd.DataFrame(
        {
            "token_id": order.astype(np.int64),
            "token": token_column([texts[int(i)] for i in order]),
            "logit": vals.astype(np.float32),
            "log_prob": logp[order].astype(np.float32),
            "prob": np.exp(logp[order]).astype(np.float32),
            "rank": ranks.astype(np.int64),
        }
    )
    if target is not None:
        df["is_target"] = df["token_id"] == target
    return df


def _check_target(target: Any, d_vocab: int) -> int:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise CoilvisTypeError(f"target: expected an int token id, got {type(target).__name__}")
    if not (0 <= target < d_vocab):
        raise CoilvisValueError(f"target: token id {target} is out of range [0, {d_vocab})")
    return int(target)


def logits_table(
    logits: Any,
    tokenizer_or_vocab: Any = None,
    *,
    k: int | None = 10,
    pos: int | None = -1,
    target: int | Sequence[int] | None = None,
) -> LogitsTable:
    """A logit vector (or one position of a logit matrix) as a table of tokens.

    Log-probabilities, probabilities and 1-based ranks (ties shared) as defined in
    :doc:`/concepts/statistics` (docs/concepts/statistics.md).

    Args:
        logits: (d_vocab,) or (seq_len, d_vocab) logits (torch tensor on any device,
            any float dtype, or numpy array).
        tokenizer_or_vocab: a HF tokenizer, a list of token strings (index = id), a
            dict id -> string, or ``None`` (tokens shown as ``<id N>``). Models may pad
            ``d_vocab`` beyond the tokenizer's size; padded ids show as ``<id N>``.
        k: rows per position (the k highest logits), or ``None`` for the whole
            vocabulary.
        pos: for a matrix, the position (negative counts from the end), or ``None``
            for every position (the table then starts with a ``pos`` column). Ignored
            for a vector.
        target: a token id to mark (``is_target`` column); for ``pos=None`` one id per
            position. When the target is outside the top k its row is appended, so its
            rank and probability are always in the table.

    Returns:
        :class:`LogitsTable` (a pandas DataFrame) with columns ``token_id, token, logit,
        log_prob, prob, rank`` (+ ``is_target``), sorted by decreasing logit; ``rank`` 1
        is the argmax (ranks are 1-based everywhere in coilvis; tied logits share a
        rank) and ``token`` is the raw text (its display shows whitespace).

    Raises:
        CoilvisValueError: wrong rank of tensor, NaN/+inf or all -inf logits (positions
            named), k or pos out of range, vocabulary size mismatch.
        CoilvisTypeError: wrong argument types.
    """
    from coilvis import stats

    t = stats.as_logits(logits)
    d_vocab = int(t.shape[-1])
    lookup = resolve_vocab(tokenizer_or_vocab, d_vocab)
    if t.dim() == 1:
        tgt = None if target is None else _check_target(target, d_vocab)
        row = stats.to_numpy(t).astype(np.float32, copy=False)
        try:
            stats.position_stats(row[None, :], k=1)  # validates NaN / inf / all -inf
        except CoilvisValueError as exc:
            raise CoilvisValueError(str(exc).replace(" at position(s) 0", " in the vector")) from None
        return LogitsTable(_one_row_frame(row, k, tgt, lookup))
    seq_len = int(t.shape[0])
    if seq_len < 1:
        raise CoilvisValueError("logits: the matrix has no positions (shape (0, d_vocab))")
    if pos is not None:
        p = check_pos(pos, seq_len)
        tgt = None if target is None else _check_target(target, d_vocab)
        row = stats.to_numpy(t[p]).astype(np.float32, copy=False)
        try:
            stats.position_stats(row[None, :], k=1)
        except CoilvisValueError as exc:
            raise CoilvisValueError(str(exc).replace("position(s) 0", f"position(s) {p}")) from None
        return LogitsTable(_one_row_frame(row, k, tgt, lookup))
    if target is not None:
        targets = np.asarray(target).reshape(-1)
        if targets.shape[0] != seq_len:
            raise CoilvisValueError(f"target: expected {seq_len} token ids (one per position) with pos=None, got {targets.shape[0]}")
    stats.position_stats(t, k=1)  # validate every row first, naming bad positions
    frames = []
    for p in range(seq_len):
        tgt = None if target is None else _check_target(int(targets[p]), d_vocab)
        row = stats.to_numpy(t[p]).astype(np.float32, copy=False)
        f = _one_row_frame(row, k, tgt, lookup)
        f.insert(0, "pos", p)
        frames.append(f)
    return LogitsTable(pd.concat(frames, ignore_index=True))
