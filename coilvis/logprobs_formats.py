"""Served log-probabilities read format by format into the same rows, each server's convention named.

A server that returns log-probabilities (OpenAI-compatible chat and legacy completions,
vLLM's ``prompt_logprobs``) describes each token with the distribution it was drawn from:
entry ``j`` of a response is about token ``j``. A :class:`~coilvis.record.Record` keeps, at
position ``p``, the distribution over the token at ``p + 1``. This module turns a
response (a plain dict) into :class:`Rows` in the Record's order, under one named
convention per way servers fill their fields:

``"openai"`` (legacy completions)
    ``logprobs.top_logprobs[j]`` (a dict text -> log-prob) and ``token_logprobs[j]``
    describe ``tokens[j]``. With ``echo`` the prompt's tokens come first and entry 0 is
    ``null`` (nothing predicts the first token).
``"llama-cpp-python-echo"``
    llama-cpp-python (0.3.x) with ``echo=True`` and a model whose tokenizer adds no BOS
    token: it pairs ``tokens[j]`` with the distribution read *after* ``tokens[j]``, so
    ``top_logprobs[j]`` predicts ``tokens[j + 1]`` (shifted by one), ``token_logprobs[j]``
    is the log-prob of ``tokens[j]`` itself under that distribution (meaningless as a
    surprisal), row 0 is blanked to ``null`` as OpenAI's first row is (so the
    distribution after the first token is lost), and when generation stops on
    ``max_tokens`` the last generated token is missing from ``tokens``. Read this way, the
    actual next token's log-prob is known only when it is in the row.
``"chat"``
    ``choices[0].logprobs.content[i]`` describes the ``i``-th generated token (its
    ``top_logprobs`` a list of ``{token, logprob, bytes}``); OpenAI sends ``-9999.0``
    (:data:`UNLIKELY`) as the logprob of a token below its top 20: unknown here. The prompt is not in the
    response: position 0 of the rows is a placeholder for it (:data:`PROMPT_PLACEHOLDER`),
    holding the distribution of the first generated token.
``"vllm"`` (``prompt_logprobs``)
    ``prompt_logprobs[i]`` (``null`` for ``i = 0``) maps token ids to ``{logprob, rank,
    decoded_token}`` for prompt token ``i``: its top-k and the prompt token itself, with
    its vocabulary rank even when outside the top-k. Token ids come from
    ``prompt_token_ids`` when the response has them.

llama-cpp-python (and llama.cpp-based servers like it) also add each token to its own
row (``top_logprobs[j]`` holds ``tokens[j]`` even outside the top-k, so a row may hold
k + 1 entries): :func:`top_rows` keeps the top-k only, with ``k`` as asked, or inferred
from the rows (:func:`infer_k`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coilvis.errors import CoilvisTypeError, InconsistentLogprobsError, NoLogprobsError

__all__ = [
    "CONVENTIONS",
    "PROMPT_PLACEHOLDER",
    "TOL",
    "UNLIKELY",
    "Entry",
    "Rows",
    "chat_rows",
    "completion_rows",
    "infer_k",
    "top_rows",
    "vllm_rows",
]

#: Token text of the position standing for a prompt the response does not hold (chat).
PROMPT_PLACEHOLDER = "⟨prompt⟩"
#: Tolerance on log-probabilities sent as JSON numbers (some servers round them).
TOL = 1e-3
#: OpenAI's logprob for a token below its top 20 ("very unlikely"): read as unknown.
UNLIKELY = -9999.0
#: The conventions a response can be read with (see the module's docstring).
CONVENTIONS = ("openai", "llama-cpp-python-echo", "chat", "vllm")

Row = list["Entry"]


@dataclass(frozen=True)
class Entry:
    """One alternative a server sent: its text, log-prob and, when sent, id and rank.

    Attributes:
        text: the token's text as sent (untrusted).
        logprob: its log-probability (<= 0).
        token_id: its id in the model's vocabulary, when the server sent it (vLLM).
        rank: its rank in the whole vocabulary (1 = top), when the server sent it (vLLM).
    """

    text: str
    logprob: float
    token_id: int | None = None
    rank: int | None = None


@dataclass(frozen=True)
class Rows:
    """A response in the Record's order: position ``p`` holds what predicts token ``p + 1``.

    Attributes:
        tokens: (n,) the text of each position's token.
        token_ids: (n,) the model's ids of those tokens (-1 where unknown) when the
            server sent ids (vLLM), else None.
        top: (n,) each position's top entries over the next token, most likely first,
            at most ``k`` of them; None where the response holds no distribution.
        next_logprob: (n,) log-prob of the token at ``p + 1`` as sent; None where unknown
            (and at the last position).
        next_rank: (n,) its rank in the vocabulary when the server sent one, else None.
        k: alternatives per position the server sent (its top-k).
        fmt: the response's format: ``"completions"``, ``"chat"`` or ``"vllm"``.
        convention: the convention the response was read with (:data:`CONVENTIONS`).
        model: the model the response names ("" when none).
        prompt: the prompt's text when the response holds it (an echo), else None.
        placeholder: position 0 stands for a prompt the response does not hold
            (:data:`PROMPT_PLACEHOLDER`).
    """

    tokens: list[str]
    token_ids: list[int] | None
    top: list[Row | None]
    next_logprob: list[float | None]
    next_rank: list[int | None]
    k: int
    fmt: str
    convention: str
    model: str = ""
    prompt: str | None = None
    placeholder: bool = False


# ------------------------------------------------------------------------------ reading


def field_of(obj: Any, key: str, where: str, *, required: bool = True) -> Any:
    """``obj[key]`` of a JSON object (None when absent and not ``required``)."""
    if not isinstance(obj, Mapping):
        raise InconsistentLogprobsError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj and required:
        raise NoLogprobsError(f"{where}: has no {key!r}")
    return obj.get(key)


def list_of(obj: Any, where: str) -> list[Any]:
    """``obj`` as a list (a JSON array)."""
    if isinstance(obj, (str, bytes)) or not isinstance(obj, Sequence):
        raise InconsistentLogprobsError(f"{where}: expected a list, got {type(obj).__name__}")
    return list(obj)


def logprob_of(value: Any, where: str) -> float:
    """A log-probability as sent: a number <= 0 (-inf allowed), never NaN or a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InconsistentLogprobsError(f"{where}: expected a log-probability (a number), got {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or number > TOL:
        raise InconsistentLogprobsError(f"{where}: {number} is not a log-probability (a number <= 0)")
    return min(number, 0.0)


def text_of(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InconsistentLogprobsError(f"{where}: expected the token's text, got {type(value).__name__}")
    return value


def _sorted(entries: list[Entry], where: str) -> Row:
    """Entries most likely first (stable: equal log-probs keep the server's order), each text once."""
    seen: set[str] = set()
    for e in entries:
        if e.token_id is None and e.text in seen:
            raise InconsistentLogprobsError(f"{where}: lists the token {e.text!r} twice")
        seen.add(e.text)
    return sorted(entries, key=lambda e: -e.logprob)


def mapping_row(raw: Any, where: str) -> Row:
    """A legacy row ``{text: logprob}``, most likely first."""
    if not isinstance(raw, Mapping):
        raise InconsistentLogprobsError(f"{where}: expected an object of token text -> log-prob, got {type(raw).__name__}")
    return _sorted([Entry(text_of(t, where), logprob_of(v, f"{where}[{t!r}]")) for t, v in raw.items()], where)


def list_row(raw: Any, where: str) -> Row:
    """A chat row ``[{token, logprob, bytes}, ...]``, most likely first."""
    entries = []
    for i, item in enumerate(list_of(raw, where)):
        at = f"{where}[{i}]"
        entries.append(Entry(text_of(field_of(item, "token", at), at), logprob_of(field_of(item, "logprob", at), at)))
    return _sorted(entries, where)


# ------------------------------------------------------------------------------ top-k


def infer_k(rows: Sequence[Row | None], own: Sequence[str | None]) -> int:
    """The top-k of string-keyed rows, when the request's is not known.

    A row holds the top k and, with llama.cpp-based servers, its own token ``own[j]``
    appended when outside them: then it has k + 1 entries and that token comes last. A
    row whose last entry is not its own token has exactly k (fewer only where two ids
    share a text). When every row ends with its own token, the rows hold k + 1.

    Raises:
        NoLogprobsError: no row holds any alternative (asked with ``top_logprobs=0``).
    """
    sure = [len(r) for r, t in zip(rows, own) if r and r[-1].text != t]
    lengths = [len(r) for r in rows if r]
    if not lengths:
        raise NoLogprobsError(
            "response: its rows hold no alternatives (top_logprobs is empty everywhere); ask for top_logprobs >= 1"
        )
    return max(sure) if sure else max(1, max(lengths) - 1)


def top_rows(rows: Sequence[Row | None], own: Sequence[str | None], k: int | None) -> tuple[list[Row | None], int]:
    """Each row cut to its top ``k``, and ``k``: as inferred by :func:`infer_k`, at most
    ``k`` when given (the top-k asked for; a server may send fewer)."""
    inferred = infer_k(rows, own)
    k = inferred if k is None else min(k, inferred)
    return [r[:k] if r is not None else None for r in rows], k


def _value_in(row: Row | None, text: str) -> float | None:
    for e in row or ():
        if e.text == text:
            return e.logprob
    return None


def _check_own(row: Row | None, text: str, logprob: float | None, where: str) -> None:
    """A row that lists its own token must give it the log-prob sent for that token."""
    value = _value_in(row, text)
    if value is not None and logprob is not None and abs(value - logprob) > TOL * max(1.0, abs(logprob)):
        raise InconsistentLogprobsError(
            f"{where}: the token {text!r} has log-prob {logprob} but its row lists it at {value}; "
            "the rows do not describe the tokens they stand beside"
        )


# ------------------------------------------------------------------------------ formats


def chat_rows(choice: Mapping[str, Any], *, model: str, k: int | None = None) -> Rows:
    """Rows of a chat completion's ``choice`` (convention ``"chat"``): a placeholder for
    the prompt, then the generated tokens."""
    where = "response.choices[0].logprobs.content"
    content = list_of(field_of(field_of(choice, "logprobs", "response.choices[0]"), "content", "response.choices[0].logprobs"), where)
    if not content:
        raise NoLogprobsError(f"{where}: is empty (no token was generated)")
    texts, logprobs, rows = [], [], []
    for i, item in enumerate(content):
        at = f"{where}[{i}]"
        texts.append(text_of(field_of(item, "token", at), at))
        value = logprob_of(field_of(item, "logprob", at), at)
        logprobs.append(None if value <= UNLIKELY else value)
        raw = field_of(item, "top_logprobs", at, required=False)
        rows.append(list_row(raw, f"{at}.top_logprobs") if raw is not None else None)
        _check_own(rows[-1], texts[-1], logprobs[-1], at)
    top, k = top_rows(rows, texts, k)
    return Rows(
        tokens=[PROMPT_PLACEHOLDER, *texts],
        token_ids=None,
        top=[*top, None],
        next_logprob=[*logprobs, None],
        next_rank=[None] * (len(texts) + 1),
        k=k,
        fmt="chat",
        convention="chat",
        model=model,
        placeholder=True,
    )


def _legacy_fields(logprobs: Any) -> tuple[list[str], list[Any], list[Any]]:
    where = "response.choices[0].logprobs"
    tokens = [text_of(t, f"{where}.tokens[{i}]") for i, t in enumerate(list_of(field_of(logprobs, "tokens", where), f"{where}.tokens"))]
    token_lp = list_of(field_of(logprobs, "token_logprobs", where), f"{where}.token_logprobs")
    top = field_of(logprobs, "top_logprobs", where, required=False)
    top = list_of(top, f"{where}.top_logprobs") if top is not None else [None] * len(tokens)
    if not (len(tokens) == len(token_lp) == len(top)):
        raise InconsistentLogprobsError(
            f"{where}: {len(tokens)} tokens, {len(token_lp)} token_logprobs and {len(top)} top_logprobs; expected as many of each"
        )
    if not tokens:
        raise NoLogprobsError(f"{where}: holds no token")
    return tokens, token_lp, top


@dataclass(frozen=True)
class Legacy:
    """A legacy completion's logprobs as sent: entry ``j`` beside ``tokens[j]``.

    Attributes:
        tokens: (n,) token texts.
        sent: (n,) ``token_logprobs`` (None for an echo's first entry).
        raw: (n,) ``top_logprobs`` rows whole, most likely first (None where null).
        echo: the prompt's tokens come first (entry 0 is null).
    """

    tokens: list[str]
    sent: list[float | None]
    raw: list[Row | None]
    echo: bool


def read_legacy(choice: Mapping[str, Any]) -> Legacy:
    """The logprobs of a legacy completion's ``choice``, checked field by field."""
    where = "response.choices[0].logprobs"
    tokens, token_lp, raw_top = _legacy_fields(field_of(choice, "logprobs", "response.choices[0]"))
    raw: list[Row | None] = [mapping_row(r, f"{where}.top_logprobs[{j}]") if r is not None else None for j, r in enumerate(raw_top)]
    sent = [logprob_of(v, f"{where}.token_logprobs[{j}]") if v is not None else None for j, v in enumerate(token_lp)]
    if any(v is None for v in sent[1:]) or (any(r is None for r in raw[1:]) and any(r is not None for r in raw)):
        raise InconsistentLogprobsError(f"{where}: only the first entry may be null (a prompt's first token)")
    for j in range(len(tokens)):
        _check_own(raw[j], tokens[j], sent[j], f"{where} entry {j}")
    return Legacy(tokens, sent, raw, echo=sent[0] is None)


def alignment_hits(legacy: Legacy, k: int) -> tuple[int, int]:
    """How often a row's top ``k`` holds the token it stands beside, and how often the
    token after it: ``(own, next)``.

    A row predicting its own token (convention ``"openai"``) lists it often and the one
    after it rarely; a row shifted by one (``"llama-cpp-python-echo"``) the other way
    round (its own token is appended to it, but below the top ``k``).
    """
    own = nxt = 0
    for j in range(1, len(legacy.tokens)):
        row = (legacy.raw[j] or [])[:k]
        texts = {e.text for e in row}
        own += legacy.tokens[j] in texts
        nxt += j + 1 < len(legacy.tokens) and legacy.tokens[j + 1] in texts
    return own, nxt


def echo_convention(legacy: Legacy, k: int, convention: str) -> str:
    """The convention of an echoed legacy response: ``convention``, or the one its rows
    agree with for ``"auto"``.

    Raises:
        InconsistentLogprobsError: the rows agree with neither more than the other
            (``"auto"``), or clearly with the other one than ``convention``.
    """
    own, nxt = alignment_hits(legacy, k)
    if convention == "auto":
        if own == nxt:
            raise InconsistentLogprobsError(
                f"response: cannot tell whether its rows describe the tokens beside them (OpenAI) or the next ones "
                f"(llama-cpp-python echo): {own} rows list either; pass convention='openai' or 'llama-cpp-python-echo'"
            )
        return "openai" if own > nxt else "llama-cpp-python-echo"
    claimed, other = (own, nxt) if convention == "openai" else (nxt, own)
    if other > claimed + max(2, len(legacy.tokens) // 10):
        raise InconsistentLogprobsError(
            f"response: read with convention {convention!r}, its rows list the tokens they predict {claimed} times "
            f"and the tokens of the other convention {other} times; the rows are shifted against the tokens"
        )
    return convention


def completion_rows(choice: Mapping[str, Any], *, model: str, convention: str = "auto", k: int | None = None) -> Rows:
    """Rows of a legacy completion's ``choice`` under ``convention`` (``"openai"``,
    ``"llama-cpp-python-echo"`` or ``"auto"``; see the module's docstring and
    :func:`echo_convention`).

    Without ``echo`` (entry 0 not ``null``) the response holds generated tokens only: its
    rows describe their own tokens under every server seen, and position 0 stands for
    the prompt, as in :func:`chat_rows`.
    """
    if convention not in ("auto", "openai", "llama-cpp-python-echo"):
        raise CoilvisTypeError(f"convention: expected 'auto', 'openai' or 'llama-cpp-python-echo', got {convention!r}")
    legacy = read_legacy(choice)
    tokens, sent, raw = legacy.tokens, legacy.sent, legacy.raw
    top, k = top_rows(raw, tokens, k)
    n = len(tokens)
    if not legacy.echo:
        if convention == "llama-cpp-python-echo":
            raise InconsistentLogprobsError("response: the convention 'llama-cpp-python-echo' applies to echoed prompts only")
        return Rows(
            [PROMPT_PLACEHOLDER, *tokens], None, [*top, None], [*sent, None], [None] * (n + 1), k,
            "completions", "openai", model, None, placeholder=True,
        )  # fmt: skip
    convention = echo_convention(legacy, k, convention)
    if convention == "llama-cpp-python-echo":
        # row j predicts tokens[j + 1]; that token's log-prob is in the whole row when sent
        nexts = [_value_in(raw[j], tokens[j + 1]) for j in range(n - 1)]
        return Rows(tokens, None, top, [*nexts, None], [None] * n, k, "completions", convention, model)
    return Rows(tokens, None, [*top[1:], None], [*sent[1:], None], [None] * n, k, "completions", convention, model)


def _vllm_entries(raw: Any, where: str) -> Row:
    if not isinstance(raw, Mapping):
        raise InconsistentLogprobsError(f"{where}: expected an object of token id -> logprob, got {type(raw).__name__}")
    out = []
    for key, item in raw.items():
        at = f"{where}[{key!r}]"
        try:
            token_id = int(key)
        except (TypeError, ValueError):
            raise InconsistentLogprobsError(f"{at}: expected a token id as the key") from None
        rank = field_of(item, "rank", at, required=False)
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise InconsistentLogprobsError(f"{at}.rank: expected an int >= 1, got {rank!r}")
        text = field_of(item, "decoded_token", at, required=False)
        out.append(Entry(text_of(text, at) if text is not None else f"<id {token_id}>", logprob_of(field_of(item, "logprob", at), at), token_id, rank))
    if any(e.token_id is not None and e.token_id < 0 for e in out):
        raise InconsistentLogprobsError(f"{where}: token ids must be >= 0")
    return sorted(out, key=lambda e: (e.rank if e.rank is not None else math.inf, -e.logprob))


def _prefix(row: Row) -> Row:
    """The entries ranked 1, 2, ... without a gap: a true top-m of the vocabulary."""
    out: Row = []
    for e in row:
        if e.rank != len(out) + 1:
            break
        out.append(e)
    return out


def vllm_rows(response: Mapping[str, Any], choice: Mapping[str, Any], *, model: str) -> Rows:
    """Rows of vLLM's ``prompt_logprobs`` (on the choice for completions, on the response
    for chat), with ``prompt_token_ids`` naming the prompt's tokens (without them, each
    row's one entry ranked below its top-k).

    A row lists the top-k (ranks 1..k) and the prompt token with its rank; the rows' top-k
    is the longest run of ranks 1, 2, ... every row has.
    """
    on_response = response.get("prompt_logprobs") is not None
    where = "response.prompt_logprobs" if on_response else "response.choices[0].prompt_logprobs"
    raw = list_of(response.get("prompt_logprobs") if on_response else choice.get("prompt_logprobs"), where)
    rows = [_vllm_entries(r, f"{where}[{i}]") if r is not None else None for i, r in enumerate(raw)]
    if not rows or rows[0] is not None or any(r is None for r in rows[1:]):
        raise InconsistentLogprobsError(f"{where}: expected null for the first prompt token and a row for every other")
    full: list[Row] = [r for r in rows[1:] if r is not None]
    if any(e.rank is None for r in full for e in r):
        raise InconsistentLogprobsError(f"{where}: every entry needs its rank")
    k = min((len(_prefix(r)) for r in full), default=1)
    if full and k == 0:
        raise NoLogprobsError(f"{where}: its rows hold no alternatives; ask for prompt_logprobs >= 1")
    ids_raw = choice.get("prompt_token_ids") if choice.get("prompt_token_ids") is not None else response.get("prompt_token_ids")
    ids = _vllm_ids(ids_raw, full, k, where)
    top: list[Row | None] = []
    next_lp: list[float | None] = []
    next_rank: list[int | None] = []
    named = {e.token_id: e.text for r in full for e in r}
    texts = [named.get(ids[0], f"<id {ids[0]}>")]
    for i, row in enumerate(full, start=1):
        mine = [e for e in row if e.token_id == ids[i]]
        if not mine:
            raise InconsistentLogprobsError(f"{where}[{i}]: does not list its prompt token (id {ids[i]})")
        for a, b in zip(row, row[1:]):
            if b.logprob > a.logprob + TOL:
                raise InconsistentLogprobsError(f"{where}[{i}]: rank {a.rank} has log-prob {a.logprob} below rank {b.rank}'s {b.logprob}")
        top.append(row[:k])
        texts.append(mine[0].text)
        next_lp.append(mine[0].logprob)
        next_rank.append(mine[0].rank)
    prompt = choice.get("prompt") if isinstance(choice.get("prompt"), str) else None
    return Rows(texts, ids, [*top, None], [*next_lp, None], [*next_rank, None], k, "vllm", "vllm", model, prompt)


def _vllm_ids(ids_raw: Any, rows: list[Row], k: int, where: str) -> list[int]:
    """The prompt's token ids: ``prompt_token_ids`` (-1 first when absent), else each
    row's one entry ranked below its top ``k``."""
    if ids_raw is not None:
        ids = list_of(ids_raw, "response.prompt_token_ids")
        if len(ids) != len(rows) + 1 or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
            raise InconsistentLogprobsError(
                f"response.prompt_token_ids: expected {len(rows) + 1} token ids (one per prompt_logprobs entry)"
            )
        return [int(i) for i in ids]
    ids = [-1]
    for i, row in enumerate(rows, start=1):
        below = [e for e in row if e.rank is not None and e.rank > k]
        if len(below) != 1 or below[0].token_id is None:
            raise InconsistentLogprobsError(
                f"{where}[{i}]: cannot tell which entry is the prompt's token; ask the server for "
                "prompt_token_ids (vLLM: return_token_ids=True)"
            )
        ids.append(below[0].token_id)
    return ids
