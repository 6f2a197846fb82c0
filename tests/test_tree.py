"""coilvis.tree: the continuation tree against separate, unbatched forward passes of every path.

Every expanded node's distribution is recomputed by an ordinary forward pass of
``prompt + path`` (batch of one, no cache, float64 softmax) and the tree's values must
equal it to 1e-5: the children's conditional probabilities, the "other" node's mass, the
entropy. The tree's own arithmetic holds too: path probabilities are the products along
the path and a parent's children and "other" node hold exactly its mass. Both forward
strategies (tree attention on the prompt's KV cache, and whole paths in batches), the
fallback from one to the other, chunked depths, TransformerLens, and random small models
(hypothesis) are covered; then bad input, refused before any model is loaded.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coilvis
from coilvis.continuations import Tree, max_tree_nodes
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.runner import tree_passes
from coilvis.tokens import piece_to_bytes

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from conftest import PROMPT, _build_tiny_tokenizer
except ImportError:  # tests is a package
    from tests.conftest import PROMPT, _build_tiny_tokenizer

ATOL = 1e-5


# ------------------------------------------------------------------ the reference


def reference(model: Any, ids: list[int]) -> np.ndarray:
    """(d_vocab,) float64 next-token probabilities after ``ids``: one ordinary pass, batch of one, no cache."""
    with torch.inference_mode():
        if coilvis.models.is_transformer_lens(model):
            logits = model(torch.tensor([ids]), return_type="logits")[0, -1]
        else:
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
    return torch.softmax(logits.double(), dim=-1).numpy()


def entropy_nats(p: np.ndarray) -> float:
    q = p[p > 0]
    return float(-(q * np.log(q)).sum())


def assert_tree_arithmetic(t: Tree) -> None:
    """Path probabilities are products along the path; children and "other" hold the parent's mass."""
    for i in range(1, t.n_nodes):
        np.testing.assert_allclose(t.path_prob[i], np.prod(t.cond_prob[t.path(i)].astype(np.float64)), rtol=1e-5, atol=1e-7)
    for i in range(t.n_nodes):
        kids = t.children(i)
        if kids.size:
            assert t.is_other[kids[-1]] and not t.is_other[kids[:-1]].any()
            np.testing.assert_allclose(t.path_prob[kids].astype(np.float64).sum(), t.path_prob[i], atol=1e-6)
            np.testing.assert_allclose(t.cond_prob[kids].astype(np.float64).sum(), 1.0, atol=1e-6)
    x0, x1 = t.spans()
    np.testing.assert_allclose(x1 - x0, t.path_prob, atol=1e-7)
    for i in range(1, t.n_nodes):  # each node lies inside its parent's span
        p = t.parent[i]
        assert x0[p] - 1e-6 <= x0[i] and x1[i] <= x1[p] + 1e-6


def assert_matches_reference(t: Tree, model: Any, *, atol: float = ATOL) -> int:
    """Every expanded node's children against an unbatched pass of its path; returns how many nodes were checked."""
    checked = 0
    for i in range(t.n_nodes):
        kids = t.children(i)
        if kids.size == 0:  # a leaf: an "other" node, or a token at the depth limit
            assert t.is_other[i] or t.depth[i] == t.depth_limit
            continue
        ids = t.prompt_ids.tolist() + [int(t.token_id[j]) for j in t.path(i)]
        p = reference(model, ids)
        real, other = kids[:-1], kids[-1]
        np.testing.assert_allclose(t.cond_prob[real], p[t.token_id[real]], atol=atol)
        # the kept tokens are the most likely ones (compared as sorted values: near-ties may swap ids)
        top = np.sort(p)[::-1][: min(t.k, p.size)]
        np.testing.assert_allclose(np.sort(t.cond_prob[real])[::-1], top[: real.size], atol=atol)
        if real.size < top.size:  # the next one went to "other": its path probability is below min_prob
            assert t.min_prob > 0 and t.path_prob[i] * top[real.size] < t.min_prob + atol
        assert np.all(t.path_prob[real] >= t.min_prob)
        np.testing.assert_allclose(t.cond_prob[other], 1.0 - p[t.token_id[real]].sum(), atol=atol)
        np.testing.assert_allclose(t.entropy[kids], entropy_nats(p), atol=1e-4)
        checked += 1
    return checked


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_tree_attention_equals_unbatched_passes(tiny_llama: Any, tiny_tokenizer: Any, attention: str) -> None:
    tiny_llama.set_attn_implementation(attention)
    t = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=4)
    assert t.extra["strategy"] == "tree_attention"
    assert t.n_nodes == max_tree_nodes(3, 4) + max_tree_nodes(2, 4)  # token nodes and one "other" per expanded node
    assert t.extra["forward_passes"] == 1 + 2 + 1  # the prompt, depths 1 and 2, one check of the mask
    assert assert_matches_reference(t, tiny_llama) == 1 + 4 + 16
    assert_tree_arithmetic(t)
    assert (t.depth == np.repeat([0, 1, 2, 3], [1, 5, 20, 80])).all()  # breadth-first
    assert t.prompt_ids.tolist() == tiny_tokenizer(PROMPT)["input_ids"]


