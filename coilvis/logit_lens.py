"""The logit lens engine: rows of residual stream decoded by a head, reduced in chunks to statistics.

Row ``i`` of a :class:`~coilvis.record.LensStats` is one residual stream (the
embedding output, the output of each block, optionally the residual after each
block's attention) passed through a decoder: what the model itself applies before its
logits, found by :func:`coilvis.models.anatomy.decoder_for` (the final norm, the
output head and, for Gemma 2/3, the final logit soft-capping). The last row is the
model's own output, taken from its logits. The engine knows no model family: it takes
the residuals (in the layout of :func:`coilvis.models.anatomy.residual_layout`, which
every adapter returns) and a decoder.

Memory and speed: the ``(n_rows, seq_len, d_vocab)`` tensor never exists. Positions
are cut into chunks; for each chunk the final row's probabilities are computed first
and kept, then every layer of that chunk is decoded (one matmul of up to
``chunk_rows`` rows, several layers of at most 256 positions each) and reduced
to statistics block by block by :mod:`coilvis.lens_kernel`. Only
``(n_rows, seq_len, k)`` numbers are kept. On the default model the lens costs about
1.1-1.3x the bare unembedding matmul it cannot avoid (``benchmarks/bench_lens.py``).

Statistics (natural logarithms, float32):
    * ``entropy = log Z - sum_v p_v x_v``, in nats.
    * ``kl_to_final = sum_v p^final_v (log p^final_v - log p_v)``, in nats, >= 0.
    * a rank is 1 + the number of tokens with a strictly greater logit (1 = top; ties
      share a rank), as everywhere in coilvis.

Example:
    >>> import torch
    >>> from coilvis.logit_lens import compute_lens
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> w_u = torch.randn(7, 4)
    >>> resid = [("embed", torch.randn(3, 4)), ("0", torch.randn(3, 4))]
    >>> final = torch.randn(3, 4) @ w_u.T
    >>> lens = compute_lens(None, resid, logits=final, next_ids=[2, 5, -1], k=2,
    ...                     decoder=lambda x: x @ w_u.T)
    >>> lens.layer_names, lens.topk_ids.shape, float(lens.kl_to_final[-1].max())
    (('embed', '0', '1'), (3, 3, 2), 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.lens_kernel import (
    FIELDS,
    STATS_BLOCK_ROWS,
    FinalRow,
    StatsThreads,
    Workspace,
    row_stats,
    stat_blocks,
)
from coilvis.models.anatomy import Decoder, decoder_for, final_row_name, n_layers_of
from coilvis.options import check_k
from coilvis.record import LensStats

__all__ = ["DEFAULT_CHUNK_ROWS", "POSITION_CHUNK", "Block", "PreparedLens", "Progress", "compute_lens", "prepare_lens"]

#: Rows decoded per matmul: 1,024 rows of a 49k vocabulary are 200 MB of float32
#: logits, in one buffer reused for every matmul. On a 2-core CPU a [rows, 576] x
#: [576, 49152] matmul costs ~15% less per row at 1,024 rows than at 256.
DEFAULT_CHUNK_ROWS = 1024
#: Positions per chunk, at most: the final row's probabilities of a chunk's positions
#: are kept while its layers are decoded (256 positions: 50 MB); a long prompt's
#: matmul stacks ``chunk_rows // 256`` layers of those positions.
POSITION_CHUNK = 256
#: Relative tolerance when checking the decoder against the model's own logits.
_CHECK_RTOL = {torch.float32: 1e-4, torch.float64: 1e-6}
_CHECK_RTOL_LOW_PRECISION = 3e-2
_CHECK_POSITIONS = 8

Rows = list[tuple[str, torch.Tensor]]


#: ``progress=`` of the lens: show a bar (True), nothing (False), or call
#: ``progress(done, total)`` with decoded rows as they are done.
Progress = bool | Callable[[int, int], None]


class _CallbackBar:
    """A progress bar that reports ``(done, total)`` to a callable."""

    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        self.report, self.total, self.done = report, total, 0
        report(0, total)

    def update(self, n: int) -> None:
        self.done += n
        self.report(self.done, self.total)

    def close(self) -> None:
        pass


class Block(NamedTuple):
    """One block of statistics as :meth:`_Engine.blocks` stores it: ``n_groups`` rows from
    ``row0`` at the chunk's positions ``p0:p1``, with their float32 logits ``x`` and
    probabilities (``(n_groups * (p1 - p0), d_vocab)``, layer-major) and log-normalisers."""

    row0: int
    n_groups: int
    p0: int
    p1: int
    x: torch.Tensor
    probs: torch.Tensor
    log_z: torch.Tensor


def compute_lens(
    model: Any,
    residuals: Sequence[tuple[str, torch.Tensor]],
    *,
    logits: torch.Tensor,
    next_ids: Any = None,
    k: int = 5,
    decoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
    final_name: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    stats_threads: int | None = None,
    progress: Progress = False,
) -> LensStats:
    """Logit-lens statistics for every residual stream and position.

    Args:
        model: the transformers or TransformerLens model the residuals come from (its
            head decodes them, see :func:`coilvis.models.anatomy.decoder_for`); may be
            ``None`` when ``decoder`` is given.
        residuals: ``(name, (seq_len, d_model) tensor)`` pairs in row order, as the
            adapters return them (:func:`coilvis.models.anatomy.residual_layout`:
            ``"embed"``, ``"i.mid"``, ``"i"``). An entry named like the final row
            (``str(n_layers - 1)``), the last block's output before the final norm, is
            not decoded as a row: a few of its positions are decoded to check the
            decoder against ``logits``, and a mismatch raises.
        logits: (seq_len, d_vocab) the model's own logits, any float dtype and
            device: the final row.
        next_ids: (seq_len,) actual next token ids, -1 where unknown (the last
            position); ``None`` means unknown everywhere.
        k: top tokens kept per cell, >= 1 (more than ``d_vocab`` keeps all of them:
            :func:`coilvis.options.check_k`).
        decoder: ``(rows, d_model) -> (rows, d_vocab)`` logits, instead of the model's
            head (then ``model`` may be ``None``).
        final_name: name of the final row (default ``str(n_layers - 1)``, or one more
            than the largest block number in ``residuals`` when ``model`` is ``None``).
        chunk_rows: rows decoded per matmul; positions are chunked to
            ``min(seq_len, chunk_rows, 256)`` and a matmul stacks
            ``chunk_rows // positions`` layers.
        stats_threads: CPU threads for the statistics (the matmul keeps torch's
            setting; torch's count is set for each block of statistics and restored).
            ``None`` (default): chosen between torch's count and 1 by timing the
            blocks as they run; multi-threaded short passes are faster on an idle
            machine and much slower on a loaded one. The numbers do not depend on it.
        progress: show a progress bar; or a callable, called with ``(rows done,
            rows in all)`` as the rows are decoded.

    Returns:
        :class:`~coilvis.record.LensStats` with ``len(residuals) + 1`` rows (the last is
        ``logits``), or ``len(residuals)`` when the check entry was given.

    Raises:
        CoilvisValueError: shapes disagree, bad ``k``, NaN/inf in a decoded row (the
            message names the row and position), or the decoder does not reproduce
            the model's logits.
        CoilvisTypeError: bad argument types.
    """
    lens = prepare_lens(
        model, residuals, logits=logits, next_ids=next_ids, k=k, decoder=decoder, final_name=final_name,
        chunk_rows=chunk_rows, stats_threads=stats_threads,
    )
    engine, t_logits, layer_rows, decoder, tid = lens
    return engine.run(t_logits, layer_rows, decoder, tid, progress=progress)


class PreparedLens(NamedTuple):
    """A lens ready to run: its engine and the checked inputs it decodes."""

    engine: _Engine
    logits: torch.Tensor
    layer_rows: Rows
    decoder: Callable[[torch.Tensor], torch.Tensor]
    next_ids: torch.Tensor


def prepare_lens(
    model: Any,
    residuals: Sequence[tuple[str, torch.Tensor]],
    *,
    logits: torch.Tensor,
    next_ids: Any,
    k: int,
    decoder: Callable[[torch.Tensor], torch.Tensor] | None,
    final_name: str | None,
    chunk_rows: int,
    stats_threads: int | None,
) -> PreparedLens:
    """Check the arguments of :func:`compute_lens` (see there) and build its engine; the
    decoder is checked against the model's logits here."""
    t_logits = stats.as_logits(logits, ndim=(2,))
    seq_len, d_vocab = int(t_logits.shape[0]), int(t_logits.shape[1])
    if seq_len < 1:
        raise CoilvisValueError("logits: no positions (shape (0, d_vocab))")
    k = check_k(k, available=d_vocab)
    chunk_rows = check_int("chunk_rows", chunk_rows, minimum=1)
    if stats_threads is not None:
        stats_threads = check_int("stats_threads", stats_threads, minimum=1)
    rows_in = _check_residuals(residuals, seq_len)
    decoder, final_name = _decoder_and_final_name(model, decoder, final_name, rows_in)
    layer_rows = _drop_check_row(rows_in, final_name, decoder, t_logits)
    tid = _check_next_ids(next_ids, seq_len, d_vocab).to(t_logits.device)
    engine = _Engine(
        names=[n for n, _ in layer_rows] + [final_name],
        seq_len=seq_len,
        d_vocab=d_vocab,
        k=k,
        chunk_rows=chunk_rows,
        threads=StatsThreads(stats_threads, enabled=t_logits.device.type == "cpu"),
    )
    return PreparedLens(engine, t_logits, layer_rows, decoder, tid)


def _decoder_and_final_name(
    model: Any, decoder: Any, final_name: str | None, rows_in: Rows
) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """The decoder (the model's head unless one is given) and the final row's name."""
    if decoder is None:
        if model is None:
            raise CoilvisTypeError("model: pass the model the residuals come from, or a decoder=")
        decoder = decoder_for(model)
    elif not callable(decoder):
        raise CoilvisTypeError(f"decoder: expected a callable, got {type(decoder).__name__}")
    if final_name is None:
        if model is not None:
            final_name = final_row_name(n_layers_of(model))
        else:
            blocks = [int(n) for n, _ in rows_in if n.isdigit()]
            final_name = str(max(blocks) + 1 if blocks else 0)
    return decoder, final_name


def _drop_check_row(rows_in: Rows, final_name: str, decoder: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> Rows:
    """The rows to decode: all but the one named ``final_name``, which checks the decoder."""
    layer_rows = []
    for name, t in rows_in:
        if name == final_name:
            with torch.inference_mode():
                _check_decoder(decoder, t, logits, name)
        else:
            layer_rows.append((name, t))
    return layer_rows


class _Engine:
    """One lens computation: the output arrays, and the loop over position chunks
    that fills them (the final row of a chunk first, then its layers in groups)."""

    def __init__(self, *, names: list[str], seq_len: int, d_vocab: int, k: int, chunk_rows: int, threads: StatsThreads) -> None:
        self.names = names
        self.n_rows, self.seq_len, self.d_vocab, self.k = len(names), seq_len, d_vocab, k
        self.n_pos = min(seq_len, chunk_rows, POSITION_CHUNK)
        self.n_groups = max(1, chunk_rows // self.n_pos)
        self.block_rows = min(chunk_rows, STATS_BLOCK_ROWS)
        self.work = Workspace(d_vocab)
        self.threads = threads
        self.bar: Any = None
        shape = (self.n_rows, seq_len)
        self.out = {
            "topk_ids": np.empty(shape + (k,), dtype=np.int32),
            "topk_probs": np.empty(shape + (k,), dtype=np.float32),
        }
        for name in FIELDS[2:]:
            self.out[name] = np.empty(shape, dtype=np.int32 if name.endswith("rank") else np.float32)

    def run(
        self, logits: torch.Tensor, layer_rows: Rows, decoder: Callable[[torch.Tensor], torch.Tensor], tid: torch.Tensor, *, progress: Progress
    ) -> LensStats:
        """Fill every row, chunk by chunk of positions; see :func:`compute_lens`."""
        self.open_bar(progress)
        try:
            with torch.inference_mode():
                for start in range(0, self.seq_len, self.n_pos):
                    for _ in self.blocks(logits, layer_rows, decoder, tid, start, min(self.seq_len, start + self.n_pos)):
                        pass
        finally:
            self.close_bar()
        return self.result()

    def open_bar(self, progress: Progress, *, desc: str = "coilvis lens", total: int | None = None) -> None:
        """Show a progress bar of decoded rows (or report them to a callable)."""
        total = total or self.n_rows * self.seq_len
        if callable(progress):
            self.bar = _CallbackBar(progress, total)
        elif progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="row", leave=False)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def result(self) -> LensStats:
        """The statistics of every row, once every position has been through :meth:`blocks`."""
        return LensStats(layer_names=tuple(self.names), **self.out)

    def blocks(
        self, logits: torch.Tensor, layer_rows: Rows, decoder: Callable[[torch.Tensor], torch.Tensor], tid: torch.Tensor,
        start: int, stop: int, *, keep: bool = False,
    ) -> Iterator[Block]:
        """Compute and store the statistics of positions ``start:stop`` (at most
        ``n_pos`` of them), the final row first, then the layers in groups; yield each
        block of statistics as it is stored. With ``keep``, a block also carries its
        float32 logits and probabilities (for a caller comparing two runs)."""
        ids = tid[start:stop]
        final, final_blocks = self.final_chunk(logits, start, stop, ids, keep=keep)
        yield from final_blocks
        for l0 in range(0, len(layer_rows), self.n_groups):
            group = layer_rows[l0 : l0 + self.n_groups]
            x = self.decode(decoder, self.layer_input(group, start, stop, final.probs.device))
            yield from self.layer_blocks(x, l0, len(group), start, stop, ids, final, keep=keep)
        del final
        self.mark_unknown(ids, start, stop)

    def final_chunk(self, logits: torch.Tensor, start: int, stop: int, ids: torch.Tensor, *, keep: bool) -> tuple[FinalRow, list[Block]]:
        """The final row of positions ``start:stop``, stored, and kept for the layers to compare with."""
        n_p, row = stop - start, self.n_rows - 1
        probs = torch.empty((n_p, self.d_vocab), dtype=torch.float32, device=logits.device)
        parts: list[FinalRow] = []
        blocks: list[Block] = []
        for _, _, p0, p1 in stat_blocks(1, n_p, self.block_rows):
            x = logits[start + p0 : start + p1].to(torch.float32)
            values, part = self.threads.run(
                p1 - p0, row_stats, x, k=self.k, next_ids=ids[p0:p1], final=None, n_groups=1, work=self.work,
                probs_out=probs[p0:p1],
            )
            self._store(row, start + p0, 1, p1 - p0, values)
            assert part is not None
            parts.append(part)
            if keep:
                blocks.append(Block(row, 1, p0, p1, x, probs[p0:p1], values["log_z"]))
        self._advance(n_p)
        final = FinalRow(
            probs=probs,
            neg_entropy=torch.cat([f.neg_entropy for f in parts]),
            top_ids=torch.cat([f.top_ids for f in parts]),
        )
        return final, blocks

    @staticmethod
    def layer_input(group: Rows, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """The residual rows of a group of layers at positions ``start:stop``, stacked
        layer-major: ``(len(group) * (stop - start), d_model)``."""
        if len(group) == 1:
            return group[0][1][start:stop]
        return torch.cat([t[start:stop].to(device) for _, t in group])

    def layer_blocks(
        self, x: torch.Tensor, l0: int, n_layers: int, start: int, stop: int, ids: torch.Tensor, final: FinalRow, *, keep: bool,
    ) -> Iterator[Block]:
        """Store the statistics of rows ``l0 : l0 + n_layers`` at positions ``start:stop``
        from their decoded logits ``x: (n_layers * (stop - start), d_vocab)``."""
        n_p, device = stop - start, final.probs.device
        if tuple(x.shape) != (n_layers * n_p, self.d_vocab):
            raise CoilvisValueError(
                f"decoder: returned shape {tuple(x.shape)} for {n_layers * n_p} rows, expected "
                f"({n_layers * n_p}, {self.d_vocab}) like the logits"
            )
        x = x.to(device=device, dtype=torch.float32).reshape(n_layers, n_p, self.d_vocab)
        for g0, g1, p0, p1 in stat_blocks(n_layers, n_p, self.block_rows):
            rows = x[g0:g1, p0:p1].reshape(-1, self.d_vocab)
            values, _ = self.threads.run(
                rows.shape[0], row_stats, rows, k=self.k, next_ids=ids[p0:p1], final=final.rows(p0, p1),
                n_groups=g1 - g0, work=self.work, keep_probs=keep,
            )
            self._store(l0 + g0, start + p0, g1 - g0, p1 - p0, values)
            if keep:
                yield Block(l0 + g0, g1 - g0, p0, p1, rows, values["probs"], values["log_z"])
        self._advance(n_layers * n_p)

    def decode(self, decoder: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        """``decoder(h)``; the model's own :class:`~coilvis.models.anatomy.Decoder` writes
        into one reused buffer (fresh memory every chunk would cost its first touch)."""
        if not isinstance(decoder, Decoder):
            return decoder(h)
        out = self.work.get("logits", (int(h.shape[0]), self.d_vocab), decoder.device or h.device)
        return decoder(h, out=out)

    def _store(self, row0: int, p0: int, n_g: int, n_p: int, values: dict[str, torch.Tensor]) -> None:
        """Copy a block's statistics (``n_g`` rows from ``row0``, ``n_p`` positions from ``p0``) into the output."""
        if "bad" in values:
            j = int(values["bad"].nonzero()[0, 0])
            raise CoilvisValueError(
                f"residuals: row {self.names[row0 + j // n_p]!r} decodes to NaN or infinite logits at position {p0 + j % n_p}"
            )
        for name in FIELDS:
            v = stats.to_numpy(values[name]).reshape((n_g, n_p) + self.out[name].shape[2:])
            self.out[name][row0 : row0 + n_g, p0 : p0 + n_p] = v

    def mark_unknown(self, ids: torch.Tensor, start: int, stop: int) -> None:
        """NaN probability and rank -1 where the next token is unknown (-1)."""
        unknown = ~(ids >= 0).cpu().numpy()
        if unknown.any():
            cols = np.arange(start, stop)[unknown]
            self.out["next_prob"][:, cols] = np.nan
            self.out["next_rank"][:, cols] = -1

    def _advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)


def _check_residuals(residuals: Any, seq_len: int) -> Rows:
    """``residuals`` as ``(name, (seq_len, d_model) float tensor)`` pairs with distinct names."""
    if isinstance(residuals, (str, bytes)) or not isinstance(residuals, Sequence):
        raise CoilvisTypeError(
            f"residuals: expected a list of (name, (seq_len, d_model) tensor) pairs, got {type(residuals).__name__}"
        )
    out: list[tuple[str, torch.Tensor]] = []
    seen: set[str] = set()
    for j, item in enumerate(residuals):
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise CoilvisTypeError(f"residuals: entry {j} is not a (name, tensor) pair")
        name, t = item
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(np.asarray(t))
        if t.dim() == 3 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 2 or t.shape[0] != seq_len:
            raise CoilvisValueError(
                f"residuals: {name!r} has shape {tuple(t.shape)}, expected ({seq_len}, d_model) like the logits"
            )
        if not t.is_floating_point():
            raise CoilvisTypeError(f"residuals: {name!r} has dtype {t.dtype}, expected floats")
        if name in seen:
            raise CoilvisValueError(f"residuals: the name {name!r} appears twice")
        seen.add(name)
        out.append((name, t.detach()))
    return out


def _check_next_ids(next_ids: Any, seq_len: int, d_vocab: int) -> torch.Tensor:
    """(seq_len,) int64 CPU tensor of next token ids in [0, d_vocab), -1 where unknown."""
    if next_ids is None:
        return torch.full((seq_len,), -1, dtype=torch.int64)
    arr = stats.to_numpy(next_ids) if isinstance(next_ids, torch.Tensor) else np.asarray(next_ids)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)):
        raise CoilvisTypeError(f"next_ids: expected integer token ids, got dtype {arr.dtype}")
    arr = arr.reshape(-1).astype(np.int64)
    if arr.shape[0] != seq_len:
        raise CoilvisValueError(f"next_ids: expected {seq_len} token ids (one per position), got {arr.shape[0]}")
    bad = np.nonzero((arr < -1) | (arr >= d_vocab))[0]
    if bad.size:
        raise CoilvisValueError(
            f"next_ids: token id {arr[bad[0]]} at position {bad[0]} is out of range [0, {d_vocab}) (or -1 for unknown)"
        )
    return torch.from_numpy(arr)


def _check_decoder(decoder: Callable[[torch.Tensor], torch.Tensor], resid: torch.Tensor, logits: torch.Tensor, name: str) -> None:
    """Decode a few positions of the last block's residual and compare with the logits."""
    seq_len = resid.shape[0]
    pos = torch.unique(torch.linspace(0, seq_len - 1, min(seq_len, _CHECK_POSITIONS)).round().long())
    want = logits[pos.to(logits.device)].to(torch.float32)
    got = decoder(resid[pos.to(resid.device)]).to(want.device)
    scale = max(1.0, float(want.abs().max()))
    rtol = _CHECK_RTOL.get(logits.dtype, _CHECK_RTOL_LOW_PRECISION)
    err = float((got - want).abs().max())
    if not err <= rtol * scale:
        what = getattr(decoder, "description", None) or "the decoder"
        raise CoilvisValueError(
            f"model: decoding the last block's residual ({name!r}) through {what} does not reproduce the model's "
            f"own logits (max difference {err:.3g}, logits up to {scale:.3g}); this architecture changes its "
            "logits in a way coilvis does not know, so it refuses to draw a wrong lens"
        )
