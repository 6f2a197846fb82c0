"""The full page (coilvis.views.page): coil + lens + top-k table, linked.

The Bokeh model graph first, then headless Chromium: the page renders offline without
errors, hostile token strings stay text, and tapping the coil or the lens changes the
table (read back from the page's own models).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from pathlib import Path

import bokeh
import numpy as np
import pytest
from bokeh.models import Axis, ColorBar, CustomJS, DataTable, HoverTool, PlainText, Title

import coilvis
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import display
from coilvis.views.output import View
from coilvis.views.page import LENS_PENDING, add_lens, add_lens_frame, page, topk_rows

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from bokeh_graphs import graph_json
    from lens_records import HOSTILE_IMG, HOSTILE_SCRIPT, VOCAB, lens_record
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.bokeh_graphs import graph_json
    from tests.lens_records import HOSTILE_IMG, HOSTILE_SCRIPT, VOCAB, lens_record

TOKENS = ["w1", "w2", "w1", HOSTILE_IMG, HOSTILE_SCRIPT, " Paris", "\n", "w1", "w5", "w6"]
K = 6


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return lens_record(TOKENS, n_layers=3, k=4, seed=0)


# ------------------------------------------------------------------ the model graph


def test_page_holds_coil_lens_and_table(record: coilvis.Record) -> None:
    view = page(record, k=K)
    assert isinstance(view, View) and view.kind == "page"
    assert view.doc.roots == [view.model("page_root")]
    for name in ("coil_figure", "coil_segment_source", "lens_figure", "lens_cells", "lens_highlight",
                 "page_topk_table", "page_topk_source", "page_topk_filter", "page_topk_header",
                 "page_select_coil", "page_select_lens"):
        assert view.model(name) is not None, name
    table = view.model("page_topk_table")
    assert isinstance(table, DataTable)
    assert table.view.filter is view.model("page_topk_filter")
    assert table.source is view.model("page_topk_source")


def test_table_rows_for_every_position(record: coilvis.Record) -> None:
    view = page(record, k=K)
    data = view.model("page_topk_source").data
    n = record.seq_len
    assert len(data["pos"]) == n * K
    assert data["pos"].tolist() == [p for p in range(n) for _ in range(K)]
    assert data["rank"].tolist() == list(range(1, K + 1)) * n
    for p in range(n):
        rows = slice(p * K, (p + 1) * K)
        assert data["token"][rows] == [display(record.vocab[int(i)]) for i in record.topk_ids[p, :K]]
        np.testing.assert_array_equal(data["token_id"][rows], record.topk_ids[p, :K])
        np.testing.assert_array_equal(data["prob"][rows], record.topk_probs[p, :K])
        np.testing.assert_array_equal(data["logit"][rows], record.topk_logits[p, :K])
        nxt = record.token_ids[p + 1] if p + 1 < n else -1
        assert data["actual"][rows] == ["✓" if i == nxt else "" for i in record.topk_ids[p, :K]]
    # the table starts at the last position, and the lens outlines it
    last = n - 1
    assert view.model("page_topk_filter").indices == list(range(last * K, last * K + K))
    assert view.model("page_topk_header").text == f"Top {K} next tokens at position {last}"
    assert view.model("lens_highlight").data == {"pos": [last]}


def test_table_tells_alike_tokens_apart() -> None:
    """Texts that look alike once made visible, and one text under two ids: no two rows look the same."""
    alike = ["\n", "↵", "\\n", "\x00", "\\x00", "", "∅", " ", "␣", "\u202e", "\\u202e", "Paris", "Paris"]
    n = len(alike)
    rec = coilvis.from_logits(np.tile(np.linspace(2.0, 0.0, n), (2, 1)), tokens=[0, 1], vocab=[f"v{i}" for i in range(n)], k=n)
    rec = dataclasses.replace(rec, tokens=tuple(alike[:2]), vocab=dict(enumerate(alike)))
    rows = topk_rows(rec, k=n)
    shown = list(zip(rows["token"][:n], rows["token_id"][:n].tolist(), strict=True))
    assert shown == [(display(text), i) for i, text in enumerate(alike)]
    assert len(set(rows["token"][:n])) == n - 1 and len(set(shown)) == n
    table = page(rec, k=n).model("page_topk_table")
    fields = [c.field for c in table.columns]
    assert fields[fields.index("token") + 1] == "token_id"  # each token's id next to its label


def test_actual_next_token_is_marked() -> None:
    tokens = ["w3", "w4", "w5"]
    logits = np.full((3, len(VOCAB)), -3.0, dtype=np.float32)
    logits[0, VOCAB.index("w4")] = 4.0  # right at position 0
    logits[1, VOCAB.index("w5")] = 2.0  # w5 at rank 2 behind w9 at position 1
    logits[1, VOCAB.index("w9")] = 3.0
    rec = coilvis.from_logits(logits, tokens=[VOCAB.index(t) for t in tokens], vocab=list(VOCAB))
    rows = topk_rows(rec, k=3)
    assert rows["token"][:3][0] == "w4" and rows["actual"][:3] == ["✓", "", ""]
    assert rows["token"][3:5] == ["w9", "w5"] and rows["actual"][3:6] == ["", "✓", ""]
    assert rows["actual"][6:] == ["", "", ""]  # the last position has no next token


def test_callbacks_link_coil_lens_and_table(record: coilvis.Record) -> None:
    view = page(record, k=K)
    segments = view.model("coil_segment_source")
    cells = view.model("lens_cells")
    coil_cbs = segments.selected.js_property_callbacks["change:indices"]
    lens_cbs = cells.selected.js_property_callbacks["change:indices"]
    assert view.model("page_select_coil") in coil_cbs
    assert view.model("page_select_lens") in lens_cbs
    for cb in (view.model("page_select_coil"), view.model("page_select_lens")):
        assert cb.args["filter"] is view.model("page_topk_filter")
        assert cb.args["highlight"] is view.model("lens_highlight")
        assert cb.args["k"] == K and cb.args["seq_len"] == record.seq_len
    assert view.model("page_select_coil").args["source"] is segments
    assert view.model("page_select_lens").args["source"] is cells
    assert view.model("page_select_lens").args["segments"] is segments


def test_no_token_text_in_scripts_or_templates(record: coilvis.Record) -> None:
    view = page(record, k=K)
    code = " ".join(cb.code for cb in view.doc.select({"type": CustomJS}))
    assert code
    tips = " ".join(str(h.tooltips) for h in view.doc.select({"type": HoverTool}))
    for text in (HOSTILE_IMG, HOSTILE_SCRIPT, "Paris", "w1"):
        assert text not in code and text not in tips
    assert "{safe}" not in tips


#: Each TeX delimiter form BokehJS would typeset, and look-alikes of the same lengths.
TEX = ("$$x^2$$", "\\(y\\)", "\\[z\\]")
NOT_TEX = ("xx_x^2x", "((y))", "[[z]]")


def tex_record(forms: tuple[str, ...] = TEX) -> coilvis.Record:
    """A record whose tokens, model name and layer names hold ``forms``."""
    vocab = (*VOCAB, *forms)
    rec = lens_record(["w1", *forms, "w2", forms[0]], n_layers=3, k=4, seed=3, vocab=vocab)
    lens = dataclasses.replace(rec.lens, layer_names=("embed", *forms))
    return dataclasses.replace(rec, lens=lens, model_name=f"model {forms[1]}")


def text_values(view: View) -> list[object]:
    """Every value of a Bokeh text property in the view: titles, axis and tick labels, bar titles."""
    values: list[object] = []
    for model in view.doc.select({"type": Title}):
        values.append(model.text)
    for model in view.doc.select({"type": Axis}):
        values += [model.axis_label, *model.major_label_overrides.values()]
    for model in view.doc.select({"type": ColorBar}):
        values.append(model.title)
    return [v for v in values if v is not None]


def mathjax_sample() -> str:
    """A piece of Bokeh's MathJax bundle, as inlined in a page that uses it."""
    bundle = (Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh-mathjax.min.js").read_text(encoding="utf-8")
    middle = len(bundle) // 2
    return bundle[middle : middle + 80]


@pytest.mark.parametrize("titles", [False, True], ids=["default_titles", "given_titles"])
def test_tex_delimiters_stay_plain_text(titles: bool) -> None:
    options = {"coil_options": {"title": f"coil {TEX[0]}"}, "lens_options": {"title": f"lens {TEX[2]}"}} if titles else {}
    other = {"coil_options": {"title": f"coil {NOT_TEX[0]}"}, "lens_options": {"title": f"lens {NOT_TEX[2]}"}} if titles else {}
    view = page(tex_record(), title=f"page {TEX[1]}", **options)
    html = view.to_html()
    plain_html = page(tex_record(NOT_TEX), title=f"page {NOT_TEX[1]}", **other).to_html()
    assert mathjax_sample() not in html  # no MathJax bundle inlined
    assert abs(len(html) - len(plain_html)) < 20_000  # a page with MathJax is 1.8 MB larger
    # no str that BokehJS could typeset reaches a text property; the TeX-like ones are PlainText
    values = text_values(view)
    assert not [v for v in values if isinstance(v, str) and ("$" in v or "\\" in v)]
    shown = [v.text for v in values if isinstance(v, PlainText)]
    rec = tex_record()
    for form in TEX:
        assert display(form, max_len=12) in shown  # tick labels of the input and next tokens
        assert form in shown  # layer names, as written
    assert f"model {TEX[1]}" in " ".join(shown) or titles
    if titles:
        assert f"coil {TEX[0]}" in shown and f"lens {TEX[2]}" in shown
    inputs = view.model("lens_input_axis").major_label_overrides
    assert inputs[1].text == display(rec.tokens[1], max_len=12) == display(TEX[0], max_len=12)


def test_page_without_lens(record: coilvis.Record) -> None:
    view = page(dataclasses.replace(record, lens=None), k=K, lens_options={"stat": "kl"})
    assert view.doc.select_one({"name": "lens_figure"}) is None
    assert view.doc.select_one({"name": "page_select_lens"}) is None
    assert view.model("coil_figure") is not None and view.model("page_topk_table") is not None
    cb = view.model("page_select_coil")
    assert cb.args["highlight"] is None and cb.args["x_range"] is None


def test_options_reach_the_coil_and_the_lens(record: coilvis.Record) -> None:
    view = page(record, coil_options={"color": "entropy"}, lens_options={"stat": "kl", "stride": 2, "start": 2})
    assert "entropy" in view.model("coil_color_bar").title
    assert view.model("lens_color_bar").title == "KL(final ‖ layer) (bits)"
    cells = view.model("lens_cells").data
    assert sorted(set(cells["row"].tolist())) == [0, 2, 3]
    assert min(cells["pos"]) == 2
    cb = view.model("page_select_coil")
    assert (cb.args["lo"], cb.args["hi"]) == (2, record.seq_len)


def test_k_is_capped_by_the_record(record: coilvis.Record) -> None:
    view = page(record, k=500)
    assert len(view.model("page_topk_source").data["pos"]) == record.seq_len * record.k


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, CoilvisValueError, "^k: expected >= 1, got 0$"),
        ({"k": 2.5}, CoilvisTypeError, "k: expected an int"),
        ({"coil_options": ["color"]}, CoilvisTypeError, "coil_options"),
        ({"lens_options": "kl"}, CoilvisTypeError, "lens_options"),
        ({"lens_options": {"stat": "nope"}}, CoilvisValueError, "stat"),
        ({"title": 1}, CoilvisTypeError, "title"),
    ],
)
def test_bad_arguments(record: coilvis.Record, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        page(record, **kwargs)


def test_not_a_record() -> None:
    with pytest.raises(CoilvisTypeError, match="record: expected a coilvis Record"):
        page("The Eiffel Tower")


def test_public_name() -> None:
    assert coilvis.page is page


# ------------------------------------------------------------------ headless Chromium



def _segment_centre(view: View, pos: int) -> tuple[float, float]:
    data = view.model("coil_segment_source").data
    return float(data["x"][pos]), float(data["y"][pos])


def _table_texts(loaded) -> list[str]:
    cells = loaded.page.locator(".slick-cell")
    return [cells.nth(i).inner_text() for i in range(cells.count())]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_full_page_renders_and_taps_link_the_views(browser_session, record: coilvis.Record, tmp_path) -> None:  # noqa: F811
    view = page(record, k=K)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "page.html"), viewport=(1500, 1400))
    assert loaded.errors == []
    assert loaded.external_requests == []
    last = record.seq_len - 1
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(last * K, last * K + K))

    # tap the coil segment of a position whose top-k holds the hostile token
    hostile_id = VOCAB.index(HOSTILE_IMG)
    pos = int(next(p for p in range(record.seq_len - 1) if hostile_id in record.topk_ids[p, :K]))
    loaded.click_data("coil_figure", *_segment_centre(view, pos))
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(pos * K, pos * K + K))
    assert loaded.model_attr("page_topk_header", "text") == f"Top {K} next tokens at position {pos}"
    assert loaded.column("lens_highlight", "pos") == [pos]
    texts = _table_texts(loaded)
    assert HOSTILE_IMG in texts  # shown literally, as text
    row = texts.index(HOSTILE_IMG)
    assert texts[row + 1] == str(hostile_id)  # and its id next to it
    assert display(record.vocab[int(record.topk_ids[pos, 0])]) in texts
    assert loaded.evaluate("() => window.__pwned === undefined")

    # tap a lens cell: the table follows and the coil selects that segment
    other = 1 if pos != 1 else 2
    loaded.click_data("lens_figure", other, 0)
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(other * K, other * K + K))
    assert loaded.column("lens_highlight", "pos") == [other]
    selected = loaded.evaluate("() => Array.from(Bokeh.documents[0].get_model_by_name('coil_segment_source').selected.indices)")
    assert selected == [other]
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_tapping_the_coil_pans_the_lens_to_the_position(browser_session, tmp_path) -> None:  # noqa: F811
    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=7)
    view = page(rec, k=3, lens_options={"max_width_px": 400})
    loaded = browser_session.open(coilvis.save(view, tmp_path / "long.html"), viewport=(1500, 1400))
    x_range = "() => { const r = Bokeh.documents[0].get_model_by_name('lens_x_range'); return [r.start, r.end] }"
    start, end = loaded.evaluate(x_range)
    assert (start, end) == (52.5, 59.5)  # 7 columns of 56 px in view, the last ones; position 40 not among them
    loaded.click_data("coil_figure", *_segment_centre(view, 40))
    assert loaded.column("lens_highlight", "pos") == [40]
    start2, end2 = loaded.evaluate(x_range)
    assert start2 < 40 < end2 and end2 - start2 == pytest.approx(7)
    assert loaded.model_attr("page_topk_filter", "indices") == [120, 121, 122]
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_autoplay_leaves_the_lens_on_its_last_positions(browser_session, tmp_path) -> None:  # noqa: F811
    """The unwind plays from position 0 as the page opens: the lens outlines each position
    it passes but stays on the last positions; a tap still pans it."""
    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=7)
    view = page(rec, k=3, coil_options={"animate": True, "duration_s": 6.0}, lens_options={"max_width_px": 400})
    loaded = browser_session.open(coilvis.save(view, tmp_path / "play.html"), viewport=(1500, 1400))
    x_range = "() => { const r = Bokeh.documents[0].get_model_by_name('lens_x_range'); return [r.start, r.end] }"
    loaded.page.wait_for_function(
        "() => { const h = Bokeh.documents[0].get_model_by_name('lens_highlight'); return h.data.pos[0] >= 3 && h.data.pos[0] < 40 }",
        timeout=30_000,
    )
    assert loaded.model_attr("coil_unwind_play", "label").startswith("\u275a")  # still playing
    assert loaded.evaluate(x_range) == [52.5, 59.5]
    assert loaded.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_page_without_lens_renders(browser_session, record: coilvis.Record, tmp_path) -> None:  # noqa: F811
    view = page(dataclasses.replace(record, lens=None), k=K)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "page.html"))
    assert loaded.errors == [] and loaded.external_requests == []
    assert not loaded.has_model("lens_figure")
    loaded.click_data("coil_figure", *_segment_centre(view, 2))
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(2 * K, 3 * K))
    assert loaded.errors == []


