"""One page with everything: the coil, the lens and the top-k table, linked.

``coilvis.page(record)`` puts the coil (:func:`coilvis.views.coil.coil`) and, next to
it, the table of the model's top next tokens at the selected position; the logit lens
(:func:`coilvis.views.lens.lens`) goes underneath when the record has lens statistics.
Tapping a coil segment or a lens cell selects that position: the table shows its top-k,
the lens outlines its column (and pans to it), and a lens tap also selects the coil's
segment.

The table's rows for every position are computed once, in Python, into one data source
(``page_topk_source``, with a ``pos`` column); the page script only changes which rows
an ``IndexFilter`` lets through, so no token text is ever part of JavaScript source.

Named models: ``page_root``, ``page_side``, ``page_topk_source``,
``page_topk_filter`` (its ``indices`` are the selected position's rows),
``page_topk_table``, ``page_topk_header``, ``page_select_coil`` and
``page_select_lens`` (the two scripts), plus the coil's (``coil_*``) and the lens's
(``lens_*``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    CustomJS,
    DataTable,
    Div,
    IndexFilter,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import check_k
from coilvis.record import Record
from coilvis.tokens import display
from coilvis.views.coil import coil
from coilvis.views.lens import LensFigure, lens_figure
from coilvis.views.output import View

__all__ = ["page", "topk_rows"]

_CHECK = "\u2713"  # ✓

# Selects position `pos` everywhere: the table's rows, its header, the lens column.
# Only numbers flow through here: positions from data-source columns, k from Python.
_SELECT_JS = """
const idx = cb_obj.indices
if (idx == null || idx.length == 0) return
const pos = Math.trunc(Number(source.data.pos[idx[0]]))
if (!Number.isFinite(pos) || pos < 0 || pos >= seq_len) return
const rows = []
for (let j = 0; j < k; j++) rows.push(pos * k + j)
filter.indices = rows
header.text = "Top " + k + " next tokens at position " + pos
if (highlight != null) {
  highlight.data = {pos: [pos]}
  if (x_range != null && pos >= lo && pos < hi) {
    const w = x_range.end - x_range.start
    if (pos < x_range.start + 0.5 || pos > x_range.end - 0.5) {
      let s = Math.min(Math.max(pos - w / 2, lo - 0.5), hi - 0.5 - w)
      s = Math.max(s, lo - 0.5)
      x_range.setv({start: s, end: s + w})
    }
  }
}
if (segments != null) {
  const sel = segments.selected.indices
  if (!(sel.length == 1 && sel[0] == pos)) segments.selected.indices = [pos]
}
"""


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
            TableColumn(field="token", title="next token", formatter=StringFormatter(), width=160),
            TableColumn(field="token_id", title="id", formatter=NumberFormatter(format="0"), width=60),
            TableColumn(field="prob", title="probability", formatter=NumberFormatter(format="0.00%"), width=90),
            TableColumn(field="logit", title="logit", formatter=NumberFormatter(format="0.00"), width=70),
            TableColumn(field="actual", title="actual", width=50),
        ],
        index_position=None,
        sortable=False,
        reorderable=False,
        selectable=False,
        width=470,
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
        width=420,
        render_as_text=True,
        disable_math=True,
        styles={"color": "#555555", "font-size": "12px"},
        name="page_topk_note",
    )
    return column(header, table, note, name="page_side"), table_filter, header


def _link(
    record: Record, segments: ColumnDataSource, lens: LensFigure | None, *, table_filter: IndexFilter, header: Div, k: int
) -> None:
    """Tapping a coil segment or a lens cell selects its position everywhere: the table's
    rows and header, the lens's column (panned to), the coil's segment."""
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
    }
    if lens is not None:
        lo, hi = int(lens.positions[0]), int(lens.positions[-1]) + 1
        args.update(highlight=lens.highlight, x_range=lens.figure.x_range, lo=lo, hi=hi)
        if lo <= n - 1 < hi:
            lens.highlight.data = {"pos": [n - 1]}
    segments.selected.js_on_change(
        "indices", CustomJS(args={**args, "source": segments}, code=_SELECT_JS, name="page_select_coil")
    )
    if lens is not None:
        lens.cells.selected.js_on_change(
            "indices",
            CustomJS(args={**args, "source": lens.cells, "segments": segments}, code=_SELECT_JS, name="page_select_lens"),
        )


def page(
    record: Record,
    *,
    coil_options: Mapping[str, Any] | None = None,
    lens_options: Mapping[str, Any] | None = None,
    k: int = 10,
    title: str | None = None,
) -> View:
    """The coil, the lens and the top-k table of one Record on one page, linked.

    Tapping a coil segment selects its position: the table lists that position's top
    ``k`` next tokens (``✓`` on the token that actually came next), and the lens
    outlines that column and pans to it. Tapping a lens cell does the same and selects
    the coil's segment. A record without lens statistics gives the coil and the table.

    Args:
        record: the Record (``coilvis.run(prompt, lens=True)`` for the lens).
        coil_options: keyword options for :func:`coilvis.coil` (``layout``, ``color``,
            ``attention``, ...; ``attention="mean"`` or ``"max"`` opens on the last layer).
        lens_options: keyword options for :func:`coilvis.lens` (``stat``, ``stride``,
            ``start``, ``end``, ``compare``, ...); ignored when the record has no lens.
        k: rows of the table (at most the ``k`` the record kept).
        title: the page title.

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
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"record: expected a coilvis Record, got {type(record).__name__}")
    k = check_k(k, available=record.k)
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    coil_kw = _options(coil_options, "coil_options", coil)
    lens_kw = _options(lens_options, "lens_options", lens_figure)

    coil_view = coil(record, **coil_kw)
    coil_layout = coil_view.layout
    segments = coil_view.model("coil_segment_source")
    coil_view.doc.remove_root(coil_layout)  # it joins the page's document
    side, table_filter, header = _topk_table(record, k=k)
    parts = lens_figure(record, **lens_kw) if record.lens is not None else None
    _link(record, segments, parts, table_filter=table_filter, header=header, k=k)
    if parts is not None:
        root = column(row(coil_layout, side), parts.figure, name="page_root")
    else:
        root = row(coil_layout, side, name="page_root")
    view = View(root, title=title if title is not None else "coilvis", kind="page")
    for callback in getattr(coil_view, "ready", ()):  # e.g. the unwind's autoplay
        view.doc.js_on_event("document_ready", callback)
    return view