def test_gpt2_with_absolute_positions_and_padded_vocabulary(tiny_gpt2: Any, tiny_tokenizer: Any) -> None:
    t = coilvis.tree(PROMPT, (tiny_gpt2, tiny_tokenizer), depth=3, k=3)
    assert t.extra["strategy"] == "tree_attention"
    assert t.d_vocab == tiny_gpt2.config.vocab_size
    assert assert_matches_reference(t, tiny_gpt2) == 1 + 3 + 9
    assert_tree_arithmetic(t)


def test_whole_paths_without_kv_cache_give_the_same_tree(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    cached = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=3)
    plain = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=3, kv_cache=False)
    assert plain.extra["strategy"] == "batches" and cached.extra["strategy"] == "tree_attention"
    assert_matches_reference(plain, tiny_llama)
    np.testing.assert_allclose(plain.path_prob, cached.path_prob, atol=ATOL)
    np.testing.assert_allclose(plain.entropy, cached.entropy, atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(plain.parent, cached.parent)


def test_chunked_depths_equal_whole_ones(monkeypatch: pytest.MonkeyPatch, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    whole = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=4)
    monkeypatch.setattr(tree_passes, "TREE_CHUNK_TOKENS", 3)
    monkeypatch.setattr(tree_passes, "BATCH_TOKENS", 2 * (len(whole.prompt_ids) + 2))
    chunked = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=4)
    batches = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=4, kv_cache=False)
    assert chunked.extra["forward_passes"] == 1 + 2 + 6 + 1  # 4 and 16 nodes in chunks of 3, and the check
    assert batches.extra["forward_passes"] == 1 + 2 + 8  # rows of two paths
    for t in (chunked, batches):
        np.testing.assert_allclose(t.path_prob, whole.path_prob, atol=ATOL)
    assert_matches_reference(chunked, tiny_llama)


def _without(model: Any, *names: str) -> Any:
    """The model with some keyword arguments of its forward dropped (its signature kept)."""
    forward = model.forward

    @functools.wraps(forward)
    def dropping(*args: Any, **kwargs: Any) -> Any:
        for name in names:
            kwargs.pop(name, None)
        return forward(*args, **kwargs)

    model.forward = dropping
    return model


@pytest.mark.parametrize("dropped", [("position_ids",), ("position_ids", "attention_mask")])
def test_a_model_that_ignores_the_tree_mask_falls_back_to_whole_paths(tiny_llama: Any, tiny_tokenizer: Any, dropped: tuple[str, ...]) -> None:
    model = _without(tiny_llama, *dropped)
    t = coilvis.tree(PROMPT, (model, tiny_tokenizer), depth=3, k=4)
    assert t.extra["strategy"] == "batches"
    assert assert_matches_reference(t, model) == 1 + 4 + 16
    assert_tree_arithmetic(t)


def test_min_prob_sends_unlikely_tokens_to_other(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    full = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=5)
    threshold = float(np.quantile(full.path_prob[(full.depth == 2) & ~full.is_other], 0.5)) * 1.0001
    t = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=3, k=5, min_prob=threshold)
    assert t.min_prob == threshold
    assert t.n_nodes < full.n_nodes
    assert np.all(t.path_prob[~t.is_other] >= threshold)
    assert_matches_reference(t, tiny_llama)
    assert_tree_arithmetic(t)


def test_depth_one_runs_the_prompt_only(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    t = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=1, k=3)
    assert t.n_nodes == 1 + 3 + 1 and t.extra["forward_passes"] == 1
    assert assert_matches_reference(t, tiny_llama) == 1
    assert t.continuation(1) == t.vocab[int(t.token_id[1])]


def test_k_beyond_the_vocabulary_keeps_every_token(tiny_tokenizer: Any) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(3)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         vocab_size=len(tiny_tokenizer), max_position_embeddings=64)
    model = AutoModelForCausalLM.from_config(config).eval()
    t = coilvis.tree("ab", (model, tiny_tokenizer), depth=1, k=10_000, max_nodes=10**9)
    assert t.k == len(tiny_tokenizer)
    assert t.cond_prob[-1] == pytest.approx(0.0, abs=1e-6)  # nothing is left for "other"
    assert_tree_arithmetic(t)


