"""The diff coil: one coil over the compared positions, coloured by how much two runs differ at each.

The coil's geometry, band, segments, labels and marks are the coil's own
(:mod:`coilvis.views.coil`), drawn from a Comparison's per-position values instead of a
Record's statistics; its models take the ``diff_coil_`` prefix (``diff_coil_segments``,
``diff_coil_figure``, ``diff_coil_color_mapper``, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJSHover,
    HoverTool,
    IndexFilter,
    TapTool,
    Title,
)
from bokeh.transform import transform

from coilvis import geometry
from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.options import DEFAULT_K, check_k, get_option
from coilvis.tokens import display, label_whitespace
from coilvis.views import _style
from coilvis.views.coil.figure import (
    add_notes,
    coil_figure,
    draw_band,
    draw_labels,
    draw_markers,
    draw_segments,
)
from coilvis.views.coil.frame import coil_layouts, fit_frame
from coilvis.views.coil.groups import token_groups
from coilvis.views.coil.labels import (
    LABEL_MAX_CHARS,
    fit_labels,
    fitted_font_px,
    label_width_px,
)
from coilvis.views.diff.data import (
    EXACT_TEXT,
    LOWER_BOUND_TEXT,
    TokenTable,
    check_comparison,
    check_title,
    diff_scale,
    position_values,
    prefix_names,
    run_name,
)
from coilvis.views.output import View

__all__ = ["DIFFERS_COLOR", "DiffCoilView", "diff_coil", "segment_columns", "segment_labels"]

#: Outline of the segments (and prompt boxes) where the two prompts' tokens differ.
DIFFERS_COLOR = "#00c853"
_LABEL_MAX_CHARS = 40
_ARROW = "\u2192"  # →

# The tooltip's text for compared position `value`. Formats: "position", "tokens" (both
# runs' input tokens), "delta" (the change in log p of a's next token), "metric" (both
# runs' metric and its change), "topka"/"topkb"
# (a run's top-k next tokens, "← next" on its actual next token). Token labels come from
# data sources; the tooltip escapes what this returns.
_TOOLTIP_JS = """
const d = segments.data, labels = vocab.data.label, vocab_ids = vocab.data.token_id, i = value
const names = runs.data.name
const pct = (p) => !Number.isFinite(p) ? "?"
  : p >= 9.995 ? p.toFixed(1) + "%" : p >= 0.0995 ? p.toFixed(2) + "%" : p.toPrecision(2) + "%"
