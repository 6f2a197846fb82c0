"""The comparison file format: two record files and a comparison's arrays in one zip, written deterministically, read trusting nothing.

A comparison file (suffix :data:`SUFFIX` by convention; any name is read) is a zip
archive holding, in this order:

* ``meta.json``: ``{"format": "coilvis.comparison", "version": 1, "coilvis_version":
  ..., "scalars": {...}, "strings": {...}}``. ``scalars`` holds ``n_pos``, ``offset_a``,
  ``offset_b``, ``label_a``, ``label_b``, free-form ``extra``, and, when there are
  ones, ``metric`` (``{"plus_ids": [...], "minus_ids": [...]}``) and ``lens``
  (``{"exact": bool, "metric": bool}``); ``strings`` holds ``vocab_text`` (one string
  per entry of the ``vocab_ids`` array), ``metric_plus`` and ``metric_minus`` (the
  metric's token texts) and ``lens_layer_names``.
* ``a.coil`` and ``b.coil``: the two runs, each a whole record file
  (:mod:`coilvis.record_format`), stored as is (no second compression, and no way for
  the outer zip to inflate them).
* one ``.npy`` member per array, from :data:`MEMBERS_V1` (dtypes and shapes named by
  sizes: ``n_pos`` and ``n_rows`` from ``meta.json``, ``d_vocab`` from the records,
  ``n_movers`` first read from a header).

Writing reuses the record writer: members in table order, a fixed zip timestamp and
attributes, compact JSON; the same comparison gives the same bytes everywhere.

Reading reuses the record reader: ``meta.json`` capped and checked, then each inner
record read by :func:`~coilvis.record_format.read_record_file` in place (its errors
name ``"PATH (member 'a.coil')"``), then every ``.npy`` header checked against the
table and the sizes before any array is read. Cross-checks: both records come from one
vocabulary size, ``offset + n_pos`` lies within each record, mover, vocabulary and
metric ids lie in ``[0, d_vocab)``, the lens has one row per layer name. Anything else
raises :class:`~coilvis.errors.RecordFormatError` naming the path. Versions are a
table (:data:`FORMATS`), as for records.
"""

from __future__ import annotations

import errno
import io
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from coilvis.record_format import (
    Contents,
    FileFormat,
    Member,
    Source,
    add_member,
    check_directory_size,
    check_members,
    check_version,
    member_names,
    meta_int,
    read_members,
    read_meta,
    read_record_file,
    refusing,
    string_list,
    write_members,
    write_record_file,
)

__all__ = [
    "FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MEMBERS_V1",
    "RECORD_MEMBERS",
    "SUFFIX",
    "ComparisonContents",
    "read_comparison_file",
    "record_file_bytes",
    "write_comparison_file",
]

#: ``meta.json``'s ``format``.
FORMAT_NAME = "coilvis.comparison"
#: The version :func:`write_comparison_file` writes.
FORMAT_VERSION = 1
#: The suffix comparison files are given by convention.
SUFFIX = ".coilcmp"
#: The members holding run a's and run b's record files.
RECORD_MEMBERS = ("a.coil", "b.coil")

_META = "meta.json"
_CHUNK_BYTES = 2**20

_DIVERGENCES = ("kl_ab", "kl_ba", "js", "tv")

# ``exact`` is stored as uint8 (0 or 1): a bool member could hold any byte
MEMBERS_V1: tuple[Member, ...] = (
    *(Member(name, "<f4", ("n_pos",)) for name in _DIVERGENCES),
    Member("exact", "|u1", ("n_pos",), values=(0, "bool")),
    Member("delta_next_logprob", "<f4", ("n_pos",)),
    *(
        m
        for direction in ("rise", "fall")
        for m in (
            Member(f"{direction}_ids", "<i8", ("n_pos", "n_movers"), values=(0, "d_vocab")),
            Member(f"{direction}_prob_a", "<f4", ("n_pos", "n_movers")),
            Member(f"{direction}_prob_b", "<f4", ("n_pos", "n_movers")),
        )
    ),
    Member("vocab_ids", "<i8", ("n_vocab",), values=(0, "d_vocab"), unique=True),
    Member("metric_a", "<f4", ("n_pos",), "metric"),
    Member("metric_b", "<f4", ("n_pos",), "metric"),
    *(Member(f"lens.{name}", "<f4", ("n_rows", "n_pos"), "lens") for name in _DIVERGENCES),
    Member("lens.metric_a", "<f4", ("n_rows", "n_pos"), "lens_metric"),
    Member("lens.metric_b", "<f4", ("n_rows", "n_pos"), "lens_metric"),
)

