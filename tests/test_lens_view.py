"""The lens heatmap (coilvis.views.lens, a package): the Bokeh model graph first, then headless Chromium.

Records come from :mod:`lens_records` (lens statistics computed with numpy from known
distributions), so every drawn value can be checked against an exact one; one slow test
runs the embedded default model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper, LogColorMapper

import coilvis
from coilvis.topk_bounds import topk_divergence
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import display
from coilvis.views.lens import COMPARE_STATS, LENS_STATS, lens, lens_figure, select_rows
from coilvis.views.output import View

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from lens_records import HOSTILE_IMG, HOSTILE_SCRIPT, VOCAB, lens_record, lens_record_and_logits
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.lens_records import HOSTILE_IMG, HOSTILE_SCRIPT, VOCAB, lens_record, lens_record_and_logits

LN2 = math.log(2.0)
TOKENS = ["w1", "w2", "w1", HOSTILE_IMG, HOSTILE_SCRIPT, " Paris", "\n", "w1"]


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return lens_record(TOKENS, n_layers=4, k=5, seed=0)


def cells_of(view: View) -> dict:
    return view.model("lens_cells").data


def texts_of(view: View, column: str, kind: str = "full") -> list[str]:
    """The text each cell's index column ``column`` points to ("" for -1)."""
    table = view.model("lens_strings").data[kind]
    return [table[i] if i >= 0 else "" for i in cells_of(view)[column].tolist()]


# ------------------------------------------------------------------ the model graph


def test_public_name_is_the_view_even_after_the_lens_computation_loads(record: coilvis.Record) -> None:
    """``coilvis.lens`` is this function, also once ``coilvis.run(..., lens=True)`` has
    imported the computation module (``coilvis.logit_lens``, named apart so that Python
    never binds a submodule over the function)."""
    import importlib

    importlib.import_module("coilvis.logit_lens")
    assert callable(coilvis.lens)
    assert isinstance(coilvis.lens(record), View)


def test_returns_a_view_with_named_parts(record: coilvis.Record) -> None:
    view = lens(record)
    assert isinstance(view, View) and view.kind == "lens"
    for name in ("lens_figure", "lens_cells", "lens_strings", "lens_cell_renderer", "lens_text", "lens_color_bar", "lens_hover",
                 "lens_input_axis", "lens_next_axis", "lens_layer_axis", "lens_highlight", "lens_match_renderer"):
        assert view.model(name) is not None, name
    assert view.doc.roots == [view.model("lens_figure")]


def test_one_cell_per_row_and_position(record: coilvis.Record) -> None:
    data = cells_of(lens(record))
    n_rows, seq_len = record.lens.n_rows, record.seq_len
    assert len(data["pos"]) == n_rows * seq_len
    assert sorted(zip(data["row"].tolist(), data["pos"].tolist())) == [(r, p) for r in range(n_rows) for p in range(seq_len)]
    # every column of the source has one entry per cell
    assert {len(v) for v in data.values()} == {n_rows * seq_len}


def test_window_and_stride_count(record: coilvis.Record) -> None:
    view = lens(record, stride=3, start=2, end=6)
    data = cells_of(view)
    assert sorted(set(data["row"].tolist())) == [0, 3, 4]  # 5 rows: 0, 3 and the last (4)
    assert sorted(set(data["pos"].tolist())) == [2, 3, 4, 5]
    assert len(data["pos"]) == 3 * 4
    x_range = view.model("lens_x_range")
    assert x_range.bounds == (1.5, 5.5)
    assert view.model("lens_input_axis").ticker.ticks == [2, 3, 4, 5]


def test_negative_window() -> None:
    rec = lens_record(TOKENS, seed=1)
    data = cells_of(lens(rec, start=-3))
    assert sorted(set(data["pos"].tolist())) == [5, 6, 7]


@pytest.mark.parametrize(
    ("n_rows", "stride", "layers", "expected"),
    [
        (31, 4, None, [0, 4, 8, 12, 16, 20, 24, 28, 30]),
        (31, 10, None, [0, 10, 20, 30]),
        (31, 30, None, [0, 30]),
        (31, 100, None, [0, 30]),
        (31, 1, None, list(range(31))),
        (31, None, [5], [0, 5, 30]),
        (31, None, [-1, 0], [0, 30]),
        (31, None, ["12", "embed", 3], [0, 3, 13, 30]),
        (2, 5, None, [0, 1]),
        (1, 3, None, [0]),
    ],
)
def test_striding_keeps_first_and_last(n_rows: int, stride: int | None, layers: list | None, expected: list[int]) -> None:
    names = ["embed", *map(str, range(n_rows - 1))]
    assert select_rows(names, stride=stride, layers=layers).tolist() == expected


def test_striding_in_the_figure() -> None:
    rec = lens_record(TOKENS[:3], n_layers=30, seed=2)
    view = lens(rec, stride=7)
    axis = view.model("lens_layer_axis")
    labels = [axis.major_label_overrides[t] for t in axis.ticker.ticks]
    assert labels == ["embed", "6", "13", "20", "27", "29"]
    data = cells_of(view)
    assert sorted(set(texts_of(view, "layer_ix"))) == sorted(labels)
    # shown rows are evenly spaced on the figure, the last at the top
    assert sorted(set(data["y"].tolist())) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    top = np.asarray(data["y"]) == 5.0
    assert set(np.asarray(data["row"])[top].tolist()) == {30}


