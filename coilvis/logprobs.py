"""A Record from a server's log-probabilities (OpenAI-compatible chat, completions, vLLM), with numpy only.

A served model (vLLM across GPUs and nodes, a llama.cpp server, a hosted API) never
hands out its logits, but it returns, per token, the log-probability of the token and
of its top alternatives. :func:`from_logprobs` keeps exactly that in a
:class:`~coilvis.record.Record`, so the coil, the unwind, the table and the page draw it:

* ``topk_ids``/``topk_logits``/``topk_probs``: the top-k the server sent per position
  (``topk_logits`` are the log-probabilities, ``log_z`` is 0);
* ``next_logprob``: the actual next token's log-probability as sent; ``next_rank``: its
  rank when within the top-k (or when the server sent it, as vLLM does), else -1;
* the mass outside the top-k, ``1 - sum(topk_probs)``, is "other" (:func:`other_mass`);
* ``entropy`` is a **top-k estimate**: the top-k entries plus the remainder as one
  bucket, ``-sum(p log p) - r log r``. Merging the tail into one outcome can only lower
  entropy, so it is a lower bound of the full distribution's entropy, and the views
  label it so.

Positions whose distribution the response does not hold (the last one; the first of a
llama-cpp-python echo, see :mod:`coilvis.logprobs_formats`) keep NaN probabilities and
entropy; rows shorter than k (two ids sharing one text) are padded with NaN. The
Record's ``extra`` says where it came from: ``source = "served"``, ``topk_only``,
``served_format``, ``convention``, ``k_sent``, ``token_ids`` (``"model"`` when the
server sent ids, else ``"local"``: ids numbered here, one per distinct text, and
``d_vocab`` counts them), ``unknown_rows`` and ``entropy``.

>>> response = {"model": "m", "choices": [{"logprobs": {"content": [
...     {"token": "Hi", "logprob": -0.1, "top_logprobs": [
...         {"token": "Hi", "logprob": -0.1}, {"token": "Yo", "logprob": -2.5}]},
...     {"token": "!", "logprob": -0.7, "top_logprobs": [
...         {"token": "!", "logprob": -0.7}, {"token": ".", "logprob": -1.0}]}]}}]}
>>> rec = from_logprobs(response)
>>> rec.tokens, rec.k, rec.next_rank.tolist()
(('⟨prompt⟩', 'Hi', '!'), 2, [1, 1, -1])
>>> round(float(other_mass(rec)[0]), 3)
0.013
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, InconsistentLogprobsError, NoLogprobsError
from coilvis.logprobs_formats import (
    TOL,
    Rows,
    chat_rows,
    completion_rows,
    field_of,
    vllm_rows,
)
from coilvis.record import Record

__all__ = ["ENTROPY_NOTE", "as_json", "from_logprobs", "is_topk_only", "other_mass", "read_rows", "rows_record"]

#: What a served Record's entropy is, said once for the views and the docs.
ENTROPY_NOTE = "top-k estimate: the mass outside the top k counted as one bucket (a lower bound of the full entropy)"


def as_json(response: Any) -> dict[str, Any]:
    """A response as a plain dict: the OpenAI client's objects (``model_dump``) or a mapping.

    Raises:
        CoilvisTypeError: neither.
    """
    for method in ("model_dump", "to_dict"):
        dump = getattr(response, method, None)
        if callable(dump) and not isinstance(response, Mapping):
            response = dump()
            break
    if not isinstance(response, Mapping):
        raise CoilvisTypeError(
            f"response: expected a chat or completion response (an OpenAI client object or a dict), got {type(response).__name__}"
        )
    return dict(response)


def _choice(response: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = response.get("choices")
    if not isinstance(choices, (list, tuple)) or not choices or not isinstance(choices[0], Mapping):
        raise NoLogprobsError("response: has no choices; expected a chat or completion response")
    return choices[0]


def read_rows(response: Any, *, convention: str = "auto", k: int | None = None, prefer_echo: bool = False) -> Rows:
    """The response's rows in the Record's order, its format found from its fields.

    vLLM's ``prompt_logprobs`` first (on the response or its first choice), then chat
    (``choices[0].logprobs.content``), then legacy completions
    (``choices[0].logprobs.tokens``).

    Args:
        response: the response (see :func:`from_logprobs`).
        convention: ``"auto"``, or for an echoed legacy completion ``"openai"`` or
            ``"llama-cpp-python-echo"`` (:mod:`coilvis.logprobs_formats`).
        k: the top-k asked for, when known (else inferred from the rows).
        prefer_echo: read a legacy echo (the prompt and the generated tokens) before
            vLLM's ``prompt_logprobs`` (the prompt only) when a response holds both.

    Raises:
        NoLogprobsError: no log-probabilities, or no alternatives, in the response.
        InconsistentLogprobsError: rows that contradict each other or their tokens.
    """
    data = as_json(response)
    choice = _choice(data)
    model = data.get("model") if isinstance(data.get("model"), str) else ""
    logprobs = field_of(choice, "logprobs", "response.choices[0]", required=False)
    echoed = isinstance(logprobs, Mapping) and logprobs.get("tokens") is not None
    if (data.get("prompt_logprobs") is not None or choice.get("prompt_logprobs") is not None) and not (prefer_echo and echoed):
        return vllm_rows(data, choice, model=model)
    if logprobs is None:
        raise NoLogprobsError(
            "response: has no logprobs; ask for them (chat: logprobs=True, top_logprobs=k; "
            "completions: logprobs=k, echo=True for the prompt's)"
        )
    if isinstance(logprobs, Mapping) and logprobs.get("content") is not None:
        return chat_rows(choice, model=model, k=k)
    if isinstance(logprobs, Mapping) and logprobs.get("tokens") is not None:
        return completion_rows(choice, model=model, convention=convention, k=k)
    raise NoLogprobsError("response.choices[0].logprobs: holds neither content (chat) nor tokens (completions)")


def _vocabulary(rows: Rows) -> tuple[dict[int, str], list[int], dict[tuple[str, int | None], int]]:
    """``(id -> text, the positions' token ids, (text, sent id) -> id)``: the server's ids,
    or local ones numbered in order of appearance, one per distinct text."""
    entries = [e for row in rows.top for e in row or ()]
    if rows.token_ids is not None:
        texts = {int(e.token_id): e.text for e in entries if e.token_id is not None}
        for i, t in zip(rows.token_ids, rows.tokens):
            if i >= 0:
                texts.setdefault(int(i), t)
        return texts, list(rows.token_ids), {(e.text, e.token_id): int(e.token_id) for e in entries if e.token_id is not None}
    local: dict[str, int] = {}
    for p, t in enumerate(rows.tokens):
        if not (p == 0 and rows.placeholder):
            local.setdefault(t, len(local))
    for e in entries:
        local.setdefault(e.text, len(local))
    ids = [-1 if (p == 0 and rows.placeholder) else local[t] for p, t in enumerate(rows.tokens)]
    return {i: t for t, i in local.items()}, ids, {(t, None): i for t, i in local.items()}


def _entropy(probs: np.ndarray) -> np.ndarray:
    """(n,) top-k entropy estimate in nats of (n, k) probabilities (NaN pads): the entries
    and the remainder as one bucket; NaN where a row holds nothing."""
    p = np.where(np.isfinite(probs), probs, 0.0).astype(np.float64)
    rest = np.clip(1.0 - p.sum(axis=1), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
        h -= np.where(rest > 0, rest * np.log(np.where(rest > 0, rest, 1.0)), 0.0)
    return np.where(np.isfinite(probs).any(axis=1), h, np.nan)


def _check_masses(probs: np.ndarray) -> None:
    mass = np.where(np.isfinite(probs), probs, 0.0).astype(np.float64).sum(axis=1)
    bad = np.flatnonzero(mass > 1.0 + TOL)
    if bad.size:
        p = int(bad[0])
        raise InconsistentLogprobsError(
            f"response: the top-k at position {p} sums to probability {mass[p]:.4f} > 1; its rows are not distributions"
        )


def _next_ranks(rows: Rows, topk_ids: np.ndarray, logits: np.ndarray, next_ids: np.ndarray, next_lp: np.ndarray) -> np.ndarray:
    """(n,) rank of each actual next token: as sent, else within the top-k, else -1;
    refusing a token whose log-prob disagrees with its row or beats a full row's k-th."""
    ranks = np.full(len(rows.tokens), -1, dtype=np.int64)
    for p in range(len(rows.tokens) - 1):
        row = logits[p]
        known = np.isfinite(row)
        hit = np.flatnonzero((topk_ids[p] == next_ids[p]) & known) if next_ids[p] >= 0 else np.empty(0, dtype=np.int64)
        lp = next_lp[p]
        if hit.size and np.isfinite(lp) and abs(float(row[hit[0]]) - lp) > TOL * max(1.0, abs(lp)):
            raise InconsistentLogprobsError(
                f"response: at position {p} the next token {rows.tokens[p + 1]!r} has log-prob {lp:.4f}, "
                f"its row lists it at {float(row[hit[0]]):.4f}"
            )
        if rows.next_rank[p] is not None:
            ranks[p] = int(rows.next_rank[p])  # type: ignore[arg-type]
        elif hit.size:
            ranks[p] = 1 + int((row[known] > row[hit[0]]).sum())
        elif known.all() and np.isfinite(lp) and lp > float(row.min()) + TOL:
            raise InconsistentLogprobsError(
                f"response: at position {p} the next token {rows.tokens[p + 1]!r} has log-prob {lp:.4f}, above "
                f"the row's lowest {float(row.min()):.4f}, yet the row does not list it"
            )
    return ranks


def rows_record(rows: Rows, *, model_name: str | None = None) -> Record:
    """The Record of a response's rows (see the module's docstring for what it keeps).

    Raises:
        InconsistentLogprobsError: a top-k summing above 1, or an actual token's
            log-prob contradicting its row.
    """
    n, k = len(rows.tokens), rows.k
    texts, token_ids, id_of = _vocabulary(rows)
    needs_pad = any(row is None or len(row) < k for row in rows.top)
    pad = (max(texts) + 1) if texts else 0
    if needs_pad:
        texts[pad] = ""
    topk_ids = np.full((n, k), pad, dtype=np.int64)
    logits = np.full((n, k), np.nan, dtype=np.float64)
    for p, row in enumerate(rows.top):
        for j, e in enumerate(row or ()):
            topk_ids[p, j] = id_of[(e.text, e.token_id)]
            logits[p, j] = e.logprob
    probs = np.exp(logits)
    _check_masses(probs)
    ids = np.asarray(token_ids, dtype=np.int64)
    next_ids = np.append(ids[1:], -1)
    next_lp = np.array([np.nan if v is None else v for v in rows.next_logprob], dtype=np.float64)
    unknown = [p for p, row in enumerate(rows.top) if not row]
    return Record(
        token_ids=ids,
        tokens=tuple(rows.tokens),
        topk_ids=topk_ids,
        topk_logits=logits.astype(np.float32),
        topk_probs=probs.astype(np.float32),
        log_z=np.zeros(n, dtype=np.float32),
        entropy=_entropy(probs).astype(np.float32),
        next_logprob=next_lp.astype(np.float32),
        next_rank=_next_ranks(rows, topk_ids, logits, next_ids, next_lp),
        vocab=texts,
        d_vocab=max(texts) + 1 if texts else 1,
        model_name=model_name if model_name is not None else (rows.model or "served model"),
        prompt=rows.prompt,
        extra={
            "adapter": "from_logprobs",
            "source": "served",
            "topk_only": True,
            "served_format": rows.fmt,
            "convention": rows.convention,
            "k_sent": k,
            "token_ids": "model" if rows.token_ids is not None else "local",
            "unknown_rows": unknown,
            "entropy": ENTROPY_NOTE,
        },
    )


def from_logprobs(response: Any, *, model_name: str | None = None, convention: str = "auto") -> Record:
    """A Record of the log-probabilities a model server returned.

    Accepts the OpenAI Python client's response objects and plain dicts of:

    * chat completions (``choices[0].logprobs.content[*].top_logprobs``): position 0 is
      a placeholder for the prompt (``"⟨prompt⟩"``, id -1) holding the first generated
      token's distribution, then the generated tokens;
    * legacy completions (``choices[0].logprobs.{tokens, token_logprobs,
      top_logprobs}``), with ``echo`` the prompt's tokens first;
    * vLLM ``prompt_logprobs`` (on the choice, or on a chat response), ids included.

    Each server's convention is read explicitly (:mod:`coilvis.logprobs_formats`): an
    echoed legacy completion is read as OpenAI's (rows beside their own tokens) or as
    llama-cpp-python's (rows shifted by one), whichever its rows agree with, and refused
    when they agree with neither or contradict the convention asked for.

    Args:
        response: the response object or dict.
        model_name: a name to show (default: the response's ``model``).
        convention: ``"auto"``; for an echoed legacy completion also ``"openai"`` or
            ``"llama-cpp-python-echo"``.

    Returns:
        A :class:`~coilvis.record.Record` whose ``extra["topk_only"]`` is True (see the
        module's docstring: top-k, "other" mass, the entropy estimate).

    Raises:
        CoilvisTypeError: ``response`` is not a response, or ``model_name`` not a str.
        NoLogprobsError: the response has no logprobs or no alternatives.
        InconsistentLogprobsError: its rows contradict each other or their tokens.
    """
    if model_name is not None and not isinstance(model_name, str):
        raise CoilvisTypeError(f"model_name: expected a str or None, got {type(model_name).__name__}")
    if not isinstance(convention, str):
        raise CoilvisTypeError(f"convention: expected a str, got {type(convention).__name__}")
    return rows_record(read_rows(response, convention=convention), model_name=model_name)


def is_topk_only(record: Any) -> bool:
    """Whether a Record holds only what a server sent (a top-k per position, no logits,
    no hidden states): its entropy is a top-k estimate and it has no lens."""
    extra = getattr(record, "extra", None)
    return bool(isinstance(extra, Mapping) and extra.get("topk_only"))


def other_mass(record: Record) -> np.ndarray:
    """(seq_len,) probability outside the top-k at each position (NaN where unknown)."""
    p = record.topk_probs.astype(np.float64)
    known = np.isfinite(p).any(axis=1)
    mass = np.clip(1.0 - np.where(np.isfinite(p), p, 0.0).sum(axis=1), 0.0, 1.0)
    return np.where(known, mass, np.nan)