#: Every version this coilvis reads.
FORMATS: dict[int, FileFormat] = {1: FileFormat(MEMBERS_V1)}


@dataclass(frozen=True)
class ComparisonContents:
    """What a comparison file holds, checked.

    Attributes:
        meta: ``meta.json`` (``version`` is :data:`FORMAT_VERSION` after any upgrade).
        a: run a's record file, checked (see :func:`~coilvis.record_format.read_record_file`).
        b: run b's.
        arrays: member name (without ``.npy``) -> array, in native byte order.
    """

    meta: dict[str, Any]
    a: Contents
    b: Contents
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


# ------------------------------------------------------------------------------ write


def record_file_bytes(meta_json: bytes, arrays: Mapping[str, np.ndarray]) -> bytes:
    """A whole record file in memory (see :func:`~coilvis.record_format.write_record_file`)."""
    buf = io.BytesIO()
    write_record_file(buf, meta_json, arrays)
    return buf.getvalue()


def write_comparison_file(handle: IO[bytes], meta_json: bytes, records: tuple[bytes, bytes], arrays: Mapping[str, np.ndarray]) -> None:
    """Write a comparison file to ``handle`` (seekable), deterministically.

    Args:
        handle: an open binary file.
        meta_json: ``meta.json``'s bytes (see :func:`~coilvis.record_format.encode_meta`).
        records: run a's and run b's record files (see :func:`record_file_bytes`).
        arrays: member name (without ``.npy``) -> array, for the members of the parts
            the comparison has.
    """
    with zipfile.ZipFile(handle, "w") as zf:
        add_member(zf, _META, meta_json)
        for name, data in zip(RECORD_MEMBERS, records, strict=True):
            add_member(zf, name, data, stored=True)
        write_members(zf, FORMATS[FORMAT_VERSION].members, arrays)


# ------------------------------------------------------------------------------ read


def read_comparison_file(path: Path) -> ComparisonContents:
    """Read and check a comparison file (see the module docstring).

    Raises:
        OSError: the file cannot be opened.
        RecordFormatError: anything about the file, or a record in it, is wrong; the
            message names ``path`` (and the member).
    """
    src = Source(path, kind="comparison")
    with open(path, "rb") as fh, refusing(src):
        check_directory_size(fh, src)
        with zipfile.ZipFile(fh) as zf:
            return _read_zip(fh, zf, src)


def _read_zip(fh: IO[bytes], zf: zipfile.ZipFile, src: Source) -> ComparisonContents:
    member_names(zf, src)
    meta = read_meta(zf, src, format_name=FORMAT_NAME)
    version = check_version(meta.get("version"), src, formats=FORMATS)
    sizes = _check_meta(meta, src)
    members = [m for m in FORMATS[version].members if m.part == "" or m.part in sizes["parts"]]
    check_members(zf.namelist(), {_META, *RECORD_MEMBERS} | {f"{m.name}.npy" for m in members}, src)
    a, b = (_read_record(fh, zf, name, src) for name in RECORD_MEMBERS)
    _check_records(meta, sizes, a, b, src)
    # compare_records draws movers from both runs' top-k lists: at most 2 d_vocab
    arrays, _ = read_members(zf, members, sizes, {"n_movers": 2 * sizes["d_vocab"]}, src)
    contents = Contents(meta=meta, arrays=arrays)
    while version != FORMAT_VERSION:
        upgrade = FORMATS[version].upgrade
        assert upgrade is not None, f"comparison format version {version} has no upgrade"
        contents, version = upgrade(contents), version + 1
    return ComparisonContents(meta=contents.meta, a=a, b=b, arrays=contents.arrays)


def _check_meta(meta: dict[str, Any], src: Source) -> dict[str, Any]:
    """Check ``scalars`` and ``strings``; return the sizes they give."""
    scalars, strings = meta.get("scalars"), meta.get("strings")
    if not isinstance(scalars, dict) or not isinstance(strings, dict):
        raise src.bad("meta.json needs the objects 'scalars' and 'strings'")
    sizes: dict[str, Any] = {
        "n_pos": meta_int(scalars.get("n_pos"), "scalars.n_pos", src, 1),
        "offset_a": meta_int(scalars.get("offset_a"), "scalars.offset_a", src, 0),
        "offset_b": meta_int(scalars.get("offset_b"), "scalars.offset_b", src, 0),
        "n_vocab": len(string_list(strings.get("vocab_text"), "strings.vocab_text", src)),
        "bool": 2,
        "parts": set(),
    }
    for key in ("label_a", "label_b"):
        if not isinstance(scalars.get(key), str):
            raise src.bad(f"meta.json scalars.{key} must be a string")
    if not isinstance(scalars.get("extra"), (dict, type(None))):
        raise src.bad("meta.json scalars.extra must be an object or null")
    _check_metric_meta(scalars, strings, sizes, src)
    if ("lens" in scalars) != ("lens_layer_names" in strings):
        raise src.bad("meta.json has scalars.lens and strings.lens_layer_names, or neither")
    if "lens" in scalars:
        lens = scalars["lens"]
        if not isinstance(lens, dict) or not all(isinstance(lens.get(key), bool) for key in ("exact", "metric")):
            raise src.bad("meta.json scalars.lens must be an object with the booleans 'exact' and 'metric'")
        sizes["n_rows"] = len(string_list(strings["lens_layer_names"], "strings.lens_layer_names", src))
        sizes["parts"].add("lens")
        if lens["metric"]:
            sizes["parts"].add("lens_metric")
    return sizes


