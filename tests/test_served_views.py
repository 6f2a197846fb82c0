"""The views of a served model's Record: the entropy labelled a top-k estimate, no lens (said in one line),
and the hover marking next tokens outside the top-k the server sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bokeh.models import CustomJSHover, Div, HoverTool
from browser import browser_session  # noqa: F401  (a fixture)

import coilvis
from coilvis.errors import CoilvisValueError
from coilvis.views.served import ENTROPY_LEGEND, ENTROPY_TITLE, LENS_UNAVAILABLE

FIXTURES = Path(__file__).parent / "fixtures" / "served"


def served(name: str = "openai_chat") -> coilvis.Record:
    return coilvis.from_logprobs(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def plain() -> coilvis.Record:
    logits = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]))
    return coilvis.from_logits(logits, tokens=[0, 1, 2], vocab=["a", "b", "c"])


def _tooltip_labels(view: coilvis.views.View) -> list[str]:
    hover = view.model("coil_hover")
    assert isinstance(hover, HoverTool)
    return [label for label, _ in hover.tooltips] if isinstance(hover.tooltips, list) else [hover.tooltips]


def test_the_coil_calls_a_served_entropy_a_top_k_estimate() -> None:
    view = coilvis.coil(served(), color="entropy")
    assert view.scale.title == ENTROPY_TITLE and view.scale.legend == ENTROPY_LEGEND
    assert view.model("coil_color_bar").title == ENTROPY_TITLE
    fmt = view.model("coil_text_format")
    assert isinstance(fmt, CustomJSHover) and fmt.args["served_k"] == 3
    tooltip = str(view.model("coil_hover").tooltips)
    assert "entropy (top-k estimate)" in tooltip
    # any other statistic keeps its own words; another Record is not called an estimate
    assert coilvis.coil(served(), color="prob").scale.title != ENTROPY_TITLE
    other = coilvis.coil(plain(), color="entropy")
    assert other.scale.title != ENTROPY_TITLE and other.model("coil_text_format").args["served_k"] == 0
    assert "top-k estimate" not in str(other.model("coil_hover").tooltips)


def test_the_lens_is_unavailable_in_one_line() -> None:
    with pytest.raises(CoilvisValueError) as exc:
        coilvis.lens(served())
    assert str(exc.value) == f"record: {LENS_UNAVAILABLE}" and "\n" not in str(exc.value)
    with pytest.raises(CoilvisValueError, match="lens=True"):
        coilvis.lens(plain())  # a record run without its lens says how to get one


def test_the_page_says_it_has_no_lens() -> None:
    view = coilvis.page(served("openai_completions_echo"))
    note = view.model("page_lens_unavailable")
    assert isinstance(note, Div) and note.text == LENS_UNAVAILABLE and note.render_as_text
    assert view.model("page_topk_table") is not None
    assert coilvis.page(plain()).doc.select_one({"name": "page_lens_unavailable"}) is None


def test_positions_without_a_distribution_still_unwind() -> None:
    rec = served()  # its last position has no distribution: NaN entropy
    view = coilvis.coil(rec, animate=True, autoplay=False)
    assert view.schedule is not None and np.isfinite(np.asarray(view.schedule.start_s)).all()


_FORMAT_JS = """
([n, what]) => {
  const fmt = Bokeh.documents[0].get_model_by_name("coil_text_format")
  return Array.from({length: n}, (_, i) => fmt.format(i, what, {}))
}
"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_the_hover_marks_next_tokens_outside_the_top_k(browser_session, tmp_path: Path) -> None:  # noqa: F811
    rec = served()  # ⟨prompt⟩ Paris · is · lovely (outside its top 3) · "." (-9999: unknown)
    page = browser_session.open(coilvis.save(coilvis.coil(rec, layout="circle"), tmp_path / "served.html"))
    assert page.errors == []
    nexts = page.evaluate(_FORMAT_JS, [rec.seq_len, "next"])
    assert "outside" not in nexts[0] and "rank 1" in nexts[0]
    assert "rank unknown" in nexts[2] and nexts[2].endswith("⚠ outside the top 3 the server sent")
    assert "(probability unknown)" in nexts[3] and nexts[4] == "unknown (end of the prompt)"
    tops = page.evaluate(_FORMAT_JS, [rec.seq_len, "topk"])
    assert tops[4] == "not sent by the server" and "Paris" in tops[0]
