"""The record file format: its table of members, a deterministic writer, a reader that trusts nothing.

A record file is a zip archive (the numpy ``.npz`` layout, deflated) holding
``meta.json`` and one ``.npy`` member per array, see :mod:`coilvis.record` for what
each holds. This module knows the file only, not the :class:`~coilvis.record.Record`
class: :func:`write_record_file` takes plain dicts, :func:`read_record_file` gives
them back after checking everything.

Writing is deterministic: members in the order of the format's table, a fixed zip
timestamp, fixed file attributes, compact JSON; the same record gives the same bytes
in any process, on any day, in any time zone.

Reading never trusts the file. Before any array is read, ``meta.json`` (capped at
:data:`META_MAX_BYTES`) is parsed and checked, then every ``.npy`` header is read from
its member and its dtype and shape checked against the format table and the sizes
``meta.json`` gives (``seq_len = len(tokens)``, the lens' layer count, the vocabulary
size), and the member's uncompressed size against the bytes that shape needs. So a
small file that declares a huge array is refused at once, in little memory. Token ids
are then checked against ``[0, d_vocab)`` and attention links against the model's
layers, heads and positions. Anything else raises
:class:`~coilvis.errors.RecordFormatError` naming the path (and the member).

Versions are table-driven: :data:`FORMATS` maps every readable version to its members
and to a function that upgrades what was read to the next version, so a version 2
reader that still opens version 1 files adds one row and one function.

The pieces of the reader that know zips and ``.npy`` members but no record
(:class:`Source`, :func:`add_member`, :func:`write_members`, :func:`check_directory_size`,
:func:`read_meta`, :func:`check_version`, :func:`member_names`, :func:`check_members`,
:func:`read_members`, :func:`refusing`, :func:`string_list`, :func:`meta_int`) are public: :mod:`coilvis.comparison_format`
reads its file with the same checks, and a record stored inside it with
:func:`read_record_file` given an open ``handle``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, RecordFormatError, check_int

__all__ = [
    "FORMAT_VERSION",
    "FORMATS",
    "META_MAX_BYTES",
    "Member",
    "Contents",
    "FileFormat",
    "Source",
    "ZIP_ERRORS",
    "add_member",
    "check_directory_size",
    "check_members",
    "check_version",
    "encode_meta",
    "member_names",
    "meta_int",
    "read_members",
    "read_meta",
    "read_record_file",
    "refusing",
    "string_list",
    "write_members",
    "write_record_file",
]

#: The version :func:`write_record_file` writes.
FORMAT_VERSION = 2

#: Largest ``meta.json`` read (uncompressed). Its size grows with the prompt and the
#: token strings it keeps: even every string of a 262,144-token vocabulary plus a
#: 128k-token prompt, all ``\\u``-escaped, stays near 20 MB. The cap keeps a hostile
#: file from making the JSON parser build gigabytes of objects.
META_MAX_BYTES = 64 * 2**20

#: Largest zip central directory read: ours is about 2 KB (some 25 members).
DIRECTORY_MAX_BYTES = 2**20

_META = "meta.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_CHUNK_BYTES = 2**20


@dataclass(frozen=True)
class Member:
    """One ``.npy`` member of a record file.

    Attributes:
        name: the member's name without ``.npy`` (``"lens.entropy"``).
        dtype: its dtype, little-endian (``"<f4"``).
        dims: its shape, each a name of a size: known from ``meta.json``
            (``seq_len``, ``n_rows``, ``n_vocab``) or first read from a header
            (``k``, ``k_lens``, ``n_links``) and then the same everywhere.
        part: ``""`` (always there), ``"attention"`` or ``"lens"``.
        values: ``(low, high)``: every value must lie in ``[low, high)``, ``high``
            naming a size (``d_vocab``, ``seq_len``, ...); ``None``: not checked.
        unique: whether the values must be distinct.
    """

    name: str
    dtype: str
    dims: tuple[str, ...]
    part: str = ""
    values: tuple[int, str] | None = None
    unique: bool = False


# token_ids may hold -1: a token given as a string that the vocabulary lacks
MEMBERS_V1: tuple[Member, ...] = (
    Member("token_ids", "<i8", ("seq_len",), values=(-1, "d_vocab")),
    Member("topk_ids", "<i8", ("seq_len", "k"), values=(0, "d_vocab")),
    Member("topk_logits", "<f4", ("seq_len", "k")),
    Member("topk_probs", "<f4", ("seq_len", "k")),
    Member("log_z", "<f4", ("seq_len",)),
    Member("entropy", "<f4", ("seq_len",)),
    Member("next_logprob", "<f4", ("seq_len",)),
    Member("next_rank", "<i8", ("seq_len",)),
    Member("vocab_ids", "<i8", ("n_vocab",), values=(0, "d_vocab"), unique=True),
    Member("attention.layer", "<i2", ("n_links",), "attention", values=(0, "n_layers")),
    Member("attention.head", "<i2", ("n_links",), "attention", values=(-2, "n_heads")),
    Member("attention.query", "<i4", ("n_links",), "attention", values=(0, "seq_len")),
    Member("attention.key", "<i4", ("n_links",), "attention", values=(0, "seq_len")),
    Member("attention.weight", "<f4", ("n_links",), "attention"),
    Member("lens.topk_ids", "<i4", ("n_rows", "seq_len", "k_lens"), "lens", values=(0, "d_vocab")),
    Member("lens.topk_probs", "<f4", ("n_rows", "seq_len", "k_lens"), "lens"),
    Member("lens.entropy", "<f4", ("n_rows", "seq_len"), "lens"),
    Member("lens.kl_to_final", "<f4", ("n_rows", "seq_len"), "lens"),
    Member("lens.next_prob", "<f4", ("n_rows", "seq_len"), "lens"),
    Member("lens.next_rank", "<i4", ("n_rows", "seq_len"), "lens"),
    Member("lens.final_top_prob", "<f4", ("n_rows", "seq_len"), "lens"),
    Member("lens.final_top_rank", "<i4", ("n_rows", "seq_len"), "lens"),
)


@dataclass(frozen=True)
class Contents:
    """What a record file holds, checked.

    Attributes:
        meta: ``meta.json`` with ``scalars`` and ``strings`` checked (``version`` is
            :data:`FORMAT_VERSION` after any upgrade).
        arrays: member name (without ``.npy``) -> array, in native byte order.
    """

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class FileFormat:
    """One readable format version.

    Attributes:
        members: its ``.npy`` members.
        upgrade: turns what was read into the next version's contents (``None`` for
            the current version).
    """

    members: tuple[Member, ...]
    upgrade: Callable[[Contents], Contents] | None = None


#: Members of version 2: those of version 1; ranks are 1-based (1 = top) where
#: version 1 counted from 0.
MEMBERS_V2 = MEMBERS_V1
_RANK_MEMBERS = ("next_rank", "lens.next_rank", "lens.final_top_rank")


def _ranks_from_one(contents: Contents) -> Contents:
    """Version 1 -> 2: ranks counted from 1 (-1, "no token", stays)."""
    arrays = dict(contents.arrays)
    for name in _RANK_MEMBERS:
        if name in arrays:
            a = arrays[name]
            arrays[name] = np.where(a >= 0, a + 1, a).astype(a.dtype)
    return Contents(meta={**contents.meta, "version": 2}, arrays=arrays)


#: Every version this coilvis reads.
FORMATS: dict[int, FileFormat] = {1: FileFormat(MEMBERS_V1, upgrade=_ranks_from_one), 2: FileFormat(MEMBERS_V2)}


@dataclass(frozen=True)
class Source:
    """The file being read, as error messages name it.

    Attributes:
        path: its path (or a path and a member: ``"x.coilcmp (member 'a.coil')"``).
        kind: the kind of coilvis file it should be (``"record"``, ``"comparison"``).
    """

    path: Path | str
    kind: str = "record"

    def bad(self, detail: str) -> RecordFormatError:
        """``path: P is not a valid coilvis KIND: detail``."""
        return RecordFormatError(f"path: {self.path} is not a valid coilvis {self.kind}: {detail}")


#: What a damaged zip or member makes zipfile, zlib, json and numpy raise.
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    KeyError,
    ValueError,
    TypeError,
    OSError,
    EOFError,
    RecursionError,
    RuntimeError,  # an encrypted member
    NotImplementedError,  # an unknown compression method
)


@contextlib.contextmanager
def refusing(src: Source) -> Iterator[None]:
    """Turn any of :data:`ZIP_ERRORS` raised inside into a :class:`RecordFormatError` naming ``src``."""
    try:
        yield
    except RecordFormatError:
        raise
    except ZIP_ERRORS as exc:
        raise src.bad(f"{type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------------------ write


def encode_meta(meta: Mapping[str, Any]) -> bytes:
    """``meta.json``'s bytes: compact, ASCII (``\\u`` escapes keep lone surrogates).

    Raises:
        CoilvisTypeError: a value (in ``extra``) is not JSON-serialisable.
        CoilvisValueError: a value refers to itself.
    """
    try:
        text = json.dumps(meta, ensure_ascii=True, separators=(",", ":"))
    except TypeError as exc:
        raise CoilvisTypeError(f"extra: cannot be saved as JSON ({exc})") from exc
    except ValueError as exc:
        raise CoilvisValueError(f"extra: cannot be saved as JSON ({exc})") from exc
    return text.encode("ascii")


def add_member(zf: zipfile.ZipFile, name: str, data: bytes, *, stored: bool = False) -> None:
    """Add one member with fixed timestamp and attributes: deflated, or as is with ``stored``."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, on every platform
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compresslevel=None if stored else 6)


