"""run(remote=...): one nnsight trace reduces everything where the model is, and its Record equals the plain run's.

NDIF cannot be reached from a test, so the very trace ``remote=True`` sends is run
here: with nnsight's ``remote=False`` (executed in this process) and ``remote="local"``
(serialised as for NDIF, rebuilt with coilvis unimportable, then run here).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from ties import assert_ranks_tie_equal, assert_topk_ids_agree, assert_topk_tie_equal

import coilvis
from coilvis import lens_kernel, stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.models import hf, resolve_model
from coilvis.models.anatomy import decoder_for
from coilvis.models.nnsight_trace import (
    full_bytes,
    plan_trace,
    position_stats,
    prune_pattern,
    returned_bytes,
    row_stats,
    trace_stats,
)
from coilvis.record import next_ids_of
from coilvis.runner import remote as runner_remote
from coilvis.runner.prompt import encode_prompt

PROMPT = "Hello the world and the end\n"


def _wrap(model: Any, tokenizer: Any, cls: str = "LanguageModel") -> Any:
    nnsight = pytest.importorskip("nnsight")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LanguageModel is deprecated in favour of TransformersModel
        if cls == "LanguageModel":
            return nnsight.LanguageModel(model, tokenizer=tokenizer)
        return nnsight.TransformersModel(model, tokenizer=tokenizer, task="text-generation")


def _traced(lm: Any, prompt: str, *, execution: bool | str, chunk_rows: int = 256, **opts: Any) -> coilvis.Record:
    """The trace run(remote=True) sends, executed as nnsight's ``remote=execution``."""
    loaded = resolve_model(lm)
    ids = encode_prompt(loaded, prompt, prepend_bos=None)
    options = {"k": 10, "attention": False, "attention_layers": None, "keys_per_query": 4, "min_weight": 0.01, "lens": False, "lens_k": 5, "lens_mid": False}
    options.update(opts)
    return runner_remote.run_traced(lm, loaded, ids, prompt=prompt, truncated=None, execution=execution, chunk_rows=chunk_rows, **options)


def _reference_rows(model: Any, ids: np.ndarray, *, mid: bool) -> list[torch.Tensor]:
    """Full-vocabulary float64 logits of every lens row of a plain forward pass (rows decoded by the model's head)."""
    logits, residuals, n_layers = hf.forward_for_record(model, torch.as_tensor(ids), residuals=True, mid=mid)
    decoder = decoder_for(model)
    with torch.no_grad():
        rows = [decoder(t).double() for name, t in residuals if name != str(n_layers - 1)]
    return rows + [logits.double()]


