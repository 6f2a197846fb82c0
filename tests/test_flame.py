"""The continuation flame graph (coilvis.views.flame): the model graph, then headless Chromium.

Widths are the path probabilities, rows the depths (the prompt on top), children side
by side inside their parent; the hover and colours are the sunburst's (tested there in
full). In the browser: the page renders offline, the hover shows the continuation, and
tapping zooms into a subtree, out through an ancestor or the prompt's row, the page's
bars matching :func:`flame_geometry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bokeh.models import CustomJS, HoverTool

import coilvis
from coilvis.continuations import Tree
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import display
from coilvis.views import _tree
from coilvis.views.flame import LABEL_PAD_PX, flame, flame_geometry
from coilvis.views.output import View

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from tree_cases import HOSTILE_IMG, VOCAB, synthetic_tree
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.tree_cases import HOSTILE_IMG, VOCAB, synthetic_tree

WIDTH = 800


@pytest.fixture(scope="module")
def tree() -> Tree:
    return synthetic_tree(depth=3, k=3, seed=2, d_vocab=len(VOCAB))


def data(view: View) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in view.model("flame_source").data.items()}


def test_widths_are_path_probabilities_and_rows_depths(tree: Tree) -> None:
    view = flame(tree, width_px=WIDTH, row_px=30)
    d = data(view)
    np.testing.assert_allclose(d["right"] - d["left"], tree.path_prob, atol=1e-6)
    np.testing.assert_array_equal(d["top"], -tree.depth)
    np.testing.assert_array_equal(d["bottom"], -tree.depth - 1)
    assert (d["left"][0], d["right"][0]) == (0.0, 1.0)  # the prompt spans the top row
    x0, _ = tree.spans()
    np.testing.assert_allclose(d["left"], x0, atol=1e-6)
    figure = view.model("flame_figure")
    assert figure.frame_height == 4 * 30 and figure.frame_width == WIDTH
    assert (view.model("flame_y_range").start, view.model("flame_y_range").end) == (-4, 0)
    assert list(view.model("flame_bar_filter").indices) == list(range(tree.n_nodes))
    assert view.model("flame_color_bar").orientation == "horizontal"


def test_labels_fit_their_bars(tree: Tree) -> None:
    view = flame(tree, width_px=WIDTH, label_chars=10)
    d = data(view)
    labelled = list(view.model("flame_label_filter").indices)
    assert 0 in labelled and len(labelled) < tree.n_nodes
    for i in labelled:
        assert (d["right"][i] - d["left"][i]) * WIDTH >= d["label_chars"][i] * _tree.CHAR_PX + 2 * LABEL_PAD_PX
    np.testing.assert_allclose(d["label_x"], d["left"] + LABEL_PAD_PX / WIDTH, atol=1e-7)
    np.testing.assert_allclose(d["label_y"], -tree.depth - 0.5)


def test_geometry_of_a_zoom(tree: Tree) -> None:
    d = data(flame(tree, width_px=WIDTH))
    focus = int(tree.children(0)[1])
    geo, shown, _ = flame_geometry(d, focus, width_px=WIDTH)
    kids = tree.children(focus)
    assert (geo["left"][focus], geo["right"][focus]) == (0.0, 1.0)
    assert (geo["left"][0], geo["right"][0]) == (0.0, 1.0)  # the ancestor (the prompt) stays on top, whole
    assert geo["right"][kids].max() == pytest.approx(1.0, abs=1e-6) and geo["left"][kids].min() == 0.0
    np.testing.assert_allclose(geo["right"][kids] - geo["left"][kids], tree.path_prob[kids] / tree.path_prob[focus], rtol=1e-5)
    sibling = int(tree.children(0)[0])
    assert sibling not in shown.tolist() and focus in shown.tolist() and 0 in shown.tolist()


def test_hover_and_text_only_as_data(tree: Tree) -> None:
    view = flame(tree)
    hover = view.model("flame_hover")
    assert hover.renderers == [view.model("flame_bars")] and "@path_label" in hover.tooltips
    assert view.model("flame_tap").renderers == [view.model("flame_bars")]
    code = " ".join(cb.code for cb in view.doc.select({"type": CustomJS}))
    tips = " ".join(str(h.tooltips) for h in view.doc.select({"type": HoverTool}))
    for text in (HOSTILE_IMG, "Paris", "Eiffel"):
        assert text not in code and text not in tips
    assert view.kind == "flame" and coilvis.flame is flame and "flame" in coilvis.__all__


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"color": "rank"}, CoilvisValueError, "color:"),
        ({"width_px": 100}, CoilvisValueError, "width_px: expected >= 200"),
        ({"width_px": 9000}, CoilvisValueError, "width_px: expected at most 8000"),
        ({"row_px": 5}, CoilvisValueError, "row_px: expected >= 12"),
        ({"row_px": 2.5}, CoilvisTypeError, "row_px:"),
        ({"label_chars": -1}, CoilvisValueError, "label_chars:"),
        ({"whitespace": None}, CoilvisValueError, "whitespace:"),
        ({"title": b"x"}, CoilvisTypeError, "title:"),
        ({"palette": 3}, CoilvisTypeError, "palette:"),
    ],
)
def test_bad_arguments(tree: Tree, kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        flame(tree, **kwargs)
    with pytest.raises(CoilvisTypeError, match="tree:"):
        flame(None)


# ------------------------------------------------------------------ in a browser


def _inside(d: dict[str, Any], i: int) -> tuple[float, float]:
    return (float(d["left"][i]) + float(d["right"][i])) / 2, float(d["top"][i]) - 0.5


def _assert_page_matches(loaded: Any, d: dict[str, Any], focus: int) -> None:
    geo, shown, labelled = flame_geometry(d, focus, width_px=WIDTH)
    for name, values in geo.items():
        np.testing.assert_allclose(np.asarray(loaded.column("flame_source", name), dtype=np.float32), values, atol=1e-6, err_msg=name)
    assert loaded.view_indices("flame_bars") == shown.tolist()
    assert loaded.view_indices("flame_labels") == labelled.tolist()
    assert loaded.column("flame_state", "focus") == [focus]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_page_renders_offline_hovers_and_zooms(browser_session, tree: Tree, tmp_path: Path) -> None:  # noqa: F811
    view = flame(tree, width_px=WIDTH)
    d = data(view)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "flame.html"))
    assert loaded.errors == [] and loaded.external_requests == []
    first = int(tree.children(0)[0])
    node = int(tree.children(first)[0])
    loaded.hover_data("flame_figure", *_inside(d, node))
    tip = loaded.tooltip_text()
    assert display(tree.continuation(node)) in tip and f"{100 * tree.path_prob[node]:.3g}% after the prompt" in tip

    loaded.click_data("flame_figure", *_inside(d, first))  # into the first token's subtree
    _assert_page_matches(loaded, d, first)
    page = {name: np.asarray(loaded.column("flame_source", name)) for name in ("left", "right", "top")}
    loaded.click_data("flame_figure", *_inside(page, node))  # deeper
    _assert_page_matches(loaded, d, node)
    loaded.click_data("flame_figure", 0.5, -1.5)  # the bar zoomed out of, an ancestor now full width
    _assert_page_matches(loaded, d, first)
    loaded.click_data("flame_figure", *_inside(page, node))
    loaded.click_data("flame_figure", 0.5, -0.5)  # the prompt's row: all the way out
    _assert_page_matches(loaded, d, 0)
    assert loaded.errors == []
