"""Standalone HTML of a view: Bokeh's page, byte-identical for the same view, BokehJS inlined, linked or shared.

:func:`_page` assembles what Bokeh's ``file_html`` makes, with ids that depend on the
view alone; with ``shared``, BokehJS's own files are linked as one file beside the page
(named by Bokeh's version and a hash of its text) instead of inlined. The public entry
points are :func:`coilvis.views.output.to_html` and :func:`coilvis.views.output.save`.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

from bokeh import __version__ as bokeh_version
from bokeh.core.json_encoder import serialize_json
from bokeh.embed.bundle import URL, Bundle, bundle_for_objs_and_resources
from bokeh.embed.elements import html_page_for_render_items
from bokeh.embed.util import FromCurdoc, OutputDocumentFor, RenderItem
from bokeh.model import Model
from bokeh.resources import CDN, INLINE, Resources

#: A :class:`coilvis.views.output.View` (not imported: the output module imports this one).
View = Any

__all__: list[str] = []


# A uuid4 as Bokeh writes its random ids.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _numbered_ids(doc_json: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A document's JSON with its model ids renamed ``c1``, ``c2``, ... in the order the JSON names them.

    Bokeh numbers models from one counter for the whole process, so the same view built
    after other views would get other ids. In Bokeh's serialisation a model is written
    as ``{"type": "object", "name": ..., "id": ...}`` (its definition) or ``{"id": ...}``
    (a reference); data never has those shapes (a dict is ``{"type": "map", ...}``).

    Returns:
        ``(json, ids)``: the renamed JSON (a new object) and the old id -> new id map.
    """
    ids: dict[str, str] = {}

    def visit(node: Any) -> Any:
        if isinstance(node, (list, tuple)):  # a map's entries are (key, value) tuples
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        is_model = "id" in node and (node.keys() == {"id"} or node.get("type") in ("object", "ref"))
        return {
            key: ids.setdefault(value, f"c{len(ids) + 1}") if is_model and key == "id" else visit(value)
            for key, value in node.items()
        }

    return visit(doc_json), ids


class _Root:
    """The root of a page as Bokeh's RenderItem reads it (its id as numbered in the page)."""

    def __init__(self, model: Model, page_id: str) -> None:
        self.id, self.name, self.tags = page_id, model.name, list(model.tags)


def _page_html(view: View, resources: Resources, title: str, *, template: str | None = None) -> str:
    """The page of :func:`_page`."""
    return _page(view, resources, title, template=template)[0]


def _page(view: View, resources: Resources, title: str, *, template: str | None = None, shared: bool = False) -> tuple[str, str, str]:
    """Bokeh's standalone page of a view (what ``file_html`` makes), byte-identical for the same view.

    ``file_html`` writes three random ids (the document's, the root element's and the
    data script's) and model ids from a process-wide counter. Here model ids are
    numbered per document (:func:`_numbered_ids`) and the other ids derive from a hash
    of the document, so a page depends on the view alone. Bokeh still assembles the
    page; the one id it draws inside (the data script's, a fresh uuid4 found in the page
    and in none of its inputs) is replaced too.

    Returns:
        ``(html, name, text)``: the page and, with ``shared``, the name and text of the
        BokehJS file it links by a relative path instead of inlining it (see
        :func:`_split_bundle`); ``""`` for both without.
    """
    with OutputDocumentFor([view.layout], apply_theme=FromCurdoc) as doc:  # the theme as file_html applies it
        doc_json, ids = _numbered_ids(doc.to_json(deferred=False))
        bundle = bundle_for_objs_and_resources([doc], resources)
    name = text = ""
    if shared:
        bundle, name, text = _split_bundle(bundle)
    bokeh_js, bokeh_css = bundle
    body = serialize_json(doc_json)
    key = "coilvis-" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    item = RenderItem(docid=key, roots={_Root(view.layout, ids[view.layout.id]): f"{key}-root"})  # type: ignore[dict-item]
    html = html_page_for_render_items((bokeh_js, bokeh_css), {key: doc_json}, [item], title=title, template=template)
    known = set(_UUID.findall("".join((body, bokeh_js, bokeh_css, title, template or ""))))
    drawn = [uid for uid in dict.fromkeys(_UUID.findall(html)) if uid not in known]
    for index, uid in enumerate(drawn):
        html = html.replace(uid, f"{key}-data" if index == 0 else f"{key}-id{index}")
    return html, name, text


@functools.lru_cache(maxsize=1)
def _library_sources() -> frozenset[str]:
    """BokehJS's own files as an inline page holds them (a CDN page links them instead)."""
    return frozenset(INLINE.js_raw) - frozenset(CDN.js_raw)


def _split_bundle(bundle: Bundle) -> tuple[Bundle, str, str]:
    """An inline bundle with BokehJS's own files replaced by one relative script source.

    Returns:
        ``(bundle, name, text)``: the page's bundle, and the name and text of the file
        it links. The name holds Bokeh's version and a hash of the text, so pages that
        need the same files share one, and a file never stands for other contents.
    """
    library = _library_sources()
    text = "\n".join(js for js in bundle.js_raw if js in library)
    name = f"bokeh-{bokeh_version}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}.min.js"
    rest = [js for js in bundle.js_raw if js not in library]
    return Bundle([URL(name), *bundle.js_files], rest, bundle.css_files, bundle.css_raw, bundle.hashes), name, text
