"""Run a prompt through a model (or take raw logits) and keep a :class:`Record`.

>>> import numpy as np, coilvis
>>> logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
>>> rec = coilvis.from_logits(logits, tokens=[0, 2], vocab=["a", "b", "c"])
>>> rec.topk_ids[:, 0].tolist(), round(float(rec.next_prob[0]), 3)
([0, 2], 0.1)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from coilvis import stats
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.record import AttentionLinks, Record

__all__ = ["run", "from_logits"]


def _check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str, got {type(prompt).__name__}")
    if not prompt:
        raise CoilvisValueError("prompt: is empty; give at least one character of text")
    return prompt


def _check_flag(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """A bool (numpy's too), or ``None`` when ``optional``."""
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        want = "True, False or None" if optional else "True or False"
        raise CoilvisTypeError(f"{name}: expected {want}, got {type(value).__name__}")
    return bool(value)


def _check_truncate(truncate: Any) -> str | None:
    if truncate is None:
        return None
    if not isinstance(truncate, str):
        raise CoilvisTypeError(f"truncate: expected None, 'left' or 'right', got {type(truncate).__name__}")
    if truncate not in ("left", "right"):
        raise CoilvisValueError(f"truncate: expected None, 'left' or 'right', got {truncate!r}")
    return truncate


def _layer_spec(attention_layers: Any) -> tuple[int, ...] | None:
    """``attention_layers`` as a tuple of ints (one int is a list of one), types checked."""
    if attention_layers is None:
        return None
    value = attention_layers.tolist() if isinstance(attention_layers, (np.ndarray, torch.Tensor)) else attention_layers
    if isinstance(value, (np.integer, int)) and not isinstance(value, (bool, np.bool_)):
        return (int(value),)
    if isinstance(value, (str, bytes, bool, np.bool_, Mapping)) or not isinstance(value, Iterable):
        raise CoilvisTypeError(f"attention_layers: expected an int or a list of ints, got {type(value).__name__}")
    return tuple(check_int("attention_layers", x) for x in value)


def _resolve_layers(spec: tuple[int, ...] | None, model: Any) -> frozenset[int] | None:
    """Layer indices checked against the model's layer count, negative ones counted from the end."""
    if spec is None:
        return None
    from coilvis.logit_lens import n_layers_of

    try:
        n_layers = n_layers_of(model)
    except CoilvisValueError:  # the config does not say: count the attention modules
        from coilvis.models import hf

        n_layers = len(hf.attention_modules(model))
    for layer in spec:
        if not -n_layers <= layer < n_layers:
            raise CoilvisValueError(
                f"attention_layers: layer {layer} does not exist; the model has {n_layers} layers "
                f"(0..{n_layers - 1}, or -{n_layers}..-1 counting from the last)"
            )
    return frozenset(layer % n_layers for layer in spec)


def _fit_context(ids: np.ndarray, loaded: Any, truncate: str | None) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Refuse (or truncate, when asked) token ids longer than the model's context."""
    from coilvis.models import context_length

    limit = context_length(loaded.model, loaded.tokenizer)
    n = int(ids.shape[0])
    if limit is None or n <= limit[0]:
        return ids, None
    n_ctx, source = limit
    if truncate is None:
        raise CoilvisValueError(
            f"prompt: {n} tokens, but {loaded.name} takes at most {n_ctx} positions ({source}); shorten it, "
            f"or pass truncate='left' (keep the last {n_ctx} tokens) or truncate='right' (keep the first {n_ctx})"
        )
    kept = ids[-n_ctx:] if truncate == "left" else ids[:n_ctx]
    return kept, {"side": truncate, "dropped_tokens": n - n_ctx}


class _AttentionCollector:
    """Receives each layer's pattern during the forward pass and keeps pruned links."""

    def __init__(self, *, top_k: int, min_weight: float, layers: frozenset[int] | None) -> None:
        self.top_k = top_k
        self.min_weight = min_weight
        self.layers = layers
        self.parts: list[dict[str, np.ndarray]] = []
        self.n_heads = 0
        self.n_layers = 0

    def __call__(self, layer: int, pattern: torch.Tensor) -> None:
        self.n_layers = max(self.n_layers, layer + 1)
        self.n_heads = int(pattern.shape[0])
        if self.layers is not None and layer not in self.layers:
            return
        links = stats.prune_attention(pattern, top_k=self.top_k, min_weight=self.min_weight)
        links["layer"] = np.full(links["head"].shape[0], layer, dtype=np.int16)
        self.parts.append(links)

    def links(self, n_layers: int) -> AttentionLinks:
        cat = {k: np.concatenate([p[k] for p in self.parts]) if self.parts else np.empty(0) for k in ("layer", "head", "query", "key", "weight")}
        return AttentionLinks(**cat, n_layers=max(n_layers, self.n_layers), n_heads=self.n_heads, top_k=self.top_k, min_weight=self.min_weight)


def run(
    prompt: str,
    model: Any = None,
    *,
    tokenizer: Any = None,
    k: int = 10,
    attention: bool = False,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    attention_layers: int | Sequence[int] | None = None,
    lens: bool = False,
    lens_k: int = 5,
    lens_mid: bool = False,
    prepend_bos: bool | None = None,
    truncate: str | None = None,
    progress: bool | None = None,
) -> Record:
    """Run a prompt through a model once and keep what coilvis draws.

    One forward pass (batch of 1, no gradients, on whatever device and dtype the
    model has). Position i of the Record holds the model's prediction for token i + 1.
    Every argument is checked before the model is loaded or run.

    Args:
        prompt: the text (non-empty).
        model: ``None`` (the embedded default model), a model id or local folder, a
            transformers causal LM, a :class:`~coilvis.models.LoadedModel`, a
            TransformerLens ``HookedTransformer``/``TransformerBridge``, or an nnsight
            ``LanguageModel``.
        tokenizer: the model's tokenizer, when ``model`` is a transformers model
            object without a folder to load it from.
        k: top next tokens kept per position.
        attention: keep attention as pruned links (needs eager attention; a
            transformers model is switched to it for this pass and switched back).
        attention_top_k: keys kept per query, per head and for the mean/max over heads.
        attention_min_weight: drop links lighter than this, a weight in [0, 1].
        attention_layers: keep links of these layers only (default: all): one layer
            index or a list of them; negative indices count from the last layer, as in
            Python (-1 is the last). Needs ``attention=True``.
        lens: also compute logit-lens statistics for every layer (see
            :mod:`coilvis.logit_lens`).
        lens_k: top tokens kept per lens cell.
        lens_mid: also decode the residual after each layer's attention.
        prepend_bos: force a BOS token on or off (``None``: the tokenizer's default).
        truncate: what to do with a prompt longer than the model's context (see
            :func:`coilvis.models.context_length`): ``None`` refuses it, ``"left"`` drops
            the first tokens (keeps the last ones), ``"right"`` drops the last tokens.
            ``Record.prompt`` keeps the whole prompt; ``extra["truncated"]`` says how
            many tokens were dropped, and from which side.
        progress: show progress bars (default: on for long prompts).

    Returns:
        A :class:`~coilvis.record.Record`.

    Raises:
        CoilvisTypeError: an argument has the wrong type (the message names it), or
            ``model`` is not a model.
        CoilvisValueError: empty prompt, a prompt longer than the model's context,
            a bad ``k``, a layer the model does not have, a weight outside [0, 1].
        ModelNotFoundError / MissingDependencyError: see :func:`coilvis.load_model`.
    """
    from coilvis.models import is_transformer_lens, resolve_model

    prompt = _check_prompt(prompt)
    k = check_int("k", k, minimum=1)
    attention_top_k = check_int("attention_top_k", attention_top_k, minimum=1)
    attention_min_weight = check_float("attention_min_weight", attention_min_weight, minimum=0, maximum=1)
    lens_k = check_int("lens_k", lens_k, minimum=1)
    attention, lens, lens_mid = (_check_flag(n, v) for n, v in (("attention", attention), ("lens", lens), ("lens_mid", lens_mid)))
    prepend_bos = _check_flag("prepend_bos", prepend_bos, optional=True)
    progress = _check_flag("progress", progress, optional=True)
    layer_spec = _layer_spec(attention_layers)
    if layer_spec is not None and not attention:
        raise CoilvisValueError("attention_layers: given, but attention is off; pass attention=True to keep attention links")
    truncate = _check_truncate(truncate)
    loaded = resolve_model(model, tokenizer)
    layers = _resolve_layers(layer_spec, loaded.model) if attention else None
    tl = is_transformer_lens(loaded.model)
    t0 = time.perf_counter()
    if tl:
        from coilvis.models import tlens

        ids = tlens.encode(loaded.model, prompt, prepend_bos=prepend_bos)
        forward = tlens.forward
    else:
        from coilvis.models import hf

        ids = hf.encode(loaded.tokenizer, prompt, prepend_bos=prepend_bos)
        forward = hf.forward_for_record
    if ids.shape[0] == 0:
        raise CoilvisValueError("prompt: the tokenizer produced no tokens for this prompt")
    ids, truncated = _fit_context(ids, loaded, truncate)
    collector = _AttentionCollector(top_k=attention_top_k, min_weight=attention_min_weight, layers=layers) if attention else None
    logits, residuals, n_layers = forward(loaded.model, torch.as_tensor(ids), attention_hook=collector, residuals=lens, mid=lens_mid)
    if collector is not None and not collector.parts and collector.layers != set():
        raise CoilvisValueError(
            "attention: the model ran but returned no attention patterns (it uses a fused attention kernel); "
            "load it with attn_implementation='eager'"
        )
    next_ids = np.append(ids[1:], -1)
    d_vocab = int(logits.shape[-1])
    pos_stats = stats.position_stats(logits, k=min(k, d_vocab), next_ids=next_ids)
    forward_s = time.perf_counter() - t0
    lens_stats = None
    if lens:
        from coilvis.logit_lens import compute_lens

        show = progress if progress is not None else ids.shape[0] >= 256
        lens_stats = compute_lens(loaded.model, residuals, logits=logits, next_ids=next_ids, k=min(lens_k, d_vocab), progress=show)
    extra = {"adapter": "transformer_lens" if tl else "transformers", "forward_s": round(forward_s, 4)}
    if truncated is not None:
        extra["truncated"] = truncated
    links = collector.links(n_layers) if collector is not None else None
    return _model_record(loaded, ids, pos_stats, d_vocab=d_vocab, prompt=prompt, lens_stats=lens_stats, attention=links, extra=extra)


def _model_record(
    loaded: Any,
    ids: np.ndarray,
    pos_stats: dict[str, np.ndarray],
    *,
    d_vocab: int,
    prompt: str,
    lens_stats: Any,
    attention: AttentionLinks | None,
    extra: dict[str, Any],
) -> Record:
    """The Record of one model run: token texts of every id it mentions, device and dtype."""
    from coilvis.tokens import detect_scheme, vocab_texts

    ids_needed = set(ids.tolist()) | set(np.unique(pos_stats["topk_ids"]).tolist())
    if lens_stats is not None:
        ids_needed |= set(np.unique(lens_stats.topk_ids).tolist())
    scheme = detect_scheme(loaded.tokenizer)
    texts = vocab_texts(loaded.tokenizer, sorted(ids_needed), scheme=scheme)
    first_param = next(iter(loaded.model.parameters()), None)
    meta = {
        "device": str(first_param.device) if first_param is not None else "cpu",
        "dtype": str(first_param.dtype).replace("torch.", "") if first_param is not None else "",
        "adapter": extra["adapter"],
        "tokenizer_scheme": scheme,
    }
    return Record(
        token_ids=ids,
        tokens=tuple(texts[int(i)] for i in ids),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=loaded.name,
        prompt=prompt,
        attention=attention,
        lens=lens_stats,
        extra={**meta, **extra},
    )


def from_logits(
    logits: Any,
    *,
    tokens: Any = None,
    vocab: Any = None,
    k: int = 10,
    attention: Any = None,
    attention_top_k: int = 4,
    attention_min_weight: float = 0.01,
    model_name: str = "",
    prompt: str | None = None,
) -> Record:
    """Build a Record from raw logits, with no model at all.

    What a TransformerLens user holds works as it is:
    ``from_logits(model(text), tokens=model.to_tokens(text), vocab=model.tokenizer)``.
    Every argument is checked before any statistic is computed.

    Args:
        logits: (seq_len, d_vocab) logits, or (1, seq_len, d_vocab) (a batch of one);
            position i predicts token i + 1.
        tokens: (seq_len,) or (1, seq_len) input token ids (a list, numpy array or
            torch tensor), or their strings (a list, never one bare str). Strings get
            ids from ``vocab`` when it is a list or dict that holds them (a string that
            is the text of several ids is refused: pass ids then); else the
            actual-next-token statistics are unknown. ``None``: positions are unlabelled.
        vocab: a tokenizer, a list of token strings (index = id) or a dict id -> string.
        k: top next tokens kept per position (at most d_vocab; larger values keep all).
        attention: optional (n_layers, n_heads, seq_len, seq_len) or
            (n_heads, seq_len, seq_len) causal attention pattern: probabilities in
            [0, 1], zero for keys after the query. Pruned to links.
        attention_top_k: keys kept per query and head.
        attention_min_weight: drop links lighter than this, a weight in [0, 1].
        model_name: a name to show.
        prompt: the prompt text, if any.

    Returns:
        A :class:`~coilvis.record.Record`.

    Raises:
        CoilvisTypeError: an argument has the wrong type (the message names it).
        CoilvisValueError: shapes that do not fit, a batch of more than one, NaN
            logits or weights, attention weights outside [0, 1] or to later positions.
    """
    from coilvis.table import resolve_vocab

    t = _check_logits(logits)
    seq_len, d_vocab = int(t.shape[0]), int(t.shape[1])
    k = min(check_int("k", k, minimum=1), d_vocab)  # as in run(): the default k=10 fits any vocabulary
    attention_top_k = check_int("attention_top_k", attention_top_k, minimum=1)
    attention_min_weight = check_float("attention_min_weight", attention_min_weight, minimum=0, maximum=1)
    if not isinstance(model_name, str):
        raise CoilvisTypeError(f"model_name: expected a str, got {type(model_name).__name__}")
    if prompt is not None and not isinstance(prompt, str):
        raise CoilvisTypeError(f"prompt: expected a str or None, got {type(prompt).__name__}")
    lookup = resolve_vocab(vocab, d_vocab, name="vocab")
    ids, token_texts = _token_ids(tokens, seq_len=seq_len, d_vocab=d_vocab, vocab=vocab)
    pattern = _check_attention(attention, seq_len) if attention is not None else None
    next_ids = np.append(ids[1:], -1)
    pos_stats = stats.position_stats(t, k=k, next_ids=next_ids)
    needed = set(np.unique(pos_stats["topk_ids"]).tolist()) | {int(i) for i in ids if i >= 0}
    texts = lookup(sorted(needed))
    if token_texts is None:
        token_texts = [texts[int(i)] if i >= 0 else f"[{p}]" for p, i in enumerate(ids)]
    links = None
    if pattern is not None:
        collector = _AttentionCollector(top_k=attention_top_k, min_weight=attention_min_weight, layers=None)
        for layer in range(pattern.shape[0]):
            collector(layer, pattern[layer])
        links = collector.links(int(pattern.shape[0]))
    return Record(
        token_ids=ids,
        tokens=tuple(token_texts),
        **pos_stats,
        vocab=texts,
        d_vocab=d_vocab,
        model_name=model_name,
        prompt=prompt,
        attention=links,
        extra={"adapter": "from_logits"},
    )


def _check_logits(logits: Any) -> torch.Tensor:
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


def _token_ids(tokens: Any, *, seq_len: int, d_vocab: int, vocab: Any) -> tuple[np.ndarray, list[str] | None]:
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


def _check_attention(attention: Any, seq_len: int) -> torch.Tensor:
    """A (n_layers, n_heads, seq_len, seq_len) causal pattern, checked layer by layer."""
    if isinstance(attention, torch.Tensor):
        pat = attention.detach()
    elif isinstance(attention, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(attention)
        except ValueError:
            raise CoilvisValueError("attention: ragged nested lists (rows of different lengths); expected a dense pattern") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise CoilvisTypeError(f"attention: expected numbers, got an array of dtype {arr.dtype}")
        pat = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        hint = " (to choose which heads a view shows, pass attention= to coilvis.coil or coilvis.page)" if isinstance(attention, str) else ""
        raise CoilvisTypeError(
            f"attention: expected a pattern (n_layers, n_heads, seq_len, seq_len) as a tensor or array, got {type(attention).__name__}{hint}"
        )
    if pat.is_complex():
        raise CoilvisTypeError(f"attention: expected real numbers, got dtype {pat.dtype}")
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
