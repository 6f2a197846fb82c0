"""One page with everything: the coil, the lens and the top-k table, linked.

``coilvis.page(record)`` shows the prompt as text (``page_prompt``: one box per token,
whitespace visible, folded into lines), then the coil (:func:`coilvis.views.coil.coil`) and, next to
it, the table of the model's top next tokens at the selected position; the logit lens
(:func:`coilvis.views.lens.lens`) goes underneath when the record has lens statistics.
Tapping a coil segment, a lens cell or a prompt token selects that position: the table
shows its top-k, the lens outlines its column (and pans to it), the prompt highlights
its token and the coil selects its segment.

A page can also be drawn before its run's lens is computed and get the lens later
(:func:`add_lens`), or get the lens's frame first, its axes without cells
(:func:`add_lens_frame`), which :func:`add_lens` then fills in place; the live explorer
does so (see :mod:`coilvis.views.page_lens`).

The table's rows for every position are computed once, in Python, into one data source
(``page_topk_source``, with a ``pos`` column); the page script only changes which rows
an ``IndexFilter`` lets through, so no token text is ever part of JavaScript source.
The prompt's tokens are data too (``page_prompt_source``), drawn by a text glyph.

Named models: ``page_root``, ``page_views`` (the coil and table's row, then the lens),
``page_side``, ``page_topk_source``, ``page_topk_filter`` (its ``indices`` are the selected position's rows),
``page_topk_table``, ``page_topk_header``, ``page_prompt`` (the prompt's figure),
``page_prompt_source`` (its ``selected`` indices are the selected position),
``page_select_coil``, ``page_select_lens`` and ``page_select_prompt`` (the scripts),
plus the coil's (``coil_*``) and the lens's (``lens_*``).
"""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from bokeh.core.properties import value
from bokeh.layouts import column, row
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    DataTable,
    Div,
    HoverTool,
    IndexFilter,
    NumberFormatter,
    Range1d,
    StringFormatter,
    TableColumn,
    TapTool,
)
from bokeh.plotting import figure

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.options import check_k
from coilvis.record import Record
from coilvis.views.served import lens_note
from coilvis.tokens import display, label_whitespace
from coilvis.views.coil import coil
from coilvis.views.lens import LensFigure, lens_figure
from coilvis.views.output import View
from coilvis.views.page_lens import JOINS, LENS_PENDING, SELECT_JS, frame_lens, join_lens, named_models, remember_models

__all__ = ["LENS_PENDING", "add_lens", "add_lens_frame", "page", "prompt_rows", "topk_rows"]

_CHECK = "\u2713"  # ✓

#: Characters per line of the prompt panel before it folds.
PROMPT_LINE_CHARS = 100
#: Widest the lens's frame grows in a page before it pans (its ``max_width_px`` unless
#: ``lens_options`` gives one): with its axes and colour bar the lens is then about
#: 1,170 px wide, and the coil with the table beside it about 1,250 px, so a page fits
#: a window 1,280 px wide (with room for a scrollbar) and no legend is cut off.
PAGE_LENS_MAX_WIDTH_PX = 1060
_TABLE_PX = 430
_CHAR_PX = 8  # the panel's monospace 13 px font advances ~7.8 px a character
_LINE_PX = 22
_PROMPT_MAX_LINES = 16  # more lines pan vertically; the view opens on the last ones


