"""A small headless-Chromium harness for tests of saved coilvis pages (Playwright).

Usage from a test module::

    from browser import browser_session  # noqa: F401  (a fixture)

    @pytest.mark.slow
    @pytest.mark.browser
    def test_page(browser_session, tmp_path):
        page = browser_session.open(coilvis.save(view, tmp_path / "x.html"))
        assert page.errors == []
        assert page.external_requests == []
        page.hover_data("coil_figure", x, y)
        assert "Paris" in page.tooltip_text()

The browser is the system Chromium (``shutil.which("chromium")``) started with
:data:`coilvis.views.output.CHROMIUM_FLAGS`; Playwright gives every launch a fresh,
temporary profile. Each :meth:`BrowserSession.open` uses a new browser context, records
console errors, uncaught page errors and every request, and waits until
``Bokeh.documents[0].is_idle``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coilvis.views.output import CHROMIUM_FLAGS

__all__ = ["BrowserSession", "LoadedPage", "browser_session", "chromium_path"]

# Set in the page before any script runs: the time (ms since navigation start) at which
# Bokeh first reports an idle document.
_IDLE_PROBE = """
(() => {
  const poll = () => {
    const B = window.Bokeh
    if (B && B.documents && B.documents.length > 0 && B.documents[0].is_idle === true) {
      window.__coilvis_idle_ms = performance.now()
    } else {
      setTimeout(poll, 5)
    }
  }
  poll()
})()
"""

_DATA_TO_PAGE = """
([name, x, y]) => {
  const model = Bokeh.documents[0].get_model_by_name(name)
  if (model == null) throw new Error(`no model named ${name}`)
  const view = Bokeh.index.find_one(model)
  if (view == null) throw new Error(`no view of ${name}`)
  const sx = view.frame.x_scale.compute(x)
  const sy = view.frame.y_scale.compute(y)
  const rect = view.canvas_view.el.getBoundingClientRect()
  return [rect.left + sx, rect.top + sy]
}
"""

_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def chromium_path() -> str | None:
    """Path of the system Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class LoadedPage:
    """One page loaded in headless Chromium, with what it logged and requested.

    Attributes:
        page: the Playwright ``Page``.
        console_errors: text of console messages of type ``error``.
        page_errors: uncaught exceptions thrown in the page.
        requests: URL of every request the page made (including the page itself).
        idle_ms: milliseconds from navigation start until Bokeh was first idle.
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self.idle_ms: float = float("nan")
        page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("request", lambda req: self.requests.append(req.url))

    @property
    def errors(self) -> list[str]:
        """Console errors and uncaught page errors together."""
        return [*self.console_errors, *self.page_errors]

    @property
    def external_requests(self) -> list[str]:
        """Requests to anything but local files (and data:/blob: URLs)."""
        return [url for url in self.requests if not url.startswith(_LOCAL_SCHEMES)]

    def evaluate(self, script: str, arg: Any = None) -> Any:
        """Run a JavaScript function expression in the page, e.g. ``"(a) => a + 1"``."""
        return self.page.evaluate(script, arg)

    def has_model(self, name: str) -> bool:
        """Whether the page's Bokeh document has a model with this name."""
        return bool(self.evaluate("(n) => Bokeh.documents[0].get_model_by_name(n) != null", name))

    def model_attr(self, name: str, attr: str) -> Any:
        """A property of the model named ``name`` (JSON-converted; typed arrays become lists)."""
        return self.evaluate(
            """([n, a]) => {
                const m = Bokeh.documents[0].get_model_by_name(n)
                if (m == null) throw new Error(`no model named ${n}`)
                const v = m[a]
                return ArrayBuffer.isView(v) ? Array.from(v) : v
            }""",
            [name, attr],
        )

    def column(self, source_name: str, column: str) -> list[Any]:
        """A column of the data source named ``source_name`` as a list."""
        return self.evaluate(
            """([n, c]) => {
                const s = Bokeh.documents[0].get_model_by_name(n)
                if (s == null) throw new Error(`no model named ${n}`)
                const v = s.data[c]
                if (v == null) throw new Error(`no column ${c}`)
                return Array.from(v, (x) => (ArrayBuffer.isView(x) ? Array.from(x) : x))
            }""",
            [source_name, column],
        )

    def view_indices(self, renderer_name: str) -> list[int]:
        """Row indices a glyph renderer currently draws (its CDSView's filtered indices)."""
        return self.evaluate(
            """(n) => {
                const r = Bokeh.documents[0].get_model_by_name(n)
                if (r == null) throw new Error(`no model named ${n}`)
                return Array.from(r.view.indices)
            }""",
            renderer_name,
        )

    def data_to_page(self, figure_name: str, x: float, y: float) -> tuple[float, float]:
        """Page (CSS pixel) coordinates of data point ``(x, y)`` in the figure named ``figure_name``."""
        sx, sy = self.evaluate(_DATA_TO_PAGE, [figure_name, float(x), float(y)])
        return float(sx), float(sy)

    def hover_data(self, figure_name: str, x: float, y: float, *, settle_s: float = 0.3) -> None:
        """Move the mouse to data point ``(x, y)`` of a figure and let Bokeh react."""
        sx, sy = self.data_to_page(figure_name, x, y)
        self.page.mouse.move(sx + 3, sy + 3)
        self.page.mouse.move(sx, sy)
        self.wait_idle(settle_s)

    def click_data(self, figure_name: str, x: float, y: float, *, settle_s: float = 0.3) -> None:
        """Click at data point ``(x, y)`` of a figure."""
        sx, sy = self.data_to_page(figure_name, x, y)
        self.page.mouse.click(sx, sy)
        self.wait_idle(settle_s)

    def wait_idle(self, settle_s: float = 0.0) -> None:
        """Wait ``settle_s`` seconds of page time, then until the Bokeh document is idle."""
        if settle_s > 0:
            self.page.wait_for_timeout(settle_s * 1000)
        self.page.wait_for_function("() => Bokeh.documents[0].is_idle === true")

    def tooltip_text(self) -> str:
        """Text of the visible Bokeh tooltip(s), or "" when none shows."""
        tips = self.page.locator(".bk-tooltip-content")
        texts = [tips.nth(i).inner_text() for i in range(tips.count()) if tips.nth(i).is_visible()]
        return "\n".join(texts)

    def tooltip_html(self) -> str:
        """Inner HTML of the visible Bokeh tooltip(s)."""
        tips = self.page.locator(".bk-tooltip-content")
        return "\n".join(tips.nth(i).inner_html() for i in range(tips.count()) if tips.nth(i).is_visible())

    def screenshot(self, path: str | Path | None = None) -> bytes:
        """PNG screenshot of the page (also written to ``path`` when given)."""
        return self.page.screenshot(path=str(path) if path is not None else None, full_page=True)

    def close(self) -> None:
        """Close the page and its browser context."""
        self.page.context.close()


