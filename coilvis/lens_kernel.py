"""The logit lens's statistics kernel: a block of decoded rows reduced to what a lens cell keeps.

A block is ``n_groups`` layers of the same ``P`` positions, ``(n_groups * P, d_vocab)``
float32 logits, about :data:`STATS_BLOCK_ROWS` rows so that its dozen passes stay in
a CPU's last-level cache. :func:`row_stats` makes them: a blocked top-k, one softmax,
two row-wise sums of products (entropy, KL to the final row) and two comparison
counts (ranks). :class:`StatsThreads` picks torch's thread count for these short
passes by timing them. Nothing here knows a model: :mod:`coilvis.logit_lens` decodes
the rows and calls this kernel.

Example:
    >>> import torch
    >>> x = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    >>> values, ids = blocked_topk(x, 2, None)
    >>> ids.tolist(), values.tolist()
    ([[0, 2]], [[3.0, 2.0]])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "FIELDS",
    "STATS_BLOCK_ROWS",
    "FinalRow",
    "StatsThreads",
    "Workspace",
    "block_size",
    "blocked_topk",
    "entropy_of_softmax",
    "rank_in_rows",
    "row_stats",
    "softmax_into",
    "stat_blocks",
]

#: Rows whose statistics are computed at once, within one matmul's rows: 32 rows of a
#: 49k vocabulary and their three scratch buffers (19 MB) stay in a CPU's last-level
#: cache across the dozen passes the statistics make.
STATS_BLOCK_ROWS = 32
#: Blocks timed per thread count before choosing one, and how often the other is retried.
TRIAL_BLOCKS = 3
RETRY_BLOCKS = 64
#: The statistics of a lens cell, as :class:`~coilvis.record.LensStats` names them.
FIELDS = ("topk_ids", "topk_probs", "entropy", "kl_to_final", "next_prob", "next_rank", "final_top_prob", "final_top_rank")


@dataclass
class FinalRow:
    """The final row of one position chunk: what every layer's row is compared with."""

    probs: torch.Tensor  # (P, V) softmax of the final logits
    neg_entropy: torch.Tensor  # (P,) sum p log p
    top_ids: torch.Tensor  # (P, 1) int64 top token of the final row

    def rows(self, start: int, stop: int) -> FinalRow:
        return FinalRow(self.probs[start:stop], self.neg_entropy[start:stop], self.top_ids[start:stop])


class Workspace:
    """Float32 buffers reused from block to block, so that the statistics allocate no
    block-sized memory (large allocations are fresh pages every time) and their passes
    stay in the CPU's cache.

    :meth:`renamed` gives a workspace over the same buffers under other names: two
    kernels that run one after the other share their scratch, and only what must
    outlive a kernel gets a buffer of its own."""

    def __init__(self, d_vocab: int, *, _bufs: dict[str, torch.Tensor] | None = None, _names: dict[str, str] | None = None) -> None:
        self._bufs: dict[str, torch.Tensor] = {} if _bufs is None else _bufs
        self._names = dict(_names or {})
        self.d_vocab = d_vocab
        self.block = block_size(d_vocab)

    def renamed(self, **names: str) -> Workspace:
        """A workspace sharing these buffers, where ``get(old)`` reads buffer ``new`` for each ``old=new``."""
        return Workspace(self.d_vocab, _bufs=self._bufs, _names={**self._names, **names})

    def get(self, name: str, shape: tuple[int, int], device: torch.device) -> torch.Tensor:
        name = self._names.get(name, name)
        buf = self._bufs.get(name)
        n = shape[0] * shape[1]
        if buf is None or buf.numel() < n or buf.device != device:
            buf = torch.empty(n, dtype=torch.float32, device=device)
            self._bufs[name] = buf
        return buf[:n].view(shape)


