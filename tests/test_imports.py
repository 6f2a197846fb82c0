"""Imports point one way (see the design table): each module is held to what it may import,
and ``import coilvis`` loads no heavy library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coilvis"

# module (relative path without .py, or a folder) -> top-level packages it must not import
FORBIDDEN = {
    "geometry": {"torch", "bokeh", "transformers", "pandas", "transformer_lens", "nnsight"},
    "tokens": {"torch", "bokeh", "transformers", "numpy", "pandas", "transformer_lens"},
    "record": {"torch", "bokeh", "transformers", "transformer_lens"},
    "compare": {"torch", "bokeh", "transformers", "transformer_lens"},
    "stats": {"bokeh", "transformers", "transformer_lens", "nnsight"},
    "table": {"bokeh", "transformers", "transformer_lens"},
    "views": {"torch", "transformers", "transformer_lens", "nnsight"},
}
HEAVY = {"transformers", "transformer_lens", "nnsight"}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _rule(path: Path) -> set[str] | None:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return FORBIDDEN.get(parts[0])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_the_import_table(path: Path) -> None:
    forbidden = _rule(path)
    imported = _imports(path, top_level_only=False)
    if forbidden is not None:
        assert not imported & forbidden, f"{path.name} imports {sorted(imported & forbidden)}"
    # heavy libraries only inside functions, never at module level
    assert not _imports(path, top_level_only=True) & HEAVY, path.name


def test_import_coilvis_loads_no_heavy_library() -> None:
    code = "import sys, coilvis; print(sorted(m for m in ('transformers', 'transformer_lens', 'nnsight', 'torch', 'bokeh', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_explicit() -> None:
    import coilvis

    for name in coilvis.__all__:
        assert getattr(coilvis, name) is not None, name
    assert callable(coilvis.lens) and callable(coilvis.coil) and callable(coilvis.page)
