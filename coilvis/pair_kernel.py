"""Exact divergences between two runs' next-token distributions, a block of full-vocabulary rows at a time.

Row ``i`` of ``x_a`` and row ``i`` of ``x_b`` are the logits two runs gave at one
position (or one lens cell): :func:`pair_block` reduces them to the numbers a comparison
keeps, over the whole vocabulary, with no approximation:

* ``kl_ab = sum_v p_a (log p_a - log p_b)`` and ``kl_ba``, in nats, >= 0 (``inf`` where
  one run gives a token zero mass that the other does not);
* ``js = KL(p_a || m)/2 + KL(p_b || m)/2`` with ``m = (p_a + p_b)/2``, in [0, ln 2] nats;
* ``tv = sum_v |p_a - p_b| / 2``, in [0, 1];
* optionally the tokens whose probability rose or fell most from ``a`` to ``b`` (the top
  movers), a logit difference (a metric), and the change in one token's log-probability.

The block is a few hundred rows, so its scratch buffers (a handful of ``(rows, d_vocab)``
float32 tensors, reused from block to block by a :class:`~coilvis.lens_kernel.Workspace`)
stay small; callers cut longer inputs into blocks. Probabilities and log-normalisers the
caller already has (the lens computes them for its own statistics) are reused, not
recomputed. Everything runs where the logits are (CPU, CUDA, MPS).

Kernels: on a CPU, with numba installed (``pip install "coilvis[fast]"``), the four
divergences come from :mod:`coilvis.pair_fused`, one compiled single-threaded pass over
each row (under half the time of torch's kernel on two cores); otherwise from torch's
element-wise operations, which use every thread torch has. ``"auto"`` (the default)
picks the fused kernel while torch runs on at most :data:`FUSED_MAX_THREADS` threads
(beyond that torch's kernel may be the faster; the lens, which times its blocks with
one thread and with torch's count, then keeps whichever is faster). ``kernel=`` (or the
environment variable ``COILVIS_PAIR_KERNEL``) picks one: ``"auto"``, ``"torch"`` or
``"fused"``. Both give the same values to float32's precision.

Example:
    >>> import torch
    >>> x_a = torch.tensor([[2.0, 0.0, 0.0]]); x_b = torch.tensor([[0.0, 2.0, 0.0]])
    >>> out = pair_block(x_a, x_b, work=Workspace(3))
    >>> round(float(out["js"][0]), 4), round(float(out["tv"][0]), 4)
    (0.2929, 0.6805)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from coilvis.errors import CoilvisValueError, MissingDependencyError
from coilvis.lens_kernel import Workspace
from coilvis.pair_fused import fused_available, fused_divergences

__all__ = ["FUSED_MAX_THREADS", "KERNELS", "PAIR_FIELDS", "MetricIds", "Workspace", "pair_block", "pair_chunks", "pair_kernel_name"]

#: The divergences :func:`pair_block` always returns, each ``(rows,)`` float32.
PAIR_FIELDS = ("kl_ab", "kl_ba", "js", "tv")
#: The kernels :func:`pair_block` can use for them.
KERNELS = ("auto", "torch", "fused")
#: The environment variable that picks the kernel where ``kernel=None``.
KERNEL_ENV = "COILVIS_PAIR_KERNEL"
#: ``"auto"`` uses the fused kernel while torch has at most this many threads: measured
#: on two cores, the single-threaded fused kernel takes 0.9 ms per 32 rows of 49,152, torch's
#: 3.9 ms on one thread and 1.8 ms on two.
FUSED_MAX_THREADS = 4

_LN2 = math.log(2.0)
# log m where m underflows to 0 (both probabilities 0): any finite value keeps the
# products p * (log p - log m) at 0 there.
_LOG_FLOOR = -1.0e4


@dataclass(frozen=True)
class MetricIds:
    """A logit difference: the mean logit of ``plus`` minus the mean logit of ``minus``.

    Attributes:
        plus: (n_plus,) int64 token ids (on the logits' device).
        minus: (n_minus,) int64 token ids.
    """

    plus: torch.Tensor
    minus: torch.Tensor

    def of(self, x: torch.Tensor) -> torch.Tensor:
        """(rows,) float32 the metric of ``x: (rows, d_vocab)`` logits."""
        x = x.to(torch.float32)
        return x.index_select(1, self.plus).mean(dim=1) - x.index_select(1, self.minus).mean(dim=1)


def pair_kernel_name(kernel: str | None = None) -> str:
    """The kernel :func:`pair_block` uses on CPU float32 blocks: ``"fused"`` or ``"torch"``.

    ``"auto"`` gives ``"fused"`` where numba is installed and torch runs on at most
    :data:`FUSED_MAX_THREADS` threads, else ``"torch"``.

    Args:
        kernel: ``"auto"``, ``"torch"``, ``"fused"``, or ``None`` for the environment
            variable ``COILVIS_PAIR_KERNEL`` (``"auto"`` when unset).

    Raises:
        CoilvisValueError: an unknown kernel name (naming where it came from).
        MissingDependencyError: ``"fused"`` without numba.
    """
    where = "kernel"
    if kernel is None:
        kernel, where = os.environ.get(KERNEL_ENV, "auto").strip().lower() or "auto", KERNEL_ENV
    if kernel not in KERNELS:
        raise CoilvisValueError(f"{where}: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    if kernel == "torch" or (kernel == "auto" and torch.get_num_threads() > FUSED_MAX_THREADS):
        return "torch"
    if fused_available():
        return "fused"
    if kernel == "fused":
        raise MissingDependencyError(f'{where}: the fused pair kernel needs numba: pip install "coilvis[fast]"')
    return "torch"


def _probs(x: torch.Tensor, name: str, work: Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, log_z)`` of (rows, V) logits, ``p`` in a workspace buffer."""
    log_z = torch.logsumexp(x, dim=-1)
    p = work.get(name, tuple(x.shape), x.device)
    torch.sub(x, log_z.unsqueeze(1), out=p).exp_()
    return p, log_z


def pair_block(
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    *,
    work: Workspace,
    p_a: torch.Tensor | None = None,
    p_b: torch.Tensor | None = None,
    log_z_a: torch.Tensor | None = None,
    log_z_b: torch.Tensor | None = None,
    movers: int = 0,
    metric: MetricIds | None = None,
    target_ids: torch.Tensor | None = None,
    kernel: str | None = None,
) -> dict[str, torch.Tensor]:
    """Exact divergences (and extras) between two blocks of logits, row by row.

    Shapes: ``x_a``, ``x_b``: (rows, d_vocab) float32 logits of the two runs at the same
    rows; ``p_a``/``p_b``: (rows, d_vocab) their softmax and ``log_z_a``/``log_z_b``:
    (rows,) their log-sum-exp, when the caller already has them (both or neither of a
    run's pair); ``target_ids``: (rows,) int64, -1 where there is none. Neither input is
    modified.

    Args:
        x_a: logits of run a.
        x_b: logits of run b.
        work: scratch buffers, reused across calls.
        p_a: softmax of ``x_a``, or ``None`` to compute it.
        p_b: softmax of ``x_b``, or ``None``.
        log_z_a: log-sum-exp of ``x_a`` (with ``p_a``).
        log_z_b: log-sum-exp of ``x_b`` (with ``p_b``).
        movers: how many top movers to return each way (0: none).
        metric: a logit difference to evaluate on both runs.
        target_ids: tokens whose change in log-probability to return.
        kernel: ``"auto"``, ``"torch"`` or ``"fused"`` (see :func:`pair_kernel_name`);
            ``None`` reads ``COILVIS_PAIR_KERNEL``. The fused kernel runs on CPU float32
            blocks only; elsewhere the torch kernel does.

    Returns:
        ``kl_ab``, ``kl_ba``, ``js``, ``tv``: (rows,) float32 (nats; TV in [0, 1]).
        With ``movers``: ``rise_ids``/``fall_ids`` (rows, movers) int64 (the tokens whose
        probability rose / fell most, largest change first) and ``rise_prob_a``,
        ``rise_prob_b``, ``fall_prob_a``, ``fall_prob_b`` (rows, movers) float32.
        With ``metric``: ``metric_a``, ``metric_b`` (rows,) float32. With
        ``target_ids``: ``delta_logprob`` (rows,) float32 ``log p_b(t) - log p_a(t)``
        (NaN where ``t`` is -1).
    """
    if p_a is None or log_z_a is None:
        p_a, log_z_a = _probs(x_a, "p_a", work)
    if p_b is None or log_z_b is None:
        p_b, log_z_b = _probs(x_b, "p_b", work)
    shape = tuple(x_a.shape)
    out = None
    if pair_kernel_name(kernel) == "fused":
        out = fused_divergences(x_a, x_b, p_a, p_b, log_z_a, log_z_b)
    if out is None:
        buffers = (work.get(name, shape, x_a.device) for name in ("d", "t", "u"))
        out = _divergences(x_a, x_b, p_a, p_b, log_z_a, log_z_b, *buffers)
    _finish(out, x_a, x_b, log_z_a, log_z_b)
    if movers:
        out.update(_movers(p_a, p_b, movers, work.get("t", shape, x_a.device)))
    if metric is not None:
        out["metric_a"], out["metric_b"] = metric.of(x_a), metric.of(x_b)
    if target_ids is not None:
        tgt = target_ids.clamp(min=0).unsqueeze(1)
        delta = (x_b.gather(1, tgt).squeeze(1) - log_z_b) - (x_a.gather(1, tgt).squeeze(1) - log_z_a)
        out["delta_logprob"] = torch.where(target_ids >= 0, delta, torch.full_like(delta, math.nan))
    return out


def _divergences(
    x_a: torch.Tensor, x_b: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor,
    log_z_a: torch.Tensor, log_z_b: torch.Tensor, d: torch.Tensor, t: torch.Tensor, u: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """KL both ways, JS and TV of one block; ``d``, ``t`` and ``u`` (rows, V) are scratch.

    With ``d = log p_a - log p_b``: ``KL(a||b) = sum p_a d``, ``KL(b||a) = -sum p_b d``. JS is
    ``KL(b||a)/2 + sum m (log p_a - log m)`` (the second sum is ``-KL(m||a)``): since
    ``log p_b - log m = (log p_a - log m) - d``, JS's two sums fold into one over ``2m =
    p_a + p_b``, summed term by term, each ``2m log(p_a / m)`` small where the runs agree,
    never as a difference of entropies (whose ~30-nat terms would cancel to float32
    noise). Its one transcendental pass is ``log 2m`` (``logaddexp`` or ``softplus`` of
    ``d`` cost four times as much)."""
    torch.sub(x_a, x_b, out=d).sub_((log_z_a - log_z_b).unsqueeze(1))
    kl_ab = torch.mul(p_a, d, out=t).sum(dim=-1)
    kl_ba = torch.mul(p_b, d, out=t).sum(dim=-1).neg_()
    tv = torch.sub(p_a, p_b, out=t).abs_().sum(dim=-1).mul_(0.5)
    two_m = torch.add(p_a, p_b, out=u)
    log_2m = torch.log(two_m, out=t).clamp_(min=_LOG_FLOOR)
    # log p_a - log m = x_a - (log_z_a - ln 2) - log 2m, weighted by 2m
    w = torch.sub(x_a, log_2m, out=t).sub_((log_z_a - _LN2).unsqueeze(1)).mul_(two_m)
    js = w.sum(dim=-1).add_(kl_ba).mul_(0.5)
    return {"kl_ab": kl_ab, "kl_ba": kl_ba, "js": js, "tv": tv}


def _finish(out: dict[str, torch.Tensor], x_a: torch.Tensor, x_b: torch.Tensor, log_z_a: torch.Tensor, log_z_b: torch.Tensor) -> None:
    """Rows with infinite logits recomputed term by term, then every value clamped to its range."""
    bad = ~(torch.isfinite(out["kl_ab"]) & torch.isfinite(out["kl_ba"]) & torch.isfinite(out["js"]))
    if bool(bad.any()):  # -inf logits (a masked vocabulary): count 0 * inf terms as 0
        _exact_rows(out, bad, x_a, x_b, log_z_a, log_z_b)
    out["kl_ab"].clamp_(min=0.0)
    out["kl_ba"].clamp_(min=0.0)
    out["js"].clamp_(min=0.0, max=_LN2)
    out["tv"].clamp_(min=0.0, max=1.0)


def _exact_rows(
    out: dict[str, torch.Tensor], rows: torch.Tensor, x_a: torch.Tensor, x_b: torch.Tensor, log_z_a: torch.Tensor, log_z_b: torch.Tensor
) -> None:
    """Recompute rows with infinite logits, with ``0 log 0 = 0`` explicit."""
    lp_a = x_a[rows] - log_z_a[rows].unsqueeze(1)
    lp_b = x_b[rows] - log_z_b[rows].unsqueeze(1)
    pa, pb = lp_a.exp(), lp_b.exp()
    zero = torch.zeros((), dtype=pa.dtype, device=pa.device)

    def kl(p: torch.Tensor, lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        return torch.where(p > 0, p * (lp - lq), zero).sum(dim=-1)

    lm = torch.logaddexp(lp_a, lp_b) - _LN2
    out["kl_ab"][rows] = kl(pa, lp_a, lp_b)
    out["kl_ba"][rows] = kl(pb, lp_b, lp_a)
    out["js"][rows] = 0.5 * (kl(pa, lp_a, lm) + kl(pb, lp_b, lm))


def _movers(p_a: torch.Tensor, p_b: torch.Tensor, n: int, t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``n`` tokens whose probability rose most from a to b, and the ``n`` that fell most."""
    n = min(n, p_a.shape[1])
    change = torch.sub(p_b, p_a, out=t)
    rise_ids = torch.topk(change, n, dim=-1).indices
    fall_ids = torch.topk(change, n, dim=-1, largest=False).indices
    return {
        "rise_ids": rise_ids,
        "rise_prob_a": p_a.gather(1, rise_ids),
        "rise_prob_b": p_b.gather(1, rise_ids),
        "fall_ids": fall_ids,
        "fall_prob_a": p_a.gather(1, fall_ids),
        "fall_prob_b": p_b.gather(1, fall_ids),
    }


def pair_chunks(n_rows: int, d_vocab: int, *, budget_bytes: int = 256 * 2**20) -> int:
    """Rows per block so that the scratch of :func:`pair_block` (five (rows, d_vocab)
    float32 buffers) stays within ``budget_bytes``; at least 1, at most ``n_rows``.

    >>> pair_chunks(10_000, 50_000)
    268
    """
    per_row = 5 * 4 * d_vocab
    return max(1, min(n_rows, budget_bytes // per_row))
