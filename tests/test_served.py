"""coilvis.run_served against a scripted OpenAI-compatible server on loopback: what it asks, what it keeps, how it fails.

The real server (llama-cpp-python serving the default model) is in tests/test_served_llama.py.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("openai")

from served_fake import fake_server, free_port

import coilvis
from coilvis import cli
from coilvis.errors import (
    CoilvisValueError,
    InconsistentLogprobsError,
    NoLogprobsError,
    ServedModelNotFoundError,
    ServerRequestError,
    ServerUnavailableError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "served"
PROMPT = "The capital of France is"
MODELS = [{"id": "gpt-3.5-turbo-instruct", "object": "model", "owned_by": "system"}]


def echo() -> dict[str, Any]:
    """A legacy echo of PROMPT and one generated token, " Paris" (hand-written, OpenAI's format)."""
    return json.loads((FIXTURES / "openai_completions_echo.json").read_text(encoding="utf-8"))


def _posts(server: Any) -> list[Any]:
    return [body for method, path, body in server.requests if method == "POST" and path.endswith("/completions")]


def test_it_asks_for_an_echo_with_logprobs_and_keeps_the_prompt() -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        rec = coilvis.run_served(PROMPT, server.url)
    (body,) = _posts(server)
    assert body["echo"] is True and body["logprobs"] == 20 and body["max_tokens"] == 1
    assert body["temperature"] == 0 and body["prompt"] == PROMPT and body["model"] == "gpt-3.5-turbo-instruct"
    # the prompt's 5 tokens; the last position holds the distribution of the generated " Paris"
    assert rec.tokens == ("The", " capital", " of", " France", " is")
    assert rec.prompt == PROMPT and rec.model_name == "gpt-3.5-turbo-instruct"
    assert [rec.token_text(int(i)) for i in rec.topk_ids[4]] == [" Paris", " the"]
    assert rec.k == 2  # the server sent 2 of the 20 asked for
    assert rec.extra["unknown_rows"] == [] and rec.extra["max_tokens"] == 0
    assert rec.next_rank[-1] == -1 and math.isnan(rec.next_logprob[-1])  # the next token is not kept
    assert rec.next_logprob[0] == pytest.approx(-7.1)


def test_generated_tokens_become_positions() -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        rec = coilvis.run_served(PROMPT, server.url, max_tokens=1, top_logprobs=2)
    (body,) = _posts(server)
    assert body["max_tokens"] == 2 and body["logprobs"] == 2
    assert rec.tokens[-1] == " Paris" and rec.seq_len == 6
    assert rec.extra["unknown_rows"] == [5]  # the server stopped: nothing predicts what follows " Paris"


def test_a_model_the_server_does_not_have_is_refused_before_asking() -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        with pytest.raises(ServedModelNotFoundError, match=r"does not serve 'llama-70b'.*gpt-3.5-turbo-instruct"):
            coilvis.run_served(PROMPT, server.url, model="llama-70b")
    assert _posts(server) == []


def test_top_logprobs_zero_is_refused_before_any_request() -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        with pytest.raises(CoilvisValueError, match="top_logprobs"):
            coilvis.run_served(PROMPT, server.url, top_logprobs=0)
    assert server.requests == []


def test_a_server_that_is_down_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=r"no server answered .* after 4 tries"):
        coilvis.run_served(PROMPT, url, timeout_s=5)
    assert time.monotonic() - start < 60


def test_transient_errors_are_retried() -> None:
    busy = (503, {"error": {"message": "overloaded"}})
    with fake_server(models=MODELS, completions=[busy, busy, echo()]) as server:
        rec = coilvis.run_served(PROMPT, server.url)
    assert len(_posts(server)) == 3 and rec.seq_len == 5


def test_a_refused_request_gives_the_servers_words_without_retrying() -> None:
    bad = (400, {"error": {"message": "logprobs must be <= 5", "type": "invalid_request_error"}})
    with fake_server(models=MODELS, completions=[bad]) as server:
        with pytest.raises(ServerRequestError, match="HTTP 400: logprobs must be <= 5"):
            coilvis.run_served(PROMPT, server.url)
    assert len(_posts(server)) == 1


