"""One page for a Comparison: both prompts, the diff coil, the top movers and the diff lens, linked by selection.

Tapping a segment of the diff coil, a cell of the diff lens or a token of either prompt
selects that compared position everywhere: the movers table shows its rows, the lens
outlines its column (and pans to it), both prompts highlight their token and the coil
selects its segment. The page script moves numbers only (positions, row indices); every
token text is data.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJS, Div, IndexFilter

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import display, label_whitespace
from coilvis.views.diff.coil import diff_coil
from coilvis.views.diff.data import check_comparison, check_title, run_name
from coilvis.views.diff.lens import DiffLensFigure, diff_lens_figure
from coilvis.views.diff.movers import movers_parts
from coilvis.views.diff.prompts import prompt_panel
from coilvis.views.output import View

__all__ = ["diff_page", "summary_text"]

# Selects compared position `pos` everywhere. Only numbers flow through here: positions
# from data-source columns, sizes and offsets from Python.
_SELECT_JS = """
const idx = cb_obj.indices
if (idx == null || idx.length == 0) return
const pos = Math.trunc(Number(source.data[field][idx[0]]))
if (!Number.isFinite(pos) || pos < 0 || pos >= n_pos) return
const rows = []
for (let j = 0; j < 2 * m; j++) rows.push(pos * 2 * m + j)
filter.indices = rows
header.text = "Top " + m + " rising and falling tokens at position " + pos
if (highlight != null) {
  highlight.data = {pos: [pos]}
  const w = x_range.end - x_range.start
  if (pos < x_range.start + 0.5 || pos > x_range.end - 0.5) {
    const s = Math.max(Math.min(pos - w / 2, n_pos - 0.5 - w), -0.5)
    x_range.setv({start: s, end: s + w})
  }
}
for (const [prompt, offset] of [[prompt_a, offset_a], [prompt_b, offset_b]]) {
  const sel = prompt.selected.indices, want = pos + offset
  if (!(sel.length == 1 && sel[0] == want)) prompt.selected.indices = [want]
}
const sel = segments.selected.indices
if (!(sel.length == 1 && sel[0] == pos)) segments.selected.indices = [pos]
"""


def summary_text(comparison: Comparison) -> str:
    """One line saying what is compared: the runs, the positions, the metric, exactness."""
    c = comparison
    parts = [f"Run {run_name(c, 'a')} vs run {run_name(c, 'b')}"]
    models = {display(r.model_name or "", max_len=60, whitespace="none") for r in (c.a, c.b)} - {""}
    if len(models) == 2:
        parts.append(f"models {display(c.a.model_name or '?', max_len=60, whitespace='none')} and "
                     f"{display(c.b.model_name or '?', max_len=60, whitespace='none')}")  # fmt: skip
    n_diff = int(c.differs.sum())
    parts.append(f"{c.n_pos:,} compared positions, {n_diff:,} with different tokens")
    if c.metric is not None:
        parts.append(f"metric {display(c.metric.label, whitespace='none')}")
    n_bound = int((~c.exact).sum())
    parts.append("exact divergences" if n_bound == 0 else f"divergences at {n_bound:,} positions are top-k lower bounds")
    return " \u00b7 ".join(parts)


def _options(value: Any, name: str, view: Any) -> dict[str, Any]:
    """Keyword options for ``view``: a mapping of the names it takes, or None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CoilvisTypeError(f"{name}: expected a dict of keyword options or None, got {type(value).__name__}")
    takes = [p.name for p in inspect.signature(view).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = [key for key in value if key not in takes]
    if unknown:
        raise CoilvisValueError(f"{name}: unknown option {unknown[0]!r}; the options are {', '.join(takes)}")
    return dict(value)


def _link(comparison: Comparison, segments: ColumnDataSource, lens: DiffLensFigure | None, *,
          prompts: tuple[ColumnDataSource, ColumnDataSource], table_filter: IndexFilter, header: Div) -> None:  # fmt: skip
    """Tapping a segment, a lens cell or a prompt token selects its compared position
    everywhere (scripts ``diff_select_coil``, ``diff_select_lens``, ``diff_select_prompt_a``,
    ``diff_select_prompt_b``)."""
    c = comparison
    args: dict[str, Any] = {
        "n_pos": c.n_pos, "m": c.n_movers, "filter": table_filter, "header": header,
        "highlight": lens.highlight if lens is not None else None,
        "x_range": lens.figure.x_range if lens is not None else None,
        "prompt_a": prompts[0], "prompt_b": prompts[1], "offset_a": c.offset_a, "offset_b": c.offset_b,
        "segments": segments,
    }  # fmt: skip
    if lens is not None:
        lens.highlight.data = {"pos": [c.n_pos - 1]}
    sources = [("coil", segments, "pos"), ("prompt_a", prompts[0], "cpos"), ("prompt_b", prompts[1], "cpos")]
    if lens is not None:
        sources.append(("lens", lens.cells, "pos"))
    for what, source, field in sources:
        source.selected.js_on_change(
            "indices", CustomJS(args={**args, "source": source, "field": field}, code=_SELECT_JS, name=f"diff_select_{what}")
        )


def diff_page(
    comparison: Comparison,
    *,
    coil_options: Mapping[str, Any] | None = None,
    lens_options: Mapping[str, Any] | None = None,
    title: str | None = None,
    whitespace: str = "subtle",
) -> View:
    """Both prompts, the diff coil, the top movers and the diff lens of a Comparison on one page, linked.

    On top, one line says what is compared, then both prompts as text (tokens that
    differ in green). Below, the diff coil (:func:`~coilvis.views.diff.coil.diff_coil`)
    with the movers table beside it (the last compared position at first), and the
    diff lens (:func:`~coilvis.views.diff.lens.diff_lens`) underneath when the
    comparison has one. Tapping a segment, a lens cell or a prompt token selects that
    position everywhere.

    Named models: ``diff_root``, ``diff_summary``, ``diff_prompt_a`` and ``diff_prompt_b``
    (figures) over ``diff_prompt_a_source``/``diff_prompt_b_source`` (their
    ``selected`` indices are the selected position in each record), ``diff_movers``
    (the table's column), ``diff_movers_table``, ``diff_movers_source``,
    ``diff_movers_filter`` (its ``indices`` are the selected position's rows),
    ``diff_movers_header``, the scripts ``diff_select_coil``, ``diff_select_lens``,
    ``diff_select_prompt_a``, ``diff_select_prompt_b``, and the coil's (``diff_coil_*``)
    and the lens's (``diff_lens_*``).

    Args:
        comparison: the :class:`~coilvis.comparison.Comparison`.
        coil_options: keyword options of :func:`~coilvis.views.diff.coil.diff_coil`
            (``color``, ``layout``, ...).
        lens_options: keyword options of :func:`~coilvis.views.diff.lens.diff_lens`
            (``stat``, ``stride``, ...); ignored without a lens.
        title: the page title.
        whitespace: leading and trailing spaces in the prompts', the coil's and the
            lens's labels (an option of the coil or the lens wins for that view).

    Returns:
        A :class:`~coilvis.views.output.View`; ``coilvis.save(view, "diff.html")``.

    Raises:
        CoilvisTypeError: ``comparison`` is not a Comparison; options are not dicts.
        CoilvisValueError: unknown options; the coil's and the lens's errors.
    """
    c = check_comparison(comparison)
    title = check_title(title)
    label_whitespace(whitespace)
    coil_kw = {"whitespace": whitespace, **_options(coil_options, "coil_options", diff_coil)}
    lens_kw = {"whitespace": whitespace, **_options(lens_options, "lens_options", diff_lens_figure)}
    coil_view = diff_coil(c, **coil_kw)
    coil_view.doc.remove_root(coil_view.layout)  # it joins the page's document
    lens = diff_lens_figure(c, **lens_kw) if c.lens is not None else None
    side, table_filter, header = movers_parts(c, pos=-1)
    fig_a, prompt_a = prompt_panel(c, "a", whitespace=whitespace)
    fig_b, prompt_b = prompt_panel(c, "b", whitespace=whitespace)
    _link(c, coil_view.segments, lens, prompts=(prompt_a, prompt_b), table_filter=table_filter, header=header)
    summary = Div(text=summary_text(c), render_as_text=True, disable_math=True, name="diff_summary",
                  styles={"font-size": "14px", "font-weight": "bold"})  # fmt: skip
    views = [row(coil_view.layout, side, name="diff_main")] + ([lens.figure] if lens is not None else [])
    # nested columns: Bokeh aligns the frames of a column's figures, and the prompts' must not take the lens's
    root = column(summary, column(fig_a, fig_b, name="diff_prompts"), column(*views), name="diff_root")
    still = lens.still if lens is not None else []  # a PNG of the page shows the whole lens
    return View(root, title=title if title is not None else "coilvis \u00b7 diff", kind="diff_page", still=still)
