"""Building the gallery: records (cached), pages, thumbnails, then the index, example by example."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coilvis.errors import CoilvisValueError, MissingDependencyError, RecordFormatError
from coilvis.files import atomic_write
from coilvis.gallery.index import render_index
from coilvis.gallery.prompts import Example, _BadEntry, _parse_entries, _read_prompts, default_prompts_path
from coilvis.gallery.results import ExampleResult, GalleryResult

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


def _write_thumbnail(view: Any, path: Path) -> None:
    """Draw ``view`` as a PNG through headless Chromium (:func:`coilvis.save`), trim its
    transparent margins, flatten it onto white and shrink it to at most
    :data:`THUMB_PX` pixels on its longest side."""
    import coilvis
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="coilvis-thumb-") as tmp:
        full = coilvis.save(view, Path(tmp, "full.png"))
        with Image.open(full) as opened:
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


def _build_page(entry: Example | _BadEntry, out: Path, slot: _ModelSlot, *, force: bool) -> tuple[ExampleResult, Any]:
    """Get an example's record (cached or run) and write its page; never raises for the example's own errors."""
    import coilvis

    if isinstance(entry, _BadEntry):
        return ExampleResult(entry.name, entry.title, "failed", error=entry.error), None
    res = ExampleResult(entry.name, entry.title, "failed", record=out / "records" / f"{entry.name}.coil")
    record = None
    try:
        key = cache_key(entry, slot.name())
        record = None if force else _load_cached(res.record, key)
        res.cached = record is not None
        if record is None:
            loaded = slot.get()
            t0 = time.perf_counter()
            record = coilvis.run(entry.prompt, loaded, progress=False, **entry.run_kwargs())
            res.model_s = time.perf_counter() - t0
            record = dataclasses.replace(record, extra={**record.extra, "gallery_key": key})
            record.save(res.record)
        res.seq_len = record.seq_len
        t0 = time.perf_counter()
        view = coilvis.page(record, coil_options=entry.coil_kwargs(), lens_options=entry.lens_kwargs())
        res.page = coilvis.save(view, out / "pages" / f"{entry.name}.html", title=f"{entry.title} - coilvis")
        res.page_s = time.perf_counter() - t0
        res.status = "built"
    except Exception as exc:  # one example's failure must not stop the others
        res.error = f"{type(exc).__name__}: {exc}"
    return res, record


def build_gallery(
    out_dir: str | os.PathLike[str],
    *,
    prompts_path: str | os.PathLike[str] | None = None,
    only: Iterable[str] | None = None,
    model: Any = None,
    force: bool = False,
    thumbnails: bool = True,
    progress: bool = True,
) -> GalleryResult:
    """Build the gallery: one page and one thumbnail per example, and an index page.

    Each example runs through the model once; its record is kept in
    ``out_dir/records/NAME.coil`` under a key (prompt, run options, model name, coilvis
    version), so a rebuild without changes redraws the pages without running, or even
    loading, the model. Failures are reported on stderr, kept in the result and marked
    on the index; the other examples still build. The index is written last and
    atomically, so an interrupted build leaves the previous index in place.

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

    t_start = time.perf_counter()
    out = Path(out_dir)
    prompts = Path(prompts_path) if prompts_path is not None else default_prompts_path()
    entries = _parse_entries(_read_prompts(prompts))
    selected = _selected(entries, only, prompts)
    for sub in ("pages", "thumbs", "records"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    slot = _ModelSlot(model)
    make_thumbnails = thumbnails
    results: list[ExampleResult] = []
    todo = [e for e in entries if selected is None or e.name in selected]
    bar = tqdm(total=len(todo), desc="coilvis gallery", unit="example", disable=not progress, file=sys.stderr)
    say = bar.write if progress else print
    try:
        for entry in entries:
            if selected is not None and entry.name not in selected:
                results.append(_earlier_result(entry, out))
                continue
            bar.set_postfix_str(entry.name)
            res, record = _build_page(entry, out, slot, force=force)
            if res.status == "built":
                make_thumbnails = _thumbnail(entry, res, record, out, draw=make_thumbnails)
            if res.status == "failed":
                say(f"coilvis gallery: {res.name} failed: {res.error}", file=sys.stderr)
            elif res.warning:
                say(f"coilvis gallery: {res.name}: {res.warning}", file=sys.stderr)
            results.append(res)
            bar.update(1)
    finally:
        bar.close()

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


def _thumbnail(entry: Example, res: ExampleResult, record: Any, out: Path, *, draw: bool) -> bool:
    """Draw a built example's thumbnail (or keep an earlier one when ``draw`` is off).

    Returns:
        Whether later thumbnails should be drawn: False once the browser is missing,
        which is said once and the rest built without.
    """
    import coilvis

    path = out / "thumbs" / f"{entry.name}.png"
    if not draw:
        res.thumbnail = path if path.is_file() else None
        return False
    t0 = time.perf_counter()
    try:
        _write_thumbnail(coilvis.coil(record, **entry.coil_kwargs(animate=False)), path)
        res.thumbnail = path
    except MissingDependencyError as exc:
        draw = False
        res.warning = f"no thumbnails: {exc}"
    except Exception as exc:
        res.warning = f"no thumbnail: {type(exc).__name__}: {exc}"
    res.thumbnail_s = time.perf_counter() - t0
    return draw


def _safe_label(model: Any) -> str:
    try:
        return _model_label(model)
    except Exception:
        return ""


def _earlier_result(entry: Example | _BadEntry, out: Path) -> ExampleResult:
    """An example not selected this run: its page and thumbnail from an earlier build, if any."""
    page = out / "pages" / f"{entry.name}.html"
    thumb = out / "thumbs" / f"{entry.name}.png"
    return ExampleResult(
        entry.name,
        entry.title,
        "skipped",
        page=page if page.is_file() else None,
        thumbnail=thumb if thumb.is_file() else None,
    )