const num = (x) => Number.isFinite(x) ? (x >= 0 ? "+" : "") + x.toFixed(3) : "?"
const named = (label, id) => label + "  (" + (id >= 0 ? "id " + id : "no id") + ")"
if (format === "position") {
  return d.pos_a[i] === i && d.pos_b[i] === i ? String(i) : i + "  (a: " + d.pos_a[i] + ", b: " + d.pos_b[i] + ")"
}
if (format === "tokens") {
  const width = Math.max(names[0].length, names[1].length)
  return names[0].padEnd(width) + "  " + named(d.label_a[i], d.token_id_a[i]) + "\\n" +
    names[1].padEnd(width) + "  " + named(d.label_b[i], d.token_id_b[i]) + (d.differs[i] ? "   \u2260 differs" : "")
}
if (format === "delta") {
  const x = d.delta_next_logprob[i]
  if (Number.isFinite(x)) return num(x) + " nats"
  return i + 1 >= d.pos.length ? "unknown (a has no next token here)" : "unknown (run b did not keep that token)"
}
if (format === "metric") {
  return "a " + num(d.metric_a[i]) + " \u2192 b " + num(d.metric_b[i]) + "   (change " + num(d.metric_change[i]) + ")"
}
const run = format === "topkb" ? "b" : "a"
const ids = d["topk_vocab_" + run], probs = d["topk_pct_" + run], k = ids.shape[1], target = d["next_vocab_" + run][i]
let width = 0
for (let j = 0; j < k; j++) width = Math.max(width, labels[ids[i * k + j]].length)
const lines = []
for (let j = 0; j < k; j++) {
  const v = ids[i * k + j]
  lines.push(pct(probs[i * k + j]).padStart(7) + "  " + labels[v].padEnd(width) + "  id " + vocab_ids[v] +
    (v === target ? "   \u2190 next" : ""))
}
return lines.join("\\n")
"""


class DiffCoilView(View):
    """The diff coil of a Comparison: a :class:`~coilvis.views.output.View` with handles on its parts.

    Attributes:
        figure: the Bokeh figure (``diff_coil_figure``).
        segments: the per-position source (``diff_coil_source``; see :func:`segment_columns`).
        vocab: the token table the segments index (``diff_coil_vocab_source``).
        scale: the colour scale.
        comparison: the Comparison drawn.
        coiled: the coil's :class:`~coilvis.geometry.Layout`.
        px_per_unit: screen pixels per data unit.
        font_px: the labels' font size (0: no labels).
    """

    def __init__(self, layout: Any, *, title: str, segments: ColumnDataSource, vocab: ColumnDataSource,
                 scale: _style.ColorScale, comparison: Comparison, coiled: geometry.Layout, px_per_unit: float,
                 font_px: int) -> None:  # fmt: skip
        super().__init__(layout, title=title, kind="diff_coil")
        self.figure = layout
        self.segments = segments
        self.vocab = vocab
        self.scale = scale
        self.comparison = comparison
        self.coiled = coiled
        self.px_per_unit = px_per_unit
        self.font_px = font_px


def segment_columns(comparison: Comparison, lay: geometry.Layout, table: TokenTable, *, k: int) -> dict[str, Any]:
    """Every column of ``diff_coil_source``, one row per compared position.

    Returns:
        ``pos`` (compared position), ``pos_a``, ``pos_b`` (int32); ``token_a``,
        ``token_b`` (raw text), ``label_a``, ``label_b`` (exact display labels),
        ``token_id_a``, ``token_id_b`` (int32, -1 unknown); the values of
        :func:`~coilvis.views.diff.data.position_values`; ``exact_text`` (what the
        hover says of them); per run ``r`` in ``a``, ``b``: ``topk_vocab_r`` (n, k)
        int32 rows of ``table``, ``topk_pct_r`` (n, k) float32 probabilities in %,
        ``next_vocab_r`` (int32, -1 unknown); the polygons ``xs``, ``ys`` (n, m) and the
        centres ``x``, ``y``, ``angle_rad``.
    """
    c = comparison
    columns: dict[str, Any] = {
        "pos": np.arange(c.n_pos, dtype=np.int32),
        "pos_a": c.positions_a.astype(np.int32),
        "pos_b": c.positions_b.astype(np.int32),
    }
    for run, record, positions in (("a", c.a, c.positions_a), ("b", c.b, c.positions_b)):
        tokens = [record.tokens[i] for i in positions.tolist()]
        columns[f"token_{run}"] = tokens
        columns[f"label_{run}"] = [display(t, max_len=_LABEL_MAX_CHARS) for t in tokens]
        columns[f"token_id_{run}"] = record.token_ids[positions].astype(np.int32)
    values = position_values(c)
    columns.update(values)
    columns["exact_text"] = [EXACT_TEXT if e else LOWER_BOUND_TEXT for e in values["exact"].tolist()]
    for run, record, positions in (("a", c.a, c.positions_a), ("b", c.b, c.positions_b)):
        kk = min(k, record.k)
        columns[f"topk_vocab_{run}"] = table.add(record.topk_ids[positions, :kk])
        columns[f"topk_pct_{run}"] = (record.topk_probs[positions, :kk].astype(np.float64) * 100.0).astype(np.float32)
        next_ids = record.next_ids[positions]
        next_rows = np.full(next_ids.shape, -1, dtype=np.int32)
        next_rows[next_ids >= 0] = table.add(next_ids[next_ids >= 0])
        columns[f"next_vocab_{run}"] = next_rows
    f32 = np.float32
    columns.update(
        xs=lay.poly_xs.astype(f32), ys=lay.poly_ys.astype(f32),
        x=lay.x.astype(f32), y=lay.y.astype(f32), angle_rad=lay.angle_rad.astype(f32),
    )  # fmt: skip
    return columns


def segment_labels(comparison: Comparison, lay: geometry.Layout, *, px_per_unit: float, font_px: int,
                   whitespace: str) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """The compared positions whose labels fit along the coil, and their texts.

    A label is run a's token, or ``a→b`` where the prompts differ (each side cut to half
    of :data:`~coilvis.views.coil.labels.LABEL_MAX_CHARS`), as
    :func:`coilvis.views.coil.labels.coil_labels` fits the coil's own labels: drawn
    straight along the segment, never reaching the next turn of a spiral.

    Returns:
        ``(kept, texts)``: (n_kept,) int64 positions, increasing, and their label texts.
    """
    c = comparison
    mode = label_whitespace(whitespace)
    half = LABEL_MAX_CHARS // 2
    texts = []
    for i, differs in enumerate(c.differs.tolist()):
        a = c.a.tokens[int(c.positions_a[i])]
        if not differs:
            texts.append(display(a, max_len=LABEL_MAX_CHARS, whitespace=mode))
            continue
        b = c.b.tokens[int(c.positions_b[i])]
        texts.append(display(a, max_len=half, whitespace=mode) + _ARROW + display(b, max_len=half, whitespace=mode))
    widths = np.array([label_width_px(text, font_px) for text in texts])
    if lay.kind == "spiral":  # a straight label on a curved turn must not reach the next turn
        sag_px = widths**2 / (8.0 * lay.r * px_per_unit)
        widths = np.where(sag_px <= 0.5 * (lay.pitch * px_per_unit - font_px), widths, np.inf)
    along = (np.arange(c.n_pos) + 0.5) * lay.arc_len * px_per_unit
    closed = c.n_pos * lay.arc_len * px_per_unit if lay.kind == "circle" else None
    kept = np.flatnonzero(fit_labels(along, widths, gap_px=0.5 * font_px, closed_px=closed))
    return kept, [texts[i] for i in kept.tolist()]


def _draw_differs(p: Any, segments: ColumnDataSource, differs: np.ndarray) -> None:
    """Outline the segments where the prompts' tokens differ (``diff_coil_differs``)."""
    rows = _style.rows_transform(name="diff_coil_differs_rows")
    p.patches(
        xs=transform("xs", rows),
        ys=transform("ys", rows),
        source=segments,
        view=CDSView(filter=IndexFilter(indices=np.flatnonzero(differs).tolist(), name="diff_coil_differs_filter")),
        fill_color=None,
        line_color=DIFFERS_COLOR,
        line_width=3.0,
        name="diff_coil_differs",
    )


