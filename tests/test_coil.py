"""Tests for coilvis.views.coil: the Bokeh model graph first, then the page in headless Chromium."""

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
from coilvis.record import HEAD_MAX, HEAD_MEAN
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.coil import (
    END_MARK,
    START_MARK,
    AttentionChoice,
    CoilView,
    fit_labels,
    label_width_px,
    token_groups,
)

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401

EIFFEL = "The Eiffel Tower is located in the city of"
VIEWS = Path(coilvis.__file__).parent / "views"


def causal_pattern(rng: np.random.Generator, n_layers: int, n_heads: int, n: int) -> np.ndarray:
    scores = rng.normal(size=(n_layers, n_heads, n, n)) * 2.0
    scores[..., 0] += 1.5  # a sink
    scores = np.where(np.tril(np.ones((n, n), dtype=bool)), scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def make_record(
    n: int = 24,
    *,
    vocab: list[str] | None = None,
    tokens: list[int] | None = None,
    n_layers: int = 2,
    n_heads: int = 3,
    attention: bool = True,
    seed: int = 0,
) -> coilvis.Record:
    rng = np.random.default_rng(seed)
    if vocab is None:
        vocab = [" the", " cat", " sat", ".", " on", " mat", "\n", "A", " dog", " ran"]
    logits = rng.normal(size=(n, len(vocab))) * 3.0
    if tokens is None:
        tokens = rng.integers(0, len(vocab), size=n).tolist()
    pattern = causal_pattern(rng, n_layers, n_heads, n) if attention else None
    return coilvis.from_logits(logits, tokens=tokens, vocab=vocab, attention=pattern, attention_top_k=4)


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
    assert isinstance(bar, ColorBar) and bar.color_mapper is fill.transform
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


# ------------------------------------------------------------------------------ attention


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


def candidate_links(
    record: coilvis.Record, choice: AttentionChoice, *, threshold: float, top_k: int, hide_sink: bool
) -> set[tuple[int, int]]:
    q, k, w = record.attention.select(choice.layer, choice.head)
    out = set()
    for query in np.unique(q):
        rows = [
            (float(wj), int(kj))
            for qj, kj, wj in zip(q, k, w, strict=True)
            if qj == query and kj != qj and wj >= threshold and not (hide_sink and kj == 0)
        ]
        rows.sort(reverse=True)
        out.update((int(query), key) for _, key in rows[:top_k])
    return out


@pytest.mark.parametrize(("top_k", "threshold", "hide_sink"), [(1, 0.0, False), (3, 0.05, False), (2, 0.0, True)])
def test_links_follow_top_k_threshold_and_sink(
    record: coilvis.Record, top_k: int, threshold: float, hide_sink: bool
) -> None:
    view = coilvis.coil(
        record,
        attention=[(0, 1), (1, "mean")],
        attention_top_k=top_k,
        attention_threshold=threshold,
        hide_sink=hide_sink,
    )
    data = view.links.data
    for c, choice in enumerate(view.choices):
        rows = data["choice"] == c
        got = set(zip(data["query"][rows].tolist(), data["key"][rows].tolist(), strict=True))
        assert got == candidate_links(record, choice, threshold=threshold, top_k=top_k, hide_sink=hide_sink)
        q, k, w = record.attention.select(choice.layer, choice.head)
        weights = {(int(a), int(b)): float(c_) for a, b, c_ in zip(q, k, w, strict=True)}
        assert [
            weights[pair] for pair in zip(data["query"][rows].tolist(), data["key"][rows].tolist(), strict=True)
        ] == pytest.approx(data["weight"][rows].tolist())
        assert np.all(np.diff(data["weight"][rows]) >= 0)  # heavier drawn last
    assert np.all(data["query"] != data["key"])
    assert np.all(data["weight"] >= threshold)
    if hide_sink:
        assert np.all(data["key"] != 0)
    assert view.n_links_dropped == 0


def test_links_obey_the_page_budget(record: coilvis.Record) -> None:
    free = coilvis.coil(
        record, attention=[(0, 0), (0, "mean"), (1, "max")], attention_top_k=None, attention_threshold=0.0
    )
    counts = np.bincount(free.links.data["choice"], minlength=3)
    budget = int(counts.sum() * 0.5)
    view = coilvis.coil(
        record,
        attention=[(0, 0), (0, "mean"), (1, "max")],
        attention_top_k=None,
        attention_threshold=0.0,
        max_links=budget,
    )
    data = view.links.data
    assert len(data["query"]) == budget
    assert view.n_links_dropped == counts.sum() - budget
    kept = np.bincount(data["choice"], minlength=3)
    for c in range(3):  # shared evenly: a choice keeps all its links or about as many as any other
        assert kept[c] == counts[c] or kept[c] >= kept.max() - 1
    for c in range(3):  # each choice keeps its heaviest links
        all_w = np.sort(free.links.data["weight"][free.links.data["choice"] == c])
        kept_w = np.sort(data["weight"][data["choice"] == c])
        np.testing.assert_allclose(kept_w, all_w[all_w.size - kept_w.size :])
    assert len(coilvis.coil(record, attention="mean", max_links=0).links.data["query"]) == 0


def test_a_choice_with_few_links_keeps_them_all() -> None:
    n = 30
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]  # weight 1/(q+1) on every key
    previous = np.eye(n, k=-1) * 0.9 + np.eye(n) * 0.1  # 0.9 on the previous token
    previous[0, 0] = 1.0
    pattern = np.stack([uniform, previous])[:, None].astype(np.float32)  # 2 layers x 1 head
    rec = coilvis.from_logits(
        np.zeros((n, 3)), tokens=[0] * n, vocab=["a", "b", "c"], attention=pattern, attention_top_k=8
    )
    spec = [(0, 0), (1, 0)]
    free = coilvis.coil(rec, attention=spec, attention_threshold=0.2, attention_top_k=None)
    counts = np.bincount(free.links.data["choice"], minlength=2)
    assert counts.tolist() == [1 + 2 + 3 + 4, n - 1]  # queries 1-4 see keys of weight >= 0.2
    view = coilvis.coil(rec, attention=spec, attention_threshold=0.2, attention_top_k=None, max_links=20)
    assert np.bincount(view.links.data["choice"], minlength=2).tolist() == [10, 10]
    assert view.n_links_dropped == n - 1 - 10


