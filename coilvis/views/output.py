"""Standalone HTML pages, PNG images and notebook output for every coilvis view.

Every view returns a :class:`View`: one Bokeh root (a figure, or a column of controls
and figures) in a Document of its own. :func:`save` writes it as one HTML file that
loads nothing from the network (BokehJS inlined; ``resources="cdn"`` gives a small file
that needs the internet) or, for a ``.png`` path, as an image drawn by headless
Chromium. Files are written atomically: to a temporary file in the same folder, then
renamed over the target, so a crash never leaves a half-written file over a good one.
The same view gives a byte-identical page, whatever the process built before it.
:func:`show` displays a view in Jupyter (BokehJS loaded once per kernel, inline, so it
works offline) or opens it in a web browser; the cell's script holds token text as
escaped JSON, so a notebook exported to HTML (nbconvert) runs none of it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
import time
import webbrowser
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from bokeh.core.json_encoder import serialize_json
from bokeh.document import Document
from bokeh.embed.util import FromCurdoc, OutputDocumentFor
from bokeh.model import Model
from bokeh.models import UIElement
from bokeh.resources import CDN, INLINE, Resources

from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, MissingDependencyError
from coilvis.files import atomic_write, check_output_path
from coilvis.tokens import display_lines
from coilvis.views.standalone import _page, _page_html

__all__ = [
    "View",
    "PngSession",
    "save",
    "show",
    "to_html",
    "CHROMIUM_FLAGS",
    "INSTALL_CHROMIUM",
    "INSTALL_SELENIUM",
    "find_chromium",
]

#: Flags headless Chromium runs with (as root, in containers, without network chatter).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: How to install the browser PNG export needs (Debian/Ubuntu).
INSTALL_CHROMIUM = "apt-get install chromium chromium-driver"
#: How to install the Python driver PNG export needs.
INSTALL_SELENIUM = "pip install selenium"

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# A page with no margins, so the view starts at the top-left corner (for screenshots).
_BARE_TEMPLATE = """\
{% block preamble %}
<style>html, body { margin: 0; padding: 0; border: 0; background: #ffffff; }</style>
{% endblock %}
"""

_NOTEBOOK_LOADED = False


class View:
    """A drawn view: one Bokeh root model in a Document of its own.

    Saved pages, PNG images and notebook cells are all made from :attr:`doc`, so
    document-level JavaScript (``view.doc.js_on_event("document_ready", ...)``) is kept.

    Args:
        layout: the Bokeh root (figure, row/column, ...). It must not belong to another
            Document already, unless it is that Document's only root.
        title: the page title.
        kind: what the view shows (``"coil"``, ``"lens"``, ...).
        still: ``(model, property, value)`` settings of the view's still form, the one
            an image shows (see :meth:`still`): an image cannot pan, so a lens is shown
            whole there, not its panning window.

    Attributes:
        layout: the Bokeh root model.
        doc: the Document holding ``layout`` as its only root.
        title: the page title.
        kind: what the view shows.
        still_settings: the ``still`` settings.
    """

    def __init__(
        self,
        layout: UIElement,
        *,
        title: str = "coilvis",
        kind: str = "view",
        still: Sequence[tuple[Model, str, Any]] = (),
    ) -> None:
        if not isinstance(layout, UIElement):
            raise CoilvisTypeError(f"layout: expected a Bokeh layout or figure, got {type(layout).__name__}")
        if not isinstance(title, str):
            raise CoilvisTypeError(f"title: expected a str, got {type(title).__name__}")
        doc = layout.document
        if doc is None:
            doc = Document()
            doc.add_root(layout)
        elif list(doc.roots) != [layout]:
            raise CoilvisValueError("layout: belongs to a Document with other roots; give each view its own")
        self.layout = layout
        self.doc = doc
        self.title = title
        self.kind = kind
        self.still_settings = list(still)

    def to_document(self) -> Document:
        """The Document to save or embed (``layout`` is its only root)."""
        return self.doc

    def model(self, name: str) -> Model:
        """The model of the view with this ``name`` (views name every model a page script or test reads).

        Raises:
            CoilvisValueError: no model has that name.
        """
        found = self.doc.select_one({"name": name})
        if found is None:
            raise CoilvisValueError(f"name: the {self.kind} view has no model named {name!r}")
        return found

    def still(self) -> contextlib.AbstractContextManager[None]:
        """The view in its still form, the one a PNG shows, for the ``with`` block.

        An image shows the page as it opens, before any ``document_ready`` callback (an
        animation starting by itself) and with the :attr:`still_settings` applied (a lens
        widened to show every position, since an image cannot pan); both come back at
        the end of the block.

        Example:
            >>> import coilvis  # doctest: +MODEL
            >>> record = coilvis.run("The Eiffel Tower is located in the city of", lens=True)
            >>> view = coilvis.lens(record, max_width_px=200)   # opens on the last positions
            >>> with view.still():                              # what the PNG shows: all of them
            ...     print(view.model("lens_x_range").start)
            -0.5
        """
        return _still(self)

    def to_html(self, *, resources: Literal["inline", "cdn"] = "inline", title: str | None = None) -> str:
        """The standalone HTML page of the view (see :func:`to_html`)."""
        return to_html(self, resources=resources, title=title)

    def save(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """Write the view to ``path`` (see :func:`save`)."""
        return save(self, path, **options)

    def show(self) -> Path | None:
        """Display the view (see :func:`show`)."""
        return show(self)

    def _ipython_display_(self) -> None:
        if _in_notebook():
            _show_notebook(self)
        else:
            print(repr(self))

    def __repr__(self) -> str:
        return f"<coilvis {self.kind} view {self.title!r}: coilvis.save(view, 'x.html') or coilvis.show(view)>"


def _as_view(view: Any) -> View:
    if isinstance(view, View):
        return view
    if isinstance(view, UIElement):
        return View(view)
    raise CoilvisTypeError(f"view: expected a coilvis view (or a Bokeh layout), got {type(view).__name__}")


def _resources(resources: Any) -> Resources:
    """``"inline"`` or ``"cdn"`` as Bokeh's resources (``"shared"`` is :func:`save`'s alone)."""
    if not isinstance(resources, str):
        raise CoilvisTypeError(f"resources: expected 'inline' or 'cdn', got {type(resources).__name__}")
    if resources == "inline":
        return INLINE
    if resources == "cdn":
        return CDN
    if resources == "shared":
        raise CoilvisValueError(
            "resources: 'shared' writes BokehJS to a file beside the page; use coilvis.save(view, path, resources='shared')"
        )
    raise CoilvisValueError(f"resources: expected 'inline' or 'cdn', got {resources!r}")


def to_html(view: View | UIElement, *, resources: Literal["inline", "cdn"] = "inline", title: str | None = None) -> str:
    """The standalone HTML page of a view.

    Args:
        view: a :class:`View` (or a bare Bokeh layout).
        resources: ``"inline"`` puts BokehJS in the page (about 1.3 MB; loads nothing
            from the network); ``"cdn"`` links it from cdn.bokeh.org (small, but blank
            offline).
        title: the page title (default: the view's).

    Returns:
        The page, a str: the same view gives the same bytes, in any process (see
        :func:`_page_html`).
    """
    view = _as_view(view)
    return _page_html(view, _resources(resources), _page_title(view, title))


def _page_title(view: View, title: Any) -> str:
    """The page title: ``title`` or the view's, hidden characters (NUL, bidi controls)
    as visible escapes, as token text is (the browser's tab shows it; Bokeh's template
    HTML-escapes it)."""
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    return display_lines(title if title is not None else view.title)


def _save_shared(view: View, out: Path, title: str) -> None:
    """Write the page linking BokehJS as a file beside it, and that file unless it is there already."""
    html, name, text = _page(view, INLINE, title, shared=True)
    library = out.parent / name
    data = text.encode("utf-8")
    if not (library.is_file() and library.stat().st_size == len(data) and library.read_bytes() == data):
        atomic_write(library, data)
    atomic_write(out, html.encode("utf-8"))


def save(
    view: View | UIElement,
    path: str | os.PathLike[str],
    *,
    resources: Literal["inline", "cdn"] = "inline",
    title: str | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Write a view as a standalone HTML page or, for a ``.png`` path, a PNG image.

    The file is written atomically (a temporary file in the same folder, then a rename),
    so a failed save leaves any existing file untouched and no temporary file behind.
    A PNG shows the view's still form (:meth:`View.still`): the page as it opens, before
    an animation plays, with a lens widened to every position (an image cannot pan).

    Args:
        view: a :class:`View` (or a bare Bokeh layout).
        path: where to write; ``.html``/``.htm`` or ``.png``.
        resources: for HTML, ``"inline"`` (default; the page loads nothing from the
            network), ``"cdn"``, or ``"shared"``: BokehJS goes to a file beside the page
            (``bokeh-VERSION-HASH.min.js``, written once and shared by every page of the
            folder that needs the same files) and the page links it by a relative path,
            so a folder of pages holds BokehJS once and still loads nothing from the
            network (keep the file with the pages).
        title: the page title (default: the view's).
        timeout_s: for PNG, how long to wait for the browser to draw the view.

    Returns:
        The path written.

    Raises:
        CoilvisTypeError: ``view`` is not a view, ``path`` not a path.
        CoilvisValueError: unknown suffix or ``resources``, missing folder.
        MissingDependencyError: a PNG was asked for and Chromium, chromedriver or
            selenium is missing (the message says what to install).
        CoilvisError: the browser failed to draw the view in time.
    """
    view = _as_view(view)
    out = check_output_path(path, suffixes=(".html", ".htm", ".png"), make_parents=False)
    if out.suffix.lower() == ".png":
        atomic_write(out, _png_bytes(view, timeout_s=timeout_s))
    elif isinstance(resources, str) and resources == "shared":
        _save_shared(view, out, _page_title(view, title))
    else:
        atomic_write(out, to_html(view, resources=resources, title=title).encode("utf-8"))
    return out


# ------------------------------------------------------------------------------ PNG


def find_chromium() -> tuple[str, str]:
    """Paths of a Chromium (or Chrome) browser and of chromedriver, from ``PATH``.

    Returns:
        ``(browser, driver)``.

    Raises:
        MissingDependencyError: either is missing; the message says what to install.
    """
    browser = next((found for name in _CHROMIUM_NAMES if (found := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(
            what for what, found in (("a Chromium browser", browser), ("chromedriver", driver)) if found is None
        )
        raise MissingDependencyError(
            f"path: PNG export draws the view in headless Chromium, but {missing} was not found on PATH; "
            f"install them with: {INSTALL_CHROMIUM} (and the Python driver with: {INSTALL_SELENIUM})"
        )
    return browser, driver


def _chrome_driver(browser: str, driver_path: str, profile: Path) -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise MissingDependencyError(
            f"path: PNG export drives headless Chromium with selenium, which is not installed; "
            f"install it with: {INSTALL_SELENIUM} (and the browser with: {INSTALL_CHROMIUM})"
        ) from None
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


# idle, and the root's view exists (the document can report idle a moment before the
# view index holds the root's view)
_IDLE_JS = (
    "return typeof Bokeh !== 'undefined' && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle === true"
    " && Bokeh.index.roots.length > 0 && Bokeh.index.roots[0].el != null"
)
_SIZE_JS = """
const root = Bokeh.index.roots[0]
const {width, height} = root.el.getBoundingClientRect()
return [Math.ceil(width), Math.ceil(height), window.devicePixelRatio, window.innerWidth, window.innerHeight]
"""
_FRAMES_JS = """
const done = arguments[arguments.length - 1]
requestAnimationFrame(() => requestAnimationFrame(() => done(true)))
"""


def _wait_idle(driver: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not driver.execute_script(_IDLE_JS):
        if time.monotonic() > deadline:
            errors = [entry.get("message", "") for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
            raise CoilvisError(
                f"timeout_s: the browser did not finish drawing the view in {timeout_s} s"
                + (f"; browser errors: {errors}" if errors else "")
            )
        time.sleep(0.05)


@contextlib.contextmanager
def _still(view: View) -> Iterator[None]:
    """The view without its ``document_ready`` callbacks (an image shows the page as it
    opens, before an animation starts playing by itself) and with its still settings
    (see :meth:`View.still`); everything is put back afterwards."""
    callbacks = view.doc.callbacks.js_event_callbacks
    ready = callbacks.pop("document_ready", None)
    before = [(model, name, getattr(model, name)) for model, name, _ in view.still_settings]
    try:
        for model, name, value in view.still_settings:
            setattr(model, name, value)
        yield
    finally:
        for model, name, value in reversed(before):
            setattr(model, name, value)
        if ready is not None:
            callbacks["document_ready"] = ready


def _load_in_window(driver: Any, page: Path, timeout_s: float) -> tuple[int, int, float]:
    """Load ``page`` in a window whose viewport holds the whole view (the screenshot
    shows the viewport only); returns the view's ``(width, height, devicePixelRatio)``.

    The window starts at 2,000 px square; a view that does not fit its viewport (a
    window's size includes the browser's own frame) gets a window grown by what was
    missing, and the page is loaded again there rather than redrawn after a resize.
    """
    driver.set_window_size(2000, 2000)
    for _ in range(3):
        driver.get(page.as_uri())
        _wait_idle(driver, timeout_s)
        width, height, dpr, inner_w, inner_h = driver.execute_script(_SIZE_JS)
        missing_w, missing_h = max(0, width - inner_w), max(0, height - inner_h)
        if not (missing_w or missing_h):
            break
        outer = driver.get_window_size()
        driver.set_window_size(
            outer["width"] + math.ceil(missing_w * dpr) + 50, outer["height"] + math.ceil(missing_h * dpr) + 50
        )
    return width, height, dpr


def _png_bytes(view: View, *, timeout_s: float) -> bytes:
    """A PNG of ``view`` from a browser of its own (see :class:`PngSession`)."""
    with PngSession() as session:
        return session.png_bytes(view, timeout_s=timeout_s)


def _cropped_png(png: bytes, width: int, height: int, dpr: float) -> bytes:
    """A screenshot cut to the view's ``width`` x ``height`` CSS pixels (scaled back when ``dpr`` != 1)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGBA").crop((0, 0, int(width * dpr), int(height * dpr)))
    if dpr != 1:
        image = image.resize((int(width), int(height)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class PngSession:
    """One headless Chromium for many PNG images (a gallery's thumbnails, a batch of views).

    Starting Chromium takes longer than drawing most views, and :func:`save` starts one
    per image. A session starts it on its first image and keeps it until :meth:`close`
    (the end of the ``with`` block), so each further image costs its drawing only.
    Each image is the one :func:`save` writes for a ``.png`` path: the view's still
    form, at its size. A browser that fails is closed, and the next image starts another.

    Example:
        >>> import numpy as np, coilvis  # doctest: +BROWSER
        >>> from coilvis.views.output import PngSession
        >>> record = coilvis.from_logits(np.zeros((5, 4)), tokens=[0, 1, 2, 3, 0], vocab=["a", " b", "c", "."])
        >>> views = {"circle": coilvis.coil(record, layout="circle"), "spiral": coilvis.coil(record, layout="spiral")}
        >>> with PngSession() as pngs:
        ...     paths = [pngs.save(view, f"{name}.png") for name, view in views.items()]
        >>> [p.name for p in paths], pngs.images, pngs.starts
        (['circle.png', 'spiral.png'], 2, 1)

    Attributes:
        images: images drawn so far.
        starts: browsers started so far.
    """

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._driver: Any = None
        self.images = 0
        self.starts = 0

    def __enter__(self) -> PngSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, view: View | UIElement, path: str | os.PathLike[str], *, timeout_s: float = 60.0) -> Path:
        """Write ``view`` as a PNG image at ``path`` (atomically, as :func:`save` does).

        Raises:
            As :func:`save` for a ``.png`` path; a path of another suffix is refused.
        """
        view = _as_view(view)
        out = check_output_path(path, suffixes=(".png",), make_parents=False)
        atomic_write(out, self.png_bytes(view, timeout_s=timeout_s))
        return out

    def png_bytes(self, view: View | UIElement, *, timeout_s: float = 60.0) -> bytes:
        """The PNG image of ``view``, as bytes."""
        view = _as_view(view)
        driver = self._browser()  # refuses first when Chromium or selenium is missing
        from selenium.common.exceptions import WebDriverException

        folder = Path(self._folder())
        with _still(view):
            html, name, text = _page(view, INLINE, view.title, template=_BARE_TEMPLATE, shared=True)
        if not (folder / name).is_file():
            (folder / name).write_text(text, encoding="utf-8")
        page = folder / f"view-{self.images + 1}.html"
        page.write_text(html, encoding="utf-8")
        try:
            width, height, dpr = _load_in_window(driver, page, timeout_s)
            driver.execute_async_script(_FRAMES_JS)
            png = driver.get_screenshot_as_png()
        except WebDriverException as exc:
            self._quit()
            raise CoilvisError(f"path: headless Chromium failed to draw the view for the PNG ({exc.msg or type(exc).__name__})") from exc
        finally:
            page.unlink(missing_ok=True)
        self.images += 1
        return _cropped_png(png, width, height, dpr)

    def close(self) -> None:
        """Quit the browser and remove the session's temporary files."""
        self._quit()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _folder(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="coilvis-png-")
        return self._tmp.name

    def _browser(self) -> Any:
        if self._driver is None:
            browser, driver_path = find_chromium()
            self._driver = _chrome_driver(browser, driver_path, Path(self._folder(), f"profile-{self.starts}"))
            self.starts += 1
        return self._driver

    def _quit(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()


# ------------------------------------------------------------------------------ show


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# JSON characters written as JavaScript escapes, so that no data can end or confuse the
# <script> element that holds the JSON: nbconvert's HTML export (and any static viewer
# that does the same) pastes a cell's JavaScript verbatim inside <script>...</script>,
# where a token "</script><script>..." would end Bokeh's script and run its own, and
# "<!--" with "<script" would swallow the closing tag. In JSON text "<", ">" and "&" occur
# only inside strings, where "\u003c" means the same character, so the data arrives
# unchanged; U+2028/U+2029 are escaped for older JavaScript parsers. (A sandboxed
# iframe per view would isolate the data too, but would need BokehJS, 4 MB, in every
# cell instead of once per kernel, and some static viewers drop iframes' scripts.)
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _script_safe_json(value: Any) -> str:
    """``value`` as JSON (Bokeh's serialiser) with no ``<``, ``>`` or ``&``: safe inside any <script> element."""
    return serialize_json(value).translate(_SCRIPT_SAFE)


def _notebook_content(view: View) -> tuple[str, str]:
    """The script and div that draw a view in a notebook cell (Bokeh's, with script-safe data).

    Unlike Bokeh's ``notebook_content``, the view's own Document is serialised, so its
    document-level JavaScript (``document_ready``: the unwind's autoplay) is kept. The
    document and element ids stay Bokeh's random ones: a notebook also holds outputs of
    earlier kernels, and every view in it needs ids of its own.

    Returns:
        ``(script, div)``.
    """
    from bokeh.core.templates import DOC_NB_JS
    from bokeh.embed.elements import div_for_render_item
    from bokeh.embed.util import standalone_docs_json_and_render_items

    with OutputDocumentFor([view.layout], apply_theme=FromCurdoc):
        docs_json, [item] = standalone_docs_json_and_render_items([view.layout])
    script = DOC_NB_JS.render(docs_json=_script_safe_json(docs_json), render_items=_script_safe_json([item.to_json()]))
    return script, div_for_render_item(item)


def _show_notebook(view: View) -> None:
    global _NOTEBOOK_LOADED
    from bokeh.io import output_notebook
    from bokeh.io.notebook import EXEC_MIME_TYPE, HTML_MIME_TYPE, JS_MIME_TYPE, publish_display_data

    if not _NOTEBOOK_LOADED:
        # BokehJS itself, once per kernel; it never contains "</script" (checked by the tests).
        output_notebook(resources=INLINE, hide_banner=True)
        _NOTEBOOK_LOADED = True
    # what bokeh.io.show does, for a model that already has its own Document
    script, div = _notebook_content(view)
    publish_display_data({HTML_MIME_TYPE: div})
    publish_display_data({JS_MIME_TYPE: script, EXEC_MIME_TYPE: ""}, metadata={EXEC_MIME_TYPE: {"id": view.layout.id}})


def show(view: View | UIElement) -> Path | None:
    """Display a view: in the notebook when run in Jupyter, else in a web browser.

    In Jupyter, BokehJS is loaded inline once per kernel (nothing is fetched from the
    internet) and the view is drawn in the cell's output. Elsewhere the page is saved to
    a temporary file and opened with :mod:`webbrowser`.

    Args:
        view: a :class:`View` (or a bare Bokeh layout).

    Returns:
        The temporary file opened in the browser, or None in a notebook.
    """
    view = _as_view(view)
    if _in_notebook():
        _show_notebook(view)
        return None
    fd, name = tempfile.mkstemp(prefix=f"coilvis-{view.kind}-", suffix=".html")
    os.close(fd)
    path = save(view, name)
    webbrowser.open(path.as_uri())
    return path
