"""Both prompts of a Comparison as text: one box per token, folded into lines, the tokens that differ marked.

Token text reaches the page only as data (``diff_prompt_a_source``,
``diff_prompt_b_source``), drawn on the canvas by a text glyph.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np
from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, HoverTool, Range1d, TapTool
from bokeh.plotting import figure

from coilvis.comparison import Comparison
from coilvis.errors import check_int
from coilvis.tokens import display, label_whitespace
from coilvis.views._style import plain_text
from coilvis.views.diff.coil import DIFFERS_COLOR
from coilvis.views.diff.data import run_name

__all__ = ["PROMPT_LINE_CHARS", "prompt_panel", "prompt_rows"]

#: Characters per line of a prompt panel before it folds.
PROMPT_LINE_CHARS = 100
_CHAR_PX = 8  # the panel's monospace 13 px font advances ~7.8 px a character
_LINE_PX = 22
_MAX_LINES = 8  # more lines pan vertically; the panel opens on the last ones
#: Box fills: a compared token, one that differs between the prompts, one outside the compared positions.
_FILL, _FILL_DIFFERS, _FILL_OUTSIDE = "#f3f3f3", "#c9f2d8", "#ffffff"
_LINE, _TEXT_OUTSIDE = "#d6d6d6", "#9a9a9a"


def _cells(text: str) -> int:
    """Monospace cells a label takes: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fold(raws: list[str], labels: list[str], line_chars: int) -> tuple[list[float], list[int], list[int]]:
    """Centres, widths (cells) and line numbers of labels laid out left to right, folding
    before a label that would pass ``line_chars`` and after a token ending in a newline."""
    xs, widths, lines = [], [], []
    col, line = 0.0, 0
    for raw, label in zip(raws, labels, strict=True):
        width = max(_cells(label), 1)
        if col > 0 and col + width > line_chars:
            col, line = 0.0, line + 1
        xs.append(col + width / 2)
        widths.append(width)
        lines.append(line)
        col += width + 0.5
        if raw.endswith("\n"):
            col, line = 0.0, line + 1
    return xs, widths, lines


def prompt_rows(comparison: Comparison, run: str, *, line_chars: int = PROMPT_LINE_CHARS, whitespace: str = "subtle") -> dict[str, Any]:
    """One run's prompt as folded lines of token boxes, as data-source columns.

    Shapes: every column has one row per position of the run's record (all of them,
    compared or not), in order.

    Args:
        comparison: the Comparison.
        run: ``"a"`` or ``"b"``.
        line_chars: monospace cells per line before the prompt folds.
        whitespace: leading and trailing spaces in ``label``: ``"subtle"``, ``"markers"``
            or ``"plain"``.

    Returns:
        Columns ``pos`` (the record's position, int32), ``cpos`` (the compared position,
        -1 outside them), ``token_id`` (int32), ``text`` (the exact display label, for
        the hover), ``label`` (what the box shows), ``differs`` (uint8: the other
        prompt has another token there), ``fill``, ``line_color``, ``text_color``,
        ``x``, ``width`` (cells), ``line`` (int32) and ``y`` (``-line``).
    """
    line_chars = check_int("line_chars", line_chars, minimum=1)
    mode = label_whitespace(whitespace)
    c = comparison
    record, offset = (c.a, c.offset_a) if run == "a" else (c.b, c.offset_b)
    n = record.seq_len
    cpos = np.arange(n, dtype=np.int32) - offset
    cpos[(cpos < 0) | (cpos >= c.n_pos)] = -1
    differs = np.zeros(n, dtype=np.uint8)
    differs[offset : offset + c.n_pos] = c.differs
    labels = [display(t, whitespace=mode) for t in record.tokens]
    labels = [x if _cells(x) <= line_chars else display(t, max_len=line_chars, whitespace=mode) for x, t in zip(labels, record.tokens, strict=True)]
    xs, widths, lines = _fold(list(record.tokens), labels, line_chars)
    line_arr = np.asarray(lines, dtype=np.int32)
    fill = [_FILL_OUTSIDE if p < 0 else _FILL_DIFFERS if d else _FILL for p, d in zip(cpos.tolist(), differs.tolist(), strict=True)]
    return {
        "pos": np.arange(n, dtype=np.int32),
        "cpos": cpos,
        "token_id": record.token_ids.astype(np.int32),
        "text": [display(t) for t in record.tokens],
        "label": labels,
        "differs": differs,
        "fill": fill,
        "line_color": [DIFFERS_COLOR if d else _LINE for d in differs.tolist()],
        "text_color": ["#000000" if p >= 0 else _TEXT_OUTSIDE for p in cpos.tolist()],
        "x": np.asarray(xs, dtype=np.float64),
        "width": np.asarray(widths, dtype=np.float64),
        "line": line_arr,
        "y": -line_arr.astype(np.float64),
    }


def prompt_panel(comparison: Comparison, run: str, *, whitespace: str = "subtle") -> tuple[Any, ColumnDataSource]:
    """A run's prompt as text (``diff_prompt_a`` or ``diff_prompt_b``) over
    ``diff_prompt_<run>_source``; the tokens that differ between the prompts are green,
    the selected one (the last compared position at first) yellow, and a tap selects one.

    Returns:
        ``(figure, source)``.
    """
    rows = prompt_rows(comparison, run, whitespace=whitespace)
    source = ColumnDataSource(rows, name=f"diff_prompt_{run}_source")
    offset = comparison.offset_a if run == "a" else comparison.offset_b
    source.selected.indices = [offset + comparison.n_pos - 1]
    n_lines = int(rows["line"].max()) + 1
    used = max(float((rows["x"] + rows["width"] / 2).max()), 10.0)
    shown = min(n_lines, _MAX_LINES)
    fig = figure(
        name=f"diff_prompt_{run}",
        title=plain_text(f"Prompt {run_name(comparison, run)} (tap a token to select its position)"),
        x_range=Range1d(-0.5, used + 0.5, bounds="auto"),
        y_range=Range1d(-(n_lines - 0.5), -(n_lines - shown) + 0.5, bounds=(-(n_lines - 0.5), 0.5)),
        frame_width=int((used + 1) * _CHAR_PX), frame_height=shown * _LINE_PX,
        tools="ypan" if n_lines > shown else "", toolbar_location=None, min_border=4, outline_line_color=None,
        x_axis_location=None, y_axis_location=None,
    )  # fmt: skip
    fig.grid.visible = False
    boxes = fig.rect(
        x="x", y="y", width="width", height=0.82, source=source, name=f"diff_prompt_{run}_boxes",
        fill_color="fill", line_color="line_color", line_width=1.5,
        selection_fill_color="#ffd54f", selection_line_color="#b07f00",
        nonselection_fill_color="fill", nonselection_line_color="line_color",
        nonselection_fill_alpha=1.0, nonselection_line_alpha=1.0,
    )  # fmt: skip
    fig.text(
        x="x", y="y", text="label", source=source, name=f"diff_prompt_{run}_text", text_color="text_color",
        text_align="center", text_baseline="middle", text_font=value("monospace"), text_font_size="13px",
        nonselection_text_alpha=1.0,
    )  # fmt: skip
    fig.add_tools(
        TapTool(renderers=[boxes]),
        HoverTool(renderers=[boxes], tooltips=[("position", "@pos"), ("token", "@text"), ("id", "@token_id")]),
    )
    return fig, source
