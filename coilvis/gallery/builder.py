"""Building the gallery: records and trees (cached), pages, sunbursts, thumbnails, then the index, example by example."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from coilvis.errors import CoilvisValueError, MissingDependencyError, RecordFormatError
from coilvis.files import atomic_write
from coilvis.gallery.index import render_index
from coilvis.gallery.prompts import Example, _BadEntry, _parse_entries, _read_prompts, default_prompts_path
from coilvis.gallery.results import ExampleResult, GalleryResult
from coilvis.gallery.trees import (
    TreeJob,
    earlier_caption,
    grow_trees,
    load_cached_tree,
    mass_caption,
    sunburst_files,
    sunburst_section,
    tree_cache_key,
)

__all__ = ["THUMB_PX", "build_gallery", "cache_key"]

#: Bump when what the gallery keeps in a cached record changes.
_CACHE_VERSION = 1
#: Longest side of a thumbnail, in pixels.
THUMB_PX = 480

def _model_label(model: Any) -> str:
    """The model's name for cache keys, without loading a model given by name."""
    if model is None:
        from coilvis.models.default import DEFAULT_MODEL_NAME

        return DEFAULT_MODEL_NAME
    if isinstance(model, str):
        return model
    from coilvis.models import resolve_model

    return resolve_model(model).name


