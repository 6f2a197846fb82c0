"""What the sunburst and the flame graph share: checks, the colour scale, one row of data per node, the tooltip, the zoom's common JavaScript.

Both views draw every node of a :class:`~coilvis.continuations.Tree` from one
``ColumnDataSource`` whose rows are the tree's nodes, in order. Its columns:

* the tree: ``parent``, ``depth`` (int32), ``x0``/``x1`` (float64, where the node lies
  on the root's unit interval, :meth:`~coilvis.continuations.Tree.spans`), ``has_kids``
  (uint8: a tap can zoom into it);
* colour: ``value`` (float32, the statistic; NaN at "other" nodes and the root, drawn
  grey) and ``fill_alpha``;
* the hover (all text made by :func:`coilvis.tokens.display`, so exact and with its
  whitespace visible): ``label`` (the token, cut to ``label_chars`` characters; the
  prompt's end at the root), ``label_chars`` (its length, for the page's label fitting),
  ``token`` (the whole token, spaces marked), ``path_label`` (the whole continuation
  after the prompt; the prompt's end at the root), ``id_text``, and the
  numbers ``cond_pct``, ``path_pct``, ``entropy_bits``.

Token text reaches the page only in those columns; the zoom scripts move numbers and
read no text. Labels are drawn only where they fit: a label takes about
:data:`CHAR_PX` pixels a character at :data:`FONT_PX` pixels.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
from bokeh.models import Title

from coilvis.continuations import OTHER_LABEL, Tree, join_texts
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.options import LN2
from coilvis.tokens import display, label_whitespace
from coilvis.views import _style

__all__ = [
    "CHAR_PX",
    "COLORS",
    "FONT_PX",
    "OTHER_COLOR",
    "ZOOM_JS_HELPERS",
    "check_tree",
    "node_columns",
    "tree_scale",
    "tree_tooltip",
]

#: Label font size and the width a character takes at it, in pixels (a little generous).
FONT_PX = 11
CHAR_PX = 6.6
#: Fill of "other" nodes: the mass outside a node's kept children.
OTHER_COLOR = "#bdbdbd"
#: Fill opacity of the root (the prompt), lighter than the tokens around it.
ROOT_ALPHA = 0.35
#: Characters of the prompt shown in the hover of the root (its end).
PROMPT_CHARS = 300

#: ``color=`` values: (column title with unit, legend sentence, default palette, reversed).
COLORS: dict[str, tuple[str, str, str, bool]] = {
    "prob": (
        "probability given the path before it (%)",
        "Colour: the probability of each token given the tokens before it (bright = unlikely).",
        "Viridis",
        True,
    ),
    "path_prob": (
        "probability of the whole continuation (%)",
        "Colour: the probability of the whole continuation up to each token (bright = unlikely).",
        "Viridis",
        True,
    ),
    "entropy": (
        "entropy of the distribution it was chosen from (bits)",
        "Colour: the entropy of the distribution each token was chosen from (bright = uncertain).",
        "Magma",
        False,
    ),
}


def check_tree(tree: Any) -> Tree:
    """``tree`` if it is a :class:`~coilvis.continuations.Tree`."""
    if not isinstance(tree, Tree):
        raise CoilvisTypeError(f"tree: expected a coilvis.Tree (from coilvis.tree or Tree.load), got {type(tree).__name__}")
    return tree


def tree_scale(tree: Tree, color: Any, palette: Any) -> tuple[_style.ColorScale, np.ndarray]:
    """The colour scale of ``color`` and each node's value (NaN at the root and "other" nodes).

    Raises:
        CoilvisValueError: an unknown ``color`` or a bad ``palette``.
    """
    if not isinstance(color, str) or color not in COLORS:
        raise CoilvisValueError(f"color: expected one of {sorted(COLORS)}, got {color!r}")
    title, legend, default, reverse = COLORS[color]
    if color == "entropy":
        values = tree.entropy.astype(np.float64) / LN2
    else:
        values = (tree.cond_prob if color == "prob" else tree.path_prob).astype(np.float64) * 100.0
    values = np.where(tree.is_other | (np.arange(tree.n_nodes) == 0), np.nan, values)
    finite = values[np.isfinite(values)]
    high = 100.0 if color != "entropy" else max(1.0, float(finite.max()) if finite.size else 0.0)
    scale = _style.ColorScale(
        column="value",
        title=title,
        legend=legend,
        palette=_style.resolve_palette(palette, default=default, reverse=reverse),
        low=0.0,
        high=high,
        tick_format="%d%%" if color != "entropy" else None,
    )
    return scale, values.astype(np.float32)


def check_label_chars(label_chars: Any) -> int:
    """Most characters of a token's label drawn on a node (>= 1)."""
    return check_int("label_chars", label_chars, minimum=1)


