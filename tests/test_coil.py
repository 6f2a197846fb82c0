"""The coil (coilvis.views.coil): segments, colours, tooltip, markers, options and safety on the Bokeh model
graph first, then the page in headless Chromium. Attention choices, links, arcs, labels and word/sentence
groups have their own files (test_coil_attention.py, test_coil_links.py, test_coil_arcs.py,
test_coil_labels.py, test_coil_groups.py), as the package has its modules."""

from __future__ import annotations

import ast
import dataclasses
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from bokeh.models import ColorBar, CustomJS, CustomJSHover, CustomJSTransform, HoverTool, LogColorMapper, Patches

import coilvis
from coilvis import geometry
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.coil import END_MARK, START_MARK, CoilView, label_width_px

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from coil_records import causal_pattern, make_record
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.coil_records import causal_pattern, make_record

EIFFEL = "The Eiffel Tower is located in the city of"
VIEWS = Path(coilvis.__file__).parent / "views"


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return make_record(40)


# ------------------------------------------------------------------------------ segments


@pytest.mark.parametrize("n", [1, 2, 17, 300])
def test_one_segment_per_position(n: int) -> None:
    view = coilvis.coil(make_record(n, attention=False))
    assert isinstance(view, CoilView)
    renderer = view.model("coil_segments")
    assert isinstance(renderer.glyph, Patches)
    assert renderer.data_source is view.segments
    data = view.segments.data
    assert data["pos"].tolist() == list(range(n))
    assert data["xs"].shape == (n, view.coiled.n_vertices) == data["ys"].shape
    assert data["xs"].dtype == np.float32
    np.testing.assert_array_equal(data["xs"], view.coiled.poly_xs.astype(np.float32))
    assert list(data["token"]) == list(view.record.tokens)
    assert len(view.figure.select({"name": "coil_segments"})) == 1


@pytest.mark.parametrize(
    ("color", "column", "unit"),
    [
        ("prob", "top_prob_pct", "%"),
        ("target_prob", "prob_pct", "%"),
        ("entropy", "entropy_bits", "bits"),
        ("surprisal", "surprisal_bits", "bits"),
        ("rank", "rank", "log"),
    ],
)
def test_colour_is_the_records_statistic(record: coilvis.Record, color: str, column: str, unit: str) -> None:
    view = coilvis.coil(record, color=color)
    expected = {
        "prob": record.topk_probs[:, 0] * 100.0,
        "target_prob": record.next_prob * 100.0,
        "entropy": record.entropy_in(bits=True),
        "surprisal": record.surprisal(bits=True),
        "rank": np.where(record.next_rank >= 1, record.next_rank, np.nan),  # 1-based, as stored
    }[color]
    np.testing.assert_allclose(view.segments.data[column], expected, rtol=1e-6, equal_nan=True)
    # the last next token is unknown; the top token and the entropy are known everywhere
    assert np.isnan(view.segments.data[column][-1]) == (color not in ("entropy", "prob"))
    fill = view.model("coil_segments").glyph.fill_color
    assert fill.field == column
    assert fill.transform is view.model("coil_color_mapper")
    assert isinstance(fill.transform, LogColorMapper) == (color == "rank")
    bar = view.model("coil_color_bar")
    # the bar maps through a twin of the segments' mapper (see figure.add_notes): the same scale
    twin = bar.color_mapper
    assert isinstance(bar, ColorBar) and twin is not fill.transform and type(twin) is type(fill.transform)
    for attr in ("palette", "low", "high", "nan_color"):
        assert getattr(twin, attr) == getattr(fill.transform, attr), attr
    assert unit in bar.title
    assert view.scale.legend in " ".join(t.text for t in view.figure.below)


def test_default_palettes_make_the_unexpected_bright(record: coilvis.Record) -> None:
    for color in ("prob", "target_prob", "entropy", "surprisal", "rank"):
        scale = coilvis.coil(record, color=color).scale
        sure, unsure = (scale.high, scale.low) if color in ("prob", "target_prob") else (scale.low, scale.high)
        expected, unexpected = _style.map_colors([sure, unsure], scale)
        assert _style._luminance(unexpected) > _style._luminance(expected) + 0.5, color


