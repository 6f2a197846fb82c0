"""coilvis.from_logprobs: every response format read into a Record, each server's convention, and refusals.

The fixtures in tests/fixtures/served/ are responses: ``openai_*`` and ``vllm_*`` written
by hand from the OpenAI and vLLM documentation (formats no local server produces);
``llama_*`` recorded from a llama-cpp-python server (0.3.36) serving the default model's GGUF
(tests/fixtures/served/record_llama.py records them again; tests/test_served_llama.py runs that
server and compares it with transformers).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coilvis
from coilvis.errors import (
    CoilvisError,
    CoilvisTypeError,
    InconsistentLogprobsError,
    NoLogprobsError,
)
from coilvis.logprobs import ENTROPY_NOTE, is_topk_only, other_mass, read_rows
from coilvis.logprobs_formats import (
    PROMPT_PLACEHOLDER,
    Entry,
    alignment_hits,
    infer_k,
    read_legacy,
)

FIXTURES = Path(__file__).parent / "fixtures" / "served"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def topk_entropy(logprobs: list[float]) -> float:
    """Entropy (nats) of the top-k with the rest as one bucket, written out."""
    p = [math.exp(v) for v in logprobs]
    rest = max(0.0, 1.0 - sum(p))
    return -sum(x * math.log(x) for x in p if x > 0) - (rest * math.log(rest) if rest > 0 else 0.0)


# ------------------------------------------------------------------------------ OpenAI chat


def test_openai_chat_keeps_what_the_server_sent() -> None:
    response = load("openai_chat")
    rec = coilvis.from_logprobs(response)
    content = response["choices"][0]["logprobs"]["content"]
    assert rec.tokens == (PROMPT_PLACEHOLDER, "Paris", " is", " lovely", ".")
    assert rec.token_ids[0] == -1 and rec.model_name == "gpt-4o-mini-2024-07-18"
    assert rec.k == 3 and rec.extra["k_sent"] == 3 and rec.extra["convention"] == "chat"
    # position p holds the distribution of generated token p (its top_logprobs), in order
    for p, item in enumerate(content):
        listed = [(e["token"], e["logprob"]) for e in item["top_logprobs"]]
        got = [(rec.token_text(int(i)), float(v)) for i, v in zip(rec.topk_ids[p], rec.topk_logits[p])]
        assert [t for t, _ in got] == [t for t, _ in listed]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in listed], rtol=1e-6)
        np.testing.assert_allclose(rec.topk_probs[p], np.exp([v for _, v in listed]), rtol=1e-5)
        assert rec.entropy[p] == pytest.approx(topk_entropy([v for _, v in listed]), rel=1e-5)
    assert rec.next_logprob[:3] == pytest.approx([-0.003, -0.41, -3.9], rel=1e-6)
    # " lovely" is outside its row's top 3: its log-prob as sent, its rank unknown
    assert rec.next_rank.tolist() == [1, 1, -1, -1, -1]
    # "." came at -9999.0 (OpenAI: below its top 20): unknown, not a probability
    assert math.isnan(rec.next_logprob[3])
    # the last position's distribution is not in a chat response
    assert np.isnan(rec.topk_probs[4]).all() and math.isnan(rec.entropy[4])
    assert rec.extra["unknown_rows"] == [4]
    assert is_topk_only(rec) and rec.extra["source"] == "served" and rec.extra["entropy"] == ENTROPY_NOTE


def test_other_mass_is_what_the_top_k_leaves() -> None:
    rec = coilvis.from_logprobs(load("openai_chat"))
    mass = other_mass(rec)
    np.testing.assert_allclose(mass[:4], 1.0 - np.nansum(rec.topk_probs[:4].astype(np.float64), axis=1), atol=1e-6)
    assert mass[0] == pytest.approx(1 - math.exp(-0.003) - math.exp(-6.25) - math.exp(-7.5), abs=1e-6)
    assert math.isnan(mass[4])


def test_the_openai_client_objects_give_the_same_record() -> None:
    openai = pytest.importorskip("openai")
    for name, kind in (("openai_chat", openai.types.chat.ChatCompletion), ("openai_completions_echo", openai.types.Completion),
                       ("vllm_completions_prompt_logprobs", openai.types.Completion)):
        data = load(name)
        obj = kind.construct(**data)  # as the client builds what a server returns (nulls and extra fields kept)
        assert type(obj.choices[0]).__module__.startswith("openai.types")
        a, b = coilvis.from_logprobs(data), coilvis.from_logprobs(obj)
        assert a.tokens == b.tokens and a.extra == b.extra
        for field in ("token_ids", "topk_ids", "topk_logits", "entropy", "next_logprob", "next_rank"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# ------------------------------------------------------------------------------ legacy completions


def test_openai_echo_rows_describe_the_tokens_beside_them() -> None:
    response = load("openai_completions_echo")
    lp = response["choices"][0]["logprobs"]
    rec = coilvis.from_logprobs(response)
    assert rec.extra["convention"] == "openai" and rec.extra["served_format"] == "completions"
    assert rec.tokens == tuple(lp["tokens"])
    for p in range(rec.seq_len - 1):  # position p: the row of token p + 1
        row = sorted(lp["top_logprobs"][p + 1].items(), key=lambda kv: -kv[1])
        assert [rec.token_text(int(i)) for i in rec.topk_ids[p]] == [t for t, _ in row]
        assert rec.next_logprob[p] == pytest.approx(lp["token_logprobs"][p + 1], rel=1e-6)
    assert rec.next_rank.tolist() == [-1, 1, 1, 1, 1, -1]  # " capital" at -7.1 is below the row's two
    assert rec.extra["token_ids"] == "local" and rec.d_vocab == len(rec.vocab)


def test_a_completion_without_echo_starts_with_the_prompt_placeholder() -> None:
    response = load("openai_completions_echo")
    lp = response["choices"][0]["logprobs"]
    lp["token_logprobs"][0], lp["top_logprobs"][0] = -0.3, {"The": -0.3, "A": -1.9}
    rec = coilvis.from_logprobs(response)
    assert rec.tokens[0] == PROMPT_PLACEHOLDER and rec.tokens[1:] == tuple(lp["tokens"])
    assert [rec.token_text(int(i)) for i in rec.topk_ids[0]] == ["The", "A"]
    assert rec.next_rank[0] == 1 and rec.next_logprob[0] == pytest.approx(-0.3)


# ------------------------------------------------------------------------------ vLLM


def test_vllm_prompt_logprobs_keep_the_model_ids_and_ranks() -> None:
    response = load("vllm_completions_prompt_logprobs")
    choice = response["choices"][0]
    rec = coilvis.from_logprobs(response)
    assert rec.extra["served_format"] == "vllm" and rec.extra["token_ids"] == "model"
    assert rec.token_ids.tolist() == choice["prompt_token_ids"]
    assert rec.tokens[1:] == (" capital", " of", " France", " is", " Paris")
    assert rec.k == 2
    # the prompt token's rank as vLLM sent it, even outside the top-k (912)
    assert rec.next_rank.tolist() == [912, 1, 1, 1, 1, -1]
    assert rec.next_logprob[0] == pytest.approx(-8.61)
    assert rec.topk_ids[0].tolist() == [1176, 1888] and rec.topk_ids[4].tolist() == [12366, 279]
    assert rec.d_vocab > max(choice["prompt_token_ids"])


def test_vllm_chat_prompt_logprobs_sit_on_the_response() -> None:
    rec = coilvis.from_logprobs(load("vllm_chat_prompt_logprobs"))
    assert rec.token_ids.tolist() == [151644, 872, 198, 9707]
    assert rec.k == 3 and rec.next_rank.tolist() == [1, 1, 4187, -1]
    assert rec.tokens[1:] == ("user", "\n", "Hello")


def test_vllm_without_token_ids_finds_the_prompt_token_below_the_top_k() -> None:
    response = load("vllm_completions_prompt_logprobs")
    choice = response["choices"][0]
    del choice["prompt_token_ids"]
    # only row 1 has its token outside the top-k; the others cannot say which entry it is
    with pytest.raises(InconsistentLogprobsError, match="prompt_token_ids"):
        coilvis.from_logprobs(response)
    choice["prompt_logprobs"] = choice["prompt_logprobs"][:2]
    rec = coilvis.from_logprobs(response)
    assert rec.token_ids.tolist() == [-1, 6864] and rec.next_rank[0] == 912


# ------------------------------------------------------------------------------ refusals


def _chat(rows: list[list[tuple[str, float]]], tokens: list[tuple[str, float]]) -> dict[str, Any]:
    content = [
        {"token": t, "logprob": v, "bytes": None, "top_logprobs": [{"token": a, "logprob": b, "bytes": None} for a, b in row]}
        for (t, v), row in zip(tokens, rows)
    ]
    return {"model": "m", "choices": [{"index": 0, "logprobs": {"content": content}}]}


def test_a_response_without_logprobs_is_refused_by_name() -> None:
    response = load("openai_chat")
    response["choices"][0]["logprobs"] = None
    with pytest.raises(NoLogprobsError, match="has no logprobs"):
        coilvis.from_logprobs(response)
    with pytest.raises(NoLogprobsError, match="no choices"):
        coilvis.from_logprobs({"model": "m", "choices": []})


def test_rows_without_alternatives_name_top_logprobs() -> None:
    response = _chat([[], []], [("a", -0.1), ("b", -0.2)])
    with pytest.raises(NoLogprobsError, match="top_logprobs"):
        coilvis.from_logprobs(response)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda r: r["choices"][0]["logprobs"]["token_logprobs"].pop(), "expected as many of each"),
        (lambda r: r["choices"][0]["logprobs"]["top_logprobs"][2].update({" x": -0.01}), "sums to probability"),
        (lambda r: r["choices"][0]["logprobs"]["top_logprobs"][2].update({" of": -0.5}), "has log-prob"),
        (lambda r: r["choices"][0]["logprobs"]["token_logprobs"].__setitem__(1, -0.5), "above the row's lowest"),
        (lambda r: r["choices"][0]["logprobs"]["token_logprobs"].__setitem__(3, None), "only the first entry"),
        (lambda r: r["choices"][0]["logprobs"]["token_logprobs"].__setitem__(3, float("nan")), "not a log-probability"),
        (lambda r: r["choices"][0]["logprobs"]["token_logprobs"].__setitem__(3, 0.5), "not a log-probability"),
        (lambda r: r["choices"][0]["logprobs"]["token_logprobs"].__setitem__(3, "-1.9"), "expected a log-probability"),
    ],
    ids=["lengths", "sum-above-1", "own-token-disagrees", "token-above-its-row", "null-inside", "nan", "positive", "string"],
)
def test_inconsistent_legacy_rows_are_refused(change: Any, words: str) -> None:
    response = load("openai_completions_echo")
    change(response)
    with pytest.raises(InconsistentLogprobsError, match=words):
        coilvis.from_logprobs(response)


def test_vllm_ranks_against_their_values_are_refused() -> None:
    response = load("vllm_completions_prompt_logprobs")
    response["choices"][0]["prompt_logprobs"][2]["3363"]["logprob"] = -0.01
    with pytest.raises(InconsistentLogprobsError, match="rank 1 has log-prob"):
        coilvis.from_logprobs(response)


def test_not_a_response_is_a_type_error() -> None:
    for bad in (None, "text", 3, [1, 2]):
        with pytest.raises(CoilvisTypeError, match="response"):
            coilvis.from_logprobs(bad)
    with pytest.raises(CoilvisTypeError, match="model_name"):
        coilvis.from_logprobs(load("openai_chat"), model_name=3)


def test_every_refusal_is_a_coilvis_error_and_a_value_error() -> None:
    for cls in (NoLogprobsError, InconsistentLogprobsError):
        assert issubclass(cls, CoilvisError) and issubclass(cls, ValueError)


# ------------------------------------------------------------------------------ top-k and conventions


def test_infer_k_sees_the_own_token_appended_below_the_top_k() -> None:
    e = lambda t, v: Entry(t, v)
    rows = [[e("a", -0.1), e("b", -2.0), e("x", -9.0)], [e("c", -0.2), e("d", -1.5)], None]
    assert infer_k(rows, ["x", "c", None]) == 2  # row 1 lists its own token inside: k = 2
    assert infer_k([rows[0], [e("c", -0.2), e("d", -1.5), e("y", -8.0)]], ["x", "y"]) == 2  # all appended
    assert infer_k([[e("a", -0.1), e("b", -2.0)]], ["z"]) == 2  # OpenAI: the own token is not added
    with pytest.raises(NoLogprobsError):
        infer_k([[], None], ["a", "b"])


@st.composite
def distributions(draw: Any) -> tuple[np.ndarray, int, list[int]]:
    vocab = draw(st.integers(2, 12))
    logits = np.array(draw(st.lists(st.floats(-6, 6, allow_nan=False), min_size=vocab, max_size=vocab)))
    n = draw(st.integers(1, 6))
    k = draw(st.integers(1, vocab))
    tokens = draw(st.lists(st.integers(0, vocab - 1), min_size=n, max_size=n))
    return logits, k, tokens


@given(distributions())
def test_the_entropy_estimate_is_a_lower_bound_and_ranks_are_true(case: tuple[np.ndarray, int, list[int]]) -> None:
    logits, k, tokens = case
    logp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    order = np.argsort(-logp, kind="stable")
    row = [(f"t{i}", float(logp[i])) for i in order[:k]]
    response = _chat([row] * len(tokens), [(f"t{t}", float(logp[t])) for t in tokens])
    rec = coilvis.from_logprobs(response)
    full = float(-(np.exp(logp) * logp).sum())
    assert rec.entropy[0] <= full + 1e-4
    if k == len(logp):
        assert rec.entropy[0] == pytest.approx(full, abs=1e-4)
    # rows that all end with their own token may have had it appended (llama.cpp): then
    # one entry fewer is kept, and what is kept is a true top-k either way
    assert rec.k in (k, k - 1) and (rec.k == k or k >= 2)
    kept = np.sort(logp)[::-1][: rec.k]
    np.testing.assert_allclose(np.sort(rec.topk_logits[0])[::-1], kept, atol=1e-5)
    for p in range(1, len(tokens)):  # position p predicts generated token p
        t = tokens[p]
        true_rank = 1 + int((logp > logp[t]).sum())
        if true_rank <= rec.k and (np.abs(logp - logp[t]) > 1e-6).sum() == len(logp) - 1:
            assert rec.next_rank[p] == true_rank
        elif true_rank > rec.k:
            assert rec.next_rank[p] == -1 and rec.next_logprob[p] == pytest.approx(logp[t], abs=1e-5)


def test_a_served_record_saves_and_loads_whole(tmp_path: Path) -> None:
    rec = coilvis.from_logprobs(load("openai_chat"))
    back = coilvis.Record.load(rec.save(tmp_path / "served.coil"))
    assert back.tokens == rec.tokens and back.extra == rec.extra and is_topk_only(back)
    for field in ("token_ids", "topk_ids", "topk_logits", "topk_probs", "entropy", "next_logprob", "next_rank"):
        np.testing.assert_array_equal(getattr(back, field), getattr(rec, field))


def test_read_rows_names_the_format() -> None:
    assert read_rows(load("openai_chat")).fmt == "chat"
    assert read_rows(load("openai_completions_echo")).fmt == "completions"
    assert read_rows(copy.deepcopy(load("vllm_chat_prompt_logprobs"))).fmt == "vllm"


def test_alignment_hits_count_both_readings() -> None:
    legacy = read_legacy(load("openai_completions_echo")["choices"][0])
    assert alignment_hits(legacy, 2) == (4, 0)


# ------------------------------------------------------------------------------ llama-cpp-python, recorded


def test_llama_cpp_python_echo_rows_are_read_shifted_by_one() -> None:
    """Recorded: its echoed top_logprobs[j] predicts tokens[j + 1], token_logprobs[j] is
    tokens[j]'s own log-prob under that row (appended to it), row 0 is blanked, and the
    last generated token (",") is missing from tokens though it is in the text."""
    response = load("llama_completions_echo")
    lp = response["choices"][0]["logprobs"]
    assert response["choices"][0]["text"].endswith(" Paris,") and lp["tokens"][-1] == " Paris"
    for j in range(1, len(lp["tokens"])):  # every row holds its own token, at token_logprobs[j]
        assert lp["top_logprobs"][j][lp["tokens"][j]] == lp["token_logprobs"][j]
    rec = coilvis.from_logprobs(response)
    assert rec.extra["convention"] == "llama-cpp-python-echo" and rec.k == 5
    assert rec.tokens == tuple(lp["tokens"])
    # position 9 (" of") holds row 9: " Paris" first, at the value that row gives it
    assert rec.token_text(int(rec.topk_ids[9, 0])) == " Paris"
    assert rec.topk_logits[9, 0] == pytest.approx(lp["top_logprobs"][9][" Paris"], rel=1e-6)
    # the next token's log-prob comes from its row (" of" after " city"), never from the
    # misaligned token_logprobs (" of" repeating itself, about -9.7)
    assert rec.next_logprob[8] == pytest.approx(lp["top_logprobs"][8][" of"], rel=1e-6)
    assert lp["token_logprobs"][9] < -5 < rec.next_logprob[8]
    # the appended own tokens are not part of any top-k
    for p in range(1, rec.seq_len):
        assert len(rec.topk_ids[p]) == 5 and rec.topk_logits[p].min() >= sorted(lp["top_logprobs"][p].values())[-5] - 1e-6
    assert rec.extra["unknown_rows"] == [0]  # blanked by the server; coilvis.run_served asks for it again


def test_llama_echo_read_as_openai_is_refused_as_shifted() -> None:
    with pytest.raises(InconsistentLogprobsError, match="shifted against the tokens"):
        coilvis.from_logprobs(load("llama_completions_echo"), convention="openai")
    legacy = read_legacy(load("llama_completions_echo")["choices"][0])
    own, nxt = alignment_hits(legacy, 5)
    assert nxt > own + 4


def test_llama_generation_and_chat_rows_describe_their_own_tokens() -> None:
    rec = coilvis.from_logprobs(load("llama_completions"))
    assert rec.extra["convention"] == "openai" and rec.tokens == (PROMPT_PLACEHOLDER, " Paris", ",", " France", ".")
    assert rec.next_rank[:4].tolist() == [1, 1, 1, 1]  # greedy: every generated token was its row's first
    echo = coilvis.from_logprobs(load("llama_completions_echo"))
    np.testing.assert_allclose(rec.topk_logits[0], echo.topk_logits[9], atol=1e-6)  # after " of", either way
    chat = coilvis.from_logprobs(load("llama_chat"))
    content = load("llama_chat")["choices"][0]["logprobs"]["content"]
    assert chat.tokens[1:] == tuple(c["token"] for c in content) and chat.k == 5
    assert chat.next_rank[:-1].tolist() == [1] * len(content)


def test_llama_convention_is_a_named_choice() -> None:
    with pytest.raises(CoilvisTypeError, match="convention"):
        coilvis.from_logprobs(load("llama_completions_echo"), convention="shifted")
    with pytest.raises(InconsistentLogprobsError, match="echoed prompts only"):
        coilvis.from_logprobs(load("llama_completions"), convention="llama-cpp-python-echo")


def test_a_response_is_read_and_drawn_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, json; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import coilvis\n"
        f"rec = coilvis.from_logprobs(json.load(open({str(FIXTURES / 'llama_completions_echo.json')!r})))\n"
        f"coilvis.save(coilvis.page(rec), {str(tmp_path / 'page.html')!r})\n"
        "print(rec.seq_len, sorted(m for m in ('torch', 'transformers', 'openai') if sys.modules.get(m) is not None))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "11 []" and (tmp_path / "page.html").stat().st_size > 0


def test_records_with_ids_numbered_locally_are_not_compared() -> None:
    a = coilvis.from_logprobs(load("llama_completions_echo"))
    with pytest.raises(coilvis.CoilvisError, match="a: its server sent token texts, not ids"):
        coilvis.compare(a, a)
    with pytest.raises(coilvis.CoilvisError, match="b: its server sent token texts"):
        coilvis.compare(coilvis.from_logprobs(load("vllm_completions_prompt_logprobs")), a)
