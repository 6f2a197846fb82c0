"""The live explorer: model workers, one tab's session (runs, redraws, history, edits, downloads, links), the command, and a real server in Chromium."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from bokeh.document import Document

import coilvis
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.serve.app import ExplorerApp
from coilvis.serve.server import model_table, start
from coilvis.serve.session import HISTORY, ExplorerSession
from coilvis.serve.workers import ModelPool, Superseded

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import LoadedPage, browser_session  # noqa: F401  (a fixture)
except ImportError:  # pragma: no cover
    from tests.browser import LoadedPage, browser_session  # noqa: F401

PROMPT = "Hello the world and the end\n"


# ---------------------------------------------------------------------------- workers


def test_pool_loads_each_model_once_on_first_use() -> None:
    loads: list[str] = []
    pool = ModelPool({"x": "spec-x", "y": "spec-y"}, loader=lambda spec: loads.append(spec) or spec.upper())
    assert pool.names == ["x", "y"] and not pool.is_loaded("x")
    assert pool.submit("x", lambda m: m + "!").result() == "SPEC-X!"
    assert pool.submit("x", lambda m: m).result() == "SPEC-X"
    assert loads == ["spec-x"] and pool.is_loaded("x") and not pool.is_loaded("y")
    assert pool.jobs_run == {"x": 2, "y": 0}
    pool.shutdown()


def test_pool_runs_one_job_at_a_time_per_model() -> None:
    pool = ModelPool({"x": None, "y": None}, loader=lambda spec: spec)
    running = {"x": 0, "y": 0}
    most = {"x": 0, "y": 0}
    lock = threading.Lock()

    def job(name: str) -> Any:
        def work(_: Any) -> None:
            with lock:
                running[name] += 1
                most[name] = max(most[name], running[name])
            time.sleep(0.02)
            with lock:
                running[name] -= 1

        return work

    futures = [pool.submit(name, job(name)) for _ in range(6) for name in ("x", "y")]
    for f in futures:
        f.result()
    assert most == {"x": 1, "y": 1}
    pool.shutdown()


def test_pool_skips_superseded_jobs_and_names_unknown_models() -> None:
    pool = ModelPool({"x": None}, loader=lambda spec: spec)
    with pytest.raises(Superseded):
        pool.submit("x", lambda m: 1, still_wanted=lambda: False).result()
    assert pool.jobs_run["x"] == 0
    with pytest.raises(CoilvisValueError, match="'nope' is not one of this explorer's models"):
        pool.submit("nope", lambda m: 1)
    with pytest.raises(CoilvisValueError, match="models"):
        ModelPool({})
    pool.shutdown()


def test_model_table() -> None:
    assert model_table(None) == {"default": None}
    assert model_table(["gpt2", "path/x"]) == {"gpt2": "gpt2", "path/x": "path/x"}
    assert model_table({"base": 1}) == {"base": 1}
    with pytest.raises(CoilvisTypeError, match="models"):
        model_table("gpt2")
    with pytest.raises(CoilvisTypeError, match="models"):
        model_table([3])


# ---------------------------------------------------------------------------- one tab


class Tab:
    """A session on a plain Document whose callbacks run at once (no event loop)."""

    def __init__(self, pool: ModelPool) -> None:
        self.doc = Document()
        self.session = ExplorerSession(self.doc, pool)
        self.session._later = lambda fn: fn()  # type: ignore[method-assign]
        self.pool = pool

    def run(self, prompt: str) -> None:
        self.session.c.prompt.value = prompt
        self.session.request_run()
        self.wait()

    def wait(self, timeout_s: float = 60.0) -> None:
        """Wait until the model's queue is empty (jobs are run one by one)."""
        for name in self.pool.names:
            self.pool.submit(name, lambda m: None).result(timeout=timeout_s)
        time.sleep(0.05)

    @property
    def status(self) -> str:
        return self.session.c.status.text


@pytest.fixture
def pool(tiny_llama: Any, tiny_tokenizer: Any) -> Iterator[ModelPool]:
    p = ModelPool({"tiny": (tiny_llama, tiny_tokenizer)})
    yield p
    p.shutdown()


