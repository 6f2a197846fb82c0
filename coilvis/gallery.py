"""The gallery: example prompts built into a folder of standalone pages.

``gallery/prompts.json`` lists the examples (a name, a title, the prompt, one or two
sentences on what to look for, and view options). :func:`build_gallery` runs each
prompt through a model once, keeps its :class:`~coilvis.record.Record` in
``OUT/records/NAME.coil``, and draws:

* ``OUT/pages/NAME.html``: the full page (animated coil, lens and table, see
  :func:`coilvis.page`);
* ``OUT/thumbs/NAME.png``: a thumbnail of the coil (headless Chromium);
* ``OUT/index.html``: one card per example with its thumbnail, title, caption and
  prompt, linking to its page.

A record is reused when its cache key (a hash of the prompt, the options that change
what the model computes, the model's name and the coilvis version) still matches, so
a rebuild without changes redraws every page without running the model, and without
loading it. A failing example is reported (in the result, on stderr and on the index)
while the others still build. Every file is written atomically, the index last, so an
interrupted build never leaves a broken index over a good one.

From the command line::

    coilvis gallery -o gallery/_build
    coilvis gallery -o gallery/_build --only eiffel induction --force

The prompts file format (``version`` 1)::

    {"format": "coilvis.gallery", "version": 1, "examples": [
        {"name": "eiffel", "title": "...", "prompt": "...", "look_for": "...",
         "options": {"attention": "mean", "color": "prob", "lens_stat": "prob"}}]}

>>> ex = Example.from_dict({"name": "eiffel", "title": "Eiffel", "prompt": "The Eiffel Tower is in",
...                         "look_for": "Paris.", "options": {"attention": "mean", "lens_stat": "kl"}})
>>> ex.run_kwargs()["attention"], ex.lens_kwargs()
(True, {'stat': 'kl'})
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import io
import json
import os
import re
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, MissingDependencyError, RecordFormatError
from coilvis.files import atomic_write
from coilvis.options import Option, attention_option, declared, describe, get_option
from coilvis.tokens import display_lines

__all__ = [
    "Example",
    "ExampleResult",
    "GalleryResult",
    "build_gallery",
    "default_prompts_path",
    "load_examples",
    "OPTION_KEYS",
]

#: The ``format`` field of a prompts file.
PROMPTS_FORMAT = "coilvis.gallery"
#: The newest prompts file version this module reads.
PROMPTS_VERSION = 1
#: Bump when what the gallery keeps in a cached record changes.
_CACHE_VERSION = 1

#: The functions an example's options go to, in the order :data:`OPTION_KEYS` lists them.
_KEYED_APIS = ("coil", "lens", "run")
#: Defaults of the gallery that differ from the functions' (a gallery page animates).
_GALLERY_DEFAULTS: dict[str, Any] = {"animate": True}


def _keyed(api: str) -> tuple[Option, ...]:
    """The declared options of ``api`` that a prompts file may set (they have a key)."""
    return tuple(o for o in declared(api) if o.key is not None)


def _key_doc(option: Option) -> str:
    doc = describe(option)
    if option.key in _GALLERY_DEFAULTS:
        doc += f" (default {json.dumps(_GALLERY_DEFAULTS[option.key])})"
    return doc


#: Options an example may set, and what each one sets: the keys of the options declared
#: in :data:`coilvis.options.OPTIONS` (``lens_stat`` sets the lens's ``stat``, ...).
OPTION_KEYS: dict[str, str] = {o.key: _key_doc(o) for api in _KEYED_APIS for o in _keyed(api) if o.key is not None}
_ATTENTION = get_option("coil", "attention")
_LAYER = get_option("coil", "layer")
_ANIMATE = get_option("coil", "animate")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_RESERVED_NAMES = frozenset({"index"})
#: Longest side of a thumbnail, in pixels.
THUMB_PX = 480


def default_prompts_path() -> Path:
    """The gallery's example prompts, shipped inside the package (``coilvis/gallery_prompts.json``).

    Read through :mod:`importlib.resources`, so it is found from a source tree and from
    an installed wheel alike.

    Raises:
        FileNotFoundError: the installed package lacks its prompts file (a damaged
            install); pass ``prompts_path`` explicitly.
    """
    from importlib import resources

    resource = resources.files("coilvis") / "gallery_prompts.json"
    if not isinstance(resource, Path) or not resource.is_file():
        raise FileNotFoundError(
            f"prompts_path: the gallery's prompts file ships inside the coilvis package, and {str(resource)!r} "
            "is not a file there; pass prompts_path= (or --prompts) with a prompts file"
        )
    return resource


# ---------------------------------------------------------------------------- examples


def _text(entry: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise CoilvisTypeError(f"{key}: expected a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise CoilvisValueError(f"{key}: is empty")
    return value


@dataclass(frozen=True)
class Example:
    """One gallery example.

    Attributes:
        name: slug (``[a-z0-9][a-z0-9_-]*``), used for file names.
        title: the card's and the page's title.
        prompt: the prompt text (untrusted: escaped wherever it is shown).
        look_for: one or two sentences on what to look for.
        options: view and run options (keys of :data:`OPTION_KEYS`).
        notes: free text on how the example was made (not shown).
    """

    name: str
    title: str
    prompt: str
    look_for: str
    options: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    @classmethod
    def from_dict(cls, entry: Any) -> Example:
        """Check one entry of a prompts file and make it an :class:`Example`.

        Raises:
            CoilvisTypeError / CoilvisValueError: a missing or bad field, an empty
                prompt, an unknown option (the message names it).
        """
        if not isinstance(entry, Mapping):
            raise CoilvisTypeError(f"example: expected an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - {"name", "title", "prompt", "look_for", "options", "notes"})
        if unknown:
            raise CoilvisValueError(f"example: unknown field(s) {unknown}")
        name = _text(entry, "name")
        if not _NAME_RE.match(name) or name in _RESERVED_NAMES:
            raise CoilvisValueError(
                f"name: {name!r} is not a valid example name (lower-case letters, digits, '-' and '_', "
                "at most 64 characters, not 'index')"
            )
        options = entry.get("options", {})
        if not isinstance(options, Mapping):
            raise CoilvisTypeError(f"options: expected an object, got {type(options).__name__}")
        bad = sorted(set(options) - set(OPTION_KEYS))
        if bad:
            raise CoilvisValueError(f"options: unknown option(s) {bad}; known: {sorted(OPTION_KEYS)}")
        notes = entry.get("notes", "")
        if not isinstance(notes, str):
            raise CoilvisTypeError(f"notes: expected a str, got {type(notes).__name__}")
        ex = cls(
            name=name,
            title=_text(entry, "title"),
            prompt=_text(entry, "prompt"),
            look_for=_text(entry, "look_for"),
            options=dict(options),
            notes=notes,
        )
        ex.attention()  # fail early on a bad spec
        return ex

    def attention(self) -> Any:
        """The coil's ``attention=`` of this example (see :func:`coilvis.options.attention_option`), or None."""
        o = self.options
        return attention_option(
            o.get(_ATTENTION.key), layer=o.get(_LAYER.key), name=f"options.{_ATTENTION.key}", layer_name=f"options.{_LAYER.key}"
        )

    def _kwargs(self, api: str, *, on: Mapping[str, bool]) -> dict[str, Any]:
        """Keyword arguments of ``api`` from the options that set its keywords; an option
        that requires another one is left out unless ``on[that one]``."""
        o = self.options
        keyed = [opt for opt in _keyed(api) if opt.keyword and opt.kind != "attention" and opt is not _ANIMATE]
        return {opt.name: o[opt.key] for opt in keyed if opt.key in o and (opt.requires is None or on.get(opt.requires, False))}

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`coilvis.run` for this example (the lens is always on)."""
        return {"attention": self.options.get(_ATTENTION.key) is not None, "lens": True, **self._kwargs("run", on={})}

    def coil_kwargs(self, *, animate: bool | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`coilvis.coil` for this example.

        Args:
            animate: override the example's ``animate`` option (``False`` for thumbnails).
        """
        spec = self.attention()
        if animate is None:
            animate = self.options.get(_ANIMATE.key, _GALLERY_DEFAULTS[_ANIMATE.key])
        kw = self._kwargs("coil", on={"attention": spec is not None, "animate": bool(animate)})
        if spec is not None:
            kw["attention"] = spec
        if animate:
            kw["animate"] = True
        return kw

    def lens_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`coilvis.lens` for this example."""
        return self._kwargs("lens", on={})


@dataclass(frozen=True)
class _BadEntry:
    """An entry of the prompts file that is not a valid example."""

    name: str
    title: str
    error: str


def _read_prompts(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CoilvisValueError(f"prompts_path: {str(path)!r} is not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise CoilvisValueError(f"prompts_path: {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if isinstance(data, Mapping):
        if data.get("format", PROMPTS_FORMAT) != PROMPTS_FORMAT:
            raise CoilvisValueError(f"prompts_path: {str(path)!r} is not a coilvis gallery file (format {data.get('format')!r})")
        version = data.get("version", PROMPTS_VERSION)
        if not isinstance(version, int) or version > PROMPTS_VERSION:
            raise CoilvisValueError(
                f"prompts_path: {str(path)!r} has version {version!r}; this coilvis reads up to version {PROMPTS_VERSION}"
            )
        data = data.get("examples")
    if not isinstance(data, list):
        raise CoilvisValueError(f"prompts_path: {str(path)!r} holds no list of examples")
    return data


def _parse_entries(entries: Sequence[Any]) -> list[Example | _BadEntry]:
    out: list[Example | _BadEntry] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        raw_name = entry.get("name") if isinstance(entry, Mapping) else None
        label = raw_name if isinstance(raw_name, str) and raw_name else f"#{i}"
        if label in seen:
            raise CoilvisValueError(f"prompts: two examples are named {label!r}; names must be unique")
        seen.add(label)
        try:
            out.append(Example.from_dict(entry))
        except (CoilvisError, ValueError, TypeError) as exc:
            raw_title = entry.get("title") if isinstance(entry, Mapping) else None
            out.append(_BadEntry(label, raw_title if isinstance(raw_title, str) and raw_title else label, str(exc)))
    return out


def load_examples(prompts_path: str | os.PathLike[str] | None = None) -> list[Example]:
    """Read and check every example of a prompts file.

    Args:
        prompts_path: the file (default: :func:`default_prompts_path`).

    Returns:
        The examples, in file order.

    Raises:
        CoilvisValueError / CoilvisTypeError: the file, or one of its examples, is invalid.
    """
    path = Path(prompts_path) if prompts_path is not None else default_prompts_path()
    entries = _parse_entries(_read_prompts(path))
    for e in entries:
        if isinstance(e, _BadEntry):
            raise CoilvisValueError(f"example {e.name!r}: {e.error}")
    return [e for e in entries if isinstance(e, Example)]


# ---------------------------------------------------------------------------- results

Status = Literal["built", "failed", "skipped"]


@dataclass
class ExampleResult:
    """What building one example did.

    Attributes:
        name: the example's name.
        title: its title.
        status: ``"built"``, ``"failed"``, or ``"skipped"`` (not selected by ``only``).
        page: the page written (None unless built).
        thumbnail: the thumbnail written (None when it was not, see ``warning``).
        record: the cached record file.
        cached: whether the record came from the cache (the model did not run).
        seq_len: number of token positions.
        model_s: seconds spent running the model (0 when cached).
        page_s: seconds spent drawing and writing the page.
        thumbnail_s: seconds spent drawing the thumbnail.
        error: why the example failed.
        warning: a problem that did not stop the page (e.g. no thumbnail).
    """

    name: str
    title: str
    status: Status
    page: Path | None = None
    thumbnail: Path | None = None
    record: Path | None = None
    cached: bool = False
    seq_len: int | None = None
    model_s: float = 0.0
    page_s: float = 0.0
    thumbnail_s: float = 0.0
    error: str | None = None
    warning: str | None = None

    @property
    def render_s(self) -> float:
        """Seconds spent drawing this example (page and thumbnail)."""
        return self.page_s + self.thumbnail_s


@dataclass
class GalleryResult:
    """What :func:`build_gallery` did, with the time it took.

    Attributes:
        out_dir: the gallery folder.
        index: the index page.
        examples: one result per example of the prompts file, in file order.
        model_load_s: seconds spent loading the model (0 when every record was cached).
        index_s: seconds spent writing the index.
        total_s: wall-clock seconds of the whole build.
    """

    out_dir: Path
    index: Path
    examples: list[ExampleResult]
    model_load_s: float = 0.0
    index_s: float = 0.0
    total_s: float = 0.0

    @property
    def built(self) -> list[ExampleResult]:
        """The examples built in this run."""
        return [e for e in self.examples if e.status == "built"]

    @property
    def failures(self) -> list[ExampleResult]:
        """The examples that failed in this run."""
        return [e for e in self.examples if e.status == "failed"]

    @property
    def ok(self) -> bool:
        """Whether no example failed."""
        return not self.failures

    @property
    def model_s(self) -> float:
        """Seconds of model time: loading it plus running every uncached example."""
        return self.model_load_s + sum(e.model_s for e in self.examples)

    @property
    def render_s(self) -> float:
        """Seconds of rendering time: pages, thumbnails and the index."""
        return sum(e.render_s for e in self.examples) + self.index_s

    def size_bytes(self) -> int:
        """Total size of the files in the gallery folder, in bytes."""
        return sum(p.stat().st_size for p in self.out_dir.rglob("*") if p.is_file())

    def summary(self) -> str:
        """A short text table of the build, one line per example."""
        lines = [f"{'example':<16} {'status':<8} {'tokens':>6} {'model s':>8} {'render s':>9}  note"]
        for e in self.examples:
            note = e.error or e.warning or ("cached record" if e.cached else "")
            tokens = "" if e.seq_len is None else str(e.seq_len)
            lines.append(f"{e.name:<16} {e.status:<8} {tokens:>6} {e.model_s:>8.2f} {e.render_s:>9.2f}  {note}")
        lines.append(
            f"model {self.model_s:.1f} s (load {self.model_load_s:.1f} s), render {self.render_s:.1f} s, "
            f"total {self.total_s:.1f} s; {len(self.built)} built, {len(self.failures)} failed -> {self.index}"
        )
        return "\n".join(lines)


# ---------------------------------------------------------------------------- building


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
        prompts_path: the prompts file (default: ``gallery/prompts.json`` of the
            source tree, see :func:`default_prompts_path`).
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
    import coilvis
    from tqdm import tqdm

    t_start = time.perf_counter()
    out = Path(out_dir)
    prompts = Path(prompts_path) if prompts_path is not None else default_prompts_path()
    entries = _parse_entries(_read_prompts(prompts))
    names = [e.name for e in entries]
    selected: set[str] | None = None
    if only is not None:
        if isinstance(only, str):
            only = [only]
        selected = set(only)
        unknown = sorted(selected - set(names))
        if unknown:
            raise CoilvisValueError(f"only: no example named {unknown} in {str(prompts)!r}; examples: {names}")
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
            if res.status == "built" and make_thumbnails:
                t0 = time.perf_counter()
                try:
                    _write_thumbnail(coilvis.coil(record, **entry.coil_kwargs(animate=False)), out / "thumbs" / f"{entry.name}.png")
                    res.thumbnail = out / "thumbs" / f"{entry.name}.png"
                except MissingDependencyError as exc:
                    make_thumbnails = False  # no browser: say it once, build the rest without
                    res.warning = f"no thumbnails: {exc}"
                except Exception as exc:
                    res.warning = f"no thumbnail: {type(exc).__name__}: {exc}"
                res.thumbnail_s = time.perf_counter() - t0
            elif res.status == "built":
                old = out / "thumbs" / f"{entry.name}.png"
                res.thumbnail = old if old.is_file() else None
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


# ---------------------------------------------------------------------------- the index

_INDEX_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f6f4; color: #1d1d1f; }
header { padding: 28px 32px 8px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 4px 0; color: #555; max-width: 60em; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 20px; padding: 20px 32px 40px; }
.card { background: #fff; border: 1px solid #e2e2dc; border-radius: 10px; overflow: hidden; display: flex; flex-direction: column; }
.card.failed { border-color: #d33; }
.thumb { display: block; aspect-ratio: 1 / 1; background: #eee; }
.thumb img { width: 100%; height: 100%; object-fit: contain; display: block; background: #fff; }
.thumb .none { display: flex; align-items: center; justify-content: center; height: 100%; color: #888; font-size: 13px; }
.body { padding: 12px 14px 14px; }
.card h2 { font-size: 16px; margin: 0 0 6px; }
.card h2 a { color: inherit; }
.look { margin: 0 0 8px; }
.prompt { font: 12px/1.35 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; overflow-wrap: anywhere;
          background: #f3f3ef; border-radius: 6px; padding: 6px 8px; margin: 0 0 6px; max-height: 7.5em; overflow: hidden; }
.meta { color: #777; font-size: 12px; }
.error { color: #b00; font-size: 13px; white-space: pre-wrap; overflow-wrap: anywhere; }
.badge { display: inline-block; font-size: 11px; padding: 1px 6px; border-radius: 8px; background: #d33; color: #fff; margin-left: 6px; vertical-align: middle; }
"""

