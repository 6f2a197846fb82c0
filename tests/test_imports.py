"""Imports point one way: every coilvis module is held to the layer table of docs/architecture.md.

The rule is read from the source with :mod:`ast`, module-level and function-level imports
alike (a lazy import is still a dependency); only imports under ``if TYPE_CHECKING:`` are
exempt. A module may import modules of its own layer or of a lower one, never of a higher
one; the graph of coilvis modules has no cycle; some layers may not import some libraries
at all. Modules are placed by their name's first part, so a module added to a package
(``views/coil/labels.py``, ``geometry/arcs.py``, ``models/anatomy.py``) falls into place;
a module with a new first part fails until the table names its layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coilvis"

#: The layers, lowest first: (layer, first parts of module names relative to ``coilvis``).
#: ``""`` is the package itself: the facade (``import coilvis``), which reaches the
#: layers below it lazily and is imported only by the apps.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("_version", "errors", "options", "files")),
    ("data", ("tokens", "record", "record_format", "frames", "comparison", "comparison_frames", "comparison_format", "continuations", "continuations_format", "logprobs", "logprobs_formats", "geometry")),
    ("maths", ("stats", "topk_bounds", "table", "lens_kernel", "pair_fused", "pair_kernel")),
    ("models", ("models",)),
    ("runs", ("logit_lens", "lens_pair", "runner", "tree", "served")),
    ("views", ("views",)),
    ("facade", ("",)),
    ("apps", ("cli", "cli_compare", "cli_tree", "gallery", "serve")),
)
LAYER_OF = {first: rank for rank, (_, firsts) in enumerate(LAYERS) for first in firsts}
LAYER_NAMES = [name for name, _ in LAYERS]

#: Libraries a module may not import anywhere (module level or in a function), by the
#: first part of its name. ``STDLIB`` stands for "the standard library only".
STDLIB = "stdlib"
ONLY: dict[str, set[str]] = {
    "_version": {STDLIB},
    "errors": {STDLIB},
    "options": {STDLIB},
    "files": {STDLIB},
    "geometry": {STDLIB, "numpy"},
}
FORBIDDEN: dict[str, set[str]] = {
    "tokens": {"numpy", "pandas", "torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "record": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "record_format": {"torch", "bokeh", "pandas", "transformers", "transformer_lens", "nnsight"},
    "frames": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "comparison": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "comparison_frames": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "comparison_format": {"torch", "bokeh", "pandas", "transformers", "transformer_lens", "nnsight"},
    "continuations": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "continuations_format": {"torch", "bokeh", "pandas", "transformers", "transformer_lens", "nnsight"},
    "logprobs": {"torch", "bokeh", "pandas", "transformers", "transformer_lens", "nnsight", "openai"},
    "logprobs_formats": {"torch", "bokeh", "pandas", "transformers", "transformer_lens", "nnsight", "openai"},
    "served": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "stats": {"bokeh", "transformers", "transformer_lens", "nnsight"},
    "topk_bounds": {"torch", "bokeh", "transformers", "transformer_lens", "nnsight"},
    "table": {"bokeh", "transformers", "transformer_lens", "nnsight"},
    "lens_kernel": {"bokeh", "transformers", "transformer_lens", "nnsight"},
    "pair_kernel": {"bokeh", "transformers", "transformer_lens", "nnsight"},
    "pair_fused": {"bokeh", "pandas", "transformers", "transformer_lens", "nnsight"},
    "views": {"torch", "transformers", "transformer_lens", "nnsight"},
}
#: Libraries that only ever load inside the function that needs them.
HEAVY = {"transformers", "transformer_lens", "nnsight", "openai", "numba"}
#: Modules that draw a saved record: nothing they import, directly or not, imports torch.
DRAWING = ("record", "frames", "record_format", "comparison", "comparison_frames", "comparison_format", "continuations", "continuations_format", "logprobs", "logprobs_formats", "views", "geometry", "tokens", "files", "errors", "options")


# ---------------------------------------------------------------------------- reading imports


def module_name(path: Path) -> str:
    """``coilvis/views/coil/figure.py`` -> ``coilvis.views.coil.figure`` (a package: its folder)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def first_part(module: str) -> str:
    """The name's first part below ``coilvis`` (``""`` for the package itself)."""
    return module.split(".")[1] if "." in module else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST, *, in_function: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement below ``node`` with whether it runs inside a function,
    skipping the body of ``if TYPE_CHECKING:`` (its ``else`` still counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]), in_function=in_function)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _import_nodes(child, in_function=inner)


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import`` (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> list[tuple[str, bool]]:
    """``(imported module, inside a function)`` for every import of ``module``.

    ``from coilvis.x import y`` names ``coilvis.x.y`` when that is a module, else ``coilvis.x``.
    """
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = []
    for node, in_function in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, in_function) for alias in node.names)
            continue
        source = _absolute(module, node)
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            found.append((sub if sub in MODULES else source, in_function))
    return found