def test_duplicate_tokens_stay_separate_columns(record: coilvis.Record) -> None:
    view = lens(record)
    data = cells_of(view)
    ones = [p for p, t in enumerate(TOKENS) if t == "w1"]
    assert ones == [0, 2, 7]
    for p in ones:  # each occurrence has its own full column of cells
        assert (np.asarray(data["pos"]) == p).sum() == record.lens.n_rows
    overrides = view.model("lens_input_axis").major_label_overrides
    assert [overrides[p] for p in ones] == ["w1", "w1", "w1"]
    assert len(set(view.model("lens_input_axis").ticker.ticks)) == len(TOKENS)


_WHITESPACE_MODES = {"markers": "edges", "subtle": "subtle", "plain": "none"}


@pytest.mark.parametrize(("whitespace", "paris"), [("markers", "␣Paris"), ("subtle", "·Paris"), ("plain", " Paris")])
def test_axis_labels_show_whitespace_and_mark_correct_predictions(
    record: coilvis.Record, whitespace: str, paris: str
) -> None:
    view = lens(record, whitespace=whitespace)
    inputs = view.model("lens_input_axis").major_label_overrides
    assert inputs[5] == paris and inputs[6] == "↵"  # a newline shows in every mode
    nexts = view.model("lens_next_axis").major_label_overrides
    right = record.topk_ids[:-1, 0] == record.token_ids[1:]
    for p in range(record.seq_len - 1):
        label = display(record.tokens[p + 1], max_len=12, whitespace=_WHITESPACE_MODES[whitespace])
        assert nexts[p] == (f"✓ {label}" if right[p] else label)
    assert nexts[4] == paris
    assert nexts[record.seq_len - 1] == ""


def test_axis_labels_are_subtle_by_default(record: coilvis.Record) -> None:
    assert lens(record).model("lens_input_axis").major_label_overrides[5] == "·Paris"


@pytest.mark.parametrize("whitespace", ["markers", "subtle", "plain"])
def test_cell_labels_follow_whitespace_and_the_hover_stays_exact(whitespace: str) -> None:
    vocab = [*VOCAB, " the", "  ", "a b "]
    rec = lens_record(["w1", " the", "w2", "  ", "a b ", "w3"], n_layers=2, k=5, seed=4, vocab=vocab)
    view = lens(rec, whitespace=whitespace, max_label_len=5)
    strings = view.model("lens_strings").data
    texts = {display(t): t for t in vocab}  # the exact label names its text
    raw = [texts[full] for full in strings["full"] if full in texts]
    assert raw, "the string table holds tokens"
    mode = _WHITESPACE_MODES[whitespace]
    by_full = dict(zip(strings["full"], zip(strings["label"], strings["short"], strings["hover"], strict=True), strict=True))
    for text in raw:
        label, short, hover = by_full[display(text)]
        assert label == display(text, max_len=5, whitespace=mode)
        assert short == display(text, max_len=3, whitespace=mode)
        assert hover == display(text, max_len=24)  # the hover's top-k keeps the markers
    expected = {"markers": ("␣the", "␣␣", "a b␣"), "subtle": ("·the", "··", "a b·"), "plain": (" the", "␣␣", "a b ")}
    assert [by_full[display(t)][0] for t in (" the", "  ", "a b ")] == list(expected[whitespace])
    # the hover's columns: exact labels with markers, whatever the option
    assert {display(t) for t in raw} <= set(strings["full"])
    assert "␣the" in strings["full"] and " the" not in strings["full"] and "·the" not in strings["full"]


def test_bad_whitespace_is_refused(record: coilvis.Record) -> None:
    for bad in ("edges", "none", None, 1):
        with pytest.raises(CoilvisValueError, match="^whitespace: expected one of"):
            lens(record, whitespace=bad)


def test_marked_when_final_prediction_is_right() -> None:
    # the final prediction is right at position 0 (w4 follows w3), wrong at position 1
    tokens = ["w3", "w4", "w5"]
    logits = np.full((3, len(VOCAB)), -5.0, dtype=np.float32)
    logits[0, VOCAB.index("w4")] = 5.0
    logits[1, VOCAB.index("w9")] = 5.0
    final = coilvis.from_logits(logits, tokens=[VOCAB.index(t) for t in tokens], vocab=list(VOCAB))
    lensed = lens_record(tokens, seed=3)
    rec = dataclasses.replace(final, lens=lensed.lens, vocab={**lensed.vocab, **final.vocab})
    nexts = lens(rec).model("lens_next_axis").major_label_overrides
    assert nexts[0] == "✓ w4" and nexts[1] == "w5" and nexts[2] == ""


def test_cell_texts_come_from_the_string_table(record: coilvis.Record) -> None:
    view = lens(record, max_label_len=4, hover_k=3)
    data = cells_of(view)
    ls = record.lens
    top_full, top_label = texts_of(view, "top_ix"), texts_of(view, "top_ix", "label")
    tokens, nexts, layers = texts_of(view, "token_ix"), texts_of(view, "next_ix"), texts_of(view, "layer_ix")
    assert {f"tk{j}" for j in range(3)} | {f"tp{j}" for j in range(3)} <= set(data)
    assert "tk3" not in data
    for c in range(len(data["pos"])):
        r, p = int(data["row"][c]), int(data["pos"][c])
        top_text = record.vocab[int(ls.topk_ids[r, p, 0])]
        assert top_full[c] == display(top_text)
        assert top_label[c] == display(top_text, max_len=4, whitespace="subtle")  # the default
        assert tokens[c] == display(record.tokens[p])
        assert nexts[c] == (display(record.tokens[p + 1]) if p + 1 < record.seq_len else "")
        assert layers[c] == ls.layer_names[r]
        for j in range(3):
            assert texts_of(view, f"tk{j}")[c] == display(record.vocab[int(ls.topk_ids[r, p, j])])
            assert data[f"tp{j}"][c] == pytest.approx(ls.topk_probs[r, p, j])
        assert data["entropy_bits"][c] == pytest.approx(ls.entropy[r, p] / LN2, rel=1e-6)
        assert data["kl_bits"][c] == pytest.approx(ls.kl_to_final[r, p] / LN2, rel=1e-5, abs=1e-7)
    # hostile strings are plain data in the string table, each stored once
    full = view.model("lens_strings").data["full"]
    assert full.count(HOSTILE_IMG) == 1 and full.count(HOSTILE_SCRIPT) == 1
    assert len(set(full)) == len(full)


