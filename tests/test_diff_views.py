"""Views of a Comparison (coilvis.views.diff): the diff coil, the diff lens, the movers table and the diff page.

The Bokeh model graph first (the sources hold the comparison's own values, the hover
names every field, differing positions and lower bounds are marked, errors name their
argument), then headless Chromium: the saved page renders offline, the hover shows both
runs' tokens, taps link the coil, the lens, the prompts and the movers table, and
hostile token text stays text.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import json

import numpy as np
import pytest
from bokeh.models import (
    CustomJS,
    CustomJSHover,
    CustomJSTransform,
    DataTable,
    HoverTool,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import coilvis
from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import DIFF_COIL_STATS, DIFF_LENS_STATS, LN2, STATS
from coilvis.runner.compare_records import compare_records
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.diff import (
    diff_coil,
    diff_lens,
    diff_lens_figure,
    diff_page,
    movers_table,
)
from coilvis.views.diff.data import EXACT_TEXT, LOWER_BOUND_TEXT
from coilvis.views.diff.movers import FALL, RISE, header_text, movers_rows
from coilvis.views.output import View

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from lens_records import HOSTILE_IMG, HOSTILE_SCRIPT, lens_record
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.lens_records import HOSTILE_IMG, HOSTILE_SCRIPT, lens_record

SCRIPT_TAG = "<script>window.__pwned=2</script>"
BIDI = "a\u202eb"
#: Eight tokens: records keep every one (k = d_vocab), so their comparison is exact.
SMALL_VOCAB = ("w0", " Mary", " John", " Anna", SCRIPT_TAG, BIDI, HOSTILE_IMG, "\n")
TOKENS_A = ["w0", " Mary", SCRIPT_TAG, " John", BIDI, HOSTILE_IMG, "\n", " John", "w0"]
TOKENS_B = ["w0", " Anna", SCRIPT_TAG, " John", HOSTILE_IMG, HOSTILE_IMG, "\n", " John", "w0"]
DIFFER = [1, 4]


@pytest.fixture(scope="module")
def exact() -> Comparison:
    """Two runs of equal length, every token kept: exact values, a metric, a lens."""
    a = lens_record(TOKENS_A, vocab=SMALL_VOCAB, n_layers=3, k=8, seed=0)
    b = lens_record(TOKENS_B, vocab=SMALL_VOCAB, n_layers=3, k=8, seed=1)
    return compare_records(a, b, metric=(" Mary", " John"), label_a="clean", label_b="corrupted")


@pytest.fixture(scope="module")
def bound() -> Comparison:
    """Runs of different lengths aligned at their ends (offsets 2 and 0), top-k kept: lower bounds."""
    a = lens_record(["w1", "w2", "w3", " Paris", HOSTILE_SCRIPT, "w5", "w6", "w7", "w8", "w9"], n_layers=2, k=4, seed=3)
    b = lens_record(["w3", "w4", HOSTILE_SCRIPT, "w5", "w6", "w7", "w8", "w9"], n_layers=2, k=4, seed=4)
    return compare_records(a, b, align="end")


def _rows_of(table: dict, ids: np.ndarray) -> np.ndarray:
    """Token ids of rows of a token table's columns."""
    return np.asarray(table["token_id"])[np.asarray(ids)]


# ------------------------------------------------------------------ the diff coil


def test_diff_coil_sources_hold_the_comparisons_values(exact: Comparison) -> None:
    view = diff_coil(exact, tooltip_k=4)
    assert isinstance(view, View) and view.kind == "diff_coil"
    d = view.segments.data
    assert view.model("diff_coil_source") is view.segments
    np.testing.assert_array_equal(d["pos"], np.arange(exact.n_pos))
    np.testing.assert_allclose(d["kl_ab_bits"], exact.kl_ab / LN2, rtol=1e-6)
    np.testing.assert_allclose(d["kl_ba_bits"], exact.kl_ba / LN2, rtol=1e-6)
    np.testing.assert_allclose(d["js_bits"], exact.js / LN2, rtol=1e-6)
    np.testing.assert_array_equal(d["tv"], exact.tv)
    np.testing.assert_array_equal(d["delta_next_logprob"], exact.delta_next_logprob)
    np.testing.assert_array_equal(d["metric_a"], exact.metric_a)
    np.testing.assert_array_equal(d["metric_b"], exact.metric_b)
    np.testing.assert_allclose(d["metric_change"], exact.metric_b - exact.metric_a, rtol=1e-6)
    assert d["exact_text"] == [EXACT_TEXT] * exact.n_pos
    assert d["label_a"] == [display(t) for t in TOKENS_A] and d["label_b"] == [display(t) for t in TOKENS_B]
    assert d["token_a"] == TOKENS_A and d["token_b"] == TOKENS_B
    assert np.flatnonzero(d["differs"]).tolist() == DIFFER
    vocab = view.model("diff_coil_vocab_source").data
    for run, record in (("a", exact.a), ("b", exact.b)):
        np.testing.assert_array_equal(_rows_of(vocab, d[f"topk_vocab_{run}"]), record.topk_ids[:, :4])
        np.testing.assert_allclose(d[f"topk_pct_{run}"], 100 * record.topk_probs[:, :4], rtol=1e-6)
        nxt = d[f"next_vocab_{run}"]
        assert nxt[-1] == -1
        np.testing.assert_array_equal(_rows_of(vocab, nxt[:-1]), record.token_ids[1:])
    assert vocab["label"] == [display(exact.token_text(int(i)), max_len=32) for i in vocab["token_id"]]


