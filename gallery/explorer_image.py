"""Draw the README's picture of the live explorer, ``docs/explorer.png``.

Usage (from the source tree)::

    python gallery/explorer_image.py            # starts the explorer, runs a prompt, writes docs/explorer.png

It starts ``coilvis serve`` on a free loopback port (the embedded default model), opens
it in headless Chromium through a link that runs the indirect-object prompt, waits for
the run, selects the last position and saves the top of the page (1280 x 1000 px).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "When Mary and John went to the store, John gave a drink to"


def main() -> Path:
    from playwright.sync_api import sync_playwright

    from coilvis.serve.server import start
    from coilvis.views.output import CHROMIUM_FLAGS

    box: dict[str, object] = {}
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        running = start(port=0)
        box["running"] = running
        ready.set()
        running.server.io_loop.start()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(60)
    running = box["running"]
    out = ROOT / "docs" / "explorer.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=list(CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(running.url + "?" + urlencode({"prompt": PROMPT, "color": "entropy"}))  # type: ignore[attr-defined]
        page.wait_for_function(
            "() => { const d = window.Bokeh && Bokeh.documents[0]; const s = d && d.get_model_by_name('coilvis_status');"
            " return s != null && s.text.startsWith('Done') && d.is_idle }",
            timeout=600_000,
        )
        page.wait_for_timeout(1000)
        page.screenshot(path=str(out))
        browser.close()
    running.stop()  # type: ignore[attr-defined]
    print(out)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
