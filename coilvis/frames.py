"""Top-k tables as pandas DataFrames: the readable :class:`LogitsTable` and a Record's table, without torch.

This module sits in the data layer beside :mod:`coilvis.record`: it reads numpy arrays
only, so ``Record.table()`` works where torch is not installed. Tables of raw logits
(tensors, the full vocabulary) are built above it, in :mod:`coilvis.table`.

>>> import numpy as np
>>> from coilvis.record import Record
>>> record = Record(
...     token_ids=[0, 1], tokens=["a", "b"], topk_ids=[[1, 0], [0, 1]],
...     topk_logits=[[2.0, 0.0], [1.0, 0.0]], topk_probs=[[0.88, 0.12], [0.73, 0.27]],
...     log_z=[2.127, 1.313], entropy=[0.36, 0.58], next_logprob=[-0.127, np.nan],
...     next_rank=[1, -1], vocab={0: "a", 1: " b"}, d_vocab=2,
... )
>>> record_table(record, pos=0, k=2)[["token_id", "token", "rank", "is_target"]]
   token_id token  rank  is_target
0         1    ␣b     1       True
1         0     a     2      False
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from coilvis import tokens as _tokens
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import check_k



class RecordLike(Protocol):
    """What a table reads of a :class:`~coilvis.record.Record` (this module does not
    import the record module, which imports it)."""

    topk_ids: np.ndarray
    topk_logits: np.ndarray
    token_ids: np.ndarray
    log_z: np.ndarray
    next_logprob: np.ndarray
    next_rank: np.ndarray

    @property
    def seq_len(self) -> int: ...

    @property
    def k(self) -> int: ...

    def token_text(self, token_id: int) -> str: ...

__all__ = ["COLUMNS", "LogitsTable", "check_pos", "record_table", "token_column"]

#: Columns of every table, in order (``pos`` first for all-position tables, ``is_target``
#: last when a target is known).
COLUMNS = ("token_id", "token", "logit", "log_prob", "prob", "rank")


class LogitsTable(pd.DataFrame):
    """A DataFrame of tokens that shows itself readably.

    It is an ordinary :class:`pandas.DataFrame` (every pandas operation works and the
    ``token`` column keeps the raw text); only its display differs: token strings show
    their whitespace (``␣Paris``, ``↵``) and probabilities show as percentages. In a
    notebook the HTML form escapes every token string.
    """

    _metadata: list[str] = []

    @property
    def _constructor(self) -> type[LogitsTable]:
        return LogitsTable

    def _display_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self).copy()
        if "token" in df.columns:
            df["token"] = [_tokens.display(str(t), max_len=40) for t in df["token"]]
        if "prob" in df.columns:
            df["prob"] = [f"{p:.2%}" if np.isfinite(p) else "" for p in df["prob"]]
        for col in ("logit", "log_prob"):
            if col in df.columns:
                df[col] = df[col].map(lambda v: f"{v:.3f}")
        return df

    def __repr__(self) -> str:
        return repr(self._display_frame())

    def to_string(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        """Plain-text rendering with visible whitespace and percentages."""
        return self._display_frame().to_string(*args, **kwargs)

    def _repr_html_(self) -> str:
        df = self._display_frame()
        # pandas escapes cell text in to_html(escape=True); token strings are untrusted.
        body = df.to_html(escape=True, index=False, classes="coilvis-table", border=0)
        style = (
            "<style>.coilvis-table td:nth-child({col}){{font-family:monospace;white-space:pre}}</style>"
        ).format(col=list(df.columns).index("token") + 1 if "token" in df.columns else 1)
        return style + body


def token_column(texts: list[str]) -> pd.Series:
    """(n,) raw token texts as a column of Python strings (``object`` dtype).

    Token text is untrusted and may hold anything a ``str`` can, lone surrogates
    included; pandas' Arrow-backed string dtype (the default with pyarrow installed)
    cannot hold those, and would make the column's type depend on what is installed.
    """
    return pd.Series(texts, dtype=object)


def check_pos(pos: Any, seq_len: int) -> int:
    """A position in ``[-seq_len, seq_len)`` as an index in ``[0, seq_len)``.

    Raises:
        CoilvisTypeError: ``pos`` is not an int.
        CoilvisValueError: ``pos`` is out of range (the message gives the valid range).
    """
    if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)):
        raise CoilvisTypeError(f"pos: expected an int or None, got {type(pos).__name__}")
    if not (-seq_len <= pos < seq_len):
        raise CoilvisValueError(f"pos: {pos} is out of range for seq_len {seq_len} (valid: {-seq_len}..{seq_len - 1})")
    return int(pos) % seq_len


def _position_frame(record: RecordLike, p: int, k: int) -> pd.DataFrame:
    """Rows of position ``p``: its top ``k``, then the actual next token when outside them."""
    ids = record.topk_ids[p, :k]
    logit = record.topk_logits[p, :k]
    rank = np.array([(record.topk_logits[p] > v).sum() + 1 for v in logit], dtype=np.int64)
    target = int(record.token_ids[p + 1]) if p + 1 < record.seq_len else None
    rows = {
        "token_id": ids.astype(np.int64),
        "token": token_column([record.token_text(i) for i in ids]),
        "logit": logit,
        "log_prob": (logit - record.log_z[p]).astype(np.float32),
        "rank": rank,
    }
    f = pd.DataFrame(rows)
    if target is not None and target not in set(ids.tolist()):
        extra = pd.DataFrame(
            {
                "token_id": [target],
                "token": token_column([record.token_text(target)]),
                "logit": np.array([record.next_logprob[p] + record.log_z[p]], dtype=np.float32),
                "log_prob": np.array([record.next_logprob[p]], dtype=np.float32),
                "rank": np.array([record.next_rank[p]], dtype=np.int64),
            }
        )
        f = pd.concat([f, extra], ignore_index=True)
    f.insert(4, "prob", np.exp(f["log_prob"].to_numpy()).astype(np.float32))
    f["is_target"] = f["token_id"] == target if target is not None else False
    return f


def record_table(record: RecordLike, *, pos: int | None = -1, k: int = 10) -> LogitsTable:
    """The top-k table of a :class:`~coilvis.record.Record` (see :meth:`Record.table`).

    Args:
        record: a Record.
        pos: position, or ``None`` for all positions.
        k: rows per position, >= 1; more than the record kept gives all it kept
            (:func:`coilvis.options.check_k`).

    Returns:
        :class:`LogitsTable` with ``token_id, token, logit, log_prob, prob, rank,
        is_target``; the actual next token's row is appended when outside the top k.
    """
    k = check_k(k, available=record.k)
    positions = range(record.seq_len) if pos is None else [check_pos(pos, record.seq_len)]
    frames = []
    for p in positions:
        f = _position_frame(record, p, k)
        if pos is None:
            f.insert(0, "pos", p)
        frames.append(f)
    return LogitsTable(pd.concat(frames, ignore_index=True))
