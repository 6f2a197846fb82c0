"""Checks of what users hand the runs (run, from_logits, from_cache): prompts, flags, token ids, logits, attention.

Each check names the argument it refuses (``CoilvisTypeError`` for a wrong type,
``CoilvisValueError`` for a wrong value) and returns the value in the form the runs use.

Example:
    >>> token_ids([3, 1], seq_len=2, d_vocab=5, vocab=None)[0].tolist()
    [3, 1]
    >>> layer_spec(-1)
    (-1,)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.options import check_k

__all__ = [
    "RunOptions",
    "check_attention_pattern",
    "check_flag",
    "check_logits",
    "check_prompt",
    "check_run_options",
    "check_truncate",
    "layer_spec",
    "token_ids",
]


def check_prompt(prompt: Any) -> str:
    """A non-empty str."""
    if not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not prompt:
        raise CoilvisValueError("prompt: is empty; give at least one character of text")
    return prompt


def check_flag(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """A bool (numpy's too), or ``None`` when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        want = "True, False or None" if optional else "True or False"
        raise CoilvisTypeError(f"{name}: expected {want}, got {type(value).__name__}")
    return bool(value)


def check_truncate(truncate: Any) -> str | None:
    """``None``, ``"left"`` or ``"right"``."""
    if truncate is None:
        return None
    if not isinstance(truncate, str):
        raise CoilvisTypeError(f"truncate: expected None, 'left' or 'right', got {type(truncate).__name__}")
    if truncate not in ("left", "right"):
        raise CoilvisValueError(f"truncate: expected None, 'left' or 'right', got {truncate!r}")
    return truncate


def layer_spec(attention_layers: Any) -> tuple[int, ...] | None:
    """``attention_layers`` as a tuple of ints (one int is a list of one), types checked."""
    if attention_layers is None:
        return None
    value = attention_layers.tolist() if isinstance(attention_layers, (np.ndarray, torch.Tensor)) else attention_layers
    if isinstance(value, (np.integer, int)) and not isinstance(value, (bool, np.bool_)):
        return (int(value),)
    if isinstance(value, (str, bytes, bool, np.bool_, Mapping)) or not isinstance(value, Iterable):
        raise CoilvisTypeError(f"attention_layers: expected an int or a list of ints, got {type(value).__name__}")
    return tuple(check_int("attention_layers", x) for x in value)


class RunOptions(NamedTuple):
    """The checked options of :func:`coilvis.run` (and of :func:`coilvis.run_many`, which
    takes the same ones), under the names the runs use."""

    k: int
    attention: bool
    keys_per_query: int
    min_weight: float
    layer_spec: tuple[int, ...] | None
    lens: bool
    lens_k: int
    lens_mid: bool
    prepend_bos: bool | None
    truncate: str | None

    def run_kwargs(self) -> dict[str, Any]:
        """These options as keyword arguments of :func:`coilvis.run`."""
        return {
            "k": self.k, "attention": self.attention, "attention_top_k": self.keys_per_query,
            "attention_min_weight": self.min_weight, "attention_layers": self.layer_spec if self.attention else None,
            "lens": self.lens, "lens_k": self.lens_k, "lens_mid": self.lens_mid, "prepend_bos": self.prepend_bos,
            "truncate": self.truncate,
        }


def check_run_options(
    *, k: Any, attention: Any, attention_top_k: Any, attention_min_weight: Any, attention_layers: Any,
    lens: Any, lens_k: Any, lens_mid: Any, prepend_bos: Any, truncate: Any,
) -> RunOptions:
    """:func:`coilvis.run`'s options (see there), each refused by its name, in the order
    the signature lists them."""
    k = check_k(k)
    keys_per_query = check_int("attention_top_k", attention_top_k, minimum=1)
    min_weight = check_float("attention_min_weight", attention_min_weight, minimum=0, maximum=1)
    lens_k = check_k(lens_k, name="lens_k")
    attention, lens, lens_mid = (check_flag(n, v) for n, v in (("attention", attention), ("lens", lens), ("lens_mid", lens_mid)))
    prepend_bos = check_flag("prepend_bos", prepend_bos, optional=True)
    spec = layer_spec(attention_layers)
    if spec is not None and not attention:
        raise CoilvisValueError("attention_layers: given, but attention is off; pass attention=True to keep attention links")
    return RunOptions(
        k=k, attention=bool(attention), keys_per_query=keys_per_query, min_weight=min_weight, layer_spec=spec,
        lens=bool(lens), lens_k=lens_k, lens_mid=bool(lens_mid), prepend_bos=prepend_bos, truncate=check_truncate(truncate),
    )


def check_logits(logits: Any) -> torch.Tensor:
    """(seq_len, d_vocab) logits; a batch of one is squeezed, a larger batch refused."""
    t = stats.as_logits(logits, ndim=(2, 3))
    if t.dim() == 3:
        if t.shape[0] != 1:
            raise CoilvisValueError(
                f"logits: a batch of {t.shape[0]} sequences (shape {tuple(t.shape)}); pass one sequence, "
                "(seq_len, d_vocab) or (1, seq_len, d_vocab)"
            )
        t = t[0]
    if t.shape[0] < 1:
        raise CoilvisValueError("logits: no positions (shape (0, d_vocab))")
    return t


def _token_list(tokens: Any) -> list[Any]:
    """``tokens`` as a flat list: a sequence, or a (seq_len,) / (1, seq_len) array or tensor."""
    if isinstance(tokens, (str, bytes, bytearray)):
        raise CoilvisTypeError(
            f"tokens: expected a sequence of token ids or of strings, got one {type(tokens).__name__} "
            "(for one token per character pass list(text))"
        )
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    if isinstance(tokens, np.ndarray):
        if tokens.ndim == 2 and tokens.shape[0] == 1:
            tokens = tokens[0]
        if tokens.ndim != 1:
            raise CoilvisValueError(f"tokens: expected shape (seq_len,) or (1, seq_len), got {tokens.shape}")
        if tokens.dtype.kind not in "iuU":
            raise CoilvisTypeError(f"tokens: expected integer token ids or strings, got an array of dtype {tokens.dtype}")
        return [str(x) for x in tokens] if tokens.dtype.kind == "U" else [int(x) for x in tokens]
    if not isinstance(tokens, Sequence):
        raise CoilvisTypeError(f"tokens: expected a sequence of token ids or of strings, got {type(tokens).__name__}")
    return list(tokens)


def token_ids(tokens: Any, *, seq_len: int, d_vocab: int, vocab: Any) -> tuple[np.ndarray, list[str] | None]:
    """(seq_len,) token ids (-1 where unknown) and, for string tokens, their texts."""
    if tokens is None:
        return np.full(seq_len, -1, dtype=np.int64), None
    tok_list = _token_list(tokens)
    if len(tok_list) != seq_len:
        raise CoilvisValueError(f"tokens: expected {seq_len} tokens (one per position), got {len(tok_list)}")
    if all(isinstance(x, str) for x in tok_list):
        token_texts = [str(x) for x in tok_list]
        inverse: dict[str, list[int]] = {}
        if vocab is not None and isinstance(vocab, (Sequence, Mapping)) and not isinstance(vocab, str):
            from coilvis.tokens import vocab_from_list

            for i, text in sorted(vocab_from_list(vocab).items()):
                inverse.setdefault(text, []).append(i)
        for text in token_texts:
            found = inverse.get(text, [])
            if len(found) > 1:
                raise CoilvisValueError(
                    f"tokens: {text!r} is the text of several ids in vocab (ids {found[0]} and {found[1]}); "
                    "pass token ids instead of strings"
                )
        return np.array([inverse[s][0] if s in inverse else -1 for s in token_texts], dtype=np.int64), token_texts
    if not all(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) for x in tok_list):
        raise CoilvisTypeError("tokens: expected a sequence of token ids (ints) or of strings")
    ids = np.asarray(tok_list, dtype=np.int64)
    bad = np.nonzero((ids < 0) | (ids >= d_vocab))[0]
    if bad.size:
        raise CoilvisValueError(f"tokens: token id {ids[bad[0]]} at position {bad[0]} is out of range [0, {d_vocab})")
    return ids, None