def test_offsets_map_compared_positions_to_each_record(bound: Comparison) -> None:
    assert (bound.offset_a, bound.offset_b) == (2, 0)
    d = diff_coil(bound).segments.data
    np.testing.assert_array_equal(d["pos_a"], np.arange(2, 10))
    np.testing.assert_array_equal(d["pos_b"], np.arange(8))
    assert d["token_a"] == [bound.a.tokens[i] for i in range(2, 10)]
    assert d["token_b"] == list(bound.b.tokens)
    assert np.flatnonzero(d["differs"]).tolist() == np.flatnonzero(bound.differs).tolist() == [1]


@pytest.mark.parametrize("color", DIFF_COIL_STATS)
def test_each_colour_comes_from_the_statistics_table(exact: Comparison, color: str) -> None:
    view = diff_coil(exact, color=color)
    spec = STATS[("diff_coil", color)]
    values = np.asarray(view.segments.data[spec.column], dtype=np.float64)
    assert view.scale.column == spec.column and view.scale.title == spec.title  # exact: no "lower bound"
    mapper = view.model("diff_coil_color_mapper")
    assert (mapper.low, mapper.high) == (view.scale.low, view.scale.high)
    assert view.model("diff_coil_segments").glyph.fill_color["field"] == spec.column
    if spec.span == "symmetric":  # signed: centred on 0, as far as the largest change
        top = float(np.nanmax(np.abs(values)))
        assert view.scale.low == -view.scale.high == pytest.approx(-max(top, 0.1))
        assert list(mapper.palette) == list(reversed(_style.PALETTES["RdBu"]))  # red = fell
        assert mapper.palette[0] == "#67001f"
    else:
        assert view.scale.low == 0.0 and view.scale.high >= float(np.nanmax(values))


