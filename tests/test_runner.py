"""Tests for coilvis.runner: ``run`` on tiny random transformers models (statistics and
attention links checked against the model's own outputs) and ``from_logits``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import coilvis
from coilvis import stats
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.models import LoadedModel
from coilvis.record import HEAD_MAX, HEAD_MEAN, Record
from conftest import GPT2_VOCAB_PADDING, PROMPT
from tests.ties import assert_ranks_tie_equal, assert_topk_tie_equal


def prompt_ids(tokenizer: Any, prompt: str = PROMPT) -> torch.Tensor:
    return torch.tensor(tokenizer(prompt)["input_ids"])


def direct_logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids[None]).logits[0]


def direct_attentions(model: Any, ids: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's (n_heads, seq_len, seq_len) pattern from ``output_attentions``."""
    with torch.no_grad():
        out = model(ids[None], output_attentions=True)
    return [a[0].float() for a in out.attentions]


def assert_record_matches_logits(record: Record, ids: torch.Tensor, logits: torch.Tensor, *, k: int) -> None:
    """The record's per-position statistics equal torch's, computed from the logits."""
    x = logits.float()
    n = ids.shape[0]
    assert record.token_ids.tolist() == ids.tolist()
    assert record.seq_len == n and record.k == k and record.d_vocab == x.shape[-1]
    top = torch.topk(x, k, dim=-1)
    # the record comes from another forward pass (other kernels): orders up to near-ties
    assert_topk_tie_equal(record.topk_ids, x, atol=1e-5)
    np.testing.assert_allclose(record.topk_logits, top.values.numpy(), atol=1e-5)
    np.testing.assert_allclose(record.topk_probs, torch.softmax(x, -1).gather(1, torch.as_tensor(record.topk_ids)).numpy(), atol=1e-5)
    np.testing.assert_allclose(record.entropy, torch.distributions.Categorical(logits=x).entropy().numpy(), atol=1e-5)
    np.testing.assert_allclose(record.log_z, torch.logsumexp(x, -1).numpy(), atol=1e-5)
    logp = torch.log_softmax(x, -1)
    nxt = ids[1:]
    np.testing.assert_allclose(record.next_logprob[:-1], logp[torch.arange(n - 1), nxt].numpy(), atol=1e-5)
    assert_ranks_tie_equal(record.next_rank[:-1], x[:-1], nxt, atol=1e-5)
    assert np.isnan(record.next_logprob[-1]) and record.next_rank[-1] == -1


def assert_links_match_patterns(record: Record, patterns: list[torch.Tensor], *, top_k: int, min_weight: float) -> None:
    """Every (layer, head, query) keeps exactly the top keys of the true pattern."""
    links = record.attention
    assert links is not None
    n_heads = patterns[0].shape[0]
    assert links.n_layers == len(patterns) and links.n_heads == n_heads and links.top_k == top_k
    seq_len = patterns[0].shape[-1]
    for layer, pattern in enumerate(patterns):
        refs = {h: pattern[h] for h in range(n_heads)}
        refs[HEAD_MEAN] = pattern.mean(0)
        refs[HEAD_MAX] = pattern.amax(0)
        for head, ref in refs.items():
            query, key, weight = links.select(layer, head)
            for q in range(seq_len):
                w, kk = torch.topk(ref[q], min(top_k, q + 1))
                keep = (w >= min_weight) & (w > 0)
                sel = query == q
                assert key[sel].tolist() == kk[keep].tolist(), (layer, head, q)
                np.testing.assert_allclose(weight[sel], w[keep].numpy(), atol=1e-6)
    assert (links.key <= links.query).all()


# --------------------------------------------------------------------------- run: statistics


def test_run_matches_the_models_own_logits(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer))
    ids = prompt_ids(tiny_tokenizer)
    assert_record_matches_logits(record, ids, direct_logits(tiny_llama, ids), k=10)
    assert record.prompt == PROMPT
    assert record.attention is None and record.lens is None
    assert record.extra["adapter"] == "transformers" and record.extra["dtype"] == "float32"
    assert record.extra["device"] == "cpu" and record.extra["tokenizer_scheme"] == "byte_level"


