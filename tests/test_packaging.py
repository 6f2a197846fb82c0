"""Packaging: ``pip install coilvis`` (numpy, pandas, bokeh, tqdm) loads and draws a saved
record with no torch installed; models come with the ``models`` extra; the gallery's
prompts ship inside the package.

The fast tests read ``pyproject.toml`` and draw a record in a Python whose import system
refuses torch and the model libraries. The slow test builds the wheel, installs it in a
fresh virtual environment without torch (dependencies from pip's configured index and its
cache), draws the record there, and checks the pages are the bytes the development
environment draws.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

try:
    from test_record import make_record
except ImportError:  # pragma: no cover - run from the repository root as a package
    from tests.test_record import make_record

ROOT = Path(__file__).resolve().parents[1]
#: Libraries that drawing a saved record must not need.
MODEL_LIBRARIES = ("torch", "transformers", "transformer_lens", "nnsight", "accelerate", "safetensors", "gguf")
#: What ``pip install coilvis`` installs, besides coilvis.
CORE = ("numpy", "pandas", "bokeh", "tqdm")

#: Refuses the model libraries at import time, as if they were not installed.
BLOCKER = f"""
import importlib.abc, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {MODEL_LIBRARIES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed here)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""

#: Draws ``r.coil`` of the current folder every way a user can, without a model.
DRAW = """
import json, sys
from pathlib import Path

import coilvis
from coilvis.cli import main
from coilvis.gallery import load_examples

record = coilvis.Record.load("r.coil")
table = record.table(pos=None, k=3)
pages = {
    "coil.html": coilvis.coil(record, attention="mean", animate=True),
    "lens.html": coilvis.lens(record),
    "page.html": coilvis.page(record),
}
Path("out").mkdir(exist_ok=True)
for name, view in pages.items():
    coilvis.save(view, Path("out") / name)
cli = {
    "cli_coil.html": ["coil", "--record", "r.coil", "-o", "out/cli_coil.html"],
    "cli_lens.html": ["lens", "--record", "r.coil", "-o", "out/cli_lens.html"],
    "cli_page.html": ["--record", "r.coil", "-o", "out/cli_page.html"],
    "table": ["table", "--record", "r.coil", "--k", "3"],
}
status = {name: main(argv) for name, argv in cli.items()}
examples = [example.name for example in load_examples()]
print(json.dumps({
    "coilvis": coilvis.__file__,
    "rows": len(table),
    "status": status,
    "examples": examples,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in %r),
}))
"""


def _draw_script() -> str:
    return textwrap.dedent(DRAW) % (MODEL_LIBRARIES,)


def _save_record(folder: Path) -> Path:
    """A record with attention links and a lens, made by ``from_logits`` (no model)."""
    record = make_record(seq_len=12, d_vocab=60)
    assert record.attention is not None and record.lens is not None
    folder.mkdir(parents=True, exist_ok=True)
    return record.save(folder / "r.coil")