def block_size(d_vocab: int) -> int | None:
    """The divisor of ``d_vocab`` in [256, 4096] nearest to 1024, or ``None``."""
    best = None
    for size in range(256, min(4096, d_vocab // 8) + 1):
        if d_vocab % size == 0 and (best is None or abs(size - 1024) < abs(best - 1024)):
            best = size
    return best


def blocked_topk(x: torch.Tensor, k: int, block: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(x, k)`` of a (rows, V) block, sorted, in a few cheap passes.

    The vocabulary is cut into blocks of ``block`` tokens; the k largest logits lie in
    the k blocks with the largest maxima (a block outside them has k maxima of other
    blocks at least as large as everything it holds), so one ``amax`` pass picks k
    blocks and the full top-k runs on those ``k * block`` logits only. Ties may be
    ordered differently from ``torch.topk`` (whose order among ties is unspecified).
    """
    rows, d_vocab = x.shape
    if block is None or k * block * 2 > d_vocab:
        return torch.topk(x, k, dim=-1)
    blocks = x.reshape(rows, d_vocab // block, block)
    best_blocks = torch.topk(blocks.amax(dim=-1), k, dim=-1).indices  # (rows, k)
    candidates = blocks.gather(1, best_blocks.unsqueeze(-1).expand(rows, k, block)).view(rows, k * block)
    values, where = torch.topk(candidates, k, dim=-1)
    ids = best_blocks.gather(1, where // block) * block + where % block
    return values, ids


def softmax_into(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, dim=-1)`` of (rows, V) float32 logits, written into ``out``:
    a fresh block-sized result would be new pages every block (about a third of the
    softmax's time on a CPU)."""
    try:
        return torch.ops.aten._softmax.out(x, -1, False, out=out)
    except (AttributeError, RuntimeError, NotImplementedError):  # a torch without the out= form
        out.copy_(torch.softmax(x, dim=-1))
        return out


def rank_in_rows(x: torch.Tensor, value: torch.Tensor, top_v: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    """(rows,) int32 1-based rank of ``value`` (rows, 1) in each row of ``x``: 1 + the
    number of entries strictly greater.

    ``top_v`` (rows, k) are the rows' k largest logits, sorted. Where ``value`` is at
    least the k-th of them, every entry greater than it is among them, so the count
    is read there; only the other rows are counted over the whole vocabulary, as
    float32 ones (exact below 2**24 entries; summing bools casts the whole block to
    integers first, several times slower), all of them when they are most of the block
    (cheaper than copying them out). In a lens's later layers the actual next token and
    the final top token are mostly in the top k: most blocks skip the pass.
    """
    rank = torch.gt(top_v, value).sum(dim=-1, dtype=torch.int32) + 1
    far = (value.squeeze(1) < top_v[:, -1]) | torch.isnan(value.squeeze(1))
    n_far = int(far.sum())
    if 2 * n_far >= x.shape[0]:  # most rows: count them all rather than copy them out
        return torch.gt(x, value, out=buf).sum(dim=-1).to(torch.int32) + 1
    if n_far:
        rows = far.nonzero().squeeze(1)
        sub = x.index_select(0, rows)
        counted = torch.gt(sub, value.index_select(0, rows), out=buf[:n_far]).sum(dim=-1).to(torch.int32) + 1
        rank.index_copy_(0, rows, counted)
    return rank


def row_stats(
    x: torch.Tensor,
    *,
    k: int,
    next_ids: torch.Tensor,
    final: FinalRow | None,
    n_groups: int,
    work: Workspace,
    probs_out: torch.Tensor | None = None,
    keep_probs: bool = False,
) -> tuple[dict[str, torch.Tensor], FinalRow | None]:
    """Statistics of ``x: (n_groups * P, V)`` float32 logits (``n_groups`` layers of the
    same P positions, layer-major).

    One softmax gives ``p`` and ``log Z = max - log p[argmax]``; then, with the logits
    shifted by their maximum once, ``H = -sum p (x - max) - log p[argmax]`` and
    ``KL(f || x) = sum p_f log p_f - sum p_f (x - max) - log p[argmax]``: no two
    numbers near the top logit are subtracted, so a sure row's small entropy and a
    late layer's small KL keep float32's relative precision.

    Args:
        x: (n_groups * P, V) float32 logits (not modified).
        k: top tokens kept.
        next_ids: (P,) int64 actual next token, -1 where unknown.
        final: the final row of these positions; ``None`` when ``x`` is that row.
        n_groups: number of layers stacked in ``x``.
        work: reusable buffers.
        probs_out: (P, V) where the final row's probabilities go (``final is None``).
        keep_probs: also return the rows' probabilities as ``probs`` (a layer's rows;
            the final row's are in ``probs_out``); they live in ``work`` and are
            overwritten by the next call with the same workspace.

    Returns:
        ``(stats, final)``: tensors of shape (n_groups * P, ...), with ``log_z`` (the
        rows' log-sum-exp) besides the :data:`FIELDS` (or ``{"bad": mask}`` when a row
        has NaN/inf logits) and, when ``final`` is ``None``, the final row to compare
        the layers with.
    """
    rows, d_vocab = x.shape
    top_v, top_i = blocked_topk(x, k, work.block)
    buf = work.get("buf", (rows, d_vocab), x.device)
    tgt = next_ids.clamp(min=0).unsqueeze(1).repeat(n_groups, 1)
    next_logit = x.gather(1, tgt)
    next_rank = rank_in_rows(x, next_logit, top_v, buf)
    if final is not None:
        top_logit = x.gather(1, final.top_ids.repeat(n_groups, 1))
        top_rank = rank_in_rows(x, top_logit, top_v, buf)
    probs = softmax_into(x, work.get("probs", (rows, d_vocab), x.device))
    log_p_top = probs.gather(1, top_i[:, :1]).squeeze(1).log()
    log_z = top_v[:, 0] - log_p_top
    if not bool(torch.isfinite(log_z).all()):  # NaN or +inf logits
        return {"bad": ~torch.isfinite(log_z)}, None
    scratch = work.get("scratch", (rows, d_vocab), x.device)
    entropy = entropy_of_softmax(x, probs, top_v[:, 0], log_p_top, buf, scratch)  # buf: x - top
    out = {
        "topk_ids": top_i,
        "topk_probs": (top_v - log_z.unsqueeze(1)).exp_(),
        "entropy": entropy,
        "next_prob": (next_logit.squeeze(1) - log_z).exp_(),
        "next_rank": next_rank,
        "log_z": log_z,
    }
    if final is None:
        assert probs_out is not None
        out["kl_to_final"] = torch.zeros_like(log_z)
        out["final_top_prob"] = out["topk_probs"][:, 0].clone()
        out["final_top_rank"] = torch.ones_like(next_rank)
        probs_out.copy_(probs)
        return out, FinalRow(
            probs=probs_out,
            neg_entropy=-entropy,
            top_ids=top_i[:, :1].to(torch.int64),
        )
    out["final_top_rank"] = top_rank
    out["final_top_prob"] = (top_logit.squeeze(1) - log_z).exp_()
    if keep_probs:
        out["probs"] = probs
    del probs
    out["kl_to_final"] = _kl_to_final(buf, final, log_p_top, n_groups, scratch)
    return out, None


def entropy_of_softmax(
    x: torch.Tensor, probs: torch.Tensor, top: torch.Tensor, log_p_top: torch.Tensor, shifted: torch.Tensor, scratch: torch.Tensor
) -> torch.Tensor:
    """(rows,) entropy in nats of (rows, V) logits ``x`` and their softmax ``probs``,
    given each row's largest logit ``top`` (rows,) and its log-probability
    ``log_p_top`` (rows,). Leaves ``x - top`` in ``shifted`` (rows, V) (the KL to the
    final row reads it); ``scratch`` (rows, V) is overwritten.

    ``H = -sum p (x - top) - log p_top``: the shifted logits and ``log p_top`` are
    small where the row is sure, so nothing near the top logit is subtracted. (``log Z *
    sum p - sum p x``, or even ``-sum p (x - log Z)`` with ``log Z`` in float32, loses
    ``~1e-7 * |x|``: a sure row's entropy of 1e-4 came out 2% off.) Rows with -inf
    logits (a masked vocabulary) count their ``0 * -inf`` terms as 0.
    """
    torch.sub(x, top.unsqueeze(1), out=shifted)
    return _masked_dot(probs, shifted, scratch).neg_().sub_(log_p_top).clamp_(min=0.0)


def _kl_to_final(shifted: torch.Tensor, final: FinalRow, log_p_top: torch.Tensor, n_groups: int, scratch: torch.Tensor) -> torch.Tensor:
    """(n_groups * P,) ``KL(final || x) = sum p_f log p_f - sum p_f log p``, in nats,
    clamped at 0, of ``n_groups`` layers of (P, V) logits stacked in ``x``, given
    ``shifted = x - top`` (their largest logits) and those logits' log-probabilities
    ``log_p_top``; ``scratch`` (at least (P, V)) is overwritten.

    ``log p = (x - top) + log p_top``, as in :func:`entropy_of_softmax`, so a layer
    that agrees with the final one gives a small KL without cancelling numbers near the
    top logit. A -inf logit where ``p_f`` is 0 counts 0; where ``p_f > 0`` the KL is +inf.
    """
    n_pos = shifted.shape[0] // n_groups
    cross = torch.cat([_masked_dot(final.probs, shifted[g * n_pos : (g + 1) * n_pos], scratch[:n_pos]) for g in range(n_groups)])
    kl = final.neg_entropy.repeat(n_groups) - cross - log_p_top
    return kl.clamp_(min=0.0)


def _masked_dot(p: torch.Tensor, logp: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """(P,) ``sum p * logp`` per row, the products written into ``scratch``, with
    ``0 * -inf`` terms as 0."""
    dot = torch.mul(logp, p, out=scratch).sum(dim=-1)
    bad = torch.isnan(dot)
    if bool(bad.any()):
        pb, terms = p[bad], scratch[bad]
        dot[bad] = torch.where(pb > 0, terms, torch.zeros((), dtype=terms.dtype)).sum(-1)
    return dot


class StatsThreads:
    """Runs each block's statistics with a chosen number of torch threads, restoring
    torch's own count afterwards (for the matmuls in between).

    With ``fixed`` the count is fixed. Otherwise it is chosen between torch's count and
    1 by timing the blocks as they run: the statistics are many short passes over a
    cache-sized block, and a short multi-threaded pass waits for every thread, which
    on an idle machine saves time but on a loaded one costs a scheduler time slice per
    pass. Each count is tried on a few blocks, the faster per row is kept, and the
    other is tried again every :data:`RETRY_BLOCKS` blocks (costs are moving averages,
    so a change of load is followed within a retry or two). Results do not depend on
    the choice.
    """

    def __init__(self, fixed: int | None, *, enabled: bool, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        own = torch.get_num_threads()
        if not enabled:
            self.candidates: list[int | None] = [None]
        elif fixed is not None:
            self.candidates = [fixed]
        else:
            self.candidates = sorted({1, own})
        #: seconds per row, a moving average (each block weighs half)
        self.cost: dict[int | None, float] = {n: 0.0 for n in self.candidates}
        self.trials: dict[int | None, int] = {n: 0 for n in self.candidates}
        self.n_blocks = 0

    def _choose(self) -> int | None:
        if len(self.candidates) == 1:
            return self.candidates[0]
        self.n_blocks += 1
        for n in self.candidates:
            if self.trials[n] < TRIAL_BLOCKS:
                return n
        ranked = sorted(self.candidates, key=lambda n: self.cost[n])
        return ranked[1] if self.n_blocks % RETRY_BLOCKS == 0 else ranked[0]

    def run(self, n_rows: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        n = self._choose()
        before = torch.get_num_threads()
        switch = n is not None and n != before
        if switch:
            torch.set_num_threads(n)
        t0 = self.clock()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds = self.clock() - t0
            if switch:
                torch.set_num_threads(before)
            if len(self.candidates) > 1:
                per_row = seconds / max(1, n_rows)
                self.cost[n] = per_row if self.trials[n] == 0 else (self.cost[n] + per_row) / 2
                self.trials[n] += 1


def stat_blocks(n_groups: int, n_pos: int, block_rows: int) -> list[tuple[int, int, int, int]]:
    """Cut ``n_groups`` layers x ``n_pos`` positions into blocks of about ``block_rows``
    rows for the statistics: ``(g0, g1, p0, p1)``, several whole layers per block when
    positions are few, else one layer and a range of positions."""
    if n_pos <= block_rows:
        step = max(1, block_rows // n_pos)
        return [(g, min(n_groups, g + step), 0, n_pos) for g in range(0, n_groups, step)]
    return [(g, g + 1, p, min(n_pos, p + block_rows)) for g in range(n_groups) for p in range(0, n_pos, block_rows)]
