"""Sphinx extension of the coilvis site: command lines, the explorer and the gallery run at build time; maths as MathML.

Directives: ``coilvis-shell`` (:mod:`.shell`), ``coilvis-explorer`` (:mod:`.explorer`),
``coilvis-gallery`` (:mod:`.gallery`). The ``mathml`` math renderer: :mod:`.mathml`.
BokehJS once for the whole site: :mod:`.bokeh_js`. Where the build writes, and what it
reuses: :mod:`.paths`.
"""

from __future__ import annotations

import shutil
from typing import Any

from coilvis_sphinx import bokeh_js, explorer, gallery, mathml, shell
from coilvis_sphinx.paths import BuildPaths


def _configure(app: Any, config: Any) -> None:
    """Point the notebook cache and the extra files at this build's folders."""
    paths = app.coilvis_paths
    config.nb_execution_cache_path = str(paths.notebook_cache)
    extra = str(paths.extra.relative_to(app.confdir))
    if extra not in config.html_extra_path:
        config.html_extra_path = [*config.html_extra_path, extra]
    static = paths.generated / "static"
    app.coilvis_bokeh_js = bokeh_js.library_file(static)
    config.html_static_path = [*config.html_static_path, str(static.relative_to(app.confdir))]


def _clear_live_pages(app: Any) -> None:
    """Start the site's copies of the pages commands wrote afresh (``builder-inited``)."""
    shutil.rmtree(app.coilvis_paths.extra / "live", ignore_errors=True)


def setup(app: Any) -> dict[str, Any]:
    """Register the directives, the renderer and the gallery build."""
    app.coilvis_paths = BuildPaths.of(app.confdir)
    app.connect("config-inited", _configure, priority=100)
    app.connect("builder-inited", _clear_live_pages)
    app.connect("builder-inited", gallery.build)
    app.connect("doctree-resolved", bokeh_js.drop_inline_loader)
    app.connect("html-page-context", bokeh_js.link_on_pages)
    mathml.setup(app)
    app.add_directive("coilvis-shell", shell.CoilvisShell)
    app.add_directive("coilvis-explorer", explorer.CoilvisExplorer)
    app.add_directive("coilvis-gallery", gallery.CoilvisGallery)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
