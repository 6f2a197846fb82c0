"""Tests for coilvis.logit_lens, the lens engine: every lens row against an explicit full
decoding (torch references, tiny random models of several architectures), the final row
against the model's own logits, chunking and thread invariance, the decoder self-check,
the TransformerLens cache path against the transformers path, and clear errors. The
model anatomy the engine is fed by (decoders, residual layout, hooks) is tested in
tests/test_anatomy.py, the statistics kernel in tests/test_lens_kernel.py."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.logit_lens import compute_lens
from coilvis.models.anatomy import decoder_for
from coilvis.record import LensStats
from coilvis.runner import lens_from_tl_cache
from tests.ties import assert_ranks_tie_equal, assert_topk_tie_equal

transformers = pytest.importorskip("transformers")

SEQ_LEN = 12
K = 5
#: Final logit soft-capping of the tiny Gemma 2/3 models: small next to their logits,
#: so that forgetting it changes every logit (see test_softcap_is_not_a_no_op).
SOFTCAP = 2.0


# --------------------------------------------------------------------------- tiny models


def _config(arch: str, vocab_size: int) -> Any:
    """A tiny config per architecture; ``initializer_range`` large enough that logits
    spread over several nats (random models with the default 0.02 are near uniform)."""
    small = {"vocab_size": vocab_size, "initializer_range": 0.2}
    llama_like = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 64,
        **small,
    }
    if arch == "gpt2":
        return transformers.GPT2Config(n_layer=3, n_embd=32, n_head=2, n_positions=64, **small)
    if arch == "llama":
        return transformers.LlamaConfig(**llama_like)
    if arch == "qwen2":
        return transformers.Qwen2Config(**llama_like)
    if arch == "gemma":
        return transformers.GemmaConfig(head_dim=16, **llama_like)
    if arch == "gemma2":
        return transformers.Gemma2Config(head_dim=16, final_logit_softcapping=SOFTCAP, **llama_like)
    if arch == "gemma3_text":
        return transformers.Gemma3TextConfig(head_dim=16, final_logit_softcapping=SOFTCAP, **llama_like)
    raise AssertionError(arch)


def tiny_model(arch: str, vocab_size: int = 100, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(_config(arch, vocab_size), attn_implementation="eager")
    return model.eval()


#: arch -> (the final norm, found here by hand, per architecture; tied embeddings?)
EXPLICIT_NORM = {
    "gpt2": (lambda m: m.transformer.ln_f, True),
    "llama": (lambda m: m.model.norm, False),
    "qwen2": (lambda m: m.model.norm, False),
    "gemma": (lambda m: m.model.norm, True),
    "gemma2": (lambda m: m.model.norm, True),
    "gemma3_text": (lambda m: m.model.norm, True),
}
ARCHS = list(EXPLICIT_NORM)


@pytest.fixture(scope="module", params=ARCHS)
def arch_model(request: pytest.FixtureRequest) -> tuple[str, Any]:
    return request.param, tiny_model(request.param)


def input_ids(vocab_size: int = 100, seq_len: int = SEQ_LEN, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab_size, (seq_len,), generator=torch.Generator().manual_seed(seed))


def next_ids_of(ids: torch.Tensor) -> np.ndarray:
    return np.append(ids[1:].numpy(), -1)


def explicit_decode(arch: str, model: Any, resid: torch.Tensor) -> torch.Tensor:
    """Decode residuals the long way: the architecture's norm, the lm_head, the softcap."""
    norm, _ = EXPLICIT_NORM[arch]
    logits = model.lm_head(norm(model)(resid))
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return logits


def hf_decoded_rows(arch: str, model: Any, ids: torch.Tensor, *, mid: bool = False) -> list[torch.Tensor]:
    """Every lens row of a transformers model decoded the long way (the last row: its logits)."""
    from coilvis.models.hf import forward_for_record

    with torch.no_grad():
        logits, residuals, _ = forward_for_record(model, ids, residuals=True, mid=mid)
        assert residuals is not None
        return [explicit_decode(arch, model, t) for _, t in residuals[:-1]] + [logits]