def check_px(name: str, value: Any, *, minimum: int, maximum: int) -> int:
    """A size in pixels within ``[minimum, maximum]``."""
    value = check_int(name, value, minimum=minimum)
    if value > maximum:
        raise CoilvisValueError(f"{name}: expected at most {maximum}, got {value}")
    return value


def check_title(title: Any) -> str | None:
    """A str or None."""
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    return title


def default_title(tree: Tree) -> str:
    """The model, the depth and k."""
    model = display(tree.model_name, whitespace="none") if tree.model_name else "model"
    return f"{model} · continuations: depth {tree.depth_limit}, top {tree.k}"


def add_notes(p: Any, mapper: Any, scale: _style.ColorScale, *, width: int, notes: list[str], prefix: str, bar: str = "right") -> None:
    """The colour bar (``{prefix}_color_bar``, on the right or, across, below) and lines under
    the figure saying what it shows (wrapped to ``width`` px)."""
    color_bar = _style.color_bar(mapper, scale, name=f"{prefix}_color_bar")
    if bar == "below":  # a short figure (a shallow flame graph) has no height for a bar and its title
        color_bar.update(orientation="horizontal", width=min(width, 360), height=12)
    p.add_layout(color_bar, bar)
    chars_per_line = max(30, int((width + 60) / (0.56 * 11)))  # titles do not wrap by themselves
    for note in notes:
        for text in textwrap.wrap(note, chars_per_line):
            p.add_layout(
                Title(text=_style.plain_text(text), text_font_size="11px", text_font_style="normal", text_color="#555555", standoff=2),
                "below",
            )


def text_colors(values: np.ndarray, scale: _style.ColorScale) -> list[str]:
    """(n,) black or white, whichever reads on each node's fill (grey at NaN)."""
    fills = _style.map_colors(values, scale)
    return _style.text_colors([OTHER_COLOR if f == _style.NAN_COLOR else f for f in fills])


def _prompt_label(tree: Tree, chars: int, whitespace: str) -> str:
    """The end of the prompt, at most ``chars`` characters (``…`` first when cut)."""
    text = tree.prompt or join_texts(tree.prompt_tokens)
    tail = text[-chars:]
    shown = display(tail, whitespace=whitespace)
    return shown if len(tail) == len(text) else "…" + shown


def node_columns(tree: Tree, values: np.ndarray, *, label_chars: int, whitespace: str = "subtle") -> dict[str, Any]:
    """One row per node: the tree, colour and hover columns (see the module docstring).

    Args:
        tree: the tree.
        values: (n_nodes,) the colour statistic (:func:`tree_scale`).
        label_chars: most characters of a label drawn on a node.
        whitespace: how labels drawn on nodes show leading and trailing spaces:
            ``"markers"``, ``"subtle"`` or ``"plain"`` (see
            :func:`coilvis.tokens.label_whitespace`); the hover always marks them (``␣``).
    """
    mode = label_whitespace(whitespace)
    n = tree.n_nodes
    x0, x1 = tree.spans()
    kids = np.zeros(n, dtype=np.uint8)
    kids[tree.parent[1:]] = 1
    labels, tokens, paths, ids = _text_columns(tree, label_chars=label_chars, mode=mode)
    alpha = np.ones(n, dtype=np.float32)
    alpha[0] = ROOT_ALPHA
    return {
        "parent": tree.parent.astype(np.int32),
        "depth": tree.depth.astype(np.int32),
        "x0": x0,
        "x1": x1,
        "has_kids": kids,
        "value": values.astype(np.float32),
        "fill_alpha": alpha,
        "label": labels,
        "label_chars": np.array([len(s) for s in labels], dtype=np.int32),
        "token": tokens,
        "path_label": paths,
        "id_text": ids,
        "cond_pct": (tree.cond_prob.astype(np.float64) * 100).astype(np.float32),
        "path_pct": (tree.path_prob.astype(np.float64) * 100).astype(np.float32),
        "entropy_bits": (tree.entropy.astype(np.float64) / LN2).astype(np.float32),
    }