def assert_same_record(got: coilvis.Record, want: coilvis.Record, rows: list[torch.Tensor] | None = None) -> None:
    """Values to 1e-5; top-k ids and ranks up to near-ties (against ``rows``, the lens rows' full logits)."""
    np.testing.assert_array_equal(got.token_ids, want.token_ids)
    assert got.d_vocab == want.d_vocab and got.tokens == want.tokens
    for name in ("topk_logits", "topk_probs", "log_z", "entropy", "next_logprob"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-5, rtol=0, equal_nan=True, err_msg=name)
    assert_topk_ids_agree(got.topk_ids, want.topk_ids, want.topk_logits)
    if rows is not None:
        assert_ranks_tie_equal(got.next_rank, rows[-1], next_ids_of(got.token_ids))
    assert (got.lens is None) == (want.lens is None) and (got.attention is None) == (want.attention is None)
    if want.lens is not None:
        assert got.lens.layer_names == want.lens.layer_names
        for name in ("topk_probs", "entropy", "kl_to_final", "next_prob", "final_top_prob"):
            np.testing.assert_allclose(getattr(got.lens, name), getattr(want.lens, name), atol=1e-5, rtol=0, equal_nan=True, err_msg=f"lens.{name}")
        if rows is not None:
            final_top = got.lens.topk_ids[-1, :, 0]
            for r, values in enumerate(rows):
                assert_topk_tie_equal(got.lens.topk_ids[r], values)
                assert_ranks_tie_equal(got.lens.next_rank[r], values, next_ids_of(got.token_ids))
                assert_ranks_tie_equal(got.lens.final_top_rank[r], values, final_top)
    if want.attention is not None:
        a, b = got.attention, want.attention
        assert (a.n_layers, a.n_heads, a.top_k, a.min_weight) == (b.n_layers, b.n_heads, b.top_k, b.min_weight)
        for name in ("layer", "head", "query", "key"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"attention.{name}")
        np.testing.assert_allclose(a.weight, b.weight, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- the traced kernel


@st.composite
def _logits(draw: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    rows, vocab = draw(st.integers(1, 6)), draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, vocab, generator=g) * draw(st.sampled_from([0.1, 3.0, 30.0]))
    f = torch.randn(rows, vocab, generator=g) * 3.0
    if draw(st.booleans()):  # a masked vocabulary: -inf logits, never a whole row
        mask = torch.rand(rows, vocab, generator=g) < 0.3
        mask[:, 0] = False
        x = x.masked_fill(mask, float("-inf"))
    next_ids = torch.randint(0, vocab, (rows,), generator=g)
    next_ids[-1] = -1
    return x, f, next_ids, draw(st.integers(1, vocab))


@given(_logits())
def test_the_traced_position_statistics_are_coilvis_statistics(case: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]) -> None:
    x, _, next_ids, k = case
    finite = x.clamp(min=-1e30)  # the same order, for the tie-tolerant checks (which subtract values)
    want = stats.position_stats(x, k=k, next_ids=next_ids)
    got = position_stats(x, next_ids, k)
    for name in ("topk_logits", "topk_probs", "log_z", "entropy", "next_logprob"):
        np.testing.assert_allclose(got[name].numpy(), want[name], atol=1e-6, rtol=1e-6, equal_nan=True, err_msg=name)
    assert_topk_ids_agree(got["topk_ids"], want["topk_ids"], np.maximum(want["topk_logits"], -1e30))
    assert_ranks_tie_equal(got["next_rank"], finite, next_ids)