def test_palette_option(record: coilvis.Record) -> None:
    assert coilvis.coil(record, palette="Magma").scale.palette == _style.PALETTES["Magma"]
    assert coilvis.coil(record, palette="Cividis256_r").scale.palette[0] == _style.PALETTES["Cividis"][-1]
    assert coilvis.coil(record, palette=["#000000", "#ffffff"]).scale.palette == ("#000000", "#ffffff")
    for bad in ("Jet", ["#000000"], ["red", "blue"]):
        with pytest.raises(CoilvisValueError, match="palette"):
            coilvis.coil(record, palette=bad)
    with pytest.raises(CoilvisTypeError, match="palette"):
        coilvis.coil(record, palette=3)


def test_figure_keeps_a_one_to_one_aspect(record: coilvis.Record) -> None:
    view = coilvis.coil(record, width=500, height=300)
    p = view.figure
    x_span = p.x_range.end - p.x_range.start
    y_span = p.y_range.end - p.y_range.start
    assert (p.frame_width, p.frame_height) == (500, 300)
    assert x_span / 500 == pytest.approx(y_span / 300)
    x_min, y_min, x_max, y_max = view.coiled.bounds
    assert p.x_range.start < x_min and x_max < p.x_range.end
    assert p.y_range.start < y_min and y_max < p.y_range.end


def test_unwind_hooks_hold_coiled_and_unwound_positions(record: coilvis.Record) -> None:
    view = coilvis.coil(record, attention=None)
    line = geometry.unwound_layout(view.coiled)
    data = view.segments.data
    for column, values in (
        ("x", view.coiled.x),
        ("y", view.coiled.y),
        ("angle_rad", view.coiled.angle_rad),
        ("x_line", line.x),
        ("y_line", line.y),
        ("angle_line_rad", line.angle_rad),
    ):
        np.testing.assert_allclose(data[column], values, rtol=1e-6, atol=1e-6, err_msg=column)
    assert view.unwound.kind == "line"


@pytest.mark.parametrize(
    ("layout", "n", "kind"),
    [("spiral", 10, "spiral"), ("circle", 10, "circle"), ("auto", 10, "circle"), ("auto", 40, "spiral")],
)
def test_layout_option(layout: str, n: int, kind: str) -> None:
    assert coilvis.coil(make_record(n, attention=False), layout=layout).coiled.kind == kind


def test_long_prompts_get_coarser_polygons() -> None:
    view = coilvis.coil(make_record(3000, vocab=["a", " b", "."], attention=False))
    assert view.coiled.n_arc == 2
    assert coilvis.coil(make_record(3000, vocab=["a", " b"], attention=False), n_arc=5).coiled.n_arc == 5


# ------------------------------------------------------------------------------ tooltip


def test_tooltip_uses_escaped_fields_only(record: coilvis.Record) -> None:
    view = coilvis.coil(record, attention="mean")
    hovers = list(view.doc.select({"type": HoverTool}))
    assert [h.name for h in hovers] == ["coil_hover"]
    hover = hovers[0]
    assert hover.renderers == [view.model("coil_segments")]
    template = hover.tooltips
    assert isinstance(template, str)
    assert "{safe}" not in template
    fields = re.findall(r"@([A-Za-z_]\w*)", template)
    assert set(fields) == {"pos", "entropy_bits"}  # tokens through the formatter, with their ids
    assert set(fields) <= set(view.segments.data)
    assert set(hover.formatters) == {"@pos"}
    assert isinstance(hover.formatters["@pos"], CustomJSHover)
    with pytest.raises(CoilvisValueError, match="safe"):
        _style.tooltip_html([("token", "@label{safe}")])
    with pytest.raises(CoilvisValueError, match="plain text"):
        _style.tooltip_html([("<b>token</b>", "@label")])


