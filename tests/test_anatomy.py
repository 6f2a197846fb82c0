"""Tests for coilvis.models.anatomy and coilvis.models.kinds: the one residual layout every
adapter returns (transformers, TransformerLens live and from a cache), the decoder of each
architecture (its own norm and head, tied or not, soft-capping) against the model's logits,
the mid-attention hooks, and clear errors for models coilvis cannot read."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.logit_lens import compute_lens
from coilvis.models import tlens
from coilvis.models.anatomy import (
    ResidualRow,
    collect_residuals,
    decoder_for,
    final_row_name,
    mid_residual_hooks,
    n_layers_of,
    residual_layout,
)
from coilvis.models.hf import forward_for_record
from coilvis.models.kinds import is_hf_model, is_nnsight, is_transformer_lens
from tests.test_lens import (
    ARCHS,
    EXPLICIT_NORM,
    SOFTCAP,
    K,
    assert_lens_matches,
    explicit_decode,
    hidden_and_last_block,
    input_ids,
    next_ids_of,
    reference_lens,
    tiny_model,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module", params=ARCHS)
def arch_model(request: pytest.FixtureRequest) -> tuple[str, Any]:
    return request.param, tiny_model(request.param)


# --------------------------------------------------------------------------- model kinds


def test_model_kinds_are_told_by_class_without_importing_model_libraries(tiny_llama: Any) -> None:
    assert is_hf_model(tiny_llama) and not is_transformer_lens(tiny_llama) and not is_nnsight(tiny_llama)
    for other in (object(), "gpt2", torch.nn.Linear(2, 2), None):
        assert not (is_hf_model(other) or is_transformer_lens(other) or is_nnsight(other))
    fake = type("HookedTransformer", (), {"__module__": "transformer_lens.HookedTransformer"})()
    assert is_transformer_lens(fake) and not is_hf_model(fake) and not is_nnsight(fake)
    code = "import sys, coilvis.models; print(sorted(m for m in ('torch', 'transformers', 'transformer_lens', 'nnsight') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the residual layout


@pytest.mark.parametrize(
    ("n_layers", "mid", "names"),
    [
        (1, False, ["embed", "0"]),
        (3, False, ["embed", "0", "1", "2"]),
        (2, True, ["embed", "0.mid", "0", "1.mid", "1"]),
    ],
)
def test_residual_layout_order_and_final_row(n_layers: int, mid: bool, names: list[str]) -> None:
    layout = residual_layout(n_layers, mid=mid)
    assert [row.name for row in layout] == names
    assert layout[-1] == ResidualRow(final_row_name(n_layers), n_layers - 1, "post")
    assert layout[0].where == "pre" and all(r.where == "mid" for r in layout if r.name.endswith(".mid"))


def test_collect_residuals_leaves_out_rows_an_adapter_lacks() -> None:
    layout = residual_layout(2)
    t = torch.zeros(3, 4)
    got = collect_residuals(layout, lambda row: None if row.name == "1" else t)
    assert [n for n, _ in got] == ["embed", "0"]


@pytest.mark.parametrize("mid", [False, True], ids=["plain", "mid"])
def test_transformers_adapter_returns_the_layout(arch_model: tuple[str, Any], mid: bool) -> None:
    """``forward_for_record``: transformers' hidden states for the blocks, the last block's
    output before the final norm (taken by a hook) as the closing check row."""
    _, model = arch_model
    ids = input_ids(seed=8)
    _, residuals, n_layers = forward_for_record(model, ids, residuals=True, mid=mid)
    assert residuals is not None and n_layers == n_layers_of(model)
    assert [n for n, _ in residuals] == [row.name for row in residual_layout(n_layers, mid=mid)]
    out, last_block = hidden_and_last_block(model, ids)
    got = dict(residuals)
    for i in range(n_layers - 1):
        torch.testing.assert_close(got[str(i)], out.hidden_states[i + 1][0], atol=0, rtol=0)
    torch.testing.assert_close(got["embed"], out.hidden_states[0][0], atol=0, rtol=0)
    torch.testing.assert_close(got[final_row_name(n_layers)], last_block, atol=0, rtol=0)


def _native_bridge() -> Any:
    bridge_mod = pytest.importorskip("transformer_lens.model_bridge")
    from transformer_lens.config import TransformerBridgeConfig

    torch.manual_seed(0)
    cfg = TransformerBridgeConfig(n_layers=2, d_model=64, n_ctx=64, d_head=16, n_heads=4, d_vocab=100, act_fn="gelu")
    return bridge_mod.TransformerBridge.boot_native(cfg)


@pytest.mark.slow
def test_transformer_lens_forward_and_cache_give_the_same_layout() -> None:
    """Live hooks and a cache read the same hook points into the same rows, and both
    end with the check row the lens compares with the logits."""
    bridge = _native_bridge()
    ids = input_ids()
    for mid in (False, True):
        logits, live, n_layers = tlens.forward(bridge, ids, residuals=True, mid=mid)
        with torch.no_grad():
            cached_logits, cache = bridge.run_with_cache(ids[None])
        cached = tlens.cache_residuals(bridge, cache, mid=mid)
        names = [row.name for row in residual_layout(n_layers, mid=mid)]
        assert live is not None and [n for n, _ in live] == names == [n for n, _ in cached]
        for (_, a), (_, b) in zip(live, cached):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
        torch.testing.assert_close(logits, cached_logits[0], atol=1e-5, rtol=0)
        assert [tlens.hook_name(row) for row in residual_layout(n_layers, mid=mid)][-1] == f"blocks.{n_layers - 1}.hook_resid_post"


@pytest.mark.slow
def test_every_adapter_path_reaches_the_decoder_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers live, TransformerLens live and TransformerLens from a cache: the lens
    decodes the closing row of the layout against the logits each time."""
    import coilvis.logit_lens as engine
    from coilvis.runner import lens_from_tl_cache

    checked: list[str] = []
    real = engine._check_decoder

    def spy(decoder: Any, resid: torch.Tensor, logits: torch.Tensor, name: str) -> None:
        checked.append(name)
        real(decoder, resid, logits, name)

    monkeypatch.setattr(engine, "_check_decoder", spy)
    ids = input_ids()
    model = tiny_model("llama")
    logits, residuals, _ = forward_for_record(model, ids, residuals=True)
    compute_lens(model, residuals, logits=logits, k=K)
    bridge = _native_bridge()
    logits, residuals, _ = tlens.forward(bridge, ids, residuals=True, mid=True)
    compute_lens(bridge, residuals, logits=logits, k=K)
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(ids[None])
    lens_from_tl_cache(bridge, cache, logits=logits, k=K)
    assert checked == [final_row_name(3), final_row_name(2), final_row_name(2)]