def cache_key(example: Example, model_label: str) -> str:
    """Hash of what decides an example's record: prompt, run options, model, coilvis version.

    >>> a = Example("a", "A", "Hello", "x", {"color": "entropy"})
    >>> b = Example("b", "B", "Hello", "y", {"color": "prob"})
    >>> cache_key(a, "m") == cache_key(b, "m"), cache_key(a, "m") == cache_key(a, "other")
    (True, False)
    """
    from coilvis import __version__

    payload = {
        "cache": _CACHE_VERSION,
        "prompt": example.prompt,
        "run": example.run_kwargs(),
        "model": model_label,
        "coilvis": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()


def _load_cached(path: Path, key: str) -> Any:
    """The cached record at ``path`` if its key matches, else None."""
    from coilvis.record import Record

    if not path.is_file():
        return None
    try:
        record = Record.load(path)
    except (RecordFormatError, OSError, ValueError):
        return None
    return record if record.extra.get("gallery_key") == key else None


def _write_thumbnail(view: Any, path: Path, session: Any) -> None:
    """Draw ``view`` as a PNG in the build's browser (a
    :class:`~coilvis.views.output.PngSession`), trim its transparent margins, flatten it
    onto white and shrink it to at most :data:`THUMB_PX` pixels on its longest side."""
    from PIL import Image

    with Image.open(io.BytesIO(session.png_bytes(view))) as opened:
        rgba = opened.convert("RGBA")
    bbox = rgba.getchannel("A").getbbox()
    if bbox is not None:
        rgba = rgba.crop(bbox)
    image = Image.new("RGB", rgba.size, (255, 255, 255))
    image.paste(rgba, mask=rgba.getchannel("A"))
    image.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    atomic_write(path, buffer.getvalue())


class _ModelSlot:
    """The model of a build: named at once, loaded on the first uncached example only."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.label: str | None = None
        self.loaded: Any = None
        self.load_s = 0.0
        self.error: Exception | None = None

    def name(self) -> str:
        if self.label is None:
            self.label = _model_label(self.model)
        return self.label

    def get(self) -> Any:
        if self.error is not None:  # a model that failed to load fails every example at once
            raise self.error
        if self.loaded is None:
            from coilvis.models import resolve_model

            t0 = time.perf_counter()
            try:
                self.loaded = resolve_model(self.model)
            except Exception as exc:
                self.error = exc
                raise
            finally:
                self.load_s += time.perf_counter() - t0
        return self.loaded


class _Pending:
    """An example whose record the build still needs, and where it goes."""

    def __init__(self, entry: Example, res: ExampleResult, key: str) -> None:
        self.entry, self.res, self.key = entry, res, key


class _Started:
    """An example's result, its cached record and tree, and what the build still needs run."""

    def __init__(self, res: ExampleResult, record: Any = None, pending: _Pending | None = None, tree: Any = None,
                 tree_job: TreeJob | None = None) -> None:
        self.res, self.record, self.pending, self.tree, self.tree_job = res, record, pending, tree, tree_job


def _start(entry: Example | _BadEntry, out: Path, slot: _ModelSlot, *, force: bool) -> _Started:
    """An example's result, its cached record and tree, or what it needs run; never raises for the example's own errors."""
    if isinstance(entry, _BadEntry):
        return _Started(ExampleResult(entry.name, entry.title, "failed", error=entry.error))
    res = ExampleResult(entry.name, entry.title, "failed", record=out / "records" / f"{entry.name}.coil")
    try:
        key = cache_key(entry, slot.name())
        record = None if force else _load_cached(res.record, key)
        tree, tree_job = None, None
        if entry.sunburst is not None:
            res.tree = sunburst_files(out, entry.name)[1]
            tree_key = tree_cache_key(entry, slot.name())
            tree = None if force else load_cached_tree(res.tree, tree_key)
            tree_job = None if tree is not None else TreeJob(entry, res, tree_key)
    except Exception as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        return _Started(res)
    res.cached, res.tree_cached = record is not None, tree is not None
    return _Started(res, record, None if res.cached else _Pending(entry, res, key), tree, tree_job)


def _run_pending(pending: list[_Pending], slot: _ModelSlot) -> dict[str, Any]:
    """Run the examples without a cached record: those with the same run options together
    through :func:`coilvis.run_many` (each example's model time is its share of its group's,
    by tokens); a group that fails runs one by one, so each example keeps its own error.

    Returns:
        The records by example name, each saved with its cache key; a failed example's
        error is in its result.
    """
    import coilvis

    groups: dict[str, list[_Pending]] = {}
    for p in pending:
        groups.setdefault(json.dumps(p.entry.run_kwargs(), sort_keys=True), []).append(p)
    records: dict[str, Any] = {}
    for group in groups.values():
        try:
            loaded = slot.get()
        except Exception as exc:
            for p in group:
                p.res.error = f"{type(exc).__name__}: {exc}"
            continue
        t0 = time.perf_counter()
        try:
            got = coilvis.run_many([p.entry.prompt for p in group], loaded, progress=False, **group[0].entry.run_kwargs())
        except Exception:  # one example's bad prompt or option: run each alone, each with its own error
            got = None
        if got is not None:
            tokens = sum(r.seq_len for r in got)
            spent = time.perf_counter() - t0
            for p, record in zip(group, got):
                p.res.model_s = spent * record.seq_len / tokens
                records[p.entry.name] = record
        else:
            for p in group:
                t1 = time.perf_counter()
                try:
                    records[p.entry.name] = coilvis.run(p.entry.prompt, loaded, progress=False, **p.entry.run_kwargs())
                except Exception as exc:
                    p.res.error = f"{type(exc).__name__}: {exc}"
                p.res.model_s = time.perf_counter() - t1
    for p in pending:
        if p.entry.name in records:
            try:
                record = dataclasses.replace(records[p.entry.name], extra={**records[p.entry.name].extra, "gallery_key": p.key})
                record.save(p.res.record)
                records[p.entry.name] = record
            except Exception as exc:
                p.res.error = f"{type(exc).__name__}: {exc}"
                del records[p.entry.name]
    return records


def _build_page(entry: Example, res: ExampleResult, record: Any, out: Path, *, shared_js: bool, tree: Any = None) -> None:
    """Write an example's page from its record, with its sunburst section below when it
    has a ``tree`` (the caption in ``res.sunburst_caption``); never raises for the
    example's own errors."""
    import coilvis

    try:
        res.seq_len = record.seq_len
        t0 = time.perf_counter()
        view = coilvis.page(record, coil_options=entry.coil_kwargs(), lens_options=entry.lens_kwargs())
        if tree is not None:
            res.sunburst_caption = mass_caption(tree)
            view.layout.children.append(sunburst_section(entry, tree, res.sunburst_caption))
        res.page = coilvis.save(
            view, out / "pages" / f"{entry.name}.html", title=f"{entry.title} - coilvis", resources="shared" if shared_js else "inline"
        )
        res.page_s = time.perf_counter() - t0
        res.status = "built"
    except Exception as exc:  # one example's failure must not stop the others
        res.error = f"{type(exc).__name__}: {exc}"


def build_gallery(
    out_dir: str | os.PathLike[str],
    *,
    prompts_path: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    model: Any = None,
    force: bool = False,
    thumbnails: bool = True,
    shared_js: bool = False,
    progress: bool = True,
) -> GalleryResult:
    """Build the gallery: one page and one thumbnail per example, and an index page.

    Examples without a cached record run through the model together, those with the
    same run options in batches (:func:`coilvis.run_many`); each record is kept in
    ``out_dir/records/NAME.coil`` under a key (prompt, run options, model name, coilvis
    version), so a rebuild without changes redraws the pages without running, or even
    loading, the model. Thumbnails are drawn in one headless Chromium for the whole
    build. Failures are reported on stderr, kept in the result and marked on the index;
    the other examples still build. The index is written last and atomically, so an
    interrupted build leaves the previous index in place.

    Args:
        out_dir: the gallery folder (created if missing).
        prompts_path: the prompts file (default: the example prompts shipped with
            coilvis, see :func:`default_prompts_path`).
        only: build these examples only (names); the index still lists every example,
            linking pages built earlier.
        model: the model (anything :func:`coilvis.run` takes; default the embedded
            SmolLM2-135M-Instruct). Loaded on the first uncached example only.
        force: run the model even when a cached record matches.
        thumbnails: draw PNG thumbnails (needs headless Chromium; without it, the pages
            are still built and the cards show no picture).
        shared_js: write BokehJS once, as a file in ``pages/`` that every page links by a
            relative path (``coilvis.save(..., resources="shared")``), instead of inside
            each page: the folder is a tenth of the size and still loads nothing from the
            network (keep the file with the pages). BokehJS files no page links any
            more are removed.
        progress: show a progress bar (failures are reported either way).

    Returns:
        A :class:`GalleryResult` with one :class:`ExampleResult` per example and the time
        split into model time and rendering time.

    Raises:
        FileNotFoundError: no prompts file.
        CoilvisValueError: the prompts file is unreadable, two examples share a name, or
            ``only`` names an unknown example.
    """
    from tqdm import tqdm

    from coilvis.views.output import PngSession

    t_start = time.perf_counter()
    out = Path(out_dir)
    prompts = Path(prompts_path) if prompts_path is not None else default_prompts_path()
    entries = _parse_entries(_read_prompts(prompts))
    selected = _selected(entries, only, prompts)
    for sub in ("pages", "thumbs", "records"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    slot = _ModelSlot(model)
    todo = [e for e in entries if selected is None or e.name in selected]
    bar = tqdm(total=len(todo), desc="coilvis gallery", unit="example", disable=not progress, file=sys.stderr)
    say = bar.write if progress else print
    try:
        started = {e.name: _start(e, out, slot, force=force) for e in todo}
        pending = [s.pending for s in started.values() if s.pending is not None]
        if pending:
            bar.set_postfix_str(f"running {len(pending)} prompts")
        ran = _run_pending(pending, slot)
        jobs = [s.tree_job for s in started.values() if s.tree_job is not None and s.res.error is None]
        if jobs:
            bar.set_postfix_str(f"growing {len(jobs)} continuation trees")
        grown = grow_trees(jobs, slot.get, out)
        results: list[ExampleResult] = []
        draw = thumbnails
        with PngSession() as session:
            for e in entries:
                if e.name not in started:
                    results.append(_earlier_result(e, out))
                    continue
                res, draw = _finish(e, started[e.name], ran, grown, out, session if draw else None, shared_js=shared_js, say=say, bar=bar)
                results.append(res)
    finally:
        bar.close()
    if shared_js or any((out / "pages").glob("bokeh-*.min.js")):
        _prune_libraries(out / "pages")

    t0 = time.perf_counter()
    index = out / "index.html"
    index_html = render_index(
        results,
        out_dir=out,
        model_label=slot.label or _safe_label(model),
        examples={e.name: e for e in entries if isinstance(e, Example)},
    )
    atomic_write(index, index_html.encode("utf-8"))
    result = GalleryResult(out, index, results, model_load_s=slot.load_s, index_s=time.perf_counter() - t0)
    result.total_s = time.perf_counter() - t_start
    return result


def _finish(
    entry: Example | _BadEntry, started: _Started, ran: dict[str, Any], grown: dict[str, Any], out: Path,
    session: Any, *, shared_js: bool, say: Any, bar: Any,
) -> tuple[ExampleResult, bool]:
    """Draw one selected example's pages and thumbnails (``session`` None: no thumbnail), and report it.

    Returns:
        The example's result, and whether later thumbnails should be drawn (False once
        the browser is missing, which is said once).
    """
    res = started.res
    record = started.record if started.record is not None else ran.get(entry.name)
    bar.set_postfix_str(entry.name)
    draw = session is not None
    if record is not None and isinstance(entry, Example):
        tree = started.tree if started.tree is not None else grown.get(entry.name)
        draw = _draw_example(entry, res, record, tree, out, session, shared_js=shared_js)
    if res.status == "failed":
        say(f"coilvis gallery: {res.name} failed: {res.error}", file=sys.stderr)
    elif res.warning:
        say(f"coilvis gallery: {res.name}: {res.warning}", file=sys.stderr)
    bar.update(1)
    return res, draw


def _prune_libraries(pages: Path) -> None:
    """Remove the BokehJS files (``bokeh-*.min.js``) that no page in ``pages`` links."""
    linked: set[str] = set()
    for page in pages.glob("*.html"):
        head = page.read_text(encoding="utf-8", errors="replace")[:4096]
        linked.update(re.findall(r'<script src="(bokeh-[^"/]+\.min\.js)"', head))
    for library in pages.glob("bokeh-*.min.js"):
        if library.name not in linked:
            library.unlink(missing_ok=True)


def _selected(entries: list[Any], only: Iterable[str] | None, prompts: Path) -> set[str] | None:
    """The names ``only`` asks for (None: every example), each checked to exist."""
    if only is None:
        return None
    names = [e.name for e in entries]
    selected = {only} if isinstance(only, str) else set(only)
    unknown = sorted(selected - set(names))
    if unknown:
        raise CoilvisValueError(f"only: no example named {unknown} in {str(prompts)!r}; examples: {names}")
    return selected


def _draw_example(entry: Example, res: ExampleResult, record: Any, tree: Any, out: Path, session: Any, *, shared_js: bool) -> bool:
    """Draw an example's page (with its sunburst, if it has one) and its thumbnails; an
    example whose tree failed to grow fails, and one without a sunburst loses the
    sunburst thumbnail of an earlier build.

    Returns:
        Whether later thumbnails should be drawn.
    """
    import coilvis

    burst_thumb = sunburst_files(out, entry.name)[0]
    if entry.sunburst is not None and tree is None:
        res.status, res.error = "failed", res.error or "sunburst: no continuation tree"
        return session is not None
    _build_page(entry, res, record, out, shared_js=shared_js, tree=tree if entry.sunburst is not None else None)
    if res.status != "built":
        return session is not None
    res.thumbnail, draw = _thumbnail(
        lambda: coilvis.coil(record, **entry.coil_kwargs(animate=False)), out / "thumbs" / f"{entry.name}.png", res, session=session
    )
    if entry.sunburst is None:
        burst_thumb.unlink(missing_ok=True)
        return draw
    color = entry.sunburst.color
    res.sunburst_thumbnail, draw = _thumbnail(lambda: coilvis.sunburst(tree, color=color), burst_thumb, res, session=session if draw else None)
    return draw


def _thumbnail(make_view: Callable[[], Any], path: Path, res: ExampleResult, *, session: Any) -> tuple[Path | None, bool]:
    """Draw a built example's thumbnail (``make_view()``) at ``path`` in the build's browser
    (``session``), or keep an earlier one when there is no session.

    Returns:
        The thumbnail (None: none), and whether later thumbnails should be drawn: False
        once the browser is missing, which is said once and the rest built without.
    """
    if session is None:
        return (path if path.is_file() else None), False
    t0 = time.perf_counter()
    drawn, draw = None, True
    try:
        _write_thumbnail(make_view(), path, session)
        drawn = path
    except MissingDependencyError as exc:
        draw = False
        res.warning = f"no thumbnails: {exc}"
    except Exception as exc:
        res.warning = f"no thumbnail: {type(exc).__name__}: {exc}"
    res.thumbnail_s += time.perf_counter() - t0
    return drawn, draw


def _safe_label(model: Any) -> str:
    try:
        return _model_label(model)
    except Exception:
        return ""


def _earlier_result(entry: Example | _BadEntry, out: Path) -> ExampleResult:
    """An example not selected this run: its page and thumbnails from an earlier build, if
    any, and its sunburst's caption read from the tree that build kept."""
    page = out / "pages" / f"{entry.name}.html"
    thumb = out / "thumbs" / f"{entry.name}.png"
    res = ExampleResult(
        entry.name,
        entry.title,
        "skipped",
        page=page if page.is_file() else None,
        thumbnail=thumb if thumb.is_file() else None,
    )
    if isinstance(entry, Example) and entry.sunburst is not None and res.page is not None:
        burst_thumb, tree = sunburst_files(out, entry.name)
        res.sunburst_caption = earlier_caption(tree)
        res.sunburst_thumbnail = burst_thumb if burst_thumb.is_file() and res.sunburst_caption is not None else None
    return res
