"""Hugging Face transformers adapter: load a causal LM, run it once, keep what views need.

transformers is imported only inside these functions, never at module import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coilvis.errors import CoilvisValueError, MissingDependencyError, ModelNotFoundError
from coilvis.models.anatomy import input_device, ResidualRow, collect_residuals, final_residual_hook, mid_residual_hooks, n_layers_of, residual_layout

__all__ = ["load_hf", "attention_modules", "eager_attention", "forward", "encode", "forward_for_record"]


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            "model: Hugging Face models need transformers; install it with: pip install 'coilvis[models]'"
        ) from None
    return transformers


def load_hf(name_or_path: str, *, device: Any = None, dtype: Any = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local folder or a model id.

    A local folder loads offline. A model id is looked up in the local Hugging Face
    cache first, then on the hub; when neither works (offline, or no such model) the
    error is one line.

    Args:
        name_or_path: a folder holding ``config.json`` and weights, or a model id.
        device: where to put the model (default: CPU).
        dtype: torch dtype (default: float32).

    Returns:
        ``(model, tokenizer)``, the model in eval mode.

    Raises:
        ModelNotFoundError: no such folder, or the id cannot be loaded.
        MissingDependencyError: transformers is not installed.
    """
    transformers = _transformers()
    from transformers.utils import logging as hf_logging

    kwargs: dict[str, Any] = {"dtype": dtype or torch.float32}
    try:
        path = Path(name_or_path).expanduser()
        exists = path.exists()
    except (OSError, RuntimeError) as exc:  # a name too long for the file system, an unknown ~user
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ModelNotFoundError(f"model: {name_or_path[:100]!r} is not a model id or a folder ({reason})") from None
    looks_local = exists or name_or_path.startswith((".", "/", "~")) or os.sep + os.sep in name_or_path
    if looks_local and not (path / "config.json").is_file():
        raise ModelNotFoundError(f"model: {name_or_path!r} is not a folder holding a transformers model (no config.json)")
    attempts = [True] if looks_local or os.environ.get("HF_HUB_OFFLINE") == "1" else [True, False]
    last: BaseException | None = None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logger = logging.getLogger("huggingface_hub")
    hub_level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    model = tok = None
    try:
        for local_only in attempts:
            if not local_only and not _hub_reachable():
                break
            try:
                tok = transformers.AutoTokenizer.from_pretrained(str(path) if looks_local else name_or_path, local_files_only=local_only)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    str(path) if looks_local else name_or_path, local_files_only=local_only, **kwargs
                )
                break
            except Exception as exc:  # OSError, ValueError and the hub client's many error types
                last = exc
        if model is None:
            reason = str(last).strip().splitlines()[0] if last is not None and str(last).strip() else type(last).__name__
            raise ModelNotFoundError(
                f"model: cannot load {name_or_path!r}: not a local model folder, not in the Hugging Face "
                f"cache, and the hub did not provide it (offline?) [{reason[:160]}]"
            ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
        hub_logger.setLevel(hub_level)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tok


def _hub_reachable(timeout_s: float = 2.0) -> bool:
    """Whether the model hub's host resolves and accepts a connection (fast offline check)."""
    try:
        from urllib.parse import urlparse

        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).hostname
        if not host:
            return False
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except Exception:
        return False


