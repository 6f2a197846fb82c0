"""The documentation site: built from the sources, every page clean and offline in headless Chromium, every link resolving.

The site is ``docs/_build/html`` as ``make docs`` builds it (CI builds it before the
tests); when it is missing or older than a source file, the fixture builds it the same
way first (a few minutes). ``COILVIS_DOCS_AS_BUILT=1`` tests the site as it is, stale
or not (while editing the tests themselves).
"""

from __future__ import annotations

import fcntl
import importlib.util
import io
import os
import posixpath
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from browser import browser_session  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SITE = DOCS / "_build" / "html"
_LOCAL = ("file:", "data:", "blob:", "about:")
#: Every element attribute that makes the page load something, or leads somewhere.
_URLS_IN_PAGE = """
() => {
  const out = []
  for (const el of document.querySelectorAll('a[href], link[href]')) out.push(['a', el.href])
  for (const el of document.querySelectorAll('img[src], script[src], iframe[src], source[src]')) out.push(['src', el.src])
  for (const el of document.querySelectorAll('iframe[data-src]')) out.push(['src', new URL(el.dataset.src, document.baseURI).href])
  return out
}
"""
#: Done when every Bokeh document the page embeds exists and is idle (pages without views: at once).
_SETTLED = """
(n) => n === 0 || (window.Bokeh !== undefined && Bokeh.documents.length >= n && Bokeh.documents.every((d) => d.is_idle === true))
"""

def _sources() -> Iterator[Path]:
    """Files a change to which changes the site."""
    for folder in (DOCS, ROOT / "coilvis"):
        for path in folder.rglob("*"):
            if path.is_file() and "_build" not in path.parts and "__pycache__" not in path.parts:
                yield path


def _site_is_fresh() -> bool:
    index = SITE / "index.html"
    if not index.is_file():
        return False
    if os.environ.get("COILVIS_DOCS_AS_BUILT") == "1":
        return True
    built = index.stat().st_mtime
    return all(path.stat().st_mtime <= built for path in _sources())


@pytest.fixture(scope="module")
def site() -> Path:
    """The built site (built now, as ``make docs`` does, when missing or stale).

    One build at a time: two test processes that each found the site missing would
    otherwise build into the same folder at once; the second waits for the first and
    then finds the site fresh.
    """
    if _site_is_fresh():
        return SITE
    if importlib.util.find_spec("sphinx") is None:
        pytest.fail("the docs extra is not installed (make install)")
    lock_path = ROOT / "docs" / "_build" / ".site.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _site_is_fresh():
            # `make docs` itself, with this interpreter's environment and nothing installed
            command = ["make", "-o", "install", "-o", "browser", "-o", ".venv/.installed", f"BIN={Path(sys.executable).parent}", "docs"]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
            assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return SITE


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


