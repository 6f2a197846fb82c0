"""The coil's attention choices (coilvis.views.coil.attention): what ``attention=`` embeds, and its errors."""

from __future__ import annotations

import pytest

import coilvis
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.record import HEAD_MAX, HEAD_MEAN
from coilvis.views.coil import AttentionChoice

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from coil_records import make_record
except ImportError:  # tests is a package
    from tests.coil_records import make_record


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return make_record(40)


def test_attention_choices(record: coilvis.Record) -> None:
    assert coilvis.coil(record).choices == ()
    assert coilvis.coil(record).links is None
    assert coilvis.coil(record, attention="mean").choices == (
        AttentionChoice(0, HEAD_MEAN),
        AttentionChoice(1, HEAD_MEAN),
    )
    assert coilvis.coil(record, attention=(-1, "max")).choices == (AttentionChoice(1, HEAD_MAX),)
    view = coilvis.coil(record, attention=[(0, 2), "max", (0, 2)])
    assert view.choices == (AttentionChoice(0, 2), AttentionChoice(0, HEAD_MAX), AttentionChoice(1, HEAD_MAX))
    select = view.model("coil_attention_select")
    assert [label for _, label in select.options] == [
        "layer 0 · head 2",
        "layer 0 · max over heads",
        "layer 1 · max over heads",
    ]
    assert view.model("coil_choice_filter").group == 0
    single = coilvis.coil(record, attention=(1, 0))
    assert not list(single.doc.select({"name": "coil_attention_select"}))



@pytest.mark.parametrize(
    ("spec", "error", "pattern"),
    [
        ("median", CoilvisValueError, "attention"),
        ((5, 0), CoilvisValueError, "layer 5"),
        ((0, 7), CoilvisValueError, "head 7"),
        ((0, "sum"), CoilvisTypeError, "attention"),
        (3, CoilvisTypeError, "attention"),
        ([], CoilvisValueError, "attention"),
    ],
)
def test_bad_attention_choices_name_the_argument(
    record: coilvis.Record, spec: object, error: type, pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        coilvis.coil(record, attention=spec)



def test_attention_without_links_in_the_record_is_an_error() -> None:
    with pytest.raises(CoilvisValueError, match="attention: the record has no attention"):
        coilvis.coil(make_record(8, attention=False), attention="mean")