def attention_modules(model: Any) -> list[Any]:
    """The self-attention module of each layer, in layer order.

    Found by class name (``...Attention``) under the model's layer list, outermost
    only, so it works by architecture (GPT-2 ``attn``, Llama/Gemma ``self_attn``) rather
    than by model name.

    Raises:
        CoilvisValueError: the count differs from ``config.num_hidden_layers``.
    """
    found: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        cls = type(module).__name__
        if cls.endswith("Attention") and not any(name.startswith(p + ".") for p, _ in found):
            found.append((name, module))
    try:
        n_layers: int | None = n_layers_of(model)
    except CoilvisValueError:  # the config does not say: trust the modules found
        n_layers = None
    if n_layers is not None and len(found) != n_layers:
        raise CoilvisValueError(
            f"attention: found {len(found)} attention modules in {type(model).__name__} but the config has "
            f"{n_layers} layers; coilvis cannot tell which is which for this architecture"
        )
    return [m for _, m in found]


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Switch a transformers model to eager attention for the block, then restore it.

    Only eager attention computes the attention pattern; sdpa and flash kernels never
    materialise it.

    Raises:
        CoilvisValueError: the model cannot use eager attention.
    """
    current = getattr(model.config, "_attn_implementation", None)
    if current in (None, "eager"):
        yield
        return
    try:
        model.set_attn_implementation("eager")
    except Exception as exc:
        raise CoilvisValueError(
            f"attention: {type(model).__name__} uses {current!r} attention, which does not return attention "
            f"patterns, and it cannot switch to eager attention ({exc}); load it with attn_implementation='eager'"
        ) from None
    try:
        yield
    finally:
        model.set_attn_implementation(current)


def forward(
    model: Any,
    input_ids: torch.Tensor,
    *,
    attention_hook: Any = None,
    hidden_states: bool = False,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """One forward pass of a batch of 1, with no gradients, on the model's device.

    Args:
        model: a transformers causal LM.
        input_ids: (seq_len,) token ids.
        attention_hook: called as ``hook(layer, pattern)`` with each layer's attention
            pattern ``(n_heads, seq_len, seq_len)`` as soon as the layer has run; the
            pattern is then dropped, so the dense (n_layers, ...) tensor never exists.
        hidden_states: also return the residual stream after each layer.

    Returns:
        ``(logits, hidden)``: (seq_len, d_vocab) logits on the model's device, and when
        asked a tuple of n_layers + 1 tensors (seq_len, d_model) (the last one already
        through the final norm, as transformers returns it), else ``None``.
    """
    device = input_device(model)
    ids = input_ids.reshape(1, -1).to(device)
    handles = []
    if attention_hook is not None:
        for layer, module in enumerate(attention_modules(model)):

            def hook(mod: Any, args: Any, output: Any, layer: int = layer) -> Any:
                if not (isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor)):
                    raise CoilvisValueError(
                        f"attention: layer {layer} of {type(model).__name__} returned no attention pattern"
                    )
                attention_hook(layer, output[1][0])
                return (output[0], None) + tuple(output[2:])

            handles.append(module.register_forward_hook(hook))
    try:
        ctx = eager_attention(model) if attention_hook is not None else contextlib.nullcontext()
        with ctx, torch.inference_mode():
            out = model(input_ids=ids, use_cache=False, output_hidden_states=hidden_states)
    finally:
        for h in handles:
            h.remove()
    hidden = tuple(h[0] for h in out.hidden_states) if hidden_states else None
    return out.logits[0], hidden


def encode(tokenizer: Any, prompt: str, *, prepend_bos: bool | None = None) -> np.ndarray:
    """Token ids of a prompt, (seq_len,) int64, with the tokenizer's own special tokens.

    Args:
        tokenizer: a HF tokenizer.
        prompt: the text.
        prepend_bos: force a BOS token on (True) or off (False); ``None`` does what the
            tokenizer does by default.
    """
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos is True and bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    elif prepend_bos is False and bos is not None and ids and ids[0] == bos:
        ids = ids[1:]
    return np.asarray(ids, dtype=np.int64)


def forward_for_record(
    model: Any,
    input_ids: torch.Tensor,
    *,
    attention_hook: Any = None,
    residuals: bool = False,
    mid: bool = False,
) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]] | None, int]:
    """The forward pass :func:`coilvis.run` needs.

    Args:
        model: a transformers causal LM.
        input_ids: (seq_len,) token ids.
        attention_hook: see :func:`forward`.
        residuals: also return the residual stream before the final norm, per layer.
        mid: also return the residual after each layer's attention (needs ``residuals``).

    Returns:
        ``(logits, residuals, n_layers)``: (seq_len, d_vocab) logits; when asked, the
        ``(name, (seq_len, d_model) tensor)`` rows of
        :func:`coilvis.models.anatomy.residual_layout`: ``"embed"`` (transformers'
        first hidden state), each block's output ``"i"`` and, when ``mid``, ``"i.mid"``;
        the last block's output is taken before the final norm by a hook (transformers'
        last hidden state is already normed), and with it the lens checks its decoder
        against the logits.
    """
    n_layers = n_layers_of(model)
    mids: dict[int, torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}
    handles = []
    if residuals:
        handle = final_residual_hook(model, final)
        handles = [handle] if handle is not None else []
        if mid:
            handles += mid_residual_hooks(model, mids)
    try:
        logits, hidden = forward(model, input_ids, attention_hook=attention_hook, hidden_states=residuals)
    finally:
        for h in handles:
            h.remove()
    if not residuals:
        return logits, None, n_layers
    assert hidden is not None

    def tensor_of(row: ResidualRow) -> torch.Tensor | None:
        if row.where == "mid":
            return mids.get(row.layer)
        if row.where == "pre":
            return hidden[0]
        return final.get("final") if row.layer == n_layers - 1 else hidden[row.layer + 1]

    return logits, collect_residuals(residual_layout(n_layers, mid=mid), tensor_of), n_layers
