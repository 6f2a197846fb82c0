"""coilvis: make a language model's logits readable.

Quick start (the embedded default model):

>>> import coilvis
>>> record = coilvis.run("The Eiffel Tower is located in the city of")  # doctest: +MODEL
>>> record.table().token.iloc[0]        # record.table(): top-10 next tokens at the last position
' Paris'
>>> coilvis.save(coilvis.page(record), "eiffel.html").name
'eiffel.html'

Heavy libraries (transformers, transformer_lens, bokeh's plotting) load only when a
function that needs them is first called, so ``import coilvis`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from coilvis._version import __version__

__all__ = [
    "__version__",
    # data
    "Record",
    "AttentionLinks",
    "LensStats",
    "Comparison",
    "Tree",
    # models and runs
    "load_model",
    "run",
    "run_many",
    "from_logits",
    "from_cache",
    "compare",
    "tree",
    "explore",
    # the table
    "logits_table",
    # views
    "coil",
    "lens",
    "page",
    "sunburst",
    "flame",
    "save",
    "show",
    # errors
    "CoilvisError",
]

# public name -> module that defines it (imported on first access)
_LAZY = {
    "Record": "coilvis.record",
    "AttentionLinks": "coilvis.record",
    "LensStats": "coilvis.record",
    "Comparison": "coilvis.comparison",
    "Tree": "coilvis.continuations",
    "tree": "coilvis.runner.tree",
    "compare": "coilvis.runner",
    "explore": "coilvis.serve",
    "load_model": "coilvis.models",
    "run": "coilvis.runner",
    "run_many": "coilvis.runner",
    "from_logits": "coilvis.runner",
    "from_cache": "coilvis.runner",
    "from_logprobs": "coilvis.logprobs",
    "run_served": "coilvis.served",
    "logits_table": "coilvis.table",
    "coil": "coilvis.views.coil",
    "lens": "coilvis.views.lens",
    "page": "coilvis.views.page",
    "sunburst": "coilvis.views.sunburst",
    "flame": "coilvis.views.flame",
    "show": "coilvis.views.output",
    "CoilvisError": "coilvis.errors",
}


def save(view: Any, path: Any, **options: Any) -> Any:
    """Write a view as a standalone HTML page or a PNG image; see :func:`coilvis.views.output.save`.

    Defined here rather than loaded on first access: nnsight gives every object a
    ``save`` attribute, which would hide a lazily loaded ``coilvis.save``.
    """
    from coilvis.views.output import save as save_view

    return save_view(view, path, **options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'coilvis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
