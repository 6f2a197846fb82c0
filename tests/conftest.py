"""Shared fixtures: tiny random models built from a config (no downloads), an in-memory
byte-level tokenizer, the embedded default model (slow tests only), and hypothesis
settings."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis: no per-example deadline (a cold torch kernel can take a while on a busy
# machine). Local runs keep exploring (random examples, failures replayed from the
# .hypothesis/ database); CI (CI=true) is derandomised and keeps no database, so every
# machine runs the same examples and no state is left behind between runs.
# HYPOTHESIS_PROFILE names a profile explicitly ("dev", "ci" or "thorough").
_QUIET = [HealthCheck.too_slow]
settings.register_profile("dev", deadline=None, derandomize=False, suppress_health_check=_QUIET)
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True, suppress_health_check=_QUIET)
settings.register_profile("thorough", deadline=None, max_examples=1000, suppress_health_check=_QUIET)


def hypothesis_profile(environ: Mapping[str, str]) -> str:
    """The hypothesis profile for an environment: ``HYPOTHESIS_PROFILE``, else "ci" when
    ``CI`` is true (as CI services set it), else "dev"."""
    if environ.get("HYPOTHESIS_PROFILE"):
        return environ["HYPOTHESIS_PROFILE"]
    return "ci" if environ.get("CI", "").strip().lower() in ("1", "true", "yes") else "dev"


settings.load_profile(hypothesis_profile(os.environ))

#: Merges of the tiny tokenizer: enough that some tokens span several characters.
TINY_MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("Ġa", "n"), ("Ġan", "d")]
TINY_EOS = "<|endoftext|>"
#: Padding rows of the tiny GPT-2's unembedding beyond the tokenizer's vocabulary.
GPT2_VOCAB_PADDING = 6
PROMPT = "Hello the world and the end\n"


def _build_tiny_tokenizer() -> Any:
    """A GPT-2-style byte-level BPE tokenizer built in memory: 256 byte pieces, a few
    merges and one special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from coilvis.tokens import bytes_to_unicode

    table = bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    for a, b in TINY_MERGES:
        vocab[a + b] = len(vocab)
    vocab[TINY_EOS] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=TINY_MERGES))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=TINY_EOS, bos_token=TINY_EOS)


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    """Byte-level BPE tokenizer of 263 tokens (``Ġ`` for a leading space), offline."""
    pytest.importorskip("transformers")
    return _build_tiny_tokenizer()


def _llama(vocab_size: int, **kwargs: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab_size,
        max_position_embeddings=256,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    return AutoModelForCausalLM.from_config(config, **kwargs).eval()


@pytest.fixture(scope="session")
def _tiny_llama_eager(tiny_tokenizer: Any) -> Any:
    return _llama(len(tiny_tokenizer), attn_implementation="eager")


@pytest.fixture
def tiny_llama(_tiny_llama_eager: Any) -> Any:
    """Tiny random Llama (2 layers, 4 heads, 2 KV heads, d_model 64) with eager attention.

    A fresh copy per test, so a test that changes its settings cannot leak."""
    return copy.deepcopy(_tiny_llama_eager)


@pytest.fixture
def tiny_llama_sdpa(_tiny_llama_eager: Any) -> Any:
    """The same weights as :func:`tiny_llama`, using sdpa attention (no patterns)."""
    model = copy.deepcopy(_tiny_llama_eager)
    model.set_attn_implementation("sdpa")
    assert model.config._attn_implementation == "sdpa"
    return model


@pytest.fixture(scope="session")
def _tiny_gpt2(tiny_tokenizer: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    torch.manual_seed(1)
    eos = tiny_tokenizer.eos_token_id
    config = GPT2Config(
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=256,
        vocab_size=len(tiny_tokenizer) + GPT2_VOCAB_PADDING,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


@pytest.fixture
def tiny_gpt2(_tiny_gpt2: Any) -> Any:
    """Tiny random GPT-2 (2 layers, 4 heads) whose vocabulary is padded
    :data:`GPT2_VOCAB_PADDING` ids beyond the tokenizer's, eager attention."""
    return copy.deepcopy(_tiny_gpt2)


@pytest.fixture(scope="session")
def default_model() -> Any:
    """The embedded default model (SmolLM2-135M-Instruct), loaded once per test run.

    Only for tests marked ``slow`` and ``model``."""
    pytest.importorskip("transformers")
    import coilvis

    return coilvis.load_model()
