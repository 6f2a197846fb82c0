"""Tests for coilvis.stats: every statistic against a torch (or float64) reference,
properties that hold for any logits, chunking invariance, attention pruning and the
errors raised on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from coilvis import stats
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError

LN2 = math.log(2.0)
ATOL = 1e-5


def random_logits(*shape: int, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen) * scale


@pytest.fixture
def logits() -> torch.Tensor:
    return random_logits(64, 1000)


@pytest.fixture
def other_logits() -> torch.Tensor:
    return random_logits(64, 1000, seed=1)


def ref_log_probs64(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x.double(), dim=-1)


def ref_js64(p_logits: torch.Tensor, q_logits: torch.Tensor) -> np.ndarray:
    p = torch.softmax(p_logits.double(), dim=-1)
    q = torch.softmax(q_logits.double(), dim=-1)
    m = (p + q) / 2

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * (a.log() - b.log()), torch.zeros((), dtype=a.dtype)).sum(-1)

    return (0.5 * kl(p, m) + 0.5 * kl(q, m)).numpy()


def ref_tv64(p_logits: torch.Tensor, q_logits: torch.Tensor) -> np.ndarray:
    p = torch.softmax(p_logits.double(), dim=-1)
    q = torch.softmax(q_logits.double(), dim=-1)
    return (0.5 * (p - q).abs().sum(-1)).numpy()


def ref_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> np.ndarray:
    """KL(p || q) by torch: kl_div(input=log q, target=log p) sums p (log p - log q)."""
    lp = torch.log_softmax(p_logits.float(), dim=-1)
    lq = torch.log_softmax(q_logits.float(), dim=-1)
    return F.kl_div(lq, lp, log_target=True, reduction="none").sum(-1).numpy()


# --------------------------------------------------------------------------- against torch


def test_log_softmax_matches_torch(logits: torch.Tensor) -> None:
    got = stats.log_softmax(logits)
    assert got.dtype == np.float32 and got.shape == (64, 1000)
    np.testing.assert_allclose(got, torch.log_softmax(logits, dim=-1).numpy(), atol=ATOL, rtol=0)


def test_entropy_matches_categorical(logits: torch.Tensor) -> None:
    got = stats.entropy(logits)
    want = torch.distributions.Categorical(logits=logits).entropy().numpy()
    assert got.dtype == np.float32 and got.shape == (64,)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=1e-6)


def test_entropy_in_bits_is_nats_over_ln2(logits: torch.Tensor) -> None:
    want = torch.distributions.Categorical(logits=logits.double()).entropy().numpy() / LN2
    np.testing.assert_allclose(stats.entropy(logits, bits=True), want, atol=ATOL, rtol=1e-6)


def test_entropy_of_uniform_and_one_hot() -> None:
    x = torch.zeros(3, 1024)
    x[1, 7] = 1000.0
    x[2, :512] = -torch.inf
    np.testing.assert_allclose(stats.entropy(x, bits=True), [10.0, 0.0, 9.0], atol=ATOL)


def test_topk_matches_torch(logits: torch.Tensor) -> None:
    ids, vals, probs = stats.topk(logits, 10)
    want_vals, want_ids = torch.topk(logits, 10, dim=-1)
    assert ids.dtype == np.int64 and vals.dtype == np.float32 and probs.dtype == np.float32
    np.testing.assert_array_equal(ids, want_ids.numpy())
    np.testing.assert_array_equal(vals, want_vals.numpy())
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).gather(1, want_ids).numpy(), atol=ATOL, rtol=1e-5)
    assert (np.diff(vals, axis=-1) <= 0).all()


def test_topk_of_a_vector_and_of_3d_logits() -> None:
    x = random_logits(2, 3, 50)
    ids, vals, probs = stats.topk(x, 4)
    assert ids.shape == vals.shape == probs.shape == (2, 3, 4)
    np.testing.assert_array_equal(ids[1, 2], torch.topk(x[1, 2], 4).indices.numpy())
    v_ids, _, _ = stats.topk(x[1, 2], 4)
    assert v_ids.shape == (4,)
    np.testing.assert_array_equal(v_ids, ids[1, 2])


def test_rank_of_matches_sort_order(logits: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(3)
    targets = torch.randint(0, 1000, (64,), generator=gen)
    got = stats.rank_of(logits, targets)
    # distinct random logits: the rank is the 1-based position in the descending sort
    order = torch.argsort(logits, dim=-1, descending=True)
    want = (order == targets[:, None]).int().argmax(dim=-1).numpy() + 1
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_rank_of_ties_share_a_rank() -> None:
    x = torch.tensor([[3.0, 5.0, 5.0, 1.0]] * 4)
    np.testing.assert_array_equal(stats.rank_of(x, [1, 2, 0, 3]), [1, 1, 3, 4])


def test_rank_of_one_vector_takes_one_id() -> None:
    x = torch.tensor([0.0, 2.0, 1.0])
    assert stats.rank_of(x, 2).tolist() == 2
    assert stats.rank_of(x, [0]).shape == ()


def test_kl_matches_torch_kl_div(logits: torch.Tensor, other_logits: torch.Tensor) -> None:
    got = stats.kl_divergence(logits, other_logits)
    np.testing.assert_allclose(got, ref_kl(logits, other_logits), atol=ATOL, rtol=1e-5)
    np.testing.assert_allclose(
        stats.kl_divergence(logits, other_logits, bits=True), got / LN2, atol=ATOL, rtol=1e-6
    )


def test_js_matches_float64_reference(logits: torch.Tensor, other_logits: torch.Tensor) -> None:
    got = stats.js_divergence(logits, other_logits)
    np.testing.assert_allclose(got, ref_js64(logits, other_logits), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        stats.js_divergence(logits, other_logits, bits=True), ref_js64(logits, other_logits) / LN2, atol=ATOL, rtol=0
    )


def test_tv_matches_float64_half_l1(logits: torch.Tensor, other_logits: torch.Tensor) -> None:
    np.testing.assert_allclose(stats.tv_distance(logits, other_logits), ref_tv64(logits, other_logits), atol=ATOL, rtol=0)


def test_divergences_of_a_distribution_with_itself_are_zero(logits: torch.Tensor) -> None:
    for fn in (stats.kl_divergence, stats.js_divergence, stats.tv_distance):
        np.testing.assert_allclose(fn(logits, logits), 0.0, atol=ATOL)


def test_js_and_tv_are_symmetric(logits: torch.Tensor, other_logits: torch.Tensor) -> None:
    np.testing.assert_allclose(
        stats.js_divergence(logits, other_logits), stats.js_divergence(other_logits, logits), atol=1e-6
    )
    np.testing.assert_allclose(stats.tv_distance(logits, other_logits), stats.tv_distance(other_logits, logits), atol=1e-6)
    # KL is not: it would be a weak reference if it were
    assert not np.allclose(stats.kl_divergence(logits, other_logits), stats.kl_divergence(other_logits, logits))


def test_disjoint_supports_reach_the_bounds() -> None:
    p = torch.full((2, 10), -torch.inf)
    q = torch.full((2, 10), -torch.inf)
    p[:, :5] = torch.randn(2, 5)
    q[:, 5:] = torch.randn(2, 5)
    np.testing.assert_allclose(stats.js_divergence(p, q), LN2, atol=ATOL)
    np.testing.assert_allclose(stats.js_divergence(p, q, bits=True), 1.0, atol=ATOL)
    np.testing.assert_allclose(stats.tv_distance(p, q), 1.0, atol=ATOL)
    assert np.isposinf(stats.kl_divergence(p, q)).all()


def test_kl_ignores_tokens_p_does_not_predict() -> None:
    """Masked tokens of p (p_i = 0) add nothing, whatever q says about them."""
    p = torch.tensor([[1.0, 2.0, -torch.inf, -torch.inf]])
    q = torch.tensor([[0.5, 1.0, 3.0, 0.0]])
    lp = torch.log_softmax(p.double(), -1)[0, :2]
    lq = torch.log_softmax(q.double(), -1)[0, :2]
    want = float((lp.exp() * (lp - lq)).sum())
    np.testing.assert_allclose(stats.kl_divergence(p, q), [want], atol=ATOL)


# --------------------------------------------------------------------------- dtypes and inputs


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_16_bit_inputs_are_computed_in_float32(dtype: torch.dtype, logits: torch.Tensor, other_logits: torch.Tensor) -> None:
    low, other_low = logits.to(dtype), other_logits.to(dtype)
    up, other_up = low.float(), other_low.float()  # the values the function really sees
    np.testing.assert_allclose(stats.log_softmax(low), torch.log_softmax(up, -1).numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        stats.entropy(low), torch.distributions.Categorical(logits=up).entropy().numpy(), atol=ATOL, rtol=1e-6
    )
    ids, vals, probs = stats.topk(low, 5)
    assert vals.dtype == np.float32 and probs.dtype == np.float32
    np.testing.assert_array_equal(vals, torch.topk(up, 5).values.numpy())
    np.testing.assert_allclose(probs.sum(-1), torch.softmax(up, -1).gather(1, torch.as_tensor(ids)).sum(-1).numpy(), atol=ATOL)
    np.testing.assert_allclose(stats.kl_divergence(low, other_low), ref_kl(up, other_up), atol=ATOL, rtol=1e-5)
    np.testing.assert_allclose(stats.js_divergence(low, other_low), ref_js64(up, other_up), atol=ATOL)
    np.testing.assert_allclose(stats.tv_distance(low, other_low), ref_tv64(up, other_up), atol=ATOL)
    assert stats.to_numpy(low).dtype == np.float32


def test_16_bit_entropy_is_not_computed_in_16_bit() -> None:
    """A 16-bit accumulation of 50k terms would be off by far more than 1e-3."""
    x = random_logits(4, 50_000, seed=5, scale=0.5).to(torch.bfloat16)
    want = torch.distributions.Categorical(logits=x.double()).entropy().numpy()
    np.testing.assert_allclose(stats.entropy(x), want, atol=1e-4)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda t: t.numpy(), id="numpy-float32"),
        pytest.param(lambda t: t.double().numpy(), id="numpy-float64"),
        pytest.param(lambda t: t.numpy().astype(np.float16), id="numpy-float16"),
        pytest.param(lambda t: t.tolist(), id="nested-list"),
        pytest.param(lambda t: tuple(tuple(r) for r in t.tolist()), id="nested-tuple"),
    ],
)
def test_numpy_and_list_inputs_give_the_same_numbers(convert: object) -> None:
    x = random_logits(8, 100)
    data = convert(x)  # type: ignore[operator]
    ref = torch.as_tensor(np.asarray(data), dtype=torch.float32)
    np.testing.assert_allclose(stats.entropy(data), torch.distributions.Categorical(logits=ref).entropy().numpy(), atol=ATOL)
    np.testing.assert_allclose(stats.log_softmax(data), torch.log_softmax(ref, -1).numpy(), atol=ATOL)
    np.testing.assert_array_equal(stats.topk(data, 3)[0], torch.topk(ref, 3).indices.numpy())
    np.testing.assert_array_equal(stats.rank_of(data, list(range(8))), stats.rank_of(ref, list(range(8))))


def test_integer_logits_are_accepted_as_floats() -> None:
    np.testing.assert_allclose(stats.entropy([[0, 0, 0, 0]], bits=True), [2.0], atol=ATOL)


def test_to_numpy_handles_every_input() -> None:
    assert stats.to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
    assert stats.to_numpy(torch.ones(2, dtype=torch.float16)).dtype == np.float32
    assert stats.to_numpy(torch.ones(2, dtype=torch.float64)).dtype == np.float64
    assert stats.to_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]
    assert stats.to_numpy([1, 2]).tolist() == [1, 2]


# --------------------------------------------------------------------------- masked vocabulary


def test_masked_vocabulary_gives_finite_statistics() -> None:
    x = random_logits(16, 200, seed=2)
    x[:, 150:] = -torch.inf  # e.g. padded vocabulary rows
    x[3, :140] = -torch.inf  # a nearly masked row
    sub = x[:, :150]
    h = stats.entropy(x)
    assert np.isfinite(h).all()
    np.testing.assert_allclose(h, torch.distributions.Categorical(logits=sub).entropy().numpy(), atol=ATOL)
    lp = stats.log_softmax(x)
    assert np.isneginf(lp[:, 150:]).all()
    np.testing.assert_allclose(lp[:, :150], torch.log_softmax(sub, -1).numpy(), atol=ATOL)
    out = stats.position_stats(x, k=5)
    assert np.isfinite(out["entropy"]).all() and np.isfinite(out["log_z"]).all()
    np.testing.assert_allclose(out["entropy"], h, atol=1e-6)
    np.testing.assert_allclose(stats.kl_divergence(x, x), 0.0, atol=ATOL)
    np.testing.assert_allclose(stats.js_divergence(x, x), 0.0, atol=ATOL)


def test_one_finite_logit_has_zero_entropy() -> None:
    x = torch.full((1, 30), -torch.inf)
    x[0, 4] = 2.5
    np.testing.assert_allclose(stats.entropy(x), [0.0], atol=0)
    ids, _, probs = stats.topk(x, 1)
    assert ids.tolist() == [[4]] and probs.tolist() == [[1.0]]


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("chunk_size", [1, 7, 1000], ids=["chunk1", "chunk7", "chunk1000"])
def test_chunk_size_does_not_change_results(chunk_size: int, logits: torch.Tensor, other_logits: torch.Tensor) -> None:
    targets = np.arange(64) * 13 % 1000
    ref = stats.position_stats(logits, k=7, next_ids=targets, chunk_size=64)
    got = stats.position_stats(logits, k=7, next_ids=targets, chunk_size=chunk_size)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], atol=1e-6, rtol=0, err_msg=key)
    pairs = [
        (stats.log_softmax(logits, chunk_size=chunk_size), stats.log_softmax(logits, chunk_size=64)),
        (stats.entropy(logits, chunk_size=chunk_size), stats.entropy(logits, chunk_size=64)),
        (stats.topk(logits, 7, chunk_size=chunk_size)[2], stats.topk(logits, 7, chunk_size=64)[2]),
        (stats.rank_of(logits, targets, chunk_size=chunk_size), stats.rank_of(logits, targets, chunk_size=64)),
        (stats.kl_divergence(logits, other_logits, chunk_size=chunk_size), stats.kl_divergence(logits, other_logits, chunk_size=64)),
        (stats.js_divergence(logits, other_logits, chunk_size=chunk_size), stats.js_divergence(logits, other_logits, chunk_size=64)),
        (stats.tv_distance(logits, other_logits, chunk_size=chunk_size), stats.tv_distance(logits, other_logits, chunk_size=64)),
    ]
    for got_a, ref_a in pairs:
        np.testing.assert_allclose(got_a, ref_a, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- position_stats


def test_position_stats_agrees_with_the_separate_functions(logits: torch.Tensor) -> None:
    next_ids = np.append(np.arange(63) * 7 % 1000, -1)
    out = stats.position_stats(logits, k=10, next_ids=next_ids)
    ids, vals, probs = stats.topk(logits, 10)
    np.testing.assert_array_equal(out["topk_ids"], ids)
    np.testing.assert_array_equal(out["topk_logits"], vals)
    np.testing.assert_allclose(out["topk_probs"], probs, atol=1e-6)
    np.testing.assert_allclose(out["entropy"], stats.entropy(logits), atol=1e-6)
    np.testing.assert_allclose(out["log_z"], torch.logsumexp(logits, -1).numpy(), atol=ATOL)
    logp = stats.log_softmax(logits)
    np.testing.assert_allclose(out["next_logprob"][:-1], logp[np.arange(63), next_ids[:-1]], atol=ATOL)
    np.testing.assert_array_equal(out["next_rank"][:-1], stats.rank_of(logits[:-1], next_ids[:-1]))
    assert np.isnan(out["next_logprob"][-1]) and out["next_rank"][-1] == -1
    assert {k: v.dtype for k, v in out.items()} == {
        "topk_ids": np.int64,
        "topk_logits": np.float32,
        "topk_probs": np.float32,
        "log_z": np.float32,
        "entropy": np.float32,
        "next_logprob": np.float32,
        "next_rank": np.int64,
    }


@pytest.mark.parametrize(
    ("token_ids", "want"),
    [([5, 7, 9], [7, 9, -1]), ([3], [-1]), (np.array([[4, -1, 2]]), [-1, 2, -1]), (torch.tensor([1, 2]), [2, -1])],
    ids=["list", "one-token", "batch-of-one-with-unknown", "tensor"],
)
def test_next_ids_of_shifts_left_and_ends_unknown(token_ids: object, want: list[int]) -> None:
    got = stats.next_ids_of(token_ids)
    assert got.dtype == np.int64 and got.tolist() == want


def test_position_stats_without_next_ids_marks_every_position_unknown(logits: torch.Tensor) -> None:
    out = stats.position_stats(logits, k=1)
    assert np.isnan(out["next_logprob"]).all()
    assert (out["next_rank"] == -1).all()
    assert out["topk_ids"].shape == (64, 1)


# --------------------------------------------------------------------------- properties

finite_floats = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False, width=32)
logit_matrices = hnp.arrays(
    np.float32,
    shape=st.tuples(st.integers(1, 6), st.integers(1, 40)),
    elements=finite_floats,
)


@given(x=logit_matrices)
def test_entropy_lies_between_zero_and_ln_d_vocab(x: np.ndarray) -> None:
    h = stats.entropy(x)
    assert (h >= 0).all()
    assert (h <= math.log(x.shape[-1]) + 1e-5).all()


@given(x=logit_matrices, shift=st.lists(st.floats(-100, 100, allow_nan=False), min_size=6, max_size=6))
def test_adding_a_constant_per_row_changes_nothing(x: np.ndarray, shift: list[float]) -> None:
    c = np.asarray(shift[: x.shape[0]], dtype=np.float32)[:, None]
    y = (x + c).astype(np.float32)
    assume(np.all(np.argsort(-y, axis=-1, kind="stable") == np.argsort(-x, axis=-1, kind="stable")))
    np.testing.assert_allclose(stats.entropy(y), stats.entropy(x), atol=1e-4)
    np.testing.assert_allclose(stats.log_softmax(y), stats.log_softmax(x), atol=1e-4)
    np.testing.assert_allclose(stats.js_divergence(x, y), 0.0, atol=1e-4)
    np.testing.assert_allclose(stats.tv_distance(x, y), 0.0, atol=1e-4)


@given(x=logit_matrices)
def test_probabilities_sum_to_one(x: np.ndarray) -> None:
    p = np.exp(stats.log_softmax(x).astype(np.float64))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    _, _, top = stats.topk(x, x.shape[-1])
    np.testing.assert_allclose(top.sum(-1), 1.0, atol=1e-5)


@given(
    x=hnp.arrays(
        np.float32,
        shape=st.integers(1, 40),
        elements=finite_floats,
        unique=True,
    ),
    data=st.data(),
)
def test_rank_one_iff_argmax(x: np.ndarray, data: st.DataObject) -> None:
    target = data.draw(st.integers(0, x.shape[0] - 1))
    rank = int(stats.rank_of(x, target))
    assert (rank == 1) == (target == int(np.argmax(x)))
    assert rank == 1 + int((x > x[target]).sum())


@given(p=logit_matrices, data=st.data())
def test_divergence_bounds(p: np.ndarray, data: st.DataObject) -> None:
    q = data.draw(hnp.arrays(np.float32, shape=p.shape, elements=finite_floats))
    js = stats.js_divergence(p, q)
    tv = stats.tv_distance(p, q)
    assert ((js >= 0) & (js <= LN2)).all()
    assert ((tv >= 0) & (tv <= 1)).all()
    assert (stats.kl_divergence(p, q) >= 0).all()
    np.testing.assert_allclose(tv, ref_tv64(torch.from_numpy(p), torch.from_numpy(q)), atol=ATOL)


# --------------------------------------------------------------------------- attention pruning


def causal_pattern(n_heads: int, seq_len: int, *, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(n_heads, seq_len, seq_len, generator=gen) * 2
    mask = torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
    return torch.softmax(scores.masked_fill(mask, -torch.inf), dim=-1)


def links_of(out: dict[str, np.ndarray], head: int, query: int) -> tuple[list[int], np.ndarray]:
    sel = (out["head"] == head) & (out["query"] == query)
    return out["key"][sel].tolist(), out["weight"][sel]


@pytest.mark.parametrize("top_k", [1, 3, 50], ids=["top1", "top3", "more-than-seq_len"])
def test_prune_attention_keeps_the_top_keys_of_every_query_and_head(top_k: int) -> None:
    pattern = causal_pattern(4, 20)
    out = stats.prune_attention(pattern, top_k=top_k, chunk_size=6)
    assert out["head"].dtype == np.int16 and out["query"].dtype == np.int32
    assert out["key"].dtype == np.int32 and out["weight"].dtype == np.float32
    references = {h: pattern[h] for h in range(4)}
    references[-1] = pattern.mean(dim=0)
    references[-2] = pattern.amax(dim=0)
    for head, ref in references.items():
        for q in range(20):
            n = min(top_k, q + 1)  # causal: query q sees keys 0..q, the rest are zero
            want_w, want_k = torch.topk(ref[q], n)
            keys, weights = links_of(out, head, q)
            assert keys == want_k.tolist(), (head, q)
            np.testing.assert_allclose(weights, want_w.numpy(), atol=1e-7)
    assert (out["key"] <= out["query"]).all()
    assert (out["weight"] > 0).all()


def test_prune_attention_orders_by_head_then_query_then_weight() -> None:
    out = stats.prune_attention(causal_pattern(3, 9), top_k=3)
    head_order = np.where(out["head"] < 0, 3 - out["head"], out["head"])  # 0,1,2, then mean, then max
    key = np.stack([head_order, out["query"]], axis=1)
    assert (np.diff(key[:, 0]) >= 0).all()
    same_head = np.diff(key[:, 0]) == 0
    assert (np.diff(key[:, 1])[same_head] >= 0).all()
    same_query = same_head & (np.diff(key[:, 1]) == 0)
    assert (np.diff(out["weight"])[same_query] <= 0).all()
    assert out["head"][0] == 0 and out["head"][-1] == -2


def test_prune_attention_respects_min_weight() -> None:
    pattern = causal_pattern(2, 12, seed=4)
    out = stats.prune_attention(pattern, top_k=4, min_weight=0.2)
    assert (out["weight"] >= 0.2).all()
    full = stats.prune_attention(pattern, top_k=4)
    kept = full["weight"] >= 0.2
    for name in ("head", "query", "key", "weight"):
        np.testing.assert_array_equal(out[name], full[name][kept])
    assert out["weight"].shape[0] < full["weight"].shape[0]


def test_prune_attention_drops_causal_zeros() -> None:
    pattern = causal_pattern(2, 5)
    out = stats.prune_attention(pattern, top_k=5)
    # query q has q + 1 non-zero keys per head, and for the mean and the max
    assert out["weight"].shape[0] == 4 * sum(q + 1 for q in range(5))
    assert set(links_of(out, 0, 0)[0]) == {0}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=["fp16", "bf16", "fp64"])
def test_prune_attention_takes_any_float_dtype(dtype: torch.dtype) -> None:
    pattern = causal_pattern(2, 6).to(dtype)
    out = stats.prune_attention(pattern, top_k=2)
    assert out["weight"].dtype == np.float32
    np.testing.assert_allclose(links_of(out, 1, 5)[1], torch.topk(pattern[1, 5].float(), 2).values.numpy(), atol=1e-7)


def test_prune_attention_takes_numpy() -> None:
    pattern = causal_pattern(2, 6)
    a = stats.prune_attention(pattern.numpy(), top_k=2)
    b = stats.prune_attention(pattern, top_k=2)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, words",
    [
        pytest.param(lambda: stats.position_stats(torch.zeros(5)), CoilvisValueError, ["logits", "2-D", "(5,)"], id="1d-to-position_stats"),
        pytest.param(lambda: stats.position_stats(torch.zeros(2, 3, 5)), CoilvisValueError, ["logits", "(2, 3, 5)"], id="3d-to-position_stats"),
        pytest.param(lambda: stats.rank_of(torch.zeros(2, 3, 5), [0, 0]), CoilvisValueError, ["logits"], id="3d-to-rank_of"),
        pytest.param(lambda: stats.entropy(torch.tensor(1.0)), CoilvisValueError, ["logits", "got shape ()"], id="0d-to-entropy"),
        pytest.param(lambda: stats.entropy(torch.zeros(3, 0)), CoilvisValueError, ["logits", "empty"], id="empty-vocab"),
        pytest.param(lambda: stats.entropy("abc"), CoilvisTypeError, ["logits", "str"], id="string-logits"),
        pytest.param(lambda: stats.entropy([["a", "b"]]), CoilvisTypeError, ["logits", "numbers"], id="strings-in-list"),
        pytest.param(lambda: stats.entropy({"a": 1.0}), CoilvisTypeError, ["logits", "dict"], id="dict-logits"),
        pytest.param(lambda: stats.entropy(torch.zeros(2, 3, dtype=torch.complex64)), CoilvisTypeError, ["logits", "complex"], id="complex-logits"),
        pytest.param(lambda: stats.topk(torch.zeros(2, 5), 0), CoilvisValueError, ["k", "0"], id="k-zero"),
        pytest.param(lambda: stats.topk(torch.zeros(2, 5), 2.0), CoilvisTypeError, ["k", "float"], id="k-float"),
        pytest.param(lambda: stats.topk(torch.zeros(2, 5), True), CoilvisTypeError, ["k", "bool"], id="k-bool"),
        pytest.param(lambda: stats.position_stats(torch.zeros(2, 5), k=0), CoilvisValueError, ["k"], id="position_stats-k-zero"),
        pytest.param(lambda: stats.rank_of(torch.zeros(2, 5), [0, 5]), CoilvisValueError, ["target_ids", "5", "position 1"], id="target-out-of-range"),
        pytest.param(lambda: stats.rank_of(torch.zeros(2, 5), [-1, 0]), CoilvisValueError, ["target_ids", "-1"], id="target-negative"),
        pytest.param(lambda: stats.rank_of(torch.zeros(2, 5), [0]), CoilvisValueError, ["target_ids", "2", "1"], id="target-wrong-length"),
        pytest.param(lambda: stats.rank_of(torch.zeros(2, 5), [0.5, 1.0]), CoilvisTypeError, ["target_ids", "integer"], id="target-float"),
        pytest.param(lambda: stats.position_stats(torch.zeros(2, 5), k=2, next_ids=[0, 7]), CoilvisValueError, ["next_ids", "7"], id="next_ids-out-of-range"),
        pytest.param(lambda: stats.kl_divergence(torch.zeros(2, 5), torch.zeros(2, 6)), CoilvisValueError, ["q_logits", "(2, 6)", "(2, 5)"], id="divergence-shape-mismatch"),
        pytest.param(lambda: stats.js_divergence("x", torch.zeros(2, 6)), CoilvisTypeError, ["p_logits"], id="divergence-p-type"),
        pytest.param(lambda: stats.entropy(torch.zeros(2, 5), chunk_size=0), CoilvisValueError, ["chunk_size", "0"], id="chunk-size-zero"),
        pytest.param(lambda: stats.prune_attention(torch.zeros(2, 3, 4)), CoilvisValueError, ["pattern", "(2, 3, 4)"], id="pattern-not-square"),
        pytest.param(lambda: stats.prune_attention(torch.zeros(3, 3)), CoilvisValueError, ["pattern"], id="pattern-2d"),
        pytest.param(lambda: stats.prune_attention(torch.zeros(1, 3, 3), top_k=0), CoilvisValueError, ["top_k", "0"], id="top_k-zero"),
        pytest.param(lambda: stats.prune_attention(torch.zeros(1, 3, 3), min_weight=1.5), CoilvisValueError, ["min_weight", "1.5"], id="min_weight-above-one"),
    ],
)
def test_bad_input_names_the_argument(call: object, error: type[Exception], words: list[str]) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    message = str(info.value)
    for word in words:
        assert word in message, (word, message)
    assert isinstance(info.value, CoilvisError)
    assert isinstance(info.value, ValueError if error is CoilvisValueError else TypeError)


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "+inf"])
@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda x: stats.entropy(x, chunk_size=4), id="entropy"),
        pytest.param(lambda x: stats.log_softmax(x, chunk_size=4), id="log_softmax"),
        pytest.param(lambda x: stats.topk(x, 2, chunk_size=4), id="topk"),
        pytest.param(lambda x: stats.rank_of(x, [0] * 10, chunk_size=4), id="rank_of"),
        pytest.param(lambda x: stats.position_stats(x, k=2, chunk_size=4), id="position_stats"),
        pytest.param(lambda x: stats.kl_divergence(torch.zeros(10, 6), x, chunk_size=4), id="kl-q"),
    ],
)
def test_nan_or_posinf_logits_name_their_positions(bad: float, fn: object) -> None:
    x = random_logits(10, 6)
    x[6, 2] = bad
    x[7, 0] = bad
    with pytest.raises(CoilvisValueError) as info:
        fn(x)  # type: ignore[operator]
    message = str(info.value)
    assert "logits" in message and "NaN or +inf" in message
    assert "6, 7" in message


def test_nan_positions_of_3d_logits_are_index_tuples() -> None:
    x = torch.zeros(2, 3, 4)
    x[1, 2, 0] = math.nan
    with pytest.raises(CoilvisValueError, match=r"logits: NaN or \+inf logits at position\(s\) \(1, 2\)"):
        stats.entropy(x)


def test_nan_in_a_vector_is_reported() -> None:
    with pytest.raises(CoilvisValueError, match="logits: NaN"):
        stats.topk(torch.tensor([0.0, math.nan]), 1)


@pytest.mark.parametrize(
    "fn",
    [
        pytest.param(lambda x: stats.entropy(x), id="entropy"),
        pytest.param(lambda x: stats.topk(x, 1), id="topk"),
        pytest.param(lambda x: stats.position_stats(x, k=2), id="position_stats"),
        pytest.param(lambda x: stats.js_divergence(x, torch.zeros_like(x)), id="js-p"),
    ],
)
def test_rows_of_only_minus_inf_are_rejected(fn: object) -> None:
    x = torch.zeros(4, 5)
    x[2] = -torch.inf
    with pytest.raises(CoilvisValueError) as info:
        fn(x)  # type: ignore[operator]
    assert "-inf" in str(info.value) and "position(s) 2" in str(info.value) and "logits" in str(info.value)


def test_k_above_d_vocab_gives_every_token() -> None:
    """The one k rule (coilvis.options.check_k): more than d_vocab means all of them."""
    x = random_logits(2, 5)
    ids, _, _ = stats.topk(x, 6)
    assert ids.shape == (2, 5)
    np.testing.assert_array_equal(ids, stats.topk(x, 5)[0])
    assert stats.position_stats(x, k=9)["topk_ids"].shape == (2, 5)
