"""The explorer's controls: the prompt box, the Run button, the status line, the model chooser, the view settings, the edit panel and the downloads.

Every control carries a Bokeh name (``coilvis_*``) so tests and scripts can find it:
``coilvis_prompt`` (the prompt box), ``coilvis_run`` (Run), ``coilvis_status`` (the status
line), ``coilvis_model``, ``coilvis_lens`` (compute the lens), ``coilvis_layout``,
``coilvis_color``, ``coilvis_attention``, ``coilvis_layer``, ``coilvis_head``,
``coilvis_lens_stat``, ``coilvis_history``, ``coilvis_edit_position`` (what the edit
panel edits), ``coilvis_edit_text``, ``coilvis_edit_choices``, ``coilvis_edit_run``,
``coilvis_download_html``, ``coilvis_download_record``, ``coilvis_download_csv`` and
``coilvis_download`` (the data source a download goes through), ``coilvis_view`` (the
column the views are drawn in), ``coilvis_tabs`` (the run and its diff), ``coilvis_top``
(the prompt row) and ``coilvis_root`` (the rest; the status line is a root between them).

A download never puts file contents in JavaScript source: the server writes the file
as base64 into ``coilvis_download``'s data and a fixed script turns it into a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    Checkbox,
    ColumnDataSource,
    CustomJS,
    Div,
    Select,
    Spinner,
    TabPanel,
    Tabs,
    TextAreaInput,
    TextInput,
)

from coilvis.options import COIL_STATS, LENS_STATS

__all__ = ["ATTENTION_MODES", "Controls", "build_controls", "forget_old_models"]

#: The attention choices of the explorer: no arcs, the mean or max over a layer's heads, one head.
ATTENTION_MODES = ("off", "mean", "max", "head")

# Turns coilvis_download's data into a file (no file contents in the source: only data).
_DOWNLOAD_JS = """
const d = source.data
if (!d.name || d.name.length == 0) return
const bytes = Uint8Array.from(atob(d.b64[0]), (c) => c.charCodeAt(0))
const blob = new Blob([bytes], {type: d.mime[0]})
const a = document.createElement("a")
a.href = URL.createObjectURL(blob)
a.download = d.name[0]
document.body.appendChild(a)
a.click()
setTimeout(() => { URL.revokeObjectURL(a.href); a.remove() }, 1000)
"""


# After the server swaps a view, BokehJS keeps the old view's models in its document for
# up to 30 s (it recomputes its models lazily after a patch), so their names would be
# found twice; a change of the views' columns makes it recompute them at once.
_FORGET_OLD_MODELS_JS = """
const doc = cb_obj.document
if (doc != null && typeof doc._recompute_all_models === "function") doc._recompute_all_models()
"""


def forget_old_models(holder: Any) -> None:
    """When the server replaces ``holder``'s children, the browser forgets the old ones'
    models at once (so a name finds only the new model)."""
    holder.js_on_change("children", CustomJS(code=_FORGET_OLD_MODELS_JS))


@dataclass
class Controls:
    """The explorer's widgets (see the module docstring for their names)."""

    prompt: TextAreaInput
    run: Button
    status: Div
    model: Select
    lens: Checkbox
    layout: Select
    color: Select
    attention: Select
    layer: Spinner
    head: Spinner
    lens_stat: Select
    history: Select
    edit_position: Div
    edit_text: TextInput
    edit_choices: Select
    edit_run: Button
    download_html: Button
    download_record: Button
    download_csv: Button
    download: ColumnDataSource
    view: Any
    diff_view: Any
    tabs: Tabs
    top: Any
    root: Any

    @property
    def roots(self) -> tuple[Any, ...]:
        """The page's roots, top to bottom: the prompt row, the status line, the rest.

        The status line is a root of its own: BokehJS lays out the whole root of a
        ``Div`` whose text changes, and a root holding the drawn coil, lens and table
        re-measured every axis and label on each progress line (~40 ms of the browser's
        main thread each, taken from the run on a 2-core machine).
        """
        return (self.top, self.status, self.root)


