"""Benchmark: what run(remote=True) brings back from NDIF, measured by running its trace here.

The embedded default model is wrapped in an nnsight ``LanguageModel`` and the very trace
``coilvis.run(prompt, lm, remote=True)`` sends to NDIF is run in this process (nnsight's
``remote=False``; ``--serialised`` runs it as ``remote="local"``, serialised and rebuilt
as for NDIF). For each prompt length it prints the bytes the trace saves (``torch.save``
of them, as NDIF returns results) against the float32 tensors a trace saving raw
outputs would return (the logits of every position and lens row, and the dense
attention patterns with ``--attention``), and the trace's time against a plain
``coilvis.run`` of the same prompt, alternated ``--repeats`` times (medians; other work
on the machine moves the times, never the bytes).

    python benchmarks/bench_remote_trace.py
    python benchmarks/bench_remote_trace.py --lengths 64 1024 --attention --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from typing import Any

_TEXT = (
    "The Eiffel Tower is located in the city of Paris and the river that runs through it "
    "carries boats past the old stone bridges where people walk slowly in the evening light. "
)


def prompt_of(tokenizer: Any, n_tokens: int) -> str:
    """A prompt of about ``n_tokens`` tokens (the text repeated, then cut)."""
    ids = tokenizer(_TEXT * (1 + n_tokens // 20))["input_ids"][:n_tokens]
    return tokenizer.decode(ids)


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024], help="prompt lengths in tokens")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each, alternated (default 1)")
    parser.add_argument("--attention", action="store_true", help="also keep attention (all 30 blocks)")
    parser.add_argument("--serialised", action="store_true", help="run the trace as remote='local' (serialised as for NDIF)")
    args = parser.parse_args(argv)

    import nnsight

    import coilvis
    from coilvis.runner.prompt import encode_prompt
    from coilvis.runner.remote import run_traced

    loaded = coilvis.load_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = nnsight.LanguageModel(loaded.model, tokenizer=loaded.tokenizer)
    execution = "local" if args.serialised else False
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# the NDIF trace run here ({'serialised' if args.serialised else 'nnsight remote=False'}): {loaded.name}, lens on, "
          f"attention {'on' if args.attention else 'off'}; load average {load:.1f}")

    def traced(prompt: str) -> Any:
        ids = encode_prompt(loaded, prompt, prepend_bos=None)
        return run_traced(
            lm, loaded, ids, prompt=prompt, truncated=None, k=10, attention=args.attention, attention_layers=None,
            keys_per_query=4, min_weight=0.01, lens=True, lens_k=5, lens_mid=False, execution=execution,
        )

    def plain(prompt: str) -> Any:
        return coilvis.run(prompt, loaded, lens=True, attention=args.attention, progress=False)

    traced("Warm up")  # nnsight's first trace sets itself up
    print("positions  returned     full float32   less     trace s   plain run s")
    for n in args.lengths:
        prompt = prompt_of(loaded.tokenizer, n)
        times: dict[str, list[float]] = {"traced": [], "plain": []}
        for _ in range(args.repeats):
            seconds, record = _timed(traced, prompt)
            times["traced"].append(seconds)
            times["plain"].append(_timed(plain, prompt)[0])
        sizes = record.extra["trace_bytes"]
        print(f"{record.seq_len:>9}  {sizes['returned'] / 1e6:>7.2f} MB  {sizes['full'] / 1e9:>9.2f} GB  {sizes['full'] / sizes['returned']:>6.0f}x"
              f"  {statistics.median(times['traced']):>8.2f}  {statistics.median(times['plain']):>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
