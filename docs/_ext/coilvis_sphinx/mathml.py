"""Maths as MathML, written at build time: no script, no font, nothing fetched.

Registers the ``mathml`` HTML math renderer (``html_math_renderer = "mathml"``): every
``$...$`` and ``$$...$$`` of the pages (MyST's ``dollarmath``) and every ``:math:`` of
a docstring becomes a ``<math>`` element, which browsers draw natively (MathML Core).
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from latex2mathml.converter import convert


def _mathml(latex: str, *, display: str) -> str:
    return convert(latex.strip(), display=display)


def visit_math(self: Any, node: nodes.Element) -> None:
    self.body.append(f'<span class="math">{_mathml(node.astext(), display="inline")}</span>')
    raise nodes.SkipNode


def visit_displaymath(self: Any, node: nodes.Element) -> None:
    anchor = f' id="{node["ids"][0]}"' if node.get("ids") else ""
    self.body.append(f'<div class="math"{anchor}>{_mathml(node.astext(), display="block")}</div>\n')
    raise nodes.SkipNode


def setup(app: Any) -> None:
    """Register the renderer with Sphinx."""
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
