"""Tests for gallery/coilvis_tour.ipynb: it runs top to bottom in a headless kernel
(nbclient + ipykernel) and every view cell carries Bokeh's notebook output, with BokehJS
inline (nothing loaded from a CDN)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "gallery" / "coilvis_tour.ipynb"
#: MIME types of Bokeh's notebook output (bokeh.io.notebook).
BOKEH_EXEC = "application/vnd.bokehjs_exec.v0+json"
BOKEH_LOAD = "application/vnd.bokehjs_load.v0+json"


def outputs_of(cell: Any) -> list[dict[str, Any]]:
    return [dict(o) for o in cell.get("outputs", [])]


def mime_types(cell: Any) -> set[str]:
    return {mime for o in outputs_of(cell) for mime in o.get("data", {})}


def test_notebook_is_valid_and_saved_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    source = "\n".join(c.source for c in code)
    for call in ("coilvis.load_model(", "record.table(", "coilvis.coil(", "animate=True", "coilvis.lens("):
        assert call in source


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("notebook")
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return nb


@pytest.mark.slow
@pytest.mark.model
def test_notebook_runs_and_shows_every_view(executed: Any) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    errors = [o for c in code for o in outputs_of(c) if o.get("output_type") == "error"]
    assert errors == []
    by_source = {c.source.split("\n")[-1]: c for c in code}

    # the table is a DataFrame, shown as HTML, with the model's answer in it
    table = by_source["record.table(k=8)"]
    assert "text/html" in mime_types(table)
    assert "Paris" in "".join(o["data"]["text/html"] for o in outputs_of(table) if "text/html" in o.get("data", {}))

    # every view cell draws through BokehJS
    view_cells = [c for c in code if any(call in c.source for call in ("coilvis.coil(", "coilvis.lens(", "coilvis.page("))]
    assert len(view_cells) == 4
    for cell in view_cells:
        assert BOKEH_EXEC in mime_types(cell), cell.source

    # the unwind cell carries the animation's script; the plain coil does not
    def script(cell: Any) -> str:
        return "".join(o["data"].get("application/javascript", "") for o in outputs_of(cell) if BOKEH_EXEC in o.get("data", {}))

    unwind = next(c for c in view_cells if "animate=True" in c.source and "coilvis.coil(" in c.source)
    plain = next(c for c in view_cells if "coilvis.coil(record" in c.source)
    assert "requestAnimationFrame" in script(unwind) and "requestAnimationFrame" not in script(plain)

    # BokehJS was loaded once, inline: no output mentions a CDN
    all_outputs = json.dumps([outputs_of(c) for c in code])
    assert "cdn.bokeh.org" not in all_outputs
    loads = [c for c in code if BOKEH_LOAD in mime_types(c)]
    assert len(loads) == 1
    load_js = next(o["data"]["application/javascript"] for o in outputs_of(loads[0]) if BOKEH_LOAD in o.get("data", {}))
    assert len(load_js) > 500_000  # BokehJS itself is in the output

    # the induction cell's printed entropies: the second copy is the predictable one
    printed = next(
        "".join(o.get("text", "") for o in outputs_of(c)) for c in code if "mean entropy" in c.source
    )
    first, second = (float(line.split(":")[1].split()[0]) for line in printed.strip().splitlines())
    assert second < first / 2
