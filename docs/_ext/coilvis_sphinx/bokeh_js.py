"""BokehJS once for the whole site, instead of once in every executed page.

A view shown in a notebook loads BokehJS inline the first time (about 4 MB: coilvis
loads it once per kernel, :func:`coilvis.show`), then each view is a small script that
waits for ``window.Bokeh``. An executed page of this site holds that notebook output
as it is, so every page with a view would carry its own 4 MB copy. Here the copies are
left out of the pages (:func:`drop_inline_loader`), and the pages that draw a view link
one file in ``_static`` instead (:func:`link_on_pages`): the same BokehJS files, from
the installed Bokeh, loaded from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docutils import nodes

#: Text only Bokeh's notebook loader holds (the view scripts call ``embed_items_notebook``).
_LOADER_MARK = "_bokeh_onload_callbacks"
_VIEW_MARK = "embed_items_notebook"


def library_file(static_dir: Path) -> str:
    """Write BokehJS's files (every component, as the notebook loads them) as one file; its name in ``_static``."""
    from bokeh import __version__
    from bokeh.resources import CDN, INLINE

    cdn = set(CDN.js_raw)
    text = "\n".join(js for js in INLINE.js_raw if js not in cdn)
    name = f"bokeh-{__version__}.min.js"
    static_dir.mkdir(parents=True, exist_ok=True)
    path = static_dir / name
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return name


def drop_inline_loader(app: Any, doctree: nodes.document, docname: str) -> None:
    """Remove the inline BokehJS loader from an executed page's outputs (``doctree-resolved``)."""
    for raw in list(doctree.findall(nodes.raw)):
        if _LOADER_MARK in raw.astext():
            raw.parent.remove(raw)


def link_on_pages(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Link the site's BokehJS from every page that draws a view (``html-page-context``)."""
    if _VIEW_MARK in context.get("body", ""):
        app.add_js_file(app.coilvis_bokeh_js)
