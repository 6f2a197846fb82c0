"""The coil's Bokeh figure: frame, band, segments, labels, start/end marks, hover and tap, colour bar, notes."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
from bokeh.core.properties import value
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    CustomJSHover,
    GlyphRenderer,
    HoverTool,
    PanTool,
    Range1d,
    ResetTool,
    SaveTool,
    TapTool,
    Title,
    WheelZoomTool,
)
from bokeh.plotting import figure
from bokeh.transform import transform

from coilvis import geometry
from coilvis.record import Record
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.coil.frame import Frame
from coilvis.views.coil.groups import band_rows, sentence_marks

__all__ = [
    "START_MARK",
    "END_MARK",
    "coil_figure",
    "draw_band",
    "segment_style",
    "draw_segments",
    "draw_hover_outline",
    "draw_labels",
    "marker_data",
    "draw_markers",
    "add_hover",
    "hover_callback",
    "add_notes",
]

START_MARK = "▶ start"
END_MARK = "end ■"
_MARK_COLOR = "#1a1a1a"

# The tooltip's text for a position (value): format "token" gives the input token,
# "next" the actual next token with its probability, rank and surprisal, "topk" the
# top-k next tokens, one a line. Every token shows its label and its id (labels are
# exact, ids tell apart what one text can stand for: see coilvis.tokens.display).
# Labels come from data sources and the tooltip escapes the result. For a served model's
# Record (served_k > 0, its top-k), "next" marks a token outside the top-k sent, and
# "topk" says when the server sent no distribution for a position.
_TOOLTIP_JS = """
const d = segments.data, labels = vocab.data.label, vocab_ids = vocab.data.token_id, i = value
const pct = (p) => !Number.isFinite(p) ? "?"
  : p >= 9.995 ? p.toFixed(1) + "%" : p >= 0.0995 ? p.toFixed(2) + "%" : p.toPrecision(2) + "%"
