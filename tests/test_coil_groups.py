"""Words and sentences (coilvis.views.coil.groups): the groups, the outer band and the sentence ticks."""

from __future__ import annotations

import numpy as np
import pytest

import coilvis
from coilvis.views.coil import token_groups
from coilvis.views.coil.groups import BAND_PIECES_PER_ROW

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from coil_records import make_record
except ImportError:  # tests is a package
    from tests.coil_records import make_record


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return make_record(40)


@pytest.mark.parametrize(
    ("tokens", "words", "sentences"),
    [
        (["The", " cat", " sat", ".", " It", " ran", "."], [0, 1, 2, 2, 3, 4, 4], [0, 0, 0, 0, 1, 1, 1]),
        (["Pi", " is", " 3", ".", "14", "."], [0, 1, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0]),  # 3.14 ends nothing
        (["a", "\n", "\n", "b", "c"], [0, 1, 2, 3, 3], [0, 0, 0, 1, 1]),
        (["Hi", "!", " Yes", "?", " ", "No"], [0, 0, 1, 1, 2, 3], [0, 0, 1, 1, 1, 2]),
        (["x"], [0], [0]),
    ],
)
def test_token_groups(tokens: list[str], words: list[int], sentences: list[int]) -> None:
    word, sentence = token_groups(tokens)
    assert word.tolist() == words
    assert sentence.tolist() == sentences


@pytest.mark.parametrize("n", [30, 600])
def test_outer_band_and_sentence_marks(n: int) -> None:
    rec = make_record(n, vocab=[" a", "b", ".", " c"], attention=False)
    view = coilvis.coil(rec)
    word, sentence = token_groups(rec.tokens)
    assert view.segments.data["word"].tolist() == word.tolist()
    assert view.segments.data["sentence"].tolist() == sentence.tolist()
    bands = view.model("coil_band_source").data
    assert len(set(bands["color"])) == 4  # sentence parity x word parity
    pieces = [int(np.isnan(xs).sum()) + 1 for xs in bands["xs"]]
    assert sum(pieces) == word.max() + 1  # one band piece per word
    starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
    per_colour = np.bincount(2 * (sentence[starts] % 2) + word[starts] % 2, minlength=4)
    want = [min(BAND_PIECES_PER_ROW, int(c) - first) for c in per_colour for first in range(0, c, BAND_PIECES_PER_ROW)]
    assert pieces == want  # each colour's pieces in patches of a few
    marks = view.model("coil_sentence_mark_source").data
    assert len(marks["x0"]) == sentence.max()  # a tick where each sentence but the first starts
