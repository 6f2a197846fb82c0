"""Benchmark of the live explorer (``coilvis serve``) on the default model, in headless Chromium.

What a user waits for, in one process (the server on a thread, Chromium driven by
Playwright), medians of ``--repeats``:

* ``run s`` / ``run+lens s``: from the click on Run to the status line saying Done with
  the new coil, lens and table drawn (the page idle), for a ``--seq-len``-token prompt,
  without and with the logit lens (targets on a 2-core CPU: < 1.5 s and < 3 s); with
  the lens, also the time until the new coil, table and lens frame are drawn (the page
  idle), which the explorer does before the lens is computed. As a reader works: runs
  follow one another with the same settings (first ``--repeats`` without the lens, then
  as many with it, each after one untimed run that draws the page of that shape), each
  prompt a window of the same text one token further, so each run's page goes into the
  views of the one before;
* ``script s``: the simplest thing a user could write instead, measured alternately:
  ``coilvis.run`` + ``coilvis.page`` + ``coilvis.save`` of the same prompt (and the
  browser opening the saved file is not even counted);
* ``RSS MB``: the server process's resident memory once the model is loaded, after
  50 runs spread over ``--tabs`` tabs (target: < 1.5 GB), and its growth from the run
  that fills every tab's history (each tab keeps its last
  :data:`coilvis.serve.session.HISTORY` runs: 50 runs over 5 tabs) to the last of
  ``--runs`` (target: no growth); the figure every 10 runs.

Usage::

    python benchmarks/bench_serve.py                 # 64 tokens, 3 repeats, 100 runs over 5 tabs
    python benchmarks/bench_serve.py --seq-len 128 --repeats 5 --runs 20 --tabs 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_lens import _prompt_ids, _rss_bytes  # noqa: E402

# Polled every animation frame: the status line and the history chooser are found once
# (they live as long as the tab), since a name lookup right after a patch walks every
# model of the document (~1 ms), which the run would pay for 60 times a second.
_DONE = """(n) => { const d = window.Bokeh && Bokeh.documents[0]; if (d == null) return false
  const w = window, s = w.__coilvis_status ?? (w.__coilvis_status = d.get_model_by_name('coilvis_status'))
  const h = w.__coilvis_history ?? (w.__coilvis_history = d.get_model_by_name('coilvis_history'))
  return s != null && h != null && s.text.startsWith('Done') && h.options.length >= n && d.is_idle }"""


def start_server() -> Any:
    from coilvis.serve.server import start

    box: dict[str, Any] = {}
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        box["running"] = start(port=0)
        ready.set()
        box["running"].server.io_loop.start()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(60)
    return box["running"]


# The new run's coil is drawn and the page idle: either a coil_figure other than the one
# before the click (a page of another shape), or new data in the coil shown (a page of the
# same shape takes the new run's values), seen one frame after it came.
_WATCH_COIL = """() => { const d = Bokeh.documents[0], c = d.get_model_by_name('coil_figure')
  window.__coilvis_coil_changed = 0
  if (c == null) return null
  const src = d.get_model_by_name('coil_segment_source')
  if (src.__coilvis_bench == null) src.__coilvis_bench = src.connect(src.change, () => { window.__coilvis_coil_changed = 1 })
  return c.id }"""
_NEW_COIL = """(old) => { const d = Bokeh.documents[0], c = d.get_model_by_name('coil_figure')
  if (window.__coilvis_coil_changed === 1) { window.__coilvis_coil_changed = 2; return false }
  return c != null && (c.id != old || window.__coilvis_coil_changed === 2) && d.is_idle }"""


def click_run(page: Any, prompt: str, lens: bool, n_before: int) -> tuple[float, float]:
    """Seconds from the click on Run to the page showing the new run's coil and table
    (with the lens, drawn before the lens comes), and to the page showing the whole run."""
    page.evaluate("(on) => { Bokeh.documents[0].get_model_by_name('coilvis_lens').active = on }", lens)
    box = page.locator("textarea")
    box.fill(prompt)
    box.press("Tab")
    page.wait_for_timeout(200)
    old = page.evaluate(_WATCH_COIL)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(_NEW_COIL, arg=old, timeout=600_000)
    first = time.perf_counter() - t0
    page.wait_for_function(_DONE, arg=min(n_before + 1, 10), timeout=600_000)
    return first, time.perf_counter() - t0


def script(prompt: str, lens: bool, loaded: Any, folder: Path) -> float:
    import coilvis

    t0 = time.perf_counter()
    record = coilvis.run(prompt, loaded, lens=lens, attention=True, progress=False)
    coilvis.save(coilvis.page(record), folder / "page.html")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tabs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    import coilvis
    from coilvis.views.output import CHROMIUM_FLAGS

    running = start_server()
    loaded = running.app.pool.submit("default", lambda m: m).result()  # load the model once
    tok = loaded.tokenizer
    prompt = tok.decode(_prompt_ids(tok, args.seq_len).tolist())
    # windows of the same text, one token further each time
    prompts = [tok.decode(_prompt_ids(tok, args.seq_len + i)[i:].tolist()) for i in range(1, 8)]
    rss_loaded = _rss_bytes()
    folder = Path(tempfile.mkdtemp(prefix="coilvis-bench-serve-"))
    times: dict[str, list[float]] = {"run": [], "run+lens": [], "coil+table (lens on)": [], "script": [], "script+lens": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=list(CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(running.url)
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle")
        n = 0
        script(prompt, False, loaded, folder)  # warm-up
        # as a reader works: run after run with the same settings (each page takes the
        # values of the next run), a prompt of the same length a little different each time
        for lens in (False, True):
            for i in range(args.repeats + 1):
                text = prompts[i % len(prompts)]
                first, whole = click_run(page, text, lens, n)
                n += 1
                if i == 0:
                    continue  # the first run with this setting draws a page of another shape
                times["run+lens" if lens else "run"].append(whole)
                if lens:
                    times["coil+table (lens on)"].append(first)
                times["script+lens" if lens else "script"].append(script(text, lens, loaded, folder))
        page.close()
        rss = memory_over_tabs(browser, running.url, prompt, args.runs, args.tabs)
        browser.close()
    running.stop()
    shutil.rmtree(folder, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.seq_len}-token prompt, default model, medians of {args.repeats}")
    print(f"run s {med['run']:.2f} (target < 1.5)   script s {med['script']:.2f}   run / script {med['run'] / med['script']:.2f}")
    print(f"run+lens s {med['run+lens']:.2f} (target < 3)   script+lens s {med['script+lens']:.2f}   ratio {med['run+lens'] / med['script+lens']:.2f}")
    print(f"with the lens on, the coil and the table drawn after s {med['coil+table (lens on)']:.2f}")
    from coilvis.serve.session import HISTORY

    cap = min(len(rss), args.tabs * HISTORY)  # every tab's history full from here on
    at_50 = rss[min(len(rss), 50) - 1]
    print(f"RSS MB: model loaded {rss_loaded / 2**20:.0f}, after {min(len(rss), 50)} runs over {args.tabs} tabs {at_50 / 2**20:.0f} "
          f"(target < 1536), after {len(rss)} runs {rss[-1] / 2**20:.0f}; every tab's history ({HISTORY} runs) full after run {cap}: "
          f"growth from there to the end {(rss[-1] - rss[cap - 1]) / 2**20:+.0f}")
    print("RSS MB every 10 runs:", [round(r / 2**20) for r in rss[9::10]])
    print("all times:", {k: [round(x, 2) for x in v] for k, v in times.items()})


def memory_over_tabs(browser: Any, url: str, prompt: str, runs: int, tabs: int) -> list[int]:
    """Resident memory after each round of runs spread over ``tabs`` tabs."""
    pages = [browser.new_page(viewport={"width": 1400, "height": 1100}) for _ in range(tabs)]
    for p in pages:
        p.goto(url)
        p.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle")
    counts = [0] * tabs
    rss: list[int] = []
    for i in range(runs):
        t = i % tabs
        click_run(pages[t], f"{prompt} {i}", False, counts[t])
        counts[t] += 1
        rss.append(_rss_bytes())
    for p in pages:
        p.close()
    return rss


if __name__ == "__main__":
    main()
