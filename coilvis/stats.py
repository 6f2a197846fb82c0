"""Statistics of next-token distributions, chunked over positions.

This is coilvis's one torch -> numpy boundary. Every function here takes logits as a
torch tensor (any device, any float dtype), a numpy array or a nested list, works on
``chunk_size`` rows at a time in float32 on the tensor's own device, and returns numpy
arrays. So (4096, 50k) logits need only a few chunk-sized float32 buffers beyond the
input, never a second full-size tensor.

Conventions:
    * ``logits: (..., d_vocab)``: unnormalised scores; log-probabilities work as well
      (``log_softmax`` is idempotent).
    * Entropies and divergences are in nats unless ``bits=True``.
    * ``rank`` of a token is 1 + the number of tokens with a strictly greater logit, so
      the argmax has rank 1 and tied tokens share a rank. Ranks are 1-based everywhere
      in coilvis (records, tables, views, the command line); -1 marks "no token".

Example:
    >>> import torch
    >>> from coilvis import stats
    >>> logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0]])
    >>> [round(float(h), 4) for h in stats.entropy(logits, bits=True)]
    [2.0, 0.0022]
    >>> stats.rank_of(logits, [0, 1]).tolist()
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.lens_kernel import (
    Workspace,
    blocked_topk,
    entropy_of_softmax,
    rank_in_rows,
    softmax_into,
)
from coilvis.options import LN2, check_k
from coilvis.record import next_ids_of

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "as_logits",
    "as_tensor",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "log_softmax",
    "next_ids_of",
    "position_stats",
    "prune_attention",
    "rank_of",
    "to_numpy",
    "topk",
    "tv_distance",
]

#: Rows processed at once. 32 rows of a 50k vocabulary are 6 MB of float32, small
#: enough that the several passes per row stay in the CPU's cache.
DEFAULT_CHUNK_SIZE = 32


def to_numpy(tensor: Any) -> np.ndarray:
    """Convert a tensor (any device, 16-bit floats included) to a numpy array.

    Args:
        tensor: a torch tensor, numpy array or nested list.

    Returns:
        A numpy array; 16-bit float tensors become float32.
    """
    if isinstance(tensor, torch.Tensor):
        t = tensor.detach()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        return t.cpu().numpy()
    return np.asarray(tensor)


def as_tensor(value: Any, *, name: str, expected: str) -> torch.Tensor:
    """A torch tensor, numpy array or nested list of numbers as a tensor (no copy where
    possible), before any shape check.

    Args:
        value: the argument.
        name: the argument name used in error messages.
        expected: what the argument should be, for the message when it is not array-like.

    Raises:
        CoilvisTypeError: not array-like, not numeric, or complex.
        CoilvisValueError: ragged nested lists.
    """
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError:
            raise CoilvisValueError(f"{name}: ragged nested lists (rows of different lengths); expected a dense array") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise CoilvisTypeError(f"{name}: expected numbers, got an array of dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise CoilvisTypeError(f"{name}: expected {expected}, got {type(value).__name__}")
    if t.is_complex():
        raise CoilvisTypeError(f"{name}: expected real numbers, got dtype {t.dtype}")
    return t


def as_logits(logits: Any, *, name: str = "logits", ndim: Sequence[int] = (1, 2)) -> torch.Tensor:
    """Check and convert logits to a floating torch tensor (no copy where possible).

    Args:
        logits: ``(d_vocab,)`` or ``(seq_len, d_vocab)`` (see ``ndim``) as a torch
            tensor, numpy array or nested list of numbers.
        name: the argument name used in error messages.
        ndim: allowed numbers of dimensions.

    Returns:
        A floating tensor on the input's device, in its own dtype (16-bit kept; the
        statistics cast each chunk to float32).

    Raises:
        CoilvisTypeError: not array-like, or not numeric.
        CoilvisValueError: wrong number of dimensions, or an empty vocabulary axis.
    """
    t = as_tensor(logits, name=name, expected="a torch tensor or numpy array")
    if t.dim() not in tuple(ndim):
        want = " or ".join(f"{d}-D" for d in ndim)
        raise CoilvisValueError(f"{name}: expected a {want} tensor (.., d_vocab), got shape {tuple(t.shape)}")
    if t.shape[-1] < 1:
        raise CoilvisValueError(f"{name}: the vocabulary axis is empty (shape {tuple(t.shape)})")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


def _chunks(n: int, chunk_size: int) -> Iterator[slice]:
    if chunk_size < 1:
        raise CoilvisValueError(f"chunk_size: expected >= 1, got {chunk_size}")
    for start in range(0, n, chunk_size):
        yield slice(start, min(n, start + chunk_size))


def _check_rows(x: torch.Tensor, log_z: torch.Tensor, start: int, name: str, shape: tuple[int, ...]) -> None:
    """Raise on NaN / +inf / all -inf rows of one chunk (found through its log-sum-exp)."""
    bad = ~torch.isfinite(log_z)
    if not bool(bad.any()):
        return
    lead = shape[:-1]
    nan_rows = (torch.isnan(x).any(dim=-1) | torch.isposinf(x).any(dim=-1)).nonzero().flatten().tolist()
    if nan_rows:
        where = [tuple(int(v) for v in np.unravel_index(start + r, lead)) if lead else () for r in nan_rows[:10]]
        what = ", ".join(str(w[0]) if len(w) == 1 else str(w) for w in where) or "the vector"
        more = f" (and {len(nan_rows) - 10} more in this chunk)" if len(nan_rows) > 10 else ""
        raise CoilvisValueError(f"{name}: NaN or +inf logits at position(s) {what}{more}")
    ninf = bad.nonzero().flatten().tolist()
    where = [tuple(int(v) for v in np.unravel_index(start + r, lead)) if lead else () for r in ninf[:10]]
    what = ", ".join(str(w[0]) if len(w) == 1 else str(w) for w in where) or "the vector"
    raise CoilvisValueError(f"{name}: every logit is -inf at position(s) {what}; no distribution there")


def _log_softmax_chunk(x: torch.Tensor, start: int, name: str, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.to(torch.float32)
    log_z = torch.logsumexp(x, dim=-1)
    _check_rows(x, log_z, start, name, shape)
    return x - log_z.unsqueeze(-1), log_z


def _fast_chunk(
    x: torch.Tensor, k: int, start: int, name: str, shape: tuple[int, ...], work: Workspace
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k, log-sum-exp and entropy of one float32 chunk in a few passes over a
    cache-sized block, the logit lens's kernel (:mod:`coilvis.lens_kernel`).

    One softmax written into ``work``; ``log Z = max(x) - log p[argmax]`` and
    ``H = -sum p (x - max) - log p[argmax]`` (rows holding -inf logits, ``0 * -inf``, are
    recomputed with those terms as 0).

    Returns:
        ``(top_values, top_ids, log_z, entropy, buf)`` of shapes (rows, k), (rows, k),
        (rows,), (rows,), and a (rows, d_vocab) scratch buffer of ``work``.
    """
    rows, d_vocab = x.shape
    v, i = blocked_topk(x, k, work.block)
    p = softmax_into(x, work.get("probs", (rows, d_vocab), x.device))
    log_p_top = p.gather(1, i[:, :1]).squeeze(1).log()
    log_z = v[:, 0] - log_p_top
    _check_rows(x, log_z, start, name, shape)
    buf = work.get("buf", (rows, d_vocab), x.device)
    entropy = entropy_of_softmax(x, p, v[:, 0], log_p_top, buf, work.get("scratch", (rows, d_vocab), x.device))
    return v, i, log_z, entropy, buf


