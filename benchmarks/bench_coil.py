"""Benchmark of the coil view: build + save time, page bytes per position, browser load-to-idle.

For 128, 1024 and 4096 positions, builds a Record with ``coilvis.from_logits`` from
random Zipf-like logits over a 49,152-token vocabulary and a random causal attention
pattern (2 layers x 2 heads: a sink, the previous token and a few random earlier keys
per query, plus noise), pruned to links; then times ``coilvis.coil(record,
attention="mean")`` + ``coilvis.save`` (median of 3), measures the page's bytes per
position beyond the fixed BokehJS page (an empty figure saved the same way, with the
widget bundle when the view has a layer/head control), and the time headless Chromium
takes from navigation start until the Bokeh document is idle (median of 3). At the
largest size, the row ``rnd-all`` embeds every layer/head with all their links, filling
the page's 50,000-link budget. ``--model`` also runs the default model on a 128- and a
1024-token prompt (``attention="mean"``: all 30 layers, capped at 50,000 links).

Targets: 4096 positions with arcs save in under 5 s, cost under 400 bytes per position,
and are idle in the browser in under 3 s. Figures are printed, not asserted.

Run: ``python benchmarks/bench_coil.py [--sizes 128 1024 4096] [--model]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import coilvis
from coilvis.views.output import CHROMIUM_FLAGS

D_VOCAB = 49_152
N_LAYERS = 2
N_HEADS = 2


def random_vocab(rng: np.random.Generator) -> list[str]:
    """Token-like strings: short lowercase pieces, half with a leading space."""
    letters = np.array(list("etaoinshrdlucmfwypvbgkqjxz"))
    lengths = rng.integers(1, 9, size=D_VOCAB)
    out = []
    for i, length in enumerate(lengths.tolist()):
        word = "".join(rng.choice(letters, size=length).tolist())
        out.append((" " if i % 2 else "") + word)
    out[13] = "."
    out[198] = "\n"
    return out


def random_record(n: int, seed: int = 0) -> coilvis.Record:
    """A Record of n positions from Zipf-like random logits and a random causal attention."""
    rng = np.random.default_rng(seed)
    zipf = -1.2 * np.log1p(rng.permutation(D_VOCAB)).astype(np.float32)
    logits = np.empty((n, D_VOCAB), dtype=np.float32)
    for start in range(0, n, 512):
        stop = min(n, start + 512)
        noise = rng.standard_normal((stop - start, D_VOCAB), dtype=np.float32)
        logits[start:stop] = zipf + 2.5 * noise
    tokens = rng.choice(200, size=n).astype(np.int64)  # frequent ids, so predictions are often right
    tokens[rng.random(n) < 0.08] = 13  # sentence ends
    attention = np.empty((N_LAYERS, N_HEADS, n, n), dtype=np.float32)
    q = np.arange(n)
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            scores = rng.standard_normal((n, n), dtype=np.float32)
            scores[:, 0] += 4.0
            scores[q[1:], q[1:] - 1] += 5.0
            for _ in range(3):
                scores[q, (rng.random(n) * (q + 1)).astype(np.int64)] += 4.0
            scores[np.triu_indices(n, 1)] = -np.inf
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
            attention[layer, head] = scores
    return coilvis.from_logits(logits, tokens=tokens.tolist(), vocab=random_vocab(rng), attention=attention)


def model_record(n: int) -> coilvis.Record:
    """A default-model Record of about n tokens (a repeated paragraph)."""
    paragraph = (
        "The Eiffel Tower is located in the city of Paris. It was built for the 1889 World's Fair, "
        "and at first many artists disliked it. Today millions of people visit it every year.\n"
    )
    text = paragraph * (n // 40 + 1)
    record = coilvis.run(text, attention=True)
    if record.seq_len > n:
        words = text.split(" ")
        while record.seq_len > n:
            words = words[: int(len(words) * n / record.seq_len) - 1]
            record = coilvis.run(" ".join(words), attention=True)
    return record


def empty_page_bytes(folder: Path) -> tuple[int, int]:
    """Bytes of saved pages holding only an empty figure: BokehJS and the page around it.

    Returns:
        ``(core, widgets)``: without and with BokehJS's widget bundle (a page with the
        layer/head control carries it).
    """
    from bokeh.core.validation import silence
    from bokeh.core.validation.warnings import MISSING_RENDERERS
    from bokeh.layouts import column
    from bokeh.models import Select
    from bokeh.plotting import figure

    silence(MISSING_RENDERERS, True)

    core = coilvis.save(figure(width=100, height=100), folder / "empty.html").stat().st_size
    widgets = coilvis.save(column(Select(options=["a"]), figure(width=100, height=100)), folder / "empty_w.html")
    return core, widgets.stat().st_size


def load_times_ms(path: Path, repeats: int) -> list[float]:
    """Milliseconds from navigation start until Bokeh is idle, in fresh browser contexts."""
    from playwright.sync_api import sync_playwright

    probe = """
    (() => { const poll = () => { const B = window.Bokeh
      if (B && B.documents && B.documents.length > 0 && B.documents[0].is_idle === true) {
        window.__idle = performance.now()
      } else setTimeout(poll, 5) }; poll() })()
    """
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=list(CHROMIUM_FLAGS))
        try:
            for _ in range(repeats):
                context = browser.new_context(viewport={"width": 1400, "height": 1100})
                page = context.new_page()
                page.add_init_script(probe)
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(path.resolve().as_uri())
                page.wait_for_function("() => window.__idle !== undefined", timeout=120_000)
                out.append(float(page.evaluate("() => window.__idle")))
                if errors:
                    print(f"  page errors: {errors}", file=sys.stderr)
                context.close()
        finally:
            browser.close()
    return out


#: Every layer/head the random records hold, all links: fills the page budget (50,000).
ALL_CHOICES = {
    "attention": ["mean", "max", *[(layer, head) for layer in range(N_LAYERS) for head in range(N_HEADS)]],
    "attention_top_k": None,
    "attention_threshold": 0.0,
}


def bench(
    name: str, record: coilvis.Record, folder: Path, fixed: tuple[int, int], repeats: int, **options: object
) -> dict[str, float]:
    options = options or {"attention": "mean"}
    times = []
    path = folder / f"{name}.html"
    view = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        view = coilvis.coil(record, **options)
        coilvis.save(view, path)
        times.append(time.perf_counter() - t0)
    assert view is not None
    from bokeh.models import Select

    fixed_bytes = fixed[1] if list(view.doc.select({"type": Select})) else fixed[0]
    size = path.stat().st_size
    idle = load_times_ms(path, repeats) if shutil.which("chromium") else [float("nan")]
    n_links = 0 if view.links is None else len(view.links.data["query"])
    return {
        "n": record.seq_len,
        "links": n_links,
        "save_s": statistics.median(times),
        "page_kb": size / 1024,
        "bytes_per_pos": (size - fixed_bytes) / record.seq_len,
        "idle_s": statistics.median(idle) / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", action="store_true", help="also run the default model at 128 and 1024 tokens")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="coilvis-bench-") as tmp:
        folder = Path(tmp)
        fixed = empty_page_bytes(folder)
        print(
            f"fixed page (BokehJS inline + empty figure): {fixed[0] / 1024:.0f} KiB, "
            f"{fixed[1] / 1024:.0f} KiB with the widget bundle (pages with a layer/head control)"
        )
        for n in args.sizes:
            t0 = time.perf_counter()
            record = random_record(n)
            print(f"random record n={n} built in {time.perf_counter() - t0:.1f} s (not timed below)", flush=True)
            rows.append(("random", bench(f"random{n}", record, folder, fixed, args.repeats)))
            if n == max(args.sizes):
                rows.append(("rnd-all", bench(f"all{n}", record, folder, fixed, args.repeats, **ALL_CHOICES)))
            del record
        if args.model:
            for n in (128, 1024):
                record = model_record(n)
                rows.append(("model", bench(f"model{n}", record, folder, fixed, args.repeats)))
    print()
    print(f"{'source':<8}{'n':>6}{'links':>8}{'save s':>9}{'page KiB':>10}{'B/pos':>8}{'idle s':>8}")
    for source, r in rows:
        print(
            f"{source:<8}{r['n']:>6}{r['links']:>8}{r['save_s']:>9.2f}{r['page_kb']:>10.0f}"
            f"{r['bytes_per_pos']:>8.0f}{r['idle_s']:>8.2f}"
        )
    print("targets at 4096 positions with arcs: save < 5 s, < 400 B/position, idle < 3 s")


if __name__ == "__main__":
    main()