@given(_logits())
def test_the_traced_lens_statistics_are_the_lens_kernels(case: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]) -> None:
    x, f, next_ids, k = case
    finite = x.clamp(min=-1e30)
    kernel_final = lens_kernel.row_stats(
        f, k=1, next_ids=next_ids, final=None, n_groups=1, work=lens_kernel.Workspace(f.shape[1]), probs_out=torch.empty_like(f)
    )[1]
    want, _ = lens_kernel.row_stats(x, k=k, next_ids=next_ids, final=kernel_final, n_groups=1, work=lens_kernel.Workspace(x.shape[1]))
    compare = row_stats(f, next_ids, 1)["compare"]
    got = row_stats(x, next_ids, k, compare)
    known = (next_ids >= 0).numpy()
    for name in ("topk_probs", "log_z", "entropy", "kl_to_final", "final_top_prob", "next_prob"):
        g, w = got[name].numpy(), want[name].numpy()
        if name == "next_prob":
            assert np.isnan(g[~known]).all()
            g, w = g[known], w[known]
        np.testing.assert_allclose(g, w, atol=1e-6, rtol=1e-6, err_msg=name)
    # and they are what they say: KL(f || x), and f's top token's probability in x
    np.testing.assert_allclose(got["kl_to_final"].numpy(), stats.kl_divergence(f, x), atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(got["final_top_prob"].numpy(), torch.softmax(x, -1).gather(1, compare[2])[:, 0].numpy(), atol=1e-6)
    assert_topk_tie_equal(got["topk_ids"], finite)
    assert_ranks_tie_equal(got["next_rank"], finite, next_ids)
    assert_ranks_tie_equal(got["final_top_rank"], finite, compare[2][:, 0])


def test_pruned_patterns_are_the_links_prune_attention_keeps() -> None:
    g = torch.Generator().manual_seed(3)
    pattern = torch.softmax(torch.randn(1, 3, 9, 9, generator=g).masked_fill(torch.ones(9, 9).triu(1).bool(), float("-inf")), -1)
    got = prune_pattern((None, pattern), layer=4, top_k=3, min_weight=0.05)
    want = stats.prune_attention(pattern[0], top_k=3, min_weight=0.05)
    assert got["n_heads"] == 3 and got["layer"] == 4
    key = lambda d: sorted(zip(np.asarray(d["head"]).tolist(), np.asarray(d["query"]).tolist(), np.asarray(d["key"]).tolist()))
    assert key(got) == key(want)
    np.testing.assert_allclose(np.sort(got["weight"].numpy()), np.sort(want["weight"]), atol=1e-7)
    with pytest.raises(ValueError, match="attention: block 4 returned no attention pattern"):
        prune_pattern((pattern, None), layer=4, top_k=3, min_weight=0.0)


def test_full_bytes_count_every_avoided_float() -> None:
    assert full_bytes(seq_len=10, d_vocab=100, n_lens_rows=0, attention=(0, 0)) == 4 * 1000
    assert full_bytes(seq_len=10, d_vocab=100, n_lens_rows=3, attention=(2, 4)) == 4 * (4 * 1000 + 2 * 4 * 100)
    assert 0 < returned_bytes({"a": torch.zeros(10)}) < returned_bytes({"a": torch.zeros(1000)})


# --------------------------------------------------------------------------- the trace against the plain run


@pytest.mark.parametrize("execution", [False, "local"])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_the_trace_gives_the_plain_record(tiny_llama: Any, tiny_gpt2: Any, tiny_tokenizer: Any, family: str, execution: bool | str) -> None:
    model = tiny_llama if family == "llama" else tiny_gpt2
    opts = {"lens": True, "lens_mid": True, "attention": True, "k": 7, "lens_k": 4, "attention_top_k": 3}
    want = coilvis.run(PROMPT, (model, tiny_tokenizer), **opts)
    lm = _wrap(model, tiny_tokenizer)
    got = _traced(lm, PROMPT, execution=execution, k=7, lens=True, lens_mid=True, lens_k=4, attention=True, keys_per_query=3)
    assert_same_record(got, want, _reference_rows(model, want.token_ids, mid=True))
    assert got.lens.layer_names == ("embed", "0.mid", "0", "1.mid", "1")
    assert got.extra["adapter"] == "nnsight" and got.extra["remote"] == execution and got.extra["device"] == "cpu"


def test_run_remote_local_is_the_same_trace_serialised(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    lm = _wrap(tiny_llama, tiny_tokenizer, "TransformersModel")
    want = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True, attention=True, attention_layers=[-1], k=5)
    got = coilvis.run(PROMPT, lm, remote="local", lens=True, attention=True, attention_layers=[-1], k=5)
    assert_same_record(got, want, _reference_rows(tiny_llama, want.token_ids, mid=False))
    assert set(got.attention.layer.tolist()) == {1}
    # the model switched to eager attention for the pass only
    assert tiny_llama.config._attn_implementation == "eager"


def test_a_model_without_weights_here_runs_as_on_ndif(tiny_llama: Any, tiny_tokenizer: Any, tmp_path: Path) -> None:
    """As for NDIF, the client holds a weightless skeleton (the ``meta`` device): the trace is planned from it."""
    nnsight = pytest.importorskip("nnsight")
    tiny_llama.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = nnsight.LanguageModel(str(tmp_path), tokenizer=tiny_tokenizer, attn_implementation="eager")
    assert next(resolve_model(lm).model.parameters()).device.type == "meta"
    got = coilvis.run(PROMPT, lm, remote="local", lens=True, attention=True)
    want = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True, attention=True)
    assert_same_record(got, want, _reference_rows(tiny_llama, want.token_ids, mid=False))