def test_every_token_string_carries_its_id(record: coilvis.Record) -> None:
    view = lens(record, hover_k=3)
    table = view.model("lens_strings").data
    data = cells_of(view)
    ls = record.lens
    ids = np.asarray(table["token_id"])
    for c in range(len(data["pos"])):
        r, p = int(data["row"][c]), int(data["pos"][c])
        assert ids[data["top_ix"][c]] == ls.topk_ids[r, p, 0]
        assert ids[data["token_ix"][c]] == record.token_ids[p]
        assert [ids[data[f"tk{j}"][c]] for j in range(3)] == ls.topk_ids[r, p, :3].tolist()
        assert ids[data["layer_ix"][c]] == -1  # a layer name is no token
    # the token hovers show the id; the layer's does not
    hover = view.model("lens_hover")
    assert hover.formatters["@token_ix"].args["with_id"] is True
    assert hover.formatters["@layer_ix"].args["with_id"] is False


def test_layer_and_model_names_are_shown_as_token_text_is(record: coilvis.Record) -> None:
    names = ("embed", "a\u202eb", "nul\x00", "\u200f", "last")
    rec = dataclasses.replace(record, lens=dataclasses.replace(record.lens, layer_names=names), model_name="m\u202eodel")
    view = lens(rec)
    shown = [getattr(v, "text", v) for v in view.model("lens_layer_axis").major_label_overrides.values()]  # PlainText or str
    assert shown == [display(n) for n in names]
    assert shown[1:4] == ["a\\u202eb", "nul\\x00", "\\u200f"]
    assert view.model("lens_figure").title.text.text == "logit lens \u00b7 m\\u202eodel"
    assert coilvis.coil(rec).figure.title.text.text.startswith("m\\u202eodel \u00b7 ")


def test_one_text_under_two_ids_is_two_strings() -> None:
    vocab = [*VOCAB, "w1"]  # "w1" again, under the last id
    twin = len(vocab) - 1
    rec = lens_record(["w1", "w2", "w3"], n_layers=2, k=3, seed=4, vocab=vocab)
    rec = dataclasses.replace(rec, token_ids=np.array([twin, 2, 3]))  # position 0 is the second "w1"
    view = lens(rec)
    table = view.model("lens_strings").data
    rows = [i for i, text in enumerate(table["full"]) if text == "w1"]
    assert sorted(table["token_id"][i] for i in rows) in ([twin], [1, twin])
    assert table["token_id"][cells_of(view)["token_ix"][0]] == twin


def test_tokens_without_ids_are_drawn_by_their_text(record: coilvis.Record) -> None:
    """A record made from token strings may not know their ids (-1)."""
    no_ids = dataclasses.replace(record, token_ids=np.full(record.seq_len, -1))
    view = lens(no_ids)
    assert texts_of(view, "token_ix") == [display(no_ids.tokens[p]) for p in cells_of(view)["pos"].tolist()]
    nexts = view.model("lens_next_axis").major_label_overrides
    assert nexts[0] == "w2" and nexts[4] == "·Paris" and nexts[len(TOKENS) - 1] == ""
    assert view.model("lens_match_filter").indices == []


def test_cell_columns_are_numeric(record: coilvis.Record) -> None:
    """Every per-cell column is a numpy array, so the page ships it as binary."""
    data = cells_of(lens(record, compare=lens_record(TOKENS, seed=9)))
    for name, column in data.items():
        assert isinstance(column, np.ndarray) and column.dtype.itemsize <= 4, name


@pytest.mark.parametrize("stat", LENS_STATS)
def test_colour_values_equal_the_statistics(record: coilvis.Record, stat: str) -> None:
    view = lens(record, stat=stat)
    data = cells_of(view)
    r, p = np.asarray(data["row"]), np.asarray(data["pos"])
    ls = record.lens
    expected = {
        "prob": 100.0 * ls.topk_probs[r, p, 0],
        "entropy": ls.entropy[r, p] / LN2,
        "kl": ls.kl_to_final[r, p] / LN2,
        "rank": ls.final_top_rank[r, p].astype(np.float64),  # 1-based, as stored
        "target_prob": 100.0 * ls.next_prob[r, p],
    }[stat]
    np.testing.assert_allclose(np.asarray(data["value"], dtype=np.float64), expected, rtol=1e-5, atol=1e-6)
    if stat == "target_prob":  # the last position has no next token
        assert np.isnan(np.asarray(data["value"])[p == record.seq_len - 1]).all()
    renderer = view.model("lens_cell_renderer")
    fill = renderer.glyph.fill_color
    assert fill.field == "value"
    mapper = view.model("lens_color_mapper")
    assert fill.transform is mapper
    assert isinstance(mapper, LogColorMapper if stat == "rank" else LinearColorMapper)
    bar = view.model("lens_color_bar")
    assert bar.color_mapper is mapper
    assert bar.title == {
        "prob": "probability of top token (%)",
        "entropy": "entropy (bits)",
        "kl": "KL(final ‖ layer) (bits)",
        "rank": "rank of final top token (log scale)",
        "target_prob": "probability of the actual next token (%)",
    }[stat]
    if stat in ("prob", "target_prob"):
        assert (mapper.low, mapper.high) == (0.0, 100.0)


