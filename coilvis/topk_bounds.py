"""Divergences between two next-token distributions known only through their top-k.

A :class:`~coilvis.record.Record` keeps, per position (and per lens cell), the ``k`` most
likely tokens and their probabilities, not the whole distribution. Two such cells ``p``
and ``q`` can still be compared honestly: :func:`topk_divergence` returns the smallest
KL, JS or TV divergence that any pair of full distributions consistent with the two
top-k lists could have, through a coarse-graining of the vocabulary that both lists
determine. By the data-processing inequality (every f-divergence shrinks when outcomes
are merged) this is a **lower bound** of the true divergence, and it is exact when the
top-k lists cover all the mass (``k = d_vocab``, or both distributions zero outside
their lists).

Only numpy is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import LN2

__all__ = ["DIVERGENCES", "topk_divergence"]

DIVERGENCES: tuple[str, ...] = ("kl", "js", "tv")
"""The divergences :func:`topk_divergence` computes."""



def _f(kind: str, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Elementwise contribution of one outcome with masses ``p`` and ``q``, in nats."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "kl":
            out = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
            return np.where((p > 0) & (q <= 0), np.inf, out)
        if kind == "js":
            m = 0.5 * (p + q)
            a = np.where(p > 0, p * (np.log(p) - np.log(m)), 0.0)
            b = np.where(q > 0, q * (np.log(q) - np.log(m)), 0.0)
            return 0.5 * (a + b)
        return 0.5 * np.abs(p - q)


def _check_pair(ids: Any, probs: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    ids_arr = np.asarray(ids)
    probs_arr = np.asarray(probs, dtype=np.float64)
    if ids_arr.ndim < 1 or not np.issubdtype(ids_arr.dtype, np.integer):
        raise CoilvisTypeError(f"{name}_ids: expected an integer array (..., k), got dtype {ids_arr.dtype} shape {ids_arr.shape}")
    if probs_arr.shape != ids_arr.shape:
        raise CoilvisValueError(f"{name}_probs: shape {probs_arr.shape} differs from {name}_ids shape {ids_arr.shape}")
    if ids_arr.shape[-1] < 1:
        raise CoilvisValueError(f"{name}_ids: needs at least one token per cell (k >= 1)")
    if not np.all(np.isfinite(probs_arr)) or np.any(probs_arr < 0):
        raise CoilvisValueError(f"{name}_probs: probabilities must be finite and >= 0")
    if np.any(probs_arr.sum(axis=-1) > 1.0 + 1e-3):
        raise CoilvisValueError(f"{name}_probs: a cell's top-k probabilities sum to more than 1")
    srt = np.sort(ids_arr, axis=-1)
    if np.any(srt[..., 1:] == srt[..., :-1]):
        raise CoilvisValueError(f"{name}_ids: a token id appears twice in one cell's top-k")
    return ids_arr.astype(np.int64), probs_arr


def topk_divergence(
    p_ids: Any,
    p_probs: Any,
    q_ids: Any,
    q_probs: Any,
    *,
    kind: str = "kl",
    bits: bool = False,
    atol: float = 1e-6,
) -> np.ndarray:
    """The divergence between two distributions of which only the top-k are known.

    Shapes: ``p_ids``/``p_probs`` ``(..., k_p)``, ``q_ids``/``q_probs`` ``(..., k_q)``
    with equal leading shapes; returns ``(...)`` float64.

    What is computed. In each cell, split the vocabulary into: every token in *both*
    top-k lists (its own outcome, both masses known); ``X``, the tokens only in p's list
    (mass under p known, under q unknown); ``Y``, the tokens only in q's list; and ``Z``,
    all other tokens. The mass of ``X`` under q is at most ``|X|`` times q's smallest
    top-k probability (a token outside q's list is no likelier than any in it) and at
    most q's leftover mass ``1 - sum(q_probs)``; likewise for ``Y`` under p. The result is
    the smallest divergence between the coarse-grained distributions over these
    outcomes, over every value of the two unknown masses that these bounds allow. The
    true masses are among them, and merging outcomes never increases an f-divergence
    (data-processing inequality), so the result is a **lower bound** of the divergence
    of the full distributions; it equals it when both lists cover all the mass (e.g.
    ``k = d_vocab``). When the lists share few tokens it is still informative: two cells
    whose top-1 tokens differ, each at 0.9, have TV at least 0.8.

    Definitions (textbook): ``KL(p || q) = sum p log(p / q)``, in ``[0, inf]``;
    ``JS(p, q) = KL(p || m)/2 + KL(q || m)/2`` with ``m = (p + q)/2``, in ``[0, ln 2]``
    nats (``[0, 1]`` bits); ``TV(p, q) = sum |p - q| / 2``, in ``[0, 1]``.

    Args:
        p_ids: (..., k_p) token ids of p's top-k (distinct within a cell).
        p_probs: (..., k_p) their probabilities.
        q_ids: (..., k_q) token ids of q's top-k.
        q_probs: (..., k_q) their probabilities.
        kind: ``"kl"`` (KL(p || q)), ``"js"`` or ``"tv"``.
        bits: KL and JS in bits instead of nats (TV has no unit and ignores it).
        atol: floor of each cell's leftover mass ``1 - sum(probs)`` (and of the
            masses of ``Z``), so that float32 rounding of stored probabilities (a top-k
            summing to 1.0000001) never reads as an exact zero and turns a KL infinite;
            the bound then holds up to ``atol * (1 + ln(1 / atol))`` (1.5e-5 nats for
            the default). Use a tiny value (1e-12) for exact float64 inputs.

    Returns:
        (...) float64 lower bound of the divergence (KL is ``inf`` only with
        ``atol=0``, where p must put mass where q puts none).

    Raises:
        CoilvisValueError: unknown ``kind``, mismatched shapes, negative or non-finite
            probabilities, a cell summing to more than 1, a repeated id in a cell.
        CoilvisTypeError: ids are not integers.

    Examples:
        >>> import numpy as np
        >>> p = np.array([0.5, 0.3, 0.2]); q = np.array([0.2, 0.3, 0.5])
        >>> ids = np.arange(3)
        >>> round(float(topk_divergence(ids, p, ids, q, kind="tv")), 6)  # k = d_vocab: exact
        0.3
        >>> round(float(topk_divergence([0], [0.9], [1], [0.9], kind="tv")), 6)  # disjoint top-1
        0.8
    """
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not 0.0 <= atol < 1.0:
        raise CoilvisValueError(f"atol: expected a float in [0, 1), got {atol!r}")
    if kind not in DIVERGENCES:
        raise CoilvisValueError(f"kind: expected one of {DIVERGENCES}, got {kind!r}")
    pi, pp = _check_pair(p_ids, p_probs, "p")
    qi, qp = _check_pair(q_ids, q_probs, "q")
    if pi.shape[:-1] != qi.shape[:-1]:
        raise CoilvisValueError(f"q_ids: leading shape {qi.shape[:-1]} differs from p_ids leading shape {pi.shape[:-1]}")
    lead = pi.shape[:-1]
    cells = _Cells.of(
        pi.reshape(-1, pi.shape[-1]), pp.reshape(-1, pp.shape[-1]), qi.reshape(-1, qi.shape[-1]), qp.reshape(-1, qp.shape[-1]),
        kind=kind, atol=atol,
    )
    best = np.full(cells.shared.shape[0], np.inf)
    for u, v in _candidates(kind, cells):
        best = np.minimum(best, cells.objective(np.clip(u, 0.0, cells.cap_u), np.clip(v, 0.0, cells.cap_v)))
    out = np.maximum(cells.shared + best, 0.0)
    if kind == "js":
        out = np.minimum(out, LN2)
    elif kind == "tv":
        out = np.minimum(out, 1.0)
    if bits and kind != "tv":
        out = out / LN2
    return out.reshape(lead)


@dataclass(frozen=True)
class _Cells:
    """The coarse-graining of n cells (shapes (n,)): the shared tokens' divergence, the
    known masses ``p(X)`` and ``q(Y)``, the leftovers, and the bounds on the unknown
    masses ``u = q(X)`` and ``v = p(Y)``."""

    kind: str
    atol: float
    shared: np.ndarray  # divergence over the tokens in both lists
    mass_x: np.ndarray  # p(X), known
    mass_y: np.ndarray  # q(Y), known
    rest_p: np.ndarray  # p(Y) + p(Z)
    rest_q: np.ndarray  # q(X) + q(Z)
    cap_u: np.ndarray  # bound on q(X)
    cap_v: np.ndarray  # bound on p(Y)

    @classmethod
    def of(cls, pi: np.ndarray, pp: np.ndarray, qi: np.ndarray, qp: np.ndarray, *, kind: str, atol: float) -> _Cells:
        """From (n, k_p) and (n, k_q) ids and probabilities."""
        match = pi[:, :, None] == qi[:, None, :]  # (n, k_p, k_q)
        in_q = match.any(axis=2)  # p's token also in q's list
        in_p = match.any(axis=1)
        # q's probability of each of p's shared tokens (0 where not shared)
        q_at_p = (match * qp[:, None, :]).sum(axis=2)
        rest_p = np.clip(1.0 - pp.sum(axis=1), atol, 1.0)
        rest_q = np.clip(1.0 - qp.sum(axis=1), atol, 1.0)
        return cls(
            kind=kind,
            atol=atol,
            shared=np.where(in_q, _f(kind, pp, q_at_p), 0.0).sum(axis=1),
            mass_x=np.where(in_q, 0.0, pp).sum(axis=1),
            mass_y=np.where(in_p, 0.0, qp).sum(axis=1),
            rest_p=rest_p,
            rest_q=rest_q,
            cap_u=np.minimum((~in_q).sum(axis=1) * qp.min(axis=1), rest_q),
            cap_v=np.minimum((~in_p).sum(axis=1) * pp.min(axis=1), rest_p),
        )

    def objective(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The divergence over X, Y and the rest for unknown masses ``u = q(X)``, ``v = p(Y)``."""
        return (
            _f(self.kind, self.mass_x, u)
            + _f(self.kind, v, self.mass_y)
            # the rest's masses are floored like the leftovers: a rounding residue of
            # p against an exact 0 of q is not an infinite KL
            + _f(self.kind, np.maximum(self.rest_p - v, self.atol), np.maximum(self.rest_q - u, self.atol))
        )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(np.isfinite(out), out, 0.0)