@cache
def _ids(path: Path) -> frozenset[str]:
    """Every ``id`` and ``name`` anchor in an HTML file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'\b(?:id|name)="([^"]+)"', text))


def _views_in(page: Path) -> int:
    """How many Bokeh documents the page embeds: one per notebook view, one for a standalone page."""
    text = page.read_text(encoding="utf-8", errors="replace")
    return text.count("embed_items_notebook(") or (1 if "embed_items(" in text and "Bokeh" in text else 0)


def _broken(url: str, site: Path) -> str | None:
    """Why a ``file:`` URL inside the site does not resolve (None when it does)."""
    parts = urlsplit(url)
    target = Path(unquote(parts.path))
    if site.resolve() not in target.resolve().parents and target.resolve() != site.resolve():
        return "leaves the site"
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return "no such file"
    if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
        return f"no anchor #{parts.fragment}"
    return None


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("docs_site")
def test_every_page_opens_from_disk_without_errors_requests_or_broken_links(site, browser_session):
    pages = _pages(site)
    assert len(pages) > 40, [p.name for p in pages]
    problems: list[str] = []
    drawn: dict[str, int] = {}
    for page_path in pages:
        name = page_path.relative_to(site).as_posix()
        context = browser_session.browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err, errors=errors: errors.append(str(err)))
        page.on("request", lambda req, requests=requests: requests.append(req.url))
        try:
            page.goto(page_path.as_uri(), wait_until="load")
            views = _views_in(page_path)
            page.wait_for_function(_SETTLED, arg=views, timeout=120_000)
            drawn[name] = page.evaluate("() => window.Bokeh ? Bokeh.documents.length : 0")
            urls = page.evaluate(_URLS_IN_PAGE)
        finally:
            context.close()
        problems += [f"{name}: console error: {e}" for e in errors]
        problems += [f"{name}: request outside the disk: {u}" for u in requests if not u.startswith(_LOCAL)]
        for kind, url in urls:
            if url.startswith("file:"):
                why = _broken(url, site)
                if why:
                    problems.append(f"{name}: broken link {url}: {why}")
            elif kind == "src" and not url.startswith(_LOCAL):
                problems.append(f"{name}: loads {url}")
    assert not problems, "\n".join(problems)
    # every executed page with a view draws it, from the site's one BokehJS
    for name in ("getting-started.html", "concepts/coil.html", "concepts/lens.html", "cookbook/trees.html"):
        assert drawn[name] >= 1, (name, drawn[name])
    assert drawn["getting-started.html"] == _views_in(site / "getting-started.html") >= 2  # the coil, the lens


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("docs_site")
def test_search_finds_pages_offline(site, browser_session):
    context = browser_session.browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto((site / "search.html").as_uri() + "?q=surprisal")
        page.wait_for_function("() => document.querySelectorAll('#search-results li').length > 0", timeout=30_000)
        hits = page.evaluate("() => [...document.querySelectorAll('#search-results li a')].map((a) => a.getAttribute('href'))")
    finally:
        context.close()
    assert not errors, "\n".join(errors)
    assert any(h.startswith("concepts/statistics.html") for h in hits), hits


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("docs_site")
def test_gallery_page_plays_an_example_embedded(site, browser_session):
    from coilvis.gallery import load_examples

    context = browser_session.browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto((site / "gallery.html").as_uri())
        page.wait_for_timeout(1000)
        assert [f.url for f in page.frames[1:] if f.url != "about:blank"] == []  # nothing loads before it is opened
        page.locator("details.coilvis-embed summary").first.click()
        page.wait_for_function("() => document.querySelector('details.coilvis-embed iframe').getAttribute('src') != null")
        page.wait_for_timeout(500)
        (inner,) = [f for f in page.frames[1:] if f.url != "about:blank"]
        assert inner.url.endswith(f"/gallery/pages/{load_examples()[0].name}.html")
        inner.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle", timeout=60_000)
        assert inner.evaluate("() => Bokeh.documents[0].get_model_by_name('coil_segments') != null")
        page.wait_for_timeout(1000)
    finally:
        context.close()
    assert not errors, "\n".join(errors)


@pytest.mark.slow
@pytest.mark.xdist_group("docs_site")
def test_api_reference_documents_every_public_name(site):
    from sphinx.util.inventory import InventoryFile

    import coilvis

    raw = (site / "objects.inv").read_bytes()
    if hasattr(InventoryFile, "loads"):  # Sphinx >= 8.2
        inventory = InventoryFile.loads(raw, uri="").data
    else:
        inventory = InventoryFile.load(io.BytesIO(raw), "", posixpath.join)
    documented = {name for kind, objects in inventory.items() if kind.startswith("py:") for name in objects}
    missing = [name for name in coilvis.__all__ if f"coilvis.{name}" not in documented]
    assert missing == []


@pytest.mark.slow
@pytest.mark.xdist_group("docs_site")
def test_pictures_are_drawn_at_build_time(site):
    from PIL import Image, ImageStat

    html = (site / "getting-started.html").read_text(encoding="utf-8")
    shots = re.findall(r'<img alt="([^"]+\.html), as the command draws it" src="([^"]+)"', html)
    assert {alt for alt, _ in shots} >= {"eiffel.html", "coil.html", "lens.html"}, shots
    for alt, src in shots:
        with Image.open(site / src) as image:
            assert image.format == "PNG" and min(image.size) >= 300, (alt, image.size)
            assert max(ImageStat.Stat(image.convert("L")).stddev) > 10, f"{alt}: a blank picture"
        assert (site / "live" / "getting-started" / alt).is_file()
    explorer = re.findall(r'<img alt="the explorer after running the prompt" src="([^"]+)"', (site / "cookbook" / "explorer.html").read_text(encoding="utf-8"))
    assert len(explorer) == 1 and (site / "cookbook" / explorer[0]).is_file()


@pytest.mark.slow
@pytest.mark.xdist_group("docs_site")
def test_maths_is_mathml_written_at_build_time(site):
    for name in ("coil", "unwind", "lens", "statistics"):
        html = (site / "concepts" / f"{name}.html").read_text(encoding="utf-8")
        assert html.count("<math") >= 2, name
        assert "$$" not in html, name  # no formula left to a script
        assert not re.search(r"<script[^>]*mathjax", html, re.IGNORECASE), name
    unwind = (site / "concepts" / "unwind.html").read_text(encoding="utf-8")
    assert re.search(r'<math[^>]*display="block".*?<mfrac>', unwind, re.DOTALL), "the dwell formula is a fraction"


@pytest.mark.slow
@pytest.mark.xdist_group("docs_site")
def test_gallery_lists_every_example_with_its_live_page(site):
    from coilvis.gallery import load_examples

    html = (site / "gallery.html").read_text(encoding="utf-8")
    for example in load_examples():
        assert f'id="gallery-{example.name}"' in html, example.name
        assert f'href="gallery/pages/{example.name}.html"' in html, example.name
        assert (site / "gallery" / "pages" / f"{example.name}.html").is_file(), example.name


def test_make_docs_builds_with_warnings_as_errors_and_ci_runs_it():
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile[makefile.index("\ndocs:"):]
    assert " -W " in rule and "--keep-going" in rule and "-b html docs" in rule
    extras = re.search(r'pip install -q -e "\.\[([a-z0-9,]+)\]"', makefile)
    assert extras and "docs" in extras.group(1).split(","), "`make install` must bring the docs extra"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make docs" in ci and ci.index("make docs") < ci.index("make test")
    assert "docs = [" in (ROOT / "pyproject.toml").read_text()


def test_readme_links_the_site_below_its_first_screen():
    readme = (ROOT / "README.md").read_text()
    link = readme.index("docs/_build/html/index.html")
    assert link > readme.index("\n---\n")  # below the first screen
    assert "make docs" in readme[link - 400 : link + 400]