def _add_hover(p: Any, renderer: Any, segments: ColumnDataSource, vocab: ColumnDataSource, comparison: Comparison,
               *, k: int) -> None:  # fmt: skip
    """The segments' hover (``diff_coil_hover``; its text formatter is ``diff_coil_text_format``)
    and tap (``diff_coil_tap``)."""
    c = comparison
    metric = display(c.metric.label, whitespace="none") if c.metric is not None else ""
    runs = ColumnDataSource({"name": [run_name(c, "a"), run_name(c, "b")], "metric": [metric, metric]}, name="diff_coil_runs")
    fmt = CustomJSHover(args={"segments": segments, "vocab": vocab, "runs": runs}, code=_TOOLTIP_JS, name="diff_coil_text_format")
    rows = [
        ("position", "@pos{position}"),
        ("input tokens", "pre:@pos{tokens}"),
        ("KL(a \u2016 b)", "@kl_ab_bits{0.000} bits"),
        ("KL(b \u2016 a)", "@kl_ba_bits{0.000} bits"),
        ("JS", "@js_bits{0.000} bits"),
        ("TV", "@tv{0.000}"),
        ("values", "@exact_text"),
        ("\u0394 log p of a's next token", "@pos{delta}"),
    ]
    if c.metric is not None:
        rows.append(("metric (logit difference)", "@pos{metric}"))
    rows += [(f"top {k} next tokens, run a", "pre:@pos{topka}"), (f"top {k} next tokens, run b", "pre:@pos{topkb}")]
    hover = HoverTool(
        renderers=[renderer], tooltips=_style.tooltip_html(rows, max_width_px=460), formatters={"@pos": fmt},
        name="diff_coil_hover", point_policy="follow_mouse",
    )  # fmt: skip
    p.add_tools(hover, TapTool(renderers=[renderer], name="diff_coil_tap"))