def _candidates(kind: str, c: _Cells) -> list[tuple[np.ndarray, np.ndarray]]:
    """Points ``(u, v)`` among which the objective's minimum over the box lies.

    The objective is jointly convex in (u, v) on the box [0, cap_u] x [0, cap_v]. KL
    and JS have strictly convex generators: a stationary point equalises the ratio p/q
    over the outcomes that vary, so the minimum is the ratio-equalising point if it
    lies in the box, else on an edge where the 1-D minimiser is the clipped
    ratio-equalising point of that edge. TV is piecewise linear: its minimum lies at a
    vertex of the box cut by the lines u = p(X), v = q(Y) and u - v = rest_q - rest_p.
    The caller clips every candidate into the box (so feasible), and the minimiser is
    among them; the smallest value wins.
    """
    ratio = _ratio(c.rest_p + c.mass_x, c.rest_q + c.mass_y)
    zero = np.zeros_like(c.cap_u)
    cands = [
        (_ratio(c.mass_x, ratio), ratio * c.mass_y),
        (c.cap_u, _ratio(c.mass_y * c.rest_p, c.mass_y + c.rest_q - c.cap_u)),
        (np.zeros_like(c.cap_u), _ratio(c.mass_y * c.rest_p, c.mass_y + c.rest_q)),
        (_ratio(c.mass_x * c.rest_q, c.mass_x + c.rest_p - c.cap_v), c.cap_v),
        (_ratio(c.mass_x * c.rest_q, c.mass_x + c.rest_p), np.zeros_like(c.cap_v)),
    ]
    if kind == "tv":
        shift = c.rest_q - c.rest_p  # the line u - v = shift
        mx, my, cu, cv = c.mass_x, c.mass_y, c.cap_u, c.cap_v
        cands += [
            (zero, zero), (cu, zero), (zero, cv), (cu, cv),
            (mx, zero), (mx, cv), (zero, my), (cu, my),
            (zero, -shift), (cu, cu - shift), (shift, zero), (cv + shift, cv),
            (mx, my), (mx, mx - shift), (my + shift, my),
        ]
    return cands