def _text_columns(tree: Tree, *, label_chars: int, mode: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """``label``, ``token``, ``path_label`` and ``id_text`` of every node.

    A continuation's raw text is its parent's plus its own token's (nodes come after
    their parents), so each is built once; a token's labels are made once per token id.
    """
    n = tree.n_nodes
    parent, token_id, is_other = tree.parent.tolist(), tree.token_id.tolist(), tree.is_other.tolist()
    kept = np.bincount(tree.parent[1:][~tree.is_other[1:]], minlength=n).tolist()
    shown: dict[int, tuple[str, str]] = {}
    raw = [""] * n
    labels = [_prompt_label(tree, label_chars, mode)]
    tokens, paths = ["(the prompt)"], [_prompt_label(tree, PROMPT_CHARS, "edges")]
    ids = [f"{len(tree.prompt_ids):,} prompt tokens"]
    for i in range(1, n):
        before = raw[parent[i]]
        if is_other[i]:
            raw[i] = before
            labels.append("other")
            tokens.append(OTHER_LABEL)
            paths.append(display(join_texts([before])) + " " + OTHER_LABEL if before else OTHER_LABEL)
            ids.append(f"{tree.d_vocab - kept[parent[i]]:,} tokens")
            continue
        t = token_id[i]
        if t not in shown:
            text = tree.token_text(t)
            shown[t] = (display(text, max_len=label_chars, whitespace=mode), display(text))
        raw[i] = before + tree.token_text(t)
        labels.append(shown[t][0])
        tokens.append(shown[t][1])
        paths.append(display(join_texts([raw[i]])))
        ids.append(f"id {t}")
    return labels, tokens, paths, ids


def tree_tooltip() -> str:
    """The hover's template: the continuation, the token and its id, both probabilities, the entropy."""
    return _style.tooltip_html(
        [
            ("continuation", "@path_label"),
            ("token", "@token  (@id_text)"),
            ("probability", "@cond_pct{%.3g}% given the tokens before it"),
            ("whole continuation", "@path_pct{%.3g}% after the prompt"),
            ("entropy", "@entropy_bits{%.2f} bits where it was chosen"),
        ]
    )


#: Tooltip formatters for :func:`tree_tooltip`'s numbers.
TOOLTIP_FORMATTERS = {"@cond_pct": "printf", "@path_pct": "printf", "@entropy_bits": "printf"}

#: JavaScript both zoom scripts start with: the tap that chose the new focus, and the
#: ancestor test. Reads ``source`` and ``state``; defines ``d``, ``n``, ``focus``
#: (returns early when the tap changes nothing) and ``inside(i, f)`` (whether node ``i``
#: is ``f`` or below it).
ZOOM_JS_HELPERS = """
const d = source.data, n = d.parent.length
const sel = source.selected.indices
if (sel.length === 0) return
const tapped = sel[0]
source.selected.indices = []
const current = state.data.focus[0]
let focus = current
if (tapped === current) focus = current === 0 ? 0 : d.parent[current]
else if (d.has_kids[tapped] === 1 || tapped === 0) focus = tapped
else if (is_ancestor_tap(tapped, current)) focus = tapped
if (focus === current) return
state.data = {focus: [focus]}
function inside(i, f) {
  let a = i
  while (d.depth[a] > d.depth[f]) a = d.parent[a]
  return a === f
}
function is_ancestor_tap(i, f) {
  return d.depth[i] < d.depth[f] && inside(f, i)
}
"""