def topk_rows(record: Record, *, k: int = 10) -> dict[str, Any]:
    """The top-k table of every position, as data-source columns.

    Shapes: every column has ``seq_len * k`` rows, position-major (rows
    ``pos * k .. pos * k + k - 1`` belong to position ``pos``).

    Args:
        record: the Record.
        k: rows per position (at most ``record.k``).

    Returns:
        Columns ``pos`` (int32), ``rank`` (int32, 1 = top), ``token`` (the exact
        display label of :func:`coilvis.tokens.display`, whitespace visible),
        ``token_id`` (int32; the label alone cannot tell every token apart), ``prob``
        (float32 in [0, 1]), ``logit`` (float32), ``actual`` (``"✓"`` on the actual
        next token's row, else ``""``).

    Examples:
        >>> import numpy as np, coilvis
        >>> rec = coilvis.from_logits(np.log([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), tokens=[0, 1], vocab=["a", " b", "c"])
        >>> rows = topk_rows(rec, k=2)
        >>> rows["token"], rows["actual"]
        (['a', '␣b', 'c', 'a'], ['', '✓', '', ''])
    """
    k = check_k(k, available=record.k)
    n = record.seq_len
    ids = record.topk_ids[:, :k]
    texts = {int(i): display(record.token_text(int(i))) for i in np.unique(ids)}
    next_ids = record.next_ids
    actual = (ids == next_ids[:, None]) & (next_ids[:, None] >= 0)
    return {
        "pos": np.repeat(np.arange(n, dtype=np.int32), k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
        "token": [texts[i] for i in ids.reshape(-1).tolist()],
        "token_id": ids.reshape(-1).astype(np.int32),
        "prob": record.topk_probs[:, :k].reshape(-1).astype(np.float32),
        "logit": record.topk_logits[:, :k].reshape(-1).astype(np.float32),
        "actual": [_CHECK if a else "" for a in actual.reshape(-1).tolist()],
    }


def _cells(text: str) -> int:
    """Monospace cells a label takes: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def prompt_rows(record: Record, *, line_chars: int = PROMPT_LINE_CHARS, whitespace: str = "markers") -> dict[str, Any]:
    """The prompt's tokens laid out as folded lines of text, as data-source columns.

    Shapes: every column has ``seq_len`` rows, one per position, in order. A token
    goes on the next line when it would pass ``line_chars`` cells, and after a token
    that ends in a newline.

    Args:
        record: the Record.
        line_chars: monospace cells per line before the prompt folds.
        whitespace: how ``label`` shows leading and trailing spaces: ``"markers"``
            (``␣``), ``"subtle"`` (``·``) or ``"plain"`` (spaces).

    Returns:
        Columns ``pos`` (int32), ``token_id`` (int32), ``text`` (the exact display label
        of :func:`coilvis.tokens.display`, whitespace visible, for the hover), ``label``
        (what the box shows: spaces as ``whitespace`` says, cut to ``line_chars``
        cells), ``x`` (the label's centre, in cells), ``width`` (cells), ``line``
        (int32, 0 = first) and ``y`` (``-line``).

    Examples:
        >>> import numpy as np, coilvis
        >>> rec = coilvis.from_logits(np.zeros((3, 3)), tokens=[0, 1, 2], vocab=["a", " bb", "c"])
        >>> rows = prompt_rows(rec, line_chars=5)
        >>> rows["text"], rows["line"].tolist()
        (['a', '␣bb', 'c'], [0, 0, 1])
        >>> prompt_rows(rec, whitespace="subtle")["label"]
        ['a', '·bb', 'c']
    """
    line_chars = check_int("line_chars", line_chars, minimum=1)
    mode = label_whitespace(whitespace)
    texts = [display(t) for t in record.tokens]
    labels = [display(raw, whitespace=mode) for raw in record.tokens]
    labels = [t if _cells(t) <= line_chars else display(raw, max_len=line_chars, whitespace=mode) for t, raw in zip(labels, record.tokens)]
    xs, widths, lines = [], [], []
    col, line = 0.0, 0
    for raw, label in zip(record.tokens, labels):
        width = max(_cells(label), 1)
        if col > 0 and col + width > line_chars:
            col, line = 0.0, line + 1
        xs.append(col + width / 2)
        widths.append(width)
        lines.append(line)
        col += width + 0.5
        if raw.endswith("\n"):
            col, line = 0.0, line + 1
    line_arr = np.asarray(lines, dtype=np.int32)
    return {
        "pos": np.arange(record.seq_len, dtype=np.int32),
        "token_id": np.asarray(record.token_ids, dtype=np.int32),
        "text": texts,
        "label": labels,
        "x": np.asarray(xs, dtype=np.float64),
        "width": np.asarray(widths, dtype=np.float64),
        "line": line_arr,
        "y": -line_arr.astype(np.float64),
    }


def _prompt_panel(record: Record, *, whitespace: str) -> tuple[Any, ColumnDataSource]:
    """The prompt as text (``page_prompt``), one box per token over ``page_prompt_source``;
    the selected position (the last one at first) is highlighted and a tap selects one.

    Token text reaches the page only as data, drawn on the canvas by a text glyph.

    Returns:
        ``(figure, source)``.
    """
    rows = prompt_rows(record, whitespace=whitespace)
    source = ColumnDataSource(rows, name="page_prompt_source")
    source.selected.indices = [record.seq_len - 1]
    n_lines = int(rows["line"].max()) + 1 if record.seq_len else 1
    used = max(float((rows["x"] + rows["width"] / 2).max()), 10.0)
    shown = min(n_lines, _PROMPT_MAX_LINES)
    fig = figure(
        name="page_prompt",
        title="Prompt (tap a token to select its position)",
        x_range=Range1d(-0.5, used + 0.5, bounds="auto"),
        y_range=Range1d(-(n_lines - 0.5), -(n_lines - shown) + 0.5, bounds=(-(n_lines - 0.5), 0.5)),
        frame_width=int((used + 1) * _CHAR_PX),
        frame_height=shown * _LINE_PX,
        tools="ypan" if n_lines > shown else "",
        toolbar_location=None,
        min_border=4,
        outline_line_color=None,
        x_axis_location=None,
        y_axis_location=None,
    )
    fig.grid.visible = False
    boxes = fig.rect(
        x="x", y="y", width="width", height=0.82, source=source, name="page_prompt_boxes",
        fill_color="#f3f3f3", line_color="#d6d6d6",
        selection_fill_color="#ffd54f", selection_line_color="#b07f00",
        nonselection_fill_color="#f3f3f3", nonselection_line_color="#d6d6d6",
        nonselection_fill_alpha=1.0, nonselection_line_alpha=1.0,
    )
    fig.text(
        x="x", y="y", text="label", source=source, name="page_prompt_text",
        text_align="center", text_baseline="middle", text_font=value("monospace"), text_font_size="13px",
        nonselection_text_alpha=1.0,
    )
    fig.add_tools(
        TapTool(renderers=[boxes]),
        HoverTool(renderers=[boxes], tooltips=[("position", "@pos"), ("token", "@text"), ("id", "@token_id")]),
    )
    return fig, source


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


def _topk_table(record: Record, *, k: int) -> tuple[Any, IndexFilter, Div]:
    """The top-k table's column (``page_side``): its header, the table over
    ``page_topk_source`` showing the last position's rows, and a note.

    Returns:
        ``(side, filter, header)``: the column, the table's ``IndexFilter`` and its header.
    """
    last = record.seq_len - 1
    table_source = ColumnDataSource(topk_rows(record, k=k), name="page_topk_source")
    table_filter = IndexFilter(indices=list(range(last * k, last * k + k)), name="page_topk_filter")
    table = DataTable(
        source=table_source,
        view=CDSView(filter=table_filter),
        columns=[
            TableColumn(field="rank", title="#", width=30),
            TableColumn(field="token", title="next token", formatter=StringFormatter(), width=150),
            TableColumn(field="token_id", title="id", formatter=NumberFormatter(format="0"), width=56),
            TableColumn(field="prob", title="probability", formatter=NumberFormatter(format="0.00%"), width=80),
            TableColumn(field="logit", title="logit", formatter=NumberFormatter(format="0.00"), width=60),
            TableColumn(field="actual", title="actual", width=50),
        ],
        index_position=None,
        sortable=False,
        reorderable=False,
        selectable=False,
        width=_TABLE_PX,
        height=min(30 + 25 * k, 420),
        name="page_topk_table",
    )
    # text, never markup or mathematics (see coilvis.views._style.plain_text)
    header = Div(
        text=f"Top {k} next tokens at position {last}",
        render_as_text=True,
        disable_math=True,
        name="page_topk_header",
        styles={"font-weight": "bold"},
    )
    note = Div(
        text="Tap a segment of the coil or a cell of the lens to show its position here. "
        "\u2713 marks the token that actually came next.",
        width=_TABLE_PX - 10,
        render_as_text=True,
        disable_math=True,
        styles={"color": "#555555", "font-size": "12px"},
        name="page_topk_note",
    )
    return column(header, table, note, name="page_side"), table_filter, header


def _link(
    record: Record,
    segments: ColumnDataSource,
    *,
    prompt: ColumnDataSource,
    table_filter: IndexFilter,
    header: Div,
    k: int,
    play: Any = None,
) -> dict[str, CustomJS]:
    """Tapping a coil segment or a prompt token selects its position everywhere: the
    table's rows and header, the prompt's token, the coil's segment (and the lens's
    column, once :func:`coilvis.views.page_lens.join_lens` joins it). While the unwind plays (``play``, its
    button, says pause) the positions it passes are selected too. Returns the two
    scripts by name."""
    n = record.seq_len
    args: dict[str, Any] = {
        "filter": table_filter,
        "header": header,
        "k": k,
        "seq_len": n,
        "highlight": None,
        "x_range": None,
        "lo": 0,
        "hi": n,
        "segments": None,
        "prompt": prompt,
        "play": play,
    }
    scripts = {
        "page_select_coil": CustomJS(args={**args, "source": segments}, code=SELECT_JS, name="page_select_coil"),
        "page_select_prompt": CustomJS(args={**args, "source": prompt, "segments": segments}, code=SELECT_JS, name="page_select_prompt"),
    }
    segments.selected.js_on_change("indices", scripts["page_select_coil"])
    prompt.selected.js_on_change("indices", scripts["page_select_prompt"])
    return scripts


def _lens_options(lens_options: Mapping[str, Any] | None, whitespace: str) -> dict[str, Any]:
    """:func:`coilvis.lens` options of a page's lens (checked), its defaults the page's."""
    return {"whitespace": whitespace, "max_width_px": PAGE_LENS_MAX_WIDTH_PX, **_options(lens_options, "lens_options", lens_figure)}


def _joins(root: Any, record: Any) -> dict[str, Any]:
    """The models of the page under ``root`` that a lens of ``record`` joins, both checked."""
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"record: expected a coilvis Record, got {type(record).__name__}")
    named = named_models(root) if getattr(root, "name", None) == "page_root" else {}
    if set(named) != set(JOINS):
        raise CoilvisValueError("root: expected the root layout of a coilvis page (page(record).layout)")
    seq_len = named["page_select_coil"].args["seq_len"]
    if seq_len != record.seq_len:
        raise CoilvisValueError(f"record: expected the page's run ({seq_len} positions), got {record.seq_len} positions")
    return named


def add_lens(
    root: Any,
    record: Record,
    *,
    lens_options: Mapping[str, Any] | None = None,
    whitespace: Literal["markers", "subtle", "plain"] = "subtle",
) -> LensFigure:
    """Put the lens of ``record`` into a page drawn before its lens was computed.

    ``root`` is the layout of :func:`page` for the same run without lens statistics
    (its ``page_root``), or with the lens's frame (:func:`add_lens_frame`). The lens
    goes under the coil and the table and joins the page's links, so the page is then
    the one :func:`page` draws for ``record``: it fills the frame or lens shown there
    in place when their shapes agree (a browser showing the page repaints the lens, it
    does not build it and lay the page out again), else it takes its place. The live
    explorer draws the coil, the table and the lens's frame as soon as the forward pass
    is done, and fills the lens when it is computed.

    Args:
        root: the page's root layout (``page(record_without_lens).layout``).
        record: the same run, with lens statistics (n = ``seq_len`` positions, as the page's).
        lens_options: as :func:`page`'s.
        whitespace: as :func:`page`'s.

    Returns:
        The lens's parts (its figure, data sources and PNG settings).

    Raises:
        CoilvisTypeError: ``record`` is not a Record; ``lens_options`` is not a dict.
        CoilvisValueError: ``root`` is not a page's root, the record has no lens or its
            length differs from the page's; errors of the lens for bad options.
    """
    named = _joins(root, record)
    if record.lens is None:
        raise CoilvisValueError("record: expected the page's run with lens statistics, got no lens (run coilvis.run(prompt, lens=True))")
    label_whitespace(whitespace)
    return join_lens(root, named, record, _lens_options(lens_options, whitespace))


def add_lens_frame(
    root: Any,
    record: Record,
    layer_names: Sequence[str],
    *,
    lens_options: Mapping[str, Any] | None = None,
    whitespace: Literal["markers", "subtle", "plain"] = "subtle",
) -> LensFigure:
    """Put the frame of a lens still being computed into a page: its place, axes, colour bar and links.

    ``root`` is the layout of :func:`page` for a run's forward pass (``record``, no lens
    statistics yet); the frame has the rows ``layer_names`` (as the lens will have:
    ``"embed"``, ``"0"``, ...) and the page's positions, no cells, and
    :data:`LENS_PENDING` for a title. :func:`add_lens` then fills it with the lens, in
    place. The page looks as it will, the lens's cells aside, while the lens is computed.

    Args:
        root: the page's root layout (``page(record).layout``).
        record: the run, without lens statistics (n = ``seq_len`` positions, as the page's).
        layer_names: (n_rows,) the names of the lens's rows to come, bottom to top.
        lens_options: as :func:`page`'s (those :func:`add_lens` will be given).
        whitespace: as :func:`page`'s.

    Returns:
        The frame's parts.

    Raises:
        CoilvisTypeError: ``record`` is not a Record; ``lens_options`` is not a dict.
        CoilvisValueError: ``root`` is not a page's root, the record's length differs
            from the page's, ``layer_names`` is empty or not strings; errors of the lens
            for bad options.
    """
    named = _joins(root, record)
    if isinstance(layer_names, str) or not isinstance(layer_names, Sequence) or not layer_names or not all(isinstance(n, str) for n in layer_names):
        raise CoilvisValueError(f"layer_names: expected the names of the lens's rows (strings, at least one), got {layer_names!r}")
    label_whitespace(whitespace)
    return frame_lens(root, named, record, layer_names, _lens_options(lens_options, whitespace))


def page(
    record: Record,
    *,
    coil_options: Mapping[str, Any] | None = None,
    lens_options: Mapping[str, Any] | None = None,
    k: int = 10,
    title: str | None = None,
    whitespace: Literal["markers", "subtle", "plain"] = "subtle",
) -> View:
    """The coil, the lens and the top-k table of one Record on one page, linked.

    The prompt shows as text on top, whitespace visible, folded into lines. Tapping a
    coil segment selects its position: the table lists that position's top ``k`` next
    tokens (``✓`` on the token that actually came next), the lens outlines that column
    and pans to it, and the prompt highlights its token. Tapping a lens cell or a
    prompt token does the same and selects the coil's segment. A record without lens statistics gives the coil and the table
    (a served model's, from :func:`coilvis.run_served`, also a line saying it has no lens).

    Args:
        record: the Record (``coilvis.run(prompt, lens=True)`` for the lens); a
            :class:`~coilvis.comparison.Comparison` gets :func:`coilvis.views.diff.diff_page`,
            with the options set here that it takes.
        coil_options: keyword options for :func:`coilvis.coil` (``layout``, ``color``,
            ``attention``, ...; ``attention="mean"`` or ``"max"`` opens on the last layer).
        lens_options: keyword options for :func:`coilvis.lens` (``stat``, ``stride``,
            ``start``, ``end``, ``compare``, ...); ignored when the record has no lens.
            Its ``max_width_px`` defaults to :data:`PAGE_LENS_MAX_WIDTH_PX` here, so the
            page fits a window 1,280 px wide.
        k: rows of the table (at most the ``k`` the record kept).
        title: the page title.
        whitespace: how the prompt's boxes, the coil's segment labels and the lens's
            cells and axes show leading and trailing spaces: ``"subtle"`` (the default,
            a light ``·``), ``"markers"`` (``␣``, exact) or ``"plain"`` (spaces); a
            ``whitespace`` in ``coil_options`` or ``lens_options`` wins for that view.
            Hovers and the table always show the exact label with ``␣``.

    Returns:
        A :class:`~coilvis.views.output.View`; ``coilvis.save(view, "page.html")``.

    Raises:
        CoilvisTypeError: ``record`` is not a Record; options are not dicts.
        CoilvisValueError: ``k`` < 1; errors of the coil and the lens for bad options.

    Examples:
        >>> import numpy as np, coilvis
        >>> rec = coilvis.from_logits(np.zeros((4, 5)), tokens=[0, 1, 2, 3], vocab=list("abcde"))
        >>> view = coilvis.page(rec, k=3)
        >>> len(view.model("page_topk_source").data["pos"]), view.model("page_topk_filter").indices
        (12, [9, 10, 11])
    """
    if isinstance(record, Comparison):  # two runs side by side: the diff page, with the options set here
        from coilvis.views.diff.dispatch import for_comparison

        return for_comparison("page", record, locals(), page)
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"record: expected a coilvis Record, got {type(record).__name__}")
    k = check_k(k, available=record.k)
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    label_whitespace(whitespace)
    coil_kw = {"whitespace": whitespace, **_options(coil_options, "coil_options", coil)}
    lens_kw = _lens_options(lens_options, whitespace)

    coil_view = coil(record, **coil_kw)
    coil_layout = coil_view.layout
    segments = coil_view.model("coil_segment_source")
    coil_view.doc.remove_root(coil_layout)  # it joins the page's document
    side, table_filter, header = _topk_table(record, k=k)
    prompt_fig, prompt = _prompt_panel(record, whitespace=whitespace)
    play = coil_layout.select_one({"name": "coil_unwind_play"})
    scripts = _link(record, segments, prompt=prompt, table_filter=table_filter, header=header, k=k, play=play)
    views = column(row(coil_layout, side), *lens_note(record, width=PAGE_LENS_MAX_WIDTH_PX), name="page_views")
    root = column(prompt_fig, views, name="page_root")  # the prompt's frame not aligned to the lens's
    remember_models(root, {**scripts, "page_views": views})
    parts = join_lens(root, {**scripts, "page_views": views}, record, lens_kw) if record.lens is not None else None
    still = parts.still if parts is not None else []  # a PNG of the page shows the whole lens
    view = View(root, title=title if title is not None else "coilvis", kind="page", still=still)
    for callback in getattr(coil_view, "ready", ()):  # e.g. the unwind's autoplay
        view.doc.js_on_event("document_ready", callback)
    return view