def test_run_keeps_raw_token_text(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer))
    pieces = tiny_tokenizer.convert_ids_to_tokens(record.token_ids.tolist())
    assert "Ġthe" in pieces
    assert "".join(record.tokens) == PROMPT
    assert record.tokens[pieces.index("Ġthe")] == " the" and record.tokens[-1] == "\n"
    # every id the record mentions has its text
    assert set(record.token_ids.tolist()) | set(record.topk_ids.ravel().tolist()) <= set(record.vocab)
    assert record.table(k=3)["token"].tolist() == [record.vocab[i] for i in record.topk_ids[-1, :3]]


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(lambda m, t: dict(model=(m, t)), id="pair"),
        pytest.param(lambda m, t: dict(model=m, tokenizer=t), id="tokenizer-kwarg"),
        pytest.param(lambda m, t: dict(model=LoadedModel(m, t, "tiny")), id="loaded-model"),
    ],
)
def test_run_accepts_every_way_of_passing_a_model(how: Any, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, **how(tiny_llama, tiny_tokenizer), k=4)
    ids = prompt_ids(tiny_tokenizer)
    assert_record_matches_logits(record, ids, direct_logits(tiny_llama, ids), k=4)


def test_run_on_gpt2_with_a_padded_vocabulary(tiny_gpt2: Any, tiny_tokenizer: Any) -> None:
    n = len(tiny_tokenizer)
    padded = n + 2
    ids = prompt_ids(tiny_tokenizer)
    with torch.no_grad():  # make a padding row win everywhere (lm_head is tied to wte)
        hidden = tiny_gpt2.transformer(ids[None]).last_hidden_state[0].mean(0)
        tiny_gpt2.lm_head.weight[padded] = hidden / hidden.norm() * 5
    record = coilvis.run(PROMPT, (tiny_gpt2, tiny_tokenizer))
    assert record.d_vocab == n + GPT2_VOCAB_PADDING
    assert_record_matches_logits(record, ids, direct_logits(tiny_gpt2, ids), k=10)
    assert (record.topk_ids[:, 0] == padded).all()
    assert record.vocab[padded] == f"<id {padded}>"
    assert record.table()["token"].iloc[0] == f"<id {padded}>"


def test_run_prepend_bos(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    bos = tiny_tokenizer.bos_token_id
    with_bos = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), prepend_bos=True)
    plain = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer))
    assert with_bos.token_ids[0] == bos and with_bos.seq_len == plain.seq_len + 1
    assert with_bos.tokens[0] == tiny_tokenizer.bos_token
    assert coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), prepend_bos=False).token_ids.tolist() == plain.token_ids.tolist()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_run_on_16_bit_models(dtype: torch.dtype, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    model = tiny_llama.to(dtype)
    record = coilvis.run(PROMPT, (model, tiny_tokenizer), attention=True, attention_min_weight=0.0)
    ids = prompt_ids(tiny_tokenizer)
    logits = direct_logits(model, ids)
    assert logits.dtype == dtype
    assert_record_matches_logits(record, ids, logits, k=10)
    assert record.extra["dtype"] == str(dtype).replace("torch.", "")
    assert record.topk_probs.dtype == np.float32 and record.attention is not None
    assert record.attention.weight.dtype == np.float32
    assert_links_match_patterns(record, direct_attentions(model, ids), top_k=4, min_weight=0.0)


# --------------------------------------------------------------------------- run: attention


def test_attention_links_match_output_attentions(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_top_k=3, attention_min_weight=0.0)
    ids = prompt_ids(tiny_tokenizer)
    assert_links_match_patterns(record, direct_attentions(tiny_llama, ids), top_k=3, min_weight=0.0)
    assert record.attention is not None and record.attention.n_heads == 4 and record.attention.n_layers == 2
    # statistics unchanged by collecting attention
    assert_record_matches_logits(record, ids, direct_logits(tiny_llama, ids), k=10)


def test_attention_on_an_sdpa_model_switches_to_eager_and_back(tiny_llama_sdpa: Any, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, (tiny_llama_sdpa, tiny_tokenizer), attention=True, attention_min_weight=0.05)
    assert tiny_llama_sdpa.config._attn_implementation == "sdpa"
    assert all(
        getattr(getattr(m, "config", None), "_attn_implementation", "sdpa") == "sdpa" for m in tiny_llama_sdpa.modules()
    )
    ids = prompt_ids(tiny_tokenizer)
    # same weights as the eager fixture: its patterns are the reference
    assert_links_match_patterns(record, direct_attentions(tiny_llama, ids), top_k=4, min_weight=0.05)
    assert (record.attention.weight >= 0.05).all()  # type: ignore[union-attr]


def test_attention_on_gpt2(tiny_gpt2: Any, tiny_tokenizer: Any) -> None:
    tiny_gpt2.set_attn_implementation("sdpa")
    record = coilvis.run(PROMPT, (tiny_gpt2, tiny_tokenizer), attention=True, attention_top_k=2, attention_min_weight=0.0)
    assert tiny_gpt2.config._attn_implementation == "sdpa"
    tiny_gpt2.set_attn_implementation("eager")
    assert_links_match_patterns(record, direct_attentions(tiny_gpt2, prompt_ids(tiny_tokenizer)), top_k=2, min_weight=0.0)


def test_attention_layers_keeps_only_those_layers(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_layers=[1], attention_min_weight=0.0)
    links = record.attention
    assert links is not None and links.n_layers == 2
    assert set(links.layer.tolist()) == {1}
    full = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_min_weight=0.0).attention
    assert full is not None
    sel = full.layer == 1
    np.testing.assert_array_equal(links.weight, full.weight[sel])
    np.testing.assert_array_equal(links.key, full.key[sel])