def _add_notes(p: Any, mapper: Any, scale: _style.ColorScale, comparison: Comparison, *, width: int) -> None:
    """The colour bar, what colour and the band mean (the coil's notes), then what the
    outline and "lower bound" mean."""
    add_notes(p, mapper, scale, arcs=False, width=width)
    notes = []
    n_diff = int(comparison.differs.sum())
    if n_diff:
        notes.append(f"Green outline: the {n_diff} position(s) where the prompts' tokens differ (labelled a\u2192b).")
    n_bound = int((~comparison.exact).sum())
    if n_bound:
        notes.append(f"Divergences at {n_bound} of {comparison.n_pos} positions are lower bounds from the runs' top-k.")
    notes.append("Hover a segment for both runs' tokens, top next tokens, divergences and metric.")
    for text in notes:
        p.add_layout(Title(text=_style.plain_text(text), text_font_size="11px", text_font_style="normal",
                           text_color="#555555", standoff=2), "below")  # fmt: skip


def _default_title(comparison: Comparison, color: str) -> str:
    c = comparison
    return f"{run_name(c, 'a')} vs {run_name(c, 'b')} \u00b7 {c.n_pos:,} positions \u00b7 colour: {color}"


def _bound_note(exact: np.ndarray) -> str | None:
    if exact.all():
        return None
    return "lower bound" if not exact.any() else "lower bound at some positions"


