"""Words and sentences of a prompt, and the coil's outer band and ticks that show them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coilvis import geometry

__all__ = ["BAND_COLORS", "BAND_PIECES_PER_ROW", "token_groups", "band_rows", "sentence_marks"]

_SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")
#: Band colours: (sentence even: word even, word odd; sentence odd: word even, word odd).
BAND_COLORS = ("#d4d4d4", "#8f8f8f", "#c6dbef", "#4a8bc4")


def token_groups(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Words and sentences of a token sequence, for the coil's outer band.

    A word starts at the first token, at a token beginning with whitespace (byte-level
    ``Ġ`` and SentencePiece ``▁`` are spaces in a Record's raw text) and after a token
    ending in a newline. A sentence ends at a token holding a newline, or ending in
    ``.``, ``!``, ``?`` (their CJK forms, ``…``) when the next token starts with
    whitespace (so ``3.14`` ends nothing); the next token that is not blank starts the
    next sentence, and each sentence start is also a word start.

    Args:
        tokens: (n,) raw token texts.

    Returns:
        ``(word, sentence)``: (n,) int32 group index of each position, each starting at
        0 and non-decreasing.

    Examples:
        >>> w, s = token_groups(["The", " E", "iffel", " Tower", ".", " It", "\\n", "Yes"])
        >>> w.tolist(), s.tolist()
        ([0, 1, 1, 2, 2, 3, 4, 5], [0, 0, 0, 0, 0, 1, 1, 2])
    """
    n = len(tokens)
    word_start = np.zeros(n, dtype=bool)
    sentence_start = np.zeros(n, dtype=bool)
    pending = False  # a sentence has ended: the next token that is not blank starts one
    for i, token in enumerate(tokens):
        starts_space = token[:1].isspace()
        if i == 0:
            word_start[i] = sentence_start[i] = True
        else:
            prev = tokens[i - 1]
            if starts_space and prev.rstrip(" ").endswith(_SENTENCE_END):
                pending = True
            if pending and token.strip():
                sentence_start[i] = True
                pending = False
            word_start[i] = starts_space or prev.endswith("\n") or sentence_start[i]
        if "\n" in token:
            pending = True
    word = (np.cumsum(word_start) - 1).astype(np.int32)
    sentence = (np.cumsum(sentence_start) - 1).astype(np.int32)
    return word, sentence


#: Word pieces in one row of the band's patches. A canvas fills a path of thousands of
#: pieces several times slower than the same pieces in paths of a few (at 10,000
#: positions, 150 ms against 15 ms a paint); the pieces never overlap, so it looks the same.
BAND_PIECES_PER_ROW = 16


def band_rows(band_layout: geometry.Layout, word: np.ndarray, sentence: np.ndarray) -> dict[str, Any]:
    """The outer band as patches of one (sentence parity, word parity) colour each, word
    pieces one after another, :data:`BAND_PIECES_PER_ROW` at most to a patch.

    Args:
        band_layout: the coil's layout (polygon detail may be coarser than the segments').
        word: (n,) word index of each position (:func:`token_groups`).
        sentence: (n,) sentence index of each position.

    Returns:
        Columns ``xs``, ``ys`` (float32 arrays: each word's band piece, NaN between
        pieces), and ``color`` (:data:`BAND_COLORS`, by sentence and word parity), one
        row per patch, the colours in order.
    """
    n = word.shape[0]
    starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
    ends = np.r_[starts[1:], n]
    xs, ys = geometry.group_band(band_layout, starts, ends)
    bucket = 2 * (sentence[starts] % 2) + (word[starts] % 2)
    sep = np.array([np.nan], dtype=np.float32)
    rows: dict[str, list[Any]] = {"xs": [], "ys": [], "color": []}
    for b in range(4):
        members = np.flatnonzero(bucket == b).tolist()
        for first in range(0, len(members), BAND_PIECES_PER_ROW):
            chunk = members[first : first + BAND_PIECES_PER_ROW]
            rows["xs"].append(np.concatenate([part for g in chunk for part in (xs[g].astype(np.float32), sep)])[:-1])
            rows["ys"].append(np.concatenate([part for g in chunk for part in (ys[g].astype(np.float32), sep)])[:-1])
            rows["color"].append(BAND_COLORS[b])
    return rows


def sentence_marks(lay: geometry.Layout, sentence: np.ndarray) -> dict[str, np.ndarray]:
    """A tick across the segment and the band where each sentence but the first starts.

    Returns:
        Columns ``x0``, ``y0``, ``x1``, ``y1`` (float32), one row per tick.
    """
    starts = np.flatnonzero(np.r_[False, sentence[1:] != sentence[:-1]])
    gap = lay.pitch - lay.band_width
    ox, oy = lay.poly_xs[starts, 0], lay.poly_ys[starts, 0]
    ix, iy = lay.poly_xs[starts, -1], lay.poly_ys[starts, -1]
    dx, dy = ox - ix, oy - iy
    norm = np.hypot(dx, dy)
    norm = np.where(norm > 0, norm, 1.0)
    dx, dy = dx / norm, dy / norm
    reach = 0.7 * gap
    return {
        "x0": (ix - 0.1 * gap * dx).astype(np.float32),
        "y0": (iy - 0.1 * gap * dy).astype(np.float32),
        "x1": (ox + reach * dx).astype(np.float32),
        "y1": (oy + reach * dy).astype(np.float32),
    }