def test_attention_keeps_links_not_the_dense_pattern(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    prompt = "the and " * 40
    record = coilvis.run(prompt, (tiny_llama, tiny_tokenizer), attention=True, attention_top_k=2, attention_min_weight=0.0)
    n = record.seq_len
    links = record.attention
    assert links is not None
    # per layer: (n_heads + mean + max) x queries x at most top_k keys
    assert links.n_links <= 2 * (4 + 2) * n * 2 < 2 * 4 * n * n


# --------------------------------------------------------------------------- run: bad input


@pytest.mark.parametrize(
    "prompt, error, words",
    [
        pytest.param("", CoilvisValueError, ["prompt", "empty"], id="empty"),
        pytest.param(123, CoilvisTypeError, ["prompt", "int"], id="int"),
        pytest.param(["a"], CoilvisTypeError, ["prompt", "list"], id="list"),
        pytest.param(b"bytes", CoilvisTypeError, ["prompt", "bytes"], id="bytes"),
        pytest.param(None, CoilvisTypeError, ["prompt", "NoneType"], id="none"),
    ],
)
def test_bad_prompt(prompt: Any, error: type, words: list[str], tiny_llama: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(error) as info:
        coilvis.run(prompt, (tiny_llama, tiny_tokenizer))
    for word in words:
        assert word in str(info.value)
    assert isinstance(info.value, CoilvisError)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        pytest.param({"k": 0}, CoilvisValueError, ["k", "0"], id="k-zero"),
        pytest.param({"k": "3"}, CoilvisTypeError, ["k", "str"], id="k-str"),
        pytest.param({"attention_top_k": 0}, CoilvisValueError, ["attention_top_k"], id="attention_top_k-zero"),
        pytest.param({"lens_k": 0}, CoilvisValueError, ["lens_k"], id="lens_k-zero"),
    ],
)
def test_bad_options(kwargs: dict, error: type, words: list[str], tiny_llama: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(error) as info:
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), **kwargs)
    for word in words:
        assert word in str(info.value)


def test_model_of_the_wrong_type() -> None:
    with pytest.raises(CoilvisTypeError, match="model: expected"):
        coilvis.run(PROMPT, 42)


def test_transformers_model_without_a_tokenizer(tiny_llama: Any) -> None:
    with pytest.raises(CoilvisTypeError, match="tokenizer"):
        coilvis.run(PROMPT, tiny_llama)