def test_match_outline_marks_cells_whose_top_is_the_next_token(record: coilvis.Record) -> None:
    view = lens(record)
    data = cells_of(view)
    idx = view.model("lens_match_filter").indices
    r, p = np.asarray(data["row"]), np.asarray(data["pos"])
    nxt = np.append(record.token_ids[1:], -1)[p]
    expected = np.flatnonzero((record.lens.topk_ids[r, p, 0] == nxt) & (nxt >= 0)).tolist()
    assert idx == expected


def test_tooltips_are_escaped_templates(record: coilvis.Record) -> None:
    for view in (lens(record), lens(record, compare=lens_record(TOKENS, seed=9))):
        hovers = list(view.doc.select({"type": HoverTool}))
        assert len(hovers) == 1
        tips = hovers[0].tooltips
        assert isinstance(tips, str)
        assert "{safe}" not in tips
        for field in ("@layer_ix", "@pos", "@token_ix", "@next_ix", "@top_ix", "@tk0", "@entropy_bits", "@kl_bits"):
            assert field in tips
        # no token text inside the template itself
        for text in (HOSTILE_IMG, "Paris", "w1"):
            assert text not in tips


def test_no_token_text_in_javascript(record: coilvis.Record) -> None:
    from bokeh.models import CustomJS, CustomJSHover, CustomJSTransform

    view = lens(record)
    code = " ".join(m.code for m in view.doc.select({"type": CustomJS}))
    code += " ".join(m.code for m in view.doc.select({"type": CustomJSHover}))
    code += " ".join(m.v_func for m in view.doc.select({"type": CustomJSTransform}))
    assert code  # the visibility and tap scripts exist
    for text in (HOSTILE_IMG, HOSTILE_SCRIPT, "Paris", "w1"):
        assert text not in code


def test_figure_is_sized_from_the_cell_size() -> None:
    rec = lens_record([f"w{i % 30}" for i in range(200)], n_layers=29, k=3, seed=4)
    view = lens(rec, cell_px=(60, 20), max_width_px=1230, max_height_px=400)
    fig = view.model("lens_figure")
    assert (fig.frame_width, fig.frame_height) == (1200, 400)  # 20 x 20 cells shown
    x_range, y_range = fig.x_range, fig.y_range
    assert x_range.end - x_range.start == 20 and x_range.bounds == (-0.5, 199.5)
    assert y_range.end - y_range.start == 20 and y_range.bounds == (-0.5, 29.5)
    assert y_range.end == 29.5  # the final layers are in view
    tools = {type(t).__name__ for t in fig.toolbar.tools}
    assert {"PanTool", "WheelZoomTool", "HoverTool", "TapTool"} <= tools
    assert view.model("lens_text").visible and not view.model("lens_text_short").visible
    assert len(cells_of(view)["pos"]) == 30 * 200
    # a small lens fits: every cell in view
    small = lens(lens_record(TOKENS, seed=5), cell_px=40)
    f = small.model("lens_figure")
    assert f.frame_width == 40 * len(TOKENS)
    assert f.x_range.end - f.x_range.start == len(TOKENS)


def test_small_cells_hide_long_labels(record: coilvis.Record) -> None:
    view = lens(record, cell_px=(24, 20), max_label_len=8)
    assert not view.model("lens_text").visible and view.model("lens_text_short").visible
    view = lens(record, cell_px=(8, 8))
    assert not view.model("lens_text").visible and not view.model("lens_text_short").visible


def test_saves_as_html(record: coilvis.Record, tmp_path) -> None:
    path = coilvis.save(lens(record), tmp_path / "lens.html")
    html = path.read_text(encoding="utf-8")
    assert "lens_cells" in html
    assert "cdn.bokeh.org" not in html
    assert '<img src=x onerror="window.__pwned=1">' not in html


# ------------------------------------------------------------------ compare mode


@pytest.mark.parametrize("stat", COMPARE_STATS)
def test_compare_values(stat: str) -> None:
    a = lens_record(TOKENS, seed=10, k=4)
    b = lens_record(TOKENS, seed=11, k=6)
    view = lens(a, compare=b, stat=stat)
    data = cells_of(view)
    r, p = np.asarray(data["row"]), np.asarray(data["pos"])
    la, lb = a.lens, b.lens
    want = topk_divergence(la.topk_ids[r, p], la.topk_probs[r, p], lb.topk_ids[r, p], lb.topk_probs[r, p], kind=stat, bits=True)
    np.testing.assert_allclose(np.asarray(data["value"]), want, rtol=1e-6)
    assert "lower bound" in view.model("lens_color_bar").title
    assert {len(v) for v in data.values()} == {la.n_rows * a.seq_len}
    assert texts_of(view, "compare_token_ix") == [display(b.tokens[q]) for q in p.tolist()]
    for j in range(4):  # the hover lists min(hover_k, k) = 4 tokens of each run
        assert texts_of(view, f"ctk{j}") == [display(b.vocab[int(i)]) for i in lb.topk_ids[r, p, j]]
    if stat in ("js", "tv"):
        mapper = view.model("lens_color_mapper")
        assert (mapper.low, mapper.high) == (0.0, 1.0)
        assert np.all(np.asarray(data["value"]) <= 1.0)