def _panel(title: str, *children: Any, name: str) -> Any:
    return column(Div(text=f"<b>{title}</b>"), *children, name=name, sizing_mode="stretch_width")


def build_controls(models: list[str]) -> Controls:
    """The widgets and the page layout around the views (initially empty)."""
    prompt = TextAreaInput(name="coilvis_prompt", title="Prompt", rows=4, max_length=200_000, sizing_mode="stretch_width",
                           placeholder="Type a prompt, then Run (Ctrl-Enter does not submit; click Run)")
    run = Button(name="coilvis_run", label="Run", button_type="primary", width=90)
    status = Div(name="coilvis_status", text="Type a prompt and press Run.", render_as_text=True, sizing_mode="stretch_width")
    model = Select(name="coilvis_model", title="Model", options=models, value=models[0], width=220)
    lens = Checkbox(name="coilvis_lens", label="logit lens", active=True)
    layout = Select(name="coilvis_layout", title="Layout", options=["spiral", "circle"], value="spiral", width=110)
    color = Select(name="coilvis_color", title="Colour", options=list(COIL_STATS), value="prob", width=130)
    attention = Select(name="coilvis_attention", title="Attention", options=list(ATTENTION_MODES), value="mean", width=100)
    layer = Spinner(name="coilvis_layer", title="Layer (-1: last)", low=-1, step=1, value=-1, width=110)
    head = Spinner(name="coilvis_head", title="Head", low=0, step=1, value=0, width=80, disabled=True)
    lens_stat = Select(name="coilvis_lens_stat", title="Lens colour", options=list(LENS_STATS), value="prob", width=130)
    history = Select(name="coilvis_history", title="This tab's runs", options=[], value="", width=320)
    edit_position = Div(name="coilvis_edit_position", text="Tap a token of the coil, the lens or the prompt to edit it.", render_as_text=True, width=260)
    edit_text = TextInput(name="coilvis_edit_text", title="Replace it with", width=200)
    edit_choices = Select(name="coilvis_edit_choices", title="or the model's guesses there", options=[], width=220)
    edit_run = Button(name="coilvis_edit_run", label="Replace and run", width=140, disabled=True)
    download_html = Button(name="coilvis_download_html", label="Page (.html)", width=110, disabled=True)
    download_record = Button(name="coilvis_download_record", label="Record (.coil)", width=120, disabled=True)
    download_csv = Button(name="coilvis_download_csv", label="Table (.csv)", width=110, disabled=True)
    download = ColumnDataSource(name="coilvis_download", data={"name": [], "b64": [], "mime": []})
    download.js_on_change("data", CustomJS(args={"source": download}, code=_DOWNLOAD_JS))
    view = column(Div(text="Type a prompt and press Run: the coil, the lens and the table appear here."), name="coilvis_view", sizing_mode="stretch_width")
    diff_view = column(Div(text="Edit a token (tap it, then Replace and run) to compare with the run before."), name="coilvis_diff_view")
    for holder in (view, diff_view):
        forget_old_models(holder)
    tabs = Tabs(name="coilvis_tabs", tabs=[TabPanel(child=view, title="Run"), TabPanel(child=diff_view, title="Diff with the run before")])
    top = row(column(prompt, sizing_mode="stretch_width"), column(model, lens, run), name="coilvis_top", sizing_mode="stretch_width")
    settings = row(layout, color, attention, layer, head, lens_stat, history)
    edit = row(edit_position, edit_text, edit_choices, edit_run)
    downloads = row(Div(text="Download:"), download_html, download_record, download_csv)
    root = column(
        _panel("View", settings, name="coilvis_settings"), _panel("Edit", edit, name="coilvis_edit"), downloads, tabs,
        name="coilvis_root", sizing_mode="stretch_width",
    )
    return Controls(
        prompt, run, status, model, lens, layout, color, attention, layer, head, lens_stat, history, edit_position, edit_text,
        edit_choices, edit_run, download_html, download_record, download_csv, download, view, diff_view, tabs, top, root,
    )