def hidden_and_last_block(model: Any, ids: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """transformers' own hidden states, and the last block's output taken by a hook on
    the last layer (independent of coilvis's hooks)."""
    layers = model.transformer.h if hasattr(model, "transformer") else model.model.layers
    seen: dict[str, torch.Tensor] = {}

    def hook(mod: Any, args: Any, output: Any) -> None:
        seen["last"] = (output[0] if isinstance(output, tuple) else output)[0].detach().clone()

    handle = layers[-1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(input_ids=ids[None], output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()
    return out, seen["last"]


def reference_lens(rows: list[torch.Tensor], next_ids: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Every statistic from fully materialised float64 log-probabilities; the last row
    is the final one."""
    logps = [torch.log_softmax(r.double(), dim=-1) for r in rows]
    final = logps[-1]
    top_final = final.argmax(dim=-1, keepdim=True)
    known = torch.as_tensor(next_ids >= 0)
    safe = torch.as_tensor(np.maximum(next_ids, 0)).unsqueeze(1)
    out: dict[str, list[np.ndarray]] = {name: [] for name in ("topk_ids", "topk_probs", "entropy", "kl_to_final", "next_prob", "next_rank", "final_top_prob", "final_top_rank")}
    for logp in logps:
        v, i = torch.topk(logp, k, dim=-1)
        out["topk_ids"].append(i.numpy())
        out["topk_probs"].append(v.exp().numpy())
        out["entropy"].append(torch.distributions.Categorical(logits=logp).entropy().numpy())
        # KL(final || row) with torch's own definition: kl_div(input=log q, target=log p)
        kl = F.kl_div(logp, final, reduction="none", log_target=True)
        out["kl_to_final"].append(torch.where(final > -torch.inf, kl, 0.0).sum(-1).numpy())  # 0 log 0 = 0
        t = logp.gather(1, safe)
        out["next_prob"].append(torch.where(known, t.squeeze(1).exp(), torch.nan).numpy())
        out["next_rank"].append(torch.where(known, (logp > t).sum(-1), -1).numpy())
        f = logp.gather(1, top_final)
        out["final_top_prob"].append(f.squeeze(1).exp().numpy())
        out["final_top_rank"].append((logp > f).sum(-1).numpy())
    result = {name: np.stack(v) for name, v in out.items()}
    result["log_probs"] = torch.stack(logps).numpy()
    result["next_ids"] = np.asarray(next_ids)
    return result


def assert_lens_matches(
    lens: LensStats, ref: dict[str, np.ndarray], *, atol: float = 1e-4, rtol: float = 1e-4, ties: bool = False
) -> None:
    """Every statistic equal to the reference. Top-k ids and ranks are compared up to
    near-ties (two matmul kernels may order near-equal logits differently): the ids must
    pick the reference top-k values, and each rank must hold a value within ``atol`` of
    the token's. ``ties`` (16-bit decoding, where a logit may round to a neighbouring
    16-bit value) widens that tolerance to the probabilities' own."""
    assert lens.topk_ids.shape == ref["topk_ids"].shape
    logps = ref["log_probs"]
    rank_atol = 5e-2 if ties else atol
    assert_topk_tie_equal(lens.topk_ids, logps, atol=rank_atol)
    for name in ("topk_probs", "entropy", "kl_to_final", "next_prob", "final_top_prob"):
        np.testing.assert_allclose(getattr(lens, name), ref[name], atol=atol, rtol=rtol, err_msg=name)
    final_top = np.broadcast_to(lens.topk_ids[-1, :, 0], lens.final_top_rank.shape)
    for row, logp in enumerate(logps):
        assert_ranks_tie_equal(lens.next_rank[row], logp, ref["next_ids"], atol=rank_atol)
        assert_ranks_tie_equal(lens.final_top_rank[row], logp, final_top[row], atol=rank_atol)


def hf_lens(model: Any, ids: torch.Tensor, *, mid: bool = False, **kwargs: Any) -> tuple[LensStats, torch.Tensor, list[tuple[str, torch.Tensor]]]:
    from coilvis.models.hf import forward_for_record

    logits, residuals, _ = forward_for_record(model, ids, residuals=True, mid=mid)
    assert residuals is not None
    lens = compute_lens(model, residuals, logits=logits, next_ids=next_ids_of(ids), k=kwargs.pop("k", K), **kwargs)
    return lens, logits, residuals


# --------------------------------------------------------------------------- the final row


def test_final_row_equals_the_models_own_statistics(arch_model: tuple[str, Any]) -> None:
    _, model = arch_model
    ids = input_ids()
    lens, logits, _ = hf_lens(model, ids)
    n_layers = model.config.num_hidden_layers
    assert lens.layer_names == ("embed",) + tuple(str(i) for i in range(n_layers))
    want = stats.position_stats(logits, k=K, next_ids=next_ids_of(ids))
    assert_topk_tie_equal(lens.topk_ids[-1], logits)
    np.testing.assert_allclose(lens.topk_probs[-1], want["topk_probs"], atol=1e-5)
    np.testing.assert_allclose(lens.entropy[-1], want["entropy"], atol=1e-4)
    np.testing.assert_allclose(lens.next_prob[-1], np.exp(want["next_logprob"]), atol=1e-5)
    assert_ranks_tie_equal(lens.next_rank[-1], logits, next_ids_of(ids))
    np.testing.assert_array_equal(lens.kl_to_final[-1], 0.0)
    assert_ranks_tie_equal(lens.final_top_rank[-1], logits, lens.topk_ids[-1, :, 0])
    np.testing.assert_allclose(lens.final_top_prob[-1], want["topk_probs"][:, 0], atol=1e-6)


# --------------------------------------------------------------------------- every row


def test_every_row_matches_explicit_full_decoding(arch_model: tuple[str, Any]) -> None:
    arch, model = arch_model
    ids = input_ids(seed=2)
    lens, logits, residuals = hf_lens(model, ids)
    out, _ = hidden_and_last_block(model, ids)
    torch.testing.assert_close(logits, out.logits[0], atol=0, rtol=0)
    hidden = out.hidden_states
    n_layers = model.config.num_hidden_layers
    # the residuals are transformers' own hidden states (before the final norm)
    for i, (name, resid) in enumerate(residuals[:n_layers]):
        assert name == ("embed" if i == 0 else str(i - 1))
        torch.testing.assert_close(resid, hidden[i][0], atol=0, rtol=0)
    with torch.no_grad():
        rows = [explicit_decode(arch, model, hidden[i][0]) for i in range(n_layers)] + [out.logits[0]]
    assert_lens_matches(lens, reference_lens(rows, next_ids_of(ids), K))
    # a lens of a random model is not trivially the final row
    assert float(lens.kl_to_final[0].min()) > 1e-3


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_kl_matches_torch_kl_div_on_a_hand_made_head(layout: str) -> None:
    """Large, spread logits (KL of several nats) through a plain matrix head, whose
    output may be a non-contiguous view."""
    gen = torch.Generator().manual_seed(3)
    d_model, d_vocab, seq_len = 16, 300, 9
    w_u = torch.randn(d_vocab, d_model, generator=gen)
    resid = [(name, torch.randn(seq_len, d_model, generator=gen) * scale) for name, scale in (("embed", 0.3), ("0", 1.0), ("1", 3.0))]
    final = torch.randn(seq_len, d_model, generator=gen) @ w_u.T
    ids = torch.randint(0, d_vocab, (seq_len,), generator=gen)
    def decoder(x: torch.Tensor) -> torch.Tensor:
        return x @ w_u.T if layout == "contiguous" else (w_u @ x.T).T

    lens = compute_lens(None, resid, logits=final, next_ids=next_ids_of(ids), k=7, decoder=decoder)
    assert lens.layer_names == ("embed", "0", "1", "2")
    ref = reference_lens([r @ w_u.T for _, r in resid] + [final], next_ids_of(ids), 7)
    assert_lens_matches(lens, ref)
    assert float(ref["kl_to_final"][:-1].max()) > 5.0


#: (seq_len, chunk_rows): position chunks cut mid-prompt, several layers stacked per
#: matmul, statistics blocks that split a chunk's positions (more than 32 rows), and
#: prompts longer than a position chunk (256) with several layers per matmul.
CHUNK_CASES = [(12, 1), (12, 3), (12, 7), (12, 12), (12, 25), (12, 256), (70, 64), (70, 256), (70, 10_000), (300, 600), (300, 1024)]


@pytest.mark.parametrize(("seq_len", "chunk_rows"), CHUNK_CASES, ids=[f"pos{p}-rows{c}" for p, c in CHUNK_CASES])
def test_chunking_does_not_change_the_lens(seq_len: int, chunk_rows: int) -> None:
    arch = "gemma2"
    model = tiny_model(arch)
    ids = input_ids(seq_len=seq_len, seed=7)
    lens, logits, _ = hf_lens(model, ids, chunk_rows=chunk_rows)
    out, _ = hidden_and_last_block(model, ids)
    with torch.no_grad():
        rows = [explicit_decode(arch, model, h[0]) for h in out.hidden_states[:-1]] + [logits]
    assert_lens_matches(lens, reference_lens(rows, next_ids_of(ids), K))


@pytest.mark.parametrize("stats_threads", [None, 1, 2], ids=["auto", "one", "two"])
def test_thread_count_does_not_change_the_lens_and_is_restored(stats_threads: int | None) -> None:
    model = tiny_model("gemma2")
    ids = input_ids(seq_len=70)
    before = torch.get_num_threads()
    want, _, _ = hf_lens(model, ids, chunk_rows=64, stats_threads=1)
    got, logits, residuals = hf_lens(model, ids, chunk_rows=64, stats_threads=stats_threads)
    assert torch.get_num_threads() == before
    for name in ("topk_ids", "topk_probs", "entropy", "kl_to_final", "next_prob", "next_rank", "final_top_prob", "final_top_rank"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    broken = [(n, t.clone()) for n, t in residuals]
    broken[1][1][40, 0] = torch.nan
    with pytest.raises(CoilvisValueError, match="'0' decodes to NaN"):
        compute_lens(model, broken, logits=logits, k=K, chunk_rows=64, stats_threads=stats_threads)
    assert torch.get_num_threads() == before


def test_unknown_next_tokens_are_nan_and_minus_one() -> None:
    model = tiny_model("gpt2")
    ids = input_ids()
    lens, _, _ = hf_lens(model, ids)
    assert np.isnan(lens.next_prob[:, -1]).all() and (lens.next_rank[:, -1] == -1).all()
    assert np.isfinite(lens.next_prob[:, :-1]).all() and (lens.next_rank[:, :-1] >= 1).all()
    from coilvis.models.hf import forward_for_record

    logits, residuals, _ = forward_for_record(model, ids, residuals=True)
    none = compute_lens(model, residuals, logits=logits, next_ids=None, k=K)
    assert np.isnan(none.next_prob).all() and (none.next_rank == -1).all()
    np.testing.assert_array_equal(none.topk_ids, lens.topk_ids)


def test_a_one_token_prompt() -> None:
    model = tiny_model("llama")
    lens, _, _ = hf_lens(model, input_ids(seq_len=1))
    assert lens.topk_ids.shape == (model.config.num_hidden_layers + 1, 1, K)
    assert lens.next_rank.tolist() == [[-1]] * lens.n_rows


def test_masked_vocabulary_in_the_final_logits_gives_finite_statistics() -> None:
    gen = torch.Generator().manual_seed(4)
    w_u = torch.randn(50, 8, generator=gen)
    resid = [("embed", torch.randn(4, 8, generator=gen))]
    final = torch.randn(4, 8, generator=gen) @ w_u.T
    final[:, 40:] = -torch.inf
    lens = compute_lens(None, resid, logits=final, next_ids=[1, 2, 3, -1], k=3, decoder=lambda x: x @ w_u.T)
    ref = reference_lens([resid[0][1] @ w_u.T, final], np.array([1, 2, 3, -1]), 3)
    assert_lens_matches(lens, ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_16_bit_models_decode_in_their_dtype_and_report_float32(dtype: torch.dtype) -> None:
    model = tiny_model("gemma2").to(dtype)
    ids = input_ids()
    lens, logits, residuals = hf_lens(model, ids)  # the decoder check passes at 16-bit precision
    assert logits.dtype == dtype and lens.entropy.dtype == np.float32
    want = stats.position_stats(logits, k=K, next_ids=next_ids_of(ids))
    np.testing.assert_allclose(lens.topk_probs[-1], want["topk_probs"], atol=1e-5)
    np.testing.assert_allclose(lens.entropy[-1], want["entropy"], atol=1e-4)
    with torch.no_grad():
        rows = [explicit_decode("gemma2", model, t).float() for _, t in residuals[:-1]] + [logits.float()]
    # 16-bit logits differ by one 16-bit step between matmul kernels (~0.4 % of a logit)
    assert_lens_matches(lens, reference_lens(rows, next_ids_of(ids), K), atol=2e-3, rtol=2e-2, ties=True)
    assert_ranks_tie_equal(lens.next_rank[-1], logits, next_ids_of(ids), atol=5e-2)


def test_run_keeps_the_lens_with_mid_rows(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    from conftest import PROMPT

    import coilvis

    rec = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True, lens_k=3, lens_mid=True)
    assert rec.lens is not None
    n = tiny_llama.config.num_hidden_layers
    assert rec.lens.layer_names == ("embed",) + tuple(x for i in range(n) for x in (f"{i}.mid", str(i)))
    assert rec.lens.topk_ids.shape == (2 * n + 1, rec.seq_len, 3)
    # the final row and the record come from one logits tensor through one engine
    np.testing.assert_array_equal(rec.lens.topk_ids[-1], rec.topk_ids[:, :3])
    np.testing.assert_allclose(rec.lens.entropy[-1], rec.entropy, atol=1e-4)
    np.testing.assert_array_equal(rec.lens.next_rank[-1], rec.next_rank)
    assert set(np.unique(rec.lens.topk_ids).tolist()) <= set(rec.vocab)


def test_run_on_a_gpt2_with_a_padded_vocabulary(tiny_gpt2: Any, tiny_tokenizer: Any) -> None:
    from conftest import PROMPT

    import coilvis

    rec = coilvis.run(PROMPT, (tiny_gpt2, tiny_tokenizer), lens=True)
    assert rec.lens is not None and rec.lens.n_rows == tiny_gpt2.config.n_layer + 1
    np.testing.assert_allclose(rec.lens.next_prob[-1], rec.next_prob, atol=1e-5)


def test_coilvis_lens_stays_the_view_function_after_a_lens_run(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    import coilvis
    from conftest import PROMPT

    coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True)
    assert callable(coilvis.lens)


# --------------------------------------------------------------------------- errors


def test_a_decoder_that_does_not_reproduce_the_logits_is_refused() -> None:
    """A head that changes logits in a way coilvis does not apply (here: doubled)."""
    from coilvis.models.hf import forward_for_record

    model = tiny_model("llama")
    ids = input_ids()
    logits, residuals, n_layers = forward_for_record(model, ids, residuals=True)
    assert residuals is not None and residuals[-1][0] == str(n_layers - 1)
    with pytest.raises(CoilvisValueError, match="does not reproduce the model's own logits"):
        compute_lens(model, residuals, logits=logits * 2.0, next_ids=next_ids_of(ids))
    # without the last block's residual there is nothing to check against
    lens = compute_lens(model, residuals[:-1], logits=logits, next_ids=next_ids_of(ids))
    assert lens.layer_names[-1] == str(n_layers - 1)


def _bad_inputs() -> list[tuple[str, dict[str, Any], type, str]]:
    gen = torch.Generator().manual_seed(6)
    w_u = torch.randn(20, 4, generator=gen)
    resid = [("embed", torch.randn(3, 4, generator=gen))]
    good = {"residuals": resid, "logits": torch.randn(3, 20, generator=gen), "next_ids": [1, 2, -1], "k": 2, "decoder": lambda x: x @ w_u.T}
    nan = [("embed", resid[0][1].clone())]
    nan[0][1][1, 0] = torch.nan
    return [
        ("k zero", {**good, "k": 0}, CoilvisValueError, "k"),
        ("k not an int", {**good, "k": 2.0}, CoilvisTypeError, "k"),
        ("wrong seq_len", {**good, "residuals": [("embed", torch.randn(4, 4))]}, CoilvisValueError, "residuals"),
        ("not pairs", {**good, "residuals": [torch.randn(3, 4)]}, CoilvisTypeError, "residuals"),
        ("duplicate names", {**good, "residuals": resid + resid}, CoilvisValueError, "twice"),
        ("next id out of range", {**good, "next_ids": [1, 20, -1]}, CoilvisValueError, "next_ids"),
        ("next ids of the wrong length", {**good, "next_ids": [1, -1]}, CoilvisValueError, "next_ids"),
        ("float next ids", {**good, "next_ids": [1.0, 2.0, -1.0]}, CoilvisTypeError, "next_ids"),
        ("decoder of the wrong width", {**good, "decoder": lambda x: x @ w_u[:5].T}, CoilvisValueError, "decoder"),
        ("NaN residual", {**good, "residuals": nan}, CoilvisValueError, "'embed' decodes to NaN or infinite logits at position 1"),
        ("no model, no decoder", {**good, "decoder": None}, CoilvisTypeError, "model"),
        ("1-D logits", {**good, "logits": torch.randn(20)}, CoilvisValueError, "logits"),
    ]


def test_k_above_d_vocab_keeps_the_whole_vocabulary() -> None:
    """The one k rule (coilvis.options.check_k): more than d_vocab means all of them."""
    gen = torch.Generator().manual_seed(6)
    w_u = torch.randn(20, 4, generator=gen)
    resid = [("embed", torch.randn(3, 4, generator=gen))]
    kwargs = {"logits": torch.randn(3, 20, generator=gen), "next_ids": [1, 2, -1], "decoder": lambda x: x @ w_u.T}
    lens = compute_lens(None, resid, k=21, **kwargs)
    assert lens.topk_ids.shape == (2, 3, 20)
    np.testing.assert_array_equal(lens.topk_probs, compute_lens(None, resid, k=20, **kwargs).topk_probs)


@pytest.mark.parametrize(("name", "kwargs", "error", "words"), _bad_inputs(), ids=[c[0] for c in _bad_inputs()])
def test_bad_inputs_raise_errors_naming_the_argument(name: str, kwargs: dict[str, Any], error: type, words: str) -> None:
    kwargs = dict(kwargs)
    residuals = kwargs.pop("residuals")
    with pytest.raises(error, match=words):
        compute_lens(None, residuals, **kwargs)


def test_progress_bar_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    w_u = torch.randn(20, 4)
    compute_lens(None, [("embed", torch.randn(3, 4))], logits=torch.randn(3, 20), k=2, decoder=lambda x: x @ w_u.T, progress=True)
    assert "coilvis lens" in capsys.readouterr().err
    compute_lens(None, [("embed", torch.randn(3, 4))], logits=torch.randn(3, 20), k=2, decoder=lambda x: x @ w_u.T)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- TransformerLens


def _bridge(hf_model: Any, tokenizer: Any) -> Any:
    tl = pytest.importorskip("transformer_lens.model_bridge")
    return tl.TransformerBridge.boot_transformers("tiny", hf_model=hf_model, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="module")
def saved_tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The in-memory tokenizer saved and reloaded: TransformerBridge reloads a tokenizer
    by its folder."""
    from conftest import _build_tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    _build_tiny_tokenizer().save_pretrained(folder)
    return transformers.AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma2"])
def test_transformer_lens_cache_gives_the_same_lens(arch: str, saved_tiny_tokenizer: Any) -> None:
    tok = saved_tiny_tokenizer
    hf = tiny_model(arch, vocab_size=len(tok))
    bridge = _bridge(copy.deepcopy(hf), tok)
    prompt = "Hello the world and the end"
    with torch.no_grad():
        tl_logits, cache = bridge.run_with_cache(prompt, prepend_bos=False)
    ids = torch.as_tensor(tok(prompt)["input_ids"])
    nxt = next_ids_of(ids)
    for mid in (False, True):
        want, hf_logits, _ = hf_lens(hf, ids, mid=mid)
        torch.testing.assert_close(tl_logits[0], hf_logits, atol=1e-5, rtol=0)
        got = lens_from_tl_cache(bridge, cache, logits=tl_logits, next_ids=nxt, k=K, mid=mid)
        assert got.layer_names == want.layer_names
        # two frameworks, two kernels: ids and ranks up to near-ties of the HF rows
        hf_rows = reference_lens(hf_decoded_rows(arch, hf, ids, mid=mid), nxt, K)
        assert_lens_matches(got, hf_rows)
        for name in ("topk_probs", "entropy", "kl_to_final", "next_prob", "final_top_prob"):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-4, err_msg=name)
    dec = decoder_for(bridge)
    assert (dec.softcap == SOFTCAP) == (arch == "gemma2")


@pytest.mark.slow
def test_transformer_lens_native_bridge_matches_explicit_decoding() -> None:
    """A TransformerBridge without a transformers model: rows decoded by hand through
    its ln_final and unembed."""
    tl = pytest.importorskip("transformer_lens.model_bridge")
    from transformer_lens.config import TransformerBridgeConfig

    torch.manual_seed(0)
    cfg = TransformerBridgeConfig(n_layers=2, d_model=64, n_ctx=64, d_head=16, n_heads=4, d_vocab=100, act_fn="gelu")
    bridge = tl.TransformerBridge.boot_native(cfg)
    ids = input_ids()
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(ids[None])
        lens = lens_from_tl_cache(bridge, cache, logits=logits, next_ids=next_ids_of(ids), k=K, mid=True)
        names = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post", "blocks.1.hook_resid_mid"]
        rows = [bridge.unembed(bridge.ln_final(cache[n]))[0] for n in names] + [logits[0]]
    assert lens.layer_names == ("embed", "0.mid", "0", "1.mid", "1")
    assert_lens_matches(lens, reference_lens(rows, next_ids_of(ids), K))


@pytest.mark.slow
def test_transformer_lens_cache_errors() -> None:
    model = tiny_model("llama")
    with pytest.raises(CoilvisTypeError, match="TransformerLens"):
        lens_from_tl_cache(model, {}, logits=torch.zeros(3, 100))


# --------------------------------------------------------------------------- the default model


@pytest.mark.slow
@pytest.mark.model
def test_default_model_lens(default_model: Any) -> None:
    import coilvis

    model, _, _ = default_model
    prompt = "The Eiffel Tower is located in the city of"
    rec = coilvis.run(prompt, default_model, lens=True, lens_k=K)
    lens = rec.lens
    assert lens is not None
    n_layers = model.config.num_hidden_layers
    assert lens.layer_names == ("embed",) + tuple(str(i) for i in range(n_layers))
    # the final row is the model's own prediction
    np.testing.assert_array_equal(lens.topk_ids[-1], rec.topk_ids[:, :K])  # one logits tensor, one engine
    np.testing.assert_allclose(lens.topk_probs[-1], rec.topk_probs[:, :K], atol=1e-5)
    np.testing.assert_allclose(lens.entropy[-1], rec.entropy, atol=1e-4)
    assert rec.token_text(int(lens.topk_ids[-1, -1, 0])) == " Paris"
    # the decoder of the last block's output (pre-norm, taken by a hook) equals the logits
    ids = torch.as_tensor(rec.token_ids)
    out, last_block = hidden_and_last_block(model, ids)
    with torch.no_grad():
        torch.testing.assert_close(decoder_for(model)(last_block), out.logits[0], atol=1e-4, rtol=0)
        # and the rows are transformers' hidden states decoded by model.norm + lm_head
        rows = [model.lm_head(model.model.norm(h[0])) for h in out.hidden_states[:-1]] + [out.logits[0]]
    assert_lens_matches(lens, reference_lens(rows, np.append(rec.token_ids[1:], -1), K), atol=2e-4)
    # the prediction forms through the layers: late rows are closer to the final one
    assert lens.kl_to_final[n_layers - 1].mean() < lens.kl_to_final[n_layers // 2].mean() < lens.kl_to_final[0].mean()
