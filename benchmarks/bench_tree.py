"""Benchmark of the continuation tree on the default model (SmolLM2-135M): growing it, and its sunburst and flame pages.

On a 64-token prompt, for depth 3, k 5 (156 nodes) and depth 4, k 8 (4,681 nodes),
medians of ``--repeats`` runs, measured alternately so that a busy machine slows all
alike:

* ``tree s``: ``coilvis.tree(prompt, depth=d, k=k)``: the prompt once, each depth's
  tokens in one batch on its KV cache (tree attention);
* ``batches s``: the same with ``kv_cache=False``: each depth's whole paths as one batch;
* ``hand s``: the simplest thing a user could write: a loop over the nodes to expand,
  one ordinary forward pass of ``prompt + path`` each (no batch, no cache), softmax and
  top-k, as a generate-style loop would. Depth 4, k 8 needs 585 passes: by default the
  first ``--hand-passes`` (64) are timed and the time scaled to all of them (marked ``*``);
  ``--hand-passes 0`` runs the whole loop;
* ``tree / hand``: the speed-up;
* ``tree cpu s``: the CPU time ``coilvis.tree`` took (all threads): on a busy machine,
  where wall times grow with the load, it tells the work itself (with ``--threads 1``,
  about twice what two free cores take).

Then the pages of the larger tree: ``coilvis.sunburst`` and ``coilvis.flame`` built and
saved (seconds), the bytes beyond an empty BokehJS page saved the same way, and the
time headless Chromium takes from navigation start until the Bokeh document is idle
(median of 3 fresh contexts). ``batches`` and ``hand`` run ``--other-repeats`` times (1).

Targets (a 2-core CPU; ``--threads 2`` keeps torch to two threads on a larger machine):
depth 3, k 5 under 2 s; depth 4, k 8 under 15 s; pages under 1 MB beyond BokehJS and idle
in under 1 s. Figures are printed, not asserted.

Usage::

    python benchmarks/bench_tree.py                       # both sizes, 3 repeats
    python benchmarks/bench_tree.py --threads 2 --repeats 5 --no-pages
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_coil import empty_page_bytes, load_times_ms
from bench_lens import TEXT

CASES = ((3, 5), (4, 8))


def prompt_of(tok: Any, n_tokens: int) -> str:
    """A text that the tokenizer cuts into exactly ``n_tokens`` tokens."""
    ids = tok((TEXT * 4))["input_ids"]
    for end in range(n_tokens, len(ids)):
        text = tok.decode(ids[:end])
        if len(tok(text)["input_ids"]) == n_tokens:
            return text
    raise SystemExit(f"no prefix of the text has {n_tokens} tokens")


def hand_rolled(model: Any, tok: Any, prompt: str, depth: int, k: int, *, max_passes: int | None = None) -> tuple[int, int]:
    """Breadth-first over the nodes to expand, one unbatched, uncached forward pass each.

    Returns:
        ``(passes run, passes the whole loop needs)``; with ``max_passes`` the loop stops
        after that many (the caller scales the time).
    """
    prompt_ids = tok(prompt)["input_ids"]
    needed = sum(k**d for d in range(depth))
    frontier: list[list[int]] = [[]]
    passes = 0
    for level in range(depth):
        nxt = []
        for path in frontier:
            if max_passes is not None and passes >= max_passes:
                return passes, needed
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([prompt_ids + path])).logits[0, -1]
            passes += 1
            top = torch.topk(torch.softmax(logits.double(), dim=-1), k)
            nxt += [path + [int(i)] for i in top.indices]
        frontier = nxt if level + 1 < depth else []
    return passes, needed


def measure(model: Any, tok: Any, prompt: str, depth: int, k: int, args: argparse.Namespace) -> dict[str, Any]:
    """Medians of ``tree`` (``args.repeats``), ``batches`` and ``hand`` (``args.other_repeats``); ``hand`` may be scaled
    from its first ``args.hand_passes`` passes."""
    import coilvis
    from coilvis.models import LoadedModel

    loaded = LoadedModel(model, tok, "default")
    times: dict[str, list[float]] = {"tree": [], "tree_cpu": [], "batches": [], "hand": []}
    tree, scaled = None, False
    for r in range(max(args.repeats, args.other_repeats)):
        if r < args.repeats:
            t0, c0 = time.perf_counter(), time.process_time()
            tree = coilvis.tree(prompt, loaded, depth=depth, k=k, progress=False)
            times["tree"].append(time.perf_counter() - t0)
            times["tree_cpu"].append(time.process_time() - c0)
        if r < args.other_repeats:
            t0 = time.perf_counter()
            coilvis.tree(prompt, loaded, depth=depth, k=k, kv_cache=False, progress=False)
            times["batches"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ran, needed = hand_rolled(model, tok, prompt, depth, k, max_passes=args.hand_passes or None)
            times["hand"].append((time.perf_counter() - t0) * needed / ran)
            scaled = ran < needed
    assert tree is not None
    out: dict[str, Any] = {name: statistics.median(values) if values else float("nan") for name, values in times.items()}
    out["result"], out["hand_scaled"] = tree, scaled
    return out


def page_figures(tree: Any, folder: Path) -> list[tuple[str, float, int, float]]:
    """(view, build + save s, bytes beyond BokehJS, idle ms) of the sunburst and the flame graph."""
    import coilvis

    core, _ = empty_page_bytes(folder)
    rows = []
    for name, draw in (("sunburst", coilvis.sunburst), ("flame", coilvis.flame)):
        t0 = time.perf_counter()
        path = coilvis.save(draw(tree), folder / f"{name}.html")
        seconds = time.perf_counter() - t0
        idle = statistics.median(load_times_ms(path, 3)) if shutil.which("chromium") else float("nan")
        rows.append((name, seconds, path.stat().st_size - core, idle))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of coilvis.tree")
    parser.add_argument("--other-repeats", type=int, default=1, help="runs of the whole-path batches and the hand loop")
    parser.add_argument("--hand-passes", type=int, default=64,
                        help="passes of the hand loop timed; its time is scaled to all it needs (0: run it whole)")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--no-pages", action="store_true", help="skip the pages and the browser")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import coilvis

    model, tok, _ = coilvis.load_model(progress=False)
    prompt = prompt_of(tok, args.prompt_tokens)
    coilvis.tree(prompt, (model, tok), depth=2, k=2, progress=False)  # warm up
    print(f"default model, {args.prompt_tokens}-token prompt, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, medians of {args.repeats} (batches and hand: {args.other_repeats}), "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)")
    print(f"{'depth':>5} {'k':>3} {'nodes':>6} {'other':>6} {'strategy':>15} {'tree s':>8} {'tree cpu s':>11} {'batches s':>10} "
          f"{'hand s':>8} {'tree/hand':>10}")
    largest = None
    for depth, k in CASES:
        m = measure(model, tok, prompt, depth, k, args)
        t = m["result"]
        others = int(t.is_other.sum())
        hand = m["hand"]
        mark = "*" if m["hand_scaled"] else " "
        print(f"{depth:>5} {k:>3} {t.n_nodes - others:>6,} {others:>6,} {t.extra['strategy']:>15} {m['tree']:>8.2f} "
              f"{m['tree_cpu']:>11.2f} {m['batches']:>10.2f} {hand:>7.2f}{mark} {m['tree'] / hand:>10.3f}")
        largest = t
    print(f"* scaled from the hand loop's first {args.hand_passes} passes (--hand-passes 0 runs it whole); "
          f"load average now {os.getloadavg()[0]:.1f}")
    if not args.no_pages and largest is not None:
        with tempfile.TemporaryDirectory() as folder:
            print(f"\npages of the depth {largest.depth_limit}, k {largest.k} tree ({largest.n_nodes:,} nodes with 'other'):")
            print(f"{'view':>9} {'build+save s':>13} {'KB beyond BokehJS':>18} {'idle ms':>8}")
            for name, seconds, extra, idle in page_figures(largest, Path(folder)):
                print(f"{name:>9} {seconds:>13.2f} {extra / 1024:>18.0f} {idle:>8.0f}")


if __name__ == "__main__":
    main()