const named = (label, id) => label + "  (" + (id >= 0 ? "id " + id : "no id") + ")"
if (format === "token") return named(d.label[i], d.token_id[i])
if (format === "next") {
  if (i + 1 >= d.pos.length) return "unknown (end of the prompt)"
  const next = named(d.label[i + 1], d.token_id[i + 1]), p = d.prob_pct[i]
  if (!Number.isFinite(p)) return next + "   (probability unknown)"
  const r = d.rank[i], bits = d.surprisal_bits[i].toFixed(2)
  const rank = Number.isFinite(r) ? "rank " + r.toLocaleString("en-US") : "rank unknown"
  const outside = served_k > 0 && !(r <= served_k) ? "   ⚠ outside the top " + served_k + " the server sent" : ""
  return next + "   " + pct(p) + " · " + rank + " · " + bits + " bits" + outside
}
const ids = d.topk_vocab, probs = d.topk_pct, k = ids.shape[1], target = d.next_vocab[i]
if (served_k > 0 && !Number.isFinite(probs[i * k])) return "not sent by the server"
let width = 0
for (let j = 0; j < k; j++) width = Math.max(width, labels[ids[i * k + j]].length)
const lines = []
for (let j = 0; j < k; j++) {
  const v = ids[i * k + j]
  lines.push(pct(probs[i * k + j]).padStart(7) + "  " + labels[v].padEnd(width) + "  id " + vocab_ids[v] +
    (v === target ? "   ← next" : ""))
}
return lines.join("\\n")
"""


# The hovered rows (cb_data.index: the hover's hit) outlined: their polygons copied from
# the hovered source's (rows, m) xs/ys (by index: BokehJS's ndarrays are typed arrays),
# only when they change, since every change repaints the overlay canvas.
_OUTLINE_JS = """
const over = (cb_data != null && cb_data.index != null) ? Array.from(cb_data.index.indices) : []
const now = outline.data.row
if (over.length !== now.length || over.some((v, j) => v !== now[j])) {
  const sx = shapes.data.xs, sy = shapes.data.ys, m = sx.shape[1]
  const row = (src, i) => Float64Array.from({length: m}, (_, j) => src[i * m + j])
  outline.data = {row: Int32Array.from(over), xs: over.map((i) => row(sx, i)), ys: over.map((i) => row(sy, i))}
}
"""


def coil_figure(record: Record, frame: Frame, *, title: str | None) -> Any:
    """The empty figure (``coil_figure``): the frame at a 1:1 aspect, no axes, a title.

    Args:
        record: the Record drawn (its model name and length make the default title).
        frame: the frame (:func:`~coilvis.views.coil.frame.fit_frame`).
        title: the title, or None.
    """
    p = figure(
        frame_width=frame.width,
        frame_height=frame.height,
        x_range=Range1d(frame.x_start, frame.x_end, name="coil_x_range"),
        y_range=Range1d(frame.y_start, frame.y_end, name="coil_y_range"),
        tools=[PanTool(), WheelZoomTool(), ResetTool(), SaveTool()],
        toolbar_location="above",
        name="coil_figure",
        min_border=12,
        outline_line_color=None,
        background_fill_color="#ffffff",
        x_axis_type=None,
        y_axis_type=None,
    )
    # the model name comes from the record: shown as token text is
    model_label = display(record.model_name, whitespace="none") if record.model_name else "coil"
    p.title.text = _style.plain_text(title if title is not None else f"{model_label} · {record.seq_len:,} tokens")
    p.title.text_font_size = "14px"
    return p


def draw_band(p: Any, band_lay: geometry.Layout, lay: geometry.Layout, word: np.ndarray, sentence: np.ndarray) -> None:
    """The outer band (``coil_bands``: words and sentences) and the sentence ticks
    (``coil_sentence_marks``)."""
    bands = ColumnDataSource(band_rows(band_lay, word, sentence), name="coil_band_source")
    p.patches("xs", "ys", source=bands, fill_color="color", line_color=None, name="coil_bands")
    marks = ColumnDataSource(sentence_marks(lay, sentence), name="coil_sentence_mark_source")
    p.segment("x0", "y0", "x1", "y1", source=marks, line_color=_MARK_COLOR, line_width=1.5, name="coil_sentence_marks")


def segment_style(scale: _style.ColorScale, mapper: Any, *, hover_glyph: bool = True) -> dict[str, Any]:
    """The segments' fill and line, selected and not, hovered (with ``hover_glyph``) or not:
    the keyword arguments of ``figure.patches`` shared by ``coil_segments`` and the unwind's
    front layer (``coil_unwind_front``)."""
    fill = transform(scale.column, mapper)
    style: dict[str, Any] = {
        "fill_color": fill,
        "line_color": fill,
        "line_width": 0.5,
        "selection_fill_color": fill,
        "selection_line_color": "#000000",
        "selection_line_width": 2.0,
        "nonselection_fill_color": fill,
        "nonselection_line_color": fill,
        "nonselection_fill_alpha": 0.45,
        "nonselection_line_alpha": 0.45,
    }
    if hover_glyph:
        style.update(hover_fill_color=fill, hover_line_color="#000000", hover_line_width=2.0)
    return style


def draw_segments(
    p: Any, segments: ColumnDataSource, scale: _style.ColorScale, *, hover_glyph: bool = True
) -> tuple[GlyphRenderer, Any]:
    """The segments (``coil_segments``), filled by ``scale``; selection outlines them.

    Args:
        p: the figure.
        segments: the segment source.
        scale: the colour scale.
        hover_glyph: outline the hovered segment with Bokeh's hover glyph. Its every
            change repaints the figure's whole main layer (all segments and arcs: about
            a second at 10,000 positions with arcs); the coil passes False and outlines
            the hovered segment on the overlay layer instead (:func:`draw_hover_outline`).

    Returns:
        ``(renderer, mapper)``: the segments' renderer and the colour mapper
        (``coil_color_mapper``).
    """
    mapper = _style.color_mapper(scale, name="coil_color_mapper")
    rows = _style.rows_transform(name="coil_rows")
    renderer = p.patches(
        xs=transform("xs", rows),
        ys=transform("ys", rows),
        source=segments,
        name="coil_segments",
        **segment_style(scale, mapper, hover_glyph=hover_glyph),
    )
    return renderer, mapper


def draw_hover_outline(
    p: Any, shapes: ColumnDataSource, *, name: str = "coil_hover_outline", line_width: float = 2.0
) -> ColumnDataSource:
    """The hovered polygon's outline (``name``, over ``{name}_source``), on the figure's overlay canvas.

    Bokeh paints renderers of level ``"overlay"`` on a canvas of their own, above the
    main one, and repaints only that canvas when only they change. Bokeh's own hover glyph
    is drawn by the hovered renderer, on the main canvas: each hover would repaint every
    segment and arc (about a second at 10,000 positions with arcs). The hover's callback
    (:func:`hover_callback`) copies the hovered rows' polygons here instead.

    Args:
        p: the figure.
        shapes: the hovered renderer's source, with (rows, m) ``xs`` and ``ys`` polygons.
        name: the renderer's name.
        line_width: the outline's width in pixels.

    Returns:
        The outline's source (``row``: the rows of ``shapes`` outlined, ``xs``, ``ys``).
    """
    source = ColumnDataSource({"row": np.zeros(0, dtype=np.int32), "xs": [], "ys": []}, name=f"{name}_source")
    p.patches(
        xs="xs",
        ys="ys",
        source=source,
        fill_color=None,
        line_color="#000000",
        line_width=line_width,
        level="overlay",
        name=name,
    )
    return source


def draw_labels(
    p: Any, lay: geometry.Layout, kept: np.ndarray, texts: list[str], colors: list[str], *, font_px: int
) -> ColumnDataSource:
    """The labels that fit (``coil_labels`` over ``coil_label_source``), along their segments.

    Args:
        p: the figure.
        lay: the coil's layout.
        kept: (n_kept,) positions labelled.
        texts: their label texts.
        colors: their text colours (readable on the segment's fill).
        font_px: the font size.
    """
    f32 = np.float32
    source = ColumnDataSource(
        {
            "pos": kept.astype(np.int32),
            "x": lay.x[kept].astype(f32),
            "y": lay.y[kept].astype(f32),
            "angle_rad": lay.label_angle_rad[kept].astype(f32),
            "text": texts,
            "text_color": colors,
        },
        name="coil_label_source",
    )
    p.text(
        x="x",
        y="y",
        text="text",
        angle="angle_rad",
        text_color="text_color",
        text_font=value(_style.FONT),
        text_font_size=f"{font_px}px",
        text_align="center",
        text_baseline="middle",
        source=source,
        level="overlay",  # above the arcs' highlight, which is an overlay (see draw_hover_outline)
        name="coil_labels",
    )
    return source


def marker_data(lay: geometry.Layout) -> dict[str, list[Any]]:
    """Where the start and end marks go: outside the first and last segments (a spiral's
    start inside its hole), with the text alignment that keeps them off the coil."""
    n = lay.n
    first, last = 0, n - 1
    r0 = max(float(lay.r[first]), 1e-9)
    rn = max(float(lay.r[last]), 1e-9)
    reach = 0.5 * lay.band_width + 0.55 * lay.pitch
    if lay.kind == "circle":
        start_scale = (r0 + reach) / r0
    else:  # the spiral starts at its inner end: mark it inside the hole
        inner = r0 - 0.5 * lay.band_width
        start_scale = max(inner - min(0.5 * lay.pitch, 0.5 * inner), 0.0) / r0
    end_scale = (rn + reach) / rn
    sx, sy = float(lay.x[first]) * start_scale, float(lay.y[first]) * start_scale
    ex, ey = float(lay.x[last]) * end_scale, float(lay.y[last]) * end_scale
    start_align = ("right" if sx < 0 else "left") if lay.kind == "circle" else "center"
    end_align = "left" if ex >= 0 else "right"
    if n == 1:
        end_align = "left"
        start_align = "right"
    return {
        "x": [sx, ex],
        "y": [sy, ey],
        "text": [START_MARK, END_MARK],
        "align": [start_align, end_align],
    }


def draw_markers(p: Any, lay: geometry.Layout) -> None:
    """The start and end marks (``coil_markers`` over ``coil_marker_source``)."""
    markers = ColumnDataSource(marker_data(lay), name="coil_marker_source")
    p.text(
        x="x",
        y="y",
        text="text",
        text_align="align",
        text_baseline="middle",
        text_font=value(_style.FONT),
        text_font_size="12px",
        text_font_style="bold",
        text_color=_MARK_COLOR,
        background_fill_color="#ffffff",
        background_fill_alpha=0.85,
        source=markers,
        level="overlay",  # above the labels, as drawn
        name="coil_markers",
    )


def add_hover(
    p: Any,
    renderer: GlyphRenderer,
    segments: ColumnDataSource,
    vocab: dict[str, Any],
    *,
    k: int,
    highlight: CustomJS | None = None,
    served_k: int = 0,
    tooltips: bool = True,
    outline: ColumnDataSource | None = None,
) -> CustomJSHover:
    """The segments' hover (``coil_hover``) and tap (``coil_tap``) tools.

    Args:
        p: the figure.
        renderer: the segments' renderer.
        segments: the segment source.
        vocab: the vocabulary table's columns (``coil_vocab_source``).
        k: top next tokens listed.
        highlight: the arcs' highlight script, run on hover and on a tap, or None.
        served_k: a served model's top-k (:func:`coilvis.views.served.sent_k`): the
            tooltip calls the entropy a top-k estimate and marks next tokens outside
            the top-k; 0 for any other Record.
        tooltips: show the hover's tooltip; False keeps the hover for ``highlight`` only
            (the mass rings show their own).
        outline: the hover outline's source (:func:`draw_hover_outline`), or None.

    Returns:
        The tooltip's text formatter (``coil_text_format``).
    """
    tooltip = _style.tooltip_html(
        [
            ("position", "@pos"),
            ("token", "@pos{token}"),
            ("next", "@pos{next}"),
            ("entropy (top-k estimate)" if served_k else "entropy", "@entropy_bits{0.00} bits"),
            (f"top {k} next tokens", "pre:@pos{topk}"),
        ]
    )
    vocab_source = ColumnDataSource(vocab, name="coil_vocab_source")
    text_format = CustomJSHover(
        args={"segments": segments, "vocab": vocab_source, "served_k": served_k}, code=_TOOLTIP_JS, name="coil_text_format"
    )
    hover = HoverTool(
        renderers=[renderer],
        tooltips=tooltip if tooltips else None,
        formatters={"@pos": text_format},
        name="coil_hover",
        point_policy="follow_mouse",
    )
    tap = TapTool(renderers=[renderer], name="coil_tap")
    p.add_tools(hover, tap)
    hover.callback = hover_callback(outline, segments, highlight, name="coil_hover_js")
    if highlight is not None:
        segments.selected.js_on_change("indices", highlight)
    return text_format


def hover_callback(
    outline: ColumnDataSource | None, shapes: ColumnDataSource, highlight: CustomJS | None, *, name: str
) -> CustomJS | None:
    """A hover's callback: the hovered rows of ``shapes`` outlined (``outline``, from
    :func:`draw_hover_outline`), then ``highlight``'s script (with the same ``cb_data``);
    None when there is neither."""
    if outline is None:
        return highlight
    args: dict[str, Any] = {"outline": outline, "shapes": shapes}
    code = _OUTLINE_JS
    if highlight is not None:
        args.update(highlight.args)
        code += "\n{\n" + highlight.code + "\n}\n"
    return CustomJS(args=args, code=code, name=name)


def add_notes(p: Any, mapper: Any, scale: _style.ColorScale, *, arcs: bool, width: int) -> None:
    """The colour bar (``coil_color_bar``) and the lines under the figure saying what
    colour, the band and the arcs mean (wrapped to ``width`` pixels).

    The bar shows a twin of ``mapper`` (``coil_color_bar_mapper``: the same class,
    palette and bounds, from ``scale``): BokehJS lays the whole figure out again, and
    repaints its main canvas, whenever a glyph maps colours through the bar's own mapper,
    which would make every hover, selection or unwind frame that recolours a glyph as
    slow as redrawing every segment and arc.
    """
    twin = _style.color_mapper(scale, name="coil_color_bar_mapper")
    assert type(twin) is type(mapper) and list(twin.palette) == list(mapper.palette)
    p.add_layout(_style.color_bar(twin, scale, name="coil_color_bar"), "right")
    notes = [
        scale.legend,
        "Outer band: words in alternating shades, sentences in alternating hues, a dark tick where a sentence starts.",
    ]
    if arcs:
        notes.append(
            "Arcs: from each position to the earlier positions it attends to most; width and opacity grow with the "
            "weight. Hover or tap a segment to highlight its arcs."
        )
    chars_per_line = max(30, int((width + 60) / (0.56 * 11)))  # titles do not wrap by themselves
    for note in notes:
        for text in textwrap.wrap(note, chars_per_line):
            p.add_layout(
                Title(
                    text=_style.plain_text(text),
                    text_font_size="11px",
                    text_font_style="normal",
                    text_color="#555555",
                    standoff=2,
                ),
                "below",
            )