def test_prompt_that_tokenizes_to_nothing(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    class Silent:
        """Wraps the tiny tokenizer but encodes every text to no tokens."""

        def __getattr__(self, name: str) -> Any:
            return getattr(tiny_tokenizer, name)

        def __len__(self) -> int:
            return len(tiny_tokenizer)

        def __call__(self, text: str, **kwargs: Any) -> dict:
            return {"input_ids": []}

    with pytest.raises(CoilvisValueError, match="prompt: the tokenizer produced no tokens"):
        coilvis.run(PROMPT, (tiny_llama, Silent()))


# --------------------------------------------------------------------------- from_logits


def random_logits(seq_len: int, d_vocab: int, *, seed: int = 0) -> torch.Tensor:
    return torch.randn(seq_len, d_vocab, generator=torch.Generator().manual_seed(seed)) * 3


def test_from_logits_with_token_ids() -> None:
    logits = random_logits(6, 40)
    ids = torch.tensor([3, 9, 0, 39, 12, 5])
    vocab = [f"w{i}" for i in range(40)]
    record = coilvis.from_logits(logits, tokens=ids.tolist(), vocab=vocab, k=5, model_name="m", prompt="p")
    assert_record_matches_logits(record, ids, logits, k=5)
    assert record.tokens == tuple(f"w{i}" for i in ids.tolist())
    assert record.model_name == "m" and record.prompt == "p" and record.extra["adapter"] == "from_logits"


def test_from_logits_with_numpy_ids_and_16_bit_logits() -> None:
    logits = random_logits(4, 30).to(torch.bfloat16)
    ids = np.array([1, 2, 3, 4])
    record = coilvis.from_logits(logits, tokens=list(ids), k=3)
    assert_record_matches_logits(record, torch.as_tensor(ids), logits.float(), k=3)
    assert record.tokens == tuple(f"<id {i}>" for i in ids)


def test_from_logits_with_token_strings_found_in_the_vocabulary() -> None:
    logits = random_logits(3, 5)
    vocab = ["a", " b", "c", "\n", "c"]  # "c" twice, but no token needs it
    record = coilvis.from_logits(logits, tokens=[" b", "a", "\n"], vocab=vocab, k=2)
    assert record.token_ids.tolist() == [1, 0, 3]
    assert record.tokens == (" b", "a", "\n")
    assert_record_matches_logits(record, torch.tensor([1, 0, 3]), logits, k=2)


def test_from_logits_with_unknown_token_strings() -> None:
    logits = random_logits(3, 5)
    record = coilvis.from_logits(logits, tokens=["x", "a", "y"], vocab=["a", "b", "c", "d", "e"], k=2)
    assert record.token_ids.tolist() == [-1, 0, -1]
    assert record.tokens == ("x", "a", "y")
    # position 0 predicts "a" (known); position 1 predicts "y" (unknown)
    np.testing.assert_allclose(record.next_logprob[0], torch.log_softmax(logits[0], -1)[0].item(), atol=1e-5)
    assert np.isnan(record.next_logprob[1]) and record.next_rank[1] == -1


def test_from_logits_strings_without_a_vocabulary() -> None:
    record = coilvis.from_logits(random_logits(2, 4), tokens=["hello", " world"], k=2)
    assert record.tokens == ("hello", " world")
    assert record.token_ids.tolist() == [-1, -1]
    assert np.isnan(record.next_logprob).all()


def test_from_logits_without_tokens() -> None:
    logits = random_logits(3, 8)
    record = coilvis.from_logits(logits)
    assert record.tokens == ("[0]", "[1]", "[2]")
    assert record.token_ids.tolist() == [-1, -1, -1]
    assert record.k == 8  # the default k=10 keeps the whole small vocabulary
    np.testing.assert_allclose(record.entropy, torch.distributions.Categorical(logits=logits).entropy().numpy(), atol=1e-5)


def test_from_logits_with_a_tokenizer(tiny_tokenizer: Any) -> None:
    ids = prompt_ids(tiny_tokenizer)
    logits = random_logits(ids.shape[0], len(tiny_tokenizer) + 3)
    record = coilvis.from_logits(logits, tokens=ids.tolist(), vocab=tiny_tokenizer)
    assert "".join(record.tokens) == PROMPT
    assert_record_matches_logits(record, ids, logits, k=10)


@pytest.mark.parametrize("with_layers", [True, False], ids=["4d", "3d"])
def test_from_logits_with_attention(with_layers: bool) -> None:
    seq_len = 7
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(2, 3, seq_len, seq_len, generator=gen)
    mask = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
    patterns = torch.softmax(scores.masked_fill(mask, -torch.inf), -1)
    given_attention = patterns if with_layers else patterns[0]
    record = coilvis.from_logits(
        random_logits(seq_len, 20), attention=given_attention.numpy(), attention_top_k=2, attention_min_weight=0.1
    )
    used = list(patterns) if with_layers else [patterns[0]]
    assert_links_match_patterns(record, used, top_k=2, min_weight=0.1)
    links = record.attention
    assert links is not None and links.min_weight == 0.1
    for layer, pattern in enumerate(used):
        want = stats.prune_attention(pattern, top_k=2, min_weight=0.1)
        sel = links.layer == layer
        for name in ("head", "query", "key", "weight"):
            np.testing.assert_array_equal(getattr(links, name)[sel], want[name])


@pytest.mark.parametrize(
    "call, error, words",
    [
        pytest.param(lambda: coilvis.from_logits(torch.zeros(5)), CoilvisValueError, ["logits", "2-D", "(5,)"], id="1d-logits"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 3, 5)), CoilvisValueError, ["logits", "(2, 3, 5)"], id="3d-logits"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(0, 5)), CoilvisValueError, ["logits", "no positions"], id="no-positions"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), k=0), CoilvisValueError, ["k", "0"], id="k-zero"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), tokens=[1]), CoilvisValueError, ["tokens", "2", "1"], id="tokens-length"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), tokens=[1, 5]), CoilvisValueError, ["tokens", "5", "position 1"], id="token-id-too-big"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), tokens=[-1, 0]), CoilvisValueError, ["tokens", "-1"], id="token-id-negative"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), tokens=[1, "a"]), CoilvisTypeError, ["tokens"], id="tokens-mixed"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), tokens=[1.0, 2.0]), CoilvisTypeError, ["tokens"], id="tokens-float"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), vocab=["a"] * 6), CoilvisValueError, ["vocab", "6", "d_vocab=5"], id="vocab-too-big"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), attention=torch.zeros(1, 1, 3, 3)), CoilvisValueError, ["attention", "(1, 1, 3, 3)"], id="attention-shape"),
        pytest.param(lambda: coilvis.from_logits(torch.zeros(2, 5), attention=torch.zeros(2, 2)), CoilvisValueError, ["attention"], id="attention-2d"),
        pytest.param(lambda: coilvis.from_logits(torch.full((2, 5), float("nan"))), CoilvisValueError, ["logits", "NaN", "0, 1"], id="nan"),
    ],
)
def test_from_logits_bad_input(call: Any, error: type, words: list[str]) -> None:
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert isinstance(info.value, CoilvisError)



