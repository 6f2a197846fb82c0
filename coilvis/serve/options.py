"""What the explorer draws and runs for a tab's settings: view options, pages detached for the tab, edited prompts and their comparison.

The views are the ones every coilvis page uses (:func:`coilvis.page`,
:func:`coilvis.views.diff.diff_page`); this module turns the tab's widgets into their
options and moves the drawn layout out of the view's own Document so the tab can show it.
"""

from __future__ import annotations

from typing import Any

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisValueError
from coilvis.record import Record
from coilvis.serve.widgets import forget_old_models
from coilvis.views.output import View

__all__ = ["compare_edit", "detach", "draw_diff", "draw_lens", "draw_page", "draw_page_view", "edited_prompt", "lens_rows", "view_options"]


def view_options(controls: Any, record: Record) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(coil_options, lens_options)`` of :func:`coilvis.page` from a tab's widgets.

    Raises:
        CoilvisValueError: the head or layer asked for does not exist in the record.
    """
    # the unwind, paused until ▶ play (each run is drawn whole first)
    coil: dict[str, Any] = {"layout": controls.layout.value, "color": controls.color.value, "animate": True, "autoplay": False}
    mode = controls.attention.value
    controls.head.disabled = mode != "head"
    if mode != "off" and record.attention is not None:
        n_layers, n_heads = record.attention.n_layers, record.attention.n_heads
        layer = int(controls.layer.value if controls.layer.value is not None else -1)
        if not -1 <= layer < n_layers:
            raise CoilvisValueError(f"layer: the model has {n_layers} layers (0..{n_layers - 1}, or -1 for the last)")
        if mode == "head":
            head = int(controls.head.value or 0)
            if not 0 <= head < n_heads:
                raise CoilvisValueError(f"head: the model has {n_heads} heads per layer (0..{n_heads - 1})")
            coil["attention"] = (n_layers - 1 if layer == -1 else layer, head)
        else:
            # every layer (the page's own control switches, opening on the last), or one
            coil["attention"] = mode if layer == -1 else (layer, mode)
    lens = {"stat": controls.lens_stat.value}
    return coil, lens


def detach(view: View) -> Any:
    """The view's layout, taken out of the view's own Document (so a tab can show it)."""
    layout = view.layout
    view.doc.remove_root(layout)
    return layout


def draw_page_view(record: Record, coil_options: dict[str, Any], lens_options: dict[str, Any]) -> View:
    """:func:`coilvis.page` of a record with the tab's options."""
    from coilvis.views.page import page

    return page(record, coil_options=coil_options, lens_options=lens_options if record.lens is not None else None)


def lens_rows(model: Any) -> tuple[str, ...]:
    """The names of the rows ``coilvis.run(..., lens=True)`` decodes for ``model`` (a
    transformers or TransformerLens model): ``"embed"``, ``"0"``, ``"1"``, ..."""
    from coilvis.models.anatomy import n_layers_of, residual_layout

    return tuple(row.name for row in residual_layout(n_layers_of(model)))


def draw_page(record: Record, coil_options: dict[str, Any], lens_options: dict[str, Any], *, lens_pending: tuple[str, ...] = ()) -> Any:
    """The page's layout, ready for a tab; with ``lens_pending`` (the rows of a lens being
    computed), the lens's frame where it will go (:func:`draw_lens` fills it)."""
    layout = detach(draw_page_view(record, coil_options, lens_options))
    if lens_pending and record.lens is None:
        from coilvis.views.page import add_lens_frame

        add_lens_frame(layout, record, lens_pending, lens_options=lens_options)
    # should a lens replace its frame; on every page, so pages of the same options have
    # the same shape (a tab grafts a new page onto the one it shows)
    forget_old_models(layout.select_one({"name": "page_views"}))
    return layout


def draw_lens(layout: Any, record: Record, lens_options: dict[str, Any]) -> None:
    """Put ``record``'s lens into a tab's page drawn (by :func:`draw_page`) before the lens
    was computed: into its frame, in place."""
    from coilvis.views.page import add_lens

    add_lens(layout, record, lens_options=lens_options)


def draw_diff(comparison: Comparison) -> Any:
    """The diff page's layout, ready for a tab."""
    from coilvis.views.diff import diff_page

    return detach(diff_page(comparison))


def edited_prompt(record: Record, pos: int, replacement: str) -> str:
    """The record's prompt with the token at ``pos`` replaced by ``replacement``.

    The prompt is rebuilt from the tokens' texts, so text outside the tokens (none for
    the usual tokenizers) is kept as the tokens hold it.

    Raises:
        CoilvisValueError: ``pos`` is not a position of the record.
    """
    if not 0 <= pos < record.seq_len:
        raise CoilvisValueError(f"pos: {pos} is not a position of the run (0..{record.seq_len - 1})")
    return "".join(record.tokens[:pos]) + replacement + "".join(record.tokens[pos + 1 :])


def compare_edit(loaded: Any, before: str, after: str, *, lens: bool, progress: Any) -> Comparison:
    """Run the edited prompt and compare it with the prompt before, on one model.

    An edit that changes the number of tokens compares the last positions
    (``align="end"``).
    """
    from coilvis.runner import compare
    from coilvis.runner.prompt import encode_prompt

    same = encode_prompt(loaded, before, prepend_bos=None).shape[0] == encode_prompt(loaded, after, prepend_bos=None, name="the edited prompt").shape[0]
    return compare(
        before, after, model=loaded, lens=lens, attention=True, align=None if same else "end",
        label_a="before", label_b="after", progress=progress,
    )
