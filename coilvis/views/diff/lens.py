"""The diff lens: layer x compared position of a Comparison's lens, both runs' top tokens in every cell.

Each cell is coloured by a divergence between the two runs' decoded distributions at
that layer and position (or by the metric's change, b − a, centred on 0) and shows run
a's top token above run b's; cells whose top tokens differ are outlined. The lens's
own parts are reused (:mod:`coilvis.views.lens`: rows, cell drawing, the string table,
the tap that outlines a column) and take the ``diff_lens_`` prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    CustomJSTransform,
    FixedTicker,
    HoverTool,
    LinearAxis,
    LinearColorMapper,
    NoOverlap,
    PlainText,
    Range1d,
    TapTool,
    Title,
)
from bokeh.transform import transform

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisValueError, check_int
from coilvis.options import LN2, check_k
from coilvis.record import Record
from coilvis.tokens import display, label_whitespace
from coilvis.views._style import (
    FONT,
    ColorScale,
    color_bar,
    map_colors,
    plain_text,
    text_colors,
    tooltip_html,
)
from coilvis.views.diff.data import (
    EXACT_TEXT,
    LOWER_BOUND_TEXT,
    check_comparison,
    check_title,
    diff_scale,
    prefix_names,
    run_name,
)
from coilvis.views.lens.cells import Strings
from coilvis.views.lens.figure import (
    STILL_MAX_PX,
    add_tap,
    draw_cells,
    draw_outlines,
    heatmap_figure,
)
from coilvis.views.lens.grid import cell_size, select_rows
from coilvis.views.output import View

__all__ = ["STILL_MIN_CELL_PX", "DiffLensFigure", "cell_columns", "diff_lens", "diff_lens_figure", "still_settings"]

_FONT_PX = 10
_CHAR_PX = 6.2  # a label character's width at _FONT_PX
_MIN_FRAME_PX = 160
#: Narrowest cell of a still image (a PNG) of a whole comparison (its labels hidden).
STILL_MIN_CELL_PX = 8
#: A frame shorter than this gets its colour bar below (its title would not fit beside it).
_BAR_MIN_PX = 360
_ARROW = "\u2192"  # →

_LABELS_JS = """
const values = strings.data.label
return Array.from(xs, (i) => (i >= 0 ? values[i] : ""))
"""
_TEXT_HOVER_JS = """
if (value < 0) return "(none)"
const text = strings.data.full[value], id = strings.data.token_id[value]
return with_id ? text + "  (" + (id >= 0 ? "id " + id : "no id") + ")" : text
"""
_TOPK_HOVER_JS = """
const i = special_vars.index
const names = [], probs = [], ids = []
for (let j = 0; j < k; j++) {
  const row = source.data[prefix + "k" + j][i]
  names.push(row >= 0 ? strings.data.hover[row] : "?")
  ids.push(row >= 0 ? strings.data.token_id[row] : -1)
  probs.push((100 * source.data[prefix + "p" + j][i]).toFixed(1).padStart(5) + "%")
}
const width = Math.max(...names.map((n) => n.length))
return names.map((n, j) => n.padEnd(width) + "  " + probs[j] + "  id " + ids[j]).join("\\n")
"""
# both runs' labels show while a cell has room for two lines of them
_VISIBILITY_JS = """
const px_w = plot.inner_width / Math.max(x_range.end - x_range.start, 1e-9)
const px_h = plot.inner_height / Math.max(y_range.end - y_range.start, 1e-9)
const show = px_h >= min_h && px_w >= min_w
for (const r of texts) r.visible = show
"""


@dataclass
class DiffLensFigure:
    """The parts of a drawn diff lens that a page links to other views.

    Attributes:
        figure: the Bokeh figure (``diff_lens_figure``).
        cells: the cells' source (``diff_lens_cells``; see :func:`cell_columns`).
        strings: the texts the cells index (``diff_lens_strings``; columns as the lens's).
        highlight: the selected position(s) (``diff_lens_highlight``, column ``pos``).
        rows: (n_shown,) lens rows drawn, bottom to top.
        n_pos: compared positions (columns ``0 .. n_pos - 1``).
        scale: the colour scale.
        still: the settings of the still form a PNG shows (every row and position, or
            the last positions with the title saying which; see :func:`still_settings`).
    """

    figure: Any
    cells: ColumnDataSource
    strings: ColumnDataSource
    highlight: ColumnDataSource
    rows: np.ndarray
    n_pos: int
    scale: ColorScale
    still: list[tuple[Any, str, Any]] = field(default_factory=list)


def _check_lens(comparison: Comparison) -> None:
    """A comparison the diff lens can draw: it has a lens, and both records' lens statistics match it."""
    c = comparison
    if c.lens is None:
        raise CoilvisValueError(
            "comparison: has no lens; compare with lens=True (coilvis.compare(a, b, lens=True)), "
            "or compare Records run with lens=True"
        )
    for run, record in (("a", c.a), ("b", c.b)):
        if record.lens is None or record.lens.layer_names != c.lens.layer_names:
            raise CoilvisValueError(
                f"comparison: run {run}'s record holds no lens statistics for the lens's layers "
                f"{list(c.lens.layer_names)}; its top tokens cannot be shown"
            )


def _lens_topk(record: Record, rows: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_cells, k) top-k ids and probabilities of ``record``'s lens cells, row-major."""
    ls = record.lens
    assert ls is not None
    sub = (rows[:, None], positions[None, :])
    return ls.topk_ids[sub][:, :, :k].reshape(-1, k), ls.topk_probs[sub][:, :, :k].reshape(-1, k)


def cell_columns(comparison: Comparison, rows: np.ndarray, strings: Strings, *, hover_k: int) -> dict[str, Any]:
    """Every column of ``diff_lens_cells``, one row per cell (row-major: cell ``i`` is
    lens row ``rows[i // n_pos]`` at compared position ``i % n_pos``).

    Returns:
        ``pos`` (compared position), ``pos_a``, ``pos_b``, ``y`` (row on the figure),
        ``row`` (lens row); float32 ``kl_ab_bits``, ``kl_ba_bits``, ``js_bits``, ``tv``,
        ``metric_a``, ``metric_b``, ``metric_change`` (NaN without a metric); ``top_differs``
        (uint8: the top tokens differ); int32 rows of ``strings``: ``layer_ix``,
        ``token_a_ix``, ``token_b_ix`` (input tokens), ``a_top_ix``, ``b_top_ix`` and
        the top-k ``atk0..``/``btk0..`` with probabilities ``atp0..``/``btp0..``.
    """
    c = comparison
    lens = c.lens
    assert lens is not None
    n_shown, n_pos = rows.shape[0], c.n_pos
    sub = (rows[:, None], np.arange(n_pos)[None, :])
    nan = np.full((lens.n_rows, n_pos), np.nan, dtype=np.float32)
    metric_a = lens.metric_a if lens.metric_a is not None else nan
    metric_b = lens.metric_b if lens.metric_b is not None else nan
    f32 = np.float32
    data: dict[str, Any] = {
        "pos": np.tile(np.arange(n_pos, dtype=np.int32), n_shown),
        "pos_a": np.tile(c.positions_a.astype(np.int32), n_shown),
        "pos_b": np.tile(c.positions_b.astype(np.int32), n_shown),
        "y": np.repeat(np.arange(n_shown, dtype=f32), n_pos),
        "row": np.repeat(rows.astype(np.int32), n_pos),
        "layer_ix": np.repeat(np.array([strings.add(lens.layer_names[r]) for r in rows.tolist()], dtype=np.int32), n_pos),
        "kl_ab_bits": (lens.kl_ab[sub] / LN2).reshape(-1).astype(f32),
        "kl_ba_bits": (lens.kl_ba[sub] / LN2).reshape(-1).astype(f32),
        "js_bits": (lens.js[sub] / LN2).reshape(-1).astype(f32),
        "tv": lens.tv[sub].reshape(-1).astype(f32),
        "metric_a": metric_a[sub].reshape(-1).astype(f32),
        "metric_b": metric_b[sub].reshape(-1).astype(f32),
        "metric_change": (metric_b - metric_a)[sub].reshape(-1).astype(f32),
    }
    tops = []
    for run, record, positions in (("a", c.a, c.positions_a), ("b", c.b, c.positions_b)):
        ids, probs = _lens_topk(record, rows, positions, hover_k)
        tops.append(ids[:, 0])
        data[f"token_{run}_ix"] = np.tile(strings.tokens(record)[positions], n_shown)
        data[f"{run}_top_ix"] = strings.ids(record, ids[:, 0])
        for j in range(hover_k):
            data[f"{run}tk{j}"] = strings.ids(record, ids[:, j])
            data[f"{run}tp{j}"] = probs[:, j].astype(f32)
    data["top_differs"] = (tops[0] != tops[1]).astype(np.uint8)
    return data


def _frame(n_shown: int, n_pos: int, *, cell_w: int, cell_h: int, max_width_px: int, max_height_px: int,
           title: str) -> tuple[Any, int]:  # fmt: skip
    """The empty figure (``diff_lens_figure``): fixed-size cells, panning past the
    maximum size, opening on the last positions and the top rows (as the lens does).

    Returns:
        ``(figure, cell_h)``: the figure and the cells' height in pixels.
    """
    cell_h = max(cell_h, min(3 * cell_h, math.ceil(_MIN_FRAME_PX / n_shown)))
    vis_cols = min(n_pos, max(1, max_width_px // cell_w))
    vis_rows = min(n_shown, max(1, max_height_px // cell_h))
    x_range = Range1d(n_pos - 0.5 - vis_cols, n_pos - 0.5, bounds=(-0.5, n_pos - 0.5), name="diff_lens_x_range")
    y_range = Range1d(n_shown - 0.5 - vis_rows, n_shown - 0.5, bounds=(-0.5, n_shown - 0.5), name="diff_lens_y_range")
    fig = heatmap_figure("diff_lens_figure", x_range, y_range, frame_width=vis_cols * cell_w, frame_height=vis_rows * cell_h,
                         pan_x=vis_cols < n_pos, pan_y=vis_rows < n_shown, title=title)  # fmt: skip
    return fig, cell_h


def _draw_texts(fig: Any, cells: ColumnDataSource, strings: ColumnDataSource, scale: ColorScale, *,
                cell_w: int, cell_h: int, max_label_len: int) -> tuple[list[Any], float, float]:  # fmt: skip
    """Run a's top token in the upper half of each cell (``diff_lens_text_a``), run b's in
    the lower (``diff_lens_text_b``), black or white on the fill; hidden when cells are
    too small for two lines of them.

    Returns:
        ``(texts, min_w, min_h)``: both text renderers and the cell size in pixels they need.
    """
    light = np.array([c == "#ffffff" for c in text_colors(map_colors(cells.data["value"], scale))], dtype=np.uint8)
    cells.data["light"] = light
    color = transform("light", LinearColorMapper(palette=["#000000", "#ffffff"], low=0, high=1))
    texts = []
    for run, dy in (("a", 0.22), ("b", -0.22)):
        label = CustomJSTransform(args={"strings": strings}, v_func=_LABELS_JS)
        r = fig.text(
            x="pos", y=transform("y", CustomJSTransform(v_func=f"return Array.from(xs, (y) => y + ({dy}))")),
            text=transform(f"{run}_top_ix", label), source=cells, text_color=color, text_align="center",
            text_baseline="middle", text_font_size=f"{_FONT_PX - 1}px", text_font={"value": FONT},
            name=f"diff_lens_text_{run}",
        )  # fmt: skip
        r.selection_glyph, r.nonselection_glyph = None, None
        texts.append(r)
    min_w, min_h = max_label_len * _CHAR_PX * 0.9 + 4.0, 2 * _FONT_PX + 2.0
    for r in texts:
        r.visible = cell_w >= min_w and cell_h >= min_h
    visibility = CustomJS(
        args={"plot": fig, "x_range": fig.x_range, "y_range": fig.y_range, "texts": texts, "min_w": min_w, "min_h": min_h},
        code=_VISIBILITY_JS,
    )
    for rng in (fig.x_range, fig.y_range):
        rng.js_on_change("start", visibility)
        rng.js_on_change("end", visibility)
    return texts, min_w, min_h


def still_settings(fig: Any, texts: list[Any], *, n_rows: int, n_pos: int, cell_w: int, cell_h: int, min_w: float,
                   min_h: float, max_width_px: int, max_height_px: int) -> list[tuple[Any, str, Any]]:  # fmt: skip
    """The diff lens's still form, the one a PNG shows (see :meth:`coilvis.views.output.View.still`).

    As the lens's (:func:`coilvis.views.lens.figure.still_settings`): an image cannot pan,
    so its frame widens to every position (up to :data:`~coilvis.views.lens.figure.STILL_MAX_PX`,
    or ``max_width_px`` when larger), then its cells narrow down to
    :data:`STILL_MIN_CELL_PX`; a comparison longer still shows its last positions and
    the title says which. Rows narrow to fit when they must; the labels hide when the
    cells get too small for them.

    Returns:
        ``(model, property, value)`` settings.
    """
    budget = max(max_width_px, STILL_MAX_PX)
    if n_pos * cell_w <= budget:
        cols, w = n_pos, float(cell_w)
    elif budget / n_pos >= STILL_MIN_CELL_PX:
        cols, w = n_pos, budget / n_pos
    else:
        cols, w = budget // STILL_MIN_CELL_PX, float(STILL_MIN_CELL_PX)
    height_px = max(max_height_px, STILL_MAX_PX)
    h = float(cell_h) if n_rows * cell_h <= height_px else height_px / n_rows
    settings: list[tuple[Any, str, Any]] = [
        (fig.x_range, "start", n_pos - 0.5 - cols),
        (fig.x_range, "end", n_pos - 0.5),
        (fig.y_range, "start", -0.5),
        (fig.y_range, "end", n_rows - 0.5),
        (fig, "frame_width", round(cols * w)),
        (fig, "frame_height", round(n_rows * h)),
        *((text, "visible", h >= min_h and w >= min_w) for text in texts),
    ]
    if cols < n_pos:
        title = fig.title.text.text if isinstance(fig.title.text, PlainText) else fig.title.text
        settings.append((fig.title, "text", plain_text(f"{title} \u00b7 positions {n_pos - cols}\u2013{n_pos - 1} of {n_pos}")))
    return settings


def _add_color_bar(fig: Any, mapper: Any, scale: ColorScale) -> None:
    """The colour bar (``diff_lens_color_bar``): on the right, or below when the frame is
    too short for its title."""
    bar = color_bar(mapper, scale, name="lens_color_bar")
    if fig.frame_height >= _BAR_MIN_PX:
        fig.add_layout(bar, "right")
        return
    bar.orientation, bar.width, bar.height = "horizontal", "auto", 12
    fig.add_layout(bar, "below")


def _add_axes(fig: Any, comparison: Comparison, rows: np.ndarray, *, max_label_len: int, whitespace: str) -> None:
    """Input tokens below (``diff_lens_input_axis``; ``a→b`` where the prompts differ) and
    layer names on the left (``diff_lens_layer_axis``)."""
    c = comparison
    mode = label_whitespace(whitespace)
    cut = max_label_len + 4

    def label(i: int) -> str:
        a = display(c.a.tokens[int(c.positions_a[i])], max_len=cut, whitespace=mode)
        if not c.differs[i]:
            return a
        return f"{a}{_ARROW}{display(c.b.tokens[int(c.positions_b[i])], max_len=cut, whitespace=mode)}"

    bottom = LinearAxis(
        ticker=FixedTicker(ticks=list(range(c.n_pos)), minor_ticks=[]),
        major_label_overrides={i: plain_text(label(i)) for i in range(c.n_pos)},
        major_label_orientation=math.pi / 2, major_label_policy=NoOverlap(),
        major_label_text_font_size=f"{_FONT_PX + 1}px", axis_label="input token (a\u2192b where the prompts differ)",
        name="diff_lens_input_axis",
    )  # fmt: skip
    assert c.lens is not None
    left = LinearAxis(
        ticker=FixedTicker(ticks=list(range(rows.shape[0])), minor_ticks=[]),
        major_label_overrides={i: plain_text(display(c.lens.layer_names[r])) for i, r in enumerate(rows.tolist())},
        major_label_policy=NoOverlap(), axis_label="layer", name="diff_lens_layer_axis",
    )  # fmt: skip
    fig.add_layout(bottom, "below")
    fig.add_layout(left, "left")


def _add_hover(fig: Any, renderer: Any, cells: ColumnDataSource, strings: ColumnDataSource, comparison: Comparison,
               *, hover_k: int) -> None:  # fmt: skip
    """The cells' hover (``diff_lens_hover``) and tap (``diff_lens_tap``): fixed templates
    of ``@field`` references whose scripts only look strings up by index."""
    c = comparison
    assert c.lens is not None
    token = CustomJSHover(args={"strings": strings, "with_id": True}, code=_TEXT_HOVER_JS)
    formatters: dict[str, Any] = {f"@{col}": token for col in ("token_a_ix", "token_b_ix", "a_top_ix", "b_top_ix")}
    formatters["@layer_ix"] = CustomJSHover(args={"strings": strings, "with_id": False}, code=_TEXT_HOVER_JS)
    for run in ("a", "b"):
        formatters[f"@{run}tk0"] = CustomJSHover(
            args={"strings": strings, "source": cells, "k": hover_k, "prefix": f"{run}t"}, code=_TOPK_HOVER_JS
        )
    rows = [
        ("layer", "@layer_ix{custom}"),
        ("position", "@pos  (a: @pos_a, b: @pos_b)"),
        ("input, a", "@token_a_ix{custom}"),
        ("input, b", "@token_b_ix{custom}"),
        ("top token, a", "@a_top_ix{custom}"),
        ("top token, b", "@b_top_ix{custom}"),
        ("KL(a \u2016 b)", "@kl_ab_bits{0.000} bits"),
        ("KL(b \u2016 a)", "@kl_ba_bits{0.000} bits"),
        ("JS", "@js_bits{0.000} bits"),
        ("TV", "@tv{0.000}"),
        ("values", EXACT_TEXT if c.lens.exact else LOWER_BOUND_TEXT),
    ]
    if c.lens.metric_a is not None:
        rows += [("metric, a", "@metric_a{0.000}"), ("metric, b", "@metric_b{0.000}"), ("metric change", "@metric_change{+0.000}")]
    rows += [(f"top {hover_k}, run a", "pre:@atk0{custom}"), (f"top {hover_k}, run b", "pre:@btk0{custom}")]
    fig.add_tools(
        HoverTool(renderers=[renderer], tooltips=tooltip_html(rows), formatters=formatters, name="diff_lens_hover"),
        TapTool(renderers=[renderer], name="diff_lens_tap"),
    )


def _notes(fig: Any, comparison: Comparison) -> None:
    """The lines under the figure: what a cell shows, and when its values are lower bounds."""
    c = comparison
    notes = [
        (
            f"Each cell: the top token of run {run_name(c, 'a')} above that of run {run_name(c, 'b')}; "
            "outlined where they differ. Tap a cell to outline its column."
        )
    ]
    if c.lens is not None and not c.lens.exact:
        notes.append("Divergences are lower bounds from the runs' top-k (the records kept no full distributions).")
    for text in notes:
        fig.add_layout(Title(text=plain_text(text), text_font_size="11px", text_font_style="normal",
                             text_color="#555555", standoff=2), "below")  # fmt: skip


def diff_lens_figure(
    comparison: Comparison,
    *,
    stat: str = "js",
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
    cell_px: int | tuple[int, int] = (64, 30),
    max_label_len: int = 8,
    hover_k: int = 5,
    max_width_px: int = 1400,
    max_height_px: int = 900,
    palette: Any = None,
    title: str | None = None,
    whitespace: str = "subtle",
) -> DiffLensFigure:
    """The diff lens as Bokeh models (see :func:`diff_lens`, which wraps it in a View)."""
    c = check_comparison(comparison)
    _check_lens(c)
    assert c.lens is not None
    max_label_len = check_int("max_label_len", max_label_len, minimum=1)
    max_width_px = check_int("max_width_px", max_width_px, minimum=50)
    max_height_px = check_int("max_height_px", max_height_px, minimum=50)
    available = min(c.a.lens.topk_ids.shape[2], c.b.lens.topk_ids.shape[2])  # type: ignore[union-attr]
    hover_k = check_k(hover_k, available=available, name="hover_k")
    cell_w, cell_h = cell_size(cell_px)
    title = check_title(title)
    rows = select_rows(c.lens.layer_names, layers=layers, stride=stride)
    strings = Strings()
    data = cell_columns(c, rows, strings, hover_k=hover_k)
    scale = diff_scale("diff_lens", stat, c, lambda col: data[col], lower_bound=None if c.lens.exact else "lower bound",
                       palette=palette)  # fmt: skip
    data["value"] = data[scale.column]
    cells = ColumnDataSource(data, name="diff_lens_cells")
    string_source = strings.source(max_label_len=max_label_len, whitespace=whitespace)
    highlight = ColumnDataSource(data={"pos": []}, name="diff_lens_highlight")
    if title is None:
        title = f"logit lens diff \u00b7 {run_name(c, 'a')} vs {run_name(c, 'b')} \u00b7 colour: {stat}"
    fig, cell_h = _frame(rows.shape[0], c.n_pos, cell_w=cell_w, cell_h=cell_h, max_width_px=max_width_px,
                         max_height_px=max_height_px, title=title)  # fmt: skip
    renderer, mapper = draw_cells(fig, cells, scale)
    texts, min_w, min_h = _draw_texts(fig, cells, string_source, scale, cell_w=cell_w, cell_h=cell_h,
                                      max_label_len=max_label_len)  # fmt: skip
    draw_outlines(fig, cells, highlight, match=data["top_differs"].astype(bool), n_shown=rows.shape[0])
    _add_axes(fig, c, rows, max_label_len=max_label_len, whitespace=whitespace)
    _add_color_bar(fig, mapper, scale)
    _add_hover(fig, renderer, cells, string_source, c, hover_k=hover_k)
    add_tap(cells, highlight)
    _notes(fig, c)
    prefix_names([fig], "lens_", "diff_lens_")
    still = still_settings(fig, texts, n_rows=rows.shape[0], n_pos=c.n_pos, cell_w=cell_w, cell_h=cell_h, min_w=min_w,
                           min_h=min_h, max_width_px=max_width_px, max_height_px=max_height_px)  # fmt: skip
    return DiffLensFigure(figure=fig, cells=cells, strings=string_source, highlight=highlight, rows=rows,
                          n_pos=c.n_pos, scale=scale, still=still)  # fmt: skip


def diff_lens(
    comparison: Comparison,
    *,
    stat: str = "js",
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
    cell_px: int | tuple[int, int] = (64, 30),
    max_label_len: int = 8,
    hover_k: int = 5,
    max_width_px: int = 1400,
    max_height_px: int = 900,
    palette: Any = None,
    title: str | None = None,
    whitespace: str = "subtle",
) -> View:
    """Draw a Comparison through the logit lens: layers x compared positions, both runs' top tokens in each cell.

    Rows are the decoded layers (the embedding at the bottom, the models' output at the
    top); column ``i`` is compared position ``i``. A cell shows run a's top token above
    run b's (cut to ``max_label_len``; exact strings, ids and both top-k lists in the
    hover) and is outlined where they differ; it is coloured by ``stat``. The lens opens
    on the last positions and pans (drag) when it is larger than ``max_width_px`` x
    ``max_height_px``; tapping a cell outlines its column.

    Args:
        comparison: a Comparison with a lens (``coilvis.compare(a, b, lens=True)``).
        stat: ``"js"`` (the default), ``"kl_ab"``, ``"kl_ba"``, ``"tv"`` (divergences
            between the runs' decoded distributions: bits, TV as is; lower bounds,
            and labelled so, when ``comparison.lens.exact`` is False) or ``"metric"``
            (the metric's change b − a per cell, logits, red = fell, blue = rose). The
            rows ``("diff_lens", ...)`` of :data:`coilvis.options.STATS`.
        layers: lens rows to draw (indices or layer names; first and last always).
        stride: draw every ``stride``-th row, plus the last.
        cell_px: cell size in pixels, ``(width, height)`` or one int.
        max_label_len: characters of a top token printed in a cell.
        hover_k: top tokens of each run listed in the hover.
        max_width_px: widest the heatmap's frame grows before it pans.
        max_height_px: tallest the heatmap's frame grows before it pans.
        palette: a palette name or ``"#rrggbb"`` colours.
        title: the figure's title.
        whitespace: leading and trailing spaces in the cells' labels and the axis:
            ``"subtle"``, ``"markers"`` or ``"plain"``; the hover is exact.

    Returns:
        A :class:`~coilvis.views.output.View`.

    Raises:
        CoilvisTypeError: ``comparison`` is not a Comparison; an option of the wrong type.
        CoilvisValueError: the comparison has no lens (the message names ``comparison``),
            an unknown ``stat``, ``"metric"`` without a metric, bad rows or sizes.
    """
    parts = diff_lens_figure(
        comparison, stat=stat, layers=layers, stride=stride, cell_px=cell_px, max_label_len=max_label_len,
        hover_k=hover_k, max_width_px=max_width_px, max_height_px=max_height_px, palette=palette, title=title,
        whitespace=whitespace,
    )  # fmt: skip
    return View(parts.figure, title="coilvis \u00b7 diff lens" if title is None else title, kind="diff_lens",
                still=parts.still)  # fmt: skip