# --------------------------------------------------------------------------- run: bad input, checked before the forward pass


def count_forward_calls(model: Any) -> list[int]:
    """A list that grows by one each time the model's forward pass starts."""
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


@pytest.mark.parametrize(
    "layers, error, words",
    [
        pytest.param("1", CoilvisTypeError, ["attention_layers", "str"], id="str"),
        pytest.param("12", CoilvisTypeError, ["attention_layers", "str"], id="str-two-digits"),
        pytest.param([99], CoilvisValueError, ["attention_layers", "99", "2 layers"], id="too-big"),
        pytest.param([2], CoilvisValueError, ["attention_layers", "2", "2 layers"], id="just-too-big"),
        pytest.param([-3], CoilvisValueError, ["attention_layers", "-3", "2 layers"], id="too-negative"),
        pytest.param(99, CoilvisValueError, ["attention_layers", "99"], id="int-too-big"),
        pytest.param([1.0], CoilvisTypeError, ["attention_layers", "float"], id="float"),
        pytest.param([True], CoilvisTypeError, ["attention_layers", "bool"], id="bool-entry"),
        pytest.param(True, CoilvisTypeError, ["attention_layers", "bool"], id="bool"),
        pytest.param(1.5, CoilvisTypeError, ["attention_layers", "float"], id="float-scalar"),
        pytest.param({1: 2}, CoilvisTypeError, ["attention_layers", "dict"], id="dict"),
    ],
)
def test_bad_attention_layers_are_refused_before_the_forward_pass(
    layers: Any, error: type, words: list[str], tiny_llama: Any, tiny_tokenizer: Any
) -> None:
    calls = count_forward_calls(tiny_llama)
    with pytest.raises(error) as info:
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_layers=layers)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert str(info.value).startswith("attention_layers:")
    assert calls == []


@pytest.mark.parametrize("layers", [1, -1, [-1], np.int64(1), (1, 1), range(1, 2)], ids=["int", "negative-int", "negative-list", "numpy-int", "repeated", "range"])
def test_attention_layers_accepts_one_int_and_python_style_negative_indices(layers: Any, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    want = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_layers=[1], attention_min_weight=0.0).attention
    got = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_layers=layers, attention_min_weight=0.0).attention
    assert want is not None and got is not None
    assert set(got.layer.tolist()) == {1}
    np.testing.assert_array_equal(got.key, want.key)
    np.testing.assert_array_equal(got.weight, want.weight)


def test_attention_layers_without_attention_is_refused(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(CoilvisValueError, match="^attention_layers: .*attention=True"):
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention_layers=[1])