def internal_imports(module: str) -> set[str]:
    """The coilvis modules ``module`` imports (anywhere in it), without itself."""
    return {name for name, _ in imports_of(module) if name in MODULES and name != module}


def libraries_of(module: str, *, module_level_only: bool = False) -> set[str]:
    """Top-level names of the libraries (not coilvis) ``module`` imports."""
    return {
        name.split(".")[0]
        for name, in_function in imports_of(module)
        if name.split(".")[0] != "coilvis" and not (module_level_only and in_function)
    }


GRAPH = {module: internal_imports(module) for module in MODULES}


def layer(module: str) -> int:
    first = first_part(module)
    assert first in LAYER_OF, f"{module}: not in the layer table; add {first!r} to LAYERS in {Path(__file__).name} and to docs/architecture.md"
    return LAYER_OF[first]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None`` (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def reachable(start: str, graph: dict[str, set[str]]) -> dict[str, str]:
    """Every module reachable from ``start``, mapped to the module that imports it first."""
    seen: dict[str, str] = {start: ""}
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in seen:
                seen[nxt] = node
                todo.append(nxt)
    return seen


def chain(seen: dict[str, str], end: str) -> str:
    links = [end]
    while seen[links[-1]]:
        links.append(seen[links[-1]])
    return " -> ".join(reversed(links))


# ---------------------------------------------------------------------------- the checker's own cases


@pytest.mark.parametrize(
    "graph, cycle",
    [
        pytest.param({"a": {"b"}, "b": {"c"}, "c": set()}, None, id="chain"),
        pytest.param({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}, None, id="diamond"),
        pytest.param({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"], id="two"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"], id="tail-then-loop"),
        pytest.param({"a": {"a"}}, ["a", "a"], id="self"),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_imports_are_read_everywhere_but_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\nimport numpy\n"
        "if TYPE_CHECKING:\n    import torch\nelse:\n    import json\n"
        "def f():\n    import pandas\n    if TYPE_CHECKING:\n        import bokeh\n"
        "class C:\n    def g(self):\n        from coilvis.record import Record\n"
    )
    tree = ast.parse(source)
    found = {(n.names[0].name if isinstance(n, ast.Import) else n.module, inside) for n, inside in _import_nodes(tree)}
    assert found == {("typing", False), ("numpy", False), ("json", False), ("pandas", True), ("coilvis.record", True)}


def test_every_module_is_found_and_named() -> None:
    assert {"coilvis", "coilvis.record", "coilvis.frames", "coilvis.cli"} <= set(MODULES)
    assert "coilvis.record" in GRAPH["coilvis.views.page"]


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_its_layer_or_lower(module: str) -> None:
    own = layer(module)
    upward = sorted(f"{name} ({LAYER_NAMES[layer(name)]})" for name in GRAPH[module] if layer(name) > own)
    assert not upward, f"{module} ({LAYER_NAMES[own]}) imports higher layers: {', '.join(upward)}"


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_the_libraries_its_layer_may(module: str) -> None:
    first = first_part(module)
    libraries = libraries_of(module)
    if first in ONLY:
        allowed = ONLY[first] - {STDLIB}
        outside = {lib for lib in libraries if lib not in allowed and not (STDLIB in ONLY[first] and lib in sys.stdlib_module_names)}
        assert not outside, f"{module} may import only {sorted(ONLY[first])}, imports {sorted(outside)}"
    forbidden = libraries & FORBIDDEN.get(first, set())
    assert not forbidden, f"{module} imports {sorted(forbidden)}"
    heavy = libraries_of(module, module_level_only=True) & HEAVY
    assert not heavy, f"{module} imports {sorted(heavy)} at module level (only inside the function that needs it)"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if first_part(m) in DRAWING))
def test_drawing_reaches_no_torch(module: str) -> None:
    """Loading and drawing a record needs no torch: no module it imports, directly or
    not, imports torch (or a model library)."""
    seen = reachable(module, GRAPH)
    heavy = {m: libraries_of(m) & ({"torch"} | HEAVY) for m in seen}
    reached = [f"{chain(seen, m)} imports {sorted(libs)}" for m, libs in sorted(heavy.items()) if libs]
    assert not reached, "; ".join(reached)


def test_the_architecture_page_places_every_module() -> None:
    """docs/architecture.md shows the same table: every top-level module or package is named there."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = sorted({first for first in map(first_part, MODULES) if first and f"`{first}`" not in page and f"`{first}/`" not in page})
    assert not missing, f"docs/architecture.md does not place {missing}"


# ---------------------------------------------------------------------------- the facade


def test_import_coilvis_loads_no_heavy_library() -> None:
    code = "import sys, coilvis; print(sorted(m for m in ('transformers', 'transformer_lens', 'nnsight', 'torch', 'bokeh', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_explicit() -> None:
    import coilvis

    for name in coilvis.__all__:
        assert getattr(coilvis, name) is not None, name
    assert callable(coilvis.lens) and callable(coilvis.coil) and callable(coilvis.page)
