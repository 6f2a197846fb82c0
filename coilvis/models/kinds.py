"""Which model family an object belongs to, told without importing any model library.

Every check reads the class hierarchy's module names only, so asking never loads
torch, transformers, transformer_lens or nnsight.

Example:
    >>> from coilvis.models.kinds import is_hf_model, is_transformer_lens
    >>> is_hf_model(object()), is_transformer_lens("gpt2")
    (False, False)
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_hf_model", "is_transformer_lens", "is_nnsight"]


def _top_packages(model: Any) -> set[str]:
    return {c.__module__.split(".")[0] for c in type(model).__mro__}


def is_hf_model(model: Any) -> bool:
    """Whether ``model`` is a transformers ``PreTrainedModel`` (without importing transformers)."""
    return any(c.__module__.startswith("transformers.") and c.__name__ == "PreTrainedModel" for c in type(model).__mro__)


def is_transformer_lens(model: Any) -> bool:
    """Whether ``model`` is a TransformerLens model (HookedTransformer or TransformerBridge)."""
    return "transformer_lens" in _top_packages(model)


def is_nnsight(model: Any) -> bool:
    """Whether ``model`` is an nnsight model (a ``LanguageModel`` wrapping a transformers model)."""
    return "nnsight" in _top_packages(model)
