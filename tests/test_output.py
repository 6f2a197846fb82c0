"""Tests for coilvis.views.output: the View, atomic HTML/PNG saving, notebooks, show()."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bokeh.models import ColumnDataSource, CustomJS
from bokeh.plotting import figure

import coilvis
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, MissingDependencyError
from coilvis.views import output, standalone
from coilvis.views.output import View

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401


def small_view(title: str = "a view") -> View:
    p = figure(width=300, height=200, name="fig", title="plot")
    source = ColumnDataSource({"x": np.arange(5, dtype=np.float32), "y": np.arange(5, dtype=np.float32)}, name="src")
    p.scatter("x", "y", source=source, size=12, color="#1f77b4", name="dots")
    return View(p, title=title, kind="test")


def small_coil() -> coilvis.views.coil.CoilView:
    logits = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    record = coilvis.from_logits(logits, tokens=[0, 2, 1, 0], vocab=["a", " b", " c."])
    return coilvis.coil(record)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ View


def test_view_wraps_a_layout_in_its_own_document() -> None:
    view = small_view()
    assert list(view.doc.roots) == [view.layout]
    assert view.to_document() is view.doc
    assert view.model("dots").name == "dots"
    with pytest.raises(CoilvisValueError, match="name"):
        view.model("nope")
    assert "test" in repr(view)


def test_view_rejects_what_is_not_a_layout() -> None:
    with pytest.raises(CoilvisTypeError, match="layout"):
        View("not a figure")  # type: ignore[arg-type]


def test_view_rejects_a_layout_sharing_a_document() -> None:
    a, b = figure(), figure()
    view = View(a)
    view.doc.add_root(b)
    with pytest.raises(CoilvisValueError, match="layout"):
        View(b)


def test_save_accepts_a_bare_bokeh_layout(tmp_path: Path) -> None:
    out = coilvis.save(figure(width=100, height=100), tmp_path / "bare.html")
    assert out == tmp_path / "bare.html"
    assert "<html" in out.read_text(encoding="utf-8").lower()


# ------------------------------------------------------------------------------ HTML


def test_inline_page_needs_no_network_and_cdn_page_links_bokeh(tmp_path: Path) -> None:
    inline = coilvis.save(small_view(), tmp_path / "inline.html").read_text(encoding="utf-8")
    cdn = coilvis.save(small_view(), tmp_path / "cdn.html", resources="cdn").read_text(encoding="utf-8")
    assert "cdn.bokeh.org" not in inline
    assert re.search(r"<(script|link)\b[^>]*\b(src|href)=", inline) is None  # nothing loaded from elsewhere
    assert len(inline) > 1_000_000  # BokehJS itself is in the page
    assert 'src="https://cdn.bokeh.org' in cdn
    assert len(cdn) < 100_000


def test_page_title_is_escaped(tmp_path: Path) -> None:
    html = coilvis.save(small_view(), tmp_path / "t.html", title="</title><script>window.__pwned=1</script>").read_text(
        encoding="utf-8"
    )
    assert "<title>&lt;/title&gt;&lt;script&gt;" in html
    assert "<script>window.__pwned=1</script>" not in html


def test_document_level_callbacks_are_saved(tmp_path: Path) -> None:
    view = small_view()
    view.doc.js_on_event("document_ready", CustomJS(code="window.__coilvis_ready = 42"))
    html = coilvis.save(view, tmp_path / "ready.html").read_text(encoding="utf-8")
    assert "document_ready" in html and "window.__coilvis_ready = 42" in html


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"path": "x.txt"}, CoilvisValueError, "path"),
        ({"path": "missing-folder/x.html"}, CoilvisValueError, "path"),
        ({"path": 3}, CoilvisTypeError, "path"),
        ({"path": "x.html", "resources": "web"}, CoilvisValueError, "resources"),
        ({"path": "x.html", "title": 5}, CoilvisTypeError, "title"),
    ],
)
def test_save_names_the_bad_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict, error: type, word: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=word):
        coilvis.save(small_view(), **kwargs)
    assert files_in(tmp_path) == []


def test_save_rejects_what_is_not_a_view(tmp_path: Path) -> None:
    with pytest.raises(CoilvisTypeError, match="view"):
        coilvis.save({"not": "a view"}, tmp_path / "x.html")  # type: ignore[arg-type]


def test_atomic_save_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    target.write_text("old", encoding="utf-8")
    os.chmod(target, 0o640)
    coilvis.save(small_view(), target)
    assert files_in(tmp_path) == ["page.html"]
    assert "Bokeh" in target.read_text(encoding="utf-8")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its permissions


def test_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    target = coilvis.save(small_view(), tmp_path / "new.html")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_a_failing_write_keeps_the_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "page.html"
    target.write_text("good page", encoding="utf-8")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(output.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        coilvis.save(small_view(), target)
    assert target.read_text(encoding="utf-8") == "good page"
    assert files_in(tmp_path) == ["page.html"]


def test_a_failing_render_keeps_the_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "page.html"
    target.write_text("good page", encoding="utf-8")

    def broken_file_html(*args: object, **kwargs: object) -> str:
        raise RuntimeError("serialisation failed")

    monkeypatch.setattr(standalone, "html_page_for_render_items", broken_file_html)
    with pytest.raises(RuntimeError, match="serialisation failed"):
        coilvis.save(small_view(), target)
    assert target.read_text(encoding="utf-8") == "good page"
    assert files_in(tmp_path) == ["page.html"]


# ------------------------------------------------------------------------------ same view, same bytes

_SAVE_PAGES = """
import sys
import numpy as np
import coilvis

