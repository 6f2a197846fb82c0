"""Tests for TransformerLens 3.x: a ``HookedTransformer`` built from a config (seeded
weights, no download) through ``coilvis.run`` and ``coilvis.from_cache``, checked against
the model's own ``run_with_cache`` (logits, logit lens, attention patterns).

These run in the transformer-lens 3.x environment (``make test-tl3``) and are skipped
where ``HookedTransformer`` is absent (transformer-lens 4.x, the main environment);
with ``COILVIS_TL3=1`` set, as ``make test-tl3`` sets it, a missing 3.x is an error."""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import coilvis
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from conftest import PROMPT, _build_tiny_tokenizer
from tests.test_lens import assert_lens_matches, reference_lens
from tests.ties import assert_ranks_tie_equal, assert_topk_tie_equal


def _tl_version() -> str | None:
    try:
        return importlib.metadata.version("transformer-lens")
    except importlib.metadata.PackageNotFoundError:
        return None


TL_VERSION = _tl_version()
HAS_TL3 = TL_VERSION is not None and TL_VERSION.split(".")[0] == "3"
if os.environ.get("COILVIS_TL3") == "1" and not HAS_TL3:
    raise RuntimeError(f"COILVIS_TL3=1 but transformer-lens {TL_VERSION} is installed, not 3.x")

pytestmark = [
    pytest.mark.tl3,
    pytest.mark.skipif(
        not HAS_TL3,
        reason=f"needs transformer-lens 3.x (HookedTransformer); installed: {TL_VERSION}; run `make test-tl3`",
    ),
]

