"""Sphinx configuration of the coilvis documentation site (``make docs``).

Built from the project's own sources so that it cannot drift from the code: the API
reference from the docstrings (autodoc, Google style through napoleon), the
getting-started and cookbook pages executed at build time (MyST-NB, one Jupyter kernel
per page; their views are the live Bokeh output of the code above them), the command
lines run at build time by the ``coilvis-shell`` directive, and the gallery built by
:func:`coilvis.gallery.build_gallery`. Everything the site needs is on disk: maths is
MathML written at build time, the theme (Furo) loads no web fonts, search reads a local
index, executed pages share one copy of BokehJS in _static, and every standalone page
inlines BokehJS or links it beside itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))  # the coilvis_sphinx extension

import coilvis  # after the path above: autodoc and the extension import it

project = "coilvis"
author = "the coilvis authors"
copyright = "the coilvis authors, Apache-2.0"
release = coilvis.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
    "sphinx_copybutton",
    "coilvis_sphinx",
]

root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# ---------------------------------------------------------------- MyST and executed pages
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
# Pages with code cells run in a kernel of their own at every build. Outputs are cached
# under a key of coilvis's own sources (see coilvis_sphinx.paths), so a page is
# executed again whenever the code it shows changes, and never drawn from stale outputs.
nb_execution_mode = "cache"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_in_temp = True
nb_merge_streams = True
nb_output_stderr = "remove"  # progress bars; a failing cell still fails the build
# Bokeh's notebook outputs carry their script as application/javascript too: that is
# what a static page runs; its own MIME types have no renderer here.
suppress_warnings = ["mystnb.unknown_mime_type"]

# ---------------------------------------------------------------- API reference
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
python_maximum_signature_line_length = 88
add_module_names = False

# ---------------------------------------------------------------- HTML, offline
html_theme = "furo"
html_title = f"coilvis {release}"
html_static_path = ["_static"]
html_css_files = ["coilvis.css"]
html_math_renderer = "mathml"  # coilvis_sphinx: maths as MathML at build time, no script
html_copy_source = False
html_show_sourcelink = False
html_show_search_summary = False  # the summaries are fetched: not from file://
html_permalinks_icon = "#"
html_theme_options = {
    "source_repository": "",
    "navigation_with_keys": True,
}
copybutton_prompt_text = r"\$ |>>> |\.\.\. "
copybutton_prompt_is_regexp = True