def test_compare_records_of_different_k() -> None:
    a = lens_record(TOKENS, seed=15, k=6)
    b = lens_record(TOKENS, seed=16, k=2)
    data = cells_of(lens(a, compare=b, hover_k=5))
    assert {"tk4", "ctk0", "ctk1"} <= set(data) and "tk5" not in data and "ctk2" not in data


def test_compare_is_exact_when_topk_covers_the_vocabulary() -> None:
    n_vocab = len(VOCAB)
    a, logits_a = lens_record_and_logits(TOKENS, seed=12, k=n_vocab)
    b, logits_b = lens_record_and_logits(TOKENS, seed=13, k=n_vocab)
    data = cells_of(lens(a, compare=b, stat="js"))
    pa = np.exp(logits_a) / np.exp(logits_a).sum(-1, keepdims=True)
    pb = np.exp(logits_b) / np.exp(logits_b).sum(-1, keepdims=True)
    for c in range(len(data["pos"])):
        r, p = int(data["row"][c]), int(data["pos"][c])
        m = (pa[r, p] + pb[r, p]) / 2
        want = 0.5 * np.sum(pa[r, p] * np.log2(pa[r, p] / m)) + 0.5 * np.sum(pb[r, p] * np.log2(pb[r, p] / m))
        assert data["value"][c] == pytest.approx(want, abs=1e-5)


def test_compare_with_itself_is_zero(record: coilvis.Record) -> None:
    for stat in COMPARE_STATS:
        values = np.asarray(cells_of(lens(record, compare=record, stat=stat))["value"])
        np.testing.assert_allclose(values, 0.0, atol=1e-9)


def test_compare_default_stat_is_js(record: coilvis.Record) -> None:
    view = lens(record, compare=lens_record(TOKENS, seed=14))
    assert view.model("lens_color_bar").title.startswith("Jensen-Shannon")


def test_compare_errors(record: coilvis.Record) -> None:
    with pytest.raises(CoilvisValueError, match="compare: has 3 positions"):
        lens(record, compare=lens_record(TOKENS[:3]))
    shorter_vocab = lens_record(["a", "b"] * 4, vocab=["a", "b", "c"], k=2)
    with pytest.raises(CoilvisValueError, match="compare: d_vocab"):
        lens(record, compare=shorter_vocab)
    with pytest.raises(CoilvisValueError, match="compare: its lens rows"):
        lens(record, compare=lens_record(TOKENS, n_layers=2))
    with pytest.raises(CoilvisValueError, match="stat: expected one of \\('kl', 'js', 'tv'\\)"):
        lens(record, compare=record, stat="prob")
    with pytest.raises(CoilvisValueError, match="compare: has no lens statistics"):
        lens(record, compare=dataclasses.replace(record, lens=None))
    with pytest.raises(CoilvisTypeError, match="compare: expected a coilvis Record"):
        lens(record, compare="other")


# ------------------------------------------------------------------ errors


