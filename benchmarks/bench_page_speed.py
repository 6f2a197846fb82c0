"""Benchmark: how fast a 10,000-position coil page answers in headless Chromium.

Two figures of a saved coil page of ``--n`` positions (random Zipf-like logits, a random
causal attention drawn as arcs: the sink, the previous token and two random earlier keys
per query, as the mean over heads):

* **time to idle**: milliseconds from navigation start until the Bokeh document is
  first idle (every model built, the first frame drawn), in a fresh browser context, and
  the CPU time the page's main thread spent until then (Chromium's ``ThreadTime``
  metric: what a busy machine does not inflate);
* **hover latency**: milliseconds from the mouse moving onto a segment (the event's own
  time stamp) until the frame that shows its answer has been drawn: Bokeh's hit test,
  the tooltip, the hovered segment's outline and its highlighted arcs. Measured in the
  page: a listener that runs after Bokeh's own asks for the next animation frame, and,
  inside it, for a task that runs once that frame's work (painting and rasterising the
  canvases) is done.

Each page is loaded ``--repeats`` times; every load hovers ``--hovers`` segments spread
over the coil (each a fresh position, the mouse resting between them). Medians are
printed with the load average of the machine (figures on a busy machine are slower).
The target of the speed issue: hover < 50 ms and time to idle < 1.5 s at 10,000
positions. Figures are printed, never asserted.

``--save DIR`` writes the pages and stops; ``--compare DIR`` measures the pages another
version of coilvis saved there alternately with this version's, load by load.

Run: ``python benchmarks/bench_page_speed.py [--n 10000] [--repeats 3] [--hovers 12] [--compare DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import coilvis  # noqa: E402
from browser import _IDLE_PROBE, BrowserSession, LoadedPage  # noqa: E402
from coilvis.record import HEAD_MEAN, AttentionLinks  # noqa: E402

D_VOCAB = 8_192

# Runs after Bokeh's handlers (a bubbling listener on the window): the time from the
# event to the end of the frame that answers it (rAF, then a task after that frame).
_LATENCY_PROBE = """
() => {
  window.__coilvis_hover = []
  window.addEventListener("mousemove", (event) => {
    const t0 = event.timeStamp
    requestAnimationFrame(() => {
      const channel = new MessageChannel()
      channel.port1.onmessage = () => window.__coilvis_hover.push(performance.now() - t0)
      channel.port2.postMessage(null)
    })
  })
}
"""


#: The pages measured: the default coil, with attention arcs, and animated (paused, with arcs).
PAGES: dict[str, dict[str, object]] = {
    "coil": {},
    "coil+arcs": {"attention": "mean"},
    "unwind+arcs": {"attention": "mean", "animate": True, "autoplay": False},
}


def random_record(n: int, *, seed: int = 0) -> coilvis.Record:
    """A Record of n positions (Zipf-like logits) with attention links of one mean head."""
    rng = np.random.default_rng(seed)
    zipf = -1.2 * np.log1p(rng.permutation(D_VOCAB)).astype(np.float32)
    logits = zipf + 2.5 * rng.standard_normal((n, D_VOCAB), dtype=np.float32)
    vocab = [("" if i % 2 else " ") + f"w{i}" for i in range(D_VOCAB)]
    record = coilvis.from_logits(logits, tokens=rng.integers(0, 200, n).tolist(), vocab=vocab)
    q = np.arange(n)
    keys = [np.zeros(n, dtype=np.int64), np.maximum(q - 1, 0), (rng.random(n) * (q + 1)).astype(np.int64)]
    keys.append((rng.random(n) * (q + 1)).astype(np.int64))
    query = np.concatenate([q] * len(keys))
    key = np.concatenate(keys)
    pairs = np.unique(np.stack([query, key], axis=1), axis=0)
    weight = rng.uniform(0.05, 0.9, len(pairs)).astype(np.float32)
    links = AttentionLinks(
        layer=np.zeros(len(pairs)), head=np.full(len(pairs), HEAD_MEAN), query=pairs[:, 0], key=pairs[:, 1],
        weight=weight, n_layers=1, n_heads=2, top_k=4,
    )  # fmt: skip
    return dataclasses.replace(record, attention=links)


def edge_point(view: coilvis.views.coil.CoilView, i: int) -> tuple[float, float]:
    """A point of segment i between its centre and its outer edge."""
    x, y = float(view.segments.data["x"][i]), float(view.segments.data["y"][i])
    scale = 1.0 + 0.3 * view.coiled.band_width / max(np.hypot(x, y), 1e-9)
    return x * scale, y * scale


def hover_latencies(page, view, positions: list[int]) -> list[float]:  # noqa: ANN001
    """Milliseconds from each hover to its answered frame; checks the tooltip names the position."""
    page.evaluate(_LATENCY_PROBE)
    out = []
    for i in positions:
        page.page.evaluate("() => { window.__coilvis_hover = [] }")
        sx, sy = page.data_to_page("coil_figure", *edge_point(view, i))
        page.page.mouse.move(sx, sy)
        page.wait_idle(0.25)
        page.page.wait_for_function("() => window.__coilvis_hover.length > 0")
        text = page.tooltip_text()
        if f"position {i}\n" not in text + "\n" and f"position\n{i}\n" not in text + "\n":
            print(f"  warning: the hover at position {i} shows {text[:40]!r}", file=sys.stderr)
        out.append(float(page.evaluate("() => window.__coilvis_hover[0]")))
        page.page.mouse.move(2, 2)  # off the figure: the next hover is a fresh one
        page.wait_idle(0.15)
    return out


def load(session: BrowserSession, path: Path, view, positions: list[int]) -> tuple[float, float, list[float]]:  # noqa: ANN001
    """One load of a saved page: (ms to idle, main-thread CPU ms to idle, hover latencies)."""
    context = session.browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.add_init_script(_IDLE_PROBE)
    loaded = LoadedPage(page)
    page.goto(path.resolve().as_uri())
    page.wait_for_function("() => window.__coilvis_idle_ms !== undefined", timeout=120_000)
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    idle_ms = float(page.evaluate("() => window.__coilvis_idle_ms"))
    hovers = hover_latencies(loaded, view, positions)
    assert loaded.errors == [], loaded.errors
    context.close()
    return idle_ms, 1000 * metrics.get("ThreadTime", float("nan")), hovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hovers", type=int, default=12)
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    parser.add_argument("--save", type=Path, help="save the pages in this folder and stop")
    parser.add_argument("--compare", type=Path, help="a folder of pages another version saved (--save)")
    args = parser.parse_args()
    record = random_record(args.n)
    positions = np.linspace(args.n // 20, args.n - 1, args.hovers).astype(int).tolist()
    rows = []
    with tempfile.TemporaryDirectory(prefix="coilvis-bench-") as tmp:
        folder = args.save if args.save is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        views = {name: coilvis.coil(record, **PAGES[name]) for name in args.pages}
        paths = {name: coilvis.save(view, folder / f"{name}.html") for name, view in views.items()}
        if args.save is not None:
            print("\n".join(str(p) for p in paths.values()))
            return
        session = BrowserSession()
        try:
            for name, view in views.items():
                versions = {"this": paths[name]}
                if args.compare is not None:
                    versions = {"other": args.compare / f"{name}.html", **versions}
                got: dict[str, list] = {v: [] for v in versions}
                loads = []
                for _ in range(args.repeats):
                    for version, path in versions.items():  # alternately: both see the same load
                        got[version].append(load(session, path, view, positions))
                        loads.append(os.getloadavg()[0])
                links = 0 if view.links is None else len(view.links.data["query"])
                for version, runs in got.items():
                    mib = versions[version].stat().st_size / 2**20
                    rows.append((name, version, links, mib, runs, statistics.median(loads)))
        finally:
            session.close()
    print(f"coil pages of {args.n:,} positions in headless Chromium: medians of {args.repeats} loads, "
          f"{args.hovers} hovers each")  # fmt: skip
    header = f"{'page':<12}{'version':>8}{'arcs':>7}{'MiB':>6}{'idle ms':>9}{'CPU ms':>8}{'hover ms':>10}{'p90':>7}"
    print(f"{header}{'load':>6}")
    for name, version, links, mib, runs, load_avg in rows:
        idle = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        hovers = [h for r in runs for h in r[2]]
        print(
            f"{name:<12}{version:>8}{links:>7}{mib:>6.1f}{idle:>9.0f}{cpu:>8.0f}{statistics.median(hovers):>10.1f}"
            f"{np.percentile(hovers, 90):>7.1f}{load_avg:>6.2f}"
        )
    print("targets at 10,000 positions: hover < 50 ms, idle < 1500 ms")


if __name__ == "__main__":
    main()