@pytest.mark.parametrize(
    "weight, error, words",
    [
        pytest.param("x", CoilvisTypeError, ["attention_min_weight", "str"], id="str"),
        pytest.param(2.0, CoilvisValueError, ["attention_min_weight", "2.0", "[0, 1]"], id="above-one"),
        pytest.param(-0.1, CoilvisValueError, ["attention_min_weight", "-0.1"], id="negative"),
        pytest.param(float("nan"), CoilvisValueError, ["attention_min_weight", "nan"], id="nan"),
        pytest.param(float("inf"), CoilvisValueError, ["attention_min_weight", "inf"], id="inf"),
        pytest.param(None, CoilvisTypeError, ["attention_min_weight", "NoneType"], id="none"),
        pytest.param(True, CoilvisTypeError, ["attention_min_weight", "bool"], id="bool"),
    ],
)
def test_bad_attention_min_weight(weight: Any, error: type, words: list[str], tiny_llama: Any, tiny_tokenizer: Any) -> None:
    calls = count_forward_calls(tiny_llama)
    with pytest.raises(error) as info:
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_min_weight=weight)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert calls == []
    with pytest.raises(error) as info:
        coilvis.from_logits(torch.zeros(2, 3), attention=torch.full((1, 2, 2), 0.5).tril(), attention_min_weight=weight)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("weight", [0, 1, 0.5, np.float32(0.25)], ids=["int-0", "int-1", "half", "numpy"])
def test_attention_min_weight_accepts_numbers_in_the_unit_interval(weight: Any, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    record = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True, attention_min_weight=weight)
    assert record.attention is not None and record.attention.min_weight == float(weight)
    assert (record.attention.weight >= float(weight)).all()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        pytest.param({"attention": "yes"}, ["attention", "str"], id="attention-str"),
        pytest.param({"lens": 1}, ["lens", "int"], id="lens-int"),
        pytest.param({"lens_mid": "no"}, ["lens_mid", "str"], id="lens_mid-str"),
        pytest.param({"prepend_bos": "no"}, ["prepend_bos", "str"], id="prepend_bos-str"),
        pytest.param({"progress": 0}, ["progress", "int"], id="progress-int"),
        pytest.param({"truncate": True}, ["truncate", "bool"], id="truncate-bool"),
        pytest.param({"truncate": "middle"}, ["truncate", "'middle'", "left", "right"], id="truncate-unknown"),
    ],
)
def test_bad_flags_are_refused_before_the_forward_pass(kwargs: dict, words: list[str], tiny_llama: Any, tiny_tokenizer: Any) -> None:
    calls = count_forward_calls(tiny_llama)
    with pytest.raises(CoilvisError) as info:
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert str(info.value).startswith(words[0] + ":")
    assert calls == []


LONG_PROMPT = "the " * 300  # 301 tokens of the tiny tokenizer; the tiny models have 256 positions


@pytest.mark.parametrize("fixture, config_key", [("tiny_llama", "max_position_embeddings"), ("tiny_gpt2", "n_positions")])
def test_a_prompt_longer_than_the_context_is_refused_before_the_forward_pass(
    fixture: str, config_key: str, request: pytest.FixtureRequest, tiny_tokenizer: Any
) -> None:
    model = request.getfixturevalue(fixture)
    calls = count_forward_calls(model)
    n = len(tiny_tokenizer(LONG_PROMPT)["input_ids"])
    assert n > 256
    with pytest.raises(CoilvisValueError) as info:
        coilvis.run(LONG_PROMPT, (model, tiny_tokenizer))
    message = str(info.value)
    assert message.startswith("prompt:") and f"{n} tokens" in message and "256" in message
    assert config_key in message and "truncate=" in message
    assert calls == []


def test_a_prompt_that_fills_the_context_exactly_runs(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    ids = prompt_ids(tiny_tokenizer, LONG_PROMPT)[:256]
    record = coilvis.run(tiny_tokenizer.decode(ids), (tiny_llama, tiny_tokenizer))
    assert record.seq_len == 256


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncate_keeps_the_context_from_one_side(side: str, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    prompt = "Hello " + LONG_PROMPT + "end"
    ids = prompt_ids(tiny_tokenizer, prompt)
    kept = ids[-256:] if side == "left" else ids[:256]
    record = coilvis.run(prompt, (tiny_llama, tiny_tokenizer), truncate=side)
    assert_record_matches_logits(record, kept, direct_logits(tiny_llama, kept), k=10)
    assert record.extra["truncated"] == {"side": side, "dropped_tokens": int(ids.shape[0]) - 256}
    assert record.prompt == prompt
    short = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), truncate=side)
    assert "truncated" not in short.extra and short.seq_len == prompt_ids(tiny_tokenizer).shape[0]


