"""coilvis.compare on real models: exact values against torch references, the lens pair, alignment and bad input."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch

import coilvis
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.models.hf import forward_for_record

PROMPT_A = "Hello the world and the end\n"
PROMPT_B = "Hello the world and a end\n"  # one token differs
LN2 = math.log(2.0)


def ids_of(tokenizer: Any, text: str) -> torch.Tensor:
    return torch.as_tensor(tokenizer(text)["input_ids"], dtype=torch.int64)


def logits_of(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(ids[None]).logits[0].double()


def references(la: torch.Tensor, lb: torch.Tensor) -> dict[str, np.ndarray]:
    """KL both ways (torch.nn.functional.kl_div), JS and TV written out, float64."""
    pa_log, pb_log = la.log_softmax(-1), lb.log_softmax(-1)
    kl = torch.nn.functional.kl_div
    lm = torch.logaddexp(pa_log, pb_log) - LN2
    return {
        "kl_ab": kl(pb_log, pa_log, log_target=True, reduction="none").sum(-1).numpy(),
        "kl_ba": kl(pa_log, pb_log, log_target=True, reduction="none").sum(-1).numpy(),
        "js": (0.5 * kl(lm, pa_log, log_target=True, reduction="none").sum(-1) + 0.5 * kl(lm, pb_log, log_target=True, reduction="none").sum(-1)).numpy(),
        "tv": (0.5 * (pa_log.exp() - pb_log.exp()).abs().sum(-1)).numpy(),
    }


@pytest.fixture
def pair(tiny_llama: Any, tiny_tokenizer: Any) -> tuple[Any, Any]:
    ids_a, ids_b = ids_of(tiny_tokenizer, PROMPT_A), ids_of(tiny_tokenizer, PROMPT_B)
    assert ids_a.shape == ids_b.shape and bool((ids_a != ids_b).any())
    return tiny_llama, tiny_tokenizer


def test_two_prompts_match_torch_references(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    c = coilvis.compare(PROMPT_A, PROMPT_B, model=(model, tok), metric=(" the", " a"))
    ids_a, ids_b = ids_of(tok, PROMPT_A), ids_of(tok, PROMPT_B)
    la, lb = logits_of(model, ids_a), logits_of(model, ids_b)
    for name, want in references(la, lb).items():
        np.testing.assert_allclose(getattr(c, name), want, atol=1e-5, rtol=1e-5, err_msg=name)
    assert c.exact.all() and c.n_pos == ids_a.shape[0]
    assert c.differs.tolist() == (ids_a != ids_b).tolist()
    # the change in a's next token's log-prob
    lpa, lpb = la.log_softmax(-1), lb.log_softmax(-1)
    nxt = ids_a[1:]
    want = (lpb[:-1].gather(1, nxt[:, None]) - lpa[:-1].gather(1, nxt[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(c.delta_next_logprob[:-1], want, atol=1e-5)
    assert math.isnan(c.delta_next_logprob[-1])
    # metric: logit(" the") - logit(" a"), both runs
    the, a = tok(" the", add_special_tokens=False)["input_ids"][0], tok(" a", add_special_tokens=False)["input_ids"][0]
    np.testing.assert_allclose(c.metric_a, (la[:, the] - la[:, a]).numpy(), atol=1e-4)
    np.testing.assert_allclose(c.metric_b, (lb[:, the] - lb[:, a]).numpy(), atol=1e-4)
    assert c.metric is not None and c.metric.plus_text == (" the",)
    # the records are what run() gives
    ra = coilvis.run(PROMPT_A, (model, tok))
    np.testing.assert_allclose(c.a.entropy, ra.entropy, atol=1e-6)
    np.testing.assert_array_equal(c.a.token_ids, ra.token_ids)


def test_movers_are_the_largest_probability_changes(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    c = coilvis.compare(PROMPT_A, PROMPT_B, model=(model, tok), movers=5)
    pa = logits_of(model, ids_of(tok, PROMPT_A)).softmax(-1)
    pb = logits_of(model, ids_of(tok, PROMPT_B)).softmax(-1)
    change = (pb - pa).numpy()
    for pos in range(c.n_pos):
        rise = change[pos, c.rise_ids[pos]]
        fifth = np.sort(change[pos])[::-1][4]
        assert rise.min() >= fifth - 1e-6
        np.testing.assert_allclose(c.rise_prob_b[pos], pb[pos, c.rise_ids[pos]].numpy(), atol=1e-6)
        fall = change[pos, c.fall_ids[pos]]
        assert fall.max() <= np.sort(change[pos])[4] + 1e-6
    frame = c.movers(-1)
    assert frame["token"].tolist()[:5] == [c.token_text(int(i)) for i in c.rise_ids[-1]]


def test_identical_runs_compare_to_zero(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    c = coilvis.compare(PROMPT_A, PROMPT_A, model=(model, tok), lens=True)
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        assert np.abs(getattr(c, name)).max() <= 1e-6
        assert np.abs(getattr(c.lens, name)).max() <= 1e-6
    assert not c.differs.any()


def test_lens_pair_matches_each_runs_own_lens_and_references(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    c = coilvis.compare(PROMPT_A, PROMPT_B, model=(model, tok), lens=True, metric=(" the", " a"))
    assert c.lens is not None and c.lens.exact
    # each record's lens equals run(lens=True)
    for record, prompt in ((c.a, PROMPT_A), (c.b, PROMPT_B)):
        own = coilvis.run(prompt, (model, tok), lens=True)
        for name in ("entropy", "kl_to_final", "topk_probs", "next_prob"):
            np.testing.assert_allclose(getattr(record.lens, name), getattr(own.lens, name), atol=1e-5, equal_nan=True, err_msg=name)
    # the final row equals the per-position values
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        np.testing.assert_allclose(getattr(c.lens, name)[-1], getattr(c, name), atol=1e-6, err_msg=name)
    np.testing.assert_allclose(c.lens.metric_a[-1], c.metric_a, atol=1e-5)
    # a middle layer against a reference decoded by hand
    _, res_a, _ = forward_for_record(model, ids_of(tok, PROMPT_A), residuals=True)
    _, res_b, _ = forward_for_record(model, ids_of(tok, PROMPT_B), residuals=True)
    assert res_a is not None and res_b is not None
    row = c.lens.layer_names.index("0")
    with torch.inference_mode():
        head = model.get_output_embeddings()
        xa = head(model.model.norm(dict(res_a)["0"])).double()
        xb = head(model.model.norm(dict(res_b)["0"])).double()
    for name, want in references(xa, xb).items():
        np.testing.assert_allclose(getattr(c.lens, name)[row], want, atol=1e-5, err_msg=name)


def test_one_prompt_two_models(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    tuned = copy.deepcopy(tiny_llama)
    with torch.no_grad():
        tuned.model.norm.weight.mul_(1.5)
    c = coilvis.compare(PROMPT_A, model=(tiny_llama, tiny_tokenizer), model_b=(tuned, tiny_tokenizer), lens=True)
    ids = ids_of(tiny_tokenizer, PROMPT_A)
    want = references(logits_of(tiny_llama, ids), logits_of(tuned, ids))
    for name in ("kl_ab", "js", "tv"):
        np.testing.assert_allclose(getattr(c, name), want[name], atol=1e-5, err_msg=name)
    assert c.js.max() > 1e-4 and not c.differs.any()
    assert c.a.prompt == c.b.prompt == PROMPT_A


def test_align_end_compares_the_last_positions(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    longer = "Oh, " + PROMPT_B
    n_a, n_b = ids_of(tok, PROMPT_A).shape[0], ids_of(tok, longer).shape[0]
    assert n_b > n_a
    c = coilvis.compare(PROMPT_A, longer, model=(model, tok), align="end", lens=True)
    assert (c.offset_a, c.offset_b, c.n_pos) == (0, n_b - n_a, n_a)
    assert c.b.seq_len == n_b and c.b.lens is not None and c.b.lens.entropy.shape[1] == n_b
    own = coilvis.run(longer, (model, tok), lens=True)
    np.testing.assert_allclose(c.b.lens.entropy, own.lens.entropy, atol=1e-5)


def test_different_lengths_fail_before_any_model_runs(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(CoilvisValueError) as err:
        coilvis.compare(PROMPT_A, "Oh, " + PROMPT_B, model=(model, tok))
    n_a, n_b = ids_of(tok, PROMPT_A).shape[0], ids_of(tok, "Oh, " + PROMPT_B).shape[0]
    text = str(err.value)
    assert str(n_a) in text and str(n_b) in text and "position 0" in text and "align='end'" in text
    assert calls == []


@pytest.mark.parametrize(
    "metric, error, words",
    [
        pytest.param((" the", " world and"), CoilvisValueError, ["' world and'", "not one token", "tokenizes as"], id="two-tokens"),
        pytest.param((" the",), CoilvisTypeError, ["metric", "two tokens"], id="one-side"),
        pytest.param("the", CoilvisTypeError, ["metric"], id="a-string"),
        pytest.param(((), " a"), CoilvisTypeError, ["metric", "first side"], id="empty-list"),
        pytest.param((" the", 10**9), CoilvisValueError, ["metric", "1000000000", "outside the vocabulary"], id="bad-id"),
        pytest.param((" the", ""), CoilvisValueError, ["metric", "empty string"], id="empty-string"),
    ],
)
def test_bad_metric_fails_before_any_model_runs(pair: tuple[Any, Any], metric: Any, error: type, words: list[str]) -> None:
    model, tok = pair
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(error) as err:
        coilvis.compare(PROMPT_A, PROMPT_B, model=(model, tok), metric=metric)
    for word in words:
        assert word in str(err.value)
    assert calls == []


def _other_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    vocab["<eos>"] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<eos>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>")


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        pytest.param({"b": None}, CoilvisValueError, ["b:", "model_b"], id="no-second-run"),
        pytest.param({"b": 3}, CoilvisTypeError, ["b:", "int"], id="b-not-a-prompt"),
        pytest.param({"b": ""}, CoilvisValueError, ["prompt", "empty"], id="empty-b"),
        pytest.param({"align": "start"}, CoilvisValueError, ["align", "'start'"], id="align"),
        pytest.param({"movers": 0}, CoilvisValueError, ["movers"], id="movers"),
        pytest.param({"lens": "yes"}, CoilvisTypeError, ["lens"], id="lens-flag"),
        pytest.param({"label_a": 5}, CoilvisTypeError, ["label_a"], id="label"),
    ],
)
def test_bad_arguments_are_named(pair: tuple[Any, Any], kwargs: dict[str, Any], error: type, words: list[str]) -> None:
    model, tok = pair
    call = {"b": PROMPT_B, **kwargs}
    with pytest.raises(error) as err:
        coilvis.compare(PROMPT_A, call.pop("b"), model=(model, tok), **call)
    assert isinstance(err.value, CoilvisError)
    for word in words:
        assert word in str(err.value)


def test_models_with_different_tokenizers_are_refused(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    other = _other_tokenizer()
    calls: list[int] = []
    tiny_llama.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(CoilvisValueError) as err:
        coilvis.compare(PROMPT_A, model=(tiny_llama, tiny_tokenizer), model_b=(copy.deepcopy(tiny_llama), other))
    assert "model_b" in str(err.value) and "tokenizer" in str(err.value)
    assert calls == []


def test_models_with_different_output_sizes_are_refused(tiny_llama: Any, tiny_gpt2: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(CoilvisValueError) as err:
        coilvis.compare(PROMPT_A, model=(tiny_llama, tiny_tokenizer), model_b=(tiny_gpt2, tiny_tokenizer))
    assert "model_b" in str(err.value) and "vocabular" in str(err.value)


def test_saved_records_compare_through_the_same_call(pair: tuple[Any, Any]) -> None:
    model, tok = pair
    ra = coilvis.run(PROMPT_A, (model, tok), k=300)  # k >= d_vocab: every token kept
    rb = coilvis.run(PROMPT_B, (model, tok), k=300)
    later = coilvis.compare(ra, rb)
    now = coilvis.compare(PROMPT_A, PROMPT_B, model=(model, tok))
    assert later.exact.all()
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        np.testing.assert_allclose(getattr(later, name), getattr(now, name), atol=1e-4, err_msg=name)
    small = coilvis.compare(coilvis.run(PROMPT_A, (model, tok), k=3), coilvis.run(PROMPT_B, (model, tok), k=3))
    assert not small.exact.any()
    assert np.all(small.js <= now.js + 1e-5) and np.all(small.tv <= now.tv + 1e-5)
    with pytest.raises(CoilvisValueError, match="model"):
        coilvis.compare(ra, rb, model=(model, tok))
    with pytest.raises(CoilvisTypeError, match="b:"):
        coilvis.compare(ra, PROMPT_B)


@pytest.mark.slow
@pytest.mark.model
def test_ioi_logit_difference_falls_when_the_name_changes(default_model: Any) -> None:
    """The indirect-object pair on the default model: replacing the first "Mary" removes
    the model's reason to answer " Mary", so the logit difference " Mary" - " John" at the
    last position falls; through the lens, the answer forms in the late layers."""
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupt = "When Alice and John went to the store, John gave a drink to"
    c = coilvis.compare(clean, corrupt, model=default_model, metric=(" Mary", " John"), lens=True)
    assert c.differs.sum() == 1 and c.exact.all()
    assert c.metric_a is not None and c.metric_b is not None and c.lens is not None
    assert c.metric_a[-1] > 2.0  # the clean run prefers " Mary" over " John"
    assert c.metric_b[-1] < c.metric_a[-1] - 2.0  # the corruption removes most of it
    assert c.js[-1] > 0.1
    movers = c.movers(-1)
    fell = movers[movers["direction"] == "fall"]
    assert fell["token"].iloc[0] == " Mary"
    assert c.lens.metric_a[-1, -1] == pytest.approx(float(c.metric_a[-1]), abs=1e-4)
    # early layers do not yet separate the names as the last layer does
    assert abs(c.lens.metric_a[1, -1]) < c.metric_a[-1]


@pytest.mark.slow
@pytest.mark.model
def test_the_fused_and_torch_kernels_agree_on_the_default_model(default_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lens cell of a real pair (a 49,152-token vocabulary, rows whose tails
    underflow) from the fused kernel equals the torch kernel's, and the final row equals
    float64 references."""
    pytest.importorskip("numba")
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupt = "When Alice and John went to the store, John gave a drink to"
    cells = {}
    for kernel in ("torch", "fused"):
        monkeypatch.setenv("COILVIS_PAIR_KERNEL", kernel)
        c = coilvis.compare(clean, corrupt, model=default_model, lens=True, progress=False)
        assert c.lens is not None
        cells[kernel] = {name: getattr(c.lens, name) for name in ("kl_ab", "kl_ba", "js", "tv")}
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        np.testing.assert_allclose(cells["fused"][name], cells["torch"][name], atol=1e-5, rtol=1e-4, err_msg=name)
    model, tok = default_model.model, default_model.tokenizer
    want = references(logits_of(model, ids_of(tok, clean)), logits_of(model, ids_of(tok, corrupt)))
    for name, values in want.items():
        np.testing.assert_allclose(cells["fused"][name][-1], values, atol=1e-5, rtol=1e-4, err_msg=name)