def test_record_without_lens(record: coilvis.Record) -> None:
    with pytest.raises(CoilvisValueError, match=r"record: has no lens statistics; run coilvis.run\(prompt, lens=True\)"):
        lens(dataclasses.replace(record, lens=None))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stat": "surprisal"}, CoilvisValueError, "stat: expected one of"),
        ({"stat": "js"}, CoilvisValueError, "stat: expected one of"),
        ({"stride": 0}, CoilvisValueError, "stride"),
        ({"stride": 2.0}, CoilvisTypeError, "stride"),
        ({"stride": 2, "layers": [1]}, CoilvisValueError, "layers: give either"),
        ({"layers": ["nope"]}, CoilvisValueError, "layers: no layer named 'nope'"),
        ({"layers": [99]}, CoilvisValueError, "layers: row 99"),
        ({"layers": []}, CoilvisValueError, "layers"),
        ({"layers": "12"}, CoilvisTypeError, "layers"),
        ({"layers": [1.5]}, CoilvisTypeError, "layers"),
        ({"start": 8}, CoilvisValueError, "start"),
        ({"start": 3, "end": 3}, CoilvisValueError, "end"),
        ({"end": 9}, CoilvisValueError, "end"),
        ({"start": "0"}, CoilvisTypeError, "start"),
        ({"cell_px": (10,)}, CoilvisTypeError, "cell_px"),
        ({"cell_px": 1}, CoilvisValueError, "cell_px"),
        ({"max_label_len": 0}, CoilvisValueError, "max_label_len"),
        ({"hover_k": 0}, CoilvisValueError, "hover_k"),
        ({"title": 3}, CoilvisTypeError, "title"),
        ({"palette": "Rainbow"}, CoilvisValueError, "palette"),
    ],
)
def test_bad_options(record: coilvis.Record, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        lens(record, **kwargs)


def test_not_a_record() -> None:
    with pytest.raises(CoilvisTypeError, match="record: expected a coilvis Record"):
        lens({"tokens": []})


def test_survives_a_save_load_round_trip(record: coilvis.Record, tmp_path) -> None:
    loaded = coilvis.Record.load(record.save(tmp_path / "r.coil"))
    va, vb = lens(record), lens(loaded)
    for column in ("top_ix", "token_ix", "next_ix", "tk4"):
        assert texts_of(va, column) == texts_of(vb, column)
    np.testing.assert_array_equal(cells_of(va)["value"], cells_of(vb)["value"])


def test_lens_figure_parts(record: coilvis.Record) -> None:
    parts = lens_figure(record, stride=2, start=1)
    assert isinstance(parts.cells, ColumnDataSource) and parts.cells.name == "lens_cells"
    assert parts.rows.tolist() == [0, 2, 4]
    assert parts.positions.tolist() == list(range(1, len(TOKENS)))
    assert parts.highlight.data == {"pos": []}


def test_lens_view_imports_no_model_code() -> None:
    import ast
    from pathlib import Path

    import coilvis.views.lens as module

    files = sorted(Path(module.__file__).parent.glob("*.py"))  # the package: __init__, grid, cells, figure
    assert len(files) >= 4
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= {"__future__", "math", "collections", "dataclasses", "typing", "numpy", "bokeh", "coilvis"}, path.name
        assert "torch" not in imported and "transformers" not in imported


# ------------------------------------------------------------------ the real default model


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_default_model_lens(default_model, tmp_path) -> None:
    rec = coilvis.run("The Eiffel Tower is located in the city of", default_model, lens=True)
    view = lens(rec, stat="prob")
    data = cells_of(view)
    last_row, last_pos = rec.lens.n_rows - 1, rec.seq_len - 1
    c = next(i for i in range(len(data["pos"])) if data["row"][i] == last_row and data["pos"][i] == last_pos)
    assert texts_of(view, "top_ix")[c] == "␣Paris"
    assert data["value"][c] == pytest.approx(100 * rec.topk_probs[-1, 0], abs=0.01)
    assert texts_of(view, "layer_ix")[c] == rec.lens.layer_names[-1]
    assert len(data["pos"]) == rec.lens.n_rows * rec.seq_len


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_default_model_compare_two_prompts(default_model) -> None:
    a = coilvis.run("The capital of France is the city of", default_model, lens=True)
    b = coilvis.run("The capital of Italy is the city of", default_model, lens=True)
    if a.seq_len != b.seq_len:
        pytest.fail(f"the prompts tokenise to {a.seq_len} and {b.seq_len} tokens")
    first_diff = int(np.flatnonzero(a.token_ids != b.token_ids)[0])
    data = cells_of(lens(a, compare=b, stat="js"))
    pos, value = np.asarray(data["pos"]), np.asarray(data["value"])
    # identical prefixes give identical distributions; the changed word changes them
    assert np.all(value[pos < first_diff] < 1e-3)
    assert value[pos >= first_diff].max() > 0.1
    assert np.all((value >= 0) & (value <= 1))


# ------------------------------------------------------------------ headless Chromium



def _pixel(png: bytes, x: float, y: float) -> tuple[int, int, int]:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return image.getpixel((int(round(x)), int(round(y))))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_lens_page_renders_and_escapes(browser_session, record: coilvis.Record, tmp_path) -> None:
    page = browser_session.open(coilvis.save(lens(record, stat="entropy"), tmp_path / "lens.html"))
    assert page.errors == []
    assert page.external_requests == []
    assert page.evaluate("() => window.__pwned === undefined")
    assert len(page.column("lens_cells", "pos")) == record.lens.n_rows * record.seq_len
    # the hostile input token (position 3) shows literally in the hover, with its id
    page.hover_data("lens_figure", 3, 1)
    text = page.tooltip_text()
    assert f"input {HOSTILE_IMG}  (id {record.token_ids[3]})" in text
    assert f"next {display(record.tokens[4])}  (id {record.token_ids[4]})" in text
    assert "layer 0\n" in text + "\n" and "layer 0  (" not in text  # a layer name has no id
    assert "&lt;img" in page.tooltip_html()
    assert page.evaluate("() => window.__pwned === undefined")
    page.hover_data("lens_figure", 4, 2)
    assert HOSTILE_SCRIPT in page.tooltip_text()
    # a cell whose top-k (the formatted block of the hover) holds a hostile token
    hostile = VOCAB.index(HOSTILE_IMG)
    r, p = next(zip(*np.nonzero((record.lens.topk_ids == hostile).any(axis=-1))))
    page.hover_data("lens_figure", int(p), int(r))
    text = page.tooltip_text()
    assert f"layer {record.lens.layer_names[r]}" in text and f"position {p}" in text
    top = text.split("top-k", 1)[1]
    assert display(HOSTILE_IMG, max_len=24) in top  # shown literally, cut to 24
    assert f"% id {hostile}" in " ".join(top.split())  # with its id
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_cells_are_drawn_in_their_colours(browser_session, record: coilvis.Record, tmp_path) -> None:
    from coilvis.views._style import map_colors

    view = lens(record, stat="prob", cell_px=(56, 30))
    page = browser_session.open(coilvis.save(view, tmp_path / "lens.html"))
    png = page.screenshot()
    data = cells_of(view)
    colors = map_colors(np.asarray(data["value"]), _scale_of(view))
    checked = 0
    for c in range(0, len(data["pos"]), 3):
        # a point inside the cell, away from its centred label and its edges
        x, y = page.data_to_page("lens_figure", float(data["pos"][c]) - 0.38, float(data["y"][c]) - 0.32)
        want = tuple(int(colors[c][i : i + 2], 16) for i in (1, 3, 5))
        got = _pixel(png, x, y)
        assert max(abs(a - b) for a, b in zip(got, want)) <= 6, (c, got, want)
        checked += 1
    assert checked >= 10


def _scale_of(view: View):
    from coilvis.views._style import ColorScale

    mapper = view.model("lens_color_mapper")
    return ColorScale("value", "", "", tuple(mapper.palette), mapper.low, mapper.high, log=isinstance(mapper, LogColorMapper))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_zooming_out_hides_labels_and_tapping_outlines_a_column(browser_session, tmp_path) -> None:
    rec = lens_record([f"w{i % 30}" for i in range(200)], n_layers=29, k=3, seed=6)
    page = browser_session.open(coilvis.save(lens(rec), tmp_path / "big.html"))
    assert page.errors == []
    assert page.model_attr("lens_text", "visible") is True
    shown = page.evaluate("() => { const r = Bokeh.documents[0].get_model_by_name('lens_x_range'); return r.end - r.start }")
    assert 10 <= shown < 200  # part of the lens in view, at full cell size
    page.evaluate("() => Bokeh.documents[0].get_model_by_name('lens_x_range').setv({start: -0.5, end: 199.5})")
    page.wait_idle(0.2)
    assert page.model_attr("lens_text", "visible") is False
    assert page.model_attr("lens_text_short", "visible") is False
    page.evaluate("() => Bokeh.documents[0].get_model_by_name('lens_x_range').setv({start: 9.5, end: 59.5})")
    page.wait_idle(0.2)
    assert page.model_attr("lens_text", "visible") is False
    assert page.model_attr("lens_text_short", "visible") is True
    page.evaluate("() => Bokeh.documents[0].get_model_by_name('lens_x_range').setv({start: 9.5, end: 19.5})")
    page.wait_idle(0.2)
    assert page.model_attr("lens_text", "visible") is True
    # tap a cell: its column is outlined
    page.click_data("lens_figure", 12, 25)
    assert page.column("lens_highlight", "pos") == [12]
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_compare_page_renders(browser_session, tmp_path) -> None:
    a = lens_record(TOKENS, seed=20)
    b = lens_record(TOKENS, seed=21)
    page = browser_session.open(coilvis.save(lens(a, compare=b, stat="tv"), tmp_path / "cmp.html"))
    assert page.errors == [] and page.external_requests == []
    page.hover_data("lens_figure", 3, 0)
    text = page.tooltip_text()
    assert HOSTILE_IMG in text and "top-k (compare)" in text
    assert page.evaluate("() => window.__pwned === undefined")


def test_a_long_lens_opens_on_its_last_position() -> None:
    rec, _ = lens_record_and_logits([f"w{i % 30}" for i in range(120)], n_layers=3, k=3, seed=8)
    fig = lens(rec, cell_px=(56, 20), max_width_px=1400).model("lens_figure")
    x_range = fig.x_range
    assert (x_range.start, x_range.end) == (119.5 - 25, 119.5)  # 25 columns of 56 px, ending at the last
    assert x_range.bounds == (-0.5, 119.5)  # panning reaches back to the first position
    assert fig.frame_width == 25 * 56
    # a short one fits whole
    short, _ = lens_record_and_logits(["w1", "w2", "w3", "w4"], n_layers=3, k=3, seed=8)
    x_range = lens(short).model("lens_x_range")
    assert (x_range.start, x_range.end) == (-0.5, 3.5) and x_range.bounds == (-0.5, 3.5)


def test_an_explicit_window_is_shown_whole() -> None:
    rec, _ = lens_record_and_logits([f"w{i % 30}" for i in range(120)], n_layers=3, k=3, seed=9)
    view = lens(rec, start=10, end=20)
    x_range = view.model("lens_x_range")
    assert (x_range.start, x_range.end) == (9.5, 19.5) and x_range.bounds == (9.5, 19.5)
    # wider than max_width_px at the cell size: the cells narrow, nothing is cropped
    view = lens(rec, start=0, end=100, cell_px=(56, 20), max_width_px=1000)
    fig = view.model("lens_figure")
    assert (fig.x_range.start, fig.x_range.end) == (-0.5, 99.5) and fig.frame_width == 1000
    assert not view.model("lens_text").visible  # 10 px cells: too narrow for labels
    assert not view.model("lens_text_short").visible
    view = lens(rec, end=-1, cell_px=(56, 20), max_width_px=119 * 30)  # 30 px cells: short labels
    assert (view.model("lens_x_range").start, view.model("lens_x_range").end) == (-0.5, 118.5)
    assert view.model("lens_text_short").visible and not view.model("lens_text").visible
    view = lens(rec, start=-5)  # fits at its cell size
    fig = view.model("lens_figure")
    assert (fig.x_range.start, fig.x_range.end) == (114.5, 119.5) and fig.frame_width == 5 * 56


# ------------------------------------------------------------------ the still form (PNG)


def _still_ranges(view: View) -> tuple[tuple[float, float], int, str]:
    """The x range, the frame width and the title of what a PNG of ``view`` shows."""
    fig = view.model("lens_figure")
    with view.still():
        title = fig.title.text
        return (fig.x_range.start, fig.x_range.end), fig.frame_width, title


def test_a_png_shows_the_whole_prompt_widened() -> None:
    from coilvis.views.lens.figure import STILL_MAX_PX

    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=11)
    view = lens(rec, cell_px=(56, 20), max_width_px=1400)
    fig = view.model("lens_figure")
    opened = (fig.x_range.start, fig.x_range.end, fig.frame_width, fig.title.text, view.model("lens_text").visible)
    assert opened[:3] == (59.5 - 25, 59.5, 25 * 56)  # the page pans
    assert _still_ranges(view) == ((-0.5, 59.5), 60 * 56, "logit lens")  # the image shows every position
    assert 60 * 56 <= STILL_MAX_PX
    # the view is left as it was
    assert (fig.x_range.start, fig.x_range.end, fig.frame_width, fig.title.text, view.model("lens_text").visible) == opened
    assert view.doc.callbacks.js_event_callbacks.get("document_ready") is None