K = 5
N_LAYERS = 2
N_HEADS = 4


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny byte-level tokenizer, saved and reloaded: HookedTransformer reloads a
    tokenizer by its folder to add a BOS token."""
    from transformers import AutoTokenizer

    folder: Path = tmp_path_factory.mktemp("tiny_tokenizer")
    _build_tiny_tokenizer().save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def hooked_transformer(tokenizer: Any, norm: str, cls: Any = None) -> Any:
    """A 2-layer HookedTransformer with seeded weights; its norms' weights and biases are
    randomised too (they start as ones and zeros), so a lens that skipped them would differ."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(
        n_layers=N_LAYERS,
        d_model=64,
        n_ctx=64,
        d_head=16,
        n_heads=N_HEADS,
        d_vocab=len(tokenizer),
        act_fn="gelu",
        normalization_type=norm,
        seed=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.x points to TransformerBridge
        model = (cls or HookedTransformer)(cfg, tokenizer=tokenizer)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(0.5 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture(scope="module", params=["LN", "RMS"])
def model(request: pytest.FixtureRequest, tokenizer: Any) -> Any:
    return hooked_transformer(tokenizer, request.param)


def run_with_cache(model: Any, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
    with torch.no_grad():
        return model.run_with_cache(tokens)


def assert_record_matches_cache(rec: coilvis.Record, model: Any, tokens: torch.Tensor, logits: torch.Tensor, cache: Any) -> None:
    """Every statistic of ``rec`` (top-k, log Z, entropy, next token, lens with mid rows,
    all attention links) against torch references from the model's own run."""
    ids = tokens[0].numpy()
    seq_len = ids.shape[0]
    next_ids = np.append(ids[1:], -1)
    np.testing.assert_array_equal(rec.token_ids, ids)
    logp = torch.log_softmax(logits[0].double(), dim=-1)
    assert_topk_tie_equal(rec.topk_ids, logp)
    np.testing.assert_allclose(rec.topk_logits, logits[0].gather(1, torch.as_tensor(rec.topk_ids)).numpy(), atol=1e-5)
    np.testing.assert_allclose(rec.log_z, torch.logsumexp(logits[0].double(), -1).numpy(), atol=1e-4)
    np.testing.assert_allclose(rec.entropy, torch.distributions.Categorical(logits=logp).entropy().numpy(), atol=1e-4)
    want_next = logp[torch.arange(seq_len - 1), torch.as_tensor(ids[1:])].numpy()
    np.testing.assert_allclose(rec.next_logprob[:-1], want_next, atol=1e-4)
    assert np.isnan(rec.next_logprob[-1])
    assert_ranks_tie_equal(rec.next_rank, logp, next_ids)
    # TransformerLens's own logit lens: ln_final recomputed per row, then unembed
    with torch.no_grad():
        stack, labels = cache.accumulated_resid(apply_ln=True, incl_mid=True, return_labels=True)
        rows = list(model.unembed(stack)[:, 0])
    assert labels == ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]
    assert rec.lens is not None and rec.lens.layer_names == ("embed", "0.mid", "0", "1.mid", "1")
    torch.testing.assert_close(rows[-1], logits[0], atol=1e-5, rtol=0)
    assert_lens_matches(rec.lens, reference_lens(rows, next_ids, K))
    # attention: with top_k >= seq_len and min_weight 0, every causal link of every head
    links = rec.attention
    assert links is not None and (links.n_layers, links.n_heads) == (N_LAYERS, N_HEADS)
    per_head = links.head >= 0
    assert int(per_head.sum()) == N_LAYERS * N_HEADS * seq_len * (seq_len + 1) // 2
    assert np.all(links.key <= links.query)
    for layer in range(N_LAYERS):
        pattern = cache["pattern", layer][0]  # (n_heads, q, k)
        sel = per_head & (links.layer == layer)
        want = pattern[links.head[sel], links.query[sel], links.key[sel]].numpy()
        np.testing.assert_allclose(links.weight[sel], want, atol=1e-6)
        mean = pattern.mean(0)
        sel = (links.head == -1) & (links.layer == layer)
        np.testing.assert_allclose(links.weight[sel], mean[links.query[sel], links.key[sel]].numpy(), atol=1e-6)


def test_run_matches_run_with_cache(model: Any) -> None:
    tokens = model.to_tokens(PROMPT, prepend_bos=False)  # coilvis adds no BOS unless asked
    logits, cache = run_with_cache(model, tokens)
    rec = coilvis.run(
        PROMPT, model, attention=True, attention_top_k=64, attention_min_weight=0.0, lens=True, lens_k=K, lens_mid=True
    )
    assert rec.extra["adapter"] == "transformer_lens"
    assert_record_matches_cache(rec, model, tokens, logits, cache)


def test_from_cache_matches_run_with_cache(model: Any) -> None:
    tokens = model.to_tokens(PROMPT)  # TransformerLens's default: BOS first
    assert int(tokens[0, 0]) == model.tokenizer.bos_token_id
    logits, cache = run_with_cache(model, tokens)
    rec = coilvis.from_cache(
        cache, tokens=tokens, logits=logits, lens_k=K, lens_mid=True, attention=True, attention_top_k=64,
        attention_min_weight=0.0, prompt=PROMPT,
    )
    assert rec.model_name == model.cfg.model_name and rec.prompt == PROMPT
    assert_record_matches_cache(rec, model, tokens, logits, cache)
    # the same from the cache alone (logits decoded from the last block), without its
    # batch dimension, tokens as a plain list
    alone = coilvis.from_cache(cache.remove_batch_dim(), model=model, tokens=tokens[0].tolist(), lens_k=K)
    np.testing.assert_allclose(alone.topk_logits, rec.topk_logits, atol=1e-5)
    assert alone.lens is not None and alone.lens.layer_names == ("embed", "0", "1")
    np.testing.assert_allclose(alone.lens.entropy, rec.lens.entropy[[0, 2, 4]], atol=1e-5)
    np.testing.assert_allclose(alone.lens.kl_to_final, rec.lens.kl_to_final[[0, 2, 4]], atol=1e-5)


def test_run_refuses_a_lens_whose_head_does_not_reproduce_the_logits(tokenizer: Any) -> None:
    """A HookedTransformer that rescales its logits after the head: decoding the last
    block through ln_final and unembed no longer gives its logits, and the lens says so."""
    from transformer_lens import HookedTransformer

    class HalvedLogits(HookedTransformer):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return super().forward(*args, **kwargs) * 0.5

    model = hooked_transformer(tokenizer, "LN", HalvedLogits)
    rec = coilvis.run(PROMPT, model)  # no lens: nothing to check
    assert rec.lens is None
    with pytest.raises(CoilvisValueError, match="does not reproduce the model's own logits"):
        coilvis.run(PROMPT, model, lens=True)


def test_from_cache_errors(tokenizer: Any) -> None:
    model = hooked_transformer(tokenizer, "RMS")
    tokens = model.to_tokens([PROMPT, PROMPT])
    logits, cache = run_with_cache(model, tokens)
    with pytest.raises(CoilvisValueError, match="cache: .* batch of 2"):
        coilvis.from_cache(cache, tokens=tokens[:1])
    one = tokens[:1]
    logits, cache = run_with_cache(model, one)
    with pytest.raises(CoilvisValueError, match=r"tokens: expected \("):
        coilvis.from_cache(cache, tokens=one[:, :-1])
    with pytest.raises(CoilvisTypeError, match="tokens:"):
        coilvis.from_cache(cache, tokens=PROMPT)
    with pytest.raises(CoilvisValueError, match="logits: .* positions"):
        coilvis.from_cache(cache, tokens=one, logits=logits[:, :-1])
    with pytest.raises(CoilvisTypeError, match="model:"):
        coilvis.from_cache(dict(cache.items()), tokens=one)
    with torch.no_grad():
        _, partial = model.run_with_cache(one, names_filter=lambda name: "resid" in name)
    rec = coilvis.from_cache(partial, tokens=one)  # the lens needs only the residuals
    assert rec.lens is not None and rec.attention is None
    with pytest.raises(CoilvisValueError, match="cache: has no 'blocks.0.attn.hook_pattern'"):
        coilvis.from_cache(partial, tokens=one, attention=True)
    with pytest.raises(CoilvisValueError, match="attention_layers: layer 2"):
        coilvis.from_cache(cache, tokens=one, attention=True, attention_layers=[2])