def test_topk_columns_match_the_record(record: coilvis.Record) -> None:
    view = coilvis.coil(record, tooltip_k=5)
    data = view.segments.data
    vocab = view.model("coil_vocab_source").data
    assert data["topk_vocab"].shape == (record.seq_len, 5)
    ids = np.asarray(vocab["token_id"])[data["topk_vocab"]]
    np.testing.assert_array_equal(ids, record.topk_ids[:, :5])
    np.testing.assert_allclose(data["topk_pct"], record.topk_probs[:, :5] * 100.0, rtol=1e-6)
    labels = np.asarray(vocab["label"], dtype=object)[data["topk_vocab"]]
    assert labels[3, 0] == display(record.token_text(int(record.topk_ids[3, 0])), max_len=32)
    next_rows = data["next_vocab"]
    assert next_rows[-1] == -1
    np.testing.assert_array_equal(np.asarray(vocab["token_id"])[next_rows[:-1]], record.token_ids[1:])
    assert list(data["label"]) == [display(t, max_len=40) for t in record.tokens]


# (name, token text): texts that look alike once whitespace and controls are made
# visible, and one text under two ids. The hover shows each token as its exact label
# and its id, so no two of them look the same.
ALIKE = [
    ("newline", "\n"),
    ("literal_newline_mark", "↵"),
    ("backslash_n", "\\n"),
    ("nul", "\x00"),
    ("backslash_x00", "\\x00"),
    ("empty", ""),
    ("literal_empty_mark", "∅"),
    ("space", " "),
    ("literal_space_mark", "␣"),
    ("tab", "\t"),
    ("literal_tab_mark", "⇥"),
    ("bidi_override", "\u202e"),
    ("backslash_u202e", "\\u202e"),
    ("backslash", "\\"),
    ("two_backslashes", "\\\\"),
    ("partial_byte_or_backslash_xe2", "\\xe2"),
    ("same_text_first_id", "Paris"),
    ("same_text_second_id", "Paris"),
]


def alike_record() -> coilvis.Record:
    """One position per ALIKE token (ids 0, 1, ...), and every token in each top-k."""
    n = len(ALIKE)
    logits = np.tile(np.linspace(3.0, 0.0, n), (n, 1))
    rec = coilvis.from_logits(logits, tokens=list(range(n)), vocab=[f"v{i}" for i in range(n)], k=n)
    texts = [text for _, text in ALIKE]
    return dataclasses.replace(rec, tokens=tuple(texts), vocab=dict(enumerate(texts)))


def test_alike_tokens_have_distinct_labels_and_their_ids() -> None:
    rec = alike_record()
    view = coilvis.coil(rec)
    data = view.segments.data
    np.testing.assert_array_equal(data["token_id"], np.arange(len(ALIKE)))
    labels = list(data["label"])
    assert labels == [display(text, max_len=40) for _, text in ALIKE]
    # distinct texts, distinct labels; the one shared text is told apart by its id
    assert len(set(zip(labels, data["token_id"].tolist(), strict=True))) == len(ALIKE)
    assert len(set(labels)) == len(ALIKE) - 1
    vocab = view.model("coil_vocab_source").data
    assert list(vocab["token_id"]) == list(range(len(ALIKE)))
    assert len(set(vocab["label"])) == len(ALIKE) - 1


# ------------------------------------------------------------------------------ markers


def test_start_and_end_are_marked(record: coilvis.Record) -> None:
    view = coilvis.coil(record)
    markers = view.model("coil_marker_source").data
    assert list(markers["text"]) == [START_MARK, END_MARK]
    # the start marker sits inside the spiral's first turn, the end marker outside the last
    assert math.hypot(markers["x"][0], markers["y"][0]) < view.coiled.r[0]
    assert math.hypot(markers["x"][1], markers["y"][1]) > view.coiled.r[-1]


# ------------------------------------------------------------------------------ options, safety, imports


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"layout": "helix"}, CoilvisValueError, "layout"),
        ({"color": "logit"}, CoilvisValueError, "color"),
        ({"attention_threshold": 2.0}, CoilvisValueError, "attention_threshold"),
        ({"attention_threshold": "0.1"}, CoilvisTypeError, "attention_threshold"),
        ({"attention_top_k": 0}, CoilvisValueError, "attention_top_k"),
        ({"max_links": -1}, CoilvisValueError, "max_links"),
        ({"width": 10}, CoilvisValueError, "width"),
        ({"height": 2.5}, CoilvisTypeError, "height"),
        ({"labels": "yes"}, CoilvisTypeError, "labels"),
        ({"hide_sink": 1}, CoilvisTypeError, "hide_sink"),
        ({"title": 3}, CoilvisTypeError, "title"),
        ({"tooltip_k": 0}, CoilvisValueError, "tooltip_k"),
        ({"n_arc": 0}, CoilvisValueError, "n_arc"),
    ],
)
def test_bad_options_name_the_argument(record: coilvis.Record, kwargs: dict, error: type, word: str) -> None:
    with pytest.raises(error, match=f"^{word}:"):
        coilvis.coil(record, **kwargs)


