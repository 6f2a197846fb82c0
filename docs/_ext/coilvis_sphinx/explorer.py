"""The ``coilvis-explorer`` directive: a screenshot of the live explorer, taken at build time.

The explorer needs a running server, which a static site cannot hold; so the build
starts it (:func:`coilvis.serve.server.start`, the embedded default model, a free
loopback port), opens it in headless Chromium through a link that runs a prompt, waits
until the run is drawn, and shows that screen::

    ```{coilvis-explorer}
    :prompt: When Mary and John went to the store, John gave a drink to
    :query: color=entropy
    ```
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

_DONE = (
    "() => { const d = window.Bokeh && Bokeh.documents[0]; const s = d && d.get_model_by_name('coilvis_status');"
    " return s != null && s.text.startsWith('Done') && d.is_idle }"
)


def screenshot(url: str, out: Path, *, viewport: tuple[int, int] = (1280, 1000)) -> None:
    """Open ``url`` (an explorer link) in headless Chromium and save the screen once the run is drawn."""
    from playwright.sync_api import sync_playwright

    from coilvis.views.output import CHROMIUM_FLAGS

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise ExtensionError("the explorer's screenshot needs headless Chromium (make browser)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(url)
            page.wait_for_function(_DONE, timeout=300_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
        finally:
            browser.close()


def explorer_screenshot(query: dict[str, str], out: Path) -> None:
    """Start the explorer on a free loopback port, take the screenshot of ``?query``, stop it."""
    from coilvis.serve.server import start

    box: dict[str, Any] = {}
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            box["running"] = start(port=0)
        finally:
            ready.set()
        box["running"].server.io_loop.start()

    threading.Thread(target=serve, daemon=True).start()
    if not ready.wait(120) or "running" not in box:
        raise ExtensionError("the explorer did not start")
    running = box["running"]
    try:
        screenshot(f"{running.url}?{urlencode(query)}", out)
    finally:
        stopped = threading.Event()

        def stop() -> None:
            try:
                running.stop()
            finally:
                running.server.io_loop.stop()
                stopped.set()

        running.server.io_loop.add_callback(stop)
        stopped.wait(60)


class CoilvisExplorer(SphinxDirective):
    """A screenshot of the explorer after it ran ``:prompt:``."""

    option_spec: ClassVar[dict[str, Any]] = {"prompt": directives.unchanged_required, "query": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        paths = self.env.app.coilvis_paths
        query = {"prompt": self.options["prompt"], **dict(parse_qsl(self.options.get("query", "")))}

        def produce(out: Path) -> dict[str, str]:
            explorer_screenshot(query, out / "explorer.png")
            return {}

        folder, _ = paths.cached("explorer", urlencode(query), produce)
        uri = "/" + (folder / "explorer.png").relative_to(Path(self.env.srcdir)).as_posix()
        figure = nodes.figure(classes=["coilvis-shot"])
        figure += nodes.image(uri=uri, alt="the explorer after running the prompt")
        shown = "&".join(f"{name}={value}" for name, value in query.items())
        text = f"The explorer, opened with ?{shown}: a screenshot taken while this site was built."
        figure += nodes.caption(text, text)
        return [figure]
