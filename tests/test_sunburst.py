"""The continuation sunburst (coilvis.views.sunburst) and what it shares with the flame graph (coilvis.views._tree).

The Bokeh model graph first: angles are the path probabilities, rings the depths,
"other" wedges grey, colours the statistic asked for, the hover's fields, and token text
only in data. Then headless Chromium: the page renders offline, the hover shows the
whole continuation and both probabilities, hostile text stays text, and tapping zooms in
and out, the page's own geometry matching :func:`sunburst_geometry` wedge for wedge.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bokeh.models import CustomJS, HoverTool, Title

import coilvis
from coilvis.continuations import Tree
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import LN2
from coilvis.tokens import display
from coilvis.views import _style, _tree
from coilvis.views.output import View
from coilvis.views.sunburst import R_CENTRE, R_OUTER, sunburst, sunburst_geometry

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from tree_cases import HOSTILE_IMG, HOSTILE_SCRIPT, PROMPT, VOCAB, synthetic_tree
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.tree_cases import HOSTILE_IMG, HOSTILE_SCRIPT, PROMPT, VOCAB, synthetic_tree


@pytest.fixture(scope="module")
def tree() -> Tree:
    return synthetic_tree(depth=3, k=3, seed=1, d_vocab=len(VOCAB))


def data(view: View) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in view.model("sunburst_source").data.items()}


# ------------------------------------------------------------------ the model graph


def test_wedge_angles_are_path_probabilities_and_rings_depths(tree: Tree) -> None:
    d = data(sunburst(tree))
    span = (d["end_angle"] - d["start_angle"]).astype(np.float64)
    np.testing.assert_allclose(span[1:], 2 * math.pi * tree.path_prob[1:], atol=1e-5)
    assert span[0] == pytest.approx(2 * math.pi) and d["outer_radius"][0] == R_CENTRE  # the prompt: the centre
    ring = (R_OUTER - R_CENTRE) / 3
    np.testing.assert_allclose(d["inner_radius"][1:], R_CENTRE + (tree.depth[1:] - 1) * ring, atol=1e-6)
    np.testing.assert_allclose(d["outer_radius"][1:], R_CENTRE + tree.depth[1:] * ring, atol=1e-6)
    first = tree.children(0)[0]
    assert d["end_angle"][first] == pytest.approx(math.pi / 2)  # the most likely continuation starts at the top
    for i in range(1, tree.n_nodes):  # each wedge lies within its parent's angle, children clockwise in order
        p = tree.parent[i]
        if p > 0:
            assert d["start_angle"][p] - 1e-5 <= d["start_angle"][i] and d["end_angle"][i] <= d["end_angle"][p] + 1e-5
    kids = tree.children(first)
    assert np.all(np.diff(d["end_angle"][kids]) < 0)
    assert view_indices(sunburst(tree), "sunburst_wedge_filter") == list(range(tree.n_nodes))


def view_indices(view: View, name: str) -> list[int]:
    return list(view.model(name).indices)


@pytest.mark.parametrize("color", ["prob", "path_prob", "entropy"])
def test_colour_is_the_statistic_and_other_wedges_are_grey(tree: Tree, color: str) -> None:
    view = sunburst(tree, color=color)
    d = data(view)
    real = ~tree.is_other & (np.arange(tree.n_nodes) > 0)
    want = {"prob": tree.cond_prob * 100, "path_prob": tree.path_prob * 100, "entropy": tree.entropy / LN2}[color]
    np.testing.assert_allclose(d["value"][real], want[real], rtol=1e-6)
    assert np.isnan(d["value"][~real]).all()
    mapper = view.model("sunburst_color_mapper")
    assert mapper.nan_color == _tree.OTHER_COLOR
    assert mapper.low == 0.0
    assert mapper.high == (100.0 if color != "entropy" else pytest.approx(max(1.0, float(np.nanmax(want[real]))), rel=1e-6))
    assert view.model("sunburst_color_bar").color_mapper is mapper
    renderer = view.model("sunburst_wedges")
    assert renderer.glyph.fill_color["transform"] is mapper and renderer.glyph.fill_color["field"] == "value"
    assert tuple(mapper.palette) == _style.resolve_palette(None, default=_tree.COLORS[color][2], reverse=_tree.COLORS[color][3])


def test_hover_holds_the_continuation_both_probabilities_and_the_entropy(tree: Tree) -> None:
    view = sunburst(tree)
    d = view.model("sunburst_source").data
    leaf = int(np.flatnonzero((tree.depth == 3) & ~tree.is_other)[0])
    assert d["path_label"][leaf] == display(tree.continuation(leaf))
    assert d["token"][leaf] == display(tree.texts[leaf]) and d["id_text"][leaf] == f"id {tree.token_id[leaf]}"
    assert d["cond_pct"][leaf] == pytest.approx(100 * tree.cond_prob[leaf], rel=1e-6)
    assert d["path_pct"][leaf] == pytest.approx(100 * tree.path_prob[leaf], rel=1e-6)
    assert d["entropy_bits"][leaf] == pytest.approx(tree.entropy[leaf] / LN2, rel=1e-6)
    other = int(tree.children(0)[-1])
    assert d["token"][other] == "(other tokens)" and d["id_text"][other] == f"{tree.d_vocab - 3:,} tokens"
    assert d["path_label"][other] == "(other tokens)"
    deeper = int(tree.children(tree.children(0)[0])[-1])
    assert d["path_label"][deeper] == display(tree.continuation(deeper)) + " (other tokens)"
    assert d["path_label"][0] == display(PROMPT) and d["token"][0] == "(the prompt)"
    hover = view.model("sunburst_hover")
    assert hover.renderers == [view.model("sunburst_wedges")]
    for field in ("@path_label", "@token", "@id_text", "@cond_pct", "@path_pct", "@entropy_bits"):
        assert field in hover.tooltips
    assert view.model("sunburst_tap").renderers == [view.model("sunburst_wedges")]


def test_labels_are_drawn_only_where_they_fit(tree: Tree) -> None:
    view = sunburst(tree, size_px=500, label_chars=8)
    d = data(view)
    px = 500 / (2 * 1.02 * R_OUTER)
    ring_px = (R_OUTER - R_CENTRE) / 3 * px
    labelled = view_indices(view, "sunburst_label_filter")
    assert 0 in labelled  # the prompt's end, in the centre
    assert len(labelled) > 3
    for i in labelled[1:]:
        arc_px = (d["end_angle"][i] - d["start_angle"][i]) * (d["inner_radius"][i] + d["outer_radius"][i]) / 2 * px
        assert d["label_chars"][i] * _tree.CHAR_PX + 4 <= ring_px and arc_px >= _tree.FONT_PX + 2
        assert len(d["label"][i]) <= 8
    assert all(np.cos(d["label_angle"][i]) >= -1e-6 for i in labelled)  # never upside down
    unlabelled = [i for i in range(1, tree.n_nodes) if i not in labelled]
    assert unlabelled  # the thin wedges
    assert view.model("sunburst_labels").data_source is view.model("sunburst_source")


def test_whitespace_of_drawn_labels(tree: Tree) -> None:
    node = next(i for i, t in enumerate(tree.texts) if t.startswith(" w"))  # " w12"
    word = tree.texts[node][1:]
    for mode, want in (("subtle", "\u00b7" + word), ("markers", "\u2423" + word), ("plain", " " + word)):
        assert sunburst(tree, whitespace=mode).model("sunburst_source").data["label"][node] == want
    assert sunburst(tree, whitespace="plain").model("sunburst_source").data["token"][node] == "\u2423" + word  # the hover marks it


def test_geometry_of_a_zoom_fills_the_circle_with_the_subtree(tree: Tree) -> None:
    view = sunburst(tree)
    d = data(view)
    focus = int(tree.children(0)[1])
    geo, shown, _ = sunburst_geometry(d, focus, max_depth=3, px_per_unit=80.0)
    kids = tree.children(focus)
    assert set(shown.tolist()) == {focus, *kids.tolist(), *np.concatenate([tree.children(c) for c in kids]).tolist()} - {
        i for i in range(tree.n_nodes) if tree.path_prob[i] == 0
    }
    span = (geo["end_angle"][kids] - geo["start_angle"][kids]).astype(np.float64).sum()
    assert span == pytest.approx(2 * math.pi, abs=1e-4)  # the children share the whole circle
    assert geo["outer_radius"][focus] == R_CENTRE and geo["line_alpha"][focus] == 0
    assert geo["outer_radius"][kids].max() == pytest.approx(R_CENTRE + (R_OUTER - R_CENTRE) / 2)  # two rings left
    root_geo, root_shown, root_labelled = sunburst_geometry(d, 0, max_depth=3, px_per_unit=640 / (2 * 1.02 * R_OUTER))
    for name, values in root_geo.items():
        np.testing.assert_array_equal(values, d[name], err_msg=name)
    assert root_labelled.tolist() == view_indices(view, "sunburst_label_filter")


def test_token_text_reaches_the_page_only_as_data(tree: Tree) -> None:
    view = sunburst(tree)
    assert HOSTILE_IMG in view.model("sunburst_source").data["token"]
    code = " ".join(cb.code for cb in view.doc.select({"type": CustomJS}))
    tips = " ".join(str(h.tooltips) for h in view.doc.select({"type": HoverTool}))
    titles = " ".join(str(t.text) for t in view.doc.select({"type": Title}))
    for text in (HOSTILE_IMG, HOSTILE_SCRIPT, "Paris", "Eiffel"):
        assert text not in code and text not in tips and text not in titles
    assert "{safe}" not in tips
    html = view.to_html()
    assert "<img src=x" not in html  # in the page's JSON, escaped


def test_names_and_kind(tree: Tree) -> None:
    view = sunburst(tree, title="my $$title$$")
    assert view.kind == "sunburst"
    for name in ("sunburst_figure", "sunburst_source", "sunburst_wedges", "sunburst_labels", "sunburst_wedge_filter",
                 "sunburst_label_filter", "sunburst_state", "sunburst_zoom", "sunburst_hover", "sunburst_tap",
                 "sunburst_color_bar", "sunburst_color_mapper", "sunburst_x_range", "sunburst_y_range", "sunburst_layout"):
        view.model(name)
    assert view.model("sunburst_figure").title.text.text == "my $$title$$"  # drawn as written, never typeset
    assert sunburst(tree).model("sunburst_figure").title.text == "synthetic · continuations: depth 3, top 3"
    assert coilvis.sunburst is sunburst and "sunburst" in coilvis.__all__


def test_a_loaded_tree_draws_the_same(tree: Tree, tmp_path: Path) -> None:
    a, b = data(sunburst(tree)), data(sunburst(Tree.load(tree.save(tmp_path / "t.coiltree"))))
    for name in a:
        if a[name].dtype.kind == "f":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        else:
            assert a[name].tolist() == b[name].tolist(), name
    assert sunburst(tree).to_html() == sunburst(tree).to_html()  # the same page, byte for byte


def test_a_tree_of_the_root_alone_draws() -> None:
    lonely = Tree(parent=[-1, 0], token_id=[-1, -1], depth=[0, 1], cond_prob=[1, 1], path_prob=[1, 1], entropy=[np.nan, 0],
                  is_other=[False, True], prompt_ids=[], vocab={}, d_vocab=5, k=1, depth_limit=1, prompt="")
    view = sunburst(lonely)
    assert view_indices(view, "sunburst_wedge_filter") == [0, 1]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"color": "rank"}, CoilvisValueError, r"color: expected one of \['entropy', 'path_prob', 'prob'\]"),
        ({"color": None}, CoilvisValueError, "color:"),
        ({"palette": "Nope"}, CoilvisValueError, "palette:"),
        ({"palette": ["#000000"]}, CoilvisValueError, "palette:"),
        ({"size_px": 100}, CoilvisValueError, "size_px: expected >= 200"),
        ({"size_px": 5000}, CoilvisValueError, "size_px: expected at most 4000"),
        ({"size_px": "600"}, CoilvisTypeError, "size_px:"),
        ({"label_chars": 0}, CoilvisValueError, "label_chars:"),
        ({"whitespace": "edges"}, CoilvisValueError, "whitespace:"),
        ({"title": 3}, CoilvisTypeError, "title:"),
    ],
)
def test_bad_arguments(tree: Tree, kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sunburst(tree, **kwargs)


def test_not_a_tree(tree: Tree) -> None:
    with pytest.raises(CoilvisTypeError, match="tree: expected a coilvis.Tree"):
        sunburst("a tree")
    with pytest.raises(TypeError):
        sunburst(tree, "prob")  # options are keyword-only


# ------------------------------------------------------------------ in a browser


def _centre_of(d: dict[str, Any], i: int) -> tuple[float, float]:
    """A point inside wedge ``i`` (data units)."""
    mid = (float(d["start_angle"][i]) + float(d["end_angle"][i])) / 2
    r = (float(d["inner_radius"][i]) + float(d["outer_radius"][i])) / 2
    return r * math.cos(mid), r * math.sin(mid)


def _page_data(loaded: Any) -> dict[str, np.ndarray]:
    names = ("start_angle", "end_angle", "inner_radius", "outer_radius", "label_x", "label_y", "label_angle", "line_alpha")
    return {name: np.asarray(loaded.column("sunburst_source", name), dtype=np.float32) for name in names}


def _assert_page_matches(loaded: Any, d: dict[str, Any], focus: int, px: float) -> None:
    geo, shown, labelled = sunburst_geometry(d, focus, max_depth=int(np.max(d["depth"])), px_per_unit=px)
    page = _page_data(loaded)
    for name, values in geo.items():
        np.testing.assert_allclose(page[name], values, atol=2e-5, err_msg=name)
    assert loaded.view_indices("sunburst_wedges") == shown.tolist()
    assert loaded.view_indices("sunburst_labels") == labelled.tolist()
    assert loaded.column("sunburst_state", "focus") == [focus]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_page_renders_offline_hovers_and_zooms(browser_session, tree: Tree, tmp_path: Path) -> None:  # noqa: F811
    view = sunburst(tree, size_px=600)
    d = {k: np.asarray(v) for k, v in view.model("sunburst_source").data.items()}
    px = 600 / (2 * 1.02 * R_OUTER)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "sunburst.html"))
    assert loaded.errors == [] and loaded.external_requests == []
    assert loaded.view_indices("sunburst_wedges") == list(range(tree.n_nodes))

    # hover a depth-2 wedge: its whole continuation, token, both probabilities, entropy
    first = int(tree.children(0)[0])
    node = int(tree.children(first)[0])
    loaded.hover_data("sunburst_figure", *_centre_of(d, node))
    tip = loaded.tooltip_text()
    assert display(tree.continuation(node)) in tip
    assert f"{100 * tree.cond_prob[node]:.3g}% given the tokens before it" in tip
    assert f"{100 * tree.path_prob[node]:.3g}% after the prompt" in tip
    assert f"id {tree.token_id[node]}" in tip

    # zoom into the first child: its subtree fills the circle
    loaded.click_data("sunburst_figure", *_centre_of(d, first))
    _assert_page_matches(loaded, d, first, px)
    assert len(loaded.view_indices("sunburst_wedges")) == 1 + 4 + 12
    # deeper, then a tap on a leaf changes nothing
    zoomed = _page_data(loaded)
    loaded.click_data("sunburst_figure", *_centre_of(zoomed, node))
    _assert_page_matches(loaded, d, node, px)
    leaf = int(tree.children(node)[0])
    loaded.click_data("sunburst_figure", *_centre_of(_page_data(loaded), leaf))
    _assert_page_matches(loaded, d, node, px)
    # the centre zooms out, one level a tap, back to the first page exactly
    loaded.click_data("sunburst_figure", 0.05, 0.05)
    _assert_page_matches(loaded, d, first, px)
    loaded.click_data("sunburst_figure", 0.05, 0.05)
    _assert_page_matches(loaded, d, 0, px)
    for name, values in _page_data(loaded).items():
        np.testing.assert_allclose(values, d[name], atol=2e-5, err_msg=name)
    loaded.click_data("sunburst_figure", 0.05, 0.05)  # the prompt: nothing further out
    _assert_page_matches(loaded, d, 0, px)
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_hostile_token_text_stays_text(browser_session, tmp_path: Path) -> None:  # noqa: F811
    hostile_tree = synthetic_tree(depth=1, k=len(VOCAB), seed=5, sharpness=0.5)
    node = int(np.flatnonzero(hostile_tree.token_id == VOCAB.index(HOSTILE_IMG))[0])
    view = sunburst(hostile_tree)
    d = {k: np.asarray(v) for k, v in view.model("sunburst_source").data.items()}
    loaded = browser_session.open(coilvis.save(view, tmp_path / "hostile.html"))
    loaded.hover_data("sunburst_figure", *_centre_of(d, node))
    assert HOSTILE_IMG in loaded.tooltip_text()  # shown as text
    assert "<img" not in loaded.tooltip_html().replace("&lt;img", "")
    assert loaded.evaluate("() => window.__pwned === undefined")
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_png_of_a_sunburst(tree: Tree, tmp_path: Path) -> None:
    path = coilvis.save(sunburst(tree, size_px=300), tmp_path / "sunburst.png")
    data_png = path.read_bytes()
    assert data_png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data_png[16:20], "big"), int.from_bytes(data_png[20:24], "big")
    assert width >= 300 and height >= 300


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.model
@pytest.mark.xdist_group("browser")
def test_default_model_sunburst(browser_session, default_model: Any, tmp_path: Path) -> None:  # noqa: F811
    t = coilvis.tree("The Eiffel Tower is located in the city of", default_model, depth=2, k=4)
    view = coilvis.sunburst(t)
    d = {k: np.asarray(v) for k, v in view.model("sunburst_source").data.items()}
    loaded = browser_session.open(coilvis.save(view, tmp_path / "eiffel.html"))
    assert loaded.errors == [] and loaded.external_requests == []
    paris = int(t.children(0)[0])
    loaded.hover_data("sunburst_figure", *_centre_of(d, paris))
    assert "\u2423Paris" in loaded.tooltip_text()
    loaded.click_data("sunburst_figure", *_centre_of(d, paris))
    assert loaded.column("sunburst_state", "focus") == [paris]
    assert len(loaded.view_indices("sunburst_wedges")) == 1 + 5


def test_a_saved_tree_draws_where_torch_cannot_be_imported(tree: Tree, tmp_path: Path) -> None:
    import subprocess
    import sys

    saved = tree.save(tmp_path / "t.coiltree")
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import coilvis\nt = coilvis.Tree.load(sys.argv[1])\n"
        "coilvis.save(coilvis.sunburst(t), sys.argv[2]); coilvis.save(coilvis.flame(t), sys.argv[3])\n"
        "print(sorted(m for m in ('torch', 'transformers') if sys.modules.get(m) is not None))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(saved), str(tmp_path / "s.html"), str(tmp_path / "f.html")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "s.html").stat().st_size > 0 and (tmp_path / "f.html").stat().st_size > 0