def test_record_must_be_a_record() -> None:
    with pytest.raises(CoilvisTypeError, match="^record:"):
        coilvis.coil({"tokens": ["a"]})  # type: ignore[arg-type]


HOSTILE = ['<img src=x onerror="window.__pwned=1">', "</script>", "\"'&", " 日本語 ü 🙂", "a\u202eb", " zebra"]


def hostile_record() -> coilvis.Record:
    n = 12
    tokens = [i % len(HOSTILE) for i in range(n)]
    logits = np.full((n, len(HOSTILE)), -2.0)
    for i in range(n):  # every hostile string is in every top-k, the img tag on top
        logits[i] = np.linspace(3.0, 0.0, len(HOSTILE))
    return coilvis.from_logits(
        logits, tokens=tokens, vocab=HOSTILE, attention=causal_pattern(np.random.default_rng(1), 1, 2, n)
    )


def test_token_text_never_reaches_javascript_source() -> None:
    view = coilvis.coil(hostile_record(), attention="mean", layout="circle")
    codes = [m.code for m in list(view.doc.select({"type": CustomJS}))]
    codes += [m.code for m in list(view.doc.select({"type": CustomJSHover}))]
    codes += [m.v_func + m.func for m in list(view.doc.select({"type": CustomJSTransform}))]
    assert codes
    for code in codes:
        for text in HOSTILE:
            assert text.strip() not in code
    for hover in list(view.doc.select({"type": HoverTool})):
        assert not any(text.strip() in hover.tooltips for text in HOSTILE)


@pytest.mark.parametrize("name", sorted(p.relative_to(VIEWS).as_posix() for p in VIEWS.rglob("*.py")))
def test_views_import_no_model_libraries(name: str) -> None:
    tree = ast.parse((VIEWS / name).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module if node.module.startswith("coilvis") else node.module.split(".")[0])
    allowed_coilvis = {
        "coilvis",
        "coilvis.geometry",
        "coilvis.topk_bounds",
        "coilvis.record",
        "coilvis.comparison",  # the Comparison of two runs, drawn by coilvis.views.diff
        "coilvis.continuations",  # the continuation Tree, drawn by the sunburst and the flame graph
        "coilvis.tokens",
        "coilvis.errors",
        "coilvis.files",
        "coilvis.options",
        "coilvis.views",
        "coilvis.views.output",
    }
    assert not imported & {"torch", "transformers", "transformer_lens", "pandas"}
    outside_views = {m for m in imported if m.startswith("coilvis") and not m.startswith("coilvis.views.")}
    packages = {"coilvis.geometry" if m.startswith("coilvis.geometry.") else m for m in outside_views}
    assert packages <= allowed_coilvis


def test_what_a_hover_changes_is_drawn_on_the_overlay_canvas(record: coilvis.Record) -> None:
    """BokehJS repaints a figure's main canvas (every segment and arc) when a renderer on it
    changes, and only its overlay canvas when only overlays do: the hovered segment's outline
    and the arcs' highlight are overlays, and so is all that is drawn above them (labels,
    start and end marks), in the order drawn; the segments carry no hover glyph of their own."""
    view = coilvis.coil(record, attention="mean")
    assert view.model("coil_segments").hover_glyph is None
    overlays = [r.name for r in view.figure.renderers if r.level == "overlay"]
    assert overlays == ["coil_hover_outline", "coil_arc_highlight", "coil_labels", "coil_markers"]
    assert {view.model(name).level for name in ("coil_bands", "coil_segments", "coil_arcs")} == {"glyph"}
    outline = view.model("coil_hover_outline_source")
    assert view.model("coil_hover_outline").data_source is outline and len(outline.data["row"]) == 0
    callback = view.model("coil_hover").callback
    assert callback.args["outline"] is outline and callback.args["shapes"] is view.segments
    assert callback.args["highlight"] is view.model("coil_highlight_filter")  # and it highlights the arcs
    # the unwind's moving parts are overlays too, its front drawn under the highlight and the labels
    moving = coilvis.coil(record, attention="mean", animate=True)
    overlays = [r.name for r in moving.figure.renderers if r.level == "overlay"]
    assert overlays == [
        "coil_unwind_front", "coil_hover_outline", "coil_unwind_front_crossing", "coil_unwind_front_arcs",
        "coil_unwind_front_arc_highlight",
        "coil_arc_highlight", "coil_labels", "coil_markers", "coil_unwind_playhead",
    ]  # fmt: skip


