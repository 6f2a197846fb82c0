"""The fused pair kernel (coilvis.pair_fused): values against float64 references and the torch kernel, when it runs, how it is chosen."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import coilvis
from coilvis import pair_kernel
from coilvis.errors import CoilvisValueError, MissingDependencyError
from coilvis.lens_kernel import Workspace
from coilvis.pair_fused import fused_divergences
from coilvis.pair_kernel import pair_block, pair_kernel_name
from tests.test_pair_kernel import reference

pytest.importorskip("numba")

FIELDS = ("kl_ab", "kl_ba", "js", "tv")


def inputs(x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return x_a, x_b, x_a.softmax(-1), x_b.softmax(-1), x_a.logsumexp(-1), x_b.logsumexp(-1)


def lens_like(seed: int, rows: int = 24, d_vocab: int = 5000, spread: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits shaped like a lens row's: a few large ones over a wide, low tail (wide
    enough at spread 40 that most of the vocabulary's probabilities underflow to 0)."""
    g = torch.Generator().manual_seed(seed)
    x_a = torch.randn(rows, d_vocab, generator=g) * spread
    x_a[:, :5] += 3 * spread
    x_b = x_a + torch.randn(rows, d_vocab, generator=g) * (spread / 4)
    return x_a.contiguous(), x_b.contiguous()


@pytest.mark.parametrize("spread", [0.5, 8.0, 40.0])
def test_values_match_float64_references(spread: float) -> None:
    x_a, x_b = lens_like(1, spread=spread)
    if spread == 40.0:
        assert bool((x_a.softmax(-1) == 0).any()), "the wide rows should have underflowing probabilities"
    got = fused_divergences(*inputs(x_a, x_b))
    assert got is not None
    want = reference(x_a, x_b)
    # float32 logits carry about 2**-24 |x| each: wide rows' inputs limit every kernel
    atol = 1e-5 + 2.0**-20 * float(torch.maximum(x_a.abs().max(), x_b.abs().max()))
    for name in FIELDS:
        assert got[name].dtype == torch.float32 and got[name].shape == (x_a.shape[0],)
        np.testing.assert_allclose(got[name].double().numpy(), want[name].numpy(), atol=atol, rtol=1e-5, err_msg=name)


def test_the_two_kernels_agree() -> None:
    x_a, x_b = lens_like(2, rows=40, spread=12.0)
    fused = pair_block(x_a, x_b, work=Workspace(x_a.shape[1]), kernel="fused")
    plain = pair_block(x_a, x_b, work=Workspace(x_a.shape[1]), kernel="torch")
    for name in FIELDS:
        torch.testing.assert_close(fused[name], plain[name], atol=1e-5, rtol=1e-5, msg=name)


def test_identical_rows_give_zero() -> None:
    x_a, _ = lens_like(3)
    got = pair_block(x_a, x_a.clone(), work=Workspace(x_a.shape[1]), kernel="fused")
    for name in FIELDS:
        assert float(got[name].abs().max()) <= 1e-6, name
    raw = fused_divergences(*inputs(x_a, x_a.clone()))
    assert raw is not None
    assert float(raw["kl_ab"].abs().max()) == 0.0 and float(raw["tv"].abs().max()) == 0.0
    assert float(raw["js"].abs().max()) <= 1e-5  # log Z and the softmax are rounded apart


def test_masked_rows_are_left_to_the_exact_recomputation() -> None:
    """-inf logits make the fused row NaN; pair_block recomputes it term by term."""
    x_a, x_b = lens_like(4, rows=6, d_vocab=400)
    x_a[:3, :40] = -math.inf
    x_b[:3, :40] = -math.inf
    raw = fused_divergences(*inputs(x_a, x_b))
    assert raw is not None and bool(torch.isnan(raw["kl_ab"][:3]).all()) and bool(torch.isfinite(raw["kl_ab"][3:]).all())
    got = pair_block(x_a, x_b, work=Workspace(400), kernel="fused")
    want = reference(x_a[:3, 40:], x_b[:3, 40:])
    for name in FIELDS:
        np.testing.assert_allclose(got[name][:3].double().numpy(), want[name].numpy(), atol=1e-5, err_msg=name)


def test_other_inputs_are_left_to_the_torch_kernel() -> None:
    x_a, x_b = lens_like(5, rows=4, d_vocab=300)
    args = inputs(x_a, x_b)
    assert fused_divergences(*(t.double() for t in args)) is None
    wide_a, wide_b = torch.cat([x_a, x_a], 1), torch.cat([x_b, x_b], 1)
    strided = inputs(wide_a[:, ::2], wide_b[:, ::2])
    assert not strided[0].is_contiguous() and fused_divergences(*strided) is None
    # another device's tensors are never read on the host
    assert fused_divergences(*(t.to("meta") for t in args)) is None
    # pair_block still answers, from the torch kernel
    out = pair_block(x_a.double(), x_b.double(), work=Workspace(300), kernel="fused")
    np.testing.assert_allclose(out["js"].double().numpy(), reference(x_a, x_b)["js"].numpy(), atol=1e-5)


def test_the_kernel_is_chosen_by_name_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COILVIS_PAIR_KERNEL", raising=False)
    monkeypatch.setattr(pair_kernel, "FUSED_MAX_THREADS", 10**6)  # whatever this machine's core count
    assert pair_kernel_name() == "fused" and pair_kernel_name("torch") == "torch"
    monkeypatch.setenv("COILVIS_PAIR_KERNEL", "Torch")
    assert pair_kernel_name() == "torch" and pair_kernel_name("auto") == "fused"
    monkeypatch.setenv("COILVIS_PAIR_KERNEL", "numba")
    with pytest.raises(CoilvisValueError, match="COILVIS_PAIR_KERNEL.*'numba'"):
        pair_kernel_name()
    with pytest.raises(CoilvisValueError, match="kernel: expected one of auto, torch, fused"):
        pair_kernel_name("fast")


def test_auto_leaves_many_threads_to_the_torch_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COILVIS_PAIR_KERNEL", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(pair_kernel.FUSED_MAX_THREADS + 1)
        assert pair_kernel_name() == "torch" and pair_kernel_name("fused") == "fused"
        torch.set_num_threads(1)
        assert pair_kernel_name() == "fused"
    finally:
        torch.set_num_threads(before)


def test_fused_without_numba_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pair_kernel, "fused_available", lambda: False)
    monkeypatch.setattr(pair_kernel, "FUSED_MAX_THREADS", 10**6)
    assert pair_kernel_name("auto") == "torch"
    with pytest.raises(MissingDependencyError, match=r'kernel: .*numba: pip install "coilvis\[fast\]"'):
        pair_kernel_name("fused")


def test_compare_refuses_a_bad_kernel_setting_before_loading_a_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COILVIS_PAIR_KERNEL", "gpu")
    with pytest.raises(CoilvisValueError, match="COILVIS_PAIR_KERNEL"):
        coilvis.compare("one prompt", "another prompt", model="no-such-model-anywhere")
