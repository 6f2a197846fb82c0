"""The top movers of a Comparison as a table: the tokens whose probability rose or fell most at a position.

The rows of every compared position are computed once, in Python, into one data source
(``diff_movers_source``, position-major); the table shows one position's rows through an
``IndexFilter`` (``diff_movers_filter``), so a page changes position by changing numbers
only, and no token text is ever part of JavaScript source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.layouts import column
from bokeh.models import (
    CDSView,
    ColumnDataSource,
    DataTable,
    Div,
    IndexFilter,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)

from coilvis.comparison import Comparison
from coilvis.errors import check_int
from coilvis.tokens import display
from coilvis.views.diff.data import check_comparison
from coilvis.views.output import View

__all__ = ["FALL", "RISE", "header_text", "movers_parts", "movers_rows", "movers_table"]

#: What the table's first column says of a row.
RISE = "\u2191 rose"
FALL = "\u2193 fell"
#: What a probability a record did not keep shows as.
NOT_KEPT = "not kept"


def movers_rows(comparison: Comparison) -> dict[str, Any]:
    """The movers of every compared position, as data-source columns.

    Shapes: every column has ``n_pos * 2 * n_movers`` rows, position-major: rows
    ``pos * 2m .. pos * 2m + 2m - 1`` belong to position ``pos``, its rises (largest
    first) then its falls, as :meth:`coilvis.comparison.Comparison.movers` orders them.

    Returns:
        Columns ``pos`` (int32), ``direction`` (:data:`RISE` or :data:`FALL`),
        ``token`` (the exact display label of :func:`coilvis.tokens.display`),
        ``token_id`` (int64), ``prob_a``, ``prob_b`` and ``change`` (float32,
        ``prob_b - prob_a``; NaN where a record did not keep the token).
    """
    c = comparison
    m = c.n_movers
    ids = np.concatenate([c.rise_ids, c.fall_ids], axis=1)  # (n_pos, 2m)
    prob_a = np.concatenate([c.rise_prob_a, c.fall_prob_a], axis=1)
    prob_b = np.concatenate([c.rise_prob_b, c.fall_prob_b], axis=1)
    texts = {int(i): display(c.token_text(int(i))) if i >= 0 else "" for i in np.unique(ids).tolist()}
    return {
        "pos": np.repeat(np.arange(c.n_pos, dtype=np.int32), 2 * m),
        "direction": ([RISE] * m + [FALL] * m) * c.n_pos,
        "token": [texts[i] for i in ids.reshape(-1).tolist()],
        "token_id": ids.reshape(-1).astype(np.int64),
        "prob_a": prob_a.reshape(-1).astype(np.float32),
        "prob_b": prob_b.reshape(-1).astype(np.float32),
        "change": (prob_b - prob_a).reshape(-1).astype(np.float32),
    }


def header_text(pos: int, n_movers: int) -> str:
    """The table's header for compared position ``pos`` (the page's script writes the same)."""
    return f"Top {n_movers} rising and falling tokens at position {pos}"


def movers_parts(comparison: Comparison, *, pos: int = -1, width: int = 520) -> tuple[Any, IndexFilter, Div]:
    """The movers table's column (``diff_movers``): a header, the table over
    ``diff_movers_source`` showing position ``pos``, and a note.

    Returns:
        ``(column, filter, header)``: the column, the table's ``IndexFilter`` and its header.
    """
    c = comparison
    pos = c.check_pos(pos)
    per = 2 * c.n_movers
    source = ColumnDataSource(movers_rows(c), name="diff_movers_source")
    table_filter = IndexFilter(indices=list(range(pos * per, pos * per + per)), name="diff_movers_filter")
    prob = NumberFormatter(format="0.00%", nan_format=NOT_KEPT)
    table = DataTable(
        source=source,
        view=CDSView(filter=table_filter),
        columns=[
            TableColumn(field="direction", title="", width=60),
            TableColumn(field="token", title="token", formatter=StringFormatter(), width=150),
            TableColumn(field="token_id", title="id", formatter=NumberFormatter(format="0"), width=60),
            TableColumn(field="prob_a", title="p in a", formatter=prob, width=80),
            TableColumn(field="prob_b", title="p in b", formatter=prob, width=80),
            TableColumn(field="change", title="change", formatter=NumberFormatter(format="+0.00%", nan_format="?"), width=80),
        ],
        index_position=None, sortable=False, reorderable=False, selectable=False,
        width=width, height=min(30 + 25 * per, 560), name="diff_movers_table",
    )  # fmt: skip
    # text, never markup or mathematics
    header = Div(text=header_text(pos, c.n_movers), render_as_text=True, disable_math=True,
                 name="diff_movers_header", styles={"font-weight": "bold"})  # fmt: skip
    text = "The tokens whose next-token probability rose or fell most from run a to run b at the selected position."
    if np.isnan(source.data["prob_a"]).any() or np.isnan(source.data["prob_b"]).any():
        text += f" '{NOT_KEPT}': the record kept too few top tokens to know it."
    note = Div(
        text=text,
        width=width - 40, render_as_text=True, disable_math=True, styles={"color": "#555555", "font-size": "12px"},
        name="diff_movers_note",
    )  # fmt: skip
    return column(header, table, note, name="diff_movers"), table_filter, header


def movers_table(comparison: Comparison, *, pos: int = -1, width: int = 520) -> View:
    """The top movers of one compared position as a table (what :meth:`Comparison.movers` returns, drawn).

    Args:
        comparison: the Comparison.
        pos: compared position (negative counts from the end; default the last).
        width: the table's width in pixels.

    Returns:
        A :class:`~coilvis.views.output.View` of the header, the table
        (``diff_movers_table``) and a note.

    Raises:
        CoilvisTypeError: ``comparison`` is not a Comparison, ``pos`` not an int.
        CoilvisValueError: ``pos`` outside the compared positions, ``width`` < 200.
    """
    c = check_comparison(comparison)
    width = check_int("width", width, minimum=200)
    layout, _, _ = movers_parts(c, pos=pos, width=width)
    return View(layout, title="coilvis \u00b7 top movers", kind="diff_movers")
