"""Forward passes of a continuation tree: every node at one depth in one batch, reusing the prompt's KV cache where the model allows.

:func:`coilvis.tree` needs the model's next-token distribution after the prompt and
after every path it expands. It asks a :class:`TreePasses` for them one depth at a
time; each depth is one batch (cut in chunks only when it is large). Two strategies:

* **Tree attention** (:class:`CachedPasses`, transformers models with eager or sdpa
  attention): the prompt runs once and its KV cache is kept. Each depth's tokens then
  run as *one* sequence appended to the cache, every token at its own depth's position
  (``position_ids``) and seeing, through a 4-D attention mask, the prompt, its own
  ancestors and itself, never its cousins. So a tree of ``n`` expanded nodes costs one
  prompt pass plus ``n`` token positions, and the prompt's keys and values are computed
  and stored once. Whether a model honours the mask and the positions is checked, not
  assumed: at the first depth with two or more nodes, the last node's distribution is
  compared with an ordinary pass of its path on a copy of the prompt's cache; when
  they differ (a model that ignores ``position_ids``, such as ALiBi ones, or a sliding
  window cache), the tree falls back to the next strategy from that depth on.
* **Whole paths** (:class:`BatchPasses`: TransformerLens models, and the fallback):
  no KV cache; each depth's paths run as a batch of ``prompt + path`` rows, all of one
  length, so no padding is needed. Correct for any model, slower for long prompts.

Rows of one depth always have the same length, so no strategy pads.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from coilvis.models.kinds import is_hf_model, is_transformer_lens

__all__ = ["BatchPasses", "CachedPasses", "TreePasses", "make_passes"]

#: Tokens fed to the model in one tree-attention forward pass (one chunk of a depth).
TREE_CHUNK_TOKENS = 256
#: Token positions per forward pass when whole paths run as a batch (logits kept at the last position only).
BATCH_TOKENS = 4096
#: Logit entries per forward pass of a model that returns every position's logits (TransformerLens).
BATCH_LOGIT_ENTRIES = 2**25
#: Tokens compared by the check of tree attention: the ordinary pass's most likely ones.
CHECK_TOKENS = 64
#: Largest difference of log-probabilities (nats) between tree attention and an ordinary
#: pass that still counts as equal, by the model's dtype: rounding differs between the
#: two (other matrix shapes), far more in 16-bit floats; a model that ignores the mask or
#: the positions differs by far more than rounding in float32.
CHECK_TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6}
CHECK_TOLERANCE_16BIT = 0.1


class TreePasses:
    """What :func:`coilvis.tree` asks of a model: the prompt's next-token logits, then each depth's.

    Attributes:
        strategy: ``"tree_attention"`` or ``"batches"`` (the one that ran the last depth).
        n_forward: forward passes run so far.
    """

    strategy = "batches"

    def __init__(self, model: Any, prompt_ids: np.ndarray) -> None:
        self.model = model
        self.prompt_ids = np.asarray(prompt_ids, dtype=np.int64)
        self.n_forward = 0
        self.device = _device_of(model)

    def prompt_logits(self) -> torch.Tensor:
        """(d_vocab,) logits after the prompt."""
        raise NotImplementedError

    def level_logits(self, paths: np.ndarray, parents: np.ndarray) -> Iterator[tuple[int, torch.Tensor]]:
        """The logits after each path of one depth, chunk by chunk.

        Args:
            paths: (n, depth) int64 token ids after the prompt, one row a node, in node order.
            parents: (n,) int64 row of each node's parent in the previous call's ``paths``
                (-1 at depth 1, whose parent is the prompt).

        Yields:
            ``(start, logits)``: logits (n_chunk, d_vocab) of rows ``start:start + n_chunk``.
        """
        raise NotImplementedError


class BatchPasses(TreePasses):
    """Each depth's paths as a batch of whole ``prompt + path`` rows; no KV cache."""

    strategy = "batches"

    def __init__(self, model: Any, prompt_ids: np.ndarray, *, d_vocab: int | None = None) -> None:
        super().__init__(model, prompt_ids)
        self.tlens = is_transformer_lens(model)
        self.keep = None if self.tlens else _keep_kwarg(model)
        self.d_vocab = d_vocab

    def _last_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(rows, d_vocab) logits at the last position of each row of ``ids`` (rows, seq_len)."""
        self.n_forward += 1
        with torch.inference_mode():
            if self.tlens:
                return self.model(ids.to(self.device), return_type="logits")[:, -1]
            kwargs: dict[str, Any] = {"use_cache": False}
            if self.keep is not None:
                kwargs[self.keep] = 1
            return self.model(input_ids=ids.to(self.device), **kwargs).logits[:, -1]

    def prompt_logits(self) -> torch.Tensor:
        logits = self._last_logits(torch.as_tensor(self.prompt_ids).reshape(1, -1))[0]
        self.d_vocab = int(logits.shape[-1])
        return logits

    def level_logits(self, paths: np.ndarray, parents: np.ndarray) -> Iterator[tuple[int, torch.Tensor]]:
        n, depth = paths.shape
        length = self.prompt_ids.shape[0] + depth
        budget = BATCH_TOKENS if not self.tlens else max(length, BATCH_LOGIT_ENTRIES // max(1, self.d_vocab or 1))
        rows = max(1, budget // length)
        prompt = torch.as_tensor(self.prompt_ids)
        for start in range(0, n, rows):
            chunk = torch.as_tensor(paths[start : start + rows])
            ids = torch.cat([prompt.expand(chunk.shape[0], -1), chunk], dim=1)
            yield start, self._last_logits(ids)


class CachedPasses(TreePasses):
    """Tree attention on the prompt's KV cache: one sequence per depth, a 4-D mask, per-depth positions."""

    strategy = "tree_attention"

    def __init__(self, model: Any, prompt_ids: np.ndarray) -> None:
        super().__init__(model, prompt_ids)
        params = inspect.signature(model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self.keep = _keep_kwarg(model)
        self.dtype = next(model.parameters()).dtype
        self.cache: Any = None
        self.reference_cache: Any = None  # a copy of the prompt's cache, until the mask has been checked
        self.checked = False
        self.kv_len = 0
        self.slots = np.zeros((1, 0), dtype=np.int64)  # per node of the last depth: cache slots of its path

    def prompt_logits(self) -> torch.Tensor:
        n = self.prompt_ids.shape[0]
        kwargs: dict[str, Any] = {"use_cache": True}
        if self.keep is not None:
            kwargs[self.keep] = 1
        self.n_forward += 1
        with torch.inference_mode():
            out = self.model(input_ids=torch.as_tensor(self.prompt_ids).reshape(1, -1).to(self.device), **kwargs)
        self.cache = _cache_of(out)
        self.kv_len = n
        self.reference_cache = copy.deepcopy(self.cache)
        return out.logits[0, -1]

    def usable(self) -> bool:
        """Whether the prompt's cache can take a tree: no sliding-window or recurrent layer."""
        layers = getattr(self.cache, "layers", None)
        if layers is None:  # an older transformers: its config says whether a window applies
            config = getattr(self.model, "config", None)
            return getattr(config, "sliding_window", None) is None or getattr(config, "use_sliding_window", True) is False
        return all(type(layer).__name__ == "DynamicLayer" for layer in layers)

    def level_logits(self, paths: np.ndarray, parents: np.ndarray) -> Iterator[tuple[int, torch.Tensor]]:
        n, depth = paths.shape
        prompt_len = self.prompt_ids.shape[0]
        ancestors = self.slots[parents] if depth > 1 else np.zeros((n, 0), dtype=np.int64)
        new_slots = np.empty((n, depth), dtype=np.int64)
        new_slots[:, :-1] = ancestors
        for start in range(0, n, TREE_CHUNK_TOKENS):
            stop = min(n, start + TREE_CHUNK_TOKENS)
            rows = stop - start
            kv_len = self.kv_len + rows
            mask = torch.full((1, 1, rows, kv_len), torch.finfo(self.dtype).min, dtype=self.dtype)
            mask[..., :prompt_len] = 0
            own = np.arange(self.kv_len, kv_len)
            new_slots[start:stop, -1] = own
            cols = torch.as_tensor(new_slots[start:stop])
            mask[0, 0, torch.arange(rows).unsqueeze(1), cols] = 0
            position = torch.full((1, rows), prompt_len + depth - 1, dtype=torch.long)
            kwargs: dict[str, Any] = {self.cache_kwarg: self.cache, "use_cache": True}
            self.n_forward += 1
            with torch.inference_mode():
                out = self.model(
                    input_ids=torch.as_tensor(paths[start:stop, -1]).reshape(1, -1).to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=position.to(self.device),
                    **kwargs,
                )
            self.cache = _cache_of(out)
            self.kv_len = kv_len
            logits = out.logits[0]
            if not self.checked and rows >= 2:
                self._check(paths[stop - 1], logits[-1])
            yield start, logits
        self.slots = new_slots

    def _check(self, path: np.ndarray, logits: torch.Tensor) -> None:
        """Compare one node's tree-attention logits with an ordinary pass of its path on the prompt's cache."""
        kwargs: dict[str, Any] = {self.cache_kwarg: self.reference_cache, "use_cache": True}
        if self.keep is not None:
            kwargs[self.keep] = 1
        self.n_forward += 1
        with torch.inference_mode():
            want = self.model(input_ids=torch.as_tensor(path).reshape(1, -1).to(self.device), **kwargs).logits[0, -1]
        got = torch.log_softmax(logits.float(), dim=-1)
        want = torch.log_softmax(want.float(), dim=-1)
        top = want.topk(min(CHECK_TOKENS, want.shape[-1])).indices
        difference = float((got[top] - want[top]).abs().max())
        self.reference_cache = None
        self.checked = True
        if difference > CHECK_TOLERANCE.get(self.dtype, CHECK_TOLERANCE_16BIT):
            raise MaskNotHonoured(difference)


class MaskNotHonoured(Exception):
    """Tree attention gave other distributions than an ordinary pass: the model ignores the 4-D mask or the positions."""


def make_passes(model: Any, prompt_ids: np.ndarray, *, cache: bool = True) -> TreePasses:
    """The strategy for a model: tree attention for transformers models with eager or sdpa attention, else whole paths."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if cache and is_hf_model(model) and implementation in ("eager", "sdpa"):
        return CachedPasses(model, prompt_ids)
    return BatchPasses(model, prompt_ids)


def _keep_kwarg(model: Any) -> str | None:
    """The keyword that keeps only the last position's logits (``logits_to_keep``; older transformers ``num_logits_to_keep``)."""
    params = inspect.signature(model.forward).parameters
    return next((name for name in ("logits_to_keep", "num_logits_to_keep") if name in params), None)


def _cache_of(out: Any) -> Any:
    """The KV cache a forward pass returned, as a transformers ``Cache`` (older versions may return tuples)."""
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    if isinstance(cache, tuple):  # pragma: no cover - transformers < 4.47 with a legacy cache
        from transformers import DynamicCache

        cache = DynamicCache.from_legacy_cache(cache)
    return cache


def _device_of(model: Any) -> torch.device:
    device = getattr(getattr(model, "cfg", None), "device", None)
    if device is not None:
        return torch.device(device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")
