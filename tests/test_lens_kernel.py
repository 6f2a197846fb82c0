"""Tests for coilvis.lens_kernel, the logit lens's statistics kernel: the blocked top-k
against torch.topk, vocabulary block sizes, the thread-count chooser on a fake clock,
and the entropy and KL of sure rows to float64 precision.
The kernel's statistics against full-distribution references are tested through the
engine, in tests/test_lens.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coilvis import stats
from coilvis.lens_kernel import RETRY_BLOCKS, StatsThreads, Workspace, block_size, blocked_topk, row_stats


def test_auto_threads_keep_the_faster_count_and_retry_the_other() -> None:
    """With a fake clock: one thread costs 1 unit per row, n threads 3 units (a loaded
    machine); the chooser tries both, then keeps one thread, retrying the other now and
    then; when the costs swap it follows."""
    now = [0.0]
    cost = {1: 1.0, 4: 3.0}
    threads = StatsThreads(None, enabled=True, clock=lambda: now[0])
    threads.candidates = [1, 4]
    threads.cost = {1: 0.0, 4: 0.0}
    threads.trials = {1: 0, 4: 0}
    used: list[int] = []

    def block() -> None:
        n = torch.get_num_threads()
        used.append(n)
        now[0] += cost[n] * 32

    before = torch.get_num_threads()
    for _ in range(2 * RETRY_BLOCKS):
        threads.run(32, block)
    assert torch.get_num_threads() == before
    assert used[:6].count(1) == 3 and used[:6].count(4) == 3
    assert used[6:].count(4) == 2  # one retry per RETRY_BLOCKS blocks
    cost[1], cost[4] = 3.0, 1.0
    for _ in range(2 * RETRY_BLOCKS):
        threads.run(32, block)
    tail = used[-RETRY_BLOCKS:]
    assert tail.count(1) == 1  # now only the retry


#: (name, d_vocab, k): vocabulary sizes with and without a block divisor, k up to the
#: point where the plain torch.topk takes over.
TOPK_CASES = [("49152 k1", 49152, 1), ("49152 k5", 49152, 5), ("49152 k24", 49152, 24), ("49152 k40", 49152, 40),
              ("50257 k5", 50257, 5), ("prime 50261 k5", 50261, 5), ("4096 k2", 4096, 2)]


@pytest.mark.parametrize(("name", "d_vocab", "k"), TOPK_CASES, ids=[c[0] for c in TOPK_CASES])
def test_blocked_topk_equals_torch_topk(name: str, d_vocab: int, k: int) -> None:
    gen = torch.Generator().manual_seed(d_vocab + k)
    x = torch.randn(6, d_vocab, generator=gen) * 4
    # the winners crowded into one block and spread over others
    x[0, 5:5 + k] = 100.0 + torch.arange(k, dtype=torch.float32)
    values, ids = blocked_topk(x, k, block_size(d_vocab))
    want_values, want_ids = torch.topk(x, k, dim=-1)
    torch.testing.assert_close(values, want_values, atol=0, rtol=0)
    torch.testing.assert_close(ids, want_ids, atol=0, rtol=0)


def testblock_sizes_divide_the_vocabulary() -> None:
    assert [block_size(v) for v in (49152, 50257, 128256, 32000, 100, 50261)] == [1024, 1733, 1002, 1000, None, None]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 12),
    k=st.integers(1, 6),
    near=st.lists(st.booleans(), min_size=12, max_size=12),
    levels=st.sampled_from([3, 8, 1000]),
)
def test_ranks_read_from_the_top_k_equal_full_counts(seed: int, rows: int, k: int, near: list[bool], levels: int) -> None:
    """The ranks row_stats reports (the actual next token's, and the final top token's)
    equal 1 + a full count of strictly greater logits, whether the token is inside the
    top k (read there), outside it (counted) or tied with it, in mixed blocks. Logits on
    a few integer levels make ties common."""
    gen = torch.Generator().manual_seed(seed)
    d_vocab = 2048
    x = torch.randint(0, levels, (rows, d_vocab), generator=gen).to(torch.float32)
    order = torch.argsort(x, dim=-1, descending=True, stable=True)
    # the next token: one of the top few where asked, else anywhere
    pick = torch.randint(0, d_vocab, (rows,), generator=gen)
    pick = torch.where(torch.tensor(near[:rows]), pick % (k + 1), pick)
    next_ids = order.gather(1, pick.unsqueeze(1)).squeeze(1)
    work = Workspace(d_vocab)
    final_logits = torch.randint(0, levels, (rows, d_vocab), generator=gen).to(torch.float32)
    _, final = row_stats(final_logits, k=k, next_ids=next_ids, final=None, n_groups=1, work=work,
                         probs_out=torch.empty(rows, d_vocab))
    assert final is not None
    out, _ = row_stats(x, k=k, next_ids=next_ids, final=final, n_groups=1, work=work)
    want_next = (x > x.gather(1, next_ids.unsqueeze(1))).sum(dim=-1) + 1
    want_top = (x > x.gather(1, final.top_ids)).sum(dim=-1) + 1
    assert out["next_rank"].tolist() == want_next.tolist()
    assert out["final_top_rank"].tolist() == want_top.tolist()


@settings(max_examples=60, deadline=None)
@given(
    top=st.floats(-60.0, 60.0),
    gaps=st.lists(st.floats(4.0, 30.0), min_size=1, max_size=7),
    masked=st.booleans(),
)
def test_sure_rows_keep_their_small_entropy_and_kl(top: float, gaps: list[float], masked: bool) -> None:
    """A sure row (its top logit far above the rest, wherever it sits) has a tiny
    entropy; it comes out to float32 precision of itself, not of the top logit (the
    form ``log Z * sum p - sum p x`` cancelled two numbers near ``top`` and was 2% off
    at 1e-4). Likewise the KL between two nearly equal sure rows, and both in
    stats.position_stats; log p_top (float32, near 0) adds a few 1e-7 nats of its own. A
    masked (-inf) logit counts 0."""
    x = torch.tensor([[top] + [top - g for g in gaps] + ([float("-inf")] if masked else [])], dtype=torch.float32)
    f = x.clone()
    f[0, 1] -= 0.5
    ref_lp = torch.log_softmax(x.double(), -1)
    ref_f = torch.log_softmax(f.double(), -1)
    want_h = -(ref_lp.exp() * ref_lp).nan_to_num().sum(-1)
    want_kl = (ref_f.exp() * (ref_f - ref_lp)).nan_to_num().sum(-1)
    work = Workspace(x.shape[1])
    next_ids = torch.tensor([-1])
    _, final = row_stats(f, k=1, next_ids=next_ids, final=None, n_groups=1, work=work, probs_out=torch.empty_like(f))
    out, _ = row_stats(x, k=1, next_ids=next_ids, final=final, n_groups=1, work=work)
    torch.testing.assert_close(out["entropy"].double(), want_h, rtol=1e-4, atol=5e-7)
    # log p_top (float32, near 0) carries a few 1e-7 of its own (the softmax rounds p_top); the old form lost ~1e-7 * |top|
    torch.testing.assert_close(out["kl_to_final"].double(), want_kl, rtol=1e-3, atol=5e-7)
    got = stats.position_stats(x, k=1)["entropy"]
    torch.testing.assert_close(torch.as_tensor(got).double(), want_h, rtol=1e-4, atol=5e-7)


def test_renamed_workspace_shares_buffers_except_the_renamed_ones() -> None:
    work = Workspace(100)
    other = work.renamed(probs="probs_b")
    cpu = torch.device("cpu")
    work.get("buf", (2, 100), cpu).fill_(1.0)
    assert float(other.get("buf", (2, 100), cpu).sum()) == 200.0  # one buffer for both
    work.get("probs", (2, 100), cpu).fill_(3.0)
    other.get("probs", (2, 100), cpu).fill_(5.0)
    assert float(work.get("probs", (2, 100), cpu).sum()) == 600.0  # each its own
    assert work.renamed(t="buf").get("t", (1, 100), cpu).data_ptr() == work.get("buf", (1, 100), cpu).data_ptr()