logits = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
record = coilvis.from_logits(logits, tokens=[0, 2, 1, 0], vocab=["a", " b", " c."], model_name="m")
folder = sys.argv[1]
for _ in range(int(sys.argv[2])):  # other views first: Bokeh's model counter moves on
    coilvis.coil(record)
coilvis.save(coilvis.page(record), folder + "/page.html")
coilvis.save(coilvis.coil(record, animate=True, autoplay=True), folder + "/coil.html")
"""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_pages_are_byte_identical_across_processes(tmp_path: Path) -> None:
    folders = []
    for seed, views_before in (("1", 0), ("2", 3)):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", _SAVE_PAGES, str(folder), str(views_before)], env=env, check=True)
        folders.append(folder)
    for name in ("page.html", "coil.html"):
        first, second = ((folder / name).read_bytes() for folder in folders)
        assert len(first) > 1_000_000  # whole pages, BokehJS inline
        assert first == second, name
        assert _UUID.search(first.decode("utf-8")) is None  # no random id left


def test_the_same_view_built_again_gives_the_same_page() -> None:
    first = output.to_html(small_coil())
    small_view(), small_coil(), small_view()  # Bokeh's process-wide model counter moves on
    assert output.to_html(small_coil()) == first
    assert output.to_html(small_view()) != first


def test_page_ids_rename_models_only(tmp_path: Path) -> None:
    view = small_view()
    source = view.model("src")
    source.data["label"] = [view.layout.id, source.id, "p1000", "c1", '{"id": "x"}']
    view.layout.tags = [{"id": view.layout.id}]
    html = coilvis.save(view, tmp_path / "ids.html").read_text(encoding="utf-8")
    # data that looks like a model id stays as it was; the models are numbered in the page
    assert f'["{view.layout.id}","{source.id}","p1000","c1",' in html
    assert f'"tags":[{{"type":"map","entries":[["id","{view.layout.id}"]]}}]' in html
    items = json.loads(re.search(r"const render_items = (\[.*?\]);", html).group(1))
    assert items[0]["root_ids"][0].startswith("c") and items[0]["docid"].startswith("coilvis-")
    assert f'data-root-id="{items[0]["root_ids"][0]}"' in html


# ------------------------------------------------------------------------------ notebook output


def test_notebook_script_holds_token_text_as_script_safe_data() -> None:
    from bokeh.core.json_encoder import serialize_json

    hostile = ["</script><script>window.__pwned=1</script>", "<!--", "<script>", "]]>", "a&b\u2028"]
    record = coilvis.from_logits(np.zeros((5, 5)), tokens=[0, 1, 2, 3, 4], vocab=hostile)
    view = coilvis.coil(record)
    script, div = output._notebook_content(view)
    assert [m for m in ("</script", "<!--", "<script") if m in script.lower()] == []
    found = re.search(r"const docs_json = (.*);\n\s*const render_items = (.*);\n", script)
    assert found is not None
    for data in found.groups():  # no character that HTML treats as markup, even inside strings
        assert not set(data) & {"<", ">", "&", "\u2028"}
    docs = json.loads(found.group(1))
    (docid,) = docs
    # the data arrive unchanged: the escapes decode to Bokeh's own serialisation of the document
    assert docs[docid] == json.loads(serialize_json(view.doc.to_json(deferred=False)))
    assert json.loads(found.group(2))[0]["docid"] == docid
    assert f'data-root-id="{view.layout.id}"' in div
    # each display gets ids of its own (a notebook also holds outputs of earlier kernels)
    assert output._notebook_content(view)[1] != div


# ------------------------------------------------------------------------------ PNG errors


def test_png_without_a_browser_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "coil.png"
    target.write_bytes(b"good image")
    monkeypatch.setattr(output.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError) as info:
        coilvis.save(small_view(), target)
    message = str(info.value)
    assert "apt-get install chromium chromium-driver" in message
    assert "pip install selenium" in message
    assert message.startswith("path:")
    assert target.read_bytes() == b"good image"
    assert files_in(tmp_path) == ["coil.png"]


def test_png_without_selenium_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setitem(sys.modules, "selenium", None)
    with pytest.raises(MissingDependencyError, match="pip install selenium"):
        coilvis.save(small_view(), tmp_path / "coil.png")
    assert files_in(tmp_path) == []


# ------------------------------------------------------------------------------ show


def test_show_outside_a_notebook_opens_a_saved_page(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(output.webbrowser, "open", lambda url: opened.append(url) or True)
    path = coilvis.show(small_view())
    try:
        assert path is not None and opened == [path.as_uri()]
        assert "Bokeh" in path.read_text(encoding="utf-8")
    finally:
        if path is not None:
            path.unlink()


# ------------------------------------------------------------------------------ browser


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_saved_page_runs_document_callbacks_offline(browser_session, tmp_path: Path) -> None:  # noqa: F811
    view = small_view()
    view.doc.js_on_event("document_ready", CustomJS(code="window.__coilvis_ready = 42"))
    page = browser_session.open(coilvis.save(view, tmp_path / "ready.html"))
    assert page.errors == []
    assert page.external_requests == []
    assert page.evaluate("() => window.__coilvis_ready") == 42
    assert page.column("src", "x") == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_png_export_draws_the_view_at_its_size(browser_session, tmp_path: Path) -> None:  # noqa: F811
    from PIL import Image

    view = small_coil()
    png = coilvis.save(view, tmp_path / "coil.png")
    assert files_in(tmp_path) == ["coil.png"]
    image = np.asarray(Image.open(png).convert("RGB")).astype(np.int64)

    # the same view in the browser: its size, and where segment 1's centre is drawn
    page = browser_session.open(coilvis.save(view, tmp_path / "coil.html"))
    left, top, width, height = page.evaluate(
        """() => {
            const r = Bokeh.index.roots[0].el.getBoundingClientRect()
            return [r.left, r.top, Math.ceil(r.width), Math.ceil(r.height)]
        }"""
    )
    assert image.shape[:2] == (height, width)
    assert image.std() > 20  # not blank
    x, y = view.segments.data["x"][1], view.segments.data["y"][1]
    outward = 1.0 + 0.3 * view.coiled.band_width / float(np.hypot(x, y))  # off the label in the middle
    sx, sy = page.data_to_page("coil_figure", float(x * outward), float(y * outward))
    expected = coilvis.views._style.map_colors([view.segments.data[view.scale.column][1]], view.scale)[0]
    rgb = np.array([int(expected[i : i + 2], 16) for i in (1, 3, 5)])
    pixel = image[int(round(sy - top)), int(round(sx - left))]
    assert np.abs(pixel - rgb).max() <= 6, (pixel, expected)


@pytest.mark.slow
def test_notebook_displays_offline(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np, coilvis\n"
            "rec = coilvis.from_logits(np.log(np.array([[0.7, 0.3], [0.4, 0.6]])), tokens=[0, 1], vocab=['a', ' b'])\n"
            "coilvis.coil(rec)"
        ),
        nbformat.v4.new_code_cell("coilvis.show(coilvis.coil(rec, color='entropy'))"),
    ]
    nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [out for cell in notebook.cells for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    mimes = [mime for out in outputs for mime in out.get("data", {})]
    assert mimes.count("application/vnd.bokehjs_exec.v0+json") == 2
    text = "".join(str(value) for out in outputs for value in out.get("data", {}).values())
    assert "cdn.bokeh.org" not in text
    assert "coil_segments" in text  # the view's models are in the cell output
    loads = [out for out in outputs if "application/vnd.bokehjs_load.v0+json" in out.get("data", {})]
    assert len(loads) == 1  # BokehJS loaded once, inline
    assert len(str(loads[0]["data"]["application/javascript"])) > 1_000_000


def test_png_timeout_is_an_error_naming_the_option() -> None:
    class SlowDriver:
        def execute_script(self, script: str) -> bool:
            return False

        def get_log(self, kind: str) -> list[dict[str, str]]:
            return [{"level": "SEVERE", "message": "boom"}]

    with pytest.raises(CoilvisError, match="timeout_s.*boom"):
        output._wait_idle(SlowDriver(), 0.01)


def test_the_page_title_shows_hidden_characters_as_escapes(tmp_path):
    record = coilvis.from_logits(np.zeros((2, 4), dtype=np.float32))
    html = output.to_html(coilvis.coil(record), title="<b>x</b>\u202eabc\x00def")
    title = html[html.index("<title>") : html.index("</title>")]
    assert "\u202e" not in title and "\x00" not in title and "<b>" not in title
    assert "\\u202e" in title and "\\x00" in title and "&lt;b&gt;" in title


def test_an_image_shows_the_page_as_it_opens_before_autoplay() -> None:
    """A PNG of an animated coil is drawn without the page's start-up callbacks (the
    autoplay), so it shows the coil, not a frame mid-unwind; the view keeps them."""
    from bokeh.resources import INLINE

    record = coilvis.from_logits(np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32))
    view = coilvis.coil(record, animate=True)
    assert view.doc.callbacks.js_event_callbacks["document_ready"]
    page = output._page_html(view, INLINE, "t")
    with output._still(view):
        still = output._page_html(view, INLINE, "t")
    assert page.count("document_ready") > still.count("document_ready")
    assert output._page_html(view, INLINE, "t") == page


def test_an_image_shows_the_still_form_and_the_view_is_left_as_it_was() -> None:
    """A view's still settings (a lens widened to every position) hold inside
    ``view.still()`` and in the page a PNG is drawn from; afterwards, even after an
    error, the view is as it was."""
    from bokeh.resources import INLINE

    fig = figure(width=300, height=200, title="opened", name="fig", x_range=(0.0, 10.0))
    view = View(fig, still=[(fig, "width", 900), (fig.title, "text", "whole"), (fig.x_range, "end", 42.0)])
    page = output._page_html(view, INLINE, "t")
    with view.still():
        assert (fig.width, fig.title.text, fig.x_range.end) == (900, "whole", 42.0)
        still = output._page_html(view, INLINE, "t")
    assert (fig.width, fig.title.text, fig.x_range.end) == (300, "opened", 10.0)
    assert '"whole"' in still and '"whole"' not in page
    with pytest.raises(RuntimeError), view.still():
        raise RuntimeError("drawing failed")
    assert (fig.width, fig.title.text) == (300, "opened") and output._page_html(view, INLINE, "t") == page


# ------------------------------------------------------------------------------ shared BokehJS


def shared_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("bokeh-*.min.js"))


def test_shared_pages_link_one_bokehjs_file_beside_them(tmp_path: Path) -> None:
    from bokeh import __version__ as bokeh_version
    from bokeh.resources import INLINE

    first = coilvis.save(small_coil(), tmp_path / "a.html", resources="shared")
    second = coilvis.save(small_coil(), tmp_path / "b.html", resources="shared")
    [library] = shared_files(tmp_path)
    assert library.name.startswith(f"bokeh-{bokeh_version}-")
    text = library.read_text(encoding="utf-8")
    assert text.startswith("/* BEGIN bokeh.min.js */") and len(text) > 1_000_000
    assert text in "\n".join(INLINE.js_raw)  # Bokeh's own files, as an inline page holds them
    for page in (first, second):
        html = page.read_text(encoding="utf-8")
        assert re.findall(r'<script src="([^"]*)"', html) == [library.name]  # relative, beside the page
        assert len(html) < 100_000 and "/* BEGIN bokeh.min.js */" not in html
    # the same document as the inline page: only the way BokehJS arrives differs
    inline = output.to_html(small_coil())
    data = lambda html: html[html.index('<script type="application/json"') :]  # noqa: E731
    assert data(first.read_text(encoding="utf-8")) == data(inline)


def test_shared_file_is_written_once_and_named_by_its_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coilvis.save(small_view(), tmp_path / "a.html", resources="shared")
    [library] = shared_files(tmp_path)
    writes: list[Path] = []
    real = output.atomic_write
    monkeypatch.setattr(output, "atomic_write", lambda path, data: writes.append(Path(path)) or real(path, data))
    coilvis.save(small_view(), tmp_path / "b.html", resources="shared")
    assert writes == [tmp_path / "b.html"]  # the library was there already
    library.write_bytes(b"damaged")
    coilvis.save(small_view(), tmp_path / "c.html", resources="shared")
    assert writes[1:] == [library, tmp_path / "c.html"] and library.read_bytes().startswith(b"/* BEGIN bokeh")
    # a page with widgets and tables needs more of BokehJS: another file, named by its contents
    record = coilvis.from_logits(np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])), tokens=[0, 2], vocab=["a", "b", "c"])
    coilvis.save(coilvis.page(record), tmp_path / "page.html", resources="shared")
    names = [p.name for p in shared_files(tmp_path)]
    assert len(names) == 2 and library.name in names
    bigger = next(p for p in shared_files(tmp_path) if p != library)
    assert "BEGIN bokeh-widgets.min.js" in bigger.read_text(encoding="utf-8")


def test_shared_needs_a_file_to_write_into() -> None:
    with pytest.raises(CoilvisValueError, match="resources: 'shared' writes BokehJS to a file beside the page"):
        output.to_html(small_view(), resources="shared")  # type: ignore[arg-type]
    with pytest.raises(CoilvisValueError, match="'inline' or 'cdn'"):
        output.to_html(small_view(), resources="elsewhere")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ one browser, many PNGs


class FakeDriver:
    """What a PNG export asks of selenium's Chrome driver; the screenshot is a real PNG."""

    def __init__(self, log: list[str], *, fail_on_get: bool = False) -> None:
        self.log, self.fail_on_get, self.size = log, fail_on_get, {"width": 2000, "height": 2000}

    def set_window_size(self, width: int, height: int) -> None:
        self.size = {"width": width, "height": height}

    def get_window_size(self) -> dict[str, int]:
        return self.size

    def get(self, url: str) -> None:
        self.log.append("get " + Path(url.removeprefix("file://")).name)
        if self.fail_on_get:
            from selenium.common.exceptions import WebDriverException

            raise WebDriverException("chrome not reachable")

    def execute_script(self, script: str) -> Any:
        return True if "is_idle" in script else [30, 20, 1, 1900, 1800]

    def execute_async_script(self, script: str) -> bool:
        return True

    def get_screenshot_as_png(self) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGBA", (100, 80), (200, 10, 10, 255)).save(buffer, format="PNG")
        return buffer.getvalue()

    def quit(self) -> None:
        self.log.append("quit")