# --------------------------------------------------------------------------- from_logits: bad input and what TransformerLens users hold


def causal_patterns(n_layers: int, n_heads: int, seq_len: int, *, seed: int = 2) -> torch.Tensor:
    scores = torch.randn(n_layers, n_heads, seq_len, seq_len, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(mask, -torch.inf), -1)


def with_value(pattern: torch.Tensor, index: tuple[int, ...], value: float) -> torch.Tensor:
    out = pattern.clone()
    out[index] = value
    return out


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        pytest.param({"logits": [[1.0, 2.0], [1.0]]}, CoilvisValueError, ["logits", "ragged"], id="ragged-logits"),
        pytest.param({"logits": [[1.0, "a"], [1.0, 2.0]]}, CoilvisTypeError, ["logits"], id="logits-with-str"),
        pytest.param({"attention": "mean"}, CoilvisTypeError, ["attention", "str"], id="attention-str"),
        pytest.param({"attention": 0.5}, CoilvisTypeError, ["attention", "float"], id="attention-scalar"),
        pytest.param({"attention": [[[0.5, 0.0], [1.0]]]}, CoilvisValueError, ["attention", "ragged"], id="attention-ragged"),
        pytest.param({"attention": np.array([[["a", "b"], ["c", "d"]]])}, CoilvisTypeError, ["attention"], id="attention-str-array"),
        pytest.param({"attention": with_value(causal_patterns(2, 3, 4), (1, 2, 3, 1), float("nan"))}, CoilvisValueError, ["attention", "NaN", "layer 1", "head 2", "query 3"], id="attention-nan"),
        pytest.param({"attention": with_value(causal_patterns(2, 3, 4), (0, 1, 2, 0), 1.5)}, CoilvisValueError, ["attention", "[0, 1]", "1.5"], id="attention-above-one"),
        pytest.param({"attention": with_value(causal_patterns(2, 3, 4), (0, 1, 2, 0), -0.25)}, CoilvisValueError, ["attention", "[0, 1]", "-0.25"], id="attention-negative"),
        pytest.param({"attention": with_value(causal_patterns(2, 3, 4), (1, 0, 1, 3), 0.2)}, CoilvisValueError, ["attention", "key 3", "query 1", "later"], id="attention-to-a-later-key"),
        pytest.param({"attention": torch.ones(1, 4, 4)}, CoilvisValueError, ["attention", "later"], id="attention-bidirectional"),
        pytest.param({"attention": torch.zeros(1, 0, 4, 4)}, CoilvisValueError, ["attention", "head"], id="attention-no-heads"),
        pytest.param({"tokens": "abcd"}, CoilvisTypeError, ["tokens", "str"], id="tokens-bare-str"),
        pytest.param({"tokens": b"abcd"}, CoilvisTypeError, ["tokens", "bytes"], id="tokens-bytes"),
        pytest.param({"tokens": 4}, CoilvisTypeError, ["tokens", "int"], id="tokens-int"),
        pytest.param({"tokens": {0: 1, 1: 2, 2: 3, 3: 4}}, CoilvisTypeError, ["tokens", "dict"], id="tokens-dict"),
        pytest.param({"tokens": np.array([0.0, 1.0, 2.0, 3.0])}, CoilvisTypeError, ["tokens", "float"], id="tokens-float-array"),
        pytest.param({"tokens": torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])}, CoilvisValueError, ["tokens", "(2, 4)"], id="tokens-batch-of-two"),
        pytest.param({"tokens": ["a", "b", "c", "a"], "vocab": ["a", "b", "c", "a", "e"]}, CoilvisValueError, ["tokens", "'a'", "ids 0 and 3", "vocab"], id="duplicate-vocab-string"),
        pytest.param({"model_name": 123}, CoilvisTypeError, ["model_name", "int"], id="model_name-int"),
        pytest.param({"model_name": None}, CoilvisTypeError, ["model_name", "NoneType"], id="model_name-none"),
        pytest.param({"prompt": 5}, CoilvisTypeError, ["prompt", "int"], id="prompt-int"),
        pytest.param({"attention_top_k": 0}, CoilvisValueError, ["attention_top_k", "0"], id="attention_top_k-zero-without-attention"),
        pytest.param({"logits": torch.zeros(2, 4, 5)}, CoilvisValueError, ["logits", "(2, 4, 5)", "batch"], id="logits-batch-of-two"),
        pytest.param({"logits": torch.zeros(1, 1, 4, 5)}, CoilvisValueError, ["logits", "(1, 1, 4, 5)"], id="logits-4d"),
    ],
)
def test_from_logits_refuses_malformed_arguments(kwargs: dict, error: type, words: list[str]) -> None:
    call = {"logits": random_logits(4, 5), **kwargs}
    with pytest.raises(error) as info:
        coilvis.from_logits(call.pop("logits"), **call)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert str(info.value).startswith(words[0] + ":")
    assert isinstance(info.value, CoilvisError)


