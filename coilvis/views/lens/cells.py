"""The lens's cells: one row per (layer, position), numeric columns and indices into one string table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource

from coilvis.topk_bounds import topk_divergence
from coilvis.options import LN2, check_k
from coilvis.record import Record
from coilvis.tokens import display, label_whitespace
from coilvis.views._style import ColorScale, map_colors, text_colors

__all__ = ["SHORT_LEN", "Strings", "LensGrid", "lens_grid", "stat_values", "cell_columns"]

#: Characters of the short cell label (when the long one does not fit).
SHORT_LEN = 3
_HOVER_LEN = 24


class Strings:
    """A table of distinct (raw text, token id) pairs; cells hold row indices into it
    (binary int32). The id is -1 for layer names and for tokens of unknown id."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, int], int] = {}

    def add(self, text: str, token_id: int = -1) -> int:
        """The row of ``(text, token_id)``, added when new."""
        return self.index.setdefault((text, int(token_id)), len(self.index))

    def ids(self, record: Record, token_ids: np.ndarray) -> np.ndarray:
        """Row indices of the tokens ``token_ids`` (any shape; -1 stays -1)."""
        flat = np.asarray(token_ids).reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = np.array([self.add(record.token_text(i), i) if i >= 0 else -1 for i in uniq.tolist()], dtype=np.int32)
        return rows[inverse].reshape(np.shape(token_ids))

    def tokens(self, record: Record) -> np.ndarray:
        """(seq_len,) row indices of the record's input tokens, by their text and id."""
        pairs = zip(record.tokens, record.token_ids.tolist(), strict=True)
        return np.array([self.add(text, token_id) for text, token_id in pairs], dtype=np.int32)

    def source(self, *, max_label_len: int, whitespace: str = "markers") -> ColumnDataSource:
        """The table as ``lens_strings``: columns ``full`` and ``hover`` (the exact label,
        whitespace as ``␣``, whatever ``whitespace``), ``label`` and ``short`` (the cells'
        labels, leading and trailing spaces as the view's ``whitespace=`` option says:
        ``"markers"``, ``"subtle"`` or ``"plain"``) and ``token_id``."""
        mode = label_whitespace(whitespace)
        texts = [text for text, _ in self.index]
        return ColumnDataSource(
            data={
                "full": [display(t) for t in texts],
                "hover": [display(t, max_len=_HOVER_LEN) for t in texts],
                "label": [display(t, max_len=max_label_len, whitespace=mode) for t in texts],
                "short": [display(t, max_len=SHORT_LEN, whitespace=mode) for t in texts],
                "token_id": np.array([i for _, i in self.index], dtype=np.int32),
            },
            name="lens_strings",
        )


@dataclass(frozen=True)
class LensGrid:
    """The lens statistics of the cells drawn, in row-major order: cell ``c`` is
    ``(rows[c // n_pos], positions[c % n_pos])``.

    Attributes:
        rows: (n_shown,) lens row indices drawn, bottom to top.
        positions: (n_pos,) positions drawn, left to right.
        row: (n_cells,) each cell's lens row.
        y: (n_cells,) each cell's row on the figure (0 at the bottom).
        pos: (n_cells,) each cell's position.
        topk_ids: (n_cells, hk) the top tokens listed in the hover.
        topk_probs: (n_cells, hk) their probabilities.
        top_ids: (n_cells,) each cell's top token.
        top_probs: (n_cells,) its probability.
        entropy_bits: (n_cells,) entropy of the layer's distribution, bits.
        kl_bits: (n_cells,) KL(final ‖ layer), bits.
        next_prob: (n_cells,) probability of the actual next token.
        final_rank: (n_cells,) rank of the final top token in the layer (1 = top).
    """

    rows: np.ndarray
    positions: np.ndarray
    row: np.ndarray
    y: np.ndarray
    pos: np.ndarray
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy_bits: np.ndarray
    kl_bits: np.ndarray
    next_prob: np.ndarray
    final_rank: np.ndarray

    @property
    def sub(self) -> tuple[np.ndarray, np.ndarray]:
        """Index of the drawn (row, position) block in a ``(n_rows, seq_len, ...)`` array."""
        return self.rows[:, None], self.positions[None, :]