# --------------------------------------------------------------------------- decoders


def test_decoder_of_the_last_block_output_equals_the_logits(arch_model: tuple[str, Any]) -> None:
    _, model = arch_model
    ids = input_ids(seed=1)
    out, last_block = hidden_and_last_block(model, ids)
    with torch.no_grad():
        got = decoder_for(model)(last_block)
    assert got.dtype == torch.float32 and got.shape == out.logits[0].shape
    torch.testing.assert_close(got, out.logits[0], atol=1e-4, rtol=0)


def test_decoding_into_a_buffer_equals_decoding_afresh(arch_model: tuple[str, Any]) -> None:
    """The lens decodes into one reused buffer when the head is a plain matrix product
    (each architecture's own head, tied or not, biased or not, soft-capped or not): the
    same logits as calling the head's module, written into the buffer."""
    _, model = arch_model
    dec = decoder_for(model)
    resid = torch.randn(7, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = dec(resid)
        buf = torch.full_like(want, float("nan"))
        got = dec(resid, out=buf)
    assert got.data_ptr() == buf.data_ptr()  # written where asked, no new block of memory
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_head_with_hooks_is_called_not_bypassed(tiny_llama: Any) -> None:
    """A hook on the head (accelerate's offload, a user's patch) must run: the buffer
    is then not used, and the hook's result is what the lens reads."""
    dec = decoder_for(tiny_llama)
    handle = tiny_llama.lm_head.register_forward_hook(lambda mod, args, out: out * 0 + 1.0)
    try:
        with torch.no_grad():
            buf = torch.zeros(3, tiny_llama.config.vocab_size)
            got = dec(torch.randn(3, tiny_llama.config.hidden_size), out=buf)
    finally:
        handle.remove()
    assert bool((got == 1.0).all()) and bool((buf == 0).all())


@pytest.mark.parametrize("arch", ["gemma2", "gemma3_text"])
def test_softcap_is_not_a_no_op(arch: str) -> None:
    """The soft-capping test above could only pass by accident if the cap did nothing."""
    model = tiny_model(arch)
    out, last_block = hidden_and_last_block(model, input_ids())
    with torch.no_grad():
        uncapped = model.lm_head(model.model.norm(last_block))
    assert float((uncapped - out.logits[0]).abs().max()) > 0.5
    assert decoder_for(model).softcap == SOFTCAP


@pytest.mark.parametrize(
    ("arch", "tied"), [(a, t) for a, (_, t) in EXPLICIT_NORM.items()], ids=list(EXPLICIT_NORM)
)
def test_decoder_uses_the_models_own_head_tied_or_not(arch: str, tied: bool) -> None:
    model = tiny_model(arch)
    dec = decoder_for(model)
    assert dec.unembed is model.get_output_embeddings()
    assert dec.norm is EXPLICIT_NORM[arch][0](model)
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == tied
    assert ("untied" not in dec.description) == tied


# --------------------------------------------------------------------------- mid residuals


#: arch -> how the residual after attention is built from explicit hooks: the module
#: whose output is added to the residual stream.
MID_ADDEND = {
    "gpt2": lambda layer: layer.attn,
    "llama": lambda layer: layer.self_attn,
    "qwen2": lambda layer: layer.self_attn,
    "gemma2": lambda layer: layer.post_attention_layernorm,
}


@pytest.mark.parametrize("arch", list(MID_ADDEND))
def test_mid_residual_is_hidden_state_plus_attention_output(arch: str) -> None:
    from coilvis.models.hf import forward_for_record

    model = tiny_model(arch)
    ids = input_ids(seed=5)
    layers = model.transformer.h if arch == "gpt2" else model.model.layers
    addends: dict[int, torch.Tensor] = {}
    handles = []
    for i, layer in enumerate(layers):

        def hook(mod: Any, args: Any, output: Any, i: int = i) -> None:
            addends[i] = (output[0] if isinstance(output, tuple) else output)[0].detach().clone()

        handles.append(MID_ADDEND[arch](layer).register_forward_hook(hook))
    try:
        out, _ = hidden_and_last_block(model, ids)
    finally:
        for h in handles:
            h.remove()
    logits, residuals, n_layers = forward_for_record(model, ids, residuals=True, mid=True)
    assert residuals is not None
    got = dict(residuals)
    names = [n for n, _ in residuals]
    assert names == ["embed"] + [x for i in range(n_layers) for x in (f"{i}.mid", str(i))]
    for i in range(n_layers):
        torch.testing.assert_close(got[f"{i}.mid"], out.hidden_states[i][0] + addends[i], atol=1e-6, rtol=1e-6)
    lens = compute_lens(model, residuals, logits=logits, next_ids=next_ids_of(ids), k=K)
    assert lens.layer_names == tuple(names)
    with torch.no_grad():
        rows = [explicit_decode(arch, model, t) for n, t in residuals[:-1]] + [logits]
    assert_lens_matches(lens, reference_lens(rows, next_ids_of(ids), K))


# --------------------------------------------------------------------------- errors


def _mamba() -> Any:
    torch.manual_seed(0)
    config = transformers.MambaConfig(hidden_size=16, state_size=4, num_hidden_layers=2, vocab_size=50)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def _granite() -> Any:
    torch.manual_seed(0)
    config = transformers.GraniteConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=50, logits_scaling=8.0
    )
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def _gpt_neox() -> Any:
    torch.manual_seed(0)
    config = transformers.GPTNeoXConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=50)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


# (name, call, error type, words the message must hold)
ERROR_CASES = [
    ("no final norm (Mamba)", lambda: decoder_for(_mamba()), CoilvisValueError, ["final norm", "MambaForCausalLM", "ln_f"]),
    ("logit rescaling (Granite)", lambda: decoder_for(_granite()), CoilvisValueError, ["logits_scaling", "GraniteForCausalLM"]),
    ("not a model", lambda: decoder_for(torch.nn.Linear(2, 2)), CoilvisTypeError, ["model", "Linear"]),
    ("mid of an unknown architecture", lambda: mid_residual_hooks(_gpt_neox(), {}), CoilvisValueError, ["lens_mid", "gpt_neox", "llama"]),
]


@pytest.mark.parametrize(("name", "call", "error", "words"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_unsupported_models_raise_a_clear_error(name: str, call: Any, error: type, words: list[str]) -> None:
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, CoilvisError)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_run_refuses_an_unsupported_architecture_before_drawing() -> None:
    from coilvis.models.hf import forward_for_record

    with pytest.raises(CoilvisValueError, match="final norm"):
        forward_for_record(_mamba(), torch.tensor([1, 2, 3]), residuals=True)
