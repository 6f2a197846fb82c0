"""Benchmark: frames per second of the unwind animation in headless Chromium.

For 128, 1024 and 4096 positions (``coilvis.from_logits`` with random logits over a
49,152-token vocabulary and a random causal attention pattern drawn as arcs), the page is
saved, loaded in headless Chromium, played for a few seconds, and the animation's own
``requestAnimationFrame`` callbacks are counted (median of several runs), with how often
the figure's main canvas was repainted (every segment and arc: the costly paint; the
unwind moves the positions near the playhead on the overlay canvas and repaints the main
one when it commits, about once a second) and the machine's load average (figures on a
busy machine are lower); then, driving the page's controller 1/60 s of playback a frame
for 240 frames, the CPU time the page's main thread spends per frame (Chromium's
``ThreadTime``: what a busy machine inflates least; at 33 ms a frame one free core plays
30 frames a second). Target: at least 30 fps at 1024 positions and 24 fps at 4096.

``--save DIR`` writes the pages and stops; ``--compare DIR`` plays the pages another
version of coilvis saved there alternately with this version's, run by run, so both see
the same load (e.g. ``--save`` from a checkout of the previous commit).

Run: python benchmarks/bench_unwind.py [--seconds 3] [--repeats 3] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import coilvis  # noqa: E402
from browser import BrowserSession  # noqa: E402

D_VOCAB = 49_152


def make_record(n: int, seed: int = 0) -> coilvis.Record:
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.standard_normal((n, D_VOCAB), dtype=np.float32) * 3)
    heads = 2
    scores = torch.from_numpy(rng.standard_normal((heads, n, n), dtype=np.float32) * 2)
    scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    pattern = torch.softmax(scores, dim=-1)
    return coilvis.from_logits(logits, tokens=rng.integers(0, D_VOCAB, n).tolist(), attention=pattern)


# Counts the main canvas' paints (BokehJS's plot view paints it in _paint_primary; when a
# version of BokehJS names it otherwise, the count reads -1).
PROBE = """
() => {
  const view = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name("coil_figure"))
  window.__main_paints = 0
  if (view == null || typeof view._paint_primary !== "function") { window.__main_paints = -1; return }
  const paint = view._paint_primary.bind(view)
  view._paint_primary = (ctx) => { window.__main_paints += 1; return paint(ctx) }
}
"""

COUNT = """
() => {
  const c = Bokeh.documents[0].get_model_by_name("coil_segment_source").__coilvis_unwind
  return [performance.now(), c.state.frames, c.state.renders, c.state.progress, window.__main_paints]
}
"""


def save_pages(sizes: list[int], folder: Path) -> dict[int, tuple[Path, int]]:
    """The animated coil of each size saved in ``folder`` (paused), with its arc count."""
    out = {}
    for n in sizes:
        view = coilvis.coil(make_record(n), attention=(0, "mean"), animate=True, autoplay=False)
        links = int(view.links.data["query"].shape[0]) if view.links is not None else 0
        out[n] = (coilvis.save(view, folder / f"unwind_{n}.html"), links)
    return out


def thread_ms(cdp) -> float:  # noqa: ANN001
    """CPU milliseconds the page's main thread has used (Chromium's ThreadTime metric)."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return 1000 * metrics.get("ThreadTime", float("nan"))


# Drives the page's own controller a fixed 1/60 s of playback per animation frame (commits
# included): the work a frame costs, whatever the frame rate the machine allows.
FIXED_STEP = """
(frames) => new Promise((done) => {
  const c = Bokeh.documents[0].get_model_by_name("coil_segment_source").__coilvis_unwind
  c.state.playing = true
  let t = 1.0, f = 0
  const tick = () => {
    t += 1 / 60
    c.state.t_s = t
    c.render(c.position_at(t), false)
    if (++f < frames) requestAnimationFrame(tick)
    else { c.state.playing = false; done() }
  }
  requestAnimationFrame(tick)
})
"""


def fixed_step_cpu_ms(session: BrowserSession, path: Path, frames: int = 240) -> float:
    """Main-thread CPU milliseconds per frame of ``frames`` frames at a fixed step."""
    page = session.open(path)
    cdp = page.page.context.new_cdp_session(page.page)
    cdp.send("Performance.enable")
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coil_unwind_scrub').value = 0.001 }")  # the controller
    page.wait_idle(0.3)
    cpu0 = thread_ms(cdp)
    page.evaluate(FIXED_STEP, frames)
    page.wait_idle()  # the last frame painted
    cpu1 = thread_ms(cdp)
    assert page.errors == [], page.errors
    page.close()
    return (cpu1 - cpu0) / frames


def play(session: BrowserSession, path: Path, seconds: float) -> tuple[float, float, float, float]:
    """Frames, renders and main-canvas paints per second of one playback of a saved page, and
    the main thread's CPU milliseconds per frame at a fixed step (:func:`fixed_step_cpu_ms`)."""
    page = session.open(path)
    page.evaluate(PROBE)
    page.page.click("text=▶ play")
    time.sleep(0.5)  # past the first frames
    t0, f0, r0, _, m0 = page.evaluate(COUNT)
    time.sleep(seconds)
    t1, f1, r1, progress, m1 = page.evaluate(COUNT)
    assert progress > 0, "the animation did not advance"
    assert page.errors == [], page.errors
    page.close()
    dt = (t1 - t0) / 1000
    return (f1 - f0) / dt, (r1 - r0) / dt, (m1 - m0) / dt if m0 >= 0 else float("nan"), fixed_step_cpu_ms(session, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save", type=Path, help="save the pages in this folder and stop")
    parser.add_argument("--compare", type=Path, help="a folder of pages another version saved (--save)")
    args = parser.parse_args()
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        for n, (path, _) in save_pages(args.sizes, args.save).items():
            print(f"{n:>6} positions: {path}")
        return
    session = BrowserSession()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pages = save_pages(args.sizes, Path(tmp))
            for n, (path, links) in pages.items():
                versions = {"this": path}
                if args.compare is not None:
                    versions = {"other": args.compare / f"unwind_{n}.html", **versions}
                runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in versions}
                loads = []
                for _ in range(args.repeats):
                    for name, page_path in versions.items():  # alternately: both see the same load
                        runs[name].append(play(session, page_path, args.seconds))
                        loads.append(os.getloadavg()[0])
                for name, got in runs.items():
                    fps, rps, mps, cpu = (statistics.median(r[j] for r in got) for j in range(4))
                    rows.append((n, links, name, fps, rps, mps, cpu, statistics.median(loads), [r[0] for r in got]))
    finally:
        session.close()
    print(f"unwind playback in headless Chromium, median of {args.repeats} runs of {args.seconds:.0f} s")
    header = f"{'positions':>9} {'arcs':>7} {'version':>8} {'frames/s':>9} {'renders/s':>10} {'main/s':>7}"
    print(f"{header} {'CPU ms/frame':>12} {'load':>5}  runs (frames/s)")
    for n, links, name, fps, rps, mps, cpu, load, fps_runs in rows:
        print(
            f"{n:>9} {links:>7} {name:>8} {fps:>9.1f} {rps:>10.1f} {mps:>7.1f} {cpu:>12.1f} {load:>5.2f}  "
            f"{', '.join(f'{f:.1f}' for f in fps_runs)}"
        )
    print("targets: >= 30 frames/s at 1024 positions, >= 24 at 4096")


if __name__ == "__main__":
    main()