def test_a_png_of_a_long_prompt_narrows_its_cells_then_says_what_it_shows() -> None:
    from coilvis.views.lens.figure import STILL_MAX_PX, STILL_MIN_CELL_PX

    rec = lens_record([f"w{i % 30}" for i in range(120)], n_layers=3, k=3, seed=12)
    view = lens(rec)
    assert _still_ranges(view) == ((-0.5, 119.5), STILL_MAX_PX, "logit lens")  # 33 px cells: short labels
    with view.still():
        assert view.model("lens_text_short").visible and not view.model("lens_text").visible
    n = 512
    rec = lens_record([f"w{i % 30}" for i in range(n)], n_layers=2, k=3, seed=13)
    view = lens(rec)
    cols = STILL_MAX_PX // STILL_MIN_CELL_PX
    (start, end), width, title = _still_ranges(view)
    assert (start, end) == (n - 0.5 - cols, n - 0.5) and width == cols * STILL_MIN_CELL_PX
    assert title == f"logit lens \u00b7 positions {n - cols}\u2013{n - 1} of {n}"  # never a silent crop
    assert view.model("lens_figure").title.text == "logit lens"
    # a window the caller chose is shown whole, however narrow its cells
    (start, end), width, title = _still_ranges(lens(rec, start=0, end=500))
    assert (start, end) == (-0.5, 499.5) and width == STILL_MAX_PX and title == "logit lens"
    (start, end), width, _ = _still_ranges(lens(rec, start=-10))
    assert (start, end) == (501.5, 511.5) and width == 10 * 56


