"""The coil's attention choices (coilvis.views.coil.attention): what ``attention=`` embeds, and its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
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


def _layered_record(n_layers: int = 3, *, drop_last: bool = False) -> coilvis.Record:
    """Every head of layer L attends from q to q - L - 1 (to 0 when q <= L): each layer's links differ."""
    n, n_heads = 12, 2
    pattern = np.zeros((n_layers, n_heads, n, n), dtype=np.float32)
    for layer in range(n_layers):
        for q in range(n):
            pattern[layer, :, q, max(q - layer - 1, 0)] = 1.0
    if drop_last:  # no links at the last layer, as when run(attention_layers=...) leaves it out
        pattern[-1] = 0.0
    logits = np.random.default_rng(0).normal(size=(n, 5))
    return coilvis.from_logits(logits, tokens=[i % 5 for i in range(n)], vocab=list("abcde"), attention=pattern)


def _arcs_of(layer: int) -> set[tuple[int, int]]:
    """The (query, key) arcs of a layer of :func:`_layered_record` (no self-links: query 0 has none)."""
    return {(q, max(q - layer - 1, 0)) for q in range(1, 12)}


def _shown(view: Any) -> tuple[AttentionChoice, set[tuple[int, int]]]:
    """The choice the page opens on and the (query, key) of the arcs it draws first."""
    group = view.model("coil_choice_filter").group
    assert view.model("coil_attention_select").value == str(group)
    data = view.model("coil_link_source").data
    pairs = {
        (int(q), int(k))
        for q, k, c in zip(data["query"], data["key"], data["choice"], strict=True)
        if int(c) == group
    }
    return view.choices[group], pairs


@pytest.mark.parametrize(("spec", "head"), [("mean", HEAD_MEAN), ("max", HEAD_MAX)])
def test_mean_and_max_open_on_the_last_layer(spec: str, head: int) -> None:
    view = coilvis.coil(_layered_record(), attention=spec)
    assert view.choices == tuple(AttentionChoice(layer, head) for layer in range(3))  # the control lists them in order
    choice, pairs = _shown(view)
    assert choice == AttentionChoice(2, head)
    assert pairs == _arcs_of(2)
    # in a list, the page opens on the first item asked: "mean" at its last layer, a pair at its own
    assert _shown(coilvis.coil(_layered_record(), attention=[spec, (0, 1)]))[0] == AttentionChoice(2, head)
    assert _shown(coilvis.coil(_layered_record(), attention=[(0, 1), spec]))[0] == AttentionChoice(0, 1)


def test_mean_opens_on_the_last_layer_recorded() -> None:
    view = coilvis.coil(_layered_record(drop_last=True), attention="mean")
    choice, pairs = _shown(view)
    assert choice == AttentionChoice(1, HEAD_MEAN)
    assert pairs == _arcs_of(1)


def test_explicit_layers_keep_their_layer() -> None:
    record = _layered_record()
    assert _shown(coilvis.coil(record, attention=[(0, "mean"), (2, "mean")]))[0] == AttentionChoice(0, HEAD_MEAN)
    single = coilvis.coil(record, attention=(0, "max"))
    assert single.choices == (AttentionChoice(0, HEAD_MAX),)
    assert single.model("coil_choice_filter").group == 0
    data = single.model("coil_link_source").data
    assert {(int(q), int(k)) for q, k in zip(data["query"], data["key"], strict=True)} == _arcs_of(0)
    assert _shown(coilvis.coil(record, attention=[(1, 0), (-1, 0)]))[0] == AttentionChoice(1, 0)


def test_docs_say_mean_opens_on_the_last_layer() -> None:
    """The coil's and page's docstrings and the option's help (the command line's and a
    prompts file's) say what the tests above check."""
    from coilvis import options

    assert "last layer" in " ".join(coilvis.coil.__doc__.split())
    assert "last layer" in " ".join(coilvis.page.__doc__.split())
    assert "last layer" in options.get_option("coil", "attention").help
    assert "last layer" in options.describe(options.get_option("coil", "attention"))
