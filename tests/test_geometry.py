"""Tests of the coilvis.geometry package: its public names, and one job a module.

The modules have their own test files (tests/test_geometry_<module>.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from coilvis import geometry as geo

PACKAGE = Path(geo.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.glob("*.py"))


def test_the_package_names_every_public_name() -> None:
    for name in geo.__all__:
        assert getattr(geo, name) is not None, name
    for name in ("spiral_layout", "circle_layout", "coil_layout", "unwound_layout", "arc_curves", "Layout"):
        assert name in geo.__all__
    assert geo.coil_layout is geo.layout.coil_layout and geo.Arcs is geo.arcs.Arcs


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_each_module_says_its_job_and_keeps_functions_short(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    doc = ast.get_docstring(tree)
    assert doc and doc.splitlines()[0].strip(), f"{path.name}: no first line saying its job"
    assert len(source.splitlines()) <= 600, path.name
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            lines = source.splitlines()[body[0].lineno - 1 : node.end_lineno]
            code = [s for s in lines if s.strip() and not s.strip().startswith("#")]
            assert len(code) <= 80, f"{path.name}: {node.name} has {len(code)} lines of code"