_AXIS_LABELS_JS = """
(names) => {
  const doc = Bokeh.documents[0], out = {}
  for (const name of names) {
    const axis = doc.get_model_by_name(name)
    const o = axis.major_label_overrides
    const values = o instanceof Map ? Array.from(o.values()) : Object.values(o)
    out[name] = values.map((v) => (typeof v === "string" ? v : v.text))
    // what BokehJS built to draw each label: PlainText, never TeX
    out[name + "/drawn"] = Array.from(Bokeh.index.find_one(axis)._major_label_views.values(), (v) => v.model.type)
  }
  const title = doc.get_model_by_name("coil_figure").title.text
  out.coil_title = typeof title === "string" ? title : title.text
  out.mathjax = typeof window.MathJax
  return out
}
"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_tex_like_labels_render_as_written(browser_session, tmp_path) -> None:  # noqa: F811
    rec = tex_record()
    view = page(rec, coil_options={"title": f"coil {TEX[0]}"})
    loaded = browser_session.open(coilvis.save(view, tmp_path / "tex.html"), viewport=(1500, 1400))
    assert loaded.errors == [] and loaded.external_requests == []
    got = loaded.evaluate(_AXIS_LABELS_JS, ["lens_input_axis", "lens_next_axis", "lens_layer_axis"])
    assert got["lens_input_axis"] == [display(t, max_len=12) for t in rec.tokens]
    assert got["lens_layer_axis"] == ["embed", *TEX]
    for name in ("lens_input_axis", "lens_next_axis", "lens_layer_axis"):
        assert set(got[f"{name}/drawn"]) == {"PlainText"}, name
    assert got["coil_title"] == f"coil {TEX[0]}"
    assert got["mathjax"] == "undefined"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.model
@pytest.mark.xdist_group("browser")
def test_default_model_page(browser_session, default_model, tmp_path) -> None:  # noqa: F811
    rec = coilvis.run("The Eiffel Tower is located in the city of", default_model, lens=True)
    view = page(rec)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "eiffel.html"), viewport=(1500, 1400))
    assert loaded.errors == [] and loaded.external_requests == []
    last = rec.seq_len - 1
    assert "␣Paris" in _table_texts(loaded)  # the last position's table: the final prediction
    loaded.click_data("coil_figure", *_segment_centre(view, 1))
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(10, 20))
    assert loaded.column("lens_highlight", "pos") == [1]
    assert last > 1 and loaded.errors == []


# ------------------------------------------------------------------ the prompt panel


def test_prompt_panel_holds_every_token_in_order(record: coilvis.Record) -> None:
    view = page(record, k=K)
    fig = view.model("page_prompt")
    source = view.model("page_prompt_source")
    assert fig is not None and source is not None
    data = source.data
    assert list(data["pos"]) == list(range(record.seq_len))
    assert list(data["token_id"]) == [int(i) for i in record.token_ids]
    assert data["text"] == [display(t) for t in record.tokens]
    assert HOSTILE_IMG in data["text"] and "␣Paris" in data["text"]
    assert source.selected.indices == [record.seq_len - 1]  # the last position, as the table
    code = " ".join(cb.code for cb in view.doc.select({"type": CustomJS}))
    assert HOSTILE_IMG not in code and "Paris" not in code
    assert "{safe}" not in " ".join(str(h.tooltips) for h in view.doc.select({"type": HoverTool}))


@pytest.mark.parametrize(("whitespace", "paris"), [("markers", "␣Paris"), ("subtle", "·Paris"), ("plain", " Paris")])
def test_whitespace_reaches_the_prompt_the_coil_and_the_lens(record: coilvis.Record, whitespace: str, paris: str) -> None:
    view = page(record, k=K, whitespace=whitespace)
    at = TOKENS.index(" Paris")
    prompt = view.model("page_prompt_source").data
    assert prompt["label"][at] == paris and prompt["label"][TOKENS.index("\n")] == "↵"
    assert view.model("lens_input_axis").major_label_overrides[at] == paris
    coil_labels = view.model("coil_label_source").data
    assert paris in list(coil_labels["text"])
    # hovers and the table keep the exact label, with markers, whatever the option
    assert prompt["text"] == [display(t) for t in record.tokens] and prompt["text"][at] == "␣Paris"
    assert view.model("coil_segment_source").data["label"][at] == "␣Paris"
    strings = view.model("lens_strings").data
    assert "␣Paris" in strings["full"] and " Paris" not in strings["full"] and "·Paris" not in strings["full"]
    tokens = view.model("page_topk_source").data["token"]
    assert tokens == topk_rows(record, k=K)["token"] and "␣Paris" in tokens


def test_whitespace_defaults_to_subtle_and_a_view_option_wins(record: coilvis.Record) -> None:
    at = TOKENS.index(" Paris")
    view = page(record)
    assert view.model("page_prompt_source").data["label"][at] == "·Paris"
    assert view.model("lens_input_axis").major_label_overrides[at] == "·Paris"
    view = page(record, whitespace="plain", lens_options={"whitespace": "markers"})
    assert view.model("page_prompt_source").data["label"][at] == " Paris"
    assert view.model("lens_input_axis").major_label_overrides[at] == "␣Paris"
    assert " Paris" in list(view.model("coil_label_source").data["text"])
    with pytest.raises(CoilvisValueError, match="^whitespace: expected one of"):
        page(record, whitespace="none")


def test_prompt_selection_is_linked(record: coilvis.Record) -> None:
    view = page(record, k=K)
    prompt = view.model("page_prompt_source")
    cb = view.model("page_select_prompt")
    assert cb in prompt.selected.js_property_callbacks["change:indices"]
    assert cb.args["source"] is prompt and cb.args["segments"] is view.model("coil_segment_source")
    assert cb.args["filter"] is view.model("page_topk_filter")
    for name in ("page_select_coil", "page_select_lens"):
        assert view.model(name).args["prompt"] is prompt


def test_long_prompts_fold_into_lines() -> None:
    from coilvis.views.page import PROMPT_LINE_CHARS, prompt_rows

    rec = lens_record([f"w{i % 9}" for i in range(120)], n_layers=2, k=3, seed=1)
    rows = prompt_rows(rec)
    lines = rows["line"].tolist()
    assert lines == sorted(lines) and lines[-1] >= 2  # folded, in reading order
    right = rows["x"] + rows["width"] / 2
    assert float(right.max()) <= PROMPT_LINE_CHARS
    for line in set(lines):  # boxes of one line do not overlap
        on = np.flatnonzero(rows["line"] == line)
        left = rows["x"][on] - rows["width"][on] / 2
        assert np.all(left[1:] >= right[on][:-1])
    newline = lens_record(["w1", "\n", "w2"], n_layers=2, k=3, seed=1)
    assert prompt_rows(newline)["line"].tolist() == [0, 0, 1]  # a newline token ends its line
    with pytest.raises(CoilvisValueError, match="line_chars"):
        prompt_rows(rec, line_chars=0)


_PROMPT_FRAME_JS = """
() => {
  const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('page_prompt'))
  return [v.frame.bbox.right, v.canvas_view.el.getBoundingClientRect().width]
}
"""


def _prompt_centre(view: View, pos: int) -> tuple[float, float]:
    data = view.model("page_prompt_source").data
    return float(data["x"][pos]), float(data["y"][pos])


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_prompt_panel_renders_and_selects(browser_session, record: coilvis.Record, tmp_path) -> None:  # noqa: F811
    view = page(record, k=K)
    loaded = browser_session.open(coilvis.save(view, tmp_path / "prompt.html"), viewport=(1500, 1400))
    assert loaded.errors == [] and loaded.external_requests == []
    assert loaded.column("page_prompt_source", "text") == [display(t) for t in record.tokens]
    assert loaded.view_indices("page_prompt_text") == list(range(record.seq_len))  # every token drawn
    frame_right, canvas_width = loaded.evaluate(_PROMPT_FRAME_JS)
    assert frame_right <= canvas_width  # the folded lines are not cut at the right
    assert loaded.evaluate("() => document.querySelector('img[src=x]') === null")
    assert loaded.evaluate("() => window.__pwned === undefined")

    # hovering the hostile token shows it literally
    hostile = TOKENS.index(HOSTILE_IMG)
    loaded.hover_data("page_prompt", *_prompt_centre(view, hostile))
    assert HOSTILE_IMG in loaded.tooltip_text()
    assert "<img" not in loaded.tooltip_html().replace("&lt;img", "")

    # tapping a prompt token selects that position in the table, the lens and the coil
    loaded.click_data("page_prompt", *_prompt_centre(view, 2))
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(2 * K, 3 * K))
    assert loaded.model_attr("page_topk_header", "text") == f"Top {K} next tokens at position 2"
    assert loaded.column("lens_highlight", "pos") == [2]
    coil_sel = "() => Array.from(Bokeh.documents[0].get_model_by_name('coil_segment_source').selected.indices)"
    assert loaded.evaluate(coil_sel) == [2]

    # selecting a coil segment highlights its token in the prompt
    loaded.click_data("coil_figure", *_segment_centre(view, 5))
    prompt_sel = "() => Array.from(Bokeh.documents[0].get_model_by_name('page_prompt_source').selected.indices)"
    assert loaded.evaluate(prompt_sel) == [5]
    assert loaded.model_attr("page_topk_filter", "indices") == list(range(5 * K, 6 * K))
    assert loaded.evaluate("() => window.__pwned === undefined")
    assert loaded.errors == []


# ------------------------------------------------------------------ fitting the window

#: Room kept at the right for a classic (non-overlay) scrollbar.
_SCROLLBAR_PX = 17

_EXTENTS_JS = """
() => {
  const doc = Bokeh.documents[0]
  const view = (name) => Bokeh.index.find_one(doc.get_model_by_name(name))
  const out = {client: document.documentElement.clientWidth, scroll: document.documentElement.scrollWidth}
  for (const name of ["page_root", "page_prompt", "coil_figure", "lens_figure", "page_topk_table"]) {
    const r = view(name).el.getBoundingClientRect()
    out[name] = [r.left, r.right]
  }
  // a colour bar is drawn on its figure's canvas: its box in canvas pixels, moved to the page's
  for (const [bar, fig] of [["coil_color_bar", "coil_figure"], ["lens_color_bar", "lens_figure"]]) {
    const box = view(bar).bbox, canvas = view(fig).canvas_view.el.getBoundingClientRect()
    out[bar] = [canvas.left + box.left, canvas.left + box.right, canvas.top + box.top, canvas.top + box.bottom]
  }
  return out
}
"""


def test_the_page_lens_is_sized_to_fit_a_1280_px_window() -> None:
    from coilvis.views.page import PAGE_LENS_MAX_WIDTH_PX

    rec = lens_record([f"w{i % 20}" for i in range(40)], n_layers=30, k=4, seed=2)
    fig = page(rec).model("lens_figure")
    assert fig.frame_width == (PAGE_LENS_MAX_WIDTH_PX // 56) * 56 and fig.x_range.end == 39.5  # opens on the last
    fig = page(rec, lens_options={"max_width_px": 1400}).model("lens_figure")
    assert fig.frame_width == 25 * 56  # a width given in lens_options wins
    assert coilvis.lens(rec).model("lens_figure").frame_width == 25 * 56  # the lens alone keeps its own default


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
@pytest.mark.parametrize("width", [1280, 1500, 1920])
def test_no_legend_is_cut_off_at_common_window_widths(browser_session, tmp_path, width: int) -> None:  # noqa: F811
    import io

    from PIL import Image

    rec = lens_record([f"w{i % 20}" if i % 3 else " Paris" for i in range(40)], n_layers=30, k=4, seed=2)
    view = page(rec, coil_options={"animate": True, "autoplay": False})
    loaded = browser_session.open(coilvis.save(view, tmp_path / "page.html"), viewport=(width, 1000))
    assert loaded.errors == []
    got = loaded.evaluate(_EXTENTS_JS)
    limit = width - _SCROLLBAR_PX
    assert got["scroll"] <= got["client"] == width  # nothing reaches past the window
    for name in ("page_root", "page_prompt", "coil_figure", "lens_figure", "page_topk_table"):
        left, right = got[name]
        assert 0 <= left and right <= limit, (name, got[name])
    for bar, fig in (("coil_color_bar", "coil_figure"), ("lens_color_bar", "lens_figure")):
        left, right, _, _ = got[bar]
        assert got[fig][0] <= left < right <= got[fig][1] and right <= limit, (bar, got[bar])
    assert loaded.model_attr("lens_x_range", "end") == 39.5  # the lens shows its last position

    # the picture: no wider than the window, and each colour bar's gradient drawn inside it
    image = Image.open(io.BytesIO(loaded.screenshot())).convert("RGB")
    assert image.width == width
    pixels = np.asarray(image)
    for bar in ("coil_color_bar", "lens_color_bar"):
        left, right, top, bottom = (int(round(v)) for v in got[bar])
        box = pixels[top:bottom, left:right].reshape(-1, 3)
        assert len(np.unique(box, axis=0)) > 50, bar  # a palette's many colours, not a blank or cut box
    loaded.close()


def _graph(layout: Any) -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]:
    """The layout's models as sorted (type, name) pairs, and each named script's
    arguments (a model as its (type, name))."""
    from bokeh.model import Model

    models = sorted((type(m).__name__, m.name or "") for m in layout.references())
    scripts = {}
    for m in layout.references():
        if isinstance(m, CustomJS) and m.name:
            scripts[m.name] = {k: (type(v).__name__, v.name) if isinstance(v, Model) else v for k, v in m.args.items()}
    return models, scripts


def test_add_lens_makes_the_page_that_page_draws(record: coilvis.Record) -> None:
    """A page drawn without the lens, then given it, is the page ``page`` draws with it."""
    options = {"stat": "entropy", "max_width_px": 300}
    whole = page(record, k=K, lens_options=options).layout
    staged = page(dataclasses.replace(record, lens=None), k=K, lens_options=options).layout
    assert staged.select_one({"name": "lens_figure"}) is None
    parts = add_lens(staged, record, lens_options=options)
    assert _graph(staged) == _graph(whole)
    assert staged.select_one({"name": "lens_highlight"}).data == whole.select_one({"name": "lens_highlight"}).data
    assert parts.figure is staged.select_one({"name": "page_views"}).children[1]
    assert staged.select_one({"name": "lens_x_range"}).end == whole.select_one({"name": "lens_x_range"}).end


@pytest.mark.parametrize("stat", ["prob", "entropy", "rank"])
def test_a_lens_frame_filled_in_place_is_the_page_that_page_draws(record: coilvis.Record, stat: str) -> None:
    """The frame of a lens to come (axes and colour bar, no cells, the title saying the
    lens is being computed), filled in place, is the page ``page`` draws, value for value."""
    options = {"stat": stat, "max_width_px": 300}
    forward = dataclasses.replace(record, lens=None)
    staged = page(forward, k=K, lens_options=options).layout
    frame = add_lens_frame(staged, forward, record.lens.layer_names, lens_options=options)
    assert frame.figure is staged.select_one({"name": "page_views"}).children[1]
    assert all(len(column) == 0 for column in frame.cells.data.values())
    assert staged.select_one({"name": "lens_match_filter"}).indices == []
    assert LENS_PENDING in str(getattr(frame.figure.title.text, "text", frame.figure.title.text))
    coil_args = staged.select_one({"name": "page_select_coil"}).args
    assert coil_args["highlight"] is frame.highlight and coil_args["x_range"] is frame.figure.x_range

    parts = add_lens(staged, record, lens_options=options)
    assert parts.figure is frame.figure and parts.cells is frame.cells and parts.highlight is frame.highlight
    assert graph_json(staged) == graph_json(page(record, k=K, lens_options=options).layout)
    assert [model for model, _, _ in parts.still] == [model for model, _, _ in frame.still]  # the page's own models


def test_a_lens_frame_of_other_rows_or_shape_still_becomes_the_page(record: coilvis.Record) -> None:
    """A frame drawn with the wrong rows is filled all the same; one of another shape
    (another colour scale's models) is replaced by the lens."""
    forward = dataclasses.replace(record, lens=None)
    whole = graph_json(page(record, k=K).layout)
    staged = page(forward, k=K).layout
    add_lens_frame(staged, forward, ["embed", "a", "b", "c", "d", "e", "f"])
    add_lens(staged, record)
    assert graph_json(staged) == whole
    staged = page(forward, k=K).layout
    frame = add_lens_frame(staged, forward, record.lens.layer_names, lens_options={"stat": "rank"})
    parts = add_lens(staged, record)  # prob: a linear colour scale where the frame has a log one
    assert parts.figure is not frame.figure and parts.figure is staged.select_one({"name": "page_views"}).children[1]
    assert staged.select_one({"name": "page_select_coil"}).args["highlight"] is parts.highlight
    assert _graph(staged) == _graph(page(record, k=K).layout)


def test_a_lens_frame_keeps_the_column_the_reader_chose(record: coilvis.Record) -> None:
    forward = dataclasses.replace(record, lens=None)
    staged = page(forward, k=K).layout
    frame = add_lens_frame(staged, forward, record.lens.layer_names)
    frame.highlight.data = {"pos": [3]}  # what a tap on the coil does in the browser
    assert add_lens(staged, record).highlight.data["pos"] == [3]


def test_add_lens_frame_refuses_bad_input(record: coilvis.Record) -> None:
    forward = dataclasses.replace(record, lens=None)
    staged = page(forward, k=K).layout
    with pytest.raises(CoilvisValueError, match="root"):
        add_lens_frame(coilvis.coil(record).layout, forward, ["embed"])
    for bad in ([], "embed", ["embed", 3], None):
        with pytest.raises(CoilvisValueError, match="layer_names"):
            add_lens_frame(staged, forward, bad)
    shorter = lens_record(TOKENS[:-1], n_layers=3, k=4, seed=0)
    with pytest.raises(CoilvisValueError, match=f"{len(TOKENS)} positions"):
        add_lens_frame(staged, shorter, ["embed"])
    with pytest.raises(CoilvisTypeError, match="record"):
        add_lens_frame(staged, "a record", ["embed"])
    assert staged.select_one({"name": "lens_figure"}) is None  # nothing half-added


def test_add_lens_refuses_what_it_cannot_join(record: coilvis.Record) -> None:
    staged = page(dataclasses.replace(record, lens=None), k=K).layout
    with pytest.raises(CoilvisValueError, match="root"):
        add_lens(coilvis.coil(record).layout, record)
    with pytest.raises(CoilvisValueError, match="record: .*no lens"):
        add_lens(staged, dataclasses.replace(record, lens=None))
    shorter = lens_record(TOKENS[:-1], n_layers=3, k=4, seed=0)
    with pytest.raises(CoilvisValueError, match=f"{len(TOKENS)} positions"):
        add_lens(staged, shorter)
    with pytest.raises(CoilvisTypeError, match="record"):
        add_lens(staged, "a record")
    with pytest.raises(CoilvisTypeError, match="lens_options"):
        add_lens(staged, record, lens_options=["stat"])
    assert staged.select_one({"name": "lens_figure"}) is None  # nothing half-added


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_a_lens_added_later_is_linked_in_the_browser(browser_session, tmp_path) -> None:  # noqa: F811
    rec = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=7)
    view = page(dataclasses.replace(rec, lens=None), k=3)
    add_lens(view.layout, rec, lens_options={"max_width_px": 400})
    loaded = browser_session.open(coilvis.save(view, tmp_path / "staged.html"), viewport=(1500, 1400))
    loaded.click_data("coil_figure", *_segment_centre(view, 40))
    assert loaded.column("lens_highlight", "pos") == [40]
    start, end = loaded.evaluate("() => { const r = Bokeh.documents[0].get_model_by_name('lens_x_range'); return [r.start, r.end] }")
    assert start < 40 < end
    assert loaded.model_attr("page_topk_filter", "indices") == [120, 121, 122]
    assert loaded.errors == [] and loaded.external_requests == []
