"""Tie-tolerant comparisons of ranks and top-k orders.

Two near-tied logits can swap order between matmul kernels (another CPU, another chunk
size, batched against unbatched), so a test never compares ranks or top-k ids of
computed floats exactly. A rank is right when the token's value is within ``atol`` of
the value at that rank in the reference row; top-k ids are right when the reference
values they pick equal the reference top-k's values, in order, within ``atol``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Default tolerance on logits or log-probabilities (float32 work, float64 references).
ATOL = 1e-4


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        x = (x.double() if x.is_floating_point() else x).numpy()
    return np.asarray(x)


def assert_ranks_tie_equal(rank: Any, values: Any, target: Any, *, atol: float = ATOL, missing: int = -1) -> None:
    """Each ``rank[i]`` is a rank of ``target[i]`` in ``values[i]`` up to near-ties.

    Args:
        rank: (n,) computed ranks, 1-based as everywhere in coilvis (``missing`` where
            ``target`` is negative).
        values: (n, d_vocab) reference logits or log-probabilities.
        target: (n,) token ids (negative: no token, so ``rank`` must be ``missing``).
        atol: how close the value at the computed rank must be to the token's value.
    """
    rank, values, target = _np(rank).reshape(-1), _np(values), _np(target).reshape(-1).astype(np.int64)
    values = values.reshape(-1, values.shape[-1]).astype(np.float64)
    assert rank.shape == target.shape == values.shape[:1], (rank.shape, target.shape, values.shape)
    for i, (r, t) in enumerate(zip(rank.tolist(), target.tolist())):
        if t < 0:
            assert r == missing, f"row {i}: no target, expected rank {missing}, got {r}"
            continue
        assert 1 <= r <= values.shape[1], f"row {i}: rank {r} out of range"
        at_rank = np.sort(values[i])[::-1][r - 1]
        assert abs(at_rank - values[i, t]) <= atol, (
            f"row {i}: token {t} (value {values[i, t]:.6g}) is not within {atol} of the value at rank {r} ({at_rank:.6g})"
        )


def assert_topk_tie_equal(ids: Any, values: Any, *, atol: float = ATOL) -> None:
    """``ids`` (..., k) are the top-k of ``values`` (..., d_vocab), in order, up to near-ties."""
    ids, values = _np(ids).astype(np.int64), _np(values).astype(np.float64)
    k = ids.shape[-1]
    got = np.take_along_axis(values, ids, axis=-1)
    want = -np.sort(-values, axis=-1)[..., :k]
    np.testing.assert_allclose(got, want, atol=atol, rtol=0, err_msg="top-k ids pick values that are not the top-k values")
    for row in ids.reshape(-1, k):
        assert len(set(row.tolist())) == k, f"repeated ids in a top-k row: {row.tolist()}"


def assert_topk_ids_agree(ids_a: Any, ids_b: Any, values: Any, *, atol: float = ATOL) -> None:
    """Two top-k id lists of one distribution agree, except in the order of near-ties.

    Args:
        ids_a, ids_b: (..., k) top-k ids from two computations.
        values: (..., k) the sorted top-k values of one of them (logits or log-probs).
        atol: values closer than this may swap (and the k-th may differ).
    """
    ids_a, ids_b = _np(ids_a).astype(np.int64), _np(ids_b).astype(np.int64)
    values = _np(values).astype(np.float64)
    gap = np.abs(np.diff(values, axis=-1)) > atol
    separated = np.ones(values.shape, dtype=bool)
    separated[..., :-1] &= gap
    separated[..., 1:] &= gap
    separated[..., -1] = False  # the k-th may tie with the (k+1)-th, unseen here
    np.testing.assert_array_equal(np.where(separated, ids_a, -1), np.where(separated, ids_b, -1))
