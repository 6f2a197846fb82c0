"""One explorer tab: its controls, its runs (on the shared model workers), its history, its views and its edits.

A run goes to the model's worker (:class:`~coilvis.serve.workers.ModelPool`) and comes
back to the tab through ``doc.add_next_tick_callback``, so the page stays responsive
while it runs; a newer run supersedes an older one (the older one is skipped if it has
not started, and its lens stops at its next block if it has). Changing the layout, the
colour, the attention arcs or the lens colour redraws from the Record kept, without
running the model. Each tab keeps its last :data:`HISTORY` runs.

With the lens, the coil, the table and the lens's frame (its axes, no cells, a title
saying the lens is being computed: :func:`coilvis.views.page.add_lens_frame`) are drawn
as soon as the forward pass is done (``coilvis.run(on_forward=...)``); the lens then
fills that frame in place (:func:`coilvis.views.page.add_lens`) rather than the page
being drawn again, so the browser repaints the lens and builds no new views.
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisError
from coilvis.record import Record
from coilvis.serve.widgets import Controls, build_controls
from coilvis.serve.workers import ModelPool, Superseded
from coilvis.tokens import display, display_lines

__all__ = ["HISTORY", "Entry", "ExplorerSession"]

#: Runs each tab keeps (older ones are forgotten, so memory stays bounded).
HISTORY = 10
#: A tab's status line is updated at most this often while the lens runs.
_PROGRESS_EVERY_S = 0.25

#: What a job calls with the Record of the forward pass and the names of the lens's rows
#: to come, before the lens is computed.
Early = Callable[[Record, tuple[str, ...]], None]
#: A run on a model's worker: ``job(loaded_model, progress, early)``.
Job = Callable[[Any, Callable[[int, int], None], Early], tuple[Record, Comparison | None]]


@dataclass
class Entry:
    """One run of a tab: what ran and what it gave."""

    label: str
    model: str
    prompt: str
    record: Record
    comparison: Comparison | None = None
    seconds: float = 0.0
    key: str = field(default="")
    #: the coil, the table and the lens's frame are drawn; the lens, of these rows, is
    #: being computed (empty: no lens to come)
    lens_pending: tuple[str, ...] = ()


def _label(prompt: str, model: str, n: int) -> str:
    text = display_lines(prompt).replace("\n", " ")
    return f"{n}. {text[:40]}{'…' if len(text) > 40 else ''} · {model}"


class ExplorerSession:
    """The state and callbacks of one explorer tab.

    Args:
        doc: the tab's Bokeh Document.
        pool: the shared model workers.
        lens_default: whether runs compute the logit lens unless the tab says otherwise.
    """

    def __init__(self, doc: Any, pool: ModelPool, *, lens_default: bool = True) -> None:
        self.doc, self.pool = doc, pool
        self.c: Controls = build_controls(pool.names)
        self.c.lens.active = lens_default
        self.history: deque[Entry] = deque(maxlen=HISTORY)
        self.current: Entry | None = None
        self.generation = 0
        self.selected: int | None = None
        self.closed = False
        self.runs = 0
        #: runs whose coil and table are drawn while their lens is computed, by generation
        self._pending: dict[int, Entry] = {}
        #: the entry whose page the tab shows
        self._drawn: Entry | None = None
        self._lock = threading.Lock()
        self._wire()
        for root in self.c.roots:
            doc.add_root(root)
        doc.add_root(self.c.download)  # referenced by no layout: a root of its own, so the page has it
        doc.title = "coilvis explorer"

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        c = self.c
        c.run.on_click(lambda: self.request_run())
        for widget in (c.layout, c.color, c.attention, c.lens_stat):
            widget.on_change("value", lambda attr, old, new: self.redraw())
        for widget in (c.layer, c.head):
            widget.on_change("value", lambda attr, old, new: self.redraw())
        c.history.on_change("value", lambda attr, old, new: self._pick_history(new))
        c.edit_run.on_click(self.request_edit)
        c.edit_choices.on_change("value", lambda attr, old, new: self._choice_picked(new))
        c.download_html.on_click(lambda: self.download("html"))
        c.download_record.on_click(lambda: self.download("record"))
        c.download_csv.on_click(lambda: self.download("csv"))

    def set_status(self, text: str) -> None:
        """Show ``text`` (shown literally) in the status line."""
        self.c.status.text = text

    def _later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the tab's event loop (callable from any thread)."""
        if self.closed:
            return
        try:
            self.doc.add_next_tick_callback(fn)
        except RuntimeError:  # the session is going away
            self.closed = True

    def close(self) -> None:
        """Forget everything (the tab was closed); runs in flight are superseded."""
        with self._lock:
            self.generation += 1
            self.closed = True
        self.history.clear()
        self._pending.clear()
        self.current = self._drawn = None

    # ------------------------------------------------------------------ runs
    def _next_generation(self) -> int:
        with self._lock:
            self.generation += 1
            return self.generation

    def _is_current(self, generation: int) -> bool:
        return not self.closed and generation == self.generation

    def _progress(self, generation: int, what: str) -> Callable[[int, int], None]:
        """A progress callback for the lens: updates the status line now and then, and
        stops a superseded run at its next block."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            if not self._is_current(generation):
                raise Superseded()
            now = time.perf_counter()
            if now - last[0] >= _PROGRESS_EVERY_S or done == total:
                last[0] = now
                pct = int(100 * done / max(1, total))
                self._later(lambda: self._if_current(generation, lambda: self.set_status(f"{what}: logit lens {pct}%")))

        return report

    def _if_current(self, generation: int, fn: Callable[[], None]) -> None:
        if self._is_current(generation):
            fn()

    def request_run(self, prompt: str | None = None) -> None:
        """Run the prompt box's text (or ``prompt``) on the chosen model."""
        text = self.c.prompt.value if prompt is None else prompt
        if not text or not text.strip():
            self.set_status("Type a prompt first: the prompt box is empty.")
            return
        try:
            model = self.pool.check_name(self.c.model.value)
        except CoilvisError as exc:
            self.set_status(f"Error: {exc}")
            return
        lens = bool(self.c.lens.active)
        self._submit(model, text, lambda loaded, progress, early: self._run_job(loaded, text, lens, progress, early))

    def _run_job(
        self, loaded: Any, text: str, lens: bool, progress: Callable[[int, int], None], early: Early
    ) -> tuple[Record, Comparison | None]:
        """The run; with the lens, the coil and the table are drawn (``early``) while the lens is computed."""
        import coilvis

        from coilvis.serve.options import lens_rows

        on_forward = None
        if lens:
            try:
                rows = lens_rows(loaded.model)
            except CoilvisError:  # no frame: the lens is drawn when computed
                rows = ()
            on_forward = lambda record: early(record, rows)  # noqa: E731
        return coilvis.run(text, loaded, lens=lens, attention=True, progress=progress, on_forward=on_forward), None

    def _submit(self, model: str, text: str, job: Job) -> None:
        generation = self._next_generation()
        what = f"Running {model}" if self.pool.is_loaded(model) else f"Loading {model} (first use), then running it"
        self.set_status(f"{what} on {len(text)} characters…")
        self.c.run.disabled = False  # a newer run may always supersede this one
        started = time.perf_counter()
        progress = self._progress(generation, f"Running {model}")

        def early(record: Record, rows: tuple[str, ...]) -> None:
            self._later(lambda: self._early(generation, model, text, record, rows))

        future = self.pool.submit(model, lambda loaded: job(loaded, progress, early), still_wanted=lambda: self._is_current(generation))
        future.add_done_callback(lambda f: self._later(lambda: self._finish(generation, model, text, f, started)))

    def _early(self, generation: int, model: str, text: str, record: Record, rows: tuple[str, ...]) -> None:
        """Back on the tab's loop, the forward pass done: draw the coil, the table and the
        lens's frame (of ``rows``; ``record`` has no lens yet) while the model's worker
        computes the lens."""
        if not self._is_current(generation):
            return
        self.runs += 1
        entry = Entry(_label(text, model, self.runs), model, text, record, key=str(self.runs), lens_pending=rows)
        self._pending[generation] = entry
        if self._show(entry, listed=False):
            self.set_status(f"Running {model}: the coil and the table are drawn; computing the logit lens…")

    def _finish(self, generation: int, model: str, text: str, future: Any, started: float) -> None:
        """Back on the tab's loop: show the run, or say why it failed."""
        entry = self._pending.pop(generation, None)
        error = future.exception()
        if not self._is_current(generation) or error is not None:
            if entry is not None:
                self._drop_pending(entry)
            if self._is_current(generation) and not isinstance(error, Superseded):
                kind = "" if isinstance(error, CoilvisError) else f"the run failed ({type(error).__name__}): "
                self.set_status(f"Error: {kind}{error}")
            return
        record, comparison = future.result()
        seconds = time.perf_counter() - started
        if entry is None:
            self.runs += 1
            entry = Entry(_label(text, model, self.runs), model, text, record, comparison, seconds, key=str(self.runs))
            self.history.append(entry)
            drawn = self._show(entry)
        else:  # its coil and table are drawn: the lens joins them
            entry.record, entry.seconds, entry.lens_pending = record, seconds, ()
            self.history.append(entry)
            drawn = self._join_lens(entry) if self.current is entry else self._list_history(entry, choose=False)
        if comparison is not None:
            self._show_diff(comparison)
        if drawn:  # else the status says why the drawing failed
            self.set_status(self._done_text(entry))

    def _drop_pending(self, entry: Entry) -> None:
        """A run whose lens will not come: its page is drawn again, without the lens's frame."""
        entry.lens_pending = ()
        if self.current is entry:
            self.redraw()

    def _done_text(self, entry: Entry) -> str:
        r = entry.record
        lens = f", lens of {r.lens.n_rows} layers" if r.lens is not None else ""
        diff = ""
        if entry.comparison is not None:
            c = entry.comparison
            diff = f"; compared with the run before: JS at the last position {float(c.js[-1]) / 0.6931471805599453:.3f} bits"
        return f"Done in {entry.seconds:.2f} s: {r.seq_len} tokens on {entry.model}{lens}{diff}."

    # ------------------------------------------------------------------ showing
    def _show(self, entry: Entry, *, listed: bool = True) -> bool:
        """Make ``entry`` the tab's current run and draw it (``listed``: it is in the
        history, shown as chosen there); False if drawing failed."""
        self.current = entry
        if listed:
            self._list_history(entry)
        for button in (self.c.download_html, self.c.download_record, self.c.download_csv):
            button.disabled = False
        self.selected = None
        return self.redraw()

    def _list_history(self, entry: Entry, *, choose: bool = True) -> bool:
        """The history chooser lists the tab's runs (``choose``: ``entry`` chosen); True."""
        self.c.history.options = [(e.key, e.label) for e in reversed(self.history)]
        if choose:
            self.c.history.value = entry.key
        return True

    def _join_lens(self, entry: Entry) -> bool:
        """The current run's lens has come: list the run in the history and put its lens
        into the page drawn without it (a whole new page only if that one is not shown)."""
        from coilvis.serve.options import draw_lens

        self._list_history(entry)
        if self._drawn is not entry:
            return self.redraw()
        try:
            draw_lens(self.c.view.children[0], entry.record, self.view_options()[1])
        except CoilvisError as exc:
            self.set_status(f"Error: {exc}")
            return False
        return True

    def _pick_history(self, key: str) -> None:
        for entry in self.history:
            if entry.key == key and entry is not self.current:
                self._show(entry)
                if entry.comparison is not None:
                    self._show_diff(entry.comparison)
                self.set_status(f"Showing run {entry.label}.")
                return

    def view_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The coil's and the lens's options from the tab's settings."""
        from coilvis.serve.options import view_options

        assert self.current is not None
        return view_options(self.c, self.current.record)

    def redraw(self) -> bool:
        """Draw the current run again with the tab's settings (no model runs); False
        (and the reason in the status line) when the settings do not fit the run."""
        if self.current is None:
            return False
        from coilvis.serve.options import draw_page

        try:
            layout = draw_page(self.current.record, *self.view_options(), lens_pending=self.current.lens_pending)
        except CoilvisError as exc:
            self.set_status(f"Error: {exc}")
            return False
        self._put(layout)
        self._drawn = self.current
        self._update_edit_panel()
        return True

    def _put(self, layout: Any) -> None:
        """Show a freshly drawn page: as new values in the page shown when the two have the
        same shape (the same options; :func:`coilvis.views.graft.graft`), so the browser
        repaints the views it has rather than building new ones, else in its place."""
        from coilvis.views.graft import graft

        shown = self.c.view.children[0] if self.c.view.children else None
        if shown is not None and graft(shown, layout) is not None:
            return  # the page shown is now the fresh one; its callbacks are still wired
        self.c.view.children = [layout]
        source = layout.select_one({"name": "page_prompt_source"})
        if source is not None:
            source.selected.on_change("indices", lambda attr, old, new: self._select(new))

    def _show_diff(self, comparison: Comparison) -> None:
        from coilvis.serve.options import draw_diff

        self.c.diff_view.children = [draw_diff(comparison)]

    # ------------------------------------------------------------------ edits
    def _select(self, indices: list[int]) -> None:
        self.selected = int(indices[0]) if indices else None
        self._update_edit_panel()

    def _update_edit_panel(self) -> None:
        c, entry = self.c, self.current
        if entry is None or self.selected is None or not 0 <= self.selected < entry.record.seq_len:
            c.edit_position.text = "Tap a token of the coil, the lens or the prompt to edit it."
            c.edit_run.disabled, c.edit_choices.options = True, []
            return
        record, pos = entry.record, self.selected
        c.edit_position.text = f"Position {pos}: {display(record.tokens[pos])}"
        c.edit_text.value = record.tokens[pos]
        choices = [] if pos == 0 else [(str(int(i)), f"{display(record.token_text(int(i)))} ({float(p):.1%})")
                                       for i, p in zip(record.topk_ids[pos - 1], record.topk_probs[pos - 1])]
        c.edit_choices.options = [("", "—")] + choices
        c.edit_choices.value = ""
        c.edit_run.disabled = False

    def _choice_picked(self, value: str) -> None:
        if value and self.current is not None:
            self.c.edit_text.value = self.current.record.token_text(int(value))

    def request_edit(self) -> None:
        """Replace the selected token by the edit box's text, run, and compare with the run before."""
        from coilvis.serve.options import edited_prompt

        entry = self.current
        if entry is None or self.selected is None:
            self.set_status("Tap a token first, then Replace and run.")
            return
        before = entry.prompt
        after = edited_prompt(entry.record, self.selected, self.c.edit_text.value)
        self.c.prompt.value = after
        lens = bool(self.c.lens.active)

        def job(loaded: Any, progress: Callable[[int, int], None], early: Early) -> tuple[Record, Comparison | None]:
            from coilvis.serve.options import compare_edit

            comparison = compare_edit(loaded, before, after, lens=lens, progress=progress)
            return comparison.b, comparison

        self._submit(entry.model, after, job)

    # ------------------------------------------------------------------ downloads
    def download(self, kind: str) -> None:
        """Send the current run as a file: ``"html"`` (the page), ``"record"`` (.coil), ``"csv"`` (the table)."""
        if self.current is None:
            self.set_status("Nothing to download yet: run a prompt first.")
            return
        name, data, mime = self._file(kind)
        self.c.download.data = {"name": [name], "b64": [base64.b64encode(data).decode("ascii")], "mime": [mime]}
        self.set_status(f"Downloading {name} ({len(data) / 1024:.0f} KB).")

    def _file(self, kind: str) -> tuple[str, bytes, str]:
        from coilvis.serve.options import draw_page_view

        record = self.current.record if self.current is not None else None
        assert record is not None
        stem = f"coilvis-run-{self.current.key if self.current else 0}"
        if kind == "html":
            from coilvis.views.output import to_html

            return f"{stem}.html", to_html(draw_page_view(record, *self.view_options())).encode("utf-8"), "text/html"
        if kind == "record":
            with tempfile.TemporaryDirectory(prefix="coilvis-download-") as tmp:
                path = record.save(Path(tmp) / f"{stem}.coil")
                return path.name, path.read_bytes(), "application/zip"
        csv = record.table(pos=None).to_csv(index=False)
        return f"{stem}.csv", csv.encode("utf-8", "backslashreplace"), "text/csv"
