"""Benchmark: frames per second of the unwind animation in headless Chromium.

For 128, 1024 and 4096 positions (``coilvis.from_logits`` with random logits over a
49,152-token vocabulary and a random causal attention pattern drawn as arcs), the page is
saved, loaded in headless Chromium, played for a few seconds, and the animation's own
``requestAnimationFrame`` callbacks are counted (median of several runs). Target: at
least 30 fps at 1024 positions; 4096 positions must still play.

Run: python benchmarks/bench_unwind.py [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
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


COUNT = """
() => {
  const c = Bokeh.documents[0].get_model_by_name("coil_segment_source").__coilvis_unwind
  return [performance.now(), c.state.frames, c.state.renders, c.state.progress]
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    session = BrowserSession()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.sizes:
                rec = make_record(n)
                view = coilvis.coil(rec, attention=(0, "mean"), animate=True)
                path = coilvis.save(view, Path(tmp) / f"unwind_{n}.html")
                fps_runs, render_runs = [], []
                for _ in range(args.repeats):
                    page = session.open(path)
                    page.page.click("text=▶ play")
                    time.sleep(0.5)  # past the first frames
                    t0, f0, r0, _ = page.evaluate(COUNT)
                    time.sleep(args.seconds)
                    t1, f1, r1, progress = page.evaluate(COUNT)
                    fps_runs.append((f1 - f0) / ((t1 - t0) / 1000))
                    render_runs.append((r1 - r0) / ((t1 - t0) / 1000))
                    assert progress > 0, "the animation did not advance"
                    assert page.errors == [], page.errors
                    page.close()
                links = int(view.links.data["query"].shape[0]) if view.links is not None else 0
                rows.append((n, links, statistics.median(fps_runs), statistics.median(render_runs), fps_runs))
    finally:
        session.close()
    print(f"unwind playback in headless Chromium, median of {args.repeats} runs of {args.seconds:.0f} s")
    print(f"{'positions':>9} {'arcs':>7} {'frames/s':>9} {'renders/s':>10}  runs")
    for n, links, fps, rps, runs in rows:
        print(f"{n:>9} {links:>7} {fps:>9.1f} {rps:>10.1f}  {', '.join(f'{f:.1f}' for f in runs)}")


if __name__ == "__main__":
    main()