# ------------------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def eiffel() -> coilvis.Record:
    return coilvis.run(EIFFEL, attention=True)


def screenshot_rgb(page) -> np.ndarray:  # noqa: ANN001
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.page.screenshot())).convert("RGB")).astype(np.int64)


def edge_point(view: CoilView, i: int) -> tuple[float, float]:
    """A point of segment i between its label and its outer edge."""
    x, y = float(view.segments.data["x"][i]), float(view.segments.data["y"][i])
    scale = 1.0 + 0.3 * view.coiled.band_width / math.hypot(x, y)
    return x * scale, y * scale


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.model
@pytest.mark.xdist_group("browser")
def test_eiffel_page_renders_and_shows_its_tooltips(browser_session, eiffel, tmp_path: Path) -> None:  # noqa: F811
    view = coilvis.coil(eiffel, attention="mean")
    page = browser_session.open(coilvis.save(view, tmp_path / "eiffel.html"))
    assert page.errors == []
    assert page.external_requests == []
    assert page.column("coil_segment_source", "pos") == list(range(eiffel.seq_len))
    assert page.view_indices("coil_segments") == list(range(eiffel.seq_len))

    # the last position: its top-k has Paris on top, and no next token
    last = eiffel.seq_len - 1
    page.hover_data("coil_figure", *edge_point(view, last))
    text = page.tooltip_text()
    assert f"position {last}" in text and "␣of" in text
    assert "unknown (end of the prompt)" in text
    top = text.split("top 10 next tokens")[1].strip().splitlines()
    assert top[0].split() == [f"{eiffel.topk_probs[last, 0] * 100:.1f}%", "␣Paris", "id", str(eiffel.topk_ids[last, 0])]
    assert len(top) == 10

    # position 3 (" Tower"): the actual next token " is" with its probability and rank
    page.hover_data("coil_figure", *edge_point(view, 3))
    text = page.tooltip_text()
    assert "position 3" in text and f"token ␣Tower  (id {eiffel.token_ids[3]})" in text
    rank = int(eiffel.next_rank[3])  # ranks are 1-based everywhere
    assert f"next ␣is  (id {eiffel.token_ids[4]})" in text
    assert f"rank {rank}" in text and f"{eiffel.surprisal()[3]:.2f} bits" in text
    assert f"entropy {eiffel.entropy_in()[3]:.2f} bits" in text
    assert "← next" in text.split("top 10 next tokens")[1]

    # the colours drawn are the colour scale's
    page.hover_data("coil_figure", 0.0, 0.0)  # off the segments
    image = screenshot_rgb(page)
    colors = _style.map_colors(view.segments.data[view.scale.column], view.scale)
    for i in range(eiffel.seq_len):
        sx, sy = page.data_to_page("coil_figure", *edge_point(view, i))
        rgb = np.array([int(colors[i][j : j + 2], 16) for j in (1, 3, 5)])
        assert np.abs(image[int(round(sy)), int(round(sx))] - rgb).max() <= 6, (i, colors[i])


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.model
@pytest.mark.xdist_group("browser")
def test_eiffel_arcs_highlight_and_switch(browser_session, eiffel, tmp_path: Path) -> None:  # noqa: F811
    view = coilvis.coil(eiffel, attention=[(-1, "mean"), (3, 1)])
    page = browser_session.open(coilvis.save(view, tmp_path / "arcs.html"))
    data = view.links.data
    first = np.flatnonzero(data["choice"] == 0).tolist()
    second = np.flatnonzero(data["choice"] == 1).tolist()
    assert first and second
    assert page.view_indices("coil_arcs") == first
    assert page.view_indices("coil_arc_highlight") == []

    def own(pos: int, choice: int) -> list[int]:
        return np.flatnonzero((data["choice"] == choice) & ((data["query"] == pos) | (data["key"] == pos))).tolist()

    page.hover_data("coil_figure", *edge_point(view, 5))
    assert page.view_indices("coil_arc_highlight") == own(5, 0) != []
    page.hover_data("coil_figure", 0.0, 0.0)
    assert page.view_indices("coil_arc_highlight") == []

    page.click_data("coil_figure", *edge_point(view, 7))  # tapping keeps the highlight
    selected = "() => Array.from(Bokeh.documents[0].get_model_by_name('coil_segment_source').selected.indices)"
    assert page.evaluate(selected) == [7]
    page.hover_data("coil_figure", 0.0, 0.0)
    assert page.view_indices("coil_arc_highlight") == own(7, 0)

    page.page.locator("select").select_option(label=view.choices[1].label)
    page.wait_idle(0.3)
    assert page.model_attr("coil_choice_filter", "group") == 1
    assert page.view_indices("coil_arcs") == second
    assert page.view_indices("coil_arc_highlight") == own(7, 1)
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.model
@pytest.mark.xdist_group("browser")
def test_labels_fit_in_the_real_font(browser_session, eiffel, tmp_path: Path) -> None:  # noqa: F811
    vocab_view = coilvis.coil(
        make_record(80, vocab=["Wm", " WWW", "mmmm", " i", "日本", " ␣x", "."], attention=False), width=500, height=500
    )
    for view in (coilvis.coil(eiffel), vocab_view):
        page = browser_session.open(coilvis.save(view, tmp_path / "labels.html"))
        texts = page.column("coil_label_source", "text")
        assert texts == list(view.labels.data["text"]) and texts
        widths = page.evaluate(
            """([texts, font]) => {
                const ctx = document.createElement("canvas").getContext("2d")
                ctx.font = font
                return texts.map((t) => ctx.measureText(t).width)
            }""",
            [texts, f"{view.font_px}px {_style.FONT}"],
        )
        estimates = [label_width_px(t, view.font_px) for t in texts]
        too_narrow = [(t, w, e) for t, w, e in zip(texts, widths, estimates, strict=True) if w > e]
        assert too_narrow == []
        page.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_hostile_token_text_is_shown_literally_and_runs_nothing(browser_session, tmp_path: Path) -> None:  # noqa: F811
    rec = hostile_record()
    view = coilvis.coil(rec, attention="mean", layout="circle", width=900, height=900)
    path = coilvis.save(view, tmp_path / "hostile.html")
    html = path.read_text(encoding="utf-8")
    assert html.count("</script>") == html.count("<script")  # the token cannot close a script
    page = browser_session.open(path)
    assert page.errors == []
    assert page.external_requests == []
    assert page.evaluate("() => window.__pwned") is None
    assert page.column("coil_segment_source", "token") == list(rec.tokens)
    shown = page.column("coil_label_source", "text")
    assert "</script>" in shown and "\"'&" in shown and "·日本語 ü 🙂" in shown  # segment labels: subtle whitespace by default
    for i in (5, 4, 3, 2, 1, 0):
        page.hover_data("coil_figure", *edge_point(view, i))
        text = page.tooltip_text()
        assert f"token {display(rec.tokens[i], max_len=40)}" in text
        assert page.page.locator(".bk-tooltip-content img").count() == 0
        if i == 4:
            assert "token a\\u202eb" in text  # the bidi override is shown, not obeyed
    # position 0's token is the img tag: shown as text, escaped in the tooltip's HTML
    assert 'token <img src=x onerror="window.__pwned=1">' in text
    assert "&lt;img src=x onerror=" in page.tooltip_html()
    top = text.split("next tokens")[1]
    assert "</script>" in top and "\"'&" in top and "␣日本語 ü 🙂" in top
    assert page.evaluate("() => window.__pwned") is None
    assert page.errors == []