def test_a_run_shows_the_page_and_says_done(pool: ModelPool) -> None:
    tab = Tab(pool)
    tab.run(PROMPT)
    assert tab.status.startswith("Done in") and "on tiny" in tab.status and "lens of" in tab.status
    view = tab.session.c.view
    assert len(view.children) == 1
    for name in ("coil_figure", "lens_figure", "page_topk_table", "page_prompt_source", "coil_unwind_play"):
        assert view.children[0].select_one({"name": name}) is not None, name
    record = tab.session.current.record
    assert record.prompt == PROMPT and record.lens is not None and record.attention is not None
    for button in ("download_html", "download_record", "download_csv"):
        assert not getattr(tab.session.c, button).disabled


def test_the_coil_and_table_come_first_and_the_lens_fills_its_frame(pool: ModelPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the lens, the page is drawn once the forward pass is done, with the lens's
    frame (the model's rows, no cells, a title saying the lens is being computed); the
    lens then fills that same frame (no new page, no new lens figure)."""
    from coilvis.views.page import LENS_PENDING

    tab = Tab(pool)
    seen: list[tuple[str, Any, Any, int, str]] = []
    early = tab.session._early

    def watch(*args: Any) -> None:
        early(*args)
        layout = tab.session.c.view.children[0]
        lens = layout.select_one({"name": "lens_figure"})
        cells = len(layout.select_one({"name": "lens_cells"}).data["pos"])
        seen.append((tab.status, layout, lens, cells, str(getattr(lens.title.text, "text", lens.title.text))))

    monkeypatch.setattr(tab.session, "_early", watch)
    tab.run(PROMPT)
    [(status, layout, frame, cells, title)] = seen
    assert "coil and the table are drawn" in status and cells == 0 and LENS_PENDING in title
    record = tab.session.current.record
    assert tab.status.startswith("Done") and tab.session.c.view.children[0] is layout
    assert layout.select_one({"name": "lens_figure"}) is frame and LENS_PENDING not in str(getattr(frame.title.text, "text", frame.title.text))
    assert len(layout.select_one({"name": "lens_cells"}).data["pos"]) == record.lens.n_rows * record.seq_len
    assert list(layout.select_one({"name": "lens_layer_axis"}).major_label_overrides.values()) == list(record.lens.layer_names)
    coil_args = layout.select_one({"name": "page_select_coil"}).args
    assert coil_args["highlight"] is layout.select_one({"name": "lens_highlight"})
    assert record.lens is not None and [e.key for e in tab.session.history] == [tab.session.current.key]
    # without the lens there is nothing to wait for: one drawing
    tab.session.c.lens.active = False
    tab.run(PROMPT)
    assert len(seen) == 1 and tab.session.current.record.lens is None


def test_the_frame_has_the_rows_the_lens_will_have(pool: ModelPool) -> None:
    from coilvis.serve.options import lens_rows

    tab = Tab(pool)
    tab.run(PROMPT)
    loaded = pool.submit("tiny", lambda m: m).result()
    assert lens_rows(loaded.model) == tab.session.current.record.lens.layer_names


def test_a_setting_changed_while_the_lens_is_computed_gets_a_new_frame_that_the_lens_fills(
    pool: ModelPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader changes the lens colour while the lens is computed: the page is drawn
    again with a frame of that colour, and the lens fills that frame."""
    tab = Tab(pool)
    frames: list[Any] = []
    early = tab.session._early

    def change_colour(*args: Any) -> None:
        early(*args)
        tab.session.c.lens_stat.value = "entropy"  # redraws, the lens still to come
        frames.append(tab.session.c.view.children[0].select_one({"name": "lens_figure"}))

    monkeypatch.setattr(tab.session, "_early", change_colour)
    tab.run(PROMPT)
    layout = tab.session.c.view.children[0]
    assert tab.status.startswith("Done") and layout.select_one({"name": "lens_figure"}) is frames[0]
    assert "entropy" in layout.select_one({"name": "lens_color_bar"}).title
    record = tab.session.current.record
    assert len(layout.select_one({"name": "lens_cells"}).data["pos"]) == record.lens.n_rows * record.seq_len


def test_going_back_while_the_lens_is_computed_keeps_the_run_chosen(pool: ModelPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader who picks an earlier run while the lens comes stays on it; the new run
    is listed in the history when complete."""
    tab = Tab(pool)
    tab.run("the first prompt")
    first = tab.session.current
    early = tab.session._early

    def go_back(*args: Any) -> None:
        early(*args)
        tab.session._pick_history(first.key)  # what choosing it in the history does

    monkeypatch.setattr(tab.session, "_early", go_back)
    tab.run(PROMPT)
    assert tab.session.current is first and tab.session.c.history.value == first.key
    assert [label for _, label in tab.session.c.history.options][0].startswith("2. ")
    assert tab.session.history[-1].record.lens is not None


def test_a_lens_that_fails_after_the_coil_is_drawn_says_so(pool: ModelPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import coilvis.runner.prompt as prompt_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the lens broke")

    monkeypatch.setattr(prompt_module, "compute_lens", broken)
    tab = Tab(pool)
    tab.run(PROMPT)
    assert tab.status == "Error: the run failed (RuntimeError): the lens broke"
    layout = tab.session.c.view.children[0]
    assert layout.select_one({"name": "coil_figure"}) is not None and layout.select_one({"name": "lens_figure"}) is None
    assert len(tab.session.history) == 0
    monkeypatch.undo()
    tab.run(PROMPT)
    assert tab.status.startswith("Done") and tab.session.c.view.children[0].select_one({"name": "lens_figure"}) is not None


def test_a_new_run_of_the_same_settings_becomes_the_page_shown(pool: ModelPool) -> None:
    """A run drawn with the settings of the page shown goes into that page's models (the
    browser repaints the views it has), which then equal a page drawn afresh; a setting
    that changes the page's shape gets a new page, wired as the first."""
    from bokeh_graphs import graph_json

    from coilvis.serve.options import draw_page

    tab = Tab(pool)
    tab.run(PROMPT)
    c = tab.session.c
    shown = c.view.children[0]
    segments = shown.select_one({"name": "coil_segment_source"})
    tab.run("A longer prompt than the first, with more tokens in it")
    record = tab.session.current.record
    assert record.seq_len != len(tab.session.history[0].record.tokens)
    assert c.view.children[0] is shown and shown.select_one({"name": "coil_segment_source"}) is segments
    assert len(segments.data["pos"]) == record.seq_len
    fresh = draw_page(record, *tab.session.view_options())
    c.view.children = []  # out of the tab's Document, to be serialised alone
    assert graph_json(fresh) == graph_json(shown)
    c.view.children = [shown]
    # the prompt's selection still reaches the edit panel (wired once)
    shown.select_one({"name": "page_prompt_source"}).selected.indices = [3]
    assert c.edit_position.text.startswith("Position 3:")
    c.attention.value = "off"  # no arcs: another shape, a new page
    assert c.view.children[0] is not shown and c.view.children[0].select_one({"name": "coil_arcs"}) is None
    c.view.children[0].select_one({"name": "page_prompt_source"}).selected.indices = [1]
    assert c.edit_position.text.startswith("Position 1:")


def test_settings_redraw_without_running_the_model(pool: ModelPool) -> None:
    tab = Tab(pool)
    tab.run(PROMPT)
    runs = pool.jobs_run["tiny"]
    c = tab.session.c
    c.color.value = "entropy"
    segments = c.view.children[0].select_one({"name": "coil_figure"})
    assert segments is not None
    assert "entropy" in c.view.children[0].select_one({"name": "coil_color_bar"}).title
    c.layout.value = "circle"
    c.lens_stat.value = "kl"
    c.attention.value = "head"
    c.head.value = 1
    c.attention.value = "off"
    assert pool.jobs_run["tiny"] == runs
    assert not tab.status.startswith("Error")
    c.attention.value = "head"
    c.head.value = 99
    assert tab.status.startswith("Error") and "head" in tab.status


def test_empty_prompt_and_errors_show_in_the_status_and_the_next_run_works(pool: ModelPool) -> None:
    tab = Tab(pool)
    tab.session.c.prompt.value = "   "
    tab.session.request_run()
    assert "empty" in tab.status and pool.jobs_run["tiny"] == 0
    tab.run("the " * 400)  # longer than the tiny model's 256 positions
    assert tab.status.startswith("Error") and "256" in tab.status
    tab.run(PROMPT)
    assert tab.status.startswith("Done")


def test_history_is_bounded_and_goes_back(pool: ModelPool) -> None:
    tab = Tab(pool)
    for i in range(HISTORY + 2):
        tab.run(f"run {i} the end")
    history = tab.session.history
    assert len(history) == HISTORY
    assert len(tab.session.c.history.options) == HISTORY
    first_kept = history[0]
    tab.session.c.history.value = first_kept.key
    assert tab.session.current is first_kept
    assert "Showing run" in tab.status


def test_a_newer_run_supersedes_an_older_one(pool: ModelPool) -> None:
    tab = Tab(pool)
    gate = threading.Event()
    pool.submit("tiny", lambda m: gate.wait(10))  # hold the worker
    tab.session.c.prompt.value = "the first prompt"
    tab.session.request_run()
    tab.session.c.prompt.value = "the second prompt"
    tab.session.request_run()
    gate.set()
    tab.wait()
    assert [e.prompt for e in tab.session.history] == ["the second prompt"]
    assert pool.jobs_run["tiny"] == 3  # the holder, the second run and the wait; the first was skipped


def test_edit_replaces_a_token_and_compares_with_the_run_before(pool: ModelPool) -> None:
    tab = Tab(pool)
    tab.run(PROMPT)
    record = tab.session.current.record
    pos = record.tokens.index(" the")
    tab.session._select([pos])
    c = tab.session.c
    assert not c.edit_run.disabled and c.edit_text.value == " the"
    assert len(c.edit_choices.options) == 1 + record.k
    c.edit_choices.value = c.edit_choices.options[1][0]
    assert c.edit_text.value == record.token_text(int(c.edit_choices.options[1][0]))
    c.edit_text.value = " a"
    tab.session.request_edit()
    tab.wait()
    entry = tab.session.current
    assert entry.comparison is not None and entry.prompt == PROMPT.replace(" the", " a", 1)
    assert entry.comparison.differs.sum() == 1 and entry.comparison.label_a == "before"
    assert "compared with the run before" in tab.status
    assert c.diff_view.children[0].select_one({"name": "diff_coil_segments"}) is not None


def test_downloads_send_the_page_the_record_and_the_table(pool: ModelPool) -> None:
    tab = Tab(pool)
    tab.run(PROMPT)
    c = tab.session.c
    tab.session.download("record")
    name, data = c.download.data["name"][0], base64.b64decode(c.download.data["b64"][0])
    assert name.endswith(".coil") and zipfile.is_zipfile(io.BytesIO(data))
    tab.session.download("csv")
    csv = base64.b64decode(c.download.data["b64"][0]).decode("utf-8")
    assert csv.splitlines()[0].startswith("pos,token_id,token")
    tab.session.download("html")
    html = base64.b64decode(c.download.data["b64"][0]).decode("utf-8")
    assert "<html" in html.lower() and "coil_figure" in html and c.download.data["mime"] == ["text/html"]


def test_a_link_sets_the_controls_and_runs_its_prompt(pool: ModelPool) -> None:
    tab = Tab(pool)
    app = ExplorerApp(pool)
    app.apply_query(tab.session, {"prompt": PROMPT, "color": "surprisal", "layout": "circle", "lens": "0", "stat": "nonsense"})
    tab.wait()
    c = tab.session.c
    assert c.color.value == "surprisal" and c.layout.value == "circle" and not c.lens.active
    assert tab.session.current is not None and tab.session.current.record.lens is None
    assert tab.status.startswith("Done")
    app.apply_query(tab.session, {"stat": "nonsense"})
    assert "stat='nonsense'" in tab.status


def test_closing_a_tab_forgets_its_runs(pool: ModelPool) -> None:
    tab = Tab(pool)
    tab.run(PROMPT)
    tab.session.close()
    assert tab.session.current is None and len(tab.session.history) == 0
    tab.session.c.prompt.value = "again"
    tab.session.request_run()
    tab.wait()
    assert tab.session.current is None  # a closed tab shows nothing more


# ---------------------------------------------------------------------------- the command


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--port", "70000"], ["--port"]),
        (["--model", "a", "--model", "a"], ["--model", "twice"]),
        (["--host", ""], ["--host"]),
    ],
)
def test_serve_usage_errors(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from coilvis import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_start_checks_its_arguments() -> None:
    with pytest.raises(CoilvisError, match="port"):
        start(port=-1)
    with pytest.raises(CoilvisError, match="port"):
        start(port=70000)


# ---------------------------------------------------------------------------- a real server


class Server:
    """An explorer server on a free loopback port, on its own thread and IO loop."""

    def __init__(self, models: dict[str, Any]) -> None:
        ready = threading.Event()
        self.error: BaseException | None = None

        def serve() -> None:
            asyncio.set_event_loop(asyncio.new_event_loop())
            try:
                # a session lives 5 s without a connection: a browser slowed by a loaded machine connects
                # its websocket well after the page request that made the session
                self.running = start(models, port=0, check_unused_ms=300, unused_lifetime_ms=5000)
            except BaseException as exc:  # reported to the test
                self.error = exc
                ready.set()
                return
            ready.set()
            self.running.server.io_loop.start()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(60)
        if self.error is not None:
            raise self.error
        self.url = self.running.url
        self.app = self.running.app

    def stop(self) -> None:
        loop = self.running.server.io_loop
        loop.add_callback(self.running.server.stop)
        loop.add_callback(loop.stop)
        self.thread.join(10)
        self.running.app.pool.shutdown()


@pytest.fixture(scope="module")
def server(_tiny_llama_eager: Any, tiny_tokenizer: Any) -> Iterator[Server]:
    s = Server({"tiny": (_tiny_llama_eager, tiny_tokenizer)})
    yield s
    s.stop()


_STATUS = "() => Bokeh.documents[0].get_model_by_name('coilvis_status').text"


def wait_status(page: LoadedPage, prefix: str, timeout_s: float = 120, *, including: str = "") -> str:
    """The status line once it starts with ``prefix`` (and holds ``including``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.page.wait_for_function(
            "([p, i]) => { const s = Bokeh.documents[0].get_model_by_name('coilvis_status'); return s != null && s.text.startsWith(p) && s.text.includes(i) }",
            arg=[prefix, including], timeout=timeout_s * 1000,
        )
    except PlaywrightTimeout:
        raise AssertionError(f"the status never began {prefix!r}; it says {page.evaluate(_STATUS)!r}") from None
    return str(page.evaluate(_STATUS))


def type_and_run(page: LoadedPage, prompt: str) -> None:
    box = page.page.locator("textarea")
    box.fill(prompt)
    box.press("Tab")  # the box sends its value on change
    page.page.get_by_role("button", name="Run", exact=True).click()


# How often the root holding the views is laid out while the status line changes 5 times.
_COUNT_ROOT_LAYOUTS = """
async () => {
  const doc = Bokeh.documents[0], status = doc.get_model_by_name('coilvis_status')
  const root = Bokeh.index.get(doc.get_model_by_name('coilvis_root'))
  let n = 0
  const original = root.compute_layout
  root.compute_layout = function () { n += 1; return original.call(this) }
  for (let i = 0; i < 5; i++) {
    status.text = 'Running tiny: logit lens ' + (20 * i) + '%'
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))
  }
  root.compute_layout = original
  return n
}
"""


@pytest.mark.slow
@pytest.mark.browser
def test_type_a_prompt_run_and_see_the_views(server: Server, browser_session: Any) -> None:
    page = browser_session.open_url(server.url)
    assert page.has_model("coilvis_prompt") and page.has_model("coilvis_run") and page.has_model("coilvis_status")
    type_and_run(page, PROMPT)
    status = wait_status(page, "Done")
    assert "tokens on tiny" in status
    page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('page_topk_table') != null")
    assert page.has_model("coil_figure") and page.has_model("lens_figure")
    assert len(page.column("page_topk_source", "pos")) > 0
    # the status line sits between the prompt and the settings, and is a root of its own:
    # a new status text lays out only itself, never the root holding the drawn views
    top = {sel: page.page.locator(sel).first.bounding_box()["y"] for sel in ("textarea", "text=Done in", "text=This tab's runs")}
    assert top["textarea"] < top["text=Done in"] < top["text=This tab's runs"], top
    layouts = page.evaluate(_COUNT_ROOT_LAYOUTS)
    assert layouts == 0
    # the lens joined the page drawn before it: selecting a position outlines its lens column
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coil_segment_source').selected.indices = [2] }")
    page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('lens_highlight').data.pos[0] == 2")
    assert page.evaluate("() => Bokeh.documents[0].get_model_by_name('lens_cells').data.pos.length") > 0
    assert "Computing" not in str(page.evaluate("() => { const t = Bokeh.documents[0].get_model_by_name('lens_figure').title.text; return t.text ?? t }"))
    runs = server.app.pool.jobs_run["tiny"]
    # change the colour statistic: the coil redraws, the model does not run
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coilvis_color').value = 'entropy' }")
    page.page.wait_for_function("() => { const b = Bokeh.documents[0].get_model_by_name('coil_color_bar'); return b != null && b.title.includes('entropy') }")
    assert server.app.pool.jobs_run["tiny"] == runs
    assert page.errors == [] and [u for u in page.external_requests if not u.startswith(server.url.rstrip("/"))] == []
    page.close()


_MARK = """(names) => { for (const n of names) Bokeh.documents[0].get_model_by_name(n).__coilvis_test_mark = true }"""
_MARKED = """(names) => names.filter((n) => Bokeh.documents[0].get_model_by_name(n).__coilvis_test_mark === true)"""
_UNWIND_N = "() => Bokeh.documents[0].get_model_by_name('coil_segment_source').__coilvis_unwind?.state.n ?? -1"


@pytest.mark.slow
@pytest.mark.browser
def test_a_second_run_repaints_the_views_the_page_has(server: Server, browser_session: Any) -> None:
    """A run with the settings of the page shown arrives as new values in the models the
    browser has (no new views): the coil, the table and the lens show the new run, taps
    select its rows and arcs, and the unwind plays its geometry."""
    before = set(server.app.sessions)
    page = browser_session.open_url(server.url)
    type_and_run(page, PROMPT)
    wait_status(page, "Done")
    [key] = set(server.app.sessions) - before
    sent: list[Any] = []  # the playhead's positions the server was told of

    def watch(event: Any) -> None:
        if getattr(event, "attr", None) == "data" and getattr(event.model, "name", None) == "coil_unwind_playhead_source":
            sent.append(event)

    server.app.sessions[key].doc.on_change(watch)
    page.page.click("text=▶ play")  # an unwind of the first run
    page.page.wait_for_function(_UNWIND_N + " > 0")
    n_first = page.evaluate(_UNWIND_N)
    # the playhead moves every frame in the browser; the server hears of it at commits only
    state = "Bokeh.documents[0].get_model_by_name('coil_segment_source').__coilvis_unwind.state"
    page.page.wait_for_function(f"() => {state}.frames >= 10 || !{state}.playing")
    page.page.wait_for_timeout(300)
    frames, commits = page.evaluate(f"() => [{state}.frames, {state}.commits]")
    assert len(sent) <= commits + 1 < frames, (len(sent), commits, frames)
    names = ["coil_figure", "coil_segment_source", "page_topk_table", "lens_figure", "lens_cells", "coil_highlight_filter"]
    page.evaluate(_MARK, names)
    type_and_run(page, "A longer prompt than the first, with more tokens in it")
    page.page.wait_for_function(
        "() => { const d = Bokeh.documents[0]; return d.get_model_by_name('coilvis_history').options.length >= 2 && "
        "d.get_model_by_name('coilvis_status').text.startsWith('Done') && d.is_idle }", timeout=120_000,
    )
    assert page.evaluate(_MARKED, names) == names  # the same models, so the same views
    n = len(page.column("coil_segment_source", "pos"))
    assert n != n_first and len(page.column("page_prompt_source", "pos")) == n
    assert len(page.column("lens_cells", "pos")) % n == 0 and len(page.column("lens_cells", "pos")) > 0
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coil_segment_source').selected.indices = [2] }")
    page.page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('lens_highlight').data.pos[0] == 2")
    k = len(page.column("page_topk_source", "pos")) // n
    assert page.model_attr("page_topk_filter", "indices") == list(range(2 * k, 3 * k))
    query, key = page.column("coil_link_source", "query"), page.column("coil_link_source", "key")
    links = [j for j, (q, kk) in enumerate(zip(query, key, strict=True)) if 2 in (q, kk)]
    page.page.wait_for_function("(want) => { const f = Bokeh.documents[0].get_model_by_name('coil_highlight_filter'); "
                                "return JSON.stringify(Array.from(f.indices)) === JSON.stringify(want) }", arg=links)
    page.page.click("text=▶ play")  # the unwind of the new run
    page.page.wait_for_function(_UNWIND_N + " == " + str(n))
    assert page.errors == []
    page.close()


@pytest.mark.slow
@pytest.mark.browser
def test_a_link_opens_with_its_prompt_run(server: Server, browser_session: Any) -> None:
    from urllib.parse import urlencode

    page = browser_session.open_url(server.url + "?" + urlencode({"prompt": "the world and the end", "color": "surprisal"}))
    wait_status(page, "Done")
    assert page.model_attr("coilvis_color", "value") == "surprisal"
    assert page.model_attr("coilvis_prompt", "value") == "the world and the end"
    page.close()


@pytest.mark.slow
@pytest.mark.browser
def test_two_tabs_get_their_own_results(server: Server, browser_session: Any) -> None:
    one = browser_session.open_url(server.url)
    two = browser_session.open_url(server.url)
    type_and_run(one, "the end")
    type_and_run(two, "Hello the world and the end and the end")
    wait_status(one, "Done")
    wait_status(two, "Done")
    ids_one = one.column("page_prompt_source", "token_id")
    ids_two = two.column("page_prompt_source", "token_id")
    tok = server.app.pool._model("tiny").tokenizer
    assert ids_one == tok("the end")["input_ids"]
    assert ids_two == tok("Hello the world and the end and the end")["input_ids"]
    one.close()
    two.close()


@pytest.mark.slow
@pytest.mark.browser
def test_empty_prompt_shows_a_message_and_closing_frees_the_session(server: Server, browser_session: Any) -> None:
    before = set(server.app.sessions)
    page = browser_session.open_url(server.url)
    mine = set(server.app.sessions) - before
    assert len(mine) == 1
    page.page.get_by_role("button", name="Run", exact=True).click()
    assert "empty" in wait_status(page, "Type a prompt first")
    type_and_run(page, PROMPT)
    wait_status(page, "Done")
    session = server.app.sessions[next(iter(mine))]
    assert session.current is not None
    page.close()
    deadline = time.time() + 20
    while mine & set(server.app.sessions) and time.time() < deadline:
        time.sleep(0.2)
    assert not mine & set(server.app.sessions)
    assert session.closed and session.current is None and len(session.history) == 0


@pytest.mark.slow
@pytest.mark.browser
def test_edit_a_token_in_the_page_and_download_the_record(server: Server, browser_session: Any) -> None:
    page = browser_session.open_url(server.url)
    type_and_run(page, PROMPT)
    wait_status(page, "Done")
    xs, ys = page.column("page_prompt_source", "x"), page.column("page_prompt_source", "y")
    the = server.app.pool._model("tiny").tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    pos = page.column("page_prompt_source", "token_id").index(the)
    widths = page.column("page_prompt_source", "width")
    page.click_data("page_prompt", xs[pos] + widths[pos] / 2, ys[pos])
    page.page.wait_for_function("() => !Bokeh.documents[0].get_model_by_name('coilvis_edit_run').disabled")
    assert page.model_attr("coilvis_edit_text", "value") == " the"
    field = page.page.get_by_label("Replace it with")
    field.fill(" a")
    field.press("Tab")
    page.page.get_by_role("button", name="Replace and run").click()
    wait_status(page, "Done", including="compared with the run before")
    assert page.model_attr("coilvis_prompt", "value") == PROMPT.replace(" the", " a", 1)
    assert page.has_model("diff_coil_segments")
    with page.page.expect_download() as info:
        page.page.get_by_role("button", name="Record (.coil)").click()
    assert info.value.suggested_filename.endswith(".coil")
    record = coilvis.Record.load(info.value.path())
    assert record.prompt == PROMPT.replace(" the", " a", 1)
    page.close()


def test_explore_embeds_the_app_with_the_notebooks_model(monkeypatch: pytest.MonkeyPatch, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    """coilvis.explore hands bokeh.io.show the application (Bokeh runs it inside the
    kernel); each cell's document gets the explorer with the notebook's own model."""
    import bokeh.io

    shown: list[Any] = []
    monkeypatch.setattr(bokeh.io, "show", lambda app, notebook_url=None: shown.append((app, notebook_url)))
    monkeypatch.setattr(bokeh.io, "output_notebook", lambda **kwargs: None)
    app = coilvis.explore((tiny_llama, tiny_tokenizer), notebook_url="localhost:9999")
    assert shown == [(app, "localhost:9999")]
    doc = Document()
    app(doc)
    assert doc.get_model_by_name("coilvis_prompt") is not None and app.n_sessions == 1
    assert app.pool.names == ["model"]
    app.pool.shutdown()