class BrowserSession:
    """Headless Chromium driven by Playwright; open pages with :meth:`open`."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        path = chromium_path()
        if path is None:
            pytest.fail("headless Chromium is not installed: apt-get install chromium chromium-driver")
        self._playwright = sync_playwright().start()
        try:
            self.browser = self._playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_FLAGS))
        except BaseException:
            self._playwright.stop()
            raise

    def open(
        self,
        path: str | Path,
        *,
        timeout_s: float = 60.0,
        viewport: tuple[int, int] = (1400, 1100),
    ) -> LoadedPage:
        """Load a local HTML file and wait until its Bokeh document is idle.

        Args:
            path: the HTML file.
            timeout_s: how long to wait for Bokeh.
            viewport: browser window size in CSS pixels.

        Returns:
            The :class:`LoadedPage`, still open (close it, or let the session close it).
        """
        context = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.add_init_script(_IDLE_PROBE)
        loaded = LoadedPage(page)
        page.goto(Path(path).resolve().as_uri())
        try:
            page.wait_for_function("() => window.__coilvis_idle_ms !== undefined", timeout=timeout_s * 1000)
        except Exception as error:
            raise AssertionError(f"the page did not become idle in {timeout_s} s; errors: {loaded.errors}") from error
        loaded.idle_ms = float(page.evaluate("() => window.__coilvis_idle_ms"))
        return loaded

    def open_url(self, url: str, *, timeout_s: float = 60.0, viewport: tuple[int, int] = (1400, 1100)) -> LoadedPage:
        """Load a page from a server (``http://...``) and wait until its Bokeh document is idle."""
        context = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.add_init_script(_IDLE_PROBE)
        loaded = LoadedPage(page)
        page.goto(url)
        try:
            page.wait_for_function("() => window.__coilvis_idle_ms !== undefined", timeout=timeout_s * 1000)
        except Exception as error:
            raise AssertionError(f"{url} did not become idle in {timeout_s} s; errors: {loaded.errors}") from error
        loaded.idle_ms = float(page.evaluate("() => window.__coilvis_idle_ms"))
        return loaded

    def close(self) -> None:
        """Close the browser."""
        try:
            self.browser.close()
        finally:
            self._playwright.stop()


@pytest.fixture(scope="module")
def browser_session() -> Iterator[BrowserSession]:
    """A headless Chromium for the tests of one module."""
    session = BrowserSession()
    try:
        yield session
    finally:
        session.close()
