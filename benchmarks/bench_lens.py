"""Benchmark of the logit lens on the default model (SmolLM2-135M, 30 layers, vocab 49,152).

For each prompt length it prints:

* ``bare s``: the bare unembedding, ``final_norm(resid) @ W_U.T`` for every decoded
  row (n_layers x seq_len rows: the embedding and the first n_layers - 1 blocks; the
  last block is the model's own logits), in the same chunks as the lens, keeping
  nothing (median of ``--repeats``);
* ``lens s``: :func:`coilvis.logit_lens.compute_lens` on the same residuals (median), and
  ``lens / bare``, its cost relative to the matmul it cannot avoid (the two are
  measured alternately in one process, so a busy machine slows both alike);
  ``cpu ratio``: the same ratio of process CPU time (less sensitive to other load);
* ``lens MB``: peak resident memory while the lens runs, above the resident memory
  just before it (model, residuals and logits already held), in a fresh subprocess;
* ``run MB``: peak resident memory of ``coilvis.run(..., lens=True)`` in a fresh
  subprocess, above the resident memory once the model is loaded: the forward pass
  with hidden states, the model's logits and the lens together.

Peaks are the kernel's high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) on Linux, else RSS sampled every 2 ms.

Usage::

    python benchmarks/bench_lens.py                  # 1024 positions
    python benchmarks/bench_lens.py --long           # and 4096 positions (minutes)
    python benchmarks/bench_lens.py --seq-len 256 --repeats 5 --chunk-rows 128
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import torch

TEXT = (
    "The Eiffel Tower is located in the city of Paris, on the Champ de Mars beside the Seine. "
    "It was designed by the engineering company of Gustave Eiffel and built for the 1889 World's Fair. "
    "When Mary and John went to the store, John gave a drink to Mary, who thanked him and walked home. "
)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Peak:
    """Peak resident memory of this process during a ``with`` block, in bytes.

    Linux: the kernel's high-water mark (``VmHWM``), reset on entry through
    ``/proc/self/clear_refs``, so nothing between samples is missed. Elsewhere: RSS
    sampled every 2 ms on a thread.
    """

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hwm = False

    @staticmethod
    def _vm_hwm() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise OSError("no VmHWM")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.002)

    def __enter__(self) -> _Peak:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._vm_hwm()
            self._hwm = True
        except OSError:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.peak = _rss_bytes()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hwm:
            self.peak = max(self.peak, self._vm_hwm())
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _load() -> tuple[Any, Any]:
    import coilvis

    model, tok, _ = coilvis.load_model(progress=False)
    return model, tok


def _prompt_ids(tok: Any, seq_len: int) -> torch.Tensor:
    ids = tok(TEXT)["input_ids"]
    reps = seq_len // len(ids) + 1
    return torch.as_tensor((ids * reps)[:seq_len], dtype=torch.int64)


def _forward(model: Any, ids: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    from coilvis.models.hf import forward_for_record

    logits, residuals, _ = forward_for_record(model, ids, residuals=True)
    assert residuals is not None
    return logits, residuals


def bare_unembedding(model: Any, residuals: list[tuple[str, torch.Tensor]], chunk_rows: int) -> None:
    """norm + resid @ W_U.T for every decoded row, chunked as the lens chunks them."""
    norm = model.model.norm
    w_u = model.get_output_embeddings().weight
    n_layers = model.config.num_hidden_layers
    rows = [t for name, t in residuals if name != str(n_layers - 1)]
    seq_len = rows[0].shape[0]
    n_pos = min(seq_len, chunk_rows)
    n_groups = max(1, chunk_rows // n_pos)
    with torch.inference_mode():
        for start in range(0, seq_len, n_pos):
            s = slice(start, min(seq_len, start + n_pos))
            for g0 in range(0, len(rows), n_groups):
                h = torch.cat([t[s] for t in rows[g0 : g0 + n_groups]])
                norm(h) @ w_u.T


def measure_time(seq_len: int, repeats: int, chunk_rows: int) -> dict[str, Any]:
    from coilvis.logit_lens import compute_lens

    model, tok = _load()
    ids = _prompt_ids(tok, seq_len)
    logits, residuals = _forward(model, ids)
    next_ids = torch.cat([ids[1:], torch.tensor([-1])])
    bare_unembedding(model, residuals, chunk_rows)  # warm-up (first-touch of W_U, threads)
    bare_s: list[float] = []
    lens_s: list[float] = []
    bare_cpu: list[float] = []
    lens_cpu: list[float] = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        bare_unembedding(model, residuals, chunk_rows)
        bare_s.append(time.perf_counter() - t0)
        bare_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        compute_lens(model, residuals, logits=logits, next_ids=next_ids, k=5, chunk_rows=chunk_rows)
        lens_s.append(time.perf_counter() - t0)
        lens_cpu.append(time.process_time() - c0)
    return {
        "bare_s": statistics.median(bare_s),
        "lens_s": statistics.median(lens_s),
        "cpu_ratio": statistics.median(lens_cpu) / statistics.median(bare_cpu),
        "bare_all": bare_s,
        "lens_all": lens_s,
        "decoded_rows": model.config.num_hidden_layers * seq_len,
    }


def _worker(kind: str, seq_len: int, chunk_rows: int) -> dict[str, Any]:
    """Runs in a fresh process: the memory figures."""
    from coilvis.logit_lens import compute_lens

    model, tok = _load()
    ids = _prompt_ids(tok, seq_len)
    if kind == "lens":
        logits, residuals = _forward(model, ids)
        next_ids = torch.cat([ids[1:], torch.tensor([-1])])
        before = _rss_bytes()
        with _Peak() as peak:
            lens = compute_lens(model, residuals, logits=logits, next_ids=next_ids, k=5, chunk_rows=chunk_rows)
        return {"extra_mb": (peak.peak - before) / 2**20, "rows": lens.n_rows}
    import coilvis
    from coilvis.models import LoadedModel

    text = tok.decode(ids.tolist())
    loaded = LoadedModel(model, tok, "default")
    coilvis.run("x", loaded)  # warm-up, so lazily built state does not count
    before = _rss_bytes()
    with _Peak() as peak:
        rec = coilvis.run(text, loaded, lens=True, progress=False)
    return {"extra_mb": (peak.peak - before) / 2**20, "rows": rec.lens.n_rows if rec.lens else 0, "seq_len": rec.seq_len}


def measure_memory(kind: str, seq_len: int, chunk_rows: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--seq-len", str(seq_len), "--chunk-rows", str(chunk_rows)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, nargs="*", default=None, help="prompt lengths (default 1024)")
    parser.add_argument("--long", action="store_true", help="also 4096 positions")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=None, help="rows per matmul (default: the lens default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--worker", choices=["lens", "run"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from coilvis.logit_lens import DEFAULT_CHUNK_ROWS

    chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
    if args.worker:
        print(json.dumps(_worker(args.worker, args.seq_len[0], chunk_rows)))
        return
    lengths = args.seq_len or [1024]
    if args.long and 4096 not in lengths:
        lengths.append(4096)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, chunk_rows {chunk_rows}, median of {args.repeats}")
    header = f"{'seq_len':>7} {'rows':>7} {'bare s':>8} {'lens s':>8} {'lens/bare':>9} {'cpu ratio':>9} {'lens MB':>8} {'run MB':>8}"
    print(header)
    print("-" * len(header))
    for seq_len in lengths:
        t = measure_time(seq_len, args.repeats, chunk_rows)
        mem_lens = mem_run = float("nan")
        if not args.no_memory:
            mem_lens = measure_memory("lens", seq_len, chunk_rows)["extra_mb"]
            mem_run = measure_memory("run", seq_len, chunk_rows)["extra_mb"]
        print(
            f"{seq_len:>7} {t['decoded_rows']:>7} {t['bare_s']:>8.2f} {t['lens_s']:>8.2f} "
            f"{t['lens_s'] / t['bare_s']:>9.3f} {t['cpu_ratio']:>9.3f} {mem_lens:>8.0f} {mem_run:>8.0f}",
            flush=True,
        )
        print(f"        (bare runs {[round(x, 2) for x in t['bare_all']]}, lens runs {[round(x, 2) for x in t['lens_all']]})")


if __name__ == "__main__":
    main()