def lens_grid(record: Record, rows: np.ndarray, positions: np.ndarray, *, hover_k: int) -> LensGrid:
    """The cells ``rows`` x ``positions`` of ``record.lens``, flattened (see :class:`LensGrid`)."""
    ls = record.lens
    assert ls is not None
    n_shown, n_pos = rows.shape[0], positions.shape[0]
    sub = (rows[:, None], positions[None, :])
    hk = check_k(hover_k, available=ls.topk_ids.shape[2], name="hover_k")
    return LensGrid(
        rows=rows,
        positions=positions,
        row=np.repeat(rows, n_pos),
        y=np.repeat(np.arange(n_shown, dtype=np.float64), n_pos),
        pos=np.tile(positions, n_shown),
        topk_ids=ls.topk_ids[sub][:, :, :hk].reshape(-1, hk),
        topk_probs=ls.topk_probs[sub][:, :, :hk].reshape(-1, hk),
        top_ids=ls.topk_ids[sub][:, :, 0].reshape(-1),
        top_probs=ls.topk_probs[sub][:, :, 0].reshape(-1).astype(np.float64),
        entropy_bits=ls.entropy[sub].reshape(-1).astype(np.float64) / LN2,
        kl_bits=ls.kl_to_final[sub].reshape(-1).astype(np.float64) / LN2,
        next_prob=ls.next_prob[sub].reshape(-1).astype(np.float64),
        final_rank=ls.final_top_rank[sub].reshape(-1).astype(np.int64),
    )


def stat_values(record: Record, grid: LensGrid, stat: str, *, compare: Record | None) -> np.ndarray:
    """(n_cells,) the colour statistic in its colour bar's unit (%, bits, rank); with
    ``compare``, the top-k divergence between the two records' cells (a lower bound)."""
    if compare is None:
        return {
            "prob": 100.0 * grid.top_probs,
            "entropy": grid.entropy_bits,
            "kl": grid.kl_bits,
            "rank": grid.final_rank.astype(np.float64),
            "target_prob": 100.0 * grid.next_prob,
        }[stat]
    ls, cl = record.lens, compare.lens
    assert ls is not None and cl is not None
    sub = grid.sub
    return topk_divergence(
        ls.topk_ids[sub], ls.topk_probs[sub], cl.topk_ids[sub], cl.topk_probs[sub], kind=stat, bits=True
    ).reshape(-1)


def cell_columns(
    record: Record,
    grid: LensGrid,
    values: np.ndarray,
    scale: ColorScale,
    strings: Strings,
    *,
    compare: Record | None,
    hover_k: int,
) -> dict[str, Any]:
    """Every column of ``lens_cells`` (see :class:`coilvis.views.lens.LensFigure`),
    adding the texts the cells refer to to ``strings``."""
    ls = record.lens
    assert ls is not None
    token_ix = strings.tokens(record)  # input tokens by their text and id (a record built from strings may have no ids)
    f32 = np.float32
    data: dict[str, Any] = {
        "pos": grid.pos.astype(np.int32),
        "y": grid.y.astype(f32),
        "row": grid.row.astype(np.int32),
        "layer_ix": np.array([strings.add(ls.layer_names[r]) for r in grid.row.tolist()], dtype=np.int32),
        "value": values.astype(f32),
        "top_ix": strings.ids(record, grid.top_ids),
        "top_prob": grid.top_probs.astype(f32),
        "light": np.array([c == "#ffffff" for c in text_colors(map_colors(values, scale))], dtype=np.uint8),
        "token_ix": token_ix[grid.pos],
        "next_ix": np.append(token_ix[1:], -1).astype(np.int32)[grid.pos],
        "entropy_bits": grid.entropy_bits.astype(f32),
        "kl_bits": grid.kl_bits.astype(f32),
        "next_prob": grid.next_prob.astype(f32),
        "final_rank": grid.final_rank.astype(np.int32),
    }
    for j in range(grid.topk_ids.shape[1]):
        data[f"tk{j}"] = strings.ids(record, grid.topk_ids[:, j])
        data[f"tp{j}"] = grid.topk_probs[:, j].astype(f32)
    if compare is not None:
        cl = compare.lens
        assert cl is not None
        chk = check_k(hover_k, available=cl.topk_ids.shape[2], name="hover_k")
        c_ids = cl.topk_ids[grid.sub][:, :, :chk].reshape(-1, chk)
        c_probs = cl.topk_probs[grid.sub][:, :, :chk].reshape(-1, chk)
        for j in range(chk):
            data[f"ctk{j}"] = strings.ids(compare, c_ids[:, j])
            data[f"ctp{j}"] = c_probs[:, j].astype(f32)
        data["compare_token_ix"] = strings.tokens(compare)[grid.pos]
    return data