def test_texts_and_continuations_come_from_the_tokenizer(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    t = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=2, k=2)
    leaf = int(np.flatnonzero((t.depth == 2) & ~t.is_other)[0])
    ids = [int(t.token_id[i]) for i in t.path(leaf)]
    pieces = tiny_tokenizer.convert_ids_to_tokens(ids)
    assert t.continuation(leaf) == b"".join(piece_to_bytes(p, scheme="byte_level") for p in pieces).decode("utf-8", "backslashreplace")
    assert "".join(t.prompt_tokens) == PROMPT
    assert t.model_name and t.prompt == PROMPT
    assert t.extra["adapter"] == "transformers" and t.extra["device"] == "cpu"


def test_a_transformer_lens_model_runs_whole_paths(tmp_path: Path, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    bridge_mod = pytest.importorskip("transformer_lens.model_bridge")
    from transformers import AutoTokenizer

    tiny_tokenizer.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    bridge = bridge_mod.TransformerBridge.boot_transformers("tiny-llama", hf_model=copy.deepcopy(tiny_llama), tokenizer=tokenizer, device="cpu")
    t = coilvis.tree(PROMPT, bridge, depth=2, k=3)
    assert t.extra["strategy"] == "batches" and t.extra["adapter"] == "transformer_lens"
    assert assert_matches_reference(t, bridge) == 1 + 3
    via_hf = coilvis.tree(PROMPT, (tiny_llama, tokenizer), depth=2, k=3)
    np.testing.assert_allclose(t.path_prob, via_hf.path_prob, atol=ATOL)


def test_progress_bar(tiny_llama: Any, tiny_tokenizer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=2, k=3, progress=True)
    assert "coilvis tree" in capsys.readouterr().err
    coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=2, k=3)
    assert "coilvis tree" not in capsys.readouterr().err  # small trees show none by default


# ------------------------------------------------------------------ random small models


_TOKENIZER = None


def _tokenizer() -> Any:
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = _build_tiny_tokenizer()
    return _TOKENIZER


@st.composite
def small_models(draw: st.DrawFn) -> Any:
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    torch.manual_seed(draw(st.integers(0, 2**16)))
    vocab = len(_tokenizer())
    heads = draw(st.sampled_from([1, 2, 4]))
    hidden = heads * draw(st.sampled_from([4, 8]))
    layers = draw(st.integers(1, 2))
    scale = draw(st.sampled_from([0.02, 0.3, 1.0]))  # from near-uniform to peaked distributions
    if draw(st.booleans()):
        config = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=heads, vocab_size=vocab, max_position_embeddings=64, initializer_range=scale)
    else:
        config = GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=64, vocab_size=vocab, initializer_range=scale)
    attention = draw(st.sampled_from(["eager", "sdpa"]))
    return AutoModelForCausalLM.from_config(config, attn_implementation=attention).eval()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    model=small_models(),
    prompt=st.text(alphabet="ab the\n", min_size=1, max_size=12),
    depth=st.integers(1, 3),
    k=st.integers(1, 4),
    min_prob=st.sampled_from([0.0, 0.0, 0.01, 0.2]),
    chunk=st.sampled_from([1, 2, 256]),
)
def test_random_models_batched_equals_unbatched(model: Any, prompt: str, depth: int, k: int, min_prob: float, chunk: int) -> None:
    old = tree_passes.TREE_CHUNK_TOKENS
    tree_passes.TREE_CHUNK_TOKENS = chunk
    try:
        t = coilvis.tree(prompt, (model, _tokenizer()), depth=depth, k=k, min_prob=min_prob)
    finally:
        tree_passes.TREE_CHUNK_TOKENS = old
    assert t.n_nodes <= max_tree_nodes(depth, k, min_prob) + max_tree_nodes(depth - 1, k, min_prob)
    assert_matches_reference(t, model)
    assert_tree_arithmetic(t)
    plain = coilvis.tree(prompt, (model, _tokenizer()), depth=depth, k=k, min_prob=min_prob, kv_cache=False)
    assert plain.n_nodes == t.n_nodes or min_prob > 0  # a path right at min_prob may round either way
    if plain.n_nodes == t.n_nodes:
        np.testing.assert_allclose(plain.path_prob, t.path_prob, atol=ATOL)


# ------------------------------------------------------------------ bad input, before any model