_FORMAT_JS = """
([n, what]) => {
  const fmt = Bokeh.documents[0].get_model_by_name("coil_text_format")
  return Array.from({length: n}, (_, i) => fmt.format(i, what, {}))
}
"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_alike_tokens_never_look_the_same_in_the_hover(browser_session, tmp_path: Path) -> None:  # noqa: F811
    rec = alike_record()
    n = len(ALIKE)
    view = coilvis.coil(rec, layout="circle", animate=True, tooltip_k=n, autoplay=False)  # scrubbed below
    page = browser_session.open(coilvis.save(view, tmp_path / "alike.html"))
    assert page.errors == []
    tokens = page.evaluate(_FORMAT_JS, [n, "token"])
    assert tokens == [f"{display(text, max_len=40)}  (id {i})" for i, (_, text) in enumerate(ALIKE)]
    assert len(set(tokens)) == n
    nexts = page.evaluate(_FORMAT_JS, [n, "next"])
    assert [line.split("   ")[0] for line in nexts[:-1]] == tokens[1:]
    # the top-k block: every token once, each line with its label and id, all different
    lines = page.evaluate(_FORMAT_JS, [n, "topk"])[0].split("\n")
    assert len(lines) == n and len(set(line.split("%", 1)[1].rstrip(" ←next") for line in lines)) == n
    assert sorted(int(line.split(" id ")[1].split()[0]) for line in lines) == list(range(n))
    # what a person sees: the tooltip and the unwind's readout
    page.hover_data("coil_figure", *edge_point(view, 1))
    assert f"token {tokens[1]}" in page.tooltip_text()
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coil_unwind_scrub').value = 2 }")  # scrub to 2
    page.wait_idle(0.2)
    readout = page.model_attr("coil_unwind_readout", "text")
    assert readout.startswith(f"position 2 of {n - 1}:  {tokens[2]}\nnext:  {tokens[3]}")
    assert page.errors == []




def big_record(n: int, *, seed: int = 0) -> coilvis.Record:
    """n positions of random logits over 64 tokens, with attention links (the first token, the
    previous one and a random earlier one per query) as the mean of one layer's heads."""
    from coilvis.record import HEAD_MEAN, AttentionLinks

    rng = np.random.default_rng(seed)
    rec = coilvis.from_logits(rng.normal(size=(n, 64)).astype(np.float32) * 3, tokens=rng.integers(0, 64, n).tolist())
    q = np.arange(n)
    keys = np.concatenate([0 * q, np.maximum(q - 1, 0), (rng.random(n) * (q + 1)).astype(int)])
    pairs = np.unique(np.stack([np.tile(q, 3), keys], axis=1), axis=0)
    links = AttentionLinks(
        layer=np.zeros(len(pairs)), head=np.full(len(pairs), HEAD_MEAN), query=pairs[:, 0], key=pairs[:, 1],
        weight=rng.uniform(0.05, 0.9, len(pairs)), n_layers=1, n_heads=2, top_k=3,
    )  # fmt: skip
    return dataclasses.replace(rec, attention=links)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_a_coil_of_10000_positions_answers_the_hover_of_each(browser_session, tmp_path: Path) -> None:  # noqa: F811
    """At 10,000 positions with arcs, hovering a segment shows its own tooltip, outlines it and
    highlights its arcs; leaving it clears both."""
    rec = big_record(10_000)
    view = coilvis.coil(rec, attention="mean")
    page = browser_session.open(coilvis.save(view, tmp_path / "big.html"), timeout_s=180)
    assert page.errors == []
    data = view.links.data
    for i in (7, 4321, 9_999):
        page.hover_data("coil_figure", *edge_point(view, i))
        text = page.tooltip_text()
        assert re.search(rf"position\s+{i}\s", text), text[:80]
        assert f"token {display(rec.tokens[i], max_len=40)}  (id {rec.token_ids[i]})" in text
        assert page.column("coil_hover_outline_source", "row") == [i]
        outline = np.reshape(page.column("coil_hover_outline_source", "xs"), -1)
        np.testing.assert_allclose(outline, view.segments.data["xs"][i], rtol=1e-6)
        own = np.flatnonzero((data["query"] == i) | (data["key"] == i)).tolist()
        assert page.view_indices("coil_arc_highlight") == own != []
    page.hover_data("coil_figure", 0.0, 0.0)  # the hole in the middle: nothing hovered
    assert page.column("coil_hover_outline_source", "row") == [] and page.view_indices("coil_arc_highlight") == []
    assert page.errors == []