def test_metric_colour_without_a_metric_is_refused(bound: Comparison) -> None:
    with pytest.raises(CoilvisValueError, match=r"^color: 'metric' colours by a metric's change"):
        diff_coil(bound, color="metric")
    with pytest.raises(CoilvisValueError, match=r"^stat: 'metric'"):
        diff_lens(bound, stat="metric")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"color": "entropy"}, CoilvisValueError, r"^color: expected one of \['kl_ab'"),
        ({"color": None}, CoilvisValueError, r"^color:"),
        ({"layout": "square"}, CoilvisValueError, r"^layout:"),
        ({"width": 20}, CoilvisValueError, r"^width:"),
        ({"tooltip_k": 0}, CoilvisValueError, r"^tooltip_k:"),
        ({"labels": "yes"}, CoilvisTypeError, r"^labels:"),
        ({"whitespace": "dots"}, CoilvisValueError, r"^whitespace:"),
        ({"title": 3}, CoilvisTypeError, r"^title:"),
        ({"palette": "Nope"}, CoilvisValueError, r"^palette:"),
    ],
)
def test_bad_coil_options_name_the_argument(exact: Comparison, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        diff_coil(exact, **kwargs)


@pytest.mark.parametrize("view", [diff_coil, diff_lens, diff_page, movers_table])
def test_not_a_comparison(exact: Comparison, view) -> None:
    with pytest.raises(CoilvisTypeError, match=r"^comparison: expected a coilvis Comparison"):
        view(exact.a)


def test_differing_positions_are_outlined_and_labelled(exact: Comparison) -> None:
    view = diff_coil(exact)
    assert view.model("diff_coil_differs_filter").indices == DIFFER
    outline = view.model("diff_coil_differs")
    assert outline.data_source is view.segments and outline.view.filter is view.model("diff_coil_differs_filter")
    assert outline.glyph.fill_color is None and outline.glyph.line_width >= 2
    labels = view.model("diff_coil_label_source").data
    shown = dict(zip(labels["pos"].tolist(), labels["text"], strict=True))
    assert shown, "no label fits"
    for pos, text in shown.items():
        assert ("\u2192" in text) == (pos in DIFFER), text
    assert shown[1] == "\u00b7Mary\u2192\u00b7Anna"  # subtle whitespace by default
    markers = diff_coil(exact, whitespace="markers").model("diff_coil_label_source").data
    assert markers["text"][markers["pos"].tolist().index(1)] == "\u2423Mary\u2192\u2423Anna"


def test_hover_shows_both_runs_divergences_and_metric(exact: Comparison, bound: Comparison) -> None:
    view = diff_coil(exact, tooltip_k=3)
    hover = view.model("diff_coil_hover")
    tips = hover.tooltips
    for field in ("@pos{position}", "@pos{tokens}", "@kl_ab_bits{0.000}", "@kl_ba_bits{0.000}", "@js_bits{0.000}",
                  "@tv{0.000}", "@exact_text", "@pos{delta}", "@pos{metric}", "@pos{topka}", "@pos{topkb}"):
        assert field in tips, field
    assert "top 3 next tokens, run a" in tips and "top 3 next tokens, run b" in tips
    assert hover.formatters["@pos"] is view.model("diff_coil_text_format")
    runs = view.model("diff_coil_runs").data
    assert runs["name"] == ["a (clean)", "b (corrupted)"]
    assert runs["metric"][0] == "' Mary' \u2212 ' John'"
    assert "@pos{metric}" not in diff_coil(bound).model("diff_coil_hover").tooltips  # no metric: no row


def test_lower_bounds_are_labelled(exact: Comparison, bound: Comparison) -> None:
    assert not bound.exact.any() and exact.exact.all()
    view = diff_coil(bound)
    assert view.segments.data["exact_text"] == [LOWER_BOUND_TEXT] * bound.n_pos
    assert view.scale.title.endswith(", lower bound")
    assert view.model("diff_coil_color_bar").title.endswith("lower bound")
    notes = [t.text for t in view.figure.below]
    assert any("lower bounds" in n for n in notes)
    mixed = dataclasses.replace(bound, exact=np.arange(bound.n_pos) % 2 == 0)
    view = diff_coil(mixed)
    assert view.scale.title.endswith("lower bound at some positions")
    assert view.segments.data["exact_text"][:2] == [EXACT_TEXT, LOWER_BOUND_TEXT]
    assert "lower bound" not in diff_coil(exact).scale.title
    # a signed change is never a bound
    assert "lower bound" not in diff_coil(bound, color="delta_next_logprob").scale.title


# ------------------------------------------------------------------ the diff lens


def test_diff_lens_cells_hold_the_lens_values_and_both_top_tokens(bound: Comparison) -> None:
    parts = diff_lens_figure(bound, hover_k=3)
    lens = bound.lens
    assert lens is not None and not lens.exact
    d = parts.cells.data
    n_rows, n = lens.n_rows, bound.n_pos
    assert len(d["pos"]) == n_rows * n
    np.testing.assert_array_equal(d["pos"], np.tile(np.arange(n), n_rows))
    np.testing.assert_array_equal(d["row"], np.repeat(np.arange(n_rows), n))
    np.testing.assert_allclose(d["js_bits"], (lens.js / LN2).reshape(-1), rtol=1e-6)
    np.testing.assert_allclose(d["kl_ab_bits"], (lens.kl_ab / LN2).reshape(-1), rtol=1e-6)
    np.testing.assert_array_equal(d["tv"], lens.tv.reshape(-1))
    np.testing.assert_array_equal(d["value"], d["js_bits"])
    strings = parts.strings.data
    for run, record, positions in (("a", bound.a, bound.positions_a), ("b", bound.b, bound.positions_b)):
        top = record.lens.topk_ids[:, positions, 0].reshape(-1)
        np.testing.assert_array_equal(np.asarray(strings["token_id"])[d[f"{run}_top_ix"]], top)
        assert [strings["full"][i] for i in d[f"{run}_top_ix"][:3]] == [display(record.token_text(int(t))) for t in top[:3]]
        np.testing.assert_allclose(d[f"{run}tp2"], record.lens.topk_probs[:, positions, 2].reshape(-1))
        inputs = np.asarray(strings["full"], dtype=object)[d[f"token_{run}_ix"][:n]].tolist()
        assert inputs == [display(record.tokens[i]) for i in positions]
    tops_differ = bound.a.lens.topk_ids[:, bound.positions_a, 0] != bound.b.lens.topk_ids[:, bound.positions_b, 0]
    assert parts.figure.select_one({"name": "diff_lens_match_filter"}).indices == np.flatnonzero(tops_differ).tolist()


def test_diff_lens_metric_is_centred_on_zero(exact: Comparison) -> None:
    parts = diff_lens_figure(exact, stat="metric")
    lens = exact.lens
    change = (lens.metric_b - lens.metric_a).reshape(-1)
    np.testing.assert_allclose(parts.cells.data["value"], change, rtol=1e-6)
    assert parts.scale.high == pytest.approx(float(np.abs(change).max())) and parts.scale.low == -parts.scale.high
    tips = parts.figure.select_one({"name": "diff_lens_hover"}).tooltips
    assert "@metric_a{0.000}" in tips and "@metric_change{+0.000}" in tips


@pytest.mark.parametrize("stat", DIFF_LENS_STATS)
def test_diff_lens_stats_come_from_the_table(exact: Comparison, stat: str) -> None:
    parts = diff_lens_figure(exact, stat=stat)
    spec = STATS[("diff_lens", stat)]
    np.testing.assert_array_equal(parts.cells.data["value"], parts.cells.data[spec.column])
    assert parts.scale.title == spec.title


def test_diff_lens_labels_lower_bounds_and_opens_on_the_last_position(bound: Comparison, exact: Comparison) -> None:
    view = diff_lens(bound)
    tips = view.model("diff_lens_hover").tooltips
    assert LOWER_BOUND_TEXT in tips and EXACT_TEXT not in tips
    assert view.model("diff_lens_color_bar").title.endswith(", lower bound")
    assert EXACT_TEXT in diff_lens(exact).model("diff_lens_hover").tooltips
    narrow = diff_lens(exact, max_width_px=200, cell_px=(64, 30))
    x_range = narrow.model("diff_lens_x_range")
    assert x_range.end == exact.n_pos - 0.5 and x_range.end - x_range.start == 3  # 200 px: 3 columns of 64
    assert x_range.bounds == (-0.5, exact.n_pos - 0.5)
    axis = narrow.model("diff_lens_input_axis").major_label_overrides
    assert axis[1] == "\u00b7Mary\u2192\u00b7Anna" and axis[0] == "w0"
    for name in ("diff_lens_hover", "diff_lens_tap", "diff_lens_text_a", "diff_lens_text_b", "diff_lens_cells"):
        assert narrow.model(name) is not None


def test_diff_lens_without_a_lens_names_the_comparison(exact: Comparison) -> None:
    with pytest.raises(CoilvisValueError, match=r"^comparison: has no lens; compare with lens=True"):
        diff_lens(dataclasses.replace(exact, lens=None))
    no_record_lens = dataclasses.replace(exact, b=dataclasses.replace(exact.b, lens=None))
    with pytest.raises(CoilvisValueError, match=r"^comparison: run b's record holds no lens statistics"):
        diff_lens(no_record_lens)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stat": "kl"}, CoilvisValueError, r"^stat: expected one of \['kl_ab'"),
        ({"stat": "delta_next_logprob"}, CoilvisValueError, r"^stat:"),  # per position only
        ({"layers": ["nope"]}, CoilvisValueError, r"^layers:"),
        ({"hover_k": 0}, CoilvisValueError, r"^hover_k:"),
        ({"cell_px": "big"}, CoilvisTypeError, r"^cell_px:"),
        ({"max_width_px": 10}, CoilvisValueError, r"^max_width_px:"),
        ({"whitespace": 1}, CoilvisValueError, r"^whitespace:"),
    ],
)
def test_bad_lens_options_name_the_argument(exact: Comparison, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        diff_lens(exact, **kwargs)


# ------------------------------------------------------------------ the movers table


def test_movers_rows_are_the_comparisons_movers(bound: Comparison) -> None:
    rows = movers_rows(bound)
    per = 2 * bound.n_movers
    for pos in range(bound.n_pos):
        frame = bound.movers(pos)
        part = slice(pos * per, (pos + 1) * per)
        assert rows["pos"][part].tolist() == [pos] * per
        assert rows["direction"][part] == [RISE if d == "rise" else FALL for d in frame["direction"]]
        assert rows["token"][part] == [display(bound.token_text(int(i))) for i in frame["token_id"]]
        np.testing.assert_array_equal(rows["token_id"][part], frame["token_id"])
        np.testing.assert_array_equal(rows["prob_a"][part], frame["prob_a"].to_numpy(np.float32))
        np.testing.assert_array_equal(rows["prob_b"][part], frame["prob_b"].to_numpy(np.float32))
        np.testing.assert_array_equal(rows["change"][part], frame["change"].to_numpy(np.float32))


def test_movers_table_shows_one_position(exact: Comparison) -> None:
    view = movers_table(exact, pos=2)
    per = 2 * exact.n_movers
    assert view.model("diff_movers_filter").indices == list(range(2 * per, 3 * per))
    assert view.model("diff_movers_header").text == header_text(2, exact.n_movers)
    table = view.model("diff_movers_table")
    assert isinstance(table, DataTable) and table.source is view.model("diff_movers_source")
    fields = [c.field for c in table.columns]
    assert fields == ["direction", "token", "token_id", "prob_a", "prob_b", "change"]
    assert movers_table(exact).model("diff_movers_filter").indices[0] == (exact.n_pos - 1) * per
    with pytest.raises(CoilvisValueError, match=r"^pos:"):
        movers_table(exact, pos=exact.n_pos)
    with pytest.raises(CoilvisTypeError, match=r"^pos:"):
        movers_table(exact, pos="last")


@settings(max_examples=25)
@given(n=st.integers(1, 12), n_vocab=st.integers(3, 9), k=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_any_comparison_draws_its_own_values(n: int, n_vocab: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocab = [f"t{i}" for i in range(n_vocab)]
    runs = [
        coilvis.from_logits(rng.normal(size=(n, n_vocab)) * 2, tokens=rng.integers(0, n_vocab, n).tolist(), vocab=vocab, k=min(k, n_vocab))
        for _ in range(2)
    ]
    c = compare_records(*runs, movers=3)
    view = diff_page(c)
    d = view.model("diff_coil_source").data
    np.testing.assert_allclose(d["js_bits"], c.js / LN2, rtol=1e-6)
    assert np.flatnonzero(d["differs"]).tolist() == np.flatnonzero(c.differs).tolist()
    assert view.model("diff_coil_differs_filter").indices == np.flatnonzero(c.differs).tolist()
    assert d["exact_text"] == [EXACT_TEXT if e else LOWER_BOUND_TEXT for e in c.exact]
    rows = view.model("diff_movers_source").data
    assert len(rows["pos"]) == c.n_pos * 2 * c.n_movers
    np.testing.assert_array_equal(rows["token_id"], np.concatenate([c.rise_ids, c.fall_ids], axis=1).reshape(-1))
    assert view.model("diff_movers_filter").indices == list(range((c.n_pos - 1) * 2 * c.n_movers, c.n_pos * 2 * c.n_movers))


# ------------------------------------------------------------------ the page


def test_diff_page_holds_every_part(exact: Comparison) -> None:
    view = diff_page(exact)
    assert isinstance(view, View) and view.kind == "diff_page"
    assert view.doc.roots == [view.model("diff_root")]
    for name in ("diff_summary", "diff_prompt_a", "diff_prompt_b", "diff_prompt_a_source", "diff_prompt_b_source",
                 "diff_coil_figure", "diff_coil_segments", "diff_coil_source", "diff_lens_figure", "diff_lens_cells",
                 "diff_lens_highlight", "diff_movers_table", "diff_movers_source", "diff_movers_filter",
                 "diff_movers_header", "diff_select_coil", "diff_select_lens", "diff_select_prompt_a",
                 "diff_select_prompt_b"):
        assert view.model(name) is not None, name
    last = exact.n_pos - 1
    assert view.model("diff_lens_highlight").data == {"pos": [last]}
    assert view.model("diff_prompt_a_source").selected.indices == [last]
    summary = view.model("diff_summary")
    assert summary.render_as_text and "a (clean)" in summary.text and "2 with different tokens" in summary.text
    assert "exact divergences" in summary.text
    without = diff_page(dataclasses.replace(exact, lens=None))
    assert without.doc.select_one({"name": "diff_lens_figure"}) is None


def test_prompts_mark_the_tokens_that_differ(bound: Comparison) -> None:
    view = diff_page(bound)
    a = view.model("diff_prompt_a_source").data
    b = view.model("diff_prompt_b_source").data
    assert a["text"] == [display(t) for t in bound.a.tokens] and b["text"] == [display(t) for t in bound.b.tokens]
    assert a["cpos"].tolist() == [-1, -1, *range(8)] and b["cpos"].tolist() == list(range(8))
    assert np.flatnonzero(a["differs"]).tolist() == [3] and np.flatnonzero(b["differs"]).tolist() == [1]
    assert a["fill"][3] != a["fill"][5] and a["fill"][0] != a["fill"][5]  # differing; outside the compared positions
    assert view.model("diff_prompt_a_source").selected.indices == [9]
    assert view.model("diff_prompt_b_source").selected.indices == [7]


def test_selection_scripts_are_wired(exact: Comparison) -> None:
    view = diff_page(exact)
    wiring = {
        "diff_select_coil": (view.model("diff_coil_source"), "pos"),
        "diff_select_lens": (view.model("diff_lens_cells"), "pos"),
        "diff_select_prompt_a": (view.model("diff_prompt_a_source"), "cpos"),
        "diff_select_prompt_b": (view.model("diff_prompt_b_source"), "cpos"),
    }
    for name, (source, field) in wiring.items():
        script = view.model(name)
        assert script in source.selected.js_property_callbacks["change:indices"]
        assert script.args["source"] is source and script.args["field"] == field
        assert script.args["filter"] is view.model("diff_movers_filter")
        assert script.args["highlight"] is view.model("diff_lens_highlight")
        assert script.args["segments"] is view.model("diff_coil_source")
        assert (script.args["n_pos"], script.args["m"]) == (exact.n_pos, exact.n_movers)
    # the script writes the header the table starts with
    assert "rising and falling tokens at position" in view.model("diff_select_coil").code
    assert header_text(3, exact.n_movers) == f"Top {exact.n_movers} rising and falling tokens at position 3"


def test_page_options_reach_the_coil_and_the_lens(exact: Comparison) -> None:
    view = diff_page(exact, coil_options={"color": "metric"}, lens_options={"stat": "tv", "stride": 2})
    assert view.model("diff_coil_segments").glyph.fill_color["field"] == "metric_change"
    assert view.model("diff_lens_cells").data["value"].tolist() == view.model("diff_lens_cells").data["tv"].tolist()
    with pytest.raises(CoilvisValueError, match=r"^coil_options: unknown option 'stat'"):
        diff_page(exact, coil_options={"stat": "js"})
    with pytest.raises(CoilvisTypeError, match=r"^lens_options:"):
        diff_page(exact, lens_options=["stat"])
    with pytest.raises(CoilvisValueError, match=r"^whitespace:"):
        diff_page(exact, whitespace="none")


def _strings(node: object) -> list[str]:
    """Every string in a JSON document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def test_no_token_text_in_scripts_or_templates(exact: Comparison) -> None:
    view = diff_page(exact)
    code = " ".join(m.code for m in view.doc.select({"type": CustomJS}))
    code += " ".join(m.code for m in view.doc.select({"type": CustomJSHover}))
    code += " ".join(m.v_func or "" for m in view.doc.select({"type": CustomJSTransform}))
    tips = " ".join(str(h.tooltips) for h in view.doc.select({"type": HoverTool}))
    assert code and tips
    for text in (SCRIPT_TAG, HOSTILE_IMG, "a\u202eb", "Mary", "Anna", "clean", "corrupted"):
        assert text not in code and text not in tips, text
    html = view.to_html()
    assert SCRIPT_TAG not in html and HOSTILE_IMG not in html  # no token closes a script or opens a tag
    start = html.index('<script type="application/json"')
    data = html[html.index(">", start) + 1 : html.index("</script>", start)]
    strings = set(_strings(json.loads(html_lib.unescape(data))))  # Bokeh escapes the JSON for HTML
    assert {SCRIPT_TAG, HOSTILE_IMG, BIDI} <= strings  # the tokens are data, unchanged


# ------------------------------------------------------------------ headless Chromium


def _centre(view: View, pos: int) -> tuple[float, float]:
    data = view.model("diff_coil_source").data
    return float(data["x"][pos]), float(data["y"][pos])


def _table_texts(loaded) -> list[str]:
    cells = loaded.page.locator(".slick-cell")
    return [cells.nth(i).inner_text() for i in range(cells.count())]


def _selected(loaded, name: str) -> list[int]:
    return loaded.evaluate(f"() => Array.from(Bokeh.documents[0].get_model_by_name('{name}').selected.indices)")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_diff_page_renders_offline_and_taps_link_everything(browser_session, exact: Comparison, tmp_path) -> None:  # noqa: F811
    view = diff_page(exact)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "diff.html"), viewport=(1500, 1500))
    dialogs: list[str] = []
    loaded.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    assert loaded.errors == [] and loaded.external_requests == []
    per, last = 2 * exact.n_movers, exact.n_pos - 1
    assert loaded.model_attr("diff_movers_filter", "indices") == list(range(last * per, last * per + per))

    # hover the segment where the prompts differ: both runs' tokens, the divergences, the metric
    loaded.hover_data("diff_coil_figure", *_centre(view, 1))
    text = loaded.tooltip_text()
    assert "a (clean)" in text and "\u2423Mary  (id 1)" in text
    assert "b (corrupted)" in text and "\u2423Anna  (id 3)" in text and "\u2260 differs" in text
    assert f"{exact.js[1] / LN2:.3f} bits" in text and EXACT_TEXT in text
    assert f"a {exact.metric_a[1]:+.3f} \u2192 b {exact.metric_b[1]:+.3f}" in text
    assert f"of a's next token {exact.delta_next_logprob[1]:+.3f} nats" in text
    assert "top 8 next tokens, run a" in text and "top 8 next tokens, run b" in text
    loaded.hover_data("diff_coil_figure", *_centre(view, last))
    assert "of a's next token unknown (a has no next token here)" in loaded.tooltip_text()

    # tap a segment: the movers, the lens column, both prompts follow
    loaded.click_data("diff_coil_figure", *_centre(view, 4))
    assert loaded.model_attr("diff_movers_filter", "indices") == list(range(4 * per, 5 * per))
    assert loaded.model_attr("diff_movers_header", "text") == header_text(4, exact.n_movers)
    assert loaded.column("diff_lens_highlight", "pos") == [4]
    assert _selected(loaded, "diff_prompt_a_source") == [4] and _selected(loaded, "diff_prompt_b_source") == [4]
    texts = _table_texts(loaded)
    assert display(exact.token_text(int(exact.rise_ids[4, 0]))) in texts

    # tap a lens cell: the movers follow and the coil selects its segment
    loaded.click_data("diff_lens_figure", 2, 0)
    assert loaded.model_attr("diff_movers_filter", "indices") == list(range(2 * per, 3 * per))
    assert _selected(loaded, "diff_coil_source") == [2]
    assert loaded.column("diff_lens_highlight", "pos") == [2]

    # tap a token of prompt b
    b = view.model("diff_prompt_b_source").data
    loaded.click_data("diff_prompt_b", float(b["x"][6]), float(b["y"][6]))
    assert loaded.model_attr("diff_movers_filter", "indices") == list(range(6 * per, 7 * per))
    assert _selected(loaded, "diff_coil_source") == [6] and _selected(loaded, "diff_prompt_a_source") == [6]
    assert loaded.errors == [] and dialogs == []
    assert loaded.evaluate("() => window.__pwned === undefined")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_hostile_tokens_of_both_runs_stay_text(browser_session, exact: Comparison, tmp_path) -> None:  # noqa: F811
    view = diff_page(exact)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "hostile.html"), viewport=(1500, 1500))
    dialogs: list[str] = []
    loaded.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    assert loaded.errors == []
    for pos in (2, 4, 5):  # the script tag in both runs; the bidi override in a, the img tag in b
        loaded.hover_data("diff_coil_figure", *_centre(view, pos))
        text = loaded.tooltip_text()
        assert f"{display(TOKENS_A[pos])}  (id {SMALL_VOCAB.index(TOKENS_A[pos])})" in text
        assert f"{display(TOKENS_B[pos])}  (id {SMALL_VOCAB.index(TOKENS_B[pos])})" in text
        assert loaded.page.locator(".bk-tooltip-content img, .bk-tooltip-content script").count() == 0
    assert "a\\u202eb" in display(BIDI)
    # every token is a mover somewhere (eight tokens): the table shows them literally
    hostile_id = SMALL_VOCAB.index(SCRIPT_TAG)
    pos = int(next(p for p in range(exact.n_pos) if hostile_id in exact.rise_ids[p] or hostile_id in exact.fall_ids[p]))
    loaded.click_data("diff_coil_figure", *_centre(view, pos))
    assert SCRIPT_TAG in _table_texts(loaded)
    loaded.hover_data("diff_lens_figure", 2, 0)
    assert SCRIPT_TAG in loaded.tooltip_text()  # the input token of both runs at position 2
    assert loaded.evaluate("() => window.__pwned === undefined") and dialogs == []
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_lower_bounds_say_so_in_the_hover(browser_session, bound: Comparison, tmp_path) -> None:  # noqa: F811
    view = diff_page(bound)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "bound.html"), viewport=(1500, 1500))
    assert loaded.errors == [] and loaded.external_requests == []
    loaded.hover_data("diff_coil_figure", *_centre(view, 0))
    text = loaded.tooltip_text()
    assert LOWER_BOUND_TEXT in text and "0  (a: 2, b: 0)" in text
    loaded.hover_data("diff_lens_figure", 3, 1)
    assert LOWER_BOUND_TEXT in loaded.tooltip_text()
    # tapping compared position 0 selects position 2 of a and 0 of b
    loaded.click_data("diff_coil_figure", *_centre(view, 0))
    assert _selected(loaded, "diff_prompt_a_source") == [2] and _selected(loaded, "diff_prompt_b_source") == [0]
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_diff_views_export_png(exact: Comparison, tmp_path) -> None:
    from PIL import Image

    for name, view in (("coil", diff_coil(exact)), ("lens", diff_lens(exact)), ("page", diff_page(exact))):
        path = coilvis.save(view, tmp_path / f"{name}.png")
        with Image.open(path) as image:
            width, height = image.size
            colours = len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0))
        assert width > 300 and height > 150 and colours > 50, name


def test_a_still_image_shows_the_whole_lens(exact: Comparison) -> None:
    view = diff_lens(exact, max_width_px=200, max_height_px=50)  # pans: 3 columns, 2 rows in view
    x_range, y_range = view.model("diff_lens_x_range"), view.model("diff_lens_y_range")
    fig = view.model("diff_lens_figure")
    assert (x_range.start, x_range.end) == (exact.n_pos - 3.5, exact.n_pos - 0.5)
    with view.still():  # what a PNG shows: every position and row, labels as the cells allow
        assert (x_range.start, x_range.end) == (-0.5, exact.n_pos - 0.5)
        assert (y_range.start, y_range.end) == (-0.5, exact.lens.n_rows - 0.5)
        assert fig.frame_width == 64 * exact.n_pos
        assert view.model("diff_lens_text_a").visible and view.model("diff_lens_text_b").visible
    assert (x_range.start, x_range.end) == (exact.n_pos - 3.5, exact.n_pos - 0.5)  # put back
    page = diff_page(exact, lens_options={"max_width_px": 200})
    assert page.still_settings and page.still_settings[0][0] is page.model("diff_lens_x_range")


def test_a_still_image_of_a_long_comparison_says_which_positions_it_shows() -> None:
    tokens = [f"w{i % 30}" for i in range(700)]
    a, b = (lens_record(tokens, n_layers=1, k=2, seed=s) for s in (5, 6))
    view = diff_lens(compare_records(a, b), title="long")
    with view.still():  # 700 columns do not fit 4,000 px at 8 px: the last 500 are shown
        x_range = view.model("diff_lens_x_range")
        assert (x_range.start, x_range.end) == (199.5, 699.5)
        assert view.model("diff_lens_figure").frame_width == 4000
        assert view.model("diff_lens_figure").title.text == "long \u00b7 positions 200\u2013699 of 700"
        assert not view.model("diff_lens_text_a").visible
    assert view.model("diff_lens_figure").title.text == "long"


# ------------------------------------------------------------------ the public entry points


def test_coil_lens_and_page_draw_a_comparison(exact: Comparison) -> None:
    coil_view = coilvis.coil(exact)
    assert coil_view.kind == "diff_coil" and coil_view.scale.column == "js_bits"  # the diff coil's default, not "prob"
    assert coilvis.coil(exact, color="metric", layout="circle").scale.column == "metric_change"
    assert coilvis.coil(exact, color="metric", layout="circle").coiled.kind == "circle"
    lens_view = coilvis.lens(exact, stat="tv", stride=2)
    assert lens_view.kind == "diff_lens"
    assert lens_view.model("diff_lens_cells").data["value"].tolist() == lens_view.model("diff_lens_cells").data["tv"].tolist()
    page_view = coilvis.page(exact, coil_options={"color": "kl_ab"}, title="IOI")
    assert page_view.kind == "diff_page" and page_view.title == "IOI"
    assert page_view.model("diff_coil_segments").glyph.fill_color["field"] == "kl_ab_bits"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: coilvis.coil(c, attention="mean"), r"^attention: not an option of the coil of a Comparison \(diff_coil\)"),
        (lambda c: coilvis.coil(c, animate=True), r"^animate: not an option of the coil"),
        (lambda c: coilvis.lens(c, compare=c.b), r"^compare: not an option of the lens"),
        (lambda c: coilvis.lens(c, start=2), r"^start: not an option of the lens"),
        (lambda c: coilvis.page(c, k=3), r"^k: not an option of the page of a Comparison \(diff_page\)"),
    ],
)
def test_record_only_options_are_refused_for_a_comparison(exact: Comparison, call, match: str) -> None:
    with pytest.raises(CoilvisValueError, match=match):
        call(exact)


# ------------------------------------------------------------------ the default model

IOI_CLEAN = "When Mary and John went to the store, John gave a drink to"
IOI_CORRUPTED = "When Anna and John went to the store, John gave a drink to"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.model
@pytest.mark.xdist_group("browser")
def test_ioi_page_shows_the_logit_difference_fall(browser_session, default_model, tmp_path) -> None:  # noqa: F811
    c = coilvis.compare(IOI_CLEAN, IOI_CORRUPTED, model=default_model, metric=(" Mary", " John"), lens=True,
                        label_a="clean", label_b="corrupted")  # fmt: skip
    assert np.flatnonzero(c.differs).tolist() == [1] and c.exact.all() and c.lens.exact
    last = c.n_pos - 1
    assert c.metric_b[last] < c.metric_a[last]  # the corruption removes the answer
    view = diff_page(c, coil_options={"color": "metric"}, lens_options={"stat": "metric"})
    segments = view.model("diff_coil_source").data
    scale_low = view.model("diff_coil_color_mapper").low
    assert segments["metric_change"][last] < 0 and scale_low < 0
    # the last segment is drawn on the red side of the palette (a fall)
    colour = _style.map_colors([segments["metric_change"][last]], diff_coil(c, color="metric").scale)[0]
    assert colour in _style.PALETTES["RdBu"][128:]  # RdBu runs blue to red; reversed, low values are red
    loaded = browser_session.open(coilvis.save(view, tmp_path / "ioi.html"), viewport=(1500, 1600))
    assert loaded.errors == [] and loaded.external_requests == []
    loaded.hover_data("diff_coil_figure", *_centre(view, last))
    text = loaded.tooltip_text()
    assert f"a {c.metric_a[last]:+.3f} \u2192 b {c.metric_b[last]:+.3f}" in text
    assert "\u2423Mary" in text.split("run a")[1] and "\u2423Anna" in text.split("run b")[1]
    texts = _table_texts(loaded)  # the last position's movers: " Anna" rose, " Mary" fell
    assert "\u2423Anna" in texts and "\u2423Mary" in texts
    assert texts.index("\u2423Anna") < texts.index("\u2423Mary")
    assert loaded.errors == []


def test_movers_note_explains_unknown_probabilities_only_when_there_are_some(exact: Comparison, bound: Comparison) -> None:
    assert "not kept" not in movers_table(exact).model("diff_movers_note").text
    assert "'not kept': the record kept too few top tokens" in movers_table(bound).model("diff_movers_note").text
