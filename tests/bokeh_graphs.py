"""Bokeh model graphs as text, for tests that two graphs are equal model for model and value for value."""

from __future__ import annotations

import json
import re
from typing import Any

from bokeh.core.json_encoder import serialize_json
from bokeh.document import Document


def graph_json(root: Any) -> str:
    """``root`` and every model under it as Bokeh serialises them (data inline), every
    model id replaced by its order of first appearance: equal for two graphs whose every
    model and value are equal. ``root`` leaves the Document it was in."""
    if root.document is not None:
        root.document.remove_root(root)
    doc = Document()
    doc.add_root(root)
    text = json.dumps(json.loads(serialize_json(doc.to_json(deferred=False))), sort_keys=True)
    doc.remove_root(root)
    ids: dict[str, str] = {}
    return re.sub(r'"(p\d+)"', lambda m: '"m%d"' % ids.setdefault(m.group(1), len(ids)), text)