def log_softmax(logits: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Log-probabilities of every token.

    Args:
        logits: (..., d_vocab) logits.
        chunk_size: rows computed at once.

    Returns:
        (..., d_vocab) float32 log-probabilities (each row's exp sums to 1).
    """
    t = as_logits(logits, ndim=range(1, 8))
    rows = _rows(t)
    out = np.empty(tuple(rows.shape), dtype=np.float32)
    for s in _chunks(rows.shape[0], chunk_size):
        logp, _ = _log_softmax_chunk(rows[s], s.start, "logits", tuple(t.shape))
        out[s] = to_numpy(logp)
    return out.reshape(tuple(t.shape))


def entropy(logits: Any, *, bits: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Shannon entropy of each distribution.

    Args:
        logits: (..., d_vocab) logits.
        bits: return bits instead of nats.
        chunk_size: rows computed at once.

    Returns:
        (...) float32 entropy, in [0, ln d_vocab] nats (or [0, log2 d_vocab] bits).
    """
    t = as_logits(logits, ndim=range(1, 8))
    rows = _rows(t)
    out = np.empty(rows.shape[0], dtype=np.float32)
    work = Workspace(int(rows.shape[-1]))
    for s in _chunks(rows.shape[0], chunk_size):
        *_, h, _ = _fast_chunk(rows[s].to(torch.float32), 1, s.start, "logits", tuple(t.shape), work)
        out[s] = to_numpy(h)
    if bits:
        out /= LN2
    return out.reshape(tuple(t.shape[:-1]))


def _check_k(k: int, d_vocab: int) -> int:
    return check_k(k, available=d_vocab)


def topk(logits: Any, k: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k most likely tokens of each distribution.

    Args:
        logits: (..., d_vocab) logits.
        k: how many tokens, >= 1 (more than ``d_vocab`` gives all of them:
            :func:`coilvis.options.check_k`).
        chunk_size: rows computed at once.

    Returns:
        ``(ids, logits, probs)``: (..., k) int64 ids sorted by decreasing logit, their
        float32 logits and float32 probabilities.
    """
    t = as_logits(logits, ndim=range(1, 8))
    k = _check_k(k, t.shape[-1])
    rows = _rows(t)
    n = rows.shape[0]
    ids = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float32)
    probs = np.empty((n, k), dtype=np.float32)
    for s in _chunks(n, chunk_size):
        x = rows[s].to(torch.float32)
        log_z = torch.logsumexp(x, dim=-1)
        _check_rows(x, log_z, s.start, "logits", tuple(t.shape))
        v, i = torch.topk(x, k, dim=-1)
        ids[s], vals[s], probs[s] = to_numpy(i), to_numpy(v), to_numpy((v - log_z.unsqueeze(-1)).exp())
    lead = tuple(t.shape[:-1])
    return ids.reshape(lead + (k,)), vals.reshape(lead + (k,)), probs.reshape(lead + (k,))


def _target_tensor(target_ids: Any, n_rows: int, d_vocab: int, device: torch.device, *, allow_missing: bool, name: str) -> torch.Tensor:
    tid = torch.as_tensor(to_numpy(target_ids) if isinstance(target_ids, torch.Tensor) else np.asarray(target_ids))
    if tid.dim() == 0:
        tid = tid.reshape(1)
    if tid.is_floating_point() or tid.is_complex() or tid.dtype == torch.bool:
        raise CoilvisTypeError(f"{name}: expected integer token ids, got dtype {tid.dtype}")
    tid = tid.reshape(-1).to(torch.int64)
    if tid.shape[0] != n_rows:
        raise CoilvisValueError(f"{name}: expected {n_rows} token ids (one per position), got {tid.shape[0]}")
    lo = -1 if allow_missing else 0
    bad = ((tid < lo) | (tid >= d_vocab)).nonzero().flatten().tolist()
    if bad:
        raise CoilvisValueError(
            f"{name}: token id {int(tid[bad[0]])} at position {bad[0]} is out of range [0, {d_vocab})"
        )
    return tid.to(device)


def rank_of(logits: Any, target_ids: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Rank of a given token in each distribution (1 = argmax).

    Args:
        logits: (seq_len, d_vocab) or (d_vocab,) logits.
        target_ids: (seq_len,) token ids (or one id for a single vector).
        chunk_size: rows computed at once.

    Returns:
        (seq_len,) int64 ranks (1 + the number of tokens with a strictly greater logit).
    """
    t = as_logits(logits)
    rows = _rows(t)
    tid = _target_tensor(target_ids, rows.shape[0], rows.shape[-1], rows.device, allow_missing=False, name="target_ids")
    out = np.empty(rows.shape[0], dtype=np.int64)
    for s in _chunks(rows.shape[0], chunk_size):
        x = rows[s].to(torch.float32)
        _check_rows(x, torch.logsumexp(x, dim=-1), s.start, "logits", tuple(t.shape))
        tv = x.gather(1, tid[s].unsqueeze(1))
        out[s] = to_numpy((x > tv).sum(dim=-1)) + 1
    return out.reshape(tuple(t.shape[:-1]))




def position_stats(
    logits: Any,
    *,
    k: int = 10,
    next_ids: Any | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, np.ndarray]:
    """Everything a Record keeps per position, in one chunked pass.

    Args:
        logits: (seq_len, d_vocab) logits; position i predicts the token at i + 1.
        k: top tokens kept per position.
        next_ids: (seq_len,) id of the actual next token per position, -1 where unknown
            (the last position). ``None`` means unknown everywhere.
        chunk_size: rows computed at once.

    Returns:
        A dict of numpy arrays: ``topk_ids`` (seq_len, k) int64, ``topk_logits`` and
        ``topk_probs`` (seq_len, k) float32, ``log_z`` (seq_len,) float32 log-sum-exp,
        ``entropy`` (seq_len,) float32 nats, ``next_logprob`` (seq_len,) float32 (NaN
        where unknown) and ``next_rank`` (seq_len,) int64 (1 = top; -1 where unknown).
    """
    t = as_logits(logits, ndim=(2,))
    n, d_vocab = t.shape
    k = _check_k(k, d_vocab)
    if next_ids is None:
        tid = torch.full((n,), -1, dtype=torch.int64, device=t.device)
    else:
        tid = _target_tensor(next_ids, n, d_vocab, t.device, allow_missing=True, name="next_ids")
    out = {
        "topk_ids": np.empty((n, k), dtype=np.int64),
        "topk_logits": np.empty((n, k), dtype=np.float32),
        "topk_probs": np.empty((n, k), dtype=np.float32),
        "log_z": np.empty(n, dtype=np.float32),
        "entropy": np.empty(n, dtype=np.float32),
        "next_logprob": np.full(n, np.nan, dtype=np.float32),
        "next_rank": np.full(n, -1, dtype=np.int64),
    }
    work = Workspace(int(d_vocab))
    with torch.no_grad():
        for s in _chunks(n, chunk_size):
            x = t[s].to(torch.float32)
            v, i, log_z, h, buf = _fast_chunk(x, k, s.start, "logits", tuple(t.shape), work)
            ts = tid[s]
            known = ts >= 0
            safe = ts.clamp(min=0).unsqueeze(1)
            tv = x.gather(1, safe)
            rank = rank_in_rows(x, tv, v, buf) - 1
            lp = tv.squeeze(1) - log_z
            out["topk_ids"][s] = to_numpy(i)
            out["topk_logits"][s] = to_numpy(v)
            out["topk_probs"][s] = to_numpy((v - log_z.unsqueeze(-1)).exp())
            out["log_z"][s] = to_numpy(log_z)
            out["entropy"][s] = to_numpy(h)
            known_np = to_numpy(known)
            out["next_logprob"][s] = np.where(known_np, to_numpy(lp), np.nan)
            out["next_rank"][s] = np.where(known_np, to_numpy(rank) + 1, -1)
    return out


def _pair(p_logits: Any, q_logits: Any) -> tuple[torch.Tensor, torch.Tensor]:
    p = as_logits(p_logits, name="p_logits", ndim=range(1, 8))
    q = as_logits(q_logits, name="q_logits", ndim=range(1, 8))
    if p.shape != q.shape:
        raise CoilvisValueError(f"q_logits: shape {tuple(q.shape)} differs from p_logits shape {tuple(p.shape)}")
    if p.device != q.device:
        q = q.to(p.device)
    return p, q


def _divergence(p_logits: Any, q_logits: Any, kind: str, bits: bool, chunk_size: int) -> np.ndarray:
    p, q = _pair(p_logits, q_logits)
    pr, qr = _rows(p), _rows(q)
    out = np.empty(pr.shape[0], dtype=np.float32)
    zero = torch.zeros((), dtype=torch.float32, device=pr.device)
    with torch.no_grad():
        for s in _chunks(pr.shape[0], chunk_size):
            lp, _ = _log_softmax_chunk(pr[s], s.start, "p_logits", tuple(p.shape))
            lq, _ = _log_softmax_chunk(qr[s], s.start, "q_logits", tuple(q.shape))
            pp = lp.exp()
            if kind == "kl":
                d = torch.where(pp > 0, pp * (lp - lq), zero).sum(dim=-1)
            elif kind == "js":
                qq = lq.exp()
                lm = torch.logaddexp(lp, lq) - LN2
                d = 0.5 * torch.where(pp > 0, pp * (lp - lm), zero).sum(dim=-1)
                d = d + 0.5 * torch.where(qq > 0, qq * (lq - lm), zero).sum(dim=-1)
                d = d.clamp(min=0.0, max=LN2)
            else:
                d = 0.5 * (pp - lq.exp()).abs().sum(dim=-1)
                d = d.clamp(min=0.0, max=1.0)
            out[s] = to_numpy(d.clamp(min=0.0) if kind == "kl" else d)
    if bits and kind != "tv":
        out /= LN2
    return out.reshape(tuple(p.shape[:-1]))


def kl_divergence(p_logits: Any, q_logits: Any, *, bits: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Kullback-Leibler divergence KL(p || q) = sum_i p_i (log p_i - log q_i).

    Args:
        p_logits: (..., d_vocab) logits of p (the reference distribution).
        q_logits: (..., d_vocab) logits of q, same shape.
        bits: return bits instead of nats.
        chunk_size: rows computed at once.

    Returns:
        (...) float32 KL in [0, inf) nats; inf where q gives zero mass to a token that
        p does not.
    """
    return _divergence(p_logits, q_logits, "kl", bits, chunk_size)


def js_divergence(p_logits: Any, q_logits: Any, *, bits: bool = False, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Jensen-Shannon divergence JS(p, q) = KL(p || m)/2 + KL(q || m)/2, m = (p + q)/2.

    Args:
        p_logits: (..., d_vocab) logits of p.
        q_logits: (..., d_vocab) logits of q, same shape.
        bits: return bits (then in [0, 1]) instead of nats.
        chunk_size: rows computed at once.

    Returns:
        (...) float32 JS in [0, ln 2] nats; symmetric in p and q.
    """
    return _divergence(p_logits, q_logits, "js", bits, chunk_size)


def tv_distance(p_logits: Any, q_logits: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """Total variation distance TV(p, q) = sum_i |p_i - q_i| / 2.

    Args:
        p_logits: (..., d_vocab) logits of p.
        q_logits: (..., d_vocab) logits of q, same shape.
        chunk_size: rows computed at once.

    Returns:
        (...) float32 TV in [0, 1]; symmetric in p and q.
    """
    return _divergence(p_logits, q_logits, "tv", False, chunk_size)


def prune_attention(
    pattern: Any,
    *,
    top_k: int = 4,
    min_weight: float = 0.0,
    chunk_size: int = 256,
) -> dict[str, np.ndarray]:
    """Keep each query's strongest keys of one layer's attention, per head and for
    the mean and max over heads.

    Works ``chunk_size`` queries at a time, so one layer of a long prompt never needs a
    second dense copy.

    Args:
        pattern: (n_heads, seq_len, seq_len) attention probabilities of one layer
            (query, key), any device and float dtype.
        top_k: keys kept per query and head (fewer when the query sees fewer keys).
        min_weight: drop links lighter than this (links of weight 0 are always dropped).
        chunk_size: query rows handled at once.

    Returns:
        Dict of (n_links,) arrays ``head`` (int16; -1 mean, -2 max over heads),
        ``query`` and ``key`` (int32) and ``weight`` (float32), ordered by head then
        query then decreasing weight.
    """
    if not isinstance(pattern, torch.Tensor):
        pattern = torch.as_tensor(np.asarray(pattern))
    if pattern.dim() != 3 or pattern.shape[1] != pattern.shape[2]:
        raise CoilvisValueError(f"pattern: expected (n_heads, seq_len, seq_len), got shape {tuple(pattern.shape)}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise CoilvisValueError(f"top_k: expected an int >= 1, got {top_k!r}")
    if not (0.0 <= float(min_weight) <= 1.0):
        raise CoilvisValueError(f"min_weight: expected a weight in [0, 1], got {min_weight}")
    n_heads, seq_len, _ = pattern.shape
    kk = min(int(top_k), seq_len)
    parts: dict[str, list[np.ndarray]] = {"head": [], "query": [], "key": [], "weight": []}
    with torch.no_grad():
        for s in _chunks(seq_len, chunk_size):
            block = pattern[:, s, :].to(torch.float32)  # (n_heads, q, seq_len)
            stacked = torch.cat([block, block.mean(dim=0, keepdim=True), block.amax(dim=0, keepdim=True)], dim=0)
            w, key = torch.topk(stacked, kk, dim=-1)  # (n_heads + 2, q, kk)
            head_ids = torch.arange(n_heads + 2, device=w.device)
            head_ids = torch.where(head_ids == n_heads, -1, torch.where(head_ids == n_heads + 1, -2, head_ids))
            head = head_ids.view(-1, 1, 1).expand_as(w)
            query = torch.arange(s.start, s.stop, device=w.device).view(1, -1, 1).expand_as(w)
            keep = (w > 0) & (w >= float(min_weight))
            parts["head"].append(to_numpy(head[keep]).astype(np.int16))
            parts["query"].append(to_numpy(query[keep]).astype(np.int32))
            parts["key"].append(to_numpy(key[keep]).astype(np.int32))
            parts["weight"].append(to_numpy(w[keep]).astype(np.float32))
    out = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    order = np.lexsort((-out["weight"], out["query"], np.where(out["head"] < 0, n_heads - out["head"], out["head"])))
    return {k: v[order] for k, v in out.items()}