def test_a_response_without_logprobs_is_refused() -> None:
    reply = echo()
    reply["choices"][0]["logprobs"] = None
    with fake_server(models=MODELS, completions=[reply]) as server:
        with pytest.raises(NoLogprobsError, match="has no logprobs"):
            coilvis.run_served(PROMPT, server.url)


def test_inconsistent_rows_are_refused() -> None:
    reply = echo()
    reply["choices"][0]["logprobs"]["top_logprobs"][3][" x"] = -0.05  # row 3 now sums above 1
    with fake_server(models=MODELS, completions=[reply]) as server:
        with pytest.raises(InconsistentLogprobsError, match="sums to probability"):
            coilvis.run_served(PROMPT, server.url)


def test_a_server_that_does_not_echo_the_prompt_is_named() -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        with pytest.raises(ServerRequestError, match="did not echo the prompt"):
            coilvis.run_served(PROMPT + " and a much longer prompt than the echo", server.url)


@pytest.mark.parametrize(
    "kwargs, words",
    [({"base_url": "localhost:8000"}, "base_url"), ({"prompt": ""}, "prompt"), ({"prompt": 3}, "prompt"),
     ({"max_tokens": -1}, "max_tokens"), ({"timeout_s": 0}, "timeout_s"), ({"model": 3}, "model"), ({"api_key": 1}, "api_key")],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], words: str) -> None:
    args = {"prompt": PROMPT, "base_url": "http://127.0.0.1:9/v1", **kwargs}
    with pytest.raises(coilvis.CoilvisError, match=words):
        coilvis.run_served(args.pop("prompt"), args.pop("base_url"), **args)


# ------------------------------------------------------------------------------ command line


def test_the_table_command_asks_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        status = cli.main(["table", PROMPT, "--served", server.url, "--served-model", "gpt-3.5-turbo-instruct", "--k", "2", "--json"])
    assert status == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["token"] for r in rows] == [" Paris", " the"]
    assert rows[0]["prob"] == pytest.approx(math.exp(-0.12), rel=1e-5) and rows[0]["is_target"] is False
    (body,) = _posts(server)
    assert body["logprobs"] == 2


def test_the_coil_and_page_commands_draw_a_served_record(tmp_path: Path) -> None:
    with fake_server(models=MODELS, completions=[echo(), echo()]) as server:
        assert cli.main(["coil", PROMPT, "--served", server.url, "--color", "entropy", "-o", str(tmp_path / "c.html")]) == 0
        assert cli.main(["page", PROMPT, "--served", server.url, "-o", str(tmp_path / "p.html")]) == 0
    coil_html = (tmp_path / "c.html").read_text(encoding="utf-8")
    page_html = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "entropy, top-k estimate (bits)" in coil_html
    assert "Logit lens unavailable" in page_html and "page_lens_unavailable" in page_html