def diff_coil(
    comparison: Comparison,
    *,
    color: str = "js",
    layout: str = "spiral",
    palette: Any = None,
    width: int = 720,
    height: int = 720,
    title: str | None = None,
    labels: bool = True,
    label_font_px: int = 11,
    tooltip_k: int | None = None,
    n_arc: int | None = None,
    clockwise: bool = False,
    whitespace: str = "subtle",
) -> DiffCoilView:
    """Draw a Comparison as one coil: a segment per compared position, coloured by how the runs differ there.

    Segment ``i`` is compared position ``i`` (position ``offset_a + i`` of run a and
    ``offset_b + i`` of run b). Its colour describes the two runs' next-token
    predictions after reading the prompt up to there; the hover shows both runs' input
    tokens, both runs' top next tokens with probabilities, every divergence, the metric
    of both runs, and whether the values are exact or lower bounds (a comparison of
    saved Records keeps only their top-k). Segments where the prompts' tokens differ
    are outlined in green and labelled ``a→b``.

    Args:
        comparison: the :class:`~coilvis.comparison.Comparison` (``coilvis.compare(a, b)``).
        color: ``"js"`` (Jensen-Shannon divergence, bits, in [0, 1]; the default),
            ``"kl_ab"`` (KL(a ‖ b), bits), ``"kl_ba"``, ``"tv"`` (total variation),
            ``"metric"`` (the metric's change, b − a, logits, red = fell, blue = rose,
            centred on 0; needs a comparison with a metric) or ``"delta_next_logprob"``
            (log p_b − log p_a of a's actual next token, nats, centred on 0). The rows
            ``("diff_coil", ...)`` of :data:`coilvis.options.STATS`.
        layout: ``"spiral"``, ``"circle"`` or ``"auto"`` (as :func:`coilvis.coil`).
        palette: None (the statistic's default), a palette name or ``"#rrggbb"`` colours.
        width: width of the drawing area in pixels.
        height: height of the drawing area in pixels.
        title: the figure's title (default: both runs' names and the colour).
        labels: draw token labels on the segments that have room.
        label_font_px: largest label font size in pixels.
        tooltip_k: top next tokens of each run listed in the hover (default: all the
            records kept, at most 10).
        n_arc: polygon steps along each segment edge (default: as the coil's).
        clockwise: wind clockwise.
        whitespace: leading and trailing spaces in the segment labels: ``"subtle"``
            (``·``), ``"markers"`` (``␣``, exact) or ``"plain"``; the hover is exact.

    Returns:
        A :class:`DiffCoilView`; ``coilvis.save(view, "diff.html")`` (or ``.png``).

    Raises:
        CoilvisTypeError: ``comparison`` is not a Comparison; an option of the wrong type.
        CoilvisValueError: an unknown ``color`` or ``layout``, ``"metric"`` without a
            metric, an option out of range.
    """
    c = check_comparison(comparison)
    layout_choices = get_option("coil", "layout").choices
    if not isinstance(layout, str) or layout not in layout_choices:
        raise CoilvisValueError(f"layout: expected one of {list(layout_choices)}, got {layout!r}")
    width, height = check_int("width", width, minimum=100), check_int("height", height, minimum=100)
    label_font_px = check_int("label_font_px", label_font_px, minimum=1)
    for name, flag in (("labels", labels), ("clockwise", clockwise)):
        if not isinstance(flag, bool):
            raise CoilvisTypeError(f"{name}: expected True or False, got {type(flag).__name__}")
    label_whitespace(whitespace)
    title = check_title(title)
    k = check_k(tooltip_k, available=max(c.a.k, c.b.k), name="tooltip_k", default=DEFAULT_K)
    lay, band_lay = coil_layouts(c.n_pos, layout, n_arc=n_arc, clockwise=clockwise)
    table = TokenTable(c)
    segments = ColumnDataSource(segment_columns(c, lay, table, k=k), name="diff_coil_source")
    vocab = ColumnDataSource(table.columns(), name="diff_coil_vocab_source")
    scale = diff_scale("diff_coil", color, c, lambda col: segments.data[col], lower_bound=_bound_note(c.exact),
                       palette=palette, arg="color")  # fmt: skip
    frame = fit_frame(lay, lay, width=width, height=height, animate=False)
    p = coil_figure(c.a, frame, title=title if title is not None else _default_title(c, color))
    word, sentence = token_groups([c.a.tokens[i] for i in c.positions_a.tolist()])
    draw_band(p, band_lay, lay, word, sentence)
    renderer, mapper = draw_segments(p, segments, scale)
    _draw_differs(p, segments, c.differs)
    font_px = fitted_font_px(lay, px_per_unit=frame.px_per_unit, max_font_px=label_font_px) if labels else 0
    if font_px:
        kept, texts = segment_labels(c, lay, px_per_unit=frame.px_per_unit, font_px=font_px, whitespace=whitespace)
        colors = _style.text_colors(_style.map_colors(np.asarray(segments.data[scale.column])[kept], scale))
        draw_labels(p, lay, kept, texts, colors, font_px=font_px)
    draw_markers(p, lay)
    _add_hover(p, renderer, segments, vocab, c, k=k)
    _add_notes(p, mapper, scale, c, width=width)
    prefix_names([p], "coil_", "diff_coil_")
    return DiffCoilView(
        p, title=title if title is not None else "coilvis \u00b7 diff coil", segments=segments, vocab=vocab,
        scale=scale, comparison=c, coiled=lay, px_per_unit=float(frame.px_per_unit), font_px=font_px,
    )  # fmt: skip