_PROMPT_PREVIEW_CHARS = 240


def _href(path: Path, out_dir: Path) -> str:
    rel = path.relative_to(out_dir).as_posix()
    return urllib.parse.quote(rel)


def _shown(text: str) -> str:
    """Untrusted text as HTML: control, format and bidi characters, NUL and surrogates
    made visible as the views show them (:func:`coilvis.tokens.display_lines`), then
    HTML-escaped."""
    return html.escape(display_lines(text))


def _card(res: ExampleResult, example: Example | None, out_dir: Path) -> str:
    esc = html.escape
    failed = res.status == "failed"
    page_href = _href(res.page, out_dir) if res.page is not None and not failed else None
    if res.thumbnail is not None and not failed:
        pic = f'<img src="{esc(_href(res.thumbnail, out_dir))}" alt="{_shown("coil of " + res.title)}">'
    else:
        pic = f'<span class="none">{"build failed" if failed else "no thumbnail"}</span>'
    thumb = f'<a class="thumb" href="{esc(page_href)}">{pic}</a>' if page_href else f'<div class="thumb">{pic}</div>'
    title = _shown(res.title)
    title_html = f'<a href="{esc(page_href)}">{title}</a>' if page_href else title
    if failed:
        title_html += '<span class="badge">failed</span>'
    parts = [f'<article class="card{" failed" if failed else ""}" id="{_shown(res.name)}">', thumb, '<div class="body">', f"<h2>{title_html}</h2>"]
    if example is not None:
        parts.append(f'<p class="look">{_shown(example.look_for)}</p>')
        preview = example.prompt if len(example.prompt) <= _PROMPT_PREVIEW_CHARS else example.prompt[:_PROMPT_PREVIEW_CHARS] + "\u2026"
        parts.append(f'<pre class="prompt">{_shown(preview)}</pre>')
    meta = [res.name]
    if res.seq_len is not None:
        meta.append(f"{res.seq_len} tokens")
    if res.status == "skipped" and res.page is None:
        meta.append("not built yet")
    meta_txt = " \u00b7 ".join(meta)
    parts.append(f'<div class="meta">{_shown(meta_txt)}</div>')
    if failed and res.error:
        parts.append(f'<div class="error">{_shown(res.error)}</div>')
    parts.append("</div></article>")
    return "\n".join(parts)


