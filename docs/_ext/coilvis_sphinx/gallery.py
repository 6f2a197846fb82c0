"""The gallery in the site: built by coilvis's own gallery builder, listed by the ``coilvis-gallery`` directive.

When the build starts, :func:`build` runs :func:`coilvis.gallery.build_gallery` in a
process of its own (BokehJS written once beside the pages) into ``docs/gallery`` of coilvis's cache folder
(``$COILVIS_CACHE``, else ``~/.cache/coilvis``), whose records the gallery reuses while
their prompt, options, model and coilvis version match; every page and thumbnail is
drawn again by the code being documented, unless the same sources drew them last time.
The pages, thumbnails and index (not the records) are copied into the site as
``gallery/``. The directive lists every example of the packaged prompts file with its
title, caption, prompt and thumbnail, links its page (live: hover, play) and embeds it,
loaded when opened.
"""

from __future__ import annotations

import dataclasses
import fcntl
import html
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

#: Characters of a prompt shown under its example (the essay's is 6,000).
PROMPT_CHARS = 240
#: A page embedded in a closed ``<details>``: its frame gets its source when first opened, so
#: the page loads (and lays itself out) at its visible size, and a closed one costs nothing.
_EMBED = (
    '<details class="coilvis-embed" ontoggle="const f = this.querySelector(\'iframe\'); '
    'if (this.open &amp;&amp; !f.getAttribute(\'src\')) f.src = f.dataset.src">'
    '<summary>Play it here</summary><iframe title="{title}" data-src="{src}"></iframe></details>'
)


def gallery_dir() -> Path:
    """Where the docs build keeps its gallery between builds (records included)."""
    from coilvis.models.default import cache_dir

    return cache_dir() / "docs" / "gallery"


#: The build, in a process of its own: the model's thread pools (OpenMP) must not start
#: in the process that Sphinx later forks to read pages in parallel, or a page that runs
#: the model there would wait forever on a lock no thread of the fork holds.
_BUILD = """
import pickle, sys
from pathlib import Path
from coilvis.gallery import build_gallery
result = build_gallery(Path(sys.argv[1]), shared_js=True, thumbnails=True)
Path(sys.argv[2]).write_bytes(pickle.dumps(result))
"""


def build(app: Any) -> None:
    """Build the gallery (``builder-inited``) and copy it into the site; a failing example stops the docs build."""
    paths = app.coilvis_paths
    folder = gallery_dir()
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(folder / ".lock", "w") as lock:  # one docs build at a time draws into the folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = _unchanged(folder / "docs-build.pickle", paths.key) or _run_builder(folder, paths.key)
        shutil.rmtree(paths.gallery, ignore_errors=True)
        paths.gallery.mkdir(parents=True)
        for part in ("index.html", "pages", "thumbs"):
            source = folder / part
            (shutil.copytree if source.is_dir() else shutil.copyfile)(source, paths.gallery / part)
    app.coilvis_gallery = _moved(result, folder, paths.gallery)
    logger.info(f"coilvis gallery: {len(result.built)} examples in {time.perf_counter() - t0:.1f} s")


def _run_builder(folder: Path, key: str) -> Any:
    """Build the gallery into ``folder`` in a process of its own; its result, kept for ``key``."""
    made = folder / "docs-build-result.pickle"
    made.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c", _BUILD, str(folder), str(made)], check=False)
    if done.returncode != 0 or not made.is_file():
        raise ExtensionError(f"the gallery build exited with {done.returncode} (its errors are above)")
    result = pickle.loads(made.read_bytes())
    if result.failures:
        failed = "; ".join(f"{r.name}: {r.error}" for r in result.failures)
        raise ExtensionError(f"the gallery failed to build: {failed}")
    (folder / "docs-build.pickle").write_bytes(pickle.dumps((key, result)))
    return result


def _unchanged(stamp: Path, key: str) -> Any:
    """The last build's result when the same sources built it and its files are all there."""
    if not stamp.is_file():
        return None
    try:
        built_key, result = pickle.loads(stamp.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None  # unreadable, or written by another version: build again
    files = [p for r in result.examples for p in (r.page, r.thumbnail, getattr(r, "sunburst_thumbnail", None)) if p is not None]
    if built_key != key or not result.index.is_file() or not all(Path(p).is_file() for p in files):
        return None
    return result


def _moved(result: Any, old: Path, new: Path) -> Any:
    """The build's result with its paths pointing into the site's copy."""

    def move(path: Any) -> Any:
        return new / Path(path).relative_to(old) if path is not None else None

    examples = []
    for example in result.examples:
        changes = {f.name: move(getattr(example, f.name)) for f in dataclasses.fields(example) if f.name.endswith(("page", "thumbnail"))}
        examples.append(dataclasses.replace(example, **changes))
    return dataclasses.replace(result, out_dir=new, index=new / "index.html", examples=examples)


def _image(path: Path, srcdir: Path, href: str, alt: str) -> nodes.Node:
    """A thumbnail that links to its live page."""
    uri = "/" + path.resolve().relative_to(srcdir.resolve()).as_posix()
    link = nodes.reference("", "", refuri=href, classes=["image-reference"])
    link += nodes.image(uri=uri, alt=alt)
    return link


class CoilvisGallery(SphinxDirective):
    """Every gallery example: title, caption, prompt, thumbnails, live page."""

    def run(self) -> list[nodes.Node]:
        from coilvis.gallery import load_examples

        result = getattr(self.env.app, "coilvis_gallery", None)
        if result is None:
            raise self.error("the gallery was not built")
        built = {r.name: r for r in result.examples}
        up = "../" * self.env.docname.count("/")
        index = nodes.paragraph()
        index += nodes.Text("The gallery's own index page lists the same pages: ")
        index += nodes.reference("", "gallery/index.html", refuri=f"{up}gallery/index.html")
        index += nodes.Text(".")
        out: list[nodes.Node] = [index]
        for example in load_examples():
            res = built[example.name]
            out.extend(self._example(example, res, up))
        return out

    def _example(self, example: Any, res: Any, up: str) -> list[nodes.Node]:
        srcdir = Path(self.env.srcdir)
        page = f"{up}gallery/pages/{res.page.name}"
        rubric = nodes.rubric(example.title, example.title, ids=[f"gallery-{example.name}"], classes=["coilvis-example"])
        caption = nodes.paragraph(example.look_for, example.look_for)
        prompt = example.prompt if len(example.prompt) <= PROMPT_CHARS else example.prompt[:PROMPT_CHARS] + " …"
        prompt_para = nodes.paragraph()
        prompt_para += nodes.strong("Prompt: ", "Prompt: ")
        prompt_para += nodes.literal(prompt, prompt)
        row = nodes.container(classes=["coilvis-thumbs"])
        if res.thumbnail is not None:
            row += _image(res.thumbnail, srcdir, page, f"{example.title}: the coil")
        sunburst_thumb = getattr(res, "sunburst_thumbnail", None)
        if sunburst_thumb is not None:
            row += _image(sunburst_thumb, srcdir, page, f"{example.title}: the continuation sunburst")
        links = nodes.paragraph()
        links += nodes.reference("", "Open the page", refuri=page)
        links += nodes.Text(f" ({res.seq_len} tokens: the coil with its unwind, the lens, the table")
        sunburst_caption = getattr(res, "sunburst_caption", None)
        links += nodes.Text(f"; below them the continuations as a sunburst: {sunburst_caption})" if sunburst_caption else ")")
        embed = nodes.raw("", _EMBED.format(title=html.escape(example.title), src=html.escape(page)), format="html")
        return [rubric, caption, prompt_para, row, links, embed]
