"""Hugging Face transformers adapter: load a causal LM, run it once, keep what views need.

transformers is imported only inside these functions, never at module import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coilvis.errors import CoilvisValueError, MissingDependencyError, ModelNotFoundError
from coilvis.models.anatomy import input_device, ResidualRow, collect_residuals, final_residual_hook, mid_residual_hooks, n_layers_of, residual_layout

__all__ = ["load_hf", "attention_modules", "eager_attention", "forward", "encode", "forward_for_record", "forward_batch_for_record"]


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


def _attention_hooks(model: Any, attention_hook: Any) -> list[Any]:
    """Forward hooks handing each layer's (batch, n_heads, seq_len, seq_len) pattern to
    ``attention_hook(layer, pattern)``, then dropping it from the layer's output."""
    handles = []
    for layer, module in enumerate(attention_modules(model)):

        def hook(mod: Any, args: Any, output: Any, layer: int = layer) -> Any:
            if not (isinstance(output, tuple) and len(output) > 1 and isinstance(output[1], torch.Tensor)):
                raise CoilvisValueError(f"attention: layer {layer} of {type(model).__name__} returned no attention pattern")
            attention_hook(layer, output[1])
            return (output[0], None) + tuple(output[2:])

        handles.append(module.register_forward_hook(hook))
    return handles


def _hooked_pass(
    model: Any, ids: torch.Tensor, mask: torch.Tensor | None, *, attention_hook: Any, hidden_states: bool
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """One forward pass of (batch, seq_len) ids without gradients: (batch, seq_len, d_vocab)
    logits and, when asked, transformers' hidden states (batch, seq_len, d_model)."""
    handles = _attention_hooks(model, attention_hook) if attention_hook is not None else []
    kwargs: dict[str, Any] = {} if mask is None else {"attention_mask": mask}
    try:
        ctx = eager_attention(model) if attention_hook is not None else contextlib.nullcontext()
        with ctx, torch.inference_mode():
            out = model(input_ids=ids, use_cache=False, output_hidden_states=hidden_states, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return out.logits, (tuple(out.hidden_states) if hidden_states else None)


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
    hook = None if attention_hook is None else (lambda layer, pattern: attention_hook(layer, pattern[0]))
    logits, hidden = _hooked_pass(model, ids, None, attention_hook=hook, hidden_states=hidden_states)
    return logits[0], (tuple(h[0] for h in hidden) if hidden is not None else None)


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


def _record_pass(
    model: Any, ids: torch.Tensor, mask: torch.Tensor | None, *, attention_hook: Any, residuals: bool, mid: bool
) -> tuple[torch.Tensor, Any, int]:
    """The pass both record forwards make: (batch, seq_len, d_vocab) logits, a function
    ``rows(b, n)`` giving batch row ``b``'s first ``n`` positions of the residual layout
    (``None`` without ``residuals``), and the layer count."""
    n_layers = n_layers_of(model)
    mids: dict[int, torch.Tensor] = {}
    final: dict[str, torch.Tensor] = {}
    handles = []
    if residuals:
        handle = final_residual_hook(model, final, batch=True)
        handles = [handle] if handle is not None else []
        if mid:
            handles += mid_residual_hooks(model, mids, batch=True)
    try:
        logits, hidden = _hooked_pass(model, ids, mask, attention_hook=attention_hook, hidden_states=residuals)
    finally:
        for h in handles:
            h.remove()
    if not residuals:
        return logits, None, n_layers
    assert hidden is not None
    layout = residual_layout(n_layers, mid=mid)

    def rows(b: int, n: int) -> list[tuple[str, torch.Tensor]]:
        def tensor_of(row: ResidualRow) -> torch.Tensor | None:
            if row.where == "mid":
                t = mids.get(row.layer)
            elif row.where == "pre":
                t = hidden[0]
            else:
                t = final.get("final") if row.layer == n_layers - 1 else hidden[row.layer + 1]
            return None if t is None else t[b, :n]

        return collect_residuals(layout, tensor_of)

    return logits, rows, n_layers


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
    device = input_device(model)
    ids = input_ids.reshape(1, -1).to(device)
    hook = None if attention_hook is None else (lambda layer, pattern: attention_hook(layer, pattern[0]))
    logits, rows, n_layers = _record_pass(model, ids, None, attention_hook=hook, residuals=residuals, mid=mid)
    return logits[0], (rows(0, ids.shape[1]) if rows is not None else None), n_layers


def forward_batch_for_record(
    model: Any,
    batch_ids: Sequence[torch.Tensor],
    *,
    attention_hooks: Sequence[Any] | None = None,
    residuals: bool = False,
    mid: bool = False,
    pad_id: int = 0,
) -> list[tuple[torch.Tensor, list[tuple[str, torch.Tensor]] | None, int]]:
    """:func:`forward_for_record` of several prompts in one pass, right-padded.

    The prompts are padded on the right with ``pad_id`` and masked with an attention
    mask. Right padding keeps every real token at the position it has alone (position
    ids and rotary angles count from 0 in every row), and causal attention keeps each
    real query off the padding after it, so each row's results are those of its own
    :func:`forward_for_record` up to float rounding; padded positions are cut off.

    Args:
        model: a transformers causal LM.
        batch_ids: (seq_len_i,) token ids per prompt, each at least one token.
        attention_hooks: one ``hook(layer, pattern)`` per prompt (see :func:`forward`),
            each given its own ``(n_heads, seq_len_i, seq_len_i)`` pattern, or ``None``.
        residuals: also return each prompt's residual rows (see :func:`forward_for_record`).
        mid: also the residual after each layer's attention (needs ``residuals``).
        pad_id: the token id of padded positions (any id: they are masked and dropped).

    Returns:
        One ``(logits, residuals, n_layers)`` per prompt, in order: (seq_len_i, d_vocab)
        logits (views into the batch's logits) and, when asked, its residual rows.
    """
    lengths = [int(t.shape[0]) for t in batch_ids]
    device = input_device(model)
    ids = torch.full((len(lengths), max(lengths)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, (t, n) in enumerate(zip(batch_ids, lengths)):
        ids[b, :n] = torch.as_tensor(t, dtype=torch.long)
        mask[b, :n] = 1
    hook = None
    if attention_hooks is not None:
        hooks = list(attention_hooks)

        def hook(layer: int, pattern: torch.Tensor) -> None:
            for b, (row_hook, n) in enumerate(zip(hooks, lengths)):
                row_hook(layer, pattern[b, :, :n, :n])

    logits, rows, n_layers = _record_pass(model, ids.to(device), mask.to(device), attention_hook=hook, residuals=residuals, mid=mid)
    return [(logits[b, :n], rows(b, n) if rows is not None else None, n_layers) for b, n in enumerate(lengths)]
