"""The lens's Bokeh figure: frame and ranges, cells and their labels, outlines, axes, hover, tap, zoom."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh.models import (
    CDSView,
    PlainText,
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    CustomJSTransform,
    FixedTicker,
    GlyphRenderer,
    HoverTool,
    IndexFilter,
    LabelSet,
    LinearAxis,
    LinearColorMapper,
    NoOverlap,
    Range1d,
    TapTool,
)
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis.record import Record
from coilvis.tokens import display, label_whitespace
from coilvis.views._style import FONT, ColorScale, color_mapper, plain_text, tooltip_html
from coilvis.views.lens.cells import SHORT_LEN, LensGrid

__all__ = [
    "STILL_MAX_PX",
    "STILL_MIN_CELL_PX",
    "CellTexts",
    "lens_frame",
    "heatmap_figure",
    "draw_cells",
    "draw_texts",
    "draw_outlines",
    "add_axes",
    "add_hover",
    "add_tap",
    "add_zoom_labels",
    "still_settings",
]

_FONT_PX = 10
#: Average width of one label character at ``_FONT_PX``, for deciding what fits a cell.
_CHAR_PX = 6.2
#: Smallest frame height a lens of few rows is stretched to, in pixels.
_MIN_FRAME_PX = 160
_CHECK = "\u2713"  # ✓

# JavaScript that only moves data: indices in, strings of the "lens_strings" source out.
# What the hover shows passes through Bokeh's escaping (never the safe format).
_LABELS_JS = """
const values = strings.data[column]
return Array.from(xs, (i) => (i >= 0 ? values[i] : ""))
"""
# A token shows its exact label and its id (see coilvis.tokens.display); a layer its name.
_TEXT_HOVER_JS = """
if (value < 0) return missing
const text = strings.data.full[value], id = strings.data.token_id[value]
return with_id ? text + "  (" + (id >= 0 ? "id " + id : "no id") + ")" : text
"""
_TOPK_HOVER_JS = """
const i = special_vars.index
const names = [], probs = [], ids = []
for (let j = 0; j < k; j++) {
  const row = source.data[prefix + "k" + j][i]
  names.push(strings.data.hover[row])
  ids.push(strings.data.token_id[row])
  probs.push((100 * source.data[prefix + "p" + j][i]).toFixed(1).padStart(5) + "%")
}
const width = Math.max(...names.map((n) => n.length))
return names.map((n, j) => n.padEnd(width) + "  " + probs[j] + "  id " + ids[j]).join("\\n")
"""

_VISIBILITY_JS = """
const px_w = plot.inner_width / Math.max(x_range.end - x_range.start, 1e-9)
const px_h = plot.inner_height / Math.max(y_range.end - y_range.start, 1e-9)
const tall = px_h >= min_h
long_text.visible = tall && px_w >= long_w
short_text.visible = tall && !long_text.visible && px_w >= short_w
"""

_TAP_JS = """
const i = source.selected.indices
if (i.length == 0) return
const pos = source.data.pos[i[0]]
highlight.data = {pos: [pos]}
"""


def _label_px(n_chars: int) -> float:
    """Width a label of ``n_chars`` characters needs, in pixels."""
    return n_chars * _CHAR_PX + 4.0


#: Widest and tallest a lens's frame grows in a still image (a PNG), which cannot pan
#: (or its ``max_width_px`` / ``max_height_px`` when larger).
STILL_MAX_PX = 4000
#: Narrowest cell of a still image of a whole prompt: room for the short label.
STILL_MIN_CELL_PX = math.ceil(_label_px(SHORT_LEN))


def lens_frame(
    record: Record,
    grid: LensGrid,
    *,
    cell_w: int,
    cell_h: int,
    max_width_px: int,
    max_height_px: int,
    title: str | None,
    compare: bool,
    fit: bool = False,
) -> tuple[Any, float, int]:
    """The empty figure (``lens_figure``): cells of a fixed size, panning past ``max_width_px``
    x ``max_height_px``; a lens of few rows gets taller cells (its colour bar stays readable).

    The view opens on the last positions drawn (the prediction a prompt is for), and on
    every position when they fit; panning reaches back to the first. With ``fit`` (a
    window the caller chose), every drawn position is in view: cells narrow to fit
    ``max_width_px`` when they must.

    Returns:
        ``(figure, cell_w, cell_h)``: the figure and the cells' width and height in pixels
        as first shown.
    """
    n_shown, n_pos = grid.rows.shape[0], grid.positions.shape[0]
    lo, hi = int(grid.positions[0]), int(grid.positions[-1]) + 1
    cell_h = max(cell_h, min(3 * cell_h, math.ceil(_MIN_FRAME_PX / n_shown)))
    vis_cols = min(n_pos, max(1, max_width_px // cell_w))
    frame_w = vis_cols * cell_w
    shown_w: float = cell_w
    if fit and vis_cols < n_pos:
        vis_cols, frame_w, shown_w = n_pos, max_width_px, max_width_px / n_pos
    vis_rows = min(n_shown, max(1, max_height_px // cell_h))
    x_range = Range1d(hi - 0.5 - vis_cols, hi - 0.5, bounds=(lo - 0.5, hi - 0.5), name="lens_x_range")
    y_range = Range1d(n_shown - 0.5 - vis_rows, n_shown - 0.5, bounds=(-0.5, n_shown - 0.5), name="lens_y_range")
    if title is None:
        what = "logit lens" if not compare else "logit lens comparison"
        # the model name comes from the record: shown as token text is
        title = f"{what} \u00b7 {display(record.model_name, whitespace='none')}" if record.model_name else what
    fig = heatmap_figure("lens_figure", x_range, y_range, frame_width=frame_w, frame_height=vis_rows * cell_h,
                         pan_x=vis_cols < n_pos, pan_y=vis_rows < n_shown, title=title)  # fmt: skip
    return fig, shown_w, cell_h


def heatmap_figure(name: str, x_range: Range1d, y_range: Range1d, *, frame_width: int, frame_height: int, pan_x: bool,
                   pan_y: bool, title: str) -> Any:  # fmt: skip
    """An empty heatmap figure of the lens's look (no grid, axes or outline; the title as
    plain text), dragging along the axes that have more than the frame shows (``pan_x``,
    ``pan_y``); the lens and the diff lens share it."""
    fig = figure(
        name=name,
        x_range=x_range,
        y_range=y_range,
        frame_width=frame_width,
        frame_height=frame_height,
        tools="xpan,ypan,pan,xwheel_zoom,wheel_zoom,reset,save",
        active_drag="pan" if pan_x and pan_y else ("ypan" if pan_y else "xpan"),
        active_scroll=None,
        toolbar_location="above",
        x_axis_location=None,
        y_axis_location=None,
        min_border_left=10,
        output_backend="canvas",
    )
    fig.grid.visible = False
    fig.outline_line_color = None
    fig.background_fill_color = "#ffffff"
    fig.title.text = plain_text(title)
    fig.title.text_font = FONT
    return fig


def draw_cells(fig: Any, cells: ColumnDataSource, scale: ColorScale) -> tuple[GlyphRenderer, Any]:
    """The cells (``lens_cell_renderer``), filled by ``scale``; a tap selects one without
    dimming the rest.

    Returns:
        ``(renderer, mapper)``: the cells' renderer and the colour mapper (``lens_color_mapper``).
    """
    mapper = color_mapper(scale, name="lens_color_mapper")
    renderer = fig.rect(
        x="pos",
        y="y",
        width=1.0,
        height=1.0,
        source=cells,
        fill_color={"field": "value", "transform": mapper},
        line_color="#ffffff",
        line_width=0.5,
        name="lens_cell_renderer",
    )
    # a tap selects a cell; selection must not dim the rest of the heatmap
    renderer.nonselection_glyph = None
    renderer.selection_glyph = None
    return renderer, mapper


@dataclass
class CellTexts:
    """The cells' top-token labels: long (``lens_text``) and short (``lens_text_short``),
    at most one of them visible, and the cell sizes in pixels each needs."""

    long_text: LabelSet
    short_text: LabelSet
    long_w: float
    short_w: float
    min_h: float


def draw_texts(
    fig: Any, cells: ColumnDataSource, strings: ColumnDataSource, *, cell_w: float, cell_h: int, max_label_len: int
) -> CellTexts:
    """Each cell's top token, cut to ``max_label_len`` characters, or to 3 when that does
    not fit; none when neither fits. White on dark cells.

    The labels are label sets drawn at the cells' level (over the cells, under the
    outlines): a browser measures a label set's texts once, when it draws them, where a
    text glyph measures every text for each of its five variants (selected, hovered,
    ...) whenever the data change, shown or not: a lens of 2,000 cells fills about
    five times faster."""
    text_kw: dict[str, Any] = {
        "x": "pos",
        "y": "y",
        "source": cells,
        "level": "glyph",
        "text_color": transform("light", LinearColorMapper(palette=["#000000", "#ffffff"], low=0, high=1)),
        "text_align": "center",
        "text_baseline": "middle",
        "text_font_size": f"{_FONT_PX}px",
        "text_font": {"value": FONT},
    }
    long_text = LabelSet(
        text=transform("top_ix", CustomJSTransform(args={"strings": strings, "column": "label"}, v_func=_LABELS_JS)),
        name="lens_text",
        **text_kw,
    )
    short_text = LabelSet(
        text=transform("top_ix", CustomJSTransform(args={"strings": strings, "column": "short"}, v_func=_LABELS_JS)),
        name="lens_text_short",
        **text_kw,
    )
    texts = CellTexts(long_text, short_text, _label_px(max_label_len), _label_px(SHORT_LEN), _FONT_PX + 1.0)
    long_text.visible = cell_h >= texts.min_h and cell_w >= texts.long_w
    short_text.visible = cell_h >= texts.min_h and not long_text.visible and cell_w >= texts.short_w
    fig.add_layout(long_text)
    fig.add_layout(short_text)
    return texts


def draw_outlines(fig: Any, cells: ColumnDataSource, highlight: ColumnDataSource, *, match: np.ndarray, n_shown: int) -> None:
    """Outline the cells whose top token is the actual next token (``lens_match_renderer``)
    and the selected column (``lens_highlight_renderer``, positions in ``highlight``)."""
    fig.rect(
        x="pos",
        y="y",
        width=0.9,
        height=0.84,
        source=cells,
        view=CDSView(filter=IndexFilter(indices=np.nonzero(match)[0].tolist(), name="lens_match_filter")),
        fill_color=None,
        line_color="#e8175d",
        line_width=1.5,
        name="lens_match_renderer",
    )
    fig.rect(
        x="pos",
        y=(n_shown - 1) / 2.0,
        width=1.0,
        height=float(n_shown),
        source=highlight,
        fill_color=None,
        line_color="#000000",
        line_width=2.5,
        name="lens_highlight_renderer",
    )


def _token_axis(ticks: list[int], labels: dict[int, str], *, title: str, name: str) -> LinearAxis:
    return LinearAxis(
        ticker=FixedTicker(ticks=ticks, minor_ticks=[]),
        major_label_overrides={p: plain_text(label) for p, label in labels.items()},
        major_label_orientation=math.pi / 2,
        major_label_policy=NoOverlap(),
        major_label_text_font_size=f"{_FONT_PX + 1}px",
        axis_label=plain_text(title),
        name=name,
    )


def add_axes(fig: Any, record: Record, grid: LensGrid, *, max_label_len: int, whitespace: str = "markers") -> None:
    """The input tokens below (``lens_input_axis``), the actual next tokens above
    (``lens_next_axis``; ``✓`` where the model's final prediction was right) and the
    layer names on the left (``lens_layer_axis``). Token labels show leading and
    trailing spaces as the view's ``whitespace=`` option says."""
    mode = label_whitespace(whitespace)
    ticks = grid.positions.tolist()
    next_ok = np.zeros(record.seq_len, dtype=bool)
    next_ok[:-1] = record.topk_ids[:-1, 0] == record.token_ids[1:]

    def next_label(p: int) -> str:
        if p + 1 >= record.seq_len:
            return ""
        label = display(record.tokens[p + 1], max_len=max_label_len + 4, whitespace=mode)
        return f"{_CHECK} {label}" if next_ok[p] else label

    bottom = _token_axis(
        ticks,
        {p: display(record.tokens[p], max_len=max_label_len + 4, whitespace=mode) for p in ticks},
        title="input token",
        name="lens_input_axis",
    )
    top = _token_axis(
        ticks,
        {p: next_label(p) for p in ticks},
        title=f"actual next token ({_CHECK} = the model's top prediction)",
        name="lens_next_axis",
    )
    assert record.lens is not None
    left = LinearAxis(
        ticker=FixedTicker(ticks=list(range(grid.rows.shape[0])), minor_ticks=[]),
        major_label_overrides={
            i: plain_text(display(record.lens.layer_names[r])) for i, r in enumerate(grid.rows.tolist())
        },
        major_label_policy=NoOverlap(),
        axis_label=plain_text("layer"),
        name="lens_layer_axis",
    )
    fig.add_layout(bottom, "below")
    fig.add_layout(top, "above")
    fig.add_layout(left, "left")


def add_hover(
    fig: Any,
    renderer: GlyphRenderer,
    cells: ColumnDataSource,
    strings: ColumnDataSource,
    scale: ColorScale,
    *,
    hover_k: int,
    compare_k: int | None,
) -> None:
    """The cells' hover (``lens_hover``) and tap (``lens_tap``) tools.

    The hover shows the layer, the position, the input, next and top tokens (each with
    its id), the top-k (of both records with ``compare_k``) and the statistics: fixed
    templates of ``@field`` references, whose scripts only look strings up by index.
    """
    text_hover = CustomJSHover(args={"strings": strings, "missing": "(end of prompt)", "with_id": True}, code=_TEXT_HOVER_JS)
    layer_hover = CustomJSHover(args={"strings": strings, "missing": "", "with_id": False}, code=_TEXT_HOVER_JS)
    formatters: dict[str, Any] = {f"@{c}": text_hover for c in ("token_ix", "next_ix", "top_ix")}
    formatters["@layer_ix"] = layer_hover
    formatters["@tk0"] = CustomJSHover(
        args={"strings": strings, "source": cells, "k": hover_k, "prefix": "t"}, code=_TOPK_HOVER_JS
    )
    rows_html: list[tuple[str, str]] = [
        ("layer", "@layer_ix{custom}"),
        ("position", "@pos"),
        ("input", "@token_ix{custom}"),
        ("next", "@next_ix{custom}"),
        ("top token", "@top_ix{custom}"),
    ]
    if compare_k is not None:
        formatters["@compare_token_ix"] = text_hover
        formatters["@ctk0"] = CustomJSHover(
            args={"strings": strings, "source": cells, "k": compare_k, "prefix": "ct"}, code=_TOPK_HOVER_JS
        )
        rows_html += [
            ("input (compare)", "@compare_token_ix{custom}"),
            (scale.title, "@value{0.000}"),
            ("top-k (record)", "pre:@tk0{custom}"),
            ("top-k (compare)", "pre:@ctk0{custom}"),
        ]
    else:
        rows_html.append(("top-k", "pre:@tk0{custom}"))
    rows_html += [
        ("entropy", "@entropy_bits{0.00} bits"),
        ("KL(final \u2016 layer)", "@kl_bits{0.000} bits"),
        ("p(actual next)", "@next_prob{0.0%}"),
        ("rank of final top token", "@final_rank"),
    ]
    fig.add_tools(
        HoverTool(renderers=[renderer], tooltips=tooltip_html(rows_html), formatters=formatters, name="lens_hover"),
        TapTool(renderers=[renderer], name="lens_tap"),
    )


def add_tap(cells: ColumnDataSource, highlight: ColumnDataSource) -> None:
    """A tapped cell outlines its column (its position goes to ``highlight``)."""
    cells.selected.js_on_change("indices", CustomJS(args={"source": cells, "highlight": highlight}, code=_TAP_JS))


def add_zoom_labels(fig: Any, texts: CellTexts) -> None:
    """Zooming shortens the cells' labels, then hides them, when cells get too small."""
    visibility = CustomJS(
        args={
            "plot": fig,
            "x_range": fig.x_range,
            "y_range": fig.y_range,
            "long_text": texts.long_text,
            "short_text": texts.short_text,
            "long_w": texts.long_w,
            "short_w": texts.short_w,
            "min_h": texts.min_h,
        },
        code=_VISIBILITY_JS,
    )
    for rng in (fig.x_range, fig.y_range):
        rng.js_on_change("start", visibility)
        rng.js_on_change("end", visibility)


def _still_columns(n_pos: int, cell_w: int, budget_px: int, *, fit: bool) -> tuple[int, float]:
    """``(columns, cell width)`` of a still image: every position at the cell width when
    it fits ``budget_px``, else narrower cells down to :data:`STILL_MIN_CELL_PX` (a
    window the caller chose: any width), else the last positions at that width."""
    if n_pos * cell_w <= budget_px:
        return n_pos, float(cell_w)
    if fit or budget_px / n_pos >= STILL_MIN_CELL_PX:
        return n_pos, budget_px / n_pos
    cols = budget_px // STILL_MIN_CELL_PX
    return cols, float(STILL_MIN_CELL_PX)


def still_settings(
    fig: Any,
    texts: CellTexts,
    grid: LensGrid,
    *,
    seq_len: int,
    cell_w: int,
    cell_h: int,
    max_width_px: int,
    max_height_px: int,
    fit: bool,
) -> list[tuple[Any, str, Any]]:
    """The lens's still form, the one a PNG shows (see :meth:`coilvis.views.output.View.still`).

    An image cannot pan, so it shows every row and every position drawn: the frame
    widens (up to :data:`STILL_MAX_PX`, or ``max_width_px`` when larger), then its cells
    narrow (down to :data:`STILL_MIN_CELL_PX`; a ``start``/``end`` window the caller
    chose is always shown whole). A prompt too long even then shows its last positions,
    and the title says which: "… · positions 339–511 of 512". Rows narrow to fit
    :data:`STILL_MAX_PX` (or ``max_height_px``) when they must. The cells' labels
    shorten or hide as the cells' new size requires.

    Returns:
        ``(model, property, value)`` settings: the ranges, the frame's size, the labels'
        visibility and, when positions are left out, the title.
    """
    n_rows, n_pos = grid.rows.shape[0], grid.positions.shape[0]
    hi = int(grid.positions[-1]) + 1
    cols, w = _still_columns(n_pos, cell_w, max(max_width_px, STILL_MAX_PX), fit=fit)
    height_px = max(max_height_px, STILL_MAX_PX)
    h = float(cell_h) if n_rows * cell_h <= height_px else height_px / n_rows
    tall = h >= texts.min_h
    settings: list[tuple[Any, str, Any]] = [
        (fig.x_range, "start", hi - 0.5 - cols),
        (fig.x_range, "end", hi - 0.5),
        (fig.y_range, "start", -0.5),
        (fig.y_range, "end", n_rows - 0.5),
        (fig, "frame_width", int(round(cols * w))),
        (fig, "frame_height", int(round(n_rows * h))),
        (texts.long_text, "visible", tall and w >= texts.long_w),
        (texts.short_text, "visible", tall and w < texts.long_w and w >= texts.short_w),
    ]
    if cols < n_pos:
        title = fig.title.text.text if isinstance(fig.title.text, PlainText) else fig.title.text
        shown = f"positions {hi - cols}\u2013{hi - 1} of {seq_len}"
        settings.append((fig.title, "text", plain_text(f"{title} \u00b7 {shown}")))
    return settings
