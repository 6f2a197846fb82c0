"""The logit lens as a heatmap: layers up, positions across, the top token in every cell.

``coilvis.lens(record)`` draws :class:`~coilvis.record.LensStats` (computed by
``coilvis.run(prompt, lens=True)``): one row per decoded residual stream (the embedding
at the bottom, the model's output at the top), one column per position. Each cell shows
the layer's top next-token guess, coloured by a statistic; the input tokens label the
bottom edge and the actual next tokens the top edge (``✓`` where the model's final
prediction was right); cells whose top token *is* the actual next token are outlined.

Positions are numbers on the x axis with token labels as overrides, so a token that
occurs twice keeps two columns. Cells have a fixed size in pixels: a long prompt makes a
figure you pan through (drag, or wheel-zoom), never a squashed one, and it opens on the
last positions (the prediction the prompt is for); a window chosen with ``start``/``end``
is shown whole. When zooming out makes cells too small for their labels, the labels
shorten and then hide.

``coilvis.lens(record_a, compare=record_b, stat="js")`` colours each cell by how much the
two runs' distributions differ there. ``compare`` is a Record of equal length, the same
``d_vocab`` and lens rows (two prompts of equal length, or two models sharing a
tokenizer); ``stat="kl"`` (KL(record ‖ compare), bits), ``"js"`` (Jensen-Shannon, bits,
in ``[0, 1]``; the default) or ``"tv"`` (total variation, half the L1 distance, in
``[0, 1]``). A record keeps only each cell's top-k, so the value is the divergence
between *coarse-grained* distributions (the tokens in both top-k lists, the tokens in
only one, and the rest), minimised over what the top-k lists leave unknown: by the
data-processing inequality a **lower bound** of the true divergence, exact when the
top-k covers the probability mass (see :func:`coilvis.topk_bounds.topk_divergence`;
:func:`coilvis.compare` computes exact divergences from the full distributions).

A lens larger than ``max_width_px`` x ``max_height_px`` shows part of itself and pans
(drag; wheel zoom is on the toolbar): it opens on the last positions and the top rows
(the model's output), and on the whole prompt when it fits. With ``start`` or ``end``
the chosen window is shown whole, its cells narrowed to fit ``max_width_px`` when they
must. A PNG (``coilvis.save(view, "lens.png")``), which cannot pan, shows every row and
the whole prompt (or the whole ``start``/``end`` window): its frame widens up to 4,000
px, then its cells narrow down to 23 px; a prompt longer still shows its last positions
and says so in the title ("positions 339–511 of 512"), never a silent crop (see
:meth:`coilvis.views.output.View.still`).

Token text reaches the page only as data: one table of distinct strings
(``lens_strings``) that the cells index with binary int32 columns (a 30 x 1024 lens
is about 2 MB of data, not 6), and axis-label overrides drawn on the canvas. Tooltips
are fixed templates of ``@field`` references; the small scripts that look strings up
by index only move data, and Bokeh escapes what they return (never the ``safe`` format).

The package: :mod:`~coilvis.views.lens.grid` (the records, rows, positions and cell
size a lens draws), :mod:`~coilvis.views.lens.cells` (the cells' columns and the string
table), :mod:`~coilvis.views.lens.figure` (the Bokeh models); :func:`lens_figure`
composes them and :func:`lens` wraps the figure in a View.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from bokeh.models import ColumnDataSource

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.options import COMPARE_STATS, LENS_STATS, check_k
from coilvis.record import Record
from coilvis.tokens import label_whitespace
from coilvis.views._style import ColorScale, color_bar, view_scale
from coilvis.views.lens.cells import Strings, cell_columns, lens_grid, stat_values
from coilvis.views.lens.figure import (
    add_axes,
    add_hover,
    add_tap,
    add_zoom_labels,
    draw_cells,
    draw_outlines,
    draw_texts,
    lens_frame,
    still_settings,
)
from coilvis.views.lens.grid import cell_size, check_compare, check_record, select_rows, window
from coilvis.views.output import View

__all__ = ["COMPARE_STATS", "LENS_STATS", "LensFigure", "lens", "lens_figure", "select_rows"]

def _check_stat(stat: Any, *, compare: bool) -> str:
    """The colour statistic: one of :data:`coilvis.options.LENS_STATS` (``"prob"`` by
    default), or of :data:`~coilvis.options.COMPARE_STATS` with ``compare`` (``"js"``)."""
    allowed = COMPARE_STATS if compare else LENS_STATS
    if stat is None:
        stat = "js" if compare else "prob"
    if not isinstance(stat, str) or stat not in allowed:
        mode = "with compare=" if compare else "for one record"
        raise CoilvisValueError(f"stat: expected one of {allowed} {mode}, got {stat!r}")
    return stat


@dataclass
class LensFigure:
    """The parts of a drawn lens that a page links to other views.

    Attributes:
        figure: the Bokeh figure (named ``"lens_figure"``).
        cells: the cells' data source (named ``"lens_cells"``), one row per cell, all
            columns numeric (binary in the page): ``pos``, ``y`` (row on the figure),
            ``row`` (lens row index), ``value`` (the colour statistic in its bar's
            unit), ``top_prob``, ``entropy_bits``, ``kl_bits``, ``next_prob``,
            ``final_rank`` (1 = top), ``light`` (1 where the label is white); and
            indices into ``strings``: ``layer_ix``, ``token_ix`` (input token),
            ``next_ix`` (actual next token, -1 at the last position), ``top_ix``,
            ``tk0..`` with probabilities ``tp0..`` (the top-k), and in compare mode
            ``ctk0..``, ``ctp0..``, ``compare_token_ix``.
        strings: data source (named ``"lens_strings"``) of the distinct texts the cells
            refer to (tokens and layer names), with columns ``full`` (the exact label of
            :func:`coilvis.tokens.display`), ``hover`` (cut to 24 characters), ``label``
            (cut to ``max_label_len``), ``short`` (3) and ``token_id`` (int32; -1 for
            layer names and tokens of unknown id). The hover shows every token with
            its id.
        highlight: data source (named ``"lens_highlight"``) with one column ``pos``:
            the selected position(s), outlined as a column.
        rows: (n_shown,) lens row indices drawn, bottom to top.
        positions: (n_pos,) positions drawn, left to right.
        scale: the colour scale.
        still: the settings of the still form a PNG shows (every position, or the
            last ones with the title saying which; see
            :func:`coilvis.views.lens.figure.still_settings`).
    """

    figure: Any
    cells: ColumnDataSource
    strings: ColumnDataSource
    highlight: ColumnDataSource
    rows: np.ndarray
    positions: np.ndarray
    scale: ColorScale
    still: list[tuple[Any, str, Any]] = field(default_factory=list)



def lens_figure(
    record: Record,
    *,
    stat: str | None = None,
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
    start: int | None = None,
    end: int | None = None,
    compare: Record | None = None,
    cell_px: int | tuple[int, int] = (56, 20),
    max_label_len: int = 8,
    hover_k: int = 5,
    max_width_px: int = 1400,
    max_height_px: int = 900,
    palette: Any = None,
    title: str | None = None,
    whitespace: Literal["markers", "subtle", "plain"] = "subtle",
) -> LensFigure:
    """The lens heatmap as Bokeh models (see :func:`lens`, which wraps it in a View).

    Returns:
        A :class:`LensFigure`.
    """
    record = check_record(record, "record")
    if compare is not None:
        compare = check_compare(compare, record)
    stat = _check_stat(stat, compare=compare is not None)
    max_label_len = check_int("max_label_len", max_label_len, minimum=1)
    hover_k = check_k(hover_k, name="hover_k")
    max_width_px = check_int("max_width_px", max_width_px, minimum=50)
    max_height_px = check_int("max_height_px", max_height_px, minimum=50)
    cell_w, cell_h = cell_size(cell_px)
    label_whitespace(whitespace)
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")

    assert record.lens is not None
    rows = select_rows(record.lens.layer_names, layers=layers, stride=stride)
    lo, hi = window(record.seq_len, start, end)
    grid = lens_grid(record, rows, np.arange(lo, hi, dtype=np.int64), hover_k=hover_k)
    values = stat_values(record, grid, stat, compare=compare)
    scale = view_scale("lens" if compare is None else "compare", stat, values, palette=palette)
    strings = Strings()
    cells = ColumnDataSource(
        data=cell_columns(record, grid, values, scale, strings, compare=compare, hover_k=hover_k), name="lens_cells"
    )
    string_source = strings.source(max_label_len=max_label_len, whitespace=whitespace)
    highlight = ColumnDataSource(data={"pos": []}, name="lens_highlight")
    next_ids = record.next_ids[grid.pos]
    match = (grid.top_ids == next_ids) & (next_ids >= 0)

    fit = start is not None or end is not None
    fig, shown_w, cell_h = lens_frame(
        record,
        grid,
        cell_w=cell_w,
        cell_h=cell_h,
        max_width_px=max_width_px,
        max_height_px=max_height_px,
        title=title,
        compare=compare is not None,
        fit=fit,
    )
    renderer, mapper = draw_cells(fig, cells, scale)
    texts = draw_texts(fig, cells, string_source, cell_w=shown_w, cell_h=cell_h, max_label_len=max_label_len)
    draw_outlines(fig, cells, highlight, match=match, n_shown=rows.shape[0])
    add_axes(fig, record, grid, max_label_len=max_label_len, whitespace=whitespace)
    fig.add_layout(color_bar(mapper, scale, name="lens_color_bar"), "right")
    compare_k = None if compare is None else check_k(hover_k, available=compare.lens.topk_ids.shape[2], name="hover_k")
    add_hover(fig, renderer, cells, string_source, scale, hover_k=grid.topk_ids.shape[1], compare_k=compare_k)
    add_tap(cells, highlight)
    add_zoom_labels(fig, texts)
    still = still_settings(
        fig, texts, grid, seq_len=record.seq_len, cell_w=cell_w, cell_h=cell_h, max_width_px=max_width_px,
        max_height_px=max_height_px, fit=fit,
    )  # fmt: skip
    return LensFigure(
        figure=fig, cells=cells, strings=string_source, highlight=highlight, rows=rows, positions=grid.positions,
        scale=scale, still=still,
    )  # fmt: skip


def lens(
    record: Record,
    *,
    stat: str | None = None,
    layers: Sequence[int | str] | None = None,
    stride: int | None = None,
    start: int | None = None,
    end: int | None = None,
    compare: Record | None = None,
    cell_px: int | tuple[int, int] = (56, 20),
    max_label_len: int = 8,
    hover_k: int = 5,
    max_width_px: int = 1400,
    max_height_px: int = 900,
    palette: Any = None,
    title: str | None = None,
    whitespace: Literal["markers", "subtle", "plain"] = "subtle",
) -> View:
    """Draw the logit lens: layers x positions, the top token in every cell.

    Rows are the record's lens rows (embedding at the bottom, the model's output at the
    top); columns are positions ``start .. end - 1``. Every cell prints the top token
    of that layer's decoded residual (spaces as ``whitespace`` says, cut to
    ``max_label_len``; the exact string, the top-k with probabilities and every token's
    id are in the hover) and is coloured by
    ``stat``. The input tokens label the bottom edge, the actual next tokens the top
    edge (``✓`` where the model's final top prediction was right); a cell whose top
    token is the actual next token is outlined. Tapping a cell outlines its column.

    Statistics (``stat``), with their colour bar:

    * ``"prob"``: probability of the cell's top token (%).
    * ``"entropy"``: entropy of the layer's distribution (bits).
    * ``"kl"``: KL(final ‖ layer), from the model's output to the layer (bits).
    * ``"rank"``: rank of the final top token in the layer (1 = top; log scale).
    * ``"target_prob"``: probability of the actual next token (%; grey at the last
      position, whose next token is unknown).

    Compare mode, ``compare=other`` (a Record of equal length, same ``d_vocab`` and lens
    rows): ``stat="kl"``, ``"js"`` (the default) or ``"tv"``, a lower bound from the two
    cells' top-k (see the module's text; :func:`coilvis.compare` is exact).

    Args:
        record: a Record with lens statistics (``coilvis.run(prompt, lens=True)``); a
            :class:`~coilvis.comparison.Comparison` is drawn by
            :func:`coilvis.views.diff.diff_lens`, with the options set here that it takes.
        stat: the colour statistic (default ``"prob"``; ``"js"`` with ``compare``).
        layers: rows to draw, as row indices into ``record.lens.layer_names`` (0 is
            the embedding) or layer names; the first and last rows are always drawn.
        stride: draw every ``stride``-th row, plus the last.
        start: first position drawn (negative counts from the end).
        end: one past the last position drawn.
        compare: a second Record to compare with (see above).
        cell_px: cell size in pixels, ``(width, height)`` or one int for both (a
            lens of few rows gets taller cells, up to 160 px in all).
        max_label_len: characters of the top token printed in a cell.
        hover_k: top tokens listed in the hover.
        max_width_px: widest the heatmap's frame grows before it pans (opening on
            the last positions; a PNG shows every row and the whole window).
        max_height_px: tallest the heatmap's frame grows before it pans (opening on the top rows).
        palette: a palette name (``"Viridis"``, ``"Magma_r"``, ...) or colours.
        title: the figure's title (default: "logit lens" and the model name).
        whitespace: how the cells' labels and the token axes show a token's leading
            and trailing spaces: ``"subtle"`` (the default: a light, narrow ``·``, so
            the heatmap does not read as a wall of markers), ``"markers"`` (``␣``, the
            exact label of :func:`coilvis.tokens.display`) or ``"plain"`` (spaces; a
            token of spaces only still shows ``␣``). Subtle and plain labels are not
            exact; the hover always shows every token's exact label with ``␣`` and its id.

    Returns:
        A :class:`~coilvis.views.output.View`; ``coilvis.save(view, "lens.html")``.

    Raises:
        CoilvisTypeError: ``record`` (or ``compare``) is not a Record; a bad argument type.
        CoilvisValueError: the record has no lens statistics ("run
            coilvis.run(prompt, lens=True)"), an unknown ``stat``, records that cannot
            be compared, a bad window, both ``layers`` and ``stride``.

    See :doc:`/concepts/lens` (docs/concepts/lens.md) for how to read it and how each
    model family's head decodes the rows, and :doc:`/concepts/statistics` for the
    statistics and the top-k bound.

    Example:
        >>> import coilvis  # doctest: +MODEL
        >>> record = coilvis.run("The capital of France is the city of", lens=True)
        >>> coilvis.save(coilvis.lens(record, stat="entropy", stride=2), "lens.html").name
        'lens.html'
        >>> other = coilvis.run("The capital of Italy is the city of", lens=True)  # as many tokens
        >>> coilvis.save(coilvis.lens(record, compare=other, stat="js"), "compare.html").name
        'compare.html'
    """
    if isinstance(record, Comparison):  # two runs side by side: the diff lens, with the options set here
        from coilvis.views.diff.dispatch import for_comparison

        return for_comparison("lens", record, locals(), lens)
    parts = lens_figure(
        record, stat=stat, layers=layers, stride=stride, start=start, end=end, compare=compare, cell_px=cell_px,
        max_label_len=max_label_len, hover_k=hover_k, max_width_px=max_width_px, max_height_px=max_height_px,
        palette=palette, title=title, whitespace=whitespace,
    )
    return View(parts.figure, title="coilvis lens" if title is None else title, kind="lens", still=parts.still)
