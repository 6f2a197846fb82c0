"""What a lens draws: the records checked, its rows (layers), its positions and its cell size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.record import Record
from coilvis.views.served import LENS_UNAVAILABLE, is_topk_only

__all__ = ["check_record", "check_compare", "select_rows", "window", "cell_size"]


def check_record(record: Any, name: str) -> Record:
    """``record`` if it is a Record with lens statistics.

    Raises:
        CoilvisTypeError: not a Record.
        CoilvisValueError: no lens statistics ("run coilvis.run(prompt, lens=True)"; a
            served model's Record: :data:`coilvis.views.served.LENS_UNAVAILABLE`).
    """
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"{name}: expected a coilvis Record, got {type(record).__name__}")
    if record.lens is None and is_topk_only(record):
        raise CoilvisValueError(f"{name}: {LENS_UNAVAILABLE}")
    if record.lens is None:
        raise CoilvisValueError(f"{name}: has no lens statistics; run coilvis.run(prompt, lens=True)")
    return record


def check_compare(compare: Any, record: Record) -> Record:
    """``compare`` if it can be compared with ``record``: a Record with lens statistics,
    as many positions, the same ``d_vocab`` and the same lens rows.

    Raises:
        CoilvisTypeError: not a Record.
        CoilvisValueError: it cannot be compared (the message says why).
    """
    compare = check_record(compare, "compare")
    if compare.seq_len != record.seq_len:
        raise CoilvisValueError(
            f"compare: has {compare.seq_len} positions, record has {record.seq_len}; compare runs of equal length"
        )
    if compare.d_vocab != record.d_vocab:
        raise CoilvisValueError(
            f"compare: d_vocab {compare.d_vocab} differs from the record's {record.d_vocab}; "
            "compare models that share a tokenizer"
        )
    if compare.lens.layer_names != record.lens.layer_names:
        raise CoilvisValueError(
            f"compare: its lens rows {list(compare.lens.layer_names)} differ from the record's "
            f"{list(record.lens.layer_names)}"
        )
    return compare


def _named_rows(layer_names: Sequence[str], layers: Any) -> set[int]:
    """Row indices of ``layers``: indices into ``layer_names`` (negative from the end) or names."""
    n_rows = len(layer_names)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise CoilvisTypeError(f"layers: expected a list of row indices or layer names, got {type(layers).__name__}")
    if len(layers) == 0:
        raise CoilvisValueError("layers: expected at least one layer")
    index = {name: i for i, name in enumerate(layer_names)}
    keep: set[int] = set()
    for item in layers:
        if isinstance(item, str):
            if item not in index:
                raise CoilvisValueError(f"layers: no layer named {item!r}; the lens has {list(layer_names)}")
            keep.add(index[item])
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -n_rows <= item < n_rows:
                raise CoilvisValueError(f"layers: row {item} is out of range for {n_rows} lens rows")
            keep.add(int(item) % n_rows)
        else:
            raise CoilvisTypeError(f"layers: expected row indices (int) or layer names (str), got {type(item).__name__}")
    return keep


def select_rows(
    layer_names: Sequence[str],
    *,
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
) -> np.ndarray:
    """Which lens rows to draw; the first and the last row are always kept.

    Args:
        layer_names: (n_rows,) names of the lens rows (``"embed"``, ``"0"``, ...).
        layers: rows to draw: row indices into ``layer_names`` (0 is the embedding,
            negative counts from the end) or layer names. The first and last rows are
            added when missing.
        stride: draw every ``stride``-th row (from the first), plus the last.

    Returns:
        (n_shown,) int64 sorted, distinct row indices.

    Raises:
        CoilvisValueError: both ``layers`` and ``stride``, an unknown name, an index out
            of range, an empty list, ``stride`` < 1.
        CoilvisTypeError: ``layers`` holds something other than ints and strs.

    Examples:
        >>> names = ["embed", *map(str, range(6))]
        >>> select_rows(names, stride=3).tolist()
        [0, 3, 6]
        >>> select_rows(names, layers=["2", -2]).tolist()
        [0, 3, 5, 6]
    """
    n_rows = len(layer_names)
    if layers is not None and stride is not None:
        raise CoilvisValueError("layers: give either layers= or stride=, not both")
    keep = {0, n_rows - 1}
    if stride is not None:
        keep.update(range(0, n_rows, check_int("stride", stride, minimum=1)))
    elif layers is not None:
        keep.update(_named_rows(layer_names, layers))
    else:
        keep.update(range(n_rows))
    return np.array(sorted(keep), dtype=np.int64)


def window(seq_len: int, start: Any, end: Any) -> tuple[int, int]:
    """The positions ``[lo, hi)`` a lens draws (None: the whole prompt; negative counts
    from the end).

    Raises:
        CoilvisTypeError: ``start`` or ``end`` is not an int.
        CoilvisValueError: an empty or out-of-range window.

    Examples:
        >>> window(8, None, None), window(8, -3, None), window(8, 2, -1)
        ((0, 8), (5, 8), (2, 7))
    """
    lo = 0 if start is None else check_int("start", start)
    hi = seq_len if end is None else check_int("end", end)
    if lo < 0:
        lo += seq_len
    if hi < 0:
        hi += seq_len
    if not 0 <= lo < seq_len:
        raise CoilvisValueError(f"start: {start} is out of range for seq_len {seq_len}")
    if not lo < hi <= seq_len:
        raise CoilvisValueError(f"end: {end} must be after start ({lo}) and at most seq_len ({seq_len})")
    return lo, hi


def cell_size(cell_px: Any) -> tuple[int, int]:
    """``(width, height)`` of a cell in pixels, from one int or a pair, each >= 2."""
    if isinstance(cell_px, (int, np.integer)) and not isinstance(cell_px, bool):
        w = h = check_int("cell_px", cell_px, minimum=2)
    elif isinstance(cell_px, Sequence) and not isinstance(cell_px, str) and len(cell_px) == 2:
        w = check_int("cell_px", cell_px[0], minimum=2)
        h = check_int("cell_px", cell_px[1], minimum=2)
    else:
        raise CoilvisTypeError(f"cell_px: expected an int or a (width, height) pair of ints, got {cell_px!r}")
    return w, h