def test_arcs_are_drawn_from_the_segment_anchors(record: coilvis.Record) -> None:
    view = coilvis.coil(record, attention="mean")
    data, seg = view.links.data, view.segments.data
    assert set(data) == {"query", "key", "weight", "choice"}
    anchors = geometry.arc_curves(view.coiled, np.arange(record.seq_len), np.arange(record.seq_len), anchor="inner")
    np.testing.assert_allclose(seg["anchor_x"], anchors.x0, atol=1e-5)
    np.testing.assert_allclose(seg["anchor_y"], anchors.y0, atol=1e-5)
    glyph = view.model("coil_arcs").glyph
    for name, field, transform_name in (
        ("x0", "query", "coil_anchor_x"),
        ("y0", "query", "coil_anchor_y"),
        ("x1", "key", "coil_anchor_x"),
        ("y1", "key", "coil_anchor_y"),
        ("cx", "query", "coil_control_x"),
        ("cy", "query", "coil_control_y"),
    ):
        spec = getattr(glyph, name)
        assert spec.field == field and spec.transform is view.model(transform_name), name
        assert isinstance(spec.transform, CustomJSTransform)
    assert view.model("coil_arcs").view.filter is view.model("coil_choice_filter")
    assert view.model("coil_arc_highlight").data_source is view.links


# ------------------------------------------------------------------------------ labels, groups, markers


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
    assert list(labels["text"]) == [display(rec.tokens[i], max_len=16) for i in pos]
    np.testing.assert_allclose(labels["angle_rad"], view.coiled.label_angle_rad[pos], atol=1e-6)
    colors = _style.map_colors(view.segments.data[view.scale.column][pos], view.scale)
    assert list(labels["text_color"]) == _style.text_colors(colors)


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
        "coilvis.compare",
        "coilvis.record",
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
    assert "</script>" in shown and "\"'&" in shown and "␣日本語 ü 🙂" in shown
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
    view = coilvis.coil(rec, layout="circle", animate=True, tooltip_k=n)
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


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_arc_curves_in_the_page_are_the_geometrys(browser_session, tmp_path: Path) -> None:  # noqa: F811
    rec = make_record(50)
    for layout in ("spiral", "circle"):
        view = coilvis.coil(rec, attention=[(0, "mean"), (1, 2)], layout=layout)
        page = browser_session.open(coilvis.save(view, tmp_path / f"arcs_{layout}.html"))
        computed = page.evaluate(
            """() => {
                const r = Bokeh.documents[0].get_model_by_name("coil_arcs")
                const out = {}
                for (const name of ["x0", "y0", "x1", "y1", "cx", "cy"]) {
                    const spec = r.glyph[name]
                    out[name] = Array.from(spec.transform.v_compute(r.data_source.data[spec.field]))
                }
                return out
            }"""
        )
        data = view.links.data
        curves = geometry.arc_curves(view.coiled, data["query"], data["key"], anchor="inner")
        assert len(computed["cx"]) == len(data["query"]) > 0
        for name in ("x0", "y0", "x1", "y1", "cx", "cy"):
            np.testing.assert_allclose(computed[name], getattr(curves, name), atol=1e-4, err_msg=f"{layout} {name}")
        assert page.errors == []
        page.close()
