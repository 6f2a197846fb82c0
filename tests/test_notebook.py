"""Tests of coilvis in notebooks: gallery/coilvis_tour.ipynb runs top to bottom in a
headless kernel (nbclient + ipykernel) and every view cell carries Bokeh's notebook output,
with BokehJS inline (nothing loaded from a CDN); a notebook showing tokens that are hostile
markup, exported to HTML with nbconvert, runs none of it in Chromium and draws every view."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401

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


# ------------------------------------------------------------------------------ hostile token text

#: Token strings that end, or confuse, an HTML ``<script>`` element (or a CDATA section).
HOSTILE = (
    "</script><script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
    "<!--",
    "<script>",
    "]]>",
    "--><!--<script>",
    "</SCRIPT >",
)
TESTS_DIR = Path(__file__).resolve().parent
#: The views displayed, one per cell, and the named figures each must hold.
HOSTILE_CELLS = (
    ("coilvis.coil(rec)", ("coil_figure",)),
    ("coilvis.show(coilvis.lens(rec))", ("lens_figure",)),
    ("coilvis.page(rec, title=hostile[0])", ("coil_figure", "lens_figure")),
    ("coilvis.coil(rec, animate=True, autoplay=True)", ("coil_figure",)),
)
#: Markup that must never reach a ``<script>`` element from data.
SCRIPT_BREAKERS = ("</script", "<!--", "<script")

_DRAWN_JS = """
(n) => window.Bokeh !== undefined && Bokeh.documents.length === n && Bokeh.documents.every((d) => d.is_idle === true)
"""
_MODELS_JS = """
(names) => Bokeh.documents.map((doc) => names.filter((name) => {
    const model = doc.get_model_by_name(name)
    if (model == null) return false
    const view = Bokeh.index.find_one(model)
    if (view == null) return false
    const rect = view.canvas_view.el.getBoundingClientRect()
    return rect.width > 0 && rect.height > 0
}))
"""
_CANVASES_JS = """
() => {
    const count = (root) => {
        let n = root.querySelectorAll("canvas").length
        for (const el of root.querySelectorAll("*")) if (el.shadowRoot) n += count(el.shadowRoot)
        return n
    }
    return count(document)
}
"""
_PLAYING_JS = """
() => {
    const doc = Bokeh.documents[Bokeh.documents.length - 1]
    const unwind = doc.get_model_by_name("coil_segment_source").__coilvis_unwind
    return unwind != null && unwind.state.progress > 0
}
"""
_STRINGS_JS = """
(wanted) => {
    const seen = new Set()
    for (const doc of Bokeh.documents) {
        for (const model of doc.all_models) {
            const data = model.data
            if (data == null || typeof data !== "object") continue
            const columns = data instanceof Map ? [...data.values()] : Object.values(data)
            for (const column of columns) {
                if (Array.isArray(column)) for (const value of column) if (typeof value === "string") seen.add(value)
            }
        }
    }
    return wanted.filter((text) => seen.has(text))
}
"""


@pytest.fixture(scope="module")
def hostile_notebook(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A notebook that displays coil, lens and page views of a record whose tokens are hostile markup, executed."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    setup = (
        "import dataclasses, sys\n"
        f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
        "import coilvis\n"
        "from lens_records import VOCAB, lens_record\n"
        f"hostile = {HOSTILE!r}\n"
        "vocab = [*VOCAB, *(h for h in hostile if h not in VOCAB)]\n"
        "rec = lens_record([' Paris', *hostile, 'w1', ' Paris'], vocab=vocab)\n"
        "rec = dataclasses.replace(rec, model_name=hostile[0])"
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(setup), *(nbformat.v4.new_code_cell(code) for code, _ in HOSTILE_CELLS)]
    workdir = tmp_path_factory.mktemp("hostile-notebook")
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def published_javascript(nb: Any) -> list[str]:
    return [str(o["data"]["application/javascript"]) for c in nb.cells for o in outputs_of(c) if "application/javascript" in o.get("data", {})]


@pytest.mark.slow
def test_notebook_output_carries_no_script_markup_from_tokens(hostile_notebook: Any) -> None:
    outputs = [o for c in hostile_notebook.cells for o in outputs_of(c)]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    scripts = published_javascript(hostile_notebook)
    assert len(scripts) == 1 + len(HOSTILE_CELLS)  # the BokehJS loader once, then one script per view
    for script in scripts[1:]:  # the views' scripts: token text is data, with no markup left in it
        lowered = script.lower()
        assert [m for m in SCRIPT_BREAKERS if m in lowered] == []
        assert "]]>" not in script
    # the view's own Document is shown, with its document-level JavaScript (the autoplay)
    assert "coil_unwind_autoplay_js" in scripts[-1] and "document_ready" in scripts[-1]
    # the loader (BokehJS itself) never closes its script element
    assert "</script" not in scripts[0].lower()
    # the HTML parts are Bokeh's empty divs and its loader markup: no token text
    html = "".join(str(o["data"]["text/html"]) for o in outputs if "text/html" in o.get("data", {}))
    assert all(text not in html for text in HOSTILE)
    # every view has an element of its own
    elements = re.findall(r'<div id="([^"]+)" data-root-id=', html)
    assert len(elements) == len(set(elements)) == len(HOSTILE_CELLS)


def export_html(nb: Any) -> str:
    """The notebook as nbconvert's HTML export (its default "lab" template)."""
    nbconvert = pytest.importorskip("nbconvert")
    exporter = nbconvert.HTMLExporter()
    # The template links require.js and MathJax from a CDN; empty data: URLs keep every
    # request the page makes one that the notebook's outputs made.
    exporter.require_js_url = "data:text/javascript,"
    exporter.mathjax_url = "data:text/javascript,"
    html, _ = exporter.from_notebook_node(nb)
    return html


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_exported_notebook_runs_no_token_text_and_draws_every_view(
    hostile_notebook: Any, browser_session: Any, tmp_path: Path  # noqa: F811
) -> None:
    export = tmp_path / "exported.html"
    export.write_text(export_html(hostile_notebook), encoding="utf-8")

    context = browser_session.browser.new_context(viewport={"width": 1400, "height": 1100})
    requests: list[str] = []

    def only_local(route: Any) -> None:  # every request is seen; none leaves the machine
        requests.append(route.request.url)
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        page.goto(export.as_uri())
        drawn = True
        try:
            page.wait_for_function(_DRAWN_JS, arg=len(HOSTILE_CELLS), timeout=60_000)
        except Exception:
            drawn = False
        page.wait_for_timeout(300)  # let any injected handler (img onerror) fire
        assert page.evaluate("() => window.__pwned") is None, "token text ran as script"
        assert [url for url in requests if not url.startswith("file:")] == []
        assert [url for url in requests if url != export.as_uri()] == []  # not even a local file (img src=x)
        assert drawn, f"the views did not draw; page errors: {page_errors}"
        assert page_errors == []
        names = [names for _, names in HOSTILE_CELLS]
        assert page.evaluate(_MODELS_JS, ["coil_figure", "lens_figure"]) == [list(n) for n in names]
        assert page.evaluate(_CANVASES_JS) >= sum(len(n) for n in names)
        # the token text arrived as the exact strings, not mangled by the escaping
        assert sorted(page.evaluate(_STRINGS_JS, list(HOSTILE))) == sorted(HOSTILE)
        # the animated coil plays by itself (its document_ready callback ran)
        page.wait_for_function(_PLAYING_JS, timeout=30_000)
    finally:
        context.close()
