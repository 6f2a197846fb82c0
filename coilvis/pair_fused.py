"""The pair kernel's four divergences in one pass over each row, compiled with numba (the ``fast`` extra).

:func:`fused_divergences` gives what the torch kernel of :mod:`coilvis.pair_kernel`
gives (KL both ways, Jensen-Shannon and total variation of each row of a block) but
reads each of its four ``(rows, d_vocab)`` inputs once and writes nothing of their size,
where torch's element-wise operations make about seventeen block-sized passes; its sums
are float64, its one transcendental (``log(p_a + p_b)``, for JS) a float32 series on the
number's mantissa (reached by reinterpreting its bits), which the compiler vectorises
with the rest. On a CPU, single-threaded, it takes under half the torch kernel's time
on two cores (see ``benchmarks/bench_compare.py``).

It returns ``None`` (the caller then uses the torch kernel) when numba is not installed
or the inputs are not float32 contiguous CPU tensors. numba compiles the kernel on its
first use in a process (under a second; its cache keeps the result for later processes).

Formulas, with ``d = log p_a - log p_b = (x_a - x_b) - (log Z_a - log Z_b)`` and
``u = p_a + p_b = 2m``::

    KL(a||b) = sum p_a d          KL(b||a) = -sum p_b d          TV = sum |p_a - p_b| / 2
    JS = KL(b||a)/2 + sum m (log p_a - log m)
       = (-sum p_b d + sum u (x_a - log Z_a + ln 2) - sum u log u) / 2

Each term is summed in float64 from the float32 inputs (exact there), so no two float32
numbers near a large logit are subtracted. Rows with infinite logits (a masked
vocabulary) come out NaN here, as in the torch kernel, whose caller recomputes them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["fused_available", "fused_divergences"]

_LN2 = math.log(2.0)
_MANTISSA = np.int32((1 << 23) - 1)
_EXP_ONE = np.int32(127 << 23)
_SQRT2 = np.float32(math.sqrt(2.0))
# reassociation lets the compiler split each sum into vector lanes; NaN and inf keep
# their meaning (no "nnan"/"ninf"), so a masked row is still noticed
_FASTMATH = {"reassoc", "contract", "arcp"}


def _as_bits(x: Any) -> Any:  # pragma: no cover - replaced by an LLVM bitcast when compiled
    """The int32 bits of a float32."""
    return np.float32(x).view(np.int32)


def _from_bits(i: Any) -> Any:  # pragma: no cover - replaced by an LLVM bitcast when compiled
    """The float32 of int32 bits."""
    return np.int32(i).view(np.float32)


def _rows(xa: Any, xb: Any, pa: Any, pb: Any, za: Any, zb: Any, out: Any) -> None:  # pragma: no cover - compiled
    """Row by row: ``out[0..3, r]`` = KL(a||b), KL(b||a), JS, TV, in one pass over the row."""
    for r in range(xa.shape[0]):
        c = np.float64(za[r]) - np.float64(zb[r])
        shift = np.float64(za[r]) - _LN2
        kl_ab = 0.0
        neg_kl_ba = 0.0
        tv = 0.0
        js_lin = 0.0
        u_log_u = 0.0
        for v in range(xa.shape[1]):
            a = np.float64(pa[r, v])
            b = np.float64(pb[r, v])
            x = np.float64(xa[r, v])
            d = (x - np.float64(xb[r, v])) - c
            kl_ab += a * d
            neg_kl_ba += b * d
            tv += abs(a - b)
            w = a + b
            js_lin += w * (x - shift)
            # log u = e ln 2 + log m, from u's exponent and mantissa bits, m in [sqrt(1/2), sqrt(2))
            u = np.float32(w)
            bits = _as_bits(u)
            e = np.float32((bits >> 23) - 127)
            m = _from_bits((bits & _MANTISSA) | _EXP_ONE)
            big = m > _SQRT2
            m = m * np.float32(0.5) if big else m
            e = e + np.float32(1.0) if big else e
            s = (m - np.float32(1.0)) / (m + np.float32(1.0))
            z = s * s
            # log m = 2 atanh s, |s| <= 0.172: five terms leave < 1e-9
            log_m = np.float32(2.0) * s * (
                np.float32(1.0) + z * (np.float32(1.0 / 3) + z * (np.float32(1.0 / 5) + z * (np.float32(1.0 / 7) + z * np.float32(1.0 / 9))))
            )
            term = np.float64(u) * (np.float64(e) * _LN2 + np.float64(log_m))
            u_log_u += term if u > 0 else 0.0  # 0 log 0 = 0 (and a subnormal u's term is < 1e-36)
        out[0, r] = kl_ab
        out[1, r] = -neg_kl_ba
        out[2, r] = 0.5 * ((js_lin - u_log_u) - neg_kl_ba)
        out[3, r] = 0.5 * tv


def _bitcasts(numba: Any) -> tuple[Any, Any]:
    """numba intrinsics reinterpreting a float32 as int32 bits and back (no memory, no conversion)."""
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def as_bits(typingctx: Any, x: Any) -> Any:
        return numba.types.int32(numba.types.float32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(32))

    @intrinsic
    def from_bits(typingctx: Any, i: Any) -> Any:
        return numba.types.float32(numba.types.int32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.FloatType())

    return as_bits, from_bits


@functools.cache
def _compiled() -> Callable[..., None] | None:
    """The numba-compiled :func:`_rows`, or ``None`` without numba."""
    global _as_bits, _from_bits
    try:
        import numba
    except ImportError:
        return None
    _as_bits, _from_bits = _bitcasts(numba)  # what the compiled _rows calls
    options = {"nogil": True, "fastmath": _FASTMATH, "error_model": "numpy", "boundscheck": False}
    try:
        return numba.njit(cache=True, **options)(_rows)
    except RuntimeError:  # no writable cache folder: compile in every process
        return numba.njit(**options)(_rows)


def fused_available() -> bool:
    """Whether numba is installed, so :func:`fused_divergences` can run."""
    return _compiled() is not None


def _eligible(*blocks: torch.Tensor) -> bool:
    first = blocks[0]
    return all(
        t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous() and t.shape == first.shape and not t.requires_grad
        for t in blocks
    ) and first.dim() == 2 and first.shape[1] > 0


def fused_divergences(
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    p_a: torch.Tensor,
    p_b: torch.Tensor,
    log_z_a: torch.Tensor,
    log_z_b: torch.Tensor,
) -> dict[str, torch.Tensor] | None:
    """KL both ways, JS and TV of each row, or ``None`` where the kernel cannot run.

    Shapes: ``x_a``, ``x_b``: (rows, d_vocab) float32 logits; ``p_a``, ``p_b``: (rows,
    d_vocab) their softmax; ``log_z_a``, ``log_z_b``: (rows,) their log-sum-exp.
    Nothing is modified.

    Args:
        x_a: logits of run a.
        x_b: logits of run b.
        p_a: softmax of ``x_a``.
        p_b: softmax of ``x_b``.
        log_z_a: log-sum-exp of ``x_a``.
        log_z_b: log-sum-exp of ``x_b``.

    Returns:
        ``kl_ab``, ``kl_ba``, ``js``, ``tv``: (rows,) float32, unclamped (NaN in a row with
        infinite logits), or ``None`` when numba is missing or the inputs are not float32
        contiguous CPU tensors of one shape.
    """
    kernel = _compiled()
    if kernel is None or not _eligible(x_a, x_b, p_a, p_b):
        return None
    za = log_z_a.detach().to(torch.float32).contiguous().numpy()
    zb = log_z_b.detach().to(torch.float32).contiguous().numpy()
    out = np.empty((4, x_a.shape[0]), dtype=np.float64)
    kernel(x_a.numpy(), x_b.numpy(), p_a.numpy(), p_b.numpy(), za, zb, out)
    values = torch.from_numpy(out.astype(np.float32))
    return {"kl_ab": values[0], "kl_ba": values[1], "js": values[2], "tv": values[3]}