def test_a_png_shows_every_row() -> None:
    from coilvis.views.lens.figure import STILL_MAX_PX

    rec = lens_record(["w1", "w2", "w3"], n_layers=250, k=3, seed=14)
    view = lens(rec, cell_px=(56, 20), max_height_px=900)
    fig = view.model("lens_figure")
    assert fig.y_range.end - fig.y_range.start == 45  # the page pans through its rows
    with view.still():
        assert (fig.y_range.start, fig.y_range.end) == (-0.5, 250.5)
        assert fig.frame_height == STILL_MAX_PX  # 251 rows of 15.9 px
        assert view.model("lens_text").visible  # 56 x 15.9 px cells still hold their labels


def test_a_page_png_shows_its_whole_lens() -> None:
    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=11)
    view = coilvis.page(rec)
    fig = view.model("lens_figure")
    assert fig.x_range.start > -0.5
    with view.still():
        assert (fig.x_range.start, fig.x_range.end) == (-0.5, 59.5)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_a_lens_png_shows_its_first_and_last_positions(browser_session, tmp_path) -> None:
    from PIL import Image

    from coilvis.views._style import map_colors

    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=15)
    view = lens(rec, stat="entropy")
    png = view.save(tmp_path / "lens.png")
    image = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)
    with view.still():  # the same form in the browser, to find where cells are drawn
        html = coilvis.save(view, tmp_path / "still.html")
    page = browser_session.open(html, viewport=(3800, 1000))
    left, top, width, height = page.evaluate(
        "() => { const r = Bokeh.index.roots[0].el.getBoundingClientRect(); return [r.left, r.top, Math.ceil(r.width), Math.ceil(r.height)] }"
    )
    assert image.shape[:2] == (height, width) and width > 60 * 56
    data = cells_of(view)
    scale = lens_figure(rec, stat="entropy").scale  # the view's, drawn again
    for pos in (0, 59):  # the first and the last position, top row
        c = next(i for i in range(len(data["pos"])) if data["pos"][i] == pos and data["row"][i] == 3)
        sx, sy = page.data_to_page("lens_figure", pos + 0.42, 3.3)  # off the cell's label
        expected = map_colors([data["value"][c]], scale)[0]
        rgb = np.array([int(expected[i : i + 2], 16) for i in (1, 3, 5)])
        pixel = image[int(round(sy - top)), int(round(sx - left))]
        assert np.abs(pixel - rgb).max() <= 6, (pos, pixel, expected)
    assert view.model("lens_x_range").start == 59.5 - 25  # the view itself still pans
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_the_hover_shows_the_exact_token_under_plain_whitespace(browser_session, record: coilvis.Record, tmp_path) -> None:
    page = browser_session.open(coilvis.save(lens(record, whitespace="plain"), tmp_path / "plain.html"))
    page.hover_data("lens_figure", 5, 1)  # input token " Paris"
    assert f"input ␣Paris  (id {record.token_ids[5]})" in page.tooltip_text()
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_the_rendered_lens_shows_its_last_position(browser_session, tmp_path) -> None:
    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=10)
    page = browser_session.open(coilvis.save(lens(rec, max_width_px=560), tmp_path / "last.html"))
    x_range = "() => { const r = Bokeh.documents[0].get_model_by_name('lens_x_range'); return [r.start, r.end] }"
    assert page.evaluate(x_range) == [49.5, 59.5]
    page.evaluate("() => Bokeh.documents[0].get_model_by_name('lens_x_range').setv({start: -0.5, end: 9.5})")
    page.wait_idle(0.2)
    assert page.evaluate(x_range) == [-0.5, 9.5]  # panning back to the first position
    assert page.errors == []