def check_attention_pattern(attention: Any, seq_len: int) -> torch.Tensor:
    """A (n_layers, n_heads, seq_len, seq_len) causal pattern, checked layer by layer."""
    if isinstance(attention, str):
        raise CoilvisTypeError(
            "attention: expected a pattern (n_layers, n_heads, seq_len, seq_len) as a tensor or array, got str "
            "(to choose which heads a view shows, pass attention= to coilvis.coil or coilvis.page)"
        )
    pat = stats.as_tensor(attention, name="attention", expected="a pattern (n_layers, n_heads, seq_len, seq_len) as a tensor or array")
    if pat.dim() == 3:
        pat = pat.unsqueeze(0)
    if pat.dim() != 4 or pat.shape[-1] != seq_len or pat.shape[-2] != seq_len:
        raise CoilvisValueError(
            f"attention: expected (n_layers, n_heads, {seq_len}, {seq_len}) or (n_heads, {seq_len}, {seq_len}), got shape {tuple(pat.shape)}"
        )
    if pat.shape[0] < 1 or pat.shape[1] < 1:
        raise CoilvisValueError(f"attention: needs at least one layer and one head, got shape {tuple(pat.shape)}")
    for layer in range(pat.shape[0]):
        _check_layer_pattern(pat[layer].to(torch.float32), layer)
    return pat


def _check_layer_pattern(pattern: torch.Tensor, layer: int) -> None:
    """Refuse NaN, weights outside [0, 1] and weight on keys after the query: (n_heads, seq_len, seq_len)."""

    def first(mask: torch.Tensor) -> tuple[int, int, int]:
        head, query, key = (int(v) for v in mask.nonzero()[0])
        return head, query, key

    nan = torch.isnan(pattern)
    if bool(nan.any()):
        head, query, key = first(nan)
        raise CoilvisValueError(f"attention: NaN weight at layer {layer}, head {head}, query {query}, key {key}")
    outside = (pattern < 0) | (pattern > 1)
    if bool(outside.any()):
        head, query, key = first(outside)
        raise CoilvisValueError(
            f"attention: weight {float(pattern[head, query, key]):g} at layer {layer}, head {head}, query {query}, key {key} "
            "is outside [0, 1]; pass attention probabilities (after the softmax)"
        )
    later = torch.triu(pattern, diagonal=1) != 0
    if bool(later.any()):
        head, query, key = first(later)
        raise CoilvisValueError(
            f"attention: layer {layer}, head {head}, query {query} gives weight {float(pattern[head, query, key]):g} to key {key}, "
            "a later position; coilvis shows causal attention (each query attends to keys at or before it)"
        )