def render_index(
    results: Sequence[ExampleResult],
    *,
    out_dir: Path,
    model_label: str = "",
    examples: Mapping[str, Example] | None = None,
    prompts_path: Path | None = None,
) -> str:
    """The index page: one card per example (thumbnail, title, caption, prompt, link).

    Every string from the prompts file or a record is shown as the views show text
    (:func:`coilvis.tokens.display_lines`: NUL, bidi controls, zero-width characters and
    lone surrogates become visible escapes, line breaks stay) and escaped with
    :func:`html.escape`; thumbnails and pages are linked by relative paths, so the
    folder can be moved.

    Args:
        results: one result per example, in display order.
        out_dir: the gallery folder (links are relative to it).
        model_label: the model's name, shown in the header.
        examples: the examples by name, for captions and prompts (default: read from
            ``prompts_path``).
        prompts_path: the prompts file (default :func:`default_prompts_path`), used when
            ``examples`` is not given.

    Returns:
        The standalone HTML page (no scripts, no external resources).
    """
    from coilvis import __version__

    if examples is None:
        examples = {}
        with contextlib.suppress(Exception):
            examples = {e.name: e for e in _parse_entries(_read_prompts(prompts_path or default_prompts_path())) if isinstance(e, Example)}
    esc = html.escape
    n_failed = sum(r.status == "failed" for r in results)
    cards = "\n".join(_card(r, examples.get(r.name), out_dir) for r in results)
    status = f"{len(results)} examples" + (f", {n_failed} failed" if n_failed else "")
    model_txt = f" with {display_lines(model_label)}" if model_label else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="coilvis {esc(__version__)}">
<title>coilvis gallery</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<header>
<h1>coilvis gallery</h1>
<p>Example prompts drawn{esc(model_txt)}: each card opens a page with the coil (press play to unwind it; it slows down where the model is unsure), the logit lens and the top-k table. {esc(status)}.</p>
</header>
<main>
{cards}
</main>
</body>
</html>
"""
