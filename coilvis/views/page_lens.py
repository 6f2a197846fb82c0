"""A page's lens and its links: drawn with the page, or joined later to a page drawn before the run's lens was computed.

:func:`join_lens` puts a record's lens under the page's coil and table and links it
(the coil's and the prompt's scripts outline and pan its column; tapping a cell selects
its position everywhere). A page drawn while the lens is still being computed can hold
its frame first (:func:`frame_lens`: the axes, the colour bar and the links, no cells,
the title saying the lens is coming); :func:`join_lens` then fills that frame in place
(:func:`coilvis.views.graft.graft`), so a browser showing the page repaints the lens
rather than building it and laying the page out again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from bokeh.models import CustomJS

from coilvis.record import LensStats, Record
from coilvis.views._style import plain_text
from coilvis.views.graft import graft
from coilvis.views.lens import LensFigure, lens_figure

__all__ = ["JOINS", "LENS_PENDING", "SELECT_JS", "frame_lens", "join_lens", "named_models", "remember_models"]

#: The lens's title while it is being computed (:func:`frame_lens`).
LENS_PENDING = "Computing the logit lens\u2026"

# Selects position `pos` everywhere: the table's rows, its header, the lens column.
# Only numbers flow through here: positions from data-source columns, k from Python.
SELECT_JS = """
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
  // while the unwind plays, the lens outlines its position but stays where the reader left it
  const following = play != null && play.label.startsWith("\u275a")
  if (x_range != null && !following && pos >= lo && pos < hi) {
    const w = x_range.end - x_range.start
    if (pos < x_range.start + 0.5 || pos > x_range.end - 0.5) {
      let s = Math.min(Math.max(pos - w / 2, lo - 0.5), hi - 0.5 - w)
      s = Math.max(s, lo - 0.5)
      x_range.setv({start: s, end: s + w})
    }
  }
}
if (prompt != null) {
  const sel = prompt.selected.indices
  if (!(sel.length == 1 && sel[0] == pos)) prompt.selected.indices = [pos]
}
if (segments != null) {
  const sel = segments.selected.indices
  if (!(sel.length == 1 && sel[0] == pos)) segments.selected.indices = [pos]
}
"""

#: The models of a page that the lens joins.
JOINS = ("page_views", "page_select_coil", "page_select_prompt")
_SCRIPTS = ("page_select_coil", "page_select_prompt")


# The models each page root's lens joins, kept when the page is drawn (a walk of a page
# of hundreds of models takes tens of milliseconds, which a live explorer would spend
# after each lens is computed).
_NAMED: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def remember_models(root: Any, named: dict[str, Any]) -> None:
    """Keep the models of the page under ``root`` that the lens joins (:data:`JOINS`)."""
    _NAMED[root] = dict(named)


def named_models(root: Any) -> dict[str, Any]:
    """The page's models that the lens joins (:data:`JOINS`), by name: those kept when the
    page was drawn while they are still its own, else found in one walk of the page."""
    named = _NAMED.get(root)
    if named is not None and len(root.children) > 1 and root.children[1] is named.get("page_views"):
        return dict(named)
    return {m.name: m for m in root.references() if m.name in JOINS}


def _link_lens(named: dict[str, Any], record: Record, lens: LensFigure) -> None:
    """The lens joins the links of a page (``named``: its models by name): a selected
    position outlines its column and pans the lens to it (but not while the unwind
    plays: the lens stays on the window the reader sees, the last positions at first),
    and tapping a lens cell selects its position everywhere."""
    n = record.seq_len
    lo, hi = int(lens.positions[0]), int(lens.positions[-1]) + 1
    if lo <= n - 1 < hi:
        lens.highlight.data = {"pos": [n - 1]}
    joined = {"highlight": lens.highlight, "x_range": lens.figure.x_range, "lo": lo, "hi": hi}
    callbacks = [named[name] for name in _SCRIPTS]
    for callback in callbacks:
        callback.args = {**callback.args, **joined}
    selected = lens.cells.selected  # linked once: a link made before is replaced
    selected.js_property_callbacks = {
        event: [c for c in scripts if getattr(c, "name", None) != "page_select_lens"]
        for event, scripts in selected.js_property_callbacks.items()
    }
    selected.js_on_change(
        "indices", CustomJS(args={**callbacks[1].args, "source": lens.cells}, code=SELECT_JS, name="page_select_lens")
    )


def _shown_lens(named: dict[str, Any]) -> Any:
    """The lens figure the page shows (a frame, or a lens drawn before), or None."""
    children = named["page_views"].children
    return children[1] if len(children) > 1 and getattr(children[1], "name", None) == "lens_figure" else None


def _fill(shown: Any, named: dict[str, Any], record: Record, fresh: LensFigure) -> LensFigure | None:
    """Make the lens the page shows (``shown``, linked) equal to ``fresh`` (the record's
    lens, unlinked), in place; None, with nothing changed, when their shapes differ.
    The column the reader outlined stays outlined."""
    copies = {name: CustomJS(args=dict(named[name].args), code=SELECT_JS, name=name) for name in _SCRIPTS}
    _link_lens(copies, record, fresh)  # linked like the one shown, not to the page
    highlight = named["page_select_coil"].args.get("highlight")
    if highlight is not None:
        fresh.highlight.data = dict(highlight.data)
    twin = graft(shown, fresh.figure)
    if twin is None:
        return None
    return LensFigure(
        figure=shown, cells=twin(fresh.cells), strings=twin(fresh.strings), highlight=twin(fresh.highlight),
        rows=fresh.rows, positions=fresh.positions, scale=fresh.scale, still=twin(fresh.still),
    )  # fmt: skip


def join_lens(root: Any, named: dict[str, Any], record: Record, lens_kw: dict[str, Any]) -> LensFigure:
    """The lens of ``record`` (options checked) under the coil and the table of the page
    under ``root`` (``named``: :func:`named_models`), linked: filling the frame or lens
    the page shows when it has the same shape, else in its place. In a Document (a
    server's), new models join with its model index frozen, so it is recomputed once,
    not once a change; filling a frame adds none, so it is not recomputed at all."""
    parts = lens_figure(record, **lens_kw)
    shown = _shown_lens(named)
    filled = _fill(shown, named, record, parts) if shown is not None else None
    if filled is not None:
        return filled
    doc = root.document
    with doc.models.freeze() if doc is not None else contextlib.nullcontext():
        _link_lens(named, record, parts)
        views = named["page_views"]
        views.children = [views.children[0], parts.figure]
    return parts


def stand_in_lens(record: Record, layer_names: Sequence[str]) -> LensStats:
    """Lens statistics of the shape a run's lens will have (``layer_names`` rows), every
    row the record's own output: what a frame is drawn from before the lens exists."""
    n_rows, seq_len = len(layer_names), record.seq_len

    def rows(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (n_rows, *a.shape))

    return LensStats(
        layer_names=tuple(layer_names),
        topk_ids=rows(record.topk_ids.astype(np.int32)),
        topk_probs=rows(record.topk_probs),
        entropy=rows(record.entropy),
        kl_to_final=np.zeros((n_rows, seq_len), np.float32),
        next_prob=rows(np.exp(record.next_logprob)),
        next_rank=rows(record.next_rank.astype(np.int32)),
        final_top_prob=rows(record.topk_probs[:, 0]),
        final_top_rank=np.ones((n_rows, seq_len), np.int32),
    )


def frame_lens(root: Any, named: dict[str, Any], record: Record, layer_names: Sequence[str], lens_kw: dict[str, Any]) -> LensFigure:
    """The frame of the lens a run will have (``layer_names`` rows; ``record``, its
    forward pass, has no lens yet) under the coil and the table of the page under
    ``root``, linked: its axes and colour bar, no cells, and :data:`LENS_PENDING` for a
    title. :func:`join_lens` fills it."""
    stand_in = dataclasses.replace(record, lens=stand_in_lens(record, layer_names))
    parts = join_lens(root, named, stand_in, lens_kw)
    parts.cells.data = {name: np.asarray(column)[:0] for name, column in parts.cells.data.items()}
    for renderer in parts.figure.renderers:
        if renderer.name == "lens_match_renderer":
            renderer.view.filter.indices = []
    parts.figure.title.text = plain_text(LENS_PENDING)
    return parts
