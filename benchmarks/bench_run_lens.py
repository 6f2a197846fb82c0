"""Benchmark: what a user waits for in ``coilvis.run(prompt, lens=True)``, against two references.

For each prompt length, three things are timed alternately in one process (so a busy
machine slows them alike), on the same token ids, medians of ``--repeats``:

* ``run s``: the whole public call, ``coilvis.run(text, model, lens=True)``: tokenising,
  the forward pass with hidden states, the final logits' statistics, the lens over
  every layer and the Record;
* ``floor s``: the forward pass with hidden states (``output_hidden_states=True``) plus
  the bare float32 unembedding (``final_norm(h) @ W_U.T``) of every row the lens decodes
  (the embedding and every block but the last, whose logits the model returns), in
  matmuls of as many rows as coilvis decodes at once (``DEFAULT_CHUNK_ROWS``, 1,024:
  bigger matmuls cost less per row), keeping nothing: the work no lens can skip;
* ``top1 s``: the hand-rolled top-1 lens of the tutorials: the same forward, then per
  layer ``softmax(lm_head(final_norm(h))).max(-1)`` over all positions at once.

It prints ``run/floor`` (the issue's target: at most 1.2) and ``run/top1`` (below 1:
coilvis faster than the simplest lens a user could write, though it keeps top-k,
entropy, KL to the final layer and two ranks per cell).

``--device`` runs everything on another torch device (``auto``: CUDA, else MPS, else
CPU); the device is printed.

Usage::

    python benchmarks/bench_run_lens.py                      # 1024 positions
    python benchmarks/bench_run_lens.py --seq-len 1024 4096 --repeats 3
    python benchmarks/bench_run_lens.py --device auto
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

TEXT = (
    "The Eiffel Tower is located in the city of Paris, on the Champ de Mars beside the Seine. "
    "It was designed by the engineering company of Gustave Eiffel and built for the 1889 World's Fair. "
    "When Mary and John went to the store, John gave a drink to Mary, who thanked him and walked home. "
)
CHUNK = 1024  # coilvis.logit_lens.DEFAULT_CHUNK_ROWS, not imported so this file also times older versions


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def prompt_of_length(tok: Any, seq_len: int) -> tuple[str, torch.Tensor]:
    """A text that tokenises to exactly ``seq_len`` ids (BOS included when the tokenizer adds one), and those ids."""
    ids = tok(TEXT)["input_ids"]
    want = seq_len
    for _ in range(5):
        text = tok.decode((ids * (want // len(ids) + 1))[:want])
        got = tok(text)["input_ids"]
        if len(got) == seq_len:
            return text, torch.as_tensor(got)
        want += seq_len - len(got)
    return text, torch.as_tensor(got)


def floor(model: Any, ids: torch.Tensor) -> None:
    with torch.inference_mode():
        hidden = model(ids.unsqueeze(0), output_hidden_states=True).hidden_states
        norm, w_u = model.model.norm, model.get_output_embeddings().weight
        rows = hidden[:-1]  # the embedding and blocks 0 .. n-2 (the last is the model's own logits)
        for h in rows:
            for start in range(0, ids.shape[0], CHUNK):
                norm(h[0, start : start + CHUNK]) @ w_u.T


def top1_lens(model: Any, ids: torch.Tensor) -> None:
    with torch.inference_mode():
        hidden = model(ids.unsqueeze(0), output_hidden_states=True).hidden_states
        norm, head = model.model.norm, model.lm_head
        for h in hidden[:-1]:
            torch.softmax(head(norm(h[0])), dim=-1).max(dim=-1)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def measure(loaded: Any, seq_len: int, repeats: int, device: torch.device) -> dict[str, Any]:
    import coilvis

    model, tok, _ = loaded
    text, ids = prompt_of_length(tok, seq_len)
    ids = ids.to(device)
    rec = coilvis.run(text, loaded, lens=True, progress=False)  # warm-up: lazily built state, first touches
    things: dict[str, Callable[[], Any]] = {
        "run": lambda: coilvis.run(text, loaded, lens=True, progress=False),
        "floor": lambda: floor(model, ids),
        "top1": lambda: top1_lens(model, ids),
    }
    times: dict[str, list[float]] = {name: [] for name in things}
    for _ in range(repeats):
        for name, fn in things.items():
            times[name].append(timed(fn, device))
    return {"seq_len": rec.seq_len, "times": times, **{name: statistics.median(t) for name, t in times.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, nargs="*", default=[1024], help="prompt lengths (default 1024)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps, or auto (the first present)")
    args = parser.parse_args(argv)
    import coilvis

    device = pick_device(args.device)
    loaded = coilvis.load_model(device=device, progress=False)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, load {load:.1f}, median of {args.repeats}")
    header = f"{'seq_len':>7} {'run s':>8} {'floor s':>8} {'top1 s':>8} {'run/floor':>9} {'run/top1':>9}"
    print(header)
    print("-" * len(header))
    for seq_len in args.seq_len:
        m = measure(loaded, seq_len, args.repeats, device)
        print(
            f"{m['seq_len']:>7} {m['run']:>8.2f} {m['floor']:>8.2f} {m['top1']:>8.2f} "
            f"{m['run'] / m['floor']:>9.3f} {m['run'] / m['top1']:>9.3f}",
            flush=True,
        )
        print("        (" + ", ".join(f"{n} {[round(x, 2) for x in t]}" for n, t in m["times"].items()) + ")")


if __name__ == "__main__":
    main()