def _check_metric_meta(scalars: dict[str, Any], strings: dict[str, Any], sizes: dict[str, Any], src: Source) -> None:
    """``scalars.metric``: token ids of both sides, one text each in ``strings``."""
    if {"metric" in scalars, "metric_plus" in strings, "metric_minus" in strings} != {"metric" in scalars}:
        raise src.bad("meta.json has scalars.metric, strings.metric_plus and strings.metric_minus, or none of them")
    if "metric" not in scalars:
        return
    metric = scalars["metric"]
    if not isinstance(metric, dict):
        raise src.bad("meta.json scalars.metric must be an object")
    for side in ("plus", "minus"):
        ids = metric.get(f"{side}_ids")
        if not isinstance(ids, list) or not ids:
            raise src.bad(f"meta.json scalars.metric.{side}_ids must be a non-empty list of token ids")
        for i, token_id in enumerate(ids):
            meta_int(token_id, f"scalars.metric.{side}_ids[{i}]", src, 0)
        texts = string_list(strings[f"metric_{side}"], f"strings.metric_{side}", src)
        if len(texts) != len(ids):
            raise src.bad(f"meta.json strings.metric_{side} holds {len(texts)} texts for {len(ids)} token ids")
    sizes["parts"].add("metric")


def _check_records(meta: dict[str, Any], sizes: dict[str, Any], a: Contents, b: Contents, src: Source) -> None:
    """The two runs share a vocabulary; the compared positions and the metric's tokens exist; sets ``d_vocab``."""
    d_vocab = a.meta["scalars"]["d_vocab"]
    if b.meta["scalars"]["d_vocab"] != d_vocab:
        raise src.bad(f"its records come from vocabularies of {d_vocab} (a.coil) and {b.meta['scalars']['d_vocab']} (b.coil) tokens")
    sizes["d_vocab"] = d_vocab
    n_pos = sizes["n_pos"]
    for run, contents in zip("ab", (a, b)):
        seq_len, offset = len(contents.meta["strings"]["tokens"]), sizes[f"offset_{run}"]
        if offset + n_pos > seq_len:
            raise src.bad(
                f"meta.json scalars.offset_{run} = {offset} + n_pos = {n_pos} passes the end of {run}.coil ({seq_len} positions)"
            )
    metric = meta["scalars"].get("metric") or {}
    for side in ("plus", "minus"):
        for token_id in metric.get(f"{side}_ids", ()):
            if token_id >= d_vocab:
                raise src.bad(f"meta.json scalars.metric.{side}_ids holds {token_id}, outside [0, d_vocab={d_vocab})")


def _read_record(fh: IO[bytes], zf: zipfile.ZipFile, name: str, src: Source) -> Contents:
    """A record member, read in place by the record reader (no copy of its bytes)."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise src.bad(f"member {name!r} is compressed or encrypted (a record is stored as is)")
    if info.compress_size != info.file_size:
        raise src.bad(f"member {name!r} takes {info.compress_size} bytes but holds {info.file_size}")
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise src.bad(f"member {name!r} has no local zip header")
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    window = _Window(fh, start, info.file_size)
    crc = 0
    while chunk := window.read(_CHUNK_BYTES):
        crc = zlib.crc32(chunk, crc)
    if window.tell() != info.file_size or crc != info.CRC:
        raise src.bad(f"member {name!r} is truncated or fails its CRC check")
    window.seek(0)
    return read_record_file(f"{src.path} (member {name!r})", handle=window)


class _Window(io.RawIOBase):
    """Bytes ``[start, start + size)`` of an open file, as a read-only seekable file."""

    def __init__(self, fh: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:  # as a file does: zipfile expects an OSError here
            raise OSError(errno.EINVAL, f"seek to {base + offset}, before the start")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        memoryview(buffer).cast("B")[: len(data)] = data
        self._pos += len(data)
        return len(data)
