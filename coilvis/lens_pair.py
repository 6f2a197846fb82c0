"""Two runs compared while both distributions exist: per position, and per layer x position through the lens.

:func:`compare_logits` reduces two runs' final logits at the compared positions to the
exact divergences of :mod:`coilvis.pair_kernel` (KL both ways, JS, TV), the top movers,
a metric and the change in a's next token's log-probability, a block of positions at a
time. :func:`compare_lens` does the same for every decoded layer at once with the two
runs' own lens statistics: both lens engines (:mod:`coilvis.logit_lens`) step through
the compared positions in lockstep, each block of decoded rows is reduced to each run's
statistics and then, while both blocks of full-vocabulary logits exist, to their
divergences; the ``(n_layers, seq_len, d_vocab)`` tensor never exists, and each block is
decoded once for both purposes.

Positions: compared position ``i`` is position ``offset_a + i`` of run a and
``offset_b + i`` of run b. Positions of a run outside the compared range (the first
tokens of the longer prompt under ``align="end"``) get their lens statistics alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisValueError
from coilvis.lens_kernel import StatsThreads, Workspace
from coilvis.logit_lens import (
    DEFAULT_CHUNK_ROWS,
    POSITION_CHUNK,
    Block,
    PreparedLens,
    Progress,
    prepare_lens,
)
from coilvis.pair_kernel import PAIR_FIELDS, MetricIds, pair_block, pair_chunks
from coilvis.record import LensStats

__all__ = ["PairLensOutput", "compare_lens", "compare_logits", "position_fields"]

Decoder = Callable[[torch.Tensor], torch.Tensor]


def position_fields(n_pos: int, movers: int, metric: bool) -> dict[str, np.ndarray]:
    """Empty output arrays of the per-position comparison."""
    out: dict[str, np.ndarray] = {name: np.empty(n_pos, dtype=np.float32) for name in (*PAIR_FIELDS, "delta_logprob")}
    for direction in ("rise", "fall"):
        out[f"{direction}_ids"] = np.empty((n_pos, movers), dtype=np.int64)
        out[f"{direction}_prob_a"] = np.empty((n_pos, movers), dtype=np.float32)
        out[f"{direction}_prob_b"] = np.empty((n_pos, movers), dtype=np.float32)
    if metric:
        out["metric_a"] = np.empty(n_pos, dtype=np.float32)
        out["metric_b"] = np.empty(n_pos, dtype=np.float32)
    return out


def _store(out: dict[str, np.ndarray], values: dict[str, torch.Tensor], where: Any) -> None:
    for name, array in out.items():
        array[where] = stats.to_numpy(values[name]).reshape(array[where].shape)


def compare_logits(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    *,
    offset_a: int,
    offset_b: int,
    n_pos: int,
    next_ids_a: np.ndarray,
    movers: int,
    metric: MetricIds | None,
) -> dict[str, np.ndarray]:
    """The exact per-position comparison of two runs' logits.

    Shapes: ``logits_a``: (seq_len_a, d_vocab), ``logits_b``: (seq_len_b, d_vocab), any
    float dtype and device (b is moved to a's device a block at a time);
    ``next_ids_a``: (seq_len_a,) int64, -1 where unknown. Returns (n_pos,) arrays
    ``kl_ab``, ``kl_ba``, ``js``, ``tv``, ``delta_logprob`` (of a's next token), the movers
    (n_pos, movers) and with a metric ``metric_a``/``metric_b``.

    Memory: a block of rows at a time, its scratch within
    :func:`coilvis.pair_kernel.pair_chunks`'s budget (256 MB).
    """
    device = logits_a.device
    d_vocab = int(logits_a.shape[-1])
    out = position_fields(n_pos, movers, metric is not None)
    work = Workspace(d_vocab)
    targets = torch.as_tensor(next_ids_a, dtype=torch.int64, device=device)
    step = pair_chunks(n_pos, d_vocab)
    with torch.inference_mode():
        for i0 in range(0, n_pos, step):
            i1 = min(n_pos, i0 + step)
            x_a = logits_a[offset_a + i0 : offset_a + i1].to(torch.float32)
            x_b = logits_b[offset_b + i0 : offset_b + i1].to(device=device, dtype=torch.float32)
            values = pair_block(x_a, x_b, work=work, movers=movers, metric=metric, target_ids=targets[offset_a + i0 : offset_a + i1])
            _store(out, values, slice(i0, i1))
    return out


@dataclass
class PairLensOutput:
    """What :func:`compare_lens` gives: each run's own lens statistics (every position
    of its prompt), the per-position comparison, and the per-cell comparison
    (``kl_ab``, ``kl_ba``, ``js``, ``tv`` and with a metric ``metric_a``/``metric_b``, each
    (n_rows, n_pos) float32)."""

    lens_a: LensStats
    lens_b: LensStats
    positions: dict[str, np.ndarray]
    cells: dict[str, np.ndarray]


def _prepare(model: Any, residuals: Sequence[tuple[str, torch.Tensor]], logits: torch.Tensor, next_ids: Any, *, k: int, decoder: Decoder | None, chunk_rows: int) -> PreparedLens:
    return prepare_lens(
        model, residuals, logits=logits, next_ids=next_ids, k=k, decoder=decoder, final_name=None, chunk_rows=chunk_rows, stats_threads=None
    )


class _Lockstep:
    """Both lens engines over the compared positions, block by block, and the pair statistics of each block pair.

    With ``shared`` (one model for both runs, its own head), each group of layers of
    both runs is decoded in one matmul of twice the rows (a larger matmul costs less
    per row on a CPU)."""

    def __init__(
        self, a: PreparedLens, b: PreparedLens, *, n_pos: int, movers: int, metric: MetricIds | None, chunk_rows: int, shared: bool,
    ) -> None:
        self.a, self.b = a, b
        self.n_rows = a.engine.n_rows
        self.movers, self.metric, self.shared = movers, metric, shared
        self.work = Workspace(a.engine.d_vocab)
        if a.logits.device == b.logits.device:
            # one set of scratch buffers for a's statistics, b's and the pair's, which run
            # one after the other: 5 block-sized buffers stay in the CPU's cache, not 9
            # (a's and b's probabilities and decoded logits must outlive b's statistics)
            b.engine.work = a.engine.work.renamed(probs="probs_b", logits="logits_b")
            self.work = a.engine.work.renamed(d="buf", t="scratch")
        self.threads = StatsThreads(None, enabled=a.logits.device.type == "cpu")
        self.positions = position_fields(n_pos, movers, metric is not None)
        names = (*PAIR_FIELDS, "metric_a", "metric_b") if metric is not None else PAIR_FIELDS
        self.cells = {name: np.empty((self.n_rows, n_pos), dtype=np.float32) for name in names}
        # both engines cut the compared positions the same way, so their blocks pair up
        step = min(n_pos, chunk_rows, POSITION_CHUNK)
        for engine in (a.engine, b.engine):
            engine.n_pos, engine.n_groups = step, max(1, chunk_rows // step)

    def chunk(self, offset_a: int, offset_b: int, i0: int, i1: int) -> None:
        """Compared positions ``i0:i1``: both runs' statistics, and their comparison."""
        a, b = self.a, self.b
        sa, sb, n = offset_a + i0, offset_b + i0, i1 - i0
        ids_a, ids_b = a.next_ids[sa : sa + n], b.next_ids[sb : sb + n]
        final_a, blocks_a = a.engine.final_chunk(a.logits, sa, sa + n, ids_a, keep=True)
        final_b, blocks_b = b.engine.final_chunk(b.logits, sb, sb + n, ids_b, keep=True)
        for block_a, block_b in zip(blocks_a, blocks_b, strict=True):
            self._pair(block_a, block_b, ids_a, i0)
        step = a.engine.n_groups
        for l0 in range(0, len(a.layer_rows), step):
            group_a, group_b = a.layer_rows[l0 : l0 + step], b.layer_rows[l0 : l0 + step]
            h_a = a.engine.layer_input(group_a, sa, sa + n, final_a.probs.device)
            h_b = b.engine.layer_input(group_b, sb, sb + n, final_b.probs.device)
            x_a, x_b = self._decode(h_a, h_b)
            layers_a = a.engine.layer_blocks(x_a, l0, len(group_a), sa, sa + n, ids_a, final_a, keep=True)
            layers_b = b.engine.layer_blocks(x_b, l0, len(group_b), sb, sb + n, ids_b, final_b, keep=True)
            for block_a, block_b in zip(layers_a, layers_b, strict=True):
                self._pair(block_a, block_b, ids_a, i0)
        a.engine.mark_unknown(ids_a, sa, sa + n)
        b.engine.mark_unknown(ids_b, sb, sb + n)

    def _decode(self, h_a: torch.Tensor, h_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both runs' residual rows decoded: in one matmul when the head is shared."""
        a, b = self.a, self.b
        if not self.shared:
            return a.engine.decode(a.decoder, h_a), b.engine.decode(b.decoder, h_b)
        x = a.engine.decode(a.decoder, torch.cat([h_a, h_b.to(h_a.device)]))
        return x[: h_a.shape[0]], x[h_a.shape[0] :]

    def _pair(self, block_a: Block, block_b: Block, targets: torch.Tensor, i0: int) -> None:
        assert block_a[:4] == block_b[:4], "the two lens engines' blocks do not pair up"
        row0, n_g, p0, p1 = block_a[:4]
        final = row0 == self.n_rows - 1
        values = self.threads.run(
            block_a.x.shape[0], pair_block, block_a.x, block_b.x.to(block_a.x.device), work=self.work,
            p_a=block_a.probs, p_b=block_b.probs.to(block_a.x.device), log_z_a=block_a.log_z, log_z_b=block_b.log_z.to(block_a.x.device),
            movers=self.movers if final else 0, metric=self.metric, target_ids=targets[p0:p1] if final else None,
        )
        _store(self.cells, values, (slice(row0, row0 + n_g), slice(i0 + p0, i0 + p1)))
        if final:
            _store(self.positions, values, slice(i0 + p0, i0 + p1))


def _alone(prepared: PreparedLens, start: int, stop: int, step: int) -> None:
    """Lens statistics of positions ``start:stop`` of one run, outside the compared range."""
    for p0 in range(start, stop, step):
        for _ in prepared.engine.blocks(prepared.logits, prepared.layer_rows, prepared.decoder, prepared.next_ids, p0, min(stop, p0 + step)):
            pass


def compare_lens(
    models: tuple[Any, Any],
    residuals: tuple[Sequence[tuple[str, torch.Tensor]], Sequence[tuple[str, torch.Tensor]]],
    *,
    logits: tuple[torch.Tensor, torch.Tensor],
    next_ids: tuple[np.ndarray, np.ndarray],
    offsets: tuple[int, int],
    n_pos: int,
    k: int,
    movers: int,
    metric: MetricIds | None,
    decoders: tuple[Decoder | None, Decoder | None] = (None, None),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress = False,
) -> PairLensOutput:
    """Both runs' lens statistics and their exact comparison per position and per cell.

    Shapes: ``logits``: (seq_len_a, d_vocab) and (seq_len_b, d_vocab); ``residuals``:
    each run's ``(name, (seq_len, d_model))`` pairs in the layout of
    :func:`coilvis.models.anatomy.residual_layout`; ``next_ids``: (seq_len_a,) and
    (seq_len_b,) int64, -1 where unknown.

    Args:
        models: the two models (their heads decode the residuals; the same object twice
            for two prompts through one model).
        residuals: each run's residual streams.
        logits: each run's own logits (the final row).
        next_ids: each run's actual next tokens.
        offsets: ``(offset_a, offset_b)``: where the compared positions start in each run.
        n_pos: number of compared positions.
        k: top tokens kept per lens cell.
        movers: top movers kept each way per compared position.
        metric: a logit difference evaluated on every decoded row of both runs.
        decoders: decoders instead of the models' heads.
        chunk_rows: rows decoded per matmul.
        progress: show a progress bar, or a callable called with ``(rows done, rows in all)``.

    Raises:
        CoilvisValueError: the two models' lenses decode different layers (compare the
            lens of models of one depth), or anything :func:`coilvis.logit_lens.compute_lens`
            refuses.
    """
    a = _prepare(models[0], residuals[0], logits[0], next_ids[0], k=k, decoder=decoders[0], chunk_rows=chunk_rows)
    b = _prepare(models[1], residuals[1], logits[1], next_ids[1], k=k, decoder=decoders[1], chunk_rows=chunk_rows)
    if a.engine.names != b.engine.names:
        raise CoilvisValueError(
            f"model_b: its lens decodes {len(b.engine.names)} rows ({b.engine.names[0]}..{b.engine.names[-1]}), "
            f"model a's {len(a.engine.names)} ({a.engine.names[0]}..{a.engine.names[-1]}); a lens comparison needs models "
            "of the same depth (compare without lens=True)"
        )
    shared = models[0] is models[1] and decoders[0] is decoders[1]
    lockstep = _Lockstep(a, b, n_pos=n_pos, movers=movers, metric=metric, chunk_rows=chunk_rows, shared=shared)
    step = a.engine.n_pos
    total = a.engine.n_rows * (a.engine.seq_len + b.engine.seq_len)
    a.engine.open_bar(progress, desc="coilvis compare lens", total=total)
    b.engine.bar = a.engine.bar
    try:
        with torch.inference_mode():
            for i0 in range(0, n_pos, step):
                lockstep.chunk(offsets[0], offsets[1], i0, min(n_pos, i0 + step))
            _alone(a, 0, offsets[0], step)
            _alone(b, 0, offsets[1], step)
    finally:
        b.engine.bar = None
        a.engine.close_bar()
    return PairLensOutput(a.engine.result(), b.engine.result(), lockstep.positions, lockstep.cells)