def test_remote_false_still_runs_the_wrapped_model(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    lm = _wrap(tiny_llama, tiny_tokenizer)
    record = coilvis.run(PROMPT, lm, lens=True)
    assert record.extra["adapter"] == "transformers" and "remote" not in record.extra


def test_positions_chunked_inside_the_trace_change_nothing(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    lm = _wrap(tiny_llama, tiny_tokenizer)
    prompt = PROMPT * 2
    whole = _traced(lm, prompt, execution=False, lens=True, chunk_rows=1024)
    for chunk_rows in (1, 7):
        part = _traced(lm, prompt, execution=False, lens=True, chunk_rows=chunk_rows)
        assert_same_record(part, whole)


class _NoCoilvis:
    """A meta-path finder under which coilvis cannot be imported, as on an NDIF server."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "coilvis" or name.startswith("coilvis."):
            raise ModuleNotFoundError(f"No module named {name!r}")


@pytest.fixture
def server_without_coilvis(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """nnsight's ``remote="local"`` rebuilds the trace with coilvis unimportable (its
    editable install would otherwise still be found); yields how often that happened."""
    local = pytest.importorskip("nnsight.intervention.backends.local")
    backend = local.LocalSimulationBackend
    if not (hasattr(backend, "_hide_local_modules") and hasattr(backend, "_restore")):
        pytest.skip("this nnsight has no local simulation backend to hide modules in")
    hide, restore = backend._hide_local_modules, backend._restore
    calls: list[int] = []

    def hide_coilvis(self: Any) -> dict:
        hidden = hide(self)
        for name in [n for n in sys.modules if n == "coilvis" or n.startswith("coilvis.")]:
            hidden["modules"][name] = sys.modules.pop(name)
        sys.meta_path.insert(0, _NoCoilvis())
        calls.append(1)
        return hidden

    def restore_all(self: Any, hidden: dict) -> None:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _NoCoilvis)]
        restore(self, hidden)

    monkeypatch.setattr(backend, "_hide_local_modules", hide_coilvis)
    monkeypatch.setattr(backend, "_restore", restore_all)
    yield calls


def test_the_serialised_trace_needs_no_coilvis_on_the_server(
    tiny_llama: Any, tiny_tokenizer: Any, server_without_coilvis: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    lm = _wrap(tiny_llama, tiny_tokenizer)
    want = _traced(lm, PROMPT, execution=False, lens=True, attention=True)
    got = _traced(lm, PROMPT, execution="local", lens=True, attention=True)
    assert server_without_coilvis == [1]
    assert_same_record(got, want)
    # what makes it work: the traced functions travel as source; by reference they cannot load there
    import contextlib

    from coilvis.models import nnsight_trace

    monkeypatch.setattr(nnsight_trace, "_shipped_by_value", lambda execution: contextlib.nullcontext())
    with pytest.raises(ModuleNotFoundError, match="coilvis"):
        _traced(lm, PROMPT, execution="local", lens=True)


# --------------------------------------------------------------------------- refusals


def test_remote_needs_an_nnsight_model(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(CoilvisTypeError, match="remote: .*nnsight"):
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), remote=True)
    with pytest.raises(CoilvisValueError, match="remote: expected True"):
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), remote="ndif")
    with pytest.raises(CoilvisTypeError, match="remote: expected True, False or 'local', got int"):
        coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), remote=1)
    assert runner_remote.check_remote(np.bool_(False), None) is False


def test_attention_without_patterns_on_the_server_is_refused_by_name(
    tiny_llama_sdpa: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On NDIF the model cannot be switched to eager attention: a fused kernel's missing pattern is named."""
    lm = _wrap(tiny_llama_sdpa, tiny_tokenizer)

    def here(*args: Any, **kwargs: Any) -> Any:  # NDIF's trace, run here (execution=True skips the eager switch)
        return trace_stats(*args, **{**kwargs, "execution": False})

    monkeypatch.setattr(runner_remote, "trace_stats", here)
    with pytest.raises(CoilvisValueError, match="attention: block 0 returned no attention pattern"):
        _traced(lm, PROMPT, execution=True, attention=True)
    record = _traced(lm, PROMPT, execution=True, lens=True)  # without attention it runs
    assert record.extra["device"] == "ndif" and record.attention is None


def test_nan_logits_are_refused_by_position(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    with torch.no_grad():
        tiny_llama.lm_head.weight[5] = float("nan")
    lm = _wrap(tiny_llama, tiny_tokenizer)
    with pytest.raises(CoilvisValueError, match=r"logits: NaN or infinite logits .* at position\(s\) 0, 1, 2"):
        _traced(lm, PROMPT, execution=False)


def test_a_head_that_does_not_make_the_logits_is_refused(tiny_gpt2: Any, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lm = _wrap(tiny_gpt2, tiny_tokenizer)
    plan = plan_trace(tiny_gpt2, lens_mid=False, attention=False)
    monkeypatch.setattr(runner_remote, "plan_trace", lambda *a, **kw: plan._replace(softcap=1.0))  # a soft-cap the model does not apply
    with pytest.raises(CoilvisValueError, match="does not reproduce the model's own logits"):
        _traced(lm, PROMPT, execution=False, lens=True)


# --------------------------------------------------------------------------- the default model


def _reference_stats(rows: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """(n_rows, seq_len) float64 log Z, entropy and KL to the last row of full logits."""
    logp = [torch.log_softmax(r, dim=-1) for r in rows]
    final = logp[-1]
    return {
        "log_z": np.stack([torch.logsumexp(r, dim=-1).numpy() for r in rows]),
        "entropy": np.stack([-(lp.exp() * lp).sum(-1).numpy() for lp in logp]),
        "kl_to_final": np.stack([(final.exp() * (final - lp)).sum(-1).numpy() for lp in logp]),
    }


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize("execution", [False, "local"])
def test_default_model_trace_equals_the_plain_run_and_returns_kilobytes(default_model: Any, execution: bool | str) -> None:
    model, tokenizer, _ = default_model
    prompt = "The Eiffel Tower is located in the city of Paris, which is the capital of France. The tower was"
    want = coilvis.run(prompt, default_model, lens=True, attention=True, attention_layers=[0, -1])
    lm = _wrap(model, tokenizer)
    got = _traced(lm, prompt, execution=execution, lens=True, attention=True, attention_layers=frozenset({0, 29}))
    rows = _reference_rows(model, want.token_ids, mid=False)
    assert_same_record(got, want, rows)
    # and both are float64 arithmetic to float32 rounding (sums of ~100-nat terms round at ~1e-5 relative)
    ref = _reference_stats(rows)
    np.testing.assert_allclose(got.log_z, ref["log_z"][-1], atol=1e-4, rtol=1e-6)
    for name in ("entropy", "kl_to_final"):
        np.testing.assert_allclose(getattr(got.lens, name), ref[name], atol=1e-4, rtol=3e-5, err_msg=name)
    paris = next(i for i, t in enumerate(got.token_ids.tolist()) if got.token_text(t) == " Paris")
    assert got.token_text(int(got.topk_ids[paris - 1, 0])) == got.token_text(int(got.lens.topk_ids[-1, paris - 1, 0])) == " Paris"
    sizes = got.extra["trace_bytes"]
    seq_len, n_rows = got.seq_len, got.lens.n_rows
    assert sizes["full"] == 4 * seq_len * 49152 * n_rows + 4 * 2 * 9 * seq_len * seq_len
    print(
        f"\n{seq_len} positions, {n_rows} lens rows, attention of 2 blocks: the trace returned {sizes['returned'] / 1e3:.0f} kB "
        f"instead of {sizes['full'] / 1e6:.0f} MB of float32 ({sizes['full'] / sizes['returned']:.0f}x less)"
    )
    assert sizes["returned"] * 500 < sizes["full"]
