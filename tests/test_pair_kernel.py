"""Exact divergences of two blocks of logits (coilvis.pair_kernel) against torch references.

Every test runs with both kernels: torch's element-wise operations, and the fused numba
kernel (coilvis.pair_fused) where numba is installed."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from coilvis.lens_kernel import Workspace
from coilvis.pair_kernel import MetricIds, pair_block, pair_chunks

LN2 = math.log(2.0)


@pytest.fixture(scope="module", autouse=True, params=["torch", "fused"])
def kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    """The pair kernel every test of this module uses (through COILVIS_PAIR_KERNEL)."""
    if request.param == "fused":
        pytest.importorskip("numba")
    before = os.environ.get("COILVIS_PAIR_KERNEL")
    os.environ["COILVIS_PAIR_KERNEL"] = request.param
    yield request.param
    if before is None:
        del os.environ["COILVIS_PAIR_KERNEL"]
    else:
        os.environ["COILVIS_PAIR_KERNEL"] = before


def reference(x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, torch.Tensor]:
    """KL with torch.nn.functional.kl_div, JS and TV written out, in float64."""
    la, lb = x_a.double().log_softmax(-1), x_b.double().log_softmax(-1)
    pa, pb = la.exp(), lb.exp()
    lm = torch.logaddexp(la, lb) - LN2
    js = 0.5 * torch.nn.functional.kl_div(lm, la, log_target=True, reduction="none").sum(-1)
    js = js + 0.5 * torch.nn.functional.kl_div(lm, lb, log_target=True, reduction="none").sum(-1)
    return {
        "kl_ab": torch.nn.functional.kl_div(lb, la, log_target=True, reduction="none").sum(-1),
        "kl_ba": torch.nn.functional.kl_div(la, lb, log_target=True, reduction="none").sum(-1),
        "js": js,
        "tv": 0.5 * (pa - pb).abs().sum(-1),
    }


def pair(seed: int, rows: int = 40, d_vocab: int = 6000, scale: float = 4.0, noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x_a = torch.randn(rows, d_vocab, generator=g) * scale
    return x_a, x_a + torch.randn(rows, d_vocab, generator=g) * noise


@pytest.mark.parametrize("noise", [0.0, 0.05, 1.0, 10.0])
def test_divergences_match_torch_references(noise: float) -> None:
    x_a, x_b = pair(1, noise=noise)
    got = pair_block(x_a, x_b, work=Workspace(x_a.shape[1]))
    want = reference(x_a, x_b)
    for name, values in want.items():
        assert got[name].dtype == torch.float32
        np.testing.assert_allclose(got[name].double().numpy(), values.numpy(), atol=1e-5, rtol=1e-5, err_msg=name)


def test_given_probabilities_give_the_same_values() -> None:
    x_a, x_b = pair(2)
    work = Workspace(x_a.shape[1])
    lz_a, lz_b = torch.logsumexp(x_a, -1), torch.logsumexp(x_b, -1)
    given_probs = pair_block(x_a, x_b, work=Workspace(x_a.shape[1]), p_a=x_a.softmax(-1), p_b=x_b.softmax(-1), log_z_a=lz_a, log_z_b=lz_b)
    computed = pair_block(x_a, x_b, work=work)
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        torch.testing.assert_close(given_probs[name], computed[name], atol=1e-5, rtol=1e-4)


def test_inputs_are_not_modified() -> None:
    x_a, x_b = pair(3)
    a0, b0 = x_a.clone(), x_b.clone()
    pair_block(x_a, x_b, work=Workspace(x_a.shape[1]), movers=3)
    assert torch.equal(x_a, a0) and torch.equal(x_b, b0)


def test_identical_runs_are_zero() -> None:
    x_a, _ = pair(4)
    out = pair_block(x_a, x_a.clone(), work=Workspace(x_a.shape[1]))
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        assert float(out[name].abs().max()) <= 1e-6, name


def test_disjoint_runs_reach_the_bounds() -> None:
    x_a = torch.tensor([[30.0, -30.0, -30.0]])
    x_b = torch.tensor([[-30.0, 30.0, -30.0]])
    out = pair_block(x_a, x_b, work=Workspace(3))
    assert float(out["js"][0]) == pytest.approx(LN2, abs=1e-5)
    assert float(out["tv"][0]) == pytest.approx(1.0, abs=1e-5)
    assert float(out["kl_ab"][0]) == pytest.approx(60.0, abs=1e-3)


def test_masked_vocabulary_counts_zero_mass_as_zero() -> None:
    """-inf logits (a masked vocabulary) give finite divergences: 0 log 0 = 0."""
    x_a, x_b = pair(5, rows=6, d_vocab=500)
    x_a[:, :50] = -math.inf
    x_b[:, :50] = -math.inf
    out = pair_block(x_a, x_b, work=Workspace(500))
    want = reference(x_a[:, 50:], x_b[:, 50:])
    for name in ("kl_ab", "kl_ba", "js", "tv"):
        np.testing.assert_allclose(out[name].double().numpy(), want[name].numpy(), atol=1e-5, err_msg=name)


def test_zero_mass_in_b_only_gives_infinite_kl() -> None:
    x_a = torch.tensor([[0.0, 0.0, 0.0]])
    x_b = torch.tensor([[0.0, 0.0, -math.inf]])
    out = pair_block(x_a, x_b, work=Workspace(3))
    assert math.isinf(float(out["kl_ab"][0]))
    assert float(out["kl_ba"][0]) == pytest.approx(math.log(1.5), abs=1e-6)
    assert 0 < float(out["js"][0]) <= LN2


def test_movers_are_the_largest_changes_with_both_probabilities() -> None:
    x_a, x_b = pair(6, rows=8, d_vocab=300)
    out = pair_block(x_a, x_b, work=Workspace(300), movers=4)
    pa, pb = x_a.softmax(-1), x_b.softmax(-1)
    change = pb - pa
    for row in range(8):
        rise = change[row, out["rise_ids"][row]]
        fall = change[row, out["fall_ids"][row]]
        # the k-th largest rise is at least every other change (ties allowed)
        assert float(rise.min()) >= float(torch.topk(change[row], 4).values[-1]) - 1e-7
        assert float(fall.max()) <= float(torch.topk(change[row], 4, largest=False).values[-1]) + 1e-7
        assert torch.all(rise[:-1] >= rise[1:] - 1e-7) and torch.all(fall[:-1] <= fall[1:] + 1e-7)
        torch.testing.assert_close(out["rise_prob_a"][row], pa[row, out["rise_ids"][row]])
        torch.testing.assert_close(out["fall_prob_b"][row], pb[row, out["fall_ids"][row]])


def test_metric_and_target_log_prob_change() -> None:
    x_a, x_b = pair(7, rows=5, d_vocab=50)
    metric = MetricIds(plus=torch.tensor([3]), minus=torch.tensor([7, 9]))
    targets = torch.tensor([4, -1, 0, 49, 10])
    out = pair_block(x_a, x_b, work=Workspace(50), metric=metric, target_ids=targets)
    torch.testing.assert_close(out["metric_a"], x_a[:, 3] - x_a[:, [7, 9]].mean(-1))
    torch.testing.assert_close(out["metric_b"], x_b[:, 3] - x_b[:, [7, 9]].mean(-1))
    la, lb = x_a.log_softmax(-1), x_b.log_softmax(-1)
    for row, t in enumerate(targets.tolist()):
        if t < 0:
            assert math.isnan(float(out["delta_logprob"][row]))
        else:
            assert float(out["delta_logprob"][row]) == pytest.approx(float(lb[row, t] - la[row, t]), abs=1e-5)


@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 20.0),
    noise=st.floats(0.0, 5.0),
    d_vocab=st.integers(2, 400),
)
def test_properties(seed: int, scale: float, noise: float, d_vocab: int) -> None:
    """KL >= 0, JS symmetric and <= ln 2, TV in [0, 1], JS <= TV-independent bounds."""
    x_a, x_b = pair(seed, rows=3, d_vocab=d_vocab, scale=scale, noise=noise)
    work = Workspace(d_vocab)
    ab = {k: v.clone() for k, v in pair_block(x_a, x_b, work=work).items()}
    ba = pair_block(x_b, x_a, work=work)
    assert torch.all(ab["kl_ab"] >= 0) and torch.all(ab["kl_ba"] >= 0)
    assert torch.all(ab["js"] >= 0) and torch.all(ab["js"] <= LN2)
    assert torch.all(ab["tv"] >= 0) and torch.all(ab["tv"] <= 1)
    # the two orders round differently: float32 differences of logits carry about one
    # unit in the last place of the largest logit (2**-23 |x|)
    atol = 2e-6 + 2.0**-21 * float(torch.maximum(x_a.abs().max(), x_b.abs().max()))
    torch.testing.assert_close(ab["js"], ba["js"], atol=atol, rtol=1e-4)
    torch.testing.assert_close(ab["tv"], ba["tv"], atol=atol, rtol=1e-4)
    torch.testing.assert_close(ab["kl_ab"], ba["kl_ba"], atol=atol, rtol=1e-4)
    # Pinsker: TV^2 <= KL / 2, up to float32's absolute error of a KL sum (~1e-6 nats)
    assert torch.all(ab["tv"].double() ** 2 <= ab["kl_ab"].double() / 2 + 2e-6)


def test_pair_chunks_bounds_memory() -> None:
    assert pair_chunks(10, 50_000) == 10
    rows = pair_chunks(100_000, 50_000, budget_bytes=64 * 2**20)
    assert rows * 20 * 50_000 <= 64 * 2**20 and rows >= 1
    assert pair_chunks(5, 10**9) == 1
