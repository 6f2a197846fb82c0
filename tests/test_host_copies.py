"""Where the statistics run: on the model's device, with only reduced numbers crossing to
the host. A spy on every way a tensor reaches numpy or Python (``.cpu()``, ``.numpy()``,
``.tolist()``, ``.item()``, ``np.asarray``) records the shapes that cross; no full-vocabulary
row may be among them, whatever the device (on a CPU the calls are the same ones that
would copy from an accelerator)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

import coilvis
from coilvis.models import LoadedModel

PROMPT_A = "Hello the world and the end\n"
PROMPT_B = "Hello the world and the dog\n"


@pytest.fixture
def crossings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, tuple[int, ...]]]]:
    """The (method, shape) of every tensor converted for the host while the test runs."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    for method in ("cpu", "numpy", "tolist", "item", "__array__"):
        original = getattr(torch.Tensor, method)

        def spy(self: torch.Tensor, *args: Any, _original: Any = original, _method: str = method, **kwargs: Any) -> Any:
            seen.append((_method, tuple(self.shape)))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, spy)
    yield seen


def _full_rows(seen: list[tuple[str, tuple[int, ...]]], d_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(m, shape) for m, shape in seen if d_vocab in shape]


def test_the_spy_sees_a_full_row_when_one_crosses(crossings: list[tuple[str, tuple[int, ...]]]) -> None:
    logits = torch.randn(3, 263)
    np.asarray(logits.cpu().numpy())
    assert _full_rows(crossings, 263)


def test_run_with_the_lens_brings_only_reduced_statistics_to_the_host(
    tiny_llama: Any, tiny_tokenizer: Any, crossings: list[tuple[str, tuple[int, ...]]]
) -> None:
    loaded = LoadedModel(tiny_llama, tiny_tokenizer, "tiny")
    d_vocab = tiny_llama.config.vocab_size
    rec = coilvis.run(PROMPT_A, loaded, lens=True, lens_mid=True, attention=True, k=7, progress=False)
    assert rec.lens is not None and rec.seq_len not in (d_vocab, 7)
    assert crossings, "the spy saw nothing: it no longer watches the way statistics reach numpy"
    assert _full_rows(crossings, d_vocab) == []


def test_compare_with_the_lens_brings_only_reduced_statistics_to_the_host(
    tiny_llama: Any, tiny_tokenizer: Any, crossings: list[tuple[str, tuple[int, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel every device uses; the fused kernel runs on CPU tensors only, reading
    # them where they are (tests/test_pair_fused.py: it declines any other device)
    monkeypatch.setenv("COILVIS_PAIR_KERNEL", "torch")
    loaded = LoadedModel(tiny_llama, tiny_tokenizer, "tiny")
    d_vocab = tiny_llama.config.vocab_size
    cmp = coilvis.compare(PROMPT_A, PROMPT_B, model=loaded, lens=True, metric=(101, 100))
    assert cmp.a.seq_len != d_vocab and cmp.lens is not None
    assert _full_rows(crossings, d_vocab) == []
