"""Words and sentences (coilvis.views.coil.groups): the groups, the outer band and the sentence ticks."""

from __future__ import annotations

import numpy as np
import pytest

import coilvis
from coilvis.views.coil import token_groups

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


def test_outer_band_and_sentence_marks(record: coilvis.Record) -> None:
    rec = make_record(30, vocab=[" a", "b", ".", " c"], attention=False)
    view = coilvis.coil(rec)
    word, sentence = token_groups(rec.tokens)
    assert view.segments.data["word"].tolist() == word.tolist()
    assert view.segments.data["sentence"].tolist() == sentence.tolist()
    bands = view.model("coil_band_source").data
    assert len(bands["xs"]) == 4 and len(set(bands["color"])) == 4
    n_polygons = sum(int(np.isnan(xs).sum()) + (1 if len(xs) else 0) for xs in bands["xs"])
    assert n_polygons == word.max() + 1  # one band piece per word
    marks = view.model("coil_sentence_mark_source").data
    assert len(marks["x0"]) == sentence.max()  # a tick where each sentence but the first starts
