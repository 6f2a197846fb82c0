"""Benchmark: coilvis.run_many against a loop of single coilvis.run calls, same prompts, same model.

32 short prompts (6 to 20 tokens) run through the embedded default model on the CPU,
once as a loop of ``coilvis.run`` and once as ``coilvis.run_many`` (batches of
``--batch-size``); the two alternate in one process, ``--repeats`` times each, and the
medians are printed with their ratio (the throughput gain), the spread and the load
average, since other work on the machine moves every figure. ``--lens`` and
``--attention`` time both with those options on.

    python benchmarks/bench_many.py
    python benchmarks/bench_many.py --repeats 5 --lens
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any

#: Words the prompts are cut from (the prompts differ in length and in their last word).
_WORDS = (
    "The Eiffel Tower is located in the city of Paris and the river that runs through it "
    "carries boats past the old stone bridges where people walk slowly in the evening light"
).split()


def prompts(n: int) -> list[str]:
    """``n`` short prompts of 5 to 18 words (6 to 20 tokens with the default model)."""
    return [" ".join(_WORDS[: 4 + (i * 7) % 15]) + f" {i}" for i in range(n)]


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32, help="how many prompts (default 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="run_many's batch_size (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each variant, alternated (default 3)")
    parser.add_argument("--lens", action="store_true", help="both with lens=True")
    parser.add_argument("--attention", action="store_true", help="both with attention=True")
    args = parser.parse_args(argv)

    import torch

    import coilvis

    model = coilvis.load_model()
    texts = prompts(args.prompts)
    options = {"lens": args.lens, "attention": args.attention, "progress": False}
    n_tokens = [len(coilvis.models.hf.encode(model.tokenizer, t)) for t in texts]
    print(
        f"# run_many vs a loop of run: {model.name}, {len(texts)} prompts of {min(n_tokens)}-{max(n_tokens)} tokens, "
        f"batch_size {args.batch_size}, lens {args.lens}, attention {args.attention}"
    )
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    coilvis.run(texts[0], model, **options)  # warm both paths
    coilvis.run_many(texts[:2], model, **options)

    loop_s: list[float] = []
    many_s: list[float] = []
    loads: list[float] = []
    for rep in range(args.repeats):
        variants = [("loop", loop_s, lambda: [coilvis.run(t, model, **options) for t in texts]),
                    ("many", many_s, lambda: coilvis.run_many(texts, model, batch_size=args.batch_size, **options))]
        for name, times, fn in variants if rep % 2 == 0 else variants[::-1]:
            times.append(_timed(fn))
            loads.append(os.getloadavg()[0])
            print(f"  repeat {rep + 1} {name:<4} {times[-1]:7.2f} s  (load {loads[-1]:.2f})", flush=True)
    loop, many = statistics.median(loop_s), statistics.median(many_s)
    print(f"loop of run : median {loop:7.2f} s ({len(texts) / loop:6.2f} prompts/s), range {min(loop_s):.2f}-{max(loop_s):.2f} s")
    print(f"run_many    : median {many:7.2f} s ({len(texts) / many:6.2f} prompts/s), range {min(many_s):.2f}-{max(many_s):.2f} s")
    ratios = [a / b for a, b in zip(loop_s, many_s)]
    print(
        f"throughput  : run_many {loop / many:.2f}x the loop (medians; per repeat {', '.join(f'{r:.2f}' for r in ratios)}); "
        f"load average {statistics.median(loads):.2f} on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