def _clean_env() -> dict[str, str]:
    """This environment without what would let another Python see this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(argv: list[str], cwd: Path, **options: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, cwd=cwd, env=_clean_env(), capture_output=True, text=True, **options)
    assert out.returncode == 0, f"{' '.join(map(str, argv))} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _draw(python: Path | str, folder: Path, *, block: bool) -> dict[str, Any]:
    """Run :data:`DRAW` in ``folder`` with ``python``; return what it printed."""
    script = folder / "draw.py"
    script.write_text((BLOCKER if block else "") + _draw_script(), encoding="utf-8")
    out = _run([str(python), str(script)], folder, timeout=600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [], f"drawing imported {result['loaded']}"
    assert 12 * 3 <= result["rows"] <= 12 * 4 - 1  # k rows a position, + the next token's when outside them
    assert result["status"] == {"cli_coil.html": 0, "cli_lens.html": 0, "cli_page.html": 0, "table": 0}
    assert {"eiffel", "ioi", "induction"} <= set(result["examples"])
    for name in ("coil.html", "lens.html", "page.html", "cli_coil.html", "cli_lens.html", "cli_page.html"):
        page = (folder / "out" / name).read_text(encoding="utf-8")
        assert page.lstrip().lower().startswith("<!doctype html>") and "Bokeh" in page, name
    return result


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement_names(requirements: list[str]) -> set[str]:
    return {req.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("~")[0].strip().lower() for req in requirements}


# ---------------------------------------------------------------------------- metadata


def test_core_dependencies_are_the_drawing_libraries_only() -> None:
    project = _pyproject()["project"]
    assert _requirement_names(project["dependencies"]) == set(CORE)
    models = _requirement_names(project["optional-dependencies"]["models"])
    assert {"torch", "transformers", "gguf", "accelerate", "safetensors"} <= models


def test_package_data_ships_the_prompts_and_the_scripts() -> None:
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["coilvis"]
    package = ROOT / "coilvis"
    shipped = {path.relative_to(package).as_posix() for pattern in patterns for path in package.glob(pattern)}
    assert {"gallery_prompts.json", "py.typed", "views/unwind.js"} <= shipped
    assert not (ROOT / "gallery" / "prompts.json").exists(), "the prompts live in the package"


def test_the_default_prompts_are_package_data() -> None:
    from coilvis.gallery import default_prompts_path, load_examples

    path = default_prompts_path()
    assert path == ROOT / "coilvis" / "gallery_prompts.json"
    assert len(load_examples()) == len(load_examples(path)) >= 10


def test_makefile_installs_torch_first_and_pinned() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8")
    torch_at = recipe.index("pip install -q torch==")
    assert torch_at < recipe.index('pip install -q -e ".[models,tl,nnsight,test')
    assert torch_at < recipe.index('pip install -q -e ".[models,tl3,test')


# ---------------------------------------------------------------------------- drawing without torch


def test_a_saved_record_draws_where_torch_cannot_be_imported(tmp_path: Path) -> None:
    _save_record(tmp_path)
    _draw(sys.executable, tmp_path, block=True)


# ---------------------------------------------------------------------------- the wheel


def _build_wheel(tmp_path: Path) -> Path:
    """Build the wheel from a copy of the sources (nothing written into the checkout)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "coilvis", source / "coilvis", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(dist)], tmp_path, timeout=300)
    (wheel,) = dist.glob("coilvis-*.whl")
    return wheel


def _installed_versions(names: tuple[str, ...]) -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in names]


@pytest.mark.slow
def test_the_wheel_draws_a_record_in_a_fresh_environment_without_torch(tmp_path: Path) -> None:
    """Wheel -> fresh venv (no system site-packages) -> ``pip install coilvis`` without
    torch -> draw a saved record with the API and the CLI; the pages equal this
    environment's. Takes about a minute, most of it installing pandas and bokeh (pip's
    cache keeps the downloads between runs)."""
    started = time.perf_counter()
    wheel = _build_wheel(tmp_path)
    members = set(zipfile.ZipFile(wheel).namelist())
    assert {"coilvis/gallery_prompts.json", "coilvis/views/unwind.js", "coilvis/py.typed", "coilvis/frames.py"} <= members
    assert not any(m.startswith(("tests/", "gallery/", "benchmarks/")) for m in members)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, timeout=120)
    python = venv / "bin" / "python"
    # this environment's pip installs into the new one: no pip bootstrap, the same cache;
    # the drawing libraries pinned to this environment's versions, so the pages compare
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile", "--only-binary", ":all:"]
    _run([*pip, str(wheel), *_installed_versions(CORE)], tmp_path, timeout=600)
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "list", "--format", "json"], tmp_path, timeout=120)
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert {"coilvis", *CORE} <= names and not names & set(MODEL_LIBRARIES), sorted(names)
    refused = subprocess.run([str(python), "-c", "import torch"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True)
    assert refused.returncode != 0 and "No module named 'torch'" in refused.stderr

    fresh, here = tmp_path / "fresh", tmp_path / "here"
    record = _save_record(fresh)
    here.mkdir()
    shutil.copy2(record, here / "r.coil")
    result = _draw(python, fresh, block=False)
    assert Path(result["coilvis"]).is_relative_to(venv), result["coilvis"]
    _draw(sys.executable, here, block=False)
    for name in ("coil.html", "lens.html", "page.html"):
        assert (fresh / "out" / name).read_bytes() == (here / "out" / name).read_bytes(), name

    coilvis_cli = venv / "bin" / "coilvis"
    _run([str(coilvis_cli), "coil", "--record", "r.coil", "-o", "x.html"], fresh, timeout=300)
    assert (fresh / "x.html").read_bytes() == (fresh / "out" / "cli_coil.html").read_bytes()
    assert "--prompts" in _run([str(coilvis_cli), "gallery", "--help"], fresh, timeout=120).stdout
    table = _run([str(coilvis_cli), "table", "--record", "r.coil"], fresh, timeout=120).stdout.splitlines()
    assert table[0].split()[:2] == ["token_id", "token"] and len(table) >= 1 + 5
    print(f"wheel, fresh environment and drawing: {time.perf_counter() - started:.0f} s")