def test_from_logits_keeps_causal_patterns_with_masked_zeros_and_float_noise() -> None:
    patterns = causal_patterns(2, 3, 5)
    record = coilvis.from_logits(random_logits(5, 8), attention=patterns.to(torch.bfloat16), attention_min_weight=0.0)
    links = record.attention
    assert links is not None and (links.key <= links.query).all() and links.n_layers == 2
    assert ((links.weight >= 0) & (links.weight <= 1)).all()


def test_from_logits_accepts_what_a_transformer_lens_user_holds(tiny_tokenizer: Any) -> None:
    tokens = tiny_tokenizer(PROMPT, return_tensors="pt")["input_ids"]  # (1, seq_len), like model.to_tokens(...)
    assert isinstance(tokens, torch.Tensor) and tokens.dim() == 2 and tokens.shape[0] == 1
    seq_len = tokens.shape[1]
    logits = random_logits(seq_len, len(tiny_tokenizer) + 3)[None]  # (1, seq_len, d_vocab), like model(...)
    record = coilvis.from_logits(logits, tokens=tokens, vocab=tiny_tokenizer)
    assert "".join(record.tokens) == PROMPT
    assert_record_matches_logits(record, tokens[0], logits[0], k=10)
    from_numpy = coilvis.from_logits(logits.numpy(), tokens=tokens.numpy(), vocab=tiny_tokenizer)
    np.testing.assert_array_equal(from_numpy.token_ids, record.token_ids)
    np.testing.assert_array_equal(from_numpy.topk_ids, record.topk_ids)
    flat = coilvis.from_logits(logits[0], tokens=tokens[0], vocab=tiny_tokenizer)
    assert flat.token_ids.tolist() == tokens[0].tolist()
    # a cache's (batch of 1, n_heads, seq_len, seq_len) pattern of one layer reads as one layer
    pattern = causal_patterns(1, 2, seq_len)
    with_attention = coilvis.from_logits(logits, tokens=tokens, vocab=tiny_tokenizer, attention=pattern, attention_min_weight=0.0)
    assert_links_match_patterns(with_attention, [pattern[0]], top_k=4, min_weight=0.0)


def test_from_logits_accepts_a_str_array_of_tokens() -> None:
    record = coilvis.from_logits(random_logits(3, 5), tokens=np.array(["b", "a", "e"]), vocab=list("abcde"), k=2)
    assert record.token_ids.tolist() == [1, 0, 4] and record.tokens == ("b", "a", "e")


def test_progress_may_be_a_callable(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    """A callable progress= hears (rows done, rows in all) as the lens decodes, ending at the total."""
    calls: list[tuple[int, int]] = []
    record = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True, progress=lambda done, total: calls.append((done, total)))
    assert record.lens is not None
    total = record.lens.n_rows * record.seq_len
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    with pytest.raises(coilvis.CoilvisError, match="progress"):
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), progress="yes")


def test_on_forward_gets_the_record_before_its_lens(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    """``on_forward`` sees the forward pass's Record (everything but the lens) once,
    before the lens decodes its first row; without the lens it is not called."""
    events: list[Any] = []
    record = coilvis.run(
        PROMPT, (tiny_llama, tiny_tokenizer), lens=True, attention=True,
        on_forward=lambda early: events.append(early), progress=lambda done, total: events.append(done),
    )  # fmt: skip
    early = events[0]
    assert isinstance(early, Record) and all(isinstance(e, int) for e in events[1:]) and len(events) > 1
    assert early.lens is None and record.lens is not None
    assert early.tokens == record.tokens and early.prompt == record.prompt
    for name in ("topk_ids", "topk_probs", "entropy", "next_prob"):
        np.testing.assert_array_equal(getattr(early, name), getattr(record, name), err_msg=name)
    assert early.attention is not None and early.attention.n_layers == record.attention.n_layers
    coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), on_forward=lambda early: events.append("called"))
    assert "called" not in events
    with pytest.raises(CoilvisTypeError, match="on_forward"):
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True, on_forward="not a function")
