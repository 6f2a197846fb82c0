"""Benchmark: per-position statistics on (4096, 49152) float32 logits.

Prints, as medians of several runs:
  * time of coilvis's statistics (top-10, entropy, log-sum-exp, target log-prob and rank)
    divided by the time of a bare ``torch.log_softmax`` + ``torch.topk`` on the same
    tensor, measured in the same process (target: <= 1.5);
  * peak extra memory of the statistics beyond the input (target: <= 512 MB), measured
    in a fresh subprocess by sampling its resident set size;
  * time to build the full-vocabulary DataFrame of one position (49,152 rows).

Run: python benchmarks/bench_stats.py [--seq-len 4096] [--d-vocab 49152] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory(seq_len: int, d_vocab: int) -> None:
    """Child process: print the peak memory the statistics add beyond the input."""
    import torch

    from coilvis import stats

    torch.manual_seed(0)
    logits = torch.randn(seq_len, d_vocab).mul_(3)  # in place: the peak so far is the input itself
    targets = torch.randint(0, d_vocab, (seq_len,))
    # no warm-up: the figure includes the chunk buffers the statistics allocate
    import threading

    before = _rss_mb()
    peak = [before]
    done = threading.Event()

    def sample() -> None:  # resident set size sampled every millisecond
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stats.position_stats(logits, k=10, next_ids=targets)
    done.set()
    sampler.join()
    print(json.dumps({"extra_mb": peak[0] - before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--d-vocab", type=int, default=49152)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        measure_memory(args.seq_len, args.d_vocab)
        return

    import torch

    import coilvis
    from coilvis import stats

    torch.manual_seed(0)
    logits = torch.randn(args.seq_len, args.d_vocab) * 3
    targets = torch.randint(0, args.d_vocab, (args.seq_len,))

    def bare() -> None:
        lp = torch.log_softmax(logits, dim=-1)
        torch.topk(logits, 10, dim=-1)
        del lp

    def ours() -> None:
        stats.position_stats(logits, k=10, next_ids=targets)

    bare()
    ours()
    ratios, t_bare, t_ours = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        bare()
        t1 = time.perf_counter()
        ours()
        t2 = time.perf_counter()
        t_bare.append(t1 - t0)
        t_ours.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))

    row = logits[-1].numpy()
    vocab = [f"tok{i}" for i in range(args.d_vocab)]
    coilvis.logits_table(row, vocab, k=None)
    t_df = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        df = coilvis.logits_table(row, vocab, k=None)
        t_df.append(time.perf_counter() - t0)
    assert len(df) == args.d_vocab

    child = subprocess.run(
        [sys.executable, __file__, "--child-memory", "--seq-len", str(args.seq_len), "--d-vocab", str(args.d_vocab)],
        capture_output=True,
        text=True,
        check=True,
    )
    extra_mb = json.loads(child.stdout.strip().splitlines()[-1])["extra_mb"]

    med = statistics.median
    print(f"statistics of ({args.seq_len}, {args.d_vocab}) float32 logits, median of {args.repeats} runs, {torch.get_num_threads()} threads")
    print(f"  bare log_softmax + topk      {med(t_bare) * 1e3:8.1f} ms")
    print(f"  coilvis position_stats       {med(t_ours) * 1e3:8.1f} ms")
    print(f"  ratio (target <= 1.5)        {med(ratios):8.2f}   (runs: {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  peak extra memory (<= 512)   {extra_mb:8.1f} MB  (input itself: {logits.numel() * 4 / 2**20:.0f} MB)")
    print(f"  full-vocab DataFrame         {med(t_df) * 1e3:8.1f} ms  ({len(df)} rows)")


if __name__ == "__main__":
    main()
