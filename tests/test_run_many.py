"""Tests for coilvis.run_many: each Record equals its own coilvis.run, batched or not.

The tiny random Llama and GPT-2 of conftest run prompts of different lengths in batches
(right-padded, masked) and every statistic is compared with the single run: floats
within 1e-5, top-k ids and ranks up to near-ties (``k`` covers the whole vocabulary, so
the single run's sorted row is known), attention links all kept (``attention_top_k``
past the prompt's length, no minimum weight) and compared link by link. Hypothesis
draws prompt lists and batch sizes; bad input is refused before any model runs, naming
the prompt's index. A slow test does the same with the embedded default model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coilvis
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.models import LoadedModel, hf
from coilvis.record import Record
from coilvis.runner import many
from coilvis.runner.many import batches, run_many

#: Past the tiny models' vocabularies (263, GPT-2 padded to 269): every id is kept.
ALL = 1000
#: Float tolerance between a batched and a single run (float32).
ATOL = 1e-5
#: Keep every attention link, so the two runs' link sets are the same.
ALL_LINKS = {"attention_top_k": 256, "attention_min_weight": 0.0}
PROMPTS = [
    "Hello the world and the end\n",
    "a",
    "the and the and the and the, and then the end of all of it",
    "xyz abc",
    "The Eiffel Tower is in",
]


def loaded(model: Any, tokenizer: Any, name: str) -> LoadedModel:
    return LoadedModel(model, tokenizer, name)


def _full_rows(ids: np.ndarray, values: np.ndarray, d_vocab: int) -> np.ndarray:
    """(..., d_vocab) values from a top-k that holds every id."""
    assert ids.shape[-1] == d_vocab
    full = np.full((*ids.shape[:-1], d_vocab), np.nan)
    np.put_along_axis(full, ids.astype(np.int64), values.astype(np.float64), axis=-1)
    return full


def assert_ids_tie_equal(got: np.ndarray, ref_ids: np.ndarray, ref_values: np.ndarray, d_vocab: int) -> None:
    """``got`` top-k ids pick, in the reference's full rows, the reference's sorted values."""
    full = _full_rows(ref_ids, ref_values, d_vocab)
    picked = np.take_along_axis(full, got.astype(np.int64), axis=-1)
    np.testing.assert_allclose(picked, ref_values, atol=ATOL, rtol=0, err_msg="top-k ids differ beyond near-ties")


def assert_ranks_tie_equal(got: np.ndarray, want: np.ndarray, sorted_values: np.ndarray) -> None:
    """Ranks equal, or both pointing at near-equal values of the reference's sorted rows."""
    np.testing.assert_array_equal(got < 1, want < 1)
    rows = np.nonzero((got != want) & (want >= 1))
    for idx in zip(*rows):
        row = sorted_values[idx]
        assert abs(row[got[idx] - 1] - row[want[idx] - 1]) <= ATOL, (idx, got[idx], want[idx])


