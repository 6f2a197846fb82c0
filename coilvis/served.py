"""A Record from a model server: ask any OpenAI-compatible server for a prompt's log-probabilities.

:func:`run_served` sends the prompt to the server's completions endpoint with
``echo=True`` and ``logprobs=top_logprobs`` (greedy, ``temperature=0``), reads the
response with :func:`coilvis.logprobs.read_rows` and keeps the prompt's positions and
``max_tokens`` generated ones. It asks for one token more than ``max_tokens``: the
distribution that predicts it is the last kept position's, so every kept position has
its top-k, as a Record of :func:`coilvis.run` does.

Servers differ (see :mod:`coilvis.logprobs_formats`). A llama-cpp-python server (its
``/v1/models`` says ``owned_by: "me"``) is asked whether its model adds a BOS token
(``/extras/tokenize`` of the empty text): when it does not, its echoed rows are shifted
by one (convention ``"llama-cpp-python-echo"``) and the row after the first token,
blanked in the echo, is asked for once more without echo. Other servers are read as
OpenAI's, and any response whose rows contradict the convention is refused.

The client is the ``openai`` package (``pip install "coilvis[served]"``), which retries
transient failures (connection errors, 408, 429, 5xx) with backoff.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

from coilvis.errors import (
    CoilvisTypeError,
    CoilvisValueError,
    MissingDependencyError,
    ServedModelNotFoundError,
    ServerRequestError,
    ServerUnavailableError,
    check_float,
    check_int,
)
from coilvis.logprobs import read_rows, rows_record
from coilvis.logprobs_formats import Rows, completion_rows
from coilvis.record import Record

__all__ = ["MAX_RETRIES", "run_served"]

#: Retries of a request that failed for a transient cause (the openai client's backoff).
MAX_RETRIES = 3
#: ``owned_by`` of the models a llama-cpp-python server lists.
_LLAMA_CPP_PYTHON = "me"


def _check_args(prompt: Any, base_url: Any, model: Any, api_key: Any) -> None:
    if not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not prompt:
        raise CoilvisValueError("prompt: is empty")
    if not isinstance(base_url, str):
        raise CoilvisTypeError(f"base_url: expected a str, got {type(base_url).__name__}")
    if not base_url.startswith(("http://", "https://")):
        raise CoilvisValueError(f"base_url: expected an http:// or https:// URL such as http://127.0.0.1:8000/v1, got {base_url!r}")
    for name, value in (("model", model), ("api_key", api_key)):
        if value is not None and not isinstance(value, str):
            raise CoilvisTypeError(f"{name}: expected a str or None, got {type(value).__name__}")


def _client(base_url: str, api_key: str | None, timeout_s: float) -> Any:
    try:
        import openai
    except ImportError:
        raise MissingDependencyError(
            "base_url: asking a model server needs the openai client; install it with: pip install 'coilvis[served]'"
        ) from None
    key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=MAX_RETRIES)


def _call(base_url: str, what: str, request: Any) -> Any:
    """``request()``, its failures as coilvis errors naming the server and the cause."""
    import openai

    try:
        return request()
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:  # after the client's retries
        raise ServerUnavailableError(
            f"base_url: no server answered {what} at {base_url} after {MAX_RETRIES + 1} tries ({type(exc).__name__}: {exc}); "
            "is it running, and is the URL right (it usually ends in /v1)?"
        ) from exc
    except openai.NotFoundError as exc:  # vLLM, OpenAI: "The model `x` does not exist"
        words = _words(exc)
        error = ServedModelNotFoundError if "model" in words.lower() else ServerRequestError
        raise error(f"base_url: the server at {base_url} refused {what}: HTTP 404: {words}") from exc
    except openai.APIStatusError as exc:
        raise ServerRequestError(f"base_url: the server at {base_url} refused {what}: HTTP {exc.status_code}: {_words(exc)}") from exc


def _words(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else None
        if message:
            return str(message)[:500]
        return json.dumps(body)[:500]
    return str(exc)[:500]


def _choose_model(client: Any, base_url: str, model: str | None) -> tuple[str, str]:
    """The model to ask for and its ``owned_by``; refusing one the server does not list
    (a server without a list is asked for ``model`` as given)."""
    try:
        listing = _call(base_url, "the list of its models (/models)", lambda: client.models.list())
    except (ServerRequestError, ServedModelNotFoundError):
        if model is None:
            raise
        return model, ""
    served = [(str(m.id), str(getattr(m, "owned_by", "") or "")) for m in getattr(listing, "data", [])]
    if not served:
        if model is None:
            raise ServedModelNotFoundError(f"model: the server at {base_url} lists no model; pass model=")
        return model, ""
    if model is None:
        return served[0]
    for name, owner in served:
        if name == model:
            return name, owner
    raise ServedModelNotFoundError(
        f"model: the server at {base_url} does not serve {model!r}; it serves {[name for name, _ in served]}"
    )


def _adds_bos(base_url: str, model: str, timeout_s: float, api_key: str | None) -> bool | None:
    """Whether a llama-cpp-python server's model adds a BOS token (its tokenization of the
    empty text is not empty), or None when it cannot say."""
    root = base_url.rstrip("/")
    root = root.removesuffix("/v1")
    body = json.dumps({"input": "", "model": model}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(f"{root}/extras/tokenize", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            tokens = json.loads(answer.read().decode("utf-8")).get("tokens")
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None
    return bool(tokens) if isinstance(tokens, list) else None


def _prompt_length(rows: Rows, prompt: str) -> int:
    """How many of the echoed tokens spell the prompt."""
    chars = 0
    for n, text in enumerate(rows.tokens, start=1):
        chars += len(text)
        if chars >= len(prompt):
            return n
    raise ServerRequestError(
        f"base_url: the server did not echo the prompt ({chars} of its {len(prompt)} characters came back); "
        "it needs to support echo=True with logprobs on /completions"
    )


def _first_row(client: Any, base_url: str, model: str, rows: Rows, k: int) -> Rows:
    """Rows with position 0's distribution, blanked in a llama-cpp-python echo, asked for
    again: the first token alone as the prompt, one token generated, no echo."""
    first = _call(
        base_url,
        "the distribution after the first token (/completions)",
        lambda: client.completions.create(model=model, prompt=rows.tokens[0], max_tokens=1, logprobs=k, temperature=0.0),
    )
    data = first.model_dump() if hasattr(first, "model_dump") else dict(first)
    if (data.get("usage") or {}).get("prompt_tokens") != 1:
        return rows  # the first token's text is not one token by itself: leave the row unknown
    alone = completion_rows(data["choices"][0], model=model, convention="openai", k=k)
    row = alone.top[0]
    nxt = next((e.logprob for e in row or () if len(rows.tokens) > 1 and e.text == rows.tokens[1]), None)
    return replace(rows, top=[row, *rows.top[1:]], next_logprob=[nxt, *rows.next_logprob[1:]])


def run_served(
    prompt: str,
    base_url: str,
    *,
    model: str | None = None,
    top_logprobs: int = 20,
    max_tokens: int = 0,
    api_key: str | None = None,
    timeout_s: float = 60,
) -> Record:
    """Ask an OpenAI-compatible server (vLLM, llama.cpp, a hosted API) for a prompt's
    log-probabilities and keep them as a Record.

    Args:
        prompt: the prompt text.
        base_url: the server's OpenAI API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the served model's name (default: the first the server lists).
        top_logprobs: alternatives per position, >= 1 (servers cap it: vLLM at 20 by
            default, OpenAI's completions at 5).
        max_tokens: tokens to generate greedily after the prompt, kept as positions.
        api_key: the key to send (default: ``$OPENAI_API_KEY``, else none).
        timeout_s: seconds to wait for each request, > 0.

    Returns:
        A :class:`~coilvis.record.Record` of the prompt's tokens and the generated ones,
        holding what the server sent (:mod:`coilvis.logprobs`: top-k only, entropy a
        top-k estimate, no lens).

    Raises:
        CoilvisTypeError, CoilvisValueError: a bad argument (``top_logprobs=0`` too: a
            Record needs the alternatives).
        MissingDependencyError: the ``openai`` package is not installed.
        ServerUnavailableError: no server answered (down, wrong URL) after the retries.
        ServedModelNotFoundError: the server does not serve ``model``.
        ServerRequestError: the server refused the request (the message has its words).
        NoLogprobsError, InconsistentLogprobsError: the response has no usable
            log-probabilities, or rows that contradict each other.
    """
    _check_args(prompt, base_url, model, api_key)
    k = check_int("top_logprobs", top_logprobs, minimum=1)
    max_tokens = check_int("max_tokens", max_tokens, minimum=0)
    timeout = check_float("timeout_s", timeout_s, minimum=1e-3)
    client = _client(base_url, api_key, timeout)
    name, owner = _choose_model(client, base_url, model)
    convention = "openai"
    if owner == _LLAMA_CPP_PYTHON and _adds_bos(base_url, name, timeout, api_key) is False:
        convention = "llama-cpp-python-echo"
    response = _call(
        base_url,
        "the prompt's log-probabilities (/completions with echo=True)",
        lambda: client.completions.create(
            model=name, prompt=prompt, echo=True, logprobs=k, max_tokens=max_tokens + 1, temperature=0.0
        ),
    )
    rows = read_rows(response, convention=convention, k=k, prefer_echo=True)  # vLLM: its echo covers the generated tokens too
    if rows.convention == "llama-cpp-python-echo" and rows.top[0] is None:
        rows = _first_row(client, base_url, name, rows, rows.k)
    keep = min(len(rows.tokens), _prompt_length(rows, prompt) + max_tokens)
    rows = replace(
        rows,
        tokens=rows.tokens[:keep],
        top=rows.top[:keep],
        next_logprob=[*rows.next_logprob[: keep - 1], None],  # the last position's next token is not kept
        next_rank=[*rows.next_rank[: keep - 1], None],
        token_ids=rows.token_ids[:keep] if rows.token_ids is not None else None,
        prompt=prompt,
    )
    record = rows_record(rows, model_name=name)
    record.extra.update({"served_model": name, "max_tokens": max_tokens})
    return record
