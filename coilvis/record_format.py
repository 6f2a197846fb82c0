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
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from collections.abc import Callable, Mapping
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
    "encode_meta",
    "read_record_file",
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


def _bad(path: Path, detail: str) -> RecordFormatError:
    return RecordFormatError(f"path: {path} is not a valid coilvis record: {detail}")


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


def _add_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, on every platform
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compresslevel=6)


def write_record_file(handle: IO[bytes], meta_json: bytes, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a record file to ``handle`` (seekable), deterministically.

    Args:
        handle: an open binary file.
        meta_json: ``meta.json``'s bytes (see :func:`encode_meta`).
        arrays: member name (without ``.npy``) -> array, for the members of the parts
            the record has; each is written in its table dtype, in table order.
    """
    with zipfile.ZipFile(handle, "w") as zf:
        _add_member(zf, _META, meta_json)
        for member in FORMATS[FORMAT_VERSION].members:
            if member.name in arrays:
                buf = io.BytesIO()
                arr = np.ascontiguousarray(arrays[member.name], dtype=np.dtype(member.dtype))
                np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
                _add_member(zf, f"{member.name}.npy", buf.getvalue())


# ------------------------------------------------------------------------------ read


def read_record_file(path: Path) -> Contents:
    """Read and check a record file (see the module docstring).

    Raises:
        OSError: the file cannot be opened.
        RecordFormatError: anything about the file is wrong; the message names
            ``path`` (and the member).
    """
    with open(path, "rb") as fh:
        try:
            _check_directory_size(fh, path)
            with zipfile.ZipFile(fh) as zf:
                return _read_zip(zf, path)
        except RecordFormatError:
            raise
        except (
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
        ) as exc:
            raise _bad(path, f"{type(exc).__name__}: {exc}") from exc


def _check_directory_size(fh: IO[bytes], path: Path) -> None:
    """Refuse a zip whose central directory is huge, before zipfile parses it."""
    size = fh.seek(0, io.SEEK_END)
    tail_len = min(size, 22 + 65_535)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at >= 0 and len(tail) - at >= 22:
        directory_bytes = int.from_bytes(tail[at + 12 : at + 16], "little")
        if directory_bytes > DIRECTORY_MAX_BYTES:
            raise _bad(path, f"its zip directory takes {directory_bytes} bytes (at most {DIRECTORY_MAX_BYTES})")
    fh.seek(0)


def _read_zip(zf: zipfile.ZipFile, path: Path) -> Contents:
    names = zf.namelist()
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _bad(path, f"member {name!r} is there twice")
        seen.add(name)
    if _META not in seen:
        raise _bad(path, f"member {_META!r} is missing")
    meta = _read_meta(zf, path)
    version = _check_version(meta.get("version"), path)
    sizes = _check_meta(meta, path)
    fmt = FORMATS[version]
    members = [m for m in fmt.members if m.part == "" or m.part in sizes["parts"]]
    wanted = {_META} | {f"{m.name}.npy" for m in members}
    for name in names:
        if name not in wanted:
            raise _bad(path, f"unexpected member {name!r}")
    missing = sorted(wanted - seen)
    if missing:
        raise _bad(path, f"member {missing[0]!r} is missing")
    headers = {m.name: _read_header(zf, m, path) for m in members}
    dims = _resolve_dims(members, headers, sizes, path)
    arrays = {m.name: _read_data(zf, m, headers[m.name], path) for m in members}
    for m in members:
        _check_values(m, arrays[m.name], dims, path)
    contents = Contents(meta=meta, arrays=arrays)
    while version != FORMAT_VERSION:
        upgrade = FORMATS[version].upgrade
        assert upgrade is not None, f"format version {version} has no upgrade"
        contents, version = upgrade(contents), version + 1
    return contents


def _read_meta(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    info = zf.getinfo(_META)
    if info.file_size > META_MAX_BYTES:
        raise _bad(path, f"member {_META!r} holds {info.file_size} bytes (at most {META_MAX_BYTES})")
    with zf.open(info) as fh:
        meta = json.loads(fh.read(META_MAX_BYTES + 1).decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != "coilvis.record":
        raise RecordFormatError(f"path: {path} is not a coilvis record file")
    return meta


def _check_version(value: Any, path: Path) -> int:
    shown = json.dumps(value)[:40] if isinstance(value, (bool, int, float, str, type(None))) else type(value).__name__
    newest = max(FORMATS)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, f"its format version {shown} is not an integer (this coilvis reads {min(FORMATS)} to {newest})")
    if value > newest:
        raise RecordFormatError(
            f"path: {path} has record format version {shown}, newer than this coilvis reads "
            f"({newest}); upgrade coilvis (pip install -U coilvis)"
        )
    if value not in FORMATS:
        raise _bad(path, f"its format version {shown} does not exist (versions start at 1; this coilvis reads {min(FORMATS)} to {newest})")
    return value


def _string_list(value: Any, what: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _bad(path, f"meta.json {what} must be a list of strings")
    return value


def _meta_int(value: Any, what: str, path: Path, minimum: int) -> int:
    try:
        return check_int(f"meta.json {what}", value, minimum=minimum)
    except CoilvisError as exc:
        raise _bad(path, str(exc)) from None


def _check_meta(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check ``scalars`` and ``strings`` in place; return the sizes they give."""
    scalars, strings = meta.get("scalars"), meta.get("strings")
    if not isinstance(scalars, dict) or not isinstance(strings, dict):
        raise _bad(path, "meta.json needs the objects 'scalars' and 'strings'")
    tokens = _string_list(strings.get("tokens"), "strings.tokens", path)
    if not tokens:
        raise _bad(path, "meta.json strings.tokens is empty (a record has at least one position)")
    sizes: dict[str, Any] = {
        "seq_len": len(tokens),
        "n_vocab": len(_string_list(strings.get("vocab_text"), "strings.vocab_text", path)),
        "d_vocab": _meta_int(scalars.get("d_vocab"), "scalars.d_vocab", path, 1),
        "parts": set(),
    }
    for key in ("model_name", "prompt"):
        if not isinstance(scalars.get(key), (str, type(None))):
            raise _bad(path, f"meta.json scalars.{key} must be a string or null")
    if not isinstance(scalars.get("extra"), (dict, type(None))):
        raise _bad(path, "meta.json scalars.extra must be an object or null")
    if "lens_layer_names" in strings:
        sizes["n_rows"] = len(_string_list(strings["lens_layer_names"], "strings.lens_layer_names", path))
        sizes["parts"].add("lens")
    if "attention" in scalars:
        att = scalars["attention"]
        if not isinstance(att, dict):
            raise _bad(path, "meta.json scalars.attention must be an object")
        for key in ("n_layers", "n_heads", "top_k"):
            sizes[key] = _meta_int(att.get(key), f"scalars.attention.{key}", path, 0)
        weight = att.get("min_weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise _bad(path, "meta.json scalars.attention.min_weight must be a finite number")
        sizes["parts"].add("attention")
    return sizes


def _read_npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, data offset)`` from the start of a member."""
    try:
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise _bad(path, f"member {info.filename!r} has .npy version {version} (expected 1.0 or 2.0)")
            return shape, fortran, dtype, fh.tell()
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as exc:
        if isinstance(exc, RecordFormatError):
            raise
        raise _bad(path, f"member {info.filename!r} has no readable .npy header ({exc})") from exc


def _read_header(zf: zipfile.ZipFile, member: Member, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, data offset)`` of a member, checked against the table and its size."""
    name = f"{member.name}.npy"
    info = zf.getinfo(name)
    shape, fortran, dtype, offset = _read_npy_header(zf, info, path)
    want = np.dtype(member.dtype)
    if dtype.hasobject or dtype.newbyteorder("<") != want:
        raise _bad(path, f"member {name!r} has dtype {dtype.str}, expected {want.str}")
    if fortran and len(shape) > 1:
        raise _bad(path, f"member {name!r} is in Fortran order")
    if len(shape) != len(member.dims) or any(n < 0 for n in shape):
        raise _bad(path, f"member {name!r} has shape {shape}, expected ({', '.join(member.dims)})")
    nbytes = math.prod(shape) * want.itemsize
    if info.file_size != offset + nbytes:
        raise _bad(path, f"member {name!r} holds {info.file_size - offset} data bytes, its shape {shape} needs {nbytes}")
    return dtype, tuple(shape), offset


def _free_dim_bounds(sizes: dict[str, Any]) -> dict[str, int]:
    """Upper bounds of the sizes first read from headers."""
    n_links = sizes.get("n_layers", 0) * (sizes.get("n_heads", 0) + 2) * sizes["seq_len"] ** 2
    return {"k": sizes["d_vocab"], "k_lens": sizes["d_vocab"], "n_links": n_links}


def _resolve_dims(members: list[Member], headers: dict[str, Any], sizes: dict[str, Any], path: Path) -> dict[str, int]:
    dims = {k: v for k, v in sizes.items() if isinstance(v, int)}
    bounds = _free_dim_bounds(sizes)
    for member in members:
        shape = headers[member.name][1]
        for dim, n in zip(member.dims, shape):
            if dim not in dims:
                if n > bounds[dim]:
                    raise _bad(path, f"member '{member.name}.npy' has {dim} = {n}, more than {bounds[dim]}")
                dims[dim] = n
        want = tuple(dims[d] for d in member.dims)
        if shape != want:
            named = ", ".join(f"{d}={n}" for d, n in zip(member.dims, want))
            raise _bad(path, f"member '{member.name}.npy' has shape {shape}, expected ({named})")
    return dims


def _read_data(zf: zipfile.ZipFile, member: Member, header: tuple[np.dtype, tuple[int, ...], int], path: Path) -> np.ndarray:
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
        raise _bad(path, f"member '{member.name}.npy' cannot be read ({exc})") from exc
    return out.astype(dtype.newbyteorder("="), copy=False)


def _check_values(member: Member, arr: np.ndarray, dims: dict[str, int], path: Path) -> None:
    if member.values is not None and arr.size:
        low, high_name = member.values
        high = dims[high_name]
        bad = np.flatnonzero((arr < low) | (arr >= high))
        if bad.size:
            raise _bad(
                path,
                f"member '{member.name}.npy' holds {arr.reshape(-1)[bad[0]]} at flat index {bad[0]}, "
                f"outside [{low}, {high_name}={high})",
            )
    if member.unique and np.unique(arr).size != arr.size:
        raise _bad(path, f"member '{member.name}.npy' holds a value twice")
