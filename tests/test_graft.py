"""Grafting a freshly built Bokeh graph onto one already shown (coilvis.views.graft).

After a graft the shown graph serialises exactly as the fresh one (but for model ids),
only the values that differed were set (a Document sends only those), the fresh models
never join the shown graph, and graphs of another shape are left untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, CustomJS, LinearColorMapper, LogColorMapper
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis.views.graft import graft

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from bokeh_graphs import graph_json
except ImportError:  # tests is a package
    from tests.bokeh_graphs import graph_json


def draw(
    xs: Any = (1.0, 2.0), *, title: str = "a", low: float = 0.0, mapper: type = LinearColorMapper, shared: Any = None,
    renderers: int = 1, script_k: int = 3,
) -> Any:  # fmt: skip
    """A small figure of the kinds of values a view holds: data, a title, a colour
    transform (a model inside a field spec), a script with arguments, a shared model."""
    fig = figure(title=title)
    source = ColumnDataSource({"x": np.asarray(xs, dtype=np.float64), "label": [str(x) for x in xs]}, name="points")
    color = mapper(palette=["#000000", "#ffffff"], low=max(low, 1e-3) if mapper is LogColorMapper else low, high=10.0)
    for _ in range(renderers):
        fig.scatter("x", "x", source=source, fill_color=transform("x", color))
    source.selected.js_on_change("indices", CustomJS(args={"source": source, "k": script_k, "other": shared}, code="return k"))
    return fig


CASES = {
    "data": ({}, {"xs": (3.0, 4.0, 5.0)}),
    "title": ({}, {"title": "b"}),
    "inside a field spec": ({}, {"low": 5.0}),
    "a script's argument": ({}, {"script_k": 7}),
    "nothing": ({}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_grafted_graph_is_the_fresh_one(case: str) -> None:
    before, after = CASES[case]
    shown, fresh = draw(**before), draw(**after)
    models_before = {id(m) for m in shown.references()}
    twin = graft(shown, fresh)
    assert twin is not None
    assert graph_json(shown) == graph_json(draw(**after))
    assert {id(m) for m in shown.references()} == models_before  # no model of fresh joined
    assert twin(fresh) is shown and twin(fresh.renderers) == shown.renderers
    assert twin([(fresh.title, "text", 1)]) == [(shown.title, "text", 1)]


def test_only_the_values_that_differ_are_sent() -> None:
    shown = draw()
    doc = Document()
    doc.add_root(shown)
    events: list[Any] = []
    doc.on_change(lambda event: events.append(event))
    graft(shown, draw(title="b"))
    assert [(type(e.model).__name__, e.attr) for e in events] == [("Title", "text")]
    events.clear()
    graft(shown, draw(title="b"))
    assert events == []


def test_models_both_graphs_share_are_left_alone() -> None:
    outside = ColumnDataSource({"y": [1]}, name="outside")
    shown, fresh = draw(shared=outside), draw(shared=outside, xs=(9.0,))
    assert graft(shown, fresh) is not None
    script = shown.select_one({"name": "points"}).selected.js_property_callbacks["change:indices"][0]
    assert script.args["other"] is outside and outside.data == {"y": [1]}


@pytest.mark.parametrize(
    "other",
    [{"mapper": LogColorMapper}, {"renderers": 2}, {"shared": ColumnDataSource()}],
    ids=["another model type", "more models in a list", "a model where there was none"],
)
def test_graphs_of_another_shape_are_left_untouched(other: dict[str, Any]) -> None:
    shown = draw()
    before = graph_json(shown)
    assert graft(shown, draw(title="b", xs=(5.0,), **other)) is None
    assert graph_json(shown) == before
