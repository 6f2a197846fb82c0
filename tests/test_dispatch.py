"""Models dispatched by accelerate (layers split over devices, weights offloaded to CPU or disk) run like the plain model."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import coilvis

accelerate = pytest.importorskip("accelerate")

PROMPT = "Hello the world and the end\n"


def _dispatched(model: Any, device_map: dict[str, str], folder: Path) -> Any:
    return accelerate.dispatch_model(copy.deepcopy(model), device_map=device_map, offload_dir=str(folder))


def _assert_same(got: coilvis.Record, want: coilvis.Record) -> None:
    for name in ("topk_ids", "topk_probs", "entropy", "next_logprob", "log_z"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-5, equal_nan=True, err_msg=name)
    assert got.lens is not None and want.lens is not None
    for name in ("entropy", "kl_to_final", "topk_probs", "next_prob"):
        np.testing.assert_allclose(getattr(got.lens, name), getattr(want.lens, name), atol=1e-5, equal_nan=True, err_msg=f"lens.{name}")
    assert got.attention is not None and want.attention is not None
    np.testing.assert_allclose(got.attention.weight, want.attention.weight, atol=1e-6)


LLAMA_MAPS = {
    "head-on-disk": {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                     "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "disk"},
    "norm-and-layer-on-disk": {"model.embed_tokens": "disk", "model.layers.0": "disk", "model.layers.1": "cpu",
                               "model.norm": "disk", "model.rotary_emb": "cpu", "lm_head": "cpu"},
}


@pytest.mark.parametrize("where", sorted(LLAMA_MAPS))
def test_llama_dispatched_over_cpu_and_disk_runs_with_lens_and_attention(tiny_llama: Any, tiny_tokenizer: Any, tmp_path: Path, where: str) -> None:
    want = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), lens=True, attention=True)
    model = _dispatched(tiny_llama, LLAMA_MAPS[where], tmp_path)
    got = coilvis.run(PROMPT, (model, tiny_tokenizer), lens=True, attention=True)
    _assert_same(got, want)


def test_gpt2_dispatched_runs_and_compares(tiny_gpt2: Any, tiny_tokenizer: Any, tmp_path: Path) -> None:
    device_map = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.drop": "cpu", "transformer.h.0": "disk",
                  "transformer.h.1": "cpu", "transformer.ln_f": "disk", "lm_head": "cpu"}
    model = _dispatched(tiny_gpt2, device_map, tmp_path)
    want = coilvis.run(PROMPT, (tiny_gpt2, tiny_tokenizer), lens=True, attention=True)
    _assert_same(coilvis.run(PROMPT, (model, tiny_tokenizer), lens=True, attention=True), want)
    c_want = coilvis.compare(PROMPT, PROMPT.replace(" the", " a", 1), model=(tiny_gpt2, tiny_tokenizer), lens=True)
    c_got = coilvis.compare(PROMPT, PROMPT.replace(" the", " a", 1), model=(model, tiny_tokenizer), lens=True)
    for name in ("kl_ab", "js", "tv"):
        np.testing.assert_allclose(getattr(c_got, name), getattr(c_want, name), atol=1e-5, err_msg=name)
        np.testing.assert_allclose(getattr(c_got.lens, name), getattr(c_want.lens, name), atol=1e-5, err_msg=name)


def test_a_head_without_weights_is_refused_by_name(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    import torch

    from coilvis.errors import CoilvisValueError

    model = copy.deepcopy(tiny_llama)
    model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.lm_head.weight, device="meta"))
    with pytest.raises(CoilvisValueError, match="meta"):
        coilvis.run(PROMPT, (model, tiny_tokenizer), lens=True)
