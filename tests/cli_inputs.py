"""Inputs for command-line tests that run no model: saved records and a prompts file.

:func:`write_inputs` saves, in one folder, a record with top-k, lens statistics and
attention links (``full.coil``), one with top-k only (``plain.coil``), a second lens
record of the same length for ``--compare`` (``other.coil``), a damaged record, a
non-UTF-8 prompts file and a valid one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

import coilvis

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from lens_records import VOCAB, lens_record_and_logits
except ImportError:  # tests is a package
    from tests.lens_records import VOCAB, lens_record_and_logits

#: Input tokens of the records (strings of :data:`lens_records.VOCAB`).
TOKENS = ["w1", " Paris", "w2", "\n", "w1", "w3"]
#: Blocks of the records' lens (and layers of their attention).
N_LAYERS = 2
N_HEADS = 2


class Inputs(NamedTuple):
    """Paths written by :func:`write_inputs`."""

    full: Path
    plain: Path
    other: Path
    damaged: Path
    prompts: Path
    latin1_prompts: Path


def _attention(seq_len: int, seed: int) -> np.ndarray:
    """Causal random attention, (N_LAYERS, N_HEADS, seq_len, seq_len), rows summing to 1."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, size=(N_LAYERS, N_HEADS, seq_len, seq_len))
    scores = np.where(np.tril(np.ones((seq_len, seq_len), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def full_record(seed: int = 0) -> coilvis.Record:
    """A record with top-k (k = 10), lens statistics and attention links."""
    lensed, logits = lens_record_and_logits(TOKENS, n_layers=N_LAYERS, k=4, seed=seed)
    ids = [VOCAB.index(t) for t in TOKENS]
    with_attention = coilvis.from_logits(
        logits[-1].astype(np.float32), tokens=ids, vocab=list(VOCAB), attention=_attention(len(ids), seed), model_name="tiny"
    )
    return dataclasses.replace(with_attention, lens=lensed.lens, vocab=lensed.vocab)


def write_inputs(folder: Path) -> Inputs:
    """Write the records and prompts files into ``folder`` (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    full = full_record(seed=0).save(folder / "full.coil")
    other = full_record(seed=1).save(folder / "other.coil")
    logits = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32))
    plain = coilvis.from_logits(logits, tokens=[0, 1], vocab=["alpha", " beta", "<img src=x>"], k=3).save(folder / "plain.coil")
    damaged = folder / "damaged.coil"
    damaged.write_bytes(full.read_bytes()[: 200])
    example = {"name": "one", "title": "One", "prompt": "Hello the world", "look_for": "Nothing.", "options": {}}
    prompts = folder / "prompts.json"
    prompts.write_text(json.dumps({"format": "coilvis.gallery", "version": 1, "examples": [example]}), encoding="utf-8")
    latin1 = folder / "latin1.json"
    latin1.write_bytes(json.dumps({"format": "coilvis.gallery", "version": 1, "examples": [{**example, "title": "Caf\u00e9"}]},
                                  ensure_ascii=False).encode("latin-1"))
    return Inputs(full, plain, other, damaged, prompts, latin1)
