"""A gallery prompts file: its examples, the options they may set, their sunbursts, and the file coilvis ships."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.options import Option, attention_option, declared, describe, get_option

__all__ = [
    "PROMPTS_FORMAT",
    "PROMPTS_VERSION",
    "OPTION_KEYS",
    "SUNBURST_COLORS",
    "SUNBURST_KEYS",
    "SUNBURST_MAX_DEPTH",
    "SUNBURST_MAX_NODES",
    "Example",
    "SunburstSpec",
    "default_prompts_path",
    "load_examples",
]

#: The ``format`` field of a prompts file.
PROMPTS_FORMAT = "coilvis.gallery"
#: The newest prompts file version this module reads.
PROMPTS_VERSION = 1
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
_FIELDS = frozenset({"name", "title", "prompt", "look_for", "options", "sunburst", "notes"})


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


# ---------------------------------------------------------------------------- sunbursts

#: ``color=`` values of :func:`coilvis.sunburst` (the keys of ``coilvis.views._tree.COLORS``,
#: named here so that reading a prompts file loads no Bokeh).
SUNBURST_COLORS = ("prob", "path_prob", "entropy")
#: The deepest sunburst an example may ask for: past 8 rings a 640-pixel sunburst's rings
#: are too thin to read.
SUNBURST_MAX_DEPTH = 8
#: The most nodes an example's tree may hold (``1 + k + ... + k**depth``, see
#: :func:`coilvis.continuations.max_tree_nodes`), so a gallery page stays small and quick to build.
SUNBURST_MAX_NODES = 2_000
#: Keys of an example's ``sunburst`` object, and what each sets (all optional).
SUNBURST_KEYS: dict[str, str] = {
    "depth": f"tokens ahead, the sunburst's rings (default 3, at most {SUNBURST_MAX_DEPTH})",
    "k": "most likely next tokens kept under each node (default 5)",
    "min_prob": "grow only continuations whose probability is at least this, in [0, 1) (default 0)",
    "color": "what colours a wedge: 'prob' (given the tokens before it; default), 'path_prob' or 'entropy'",
}


@dataclass(frozen=True)
class SunburstSpec:
    """An example's continuation sunburst: the tree :func:`coilvis.tree` grows and how
    :func:`coilvis.sunburst` colours it.

    In a prompts file, an example's ``"sunburst"`` is ``true`` (these defaults), ``false``
    (none, as when the key is absent) or an object of :data:`SUNBURST_KEYS`.

    Attributes:
        depth: tokens after the prompt (the rings).
        k: most likely next tokens kept under each node.
        min_prob: path probability below which a token goes to its parent's "other" wedge.
        color: what colours a wedge (one of :data:`SUNBURST_COLORS`).

    >>> SunburstSpec.from_value(True), SunburstSpec.from_value({"depth": 2, "color": "entropy"}).tree_kwargs()
    (SunburstSpec(depth=3, k=5, min_prob=0.0, color='prob'), {'depth': 2, 'k': 5, 'min_prob': 0.0})
    """

    depth: int = 3
    k: int = 5
    min_prob: float = 0.0
    color: str = "prob"

    @classmethod
    def from_value(cls, value: Any) -> SunburstSpec | None:
        """The spec of an example's ``sunburst`` value (None: no sunburst).

        Raises:
            CoilvisTypeError: not a bool or an object, or a key of the wrong type (the
                message names it, ``sunburst.depth``).
            CoilvisValueError: an unknown key, a value out of range, or a tree larger than
                :data:`SUNBURST_MAX_NODES` (the message names the key).
        """
        if value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise CoilvisTypeError(f"sunburst: expected true, false or an object of {sorted(SUNBURST_KEYS)}, got {type(value).__name__}")
        unknown = sorted(set(value) - set(SUNBURST_KEYS), key=str)
        if unknown:
            raise CoilvisValueError(f"sunburst: unknown key(s) {unknown}; known: {sorted(SUNBURST_KEYS)}")
        depth = check_int("sunburst.depth", value.get("depth", cls.depth), minimum=1)
        if depth > SUNBURST_MAX_DEPTH:
            raise CoilvisValueError(f"sunburst.depth: expected at most {SUNBURST_MAX_DEPTH} (rings past that are too thin to read), got {depth}")
        k = check_int("sunburst.k", value.get("k", cls.k), minimum=1)
        min_prob = check_float("sunburst.min_prob", value.get("min_prob", cls.min_prob), minimum=0.0, maximum=1.0)
        if min_prob >= 1:
            raise CoilvisValueError(f"sunburst.min_prob: expected a number in [0, 1), got {min_prob:g} (no token could be kept)")
        color = value.get("color", cls.color)
        if not isinstance(color, str) or color not in SUNBURST_COLORS:
            raise CoilvisValueError(f"sunburst.color: expected one of {list(SUNBURST_COLORS)}, got {color!r}")
        _check_size(depth, k, min_prob)
        return cls(depth=depth, k=k, min_prob=min_prob, color=color)

    def tree_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`coilvis.tree` (those that change what the model computes)."""
        return {"depth": self.depth, "k": self.k, "min_prob": self.min_prob}


def _check_size(depth: int, k: int, min_prob: float) -> None:
    from coilvis.continuations import max_tree_nodes  # numpy: loaded only when a file asks for a sunburst

    count = max_tree_nodes(depth, k, min_prob)
    if count > SUNBURST_MAX_NODES:
        raise CoilvisValueError(
            f"sunburst: depth={depth}, k={k} gives up to {count:,} nodes, more than the {SUNBURST_MAX_NODES:,} a gallery "
            "sunburst holds; lower sunburst.depth or sunburst.k, or raise sunburst.min_prob"
        )


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
        sunburst: the continuation sunburst drawn on a page of its own, or None.
    """

    name: str
    title: str
    prompt: str
    look_for: str
    options: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    sunburst: SunburstSpec | None = None

    @classmethod
    def from_dict(cls, entry: Any) -> Example:
        """Check one entry of a prompts file and make it an :class:`Example`.

        Raises:
            CoilvisTypeError / CoilvisValueError: a missing or bad field, an empty
                prompt, an unknown option, a bad sunburst (the message names it:
                ``sunburst.k``).
        """
        if not isinstance(entry, Mapping):
            raise CoilvisTypeError(f"example: expected an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - _FIELDS)
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
            sunburst=SunburstSpec.from_value(entry.get("sunburst", False)),
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
        on = {"attention": spec is not None, "animate": bool(animate), "mass": bool(self.options.get("mass", False))}
        kw = self._kwargs("coil", on=on)
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