NOT_A_MODEL = "/no/such/model/folder"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"depth": 0}, CoilvisValueError, "depth: expected >= 1"),
        ({"depth": -2}, CoilvisValueError, "depth:"),
        ({"depth": 2.0}, CoilvisTypeError, "depth: expected an int"),
        ({"depth": True}, CoilvisTypeError, "depth:"),
        ({"k": 0}, CoilvisValueError, "k: expected >= 1"),
        ({"k": "5"}, CoilvisTypeError, "k:"),
        ({"min_prob": -0.1}, CoilvisValueError, "min_prob:"),
        ({"min_prob": 1.0}, CoilvisValueError, r"min_prob: expected a number in \[0, 1\)"),
        ({"min_prob": 1.5}, CoilvisValueError, "min_prob:"),
        ({"min_prob": float("nan")}, CoilvisValueError, "min_prob:"),
        ({"min_prob": "0.1"}, CoilvisTypeError, "min_prob:"),
        ({"max_nodes": 0}, CoilvisValueError, "max_nodes:"),
        ({"max_nodes": 1.5}, CoilvisTypeError, "max_nodes:"),
        ({"depth": 4, "k": 8, "max_nodes": 4_680}, CoilvisValueError, r"max_nodes: depth=4, k=8 gives up to 4,681 nodes \(1 \+ 8 \+ 64 \+ 512 \+ 4,096\), more than max_nodes=4,680"),
        ({"depth": 30, "k": 50}, CoilvisValueError, r"max_nodes: depth=30, k=50 gives up to [0-9,]+ nodes .*more than max_nodes=20,000"),
        ({"depth": 30, "k": 10, "min_prob": 0.001}, CoilvisValueError,
         r"depth=30, k=10 gives up to 28,111 nodes \(1 \+ 10 \+ 100 \+ 1,000 \+ 1,000 \+ \.\.\., each depth capped at 1,000 by min_prob=0.001\), more than max_nodes=20,000"),
        ({"kv_cache": "yes"}, CoilvisTypeError, "kv_cache:"),
        ({"progress": 1}, CoilvisTypeError, "progress:"),
        ({"prepend_bos": "no"}, CoilvisTypeError, "prepend_bos:"),
    ],
)
def test_bad_arguments_are_refused_before_any_model_loads(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        coilvis.tree("Hello", NOT_A_MODEL, **kwargs)


def test_bad_prompt() -> None:
    with pytest.raises(CoilvisValueError, match="prompt: is empty"):
        coilvis.tree("", NOT_A_MODEL)
    with pytest.raises(CoilvisTypeError, match="prompt:"):
        coilvis.tree(["Hello"], NOT_A_MODEL)


def test_the_size_limit_admits_what_min_prob_bounds(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    assert max_tree_nodes(8, 10, 0.05) == 1 + 10 + 20 * 7 <= 20_000
    t = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=8, k=10, min_prob=0.05)
    assert t.n_nodes <= 2 * max_tree_nodes(8, 10, 0.05)
    assert_tree_arithmetic(t)


def test_a_prompt_past_the_context_is_refused(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    n = len(tiny_tokenizer("a" * 255)["input_ids"])
    assert n == 255  # one token a letter; the model takes 256 positions
    coilvis.tree("a" * 255, (tiny_llama, tiny_tokenizer), depth=2, k=1)  # 255 + 1 positions fit
    with pytest.raises(CoilvisValueError, match=r"prompt: 255 tokens and depth=3 need 257 positions, but .* takes at most 256"):
        coilvis.tree("a" * 255, (tiny_llama, tiny_tokenizer), depth=3, k=1)


def test_not_a_model() -> None:
    with pytest.raises(CoilvisTypeError, match="model:"):
        coilvis.tree("Hello", object())


def test_public_names() -> None:
    assert coilvis.tree is coilvis.runner.tree.tree
    assert coilvis.Tree is Tree
    assert "tree" in coilvis.__all__ and "Tree" in coilvis.__all__


# ------------------------------------------------------------------ the default model


@pytest.mark.slow
@pytest.mark.model
def test_default_model_tree(default_model: Any) -> None:
    t = coilvis.tree("The Eiffel Tower is located in the city of", default_model, depth=3, k=5)
    assert t.extra["strategy"] == "tree_attention"
    assert t.n_nodes == 156 + 31  # 1 + 5 + 25 + 125 token nodes, an "other" node per expanded one
    first = t.children(0)[0]
    assert t.continuation(first) == " Paris" and t.cond_prob[first] == pytest.approx(0.70, abs=0.01)
    assert_tree_arithmetic(t)
    # every expanded node against its own pass (the model is small: 31 passes)
    assert assert_matches_reference(t, default_model.model) == 31
