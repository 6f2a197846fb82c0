"""Benchmark of comparing two runs with the lens on the default model (SmolLM2-135M, 30 layers, vocab 49,152).

What a user waits for, side by side in one process (medians of ``--repeats``,
measured alternately so that a busy machine slows both alike):

* ``run s``: ``coilvis.run(prompt_a, lens=True)``, one prompt with the lens;
* ``pair s``: ``coilvis.compare(prompt_a, prompt_b, lens=True)``: both forwards, both
  Records with their lens, and the exact divergences per position and per layer x
  position over the full vocabulary, with the kernel a user gets (``auto``: the fused
  numba kernel where the ``fast`` extra is installed);
* ``pair torch s``: the same call with ``COILVIS_PAIR_KERNEL=torch`` (torch's
  element-wise kernel, what ``pip install coilvis[models]`` alone gives), for the A/B;
* ``hand s``: the simplest thing a user could write instead: two ``run(lens=True)``
  calls and, per layer, the full softmax of both runs' decoded rows and
  ``torch.nn.functional.kl_div`` between them (KL only, no JS/TV/movers);
* ``pair / run``: the ratio the issue targets (<= 2.2).

Memory (fresh subprocesses, the kernel's high-water mark above the resident memory once
the model is loaded): ``run MB`` for one ``run(lens=True)``, ``pair MB`` for
``compare(lens=True)``, and ``pair - 2 runs``: what the comparison holds beyond the two
runs' own peaks (target: <= 1.5 GB extra in all).

Prompt b is prompt a with every " Mary" replaced by " Alice" (one token each), so the
two have the same length.

Usage::

    python benchmarks/bench_compare.py                  # 1024 positions, 3 repeats
    python benchmarks/bench_compare.py --seq-len 256 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_lens import _load, _Peak, _prompt_ids, _rss_bytes

from coilvis.pair_kernel import KERNEL_ENV, pair_kernel_name


def prompts(tok: Any, seq_len: int) -> tuple[str, str]:
    """Two prompts of ``seq_len`` tokens each that differ in every " Mary"."""
    text_a = tok.decode(_prompt_ids(tok, seq_len).tolist())
    text_b = text_a.replace(" Mary", " Alice")
    assert len(tok(text_a)["input_ids"]) == len(tok(text_b)["input_ids"]), "the names must be one token each"
    return text_a, text_b


def hand_rolled(model: Any, tok: Any, text_a: str, text_b: str) -> None:
    """Two runs and a per-layer full-softmax KL, as a user would write it."""
    import coilvis
    from coilvis.models import LoadedModel
    from coilvis.models.hf import forward_for_record

    loaded = LoadedModel(model, tok, "default")
    coilvis.run(text_a, loaded, lens=True, progress=False)
    coilvis.run(text_b, loaded, lens=True, progress=False)
    norm, w_u = model.model.norm, model.get_output_embeddings().weight
    with torch.inference_mode():
        _, res_a, _ = forward_for_record(model, torch.as_tensor(tok(text_a)["input_ids"]), residuals=True)
        _, res_b, _ = forward_for_record(model, torch.as_tensor(tok(text_b)["input_ids"]), residuals=True)
        for (_, ha), (_, hb) in zip(res_a or [], res_b or []):
            for s in range(0, ha.shape[0], 256):
                la = (norm(ha[s : s + 256]) @ w_u.T).log_softmax(-1)
                lb = (norm(hb[s : s + 256]) @ w_u.T).log_softmax(-1)
                torch.nn.functional.kl_div(lb, la, log_target=True, reduction="none").sum(-1)


def measure_time(seq_len: int, repeats: int) -> dict[str, Any]:
    import coilvis
    from coilvis.models import LoadedModel

    model, tok = _load()
    loaded = LoadedModel(model, tok, "default")
    text_a, text_b = prompts(tok, seq_len)
    coilvis.compare("warm up", "warm up", model=loaded, lens=True)
    times: dict[str, list[float]] = {"run": [], "pair": [], "pair_torch": [], "hand": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        coilvis.run(text_a, loaded, lens=True, progress=False)
        times["run"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        comparison = coilvis.compare(text_a, text_b, model=loaded, lens=True, progress=False)
        times["pair"].append(time.perf_counter() - t0)
        os.environ[KERNEL_ENV] = "torch"
        try:
            t0 = time.perf_counter()
            coilvis.compare(text_a, text_b, model=loaded, lens=True, progress=False)
            times["pair_torch"].append(time.perf_counter() - t0)
        finally:
            os.environ.pop(KERNEL_ENV)
        t0 = time.perf_counter()
        hand_rolled(model, tok, text_a, text_b)
        times["hand"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**{f"{k}_s": v for k, v in med.items()}, "all": times, "n_pos": comparison.n_pos, "threads": torch.get_num_threads()}


def _worker(kind: str, seq_len: int) -> dict[str, Any]:
    """Runs in a fresh process: the memory figures."""
    import coilvis
    from coilvis.models import LoadedModel

    model, tok = _load()
    loaded = LoadedModel(model, tok, "default")
    text_a, text_b = prompts(tok, seq_len)
    coilvis.compare("warm up", "warm up", model=loaded, lens=True)
    before = _rss_bytes()
    with _Peak() as peak:
        if kind == "pair":
            coilvis.compare(text_a, text_b, model=loaded, lens=True, progress=False)
        else:
            coilvis.run(text_a, loaded, lens=True, progress=False)
    return {"extra_mb": (peak.peak - before) / 2**20}


def measure_memory(kind: str, seq_len: int) -> float:
    cmd = [sys.executable, __file__, "--worker", kind, "--seq-len", str(seq_len)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["pair", "run"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.seq_len)))
        return
    t = measure_time(args.seq_len, args.repeats)
    run_mb, pair_mb = measure_memory("run", args.seq_len), measure_memory("pair", args.seq_len)
    print(f"positions {t['n_pos']}, torch threads {t['threads']}, medians of {args.repeats}, pair kernel {pair_kernel_name('auto')}")
    print(f"run s {t['run_s']:.2f}  pair s {t['pair_s']:.2f}  pair torch s {t['pair_torch_s']:.2f}  hand s {t['hand_s']:.2f}")
    print(
        f"pair / run {t['pair_s'] / t['run_s']:.2f}  (target <= 2.2)   pair torch / run {t['pair_torch_s'] / t['run_s']:.2f}"
        f"   pair / hand {t['pair_s'] / t['hand_s']:.2f}"
    )
    print(f"run MB {run_mb:.0f}  pair MB {pair_mb:.0f}  pair - 2 runs {pair_mb - 2 * run_mb:.0f}  (target: pair MB <= 1536)")
    print("all times:", json.dumps({k: [round(x, 2) for x in v] for k, v in t["all"].items()}))
    # each pair next to the run measured just before it: how far the machine's noise moves the ratio
    for name in ("pair", "pair_torch"):
        ratios = [pair / run for run, pair in zip(t["all"]["run"], t["all"][name], strict=True)]
        print(f"{name.replace('_', ' ')} / run per repetition:", " ".join(f"{r:.2f}" for r in ratios), f"(median {statistics.median(ratios):.2f})")


if __name__ == "__main__":
    main()
