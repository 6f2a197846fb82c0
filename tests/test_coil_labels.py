"""The coil's labels (coilvis.views.coil.labels): which fit, how wide they are, what they say."""

from __future__ import annotations

import numpy as np
import pytest

import coilvis
from coilvis.errors import CoilvisValueError
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.coil import fit_labels, label_width_px

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from coil_records import make_record
except ImportError:  # tests is a package
    from tests.coil_records import make_record


def test_labels_are_thinned_and_never_overlap() -> None:
    vocab = ["abcdefghijklmn", " x", " longer token", "."]
    rec = make_record(60, vocab=vocab, attention=False)
    view = coilvis.coil(rec, width=400, height=400)
    labels = view.labels.data
    assert view.font_px >= 7
    assert 0 < len(labels["text"]) < rec.seq_len
    pos = labels["pos"]
    along = (pos + 0.5) * view.coiled.arc_len * view.px_per_unit
    widths = np.array([label_width_px(t, view.font_px) for t in labels["text"]])
    gaps = (along[1:] - 0.5 * widths[1:]) - (along[:-1] + 0.5 * widths[:-1])
    assert np.all(gaps >= 0.5 * view.font_px - 1e-9)
    assert list(labels["text"]) == [display(rec.tokens[i], max_len=16, whitespace="subtle") for i in pos]  # the default
    np.testing.assert_allclose(labels["angle_rad"], view.coiled.label_angle_rad[pos], atol=1e-6)
    colors = _style.map_colors(view.segments.data[view.scale.column][pos], view.scale)
    assert list(labels["text_color"]) == _style.text_colors(colors)


@pytest.mark.parametrize(
    ("whitespace", "expected"),
    [("markers", ["␣x", "y␣", "␣␣"]), ("subtle", ["·x", "y·", "··"]), ("plain", [" x", "y ", "␣␣"])],
)
def test_labels_show_spaces_as_whitespace_says_and_the_hover_stays_exact(whitespace: str, expected: list[str]) -> None:
    rec = make_record(3, vocab=[" x", "y ", "  "], tokens=[0, 1, 2], attention=False)
    view = coilvis.coil(rec, whitespace=whitespace, layout="circle")
    labels = view.labels.data
    assert list(labels["pos"]) == [0, 1, 2]
    assert [labels["text"][list(labels["pos"]).index(i)] for i in range(3)] == [expected[rec.token_ids[i]] for i in range(3)]
    # the hover's and the unwind readout's labels keep the exact markers
    assert list(view.segments.data["label"]) == [display(t, max_len=40) for t in rec.tokens]
    vocab = view.model("coil_vocab_source").data
    assert set(vocab["label"]) <= {display(t) for t in (" x", "y ", "  ")}


def test_bad_whitespace_is_refused() -> None:
    rec = make_record(3, attention=False)
    for bad in ("edges", "", None):
        with pytest.raises(CoilvisValueError, match="^whitespace: expected one of"):
            coilvis.coil(rec, whitespace=bad)


def test_labels_are_left_out_when_segments_are_too_thin() -> None:
    view = coilvis.coil(make_record(2000, vocab=["a", " b"], attention=False), width=300, height=300)
    assert view.font_px == 0 and view.labels is None
    assert not list(view.doc.select({"name": "coil_labels"}))
    assert not list(coilvis.coil(make_record(10, attention=False), labels=False).doc.select({"name": "coil_labels"}))


def test_fit_labels() -> None:
    along = np.array([5.0, 15.0, 25.0, 35.0])
    assert fit_labels(along, np.array([8.0, 8.0, 8.0, 8.0]), gap_px=1.0).tolist() == [True, True, True, True]
    assert fit_labels(along, np.array([8.0, 8.0, 8.0, 8.0]), gap_px=3.0).tolist() == [True, False, True, False]
    assert fit_labels(along, np.array([8.0, np.inf, 8.0, 8.0]), gap_px=1.0).tolist() == [True, False, True, True]
    # a closed track: the last label must also clear the first one, one lap later
    assert fit_labels(along, np.array([8.0, 8.0, 8.0, 12.0]), gap_px=1.0, closed_px=40.0).tolist() == [
        True,
        True,
        True,
        False,
    ]


def test_label_width_estimate_grows_with_text() -> None:
    assert label_width_px("", 10) == 0
    assert label_width_px("WWW", 10) > label_width_px("ABC", 10) > label_width_px("abc", 10) > label_width_px("iii", 10)
    assert label_width_px("日本", 10) > label_width_px("ab", 10)