def write_record_file(handle: IO[bytes], meta_json: bytes, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a record file to ``handle`` (seekable), deterministically.

    Args:
        handle: an open binary file.
        meta_json: ``meta.json``'s bytes (see :func:`encode_meta`).
        arrays: member name (without ``.npy``) -> array, for the members of the parts
            the record has; each is written in its table dtype, in table order.
    """
    with zipfile.ZipFile(handle, "w") as zf:
        add_member(zf, _META, meta_json)
        write_members(zf, FORMATS[FORMAT_VERSION].members, arrays)


def write_members(zf: zipfile.ZipFile, members: Iterable[Member], arrays: Mapping[str, np.ndarray]) -> None:
    """Add the ``.npy`` member of every array in ``arrays``, in its table dtype, in table order."""
    for member in members:
        if member.name in arrays:
            buf = io.BytesIO()
            arr = np.ascontiguousarray(arrays[member.name], dtype=np.dtype(member.dtype))
            np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
            add_member(zf, f"{member.name}.npy", buf.getvalue())


# ------------------------------------------------------------------------------ read


def read_record_file(path: Path | str, *, handle: IO[bytes] | None = None) -> Contents:
    """Read and check a record file (see the module docstring).

    Args:
        path: the file; with ``handle``, only the name error messages give it.
        handle: an open, seekable binary file holding the record (say, a member of
            another coilvis file); left open.

    Raises:
        OSError: the file cannot be opened.
        RecordFormatError: anything about the file is wrong; the message names
            ``path`` (and the member).
    """
    if handle is None:
        with open(path, "rb") as fh:
            return read_record_file(path, handle=fh)
    src = Source(path)
    with refusing(src):
        check_directory_size(handle, src)
        with zipfile.ZipFile(handle) as zf:
            return _read_zip(zf, src)


def check_directory_size(fh: IO[bytes], src: Source) -> None:
    """Refuse a zip whose central directory is huge, before zipfile parses it."""
    size = fh.seek(0, io.SEEK_END)
    tail_len = min(size, 22 + 65_535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at >= 0 and len(tail) - at >= 22:
        directory_bytes = int.from_bytes(tail[at + 12 : at + 16], "little")
        if directory_bytes > DIRECTORY_MAX_BYTES:
            raise src.bad(f"its zip directory takes {directory_bytes} bytes (at most {DIRECTORY_MAX_BYTES})")
    fh.seek(0)


def member_names(zf: zipfile.ZipFile, src: Source) -> set[str]:
    """The names of a zip's members, each there once."""
    seen: set[str] = set()
    for name in zf.namelist():
        if name in seen:
            raise src.bad(f"member {name!r} is there twice")
        seen.add(name)
    if _META not in seen:
        raise src.bad(f"member {_META!r} is missing")
    return seen


def check_members(names: Iterable[str], wanted: set[str], src: Source) -> None:
    """Refuse a member not in ``wanted`` (zip order), then one of ``wanted`` missing."""
    names = list(names)
    for name in names:
        if name not in wanted:
            raise src.bad(f"unexpected member {name!r}")
    missing = sorted(wanted - set(names))
    if missing:
        raise src.bad(f"member {missing[0]!r} is missing")


def _read_zip(zf: zipfile.ZipFile, src: Source) -> Contents:
    member_names(zf, src)
    meta = read_meta(zf, src, format_name="coilvis.record")
    version = check_version(meta.get("version"), src, formats=FORMATS)
    sizes = _check_meta(meta, src)
    fmt = FORMATS[version]
    members = [m for m in fmt.members if m.part == "" or m.part in sizes["parts"]]
    check_members(zf.namelist(), {_META} | {f"{m.name}.npy" for m in members}, src)
    arrays, _ = read_members(zf, members, sizes, _free_dim_bounds(sizes), src)
    contents = Contents(meta=meta, arrays=arrays)
    while version != FORMAT_VERSION:
        upgrade = FORMATS[version].upgrade
        assert upgrade is not None, f"format version {version} has no upgrade"
        contents, version = upgrade(contents), version + 1
    return contents


def read_members(
    zf: zipfile.ZipFile, members: list[Member], sizes: Mapping[str, Any], bounds: Mapping[str, int], src: Source
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Read ``.npy`` members after checking every header against the table.

    Args:
        zf: the open zip.
        members: the members to read, all there.
        sizes: the sizes known before reading (ints; other values are ignored).
        bounds: an upper bound for every size first read from a header.
        src: the file, for error messages.

    Returns:
        ``(arrays, dims)``: member name -> array (native byte order), and every size.
    """
    headers = {m.name: _read_header(zf, m, src) for m in members}
    dims = _resolve_dims(members, headers, sizes, bounds, src)
    arrays = {m.name: _read_data(zf, m, headers[m.name], src) for m in members}
    for m in members:
        _check_values(m, arrays[m.name], dims, src)
    return arrays, dims


def read_meta(zf: zipfile.ZipFile, src: Source, *, format_name: str) -> dict[str, Any]:
    """``meta.json`` (at most :data:`META_MAX_BYTES`), a JSON object whose ``format`` is ``format_name``."""
    info = zf.getinfo(_META)
    if info.file_size > META_MAX_BYTES:
        raise src.bad(f"member {_META!r} holds {info.file_size} bytes (at most {META_MAX_BYTES})")
    with zf.open(info) as fh:
        meta = json.loads(fh.read(META_MAX_BYTES + 1).decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        raise RecordFormatError(f"path: {src.path} is not a coilvis {src.kind} file")
    return meta


def check_version(value: Any, src: Source, *, formats: Mapping[int, Any]) -> int:
    """``meta.json``'s ``version``: an int among ``formats``; a newer one asks for an upgrade."""
    shown = json.dumps(value)[:40] if isinstance(value, (bool, int, float, str, type(None))) else type(value).__name__
    oldest, newest = min(formats), max(formats)
    if isinstance(value, bool) or not isinstance(value, int):
        raise src.bad(f"its format version {shown} is not an integer (this coilvis reads {oldest} to {newest})")
    if value > newest:
        raise RecordFormatError(
            f"path: {src.path} has {src.kind} format version {shown}, newer than this coilvis reads "
            f"({newest}); upgrade coilvis (pip install -U coilvis)"
        )
    if value not in formats:
        raise src.bad(f"its format version {shown} does not exist (versions start at 1; this coilvis reads {oldest} to {newest})")
    return value


def string_list(value: Any, what: str, src: Source) -> list[str]:
    """``value`` if it is a list of strings (``what`` names it in ``meta.json``)."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise src.bad(f"meta.json {what} must be a list of strings")
    return value


def meta_int(value: Any, what: str, src: Source, minimum: int) -> int:
    """``value`` if it is an int of at least ``minimum`` (``what`` names it in ``meta.json``)."""
    try:
        return check_int(f"meta.json {what}", value, minimum=minimum)
    except CoilvisError as exc:
        raise src.bad(str(exc)) from None


def _check_meta(meta: dict[str, Any], src: Source) -> dict[str, Any]:
    """Check ``scalars`` and ``strings`` in place; return the sizes they give."""
    scalars, strings = meta.get("scalars"), meta.get("strings")
    if not isinstance(scalars, dict) or not isinstance(strings, dict):
        raise src.bad("meta.json needs the objects 'scalars' and 'strings'")
    tokens = string_list(strings.get("tokens"), "strings.tokens", src)
    if not tokens:
        raise src.bad("meta.json strings.tokens is empty (a record has at least one position)")
    sizes: dict[str, Any] = {
        "seq_len": len(tokens),
        "n_vocab": len(string_list(strings.get("vocab_text"), "strings.vocab_text", src)),
        "d_vocab": meta_int(scalars.get("d_vocab"), "scalars.d_vocab", src, 1),
        "parts": set(),
    }
    for key in ("model_name", "prompt"):
        if not isinstance(scalars.get(key), (str, type(None))):
            raise src.bad(f"meta.json scalars.{key} must be a string or null")
    if not isinstance(scalars.get("extra"), (dict, type(None))):
        raise src.bad("meta.json scalars.extra must be an object or null")
    if "lens_layer_names" in strings:
        sizes["n_rows"] = len(string_list(strings["lens_layer_names"], "strings.lens_layer_names", src))
        sizes["parts"].add("lens")
    if "attention" in scalars:
        att = scalars["attention"]
        if not isinstance(att, dict):
            raise src.bad("meta.json scalars.attention must be an object")
        for key in ("n_layers", "n_heads", "top_k"):
            sizes[key] = meta_int(att.get(key), f"scalars.attention.{key}", src, 0)
        weight = att.get("min_weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise src.bad("meta.json scalars.attention.min_weight must be a finite number")
        sizes["parts"].add("attention")
    return sizes


def _read_npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, src: Source) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` from the start of a member."""
    try:
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise src.bad(f"member {info.filename!r} has .npy version {version} (expected 1.0 or 2.0)")
            return shape, fortran, dtype, fh.tell()
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as exc:
        if isinstance(exc, RecordFormatError):
            raise
        raise src.bad(f"member {info.filename!r} has no readable .npy header ({exc})") from exc


def _read_header(zf: zipfile.ZipFile, member: Member, src: Source) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, data offset)`` of a member, checked against the table and its size."""
    name = f"{member.name}.npy"
    info = zf.getinfo(name)
    shape, fortran, dtype, offset = _read_npy_header(zf, info, src)
    want = np.dtype(member.dtype)
    if dtype.hasobject or dtype.newbyteorder("<") != want:
        raise src.bad(f"member {name!r} has dtype {dtype.str}, expected {want.str}")
    if fortran and len(shape) > 1:
        raise src.bad(f"member {name!r} is in Fortran order")
    if len(shape) != len(member.dims) or any(n < 0 for n in shape):
        raise src.bad(f"member {name!r} has shape {shape}, expected ({', '.join(member.dims)})")
    nbytes = math.prod(shape) * want.itemsize
    if info.file_size != offset + nbytes:
        raise src.bad(f"member {name!r} holds {info.file_size - offset} data bytes, its shape {shape} needs {nbytes}")
    return dtype, tuple(shape), offset


def _free_dim_bounds(sizes: dict[str, Any]) -> dict[str, int]:
    """Upper bounds of the sizes first read from headers."""
    n_links = sizes.get("n_layers", 0) * (sizes.get("n_heads", 0) + 2) * sizes["seq_len"] ** 2
    return {"k": sizes["d_vocab"], "k_lens": sizes["d_vocab"], "n_links": n_links}


def _resolve_dims(
    members: list[Member], headers: dict[str, Any], sizes: Mapping[str, Any], bounds: Mapping[str, int], src: Source
) -> dict[str, int]:
    dims = {k: v for k, v in sizes.items() if isinstance(v, int) and not isinstance(v, bool)}
    for member in members:
        shape = headers[member.name][1]
        for dim, n in zip(member.dims, shape):
            if dim not in dims:
                if n > bounds[dim]:
                    raise src.bad(f"member '{member.name}.npy' has {dim} = {n}, more than {bounds[dim]}")
                dims[dim] = n
        want = tuple(dims[d] for d in member.dims)
        if shape != want:
            named = ", ".join(f"{d}={n}" for d, n in zip(member.dims, want))
            raise src.bad(f"member '{member.name}.npy' has shape {shape}, expected ({named})")
    return dims


def _read_data(zf: zipfile.ZipFile, member: Member, header: tuple[np.dtype, tuple[int, ...], int], src: Source) -> np.ndarray:
    dtype, shape, offset = header
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1).view(np.uint8)
    try:
        with zf.open(f"{member.name}.npy") as fh:
            fh.read(offset)
            at = 0
            while at < flat.size:
                chunk = fh.read(min(_CHUNK_BYTES, flat.size - at))
                if not chunk:
                    raise EOFError("the data ends early")
                flat[at : at + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                at += len(chunk)
            fh.read(1)  # reaches the end, so zipfile checks the CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise src.bad(f"member '{member.name}.npy' cannot be read ({exc})") from exc
    return out.astype(dtype.newbyteorder("="), copy=False)


def _check_values(member: Member, arr: np.ndarray, dims: dict[str, int], src: Source) -> None:
    if member.values is not None and arr.size:
        low, high_name = member.values
        high = dims[high_name]
        bad = np.flatnonzero((arr < low) | (arr >= high))
        if bad.size:
            raise src.bad(
                f"member '{member.name}.npy' holds {arr.reshape(-1)[bad[0]]} at flat index {bad[0]}, "
                f"outside [{low}, {high_name}={high})",
            )
    if member.unique and np.unique(arr).size != arr.size:
        raise src.bad(f"member '{member.name}.npy' holds a value twice")