def assert_links_close(a: coilvis.AttentionLinks | None, b: coilvis.AttentionLinks | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    assert (a.n_layers, a.n_heads, a.top_k, a.min_weight) == (b.n_layers, b.n_heads, b.top_k, b.min_weight)

    def links(x: coilvis.AttentionLinks) -> dict[tuple[int, int, int, int], float]:
        return {(int(la), int(h), int(q), int(k)): float(w) for la, h, q, k, w in zip(x.layer, x.head, x.query, x.key, x.weight)}

    la, lb = links(a), links(b)
    assert la.keys() == lb.keys()
    np.testing.assert_allclose([la[key] for key in la], [lb[key] for key in la], atol=ATOL)


def assert_same_record(got: Record, want: Record) -> None:
    """``got`` (batched) equals ``want`` (a single run): floats within 1e-5, ids and ranks up to near-ties."""
    assert got.prompt == want.prompt and got.model_name == want.model_name and got.d_vocab == want.d_vocab
    np.testing.assert_array_equal(got.token_ids, want.token_ids)
    assert got.tokens == want.tokens
    for name in ("topk_logits", "topk_probs", "log_z", "entropy", "next_logprob"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=ATOL, rtol=ATOL, err_msg=name)
    assert_ids_tie_equal(got.topk_ids, want.topk_ids, want.topk_logits, want.d_vocab)
    assert_ranks_tie_equal(got.next_rank, want.next_rank, want.topk_logits)
    assert_links_close(got.attention, want.attention)
    assert (got.lens is None) == (want.lens is None)
    if got.lens is not None and want.lens is not None:
        g, w = got.lens, want.lens
        assert g.layer_names == w.layer_names
        for name in ("topk_probs", "entropy", "kl_to_final", "next_prob", "final_top_prob"):
            np.testing.assert_allclose(getattr(g, name), getattr(w, name), atol=ATOL, rtol=ATOL, err_msg=f"lens.{name}")
        assert_ids_tie_equal(g.topk_ids, w.topk_ids, w.topk_probs, want.d_vocab)
        assert_ranks_tie_equal(g.next_rank, w.next_rank, w.topk_probs)
        assert_ranks_tie_equal(g.final_top_rank, w.final_top_rank, w.topk_probs)
    keep = lambda extra: {k: v for k, v in extra.items() if k != "forward_s"}
    assert keep(got.extra) == keep(want.extra)


def single_runs(prompts: list[str], model: Any, **options: Any) -> list[Record]:
    return [coilvis.run(p, model, progress=False, **options) for p in prompts]


# ------------------------------------------------------------------ equality with run


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_each_record_equals_its_single_run(family: str, batch_size: int, request: pytest.FixtureRequest, tiny_tokenizer: Any) -> None:
    model = loaded(request.getfixturevalue(f"tiny_{family}"), tiny_tokenizer, family)
    options = {"k": ALL, "lens": True, "lens_k": ALL, "lens_mid": True, "attention": True, **ALL_LINKS}
    got = run_many(PROMPTS, model, batch_size=batch_size, progress=False, **options)
    assert [r.prompt for r in got] == PROMPTS
    lengths = {r.seq_len for r in got}
    assert len(lengths) >= 4  # prompts of different lengths share batches
    for g, w in zip(got, single_runs(PROMPTS, model, **options)):
        assert_same_record(g, w)


def test_default_options_equal_run_too(tiny_llama_sdpa: Any, tiny_tokenizer: Any) -> None:
    """An sdpa model (no attention kept), the default k: the batch's mask path agrees."""
    model = loaded(tiny_llama_sdpa, tiny_tokenizer, "sdpa")
    got = run_many(PROMPTS, model, batch_size=4, progress=False)
    for g, w in zip(got, single_runs(PROMPTS, model)):
        np.testing.assert_allclose(g.topk_probs, w.topk_probs, atol=ATOL)
        np.testing.assert_allclose(g.entropy, w.entropy, atol=ATOL)
        np.testing.assert_allclose(g.next_logprob, w.next_logprob, atol=ATOL)
        assert g.lens is None and g.attention is None and g.topk_ids.shape == w.topk_ids.shape


def test_attention_layers_and_pruning_follow_run(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    model = loaded(tiny_llama, tiny_tokenizer, "llama")
    options = {"attention": True, "attention_layers": -1, "attention_top_k": 256, "attention_min_weight": 0.05}
    got = run_many(PROMPTS[:3], model, batch_size=3, progress=False, **options)
    for g, w in zip(got, single_runs(PROMPTS[:3], model, **options)):
        assert g.attention is not None and set(g.attention.layer.tolist()) == {1}
        assert g.attention.weight.min() >= 0.05
        # a link near the threshold may be in one run only; every other one is in both
        wa = {(int(h), int(q), int(k)): float(x) for h, q, k, x in zip(g.attention.head, g.attention.query, g.attention.key, g.attention.weight)}
        wb = {(int(h), int(q), int(k)): float(x) for h, q, k, x in zip(w.attention.head, w.attention.query, w.attention.key, w.attention.weight)}
        for key in wa.keys() ^ wb.keys():
            assert abs(wa.get(key, wb.get(key, 0.0)) - 0.05) < 1e-4
        shared = sorted(wa.keys() & wb.keys())
        np.testing.assert_allclose([wa[key] for key in shared], [wb[key] for key in shared], atol=ATOL)


def test_truncation_and_bos_as_in_run(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    model = loaded(tiny_llama, tiny_tokenizer, "llama")
    long = "the and " * 200  # past the tiny Llama's 256 positions
    got = run_many([long, "Hello"], model, truncate="left", prepend_bos=True, progress=False, k=ALL)
    want = single_runs([long, "Hello"], model, truncate="left", prepend_bos=True, k=ALL)
    assert got[0].extra["truncated"] == want[0].extra["truncated"] and got[0].seq_len == 256
    assert got[1].token_ids[0] == tiny_tokenizer.bos_token_id
    for g, w in zip(got, want):
        assert_same_record(g, w)


@settings(max_examples=12)
@given(
    prompts=st.lists(st.text(alphabet="the and Hello world,.\n", min_size=1, max_size=40), min_size=1, max_size=6),
    batch_size=st.integers(1, 4),
    max_batch_tokens=st.sampled_from([1, 16, 2048]),
)
def test_any_prompt_list_gives_the_single_runs(_tiny_llama_eager: Any, tiny_tokenizer: Any, prompts: list[str], batch_size: int, max_batch_tokens: int) -> None:
    model = loaded(_tiny_llama_eager, tiny_tokenizer, "llama")
    options = {"k": ALL, "lens": True, "lens_k": ALL, "attention": True, **ALL_LINKS}
    got = run_many(prompts, model, batch_size=batch_size, max_batch_tokens=max_batch_tokens, progress=False, **options)
    assert len(got) == len(prompts)
    for g, w in zip(got, single_runs(prompts, model, **options)):
        assert_same_record(g, w)


# ------------------------------------------------------------------ batches, passes, progress


@given(lengths=st.lists(st.integers(1, 300), max_size=30), batch_size=st.integers(1, 9), budget=st.integers(1, 2000))
def test_batches_cover_every_prompt_once_within_the_limits(lengths: list[int], batch_size: int, budget: int) -> None:
    groups = batches(lengths, batch_size=batch_size, max_batch_tokens=budget)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert 1 <= len(g) <= batch_size
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= budget
        assert [lengths[i] for i in g] == sorted((lengths[i] for i in g), reverse=True)


def test_one_forward_pass_per_batch_and_progress_per_prompt(tiny_llama: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = loaded(tiny_llama, tiny_tokenizer, "llama")
    sizes: list[int] = []
    real = hf.forward_batch_for_record

    def counting(m: Any, batch_ids: Any, **kw: Any) -> Any:
        sizes.append(len(batch_ids))
        return real(m, batch_ids, **kw)

    monkeypatch.setattr(hf, "forward_batch_for_record", counting)
    calls: list[tuple[int, int]] = []
    run_many(PROMPTS, model, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert sizes == [2, 2, 1]
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_a_progress_bar_over_batches(tiny_llama: Any, tiny_tokenizer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run_many(PROMPTS, loaded(tiny_llama, tiny_tokenizer, "llama"), batch_size=2, progress=True)
    assert "coilvis run_many" in capsys.readouterr().err
    run_many(PROMPTS[:2], loaded(tiny_llama, tiny_tokenizer, "llama"), batch_size=2)  # one batch: no bar by default
    assert capsys.readouterr().err == ""


def test_transformer_lens_models_run_one_by_one(tiny_llama: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = loaded(tiny_llama, tiny_tokenizer, "llama")
    monkeypatch.setattr(many, "is_transformer_lens", lambda m: True)
    monkeypatch.setattr(hf, "forward_batch_for_record", lambda *a, **kw: pytest.fail("no batched pass for TransformerLens"))
    seen: list[str] = []
    real_run = many.run
    monkeypatch.setattr(many, "run", lambda prompt, m, **kw: seen.append(prompt) or real_run(prompt, m, **kw))
    got = run_many(PROMPTS[:3], model, k=ALL, lens=True, progress=False)
    assert seen == PROMPTS[:3] and [r.prompt for r in got] == PROMPTS[:3]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("prompts", "options", "error", "words"),
    [
        ("one prompt", {}, CoilvisTypeError, "prompts: expected a list of str, got str"),
        (["a", 3], {}, CoilvisTypeError, "prompts[1]: expected a str, got int"),
        (["a", "b", ""], {}, CoilvisValueError, "prompts[2]: is empty"),
        (["a"], {"batch_size": 0}, CoilvisValueError, "batch_size"),
        (["a"], {"batch_size": 2.5}, CoilvisTypeError, "batch_size"),
        (["a"], {"max_batch_tokens": 0}, CoilvisValueError, "max_batch_tokens"),
        (["a"], {"k": 0}, CoilvisValueError, "k"),
        (["a"], {"attention_layers": 0}, CoilvisValueError, "attention_layers: given, but attention is off"),
        (["a"], {"attention": True, "attention_layers": 5}, CoilvisValueError, "attention_layers: layer 5 does not exist"),
        (["a"], {"lens": "yes"}, CoilvisTypeError, "lens"),
        (["a"], {"truncate": "middle"}, CoilvisValueError, "truncate"),
        (["a"], {"progress": 3}, CoilvisTypeError, "progress"),
        (["a", "the and " * 200], {}, CoilvisValueError, "prompts[1]: 402 tokens, but llama takes at most 256"),
    ],
)
def test_bad_input_is_refused_before_the_model_runs(
    tiny_llama: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch, prompts: Any, options: dict[str, Any], error: type[Exception], words: str
) -> None:
    monkeypatch.setattr(hf, "forward_batch_for_record", lambda *a, **kw: pytest.fail("the model ran"))
    with pytest.raises(error) as info:
        run_many(prompts, loaded(tiny_llama, tiny_tokenizer, "llama"), **{"progress": False, **options})
    assert words in str(info.value)


def test_no_prompts_give_no_records_without_a_model() -> None:
    assert run_many([], "/no/such/model") == []


def test_run_many_is_public() -> None:
    assert coilvis.run_many is run_many
    assert "run_many" in coilvis.__all__


# ------------------------------------------------------------------ the default model (slow)


@pytest.mark.slow
@pytest.mark.model
def test_default_model_batched_equals_single_runs(default_model: Any) -> None:
    prompts = ["The Eiffel Tower is located in the city of", "1, 2, 3, 4,", "Hello", "def add(a, b):\n    return"]
    options = {"lens": True, "attention": True, **ALL_LINKS}
    got = run_many(prompts, default_model, batch_size=4, progress=False, **options)
    for g, w in zip(got, single_runs(prompts, default_model, **options)):
        # probabilities within 1e-5; logits, log Z, entropy and KL (up to 110 nats) within 1e-5 relative
        for name in ("topk_probs", "next_logprob"):
            np.testing.assert_allclose(getattr(g, name), getattr(w, name), atol=1e-5, rtol=0, err_msg=name)
        for name in ("topk_logits", "log_z", "entropy"):
            np.testing.assert_allclose(getattr(g, name), getattr(w, name), atol=1e-4, rtol=1e-5, err_msg=name)
        for name in ("topk_probs", "next_prob", "final_top_prob"):
            np.testing.assert_allclose(getattr(g.lens, name), getattr(w.lens, name), atol=1e-5, rtol=0, err_msg=name)
        for name in ("entropy", "kl_to_final"):
            np.testing.assert_allclose(getattr(g.lens, name), getattr(w.lens, name), atol=1e-4, rtol=1e-5, err_msg=name)
        assert_links_close(g.attention, w.attention)
        clear = w.topk_probs[:, 0] - w.topk_probs[:, 1] > 1e-3
        np.testing.assert_array_equal(g.topk_ids[clear, 0], w.topk_ids[clear, 0])
        assert g.seq_len == w.seq_len and g.tokens == w.tokens