@pytest.mark.parametrize(
    "argv, words",
    [
        (["coil", PROMPT, "--served", "ftp://x"], "--served: expected an http"),
        (["table", PROMPT, "--served-model", "m"], "--served-model: names the model of a server"),
        (["coil", PROMPT, "--served", "http://h/v1", "--model", "gpt2"], "--model: apply to a model run here"),
        (["coil", PROMPT, "--served", "http://h/v1", "--attention", "mean"], "--attention: apply to a model run here"),
        (["page", PROMPT, "--served", "http://h/v1", "--stride", "2"], "--stride: apply to a model run here"),
        (["table", "--record", "x.coil", "--served", "http://h/v1"], "--served, --record: give one or the other"),
    ],
)
def test_served_usage_errors_exit_2(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_the_cli_names_a_server_that_is_down(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    assert cli.main(["table", PROMPT, "--served", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("coilvis: error: base_url: no server answered") and err.count("\n") == 1


def test_a_served_record_has_every_row_it_was_asked_for() -> None:
    with fake_server(models=MODELS, completions=[echo()]) as server:
        rec = coilvis.run_served(PROMPT, server.url)
    assert np.isfinite(rec.topk_probs).all() and np.isfinite(rec.entropy).all()


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def test_a_llama_cpp_python_server_is_read_shifted_and_asked_for_the_first_row() -> None:
    """Recorded answers of llama-cpp-python serving the default model: its model adds no
    BOS token (tokenize("") is empty), so its echo is read shifted by one, and the row
    the echo blanks (after the first token) is asked for once more without echo."""
    models = _fixture("llama_models")["data"]
    echo_reply, first = _fixture("llama_completions_echo"), _fixture("llama_completions_first")
    with fake_server(models=models, completions=[echo_reply, first], tokenize=[]) as server:
        rec = coilvis.run_served("The Eiffel Tower is located in the city of", server.url, top_logprobs=5)
    paths = [path for _, path, _ in server.requests]
    assert paths == ["/v1/models", "/extras/tokenize", "/v1/completions", "/v1/completions"]
    follow = _posts(server)[1]
    assert follow["prompt"] == "The" and follow.get("echo") in (None, False) and follow["max_tokens"] == 1
    assert rec.extra["convention"] == "llama-cpp-python-echo" and rec.model_name == "SmolLM2-135M-Instruct-Q4_1"
    assert rec.seq_len == 10 and rec.extra["unknown_rows"] == []
    row = first["choices"][0]["logprobs"]["top_logprobs"][0]
    assert [rec.token_text(int(i)) for i in rec.topk_ids[0]] == sorted(row, key=lambda t: -row[t])[:5]
    assert rec.token_text(int(rec.topk_ids[9, 0])) == " Paris"


def test_a_llama_server_whose_model_adds_bos_is_read_as_openai() -> None:
    models = _fixture("llama_models")["data"]
    with fake_server(models=models, completions=[echo()], tokenize=[1]) as server:
        rec = coilvis.run_served(PROMPT, server.url)
    assert rec.extra["convention"] == "openai" and len(_posts(server)) == 1


def test_an_echo_is_read_before_vllms_prompt_logprobs() -> None:
    """vLLM answers an echo with both; the echo also holds the generated token's row."""
    reply = echo()
    vllm = _fixture("vllm_completions_prompt_logprobs")["choices"][0]
    reply["choices"][0].update(prompt_logprobs=vllm["prompt_logprobs"], prompt_token_ids=vllm["prompt_token_ids"])
    with fake_server(models=MODELS, completions=[reply]) as server:
        rec = coilvis.run_served(PROMPT, server.url)
    assert rec.extra["served_format"] == "completions" and rec.extra["unknown_rows"] == []
    assert coilvis.from_logprobs(reply).extra["served_format"] == "vllm"


def test_a_server_without_a_model_list_is_asked_for_the_model_given() -> None:
    missing = (404, {"error": {"message": "The model `gpt-5` does not exist.", "type": "NotFoundError"}})
    with fake_server(models=MODELS, completions=[echo(), missing]) as server:
        original = server.answer

        def answer(method: str, path: str, body: Any) -> tuple[int, Any]:
            if path.endswith("/models"):
                server.requests.append((method, path, body))
                return 404, {"detail": "Not Found"}
            return original(method, path, body)

        server.answer = answer  # type: ignore[method-assign]
        rec = coilvis.run_served(PROMPT, server.url, model="gpt-3.5-turbo-instruct")
        assert rec.model_name == "gpt-3.5-turbo-instruct"
        with pytest.raises(ServedModelNotFoundError, match="HTTP 404: The model `gpt-5` does not exist"):
            coilvis.run_served(PROMPT, server.url, model="gpt-5")
        with pytest.raises(ServerRequestError, match="/models"):
            coilvis.run_served(PROMPT, server.url)  # no list and no model named: nothing to ask for