@pytest.fixture
def fake_browser(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every browser start, page load and quit, in order."""
    pytest.importorskip("selenium")
    log: list[str] = []
    monkeypatch.setattr(output, "find_chromium", lambda: ("/usr/bin/chromium", "/usr/bin/chromedriver"))

    def start(browser: str, driver: str, profile: Path) -> FakeDriver:
        fail = log[-1:] == ["fail next"]
        log.append("start")
        return FakeDriver(log, fail_on_get=fail)

    monkeypatch.setattr(output, "_chrome_driver", start)
    return log


def test_a_png_session_draws_many_images_with_one_browser(tmp_path: Path, fake_browser: list[str]) -> None:
    from PIL import Image

    with output.PngSession() as session:
        assert fake_browser == []  # nothing starts before the first image
        paths = [session.save(small_view(f"v{i}"), tmp_path / f"v{i}.png") for i in range(3)]
        assert (session.starts, session.images) == (1, 3)
        folder = Path(session._folder())
        assert [p.name for p in folder.iterdir() if p.suffix == ".html"] == []  # each page is removed once drawn
    assert fake_browser == ["start", "get view-1.html", "get view-2.html", "get view-3.html", "quit"]
    assert not folder.exists()
    for p in paths:
        with Image.open(p) as image:
            assert image.size == (30, 20)  # cut to the view's size
    assert files_in(tmp_path) == ["v0.png", "v1.png", "v2.png"]


def test_save_still_starts_and_quits_a_browser_per_image(tmp_path: Path, fake_browser: list[str]) -> None:
    coilvis.save(small_view(), tmp_path / "a.png")
    coilvis.save(small_view(), tmp_path / "b.png")
    assert fake_browser == ["start", "get view-1.html", "quit", "start", "get view-1.html", "quit"]


def test_a_failed_browser_is_replaced_for_the_next_image(tmp_path: Path, fake_browser: list[str]) -> None:
    with output.PngSession() as session:
        fake_browser.append("fail next")
        with pytest.raises(CoilvisError, match="headless Chromium failed to draw the view"):
            session.save(small_view(), tmp_path / "a.png")
        assert not (tmp_path / "a.png").exists()
        session.save(small_view(), tmp_path / "b.png")
        assert (session.starts, session.images) == (2, 1)
    assert fake_browser == ["fail next", "start", "get view-1.html", "quit", "start", "get view-1.html", "quit"]


def test_a_png_session_saves_png_only(tmp_path: Path) -> None:
    with output.PngSession() as session, pytest.raises(CoilvisValueError, match="path"):
        session.save(small_view(), tmp_path / "a.html")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_shared_pages_open_offline_from_a_moved_folder(browser_session, tmp_path: Path) -> None:  # noqa: F811
    import shutil

    record = coilvis.from_logits(np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])), tokens=[0, 2, 1], vocab=["a", " b", " c"])
    built = tmp_path / "built"
    built.mkdir()
    coilvis.save(coilvis.page(record), built / "page.html", resources="shared")
    coilvis.save(small_view(), built / "plot.html", resources="shared")
    moved = tmp_path / "elsewhere" / "site"
    shutil.copytree(built, moved)
    shutil.rmtree(built)
    for name, model in (("page.html", "coil_figure"), ("plot.html", "dots")):
        page = browser_session.open(moved / name)
        assert page.errors == [] and page.external_requests == []
        libraries = [url for url in page.requests if url.endswith(".min.js")]
        assert len(libraries) == 1 and libraries[0].startswith((moved.as_uri() + "/bokeh-"))
        assert page.has_model(model)
        page.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_a_png_session_draws_what_save_draws(tmp_path: Path) -> None:
    from PIL import Image

    views = [small_coil(), small_view("plot")]
    singles = [np.asarray(Image.open(coilvis.save(v, tmp_path / f"single{i}.png"))) for i, v in enumerate(views)]
    with output.PngSession() as session:
        batch = [np.asarray(Image.open(session.save(v, tmp_path / f"session{i}.png"))) for i, v in enumerate(views)]
        assert session.starts == 1
    for one, other in zip(singles, batch):
        assert one.shape == other.shape
        assert np.abs(one.astype(np.int64) - other.astype(np.int64)).mean() < 1.0
