"""The continuation-tree file format: meta.json and one .npy member per array in a zip, written deterministically, read trusting nothing.

A tree file (suffix :data:`SUFFIX` by convention; any name is read) is a zip archive
holding, in this order:

* ``meta.json``: ``{"format": "coilvis.tree", "version": 1, "coilvis_version": ...,
  "scalars": {...}, "strings": {...}}``. ``scalars`` holds ``n_nodes``, ``n_prompt``
  (the prompt's token count), ``d_vocab``, the settings the tree was grown with (``k``,
  ``depth``, ``min_prob``), ``model_name``, ``prompt`` and free-form ``extra``;
  ``strings`` holds ``vocab_text`` (one string per entry of the ``vocab_ids`` array).
* one ``.npy`` member per array, from :data:`MEMBERS_V1`, in that order: dtypes and
  shapes named by sizes (``n_nodes``, ``n_prompt`` from ``meta.json``, ``n_vocab`` the
  length of ``vocab_text``).

Writing and reading reuse the record file's pieces (:mod:`coilvis.record_format`): a
fixed zip timestamp and attributes, compact JSON, members in table order (the same tree
gives the same bytes everywhere); ``meta.json`` capped and checked, every ``.npy``
header checked against the table and the sizes before any array is read, values checked
against their ranges (parents in ``[-1, n_nodes)``, token ids in ``[-1, d_vocab)``,
depths in ``[0, depth]``). Sizes are capped at :data:`MAX_NODES`, so a small file
cannot ask for a huge array. What the tree's shape must satisfy (each parent before its
children, depths one more than the parent's, "other" nodes leaves) is checked by
:class:`~coilvis.continuations.Tree` itself. Anything wrong raises
:class:`~coilvis.errors.RecordFormatError` naming the path. Versions are a table
(:data:`FORMATS`), as for records.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
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
    refusing,
    string_list,
    write_members,
)

__all__ = [
    "FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_NODES",
    "MEMBERS_V1",
    "SUFFIX",
    "read_tree_file",
    "write_tree_file",
]

#: ``meta.json``'s ``format``.
FORMAT_NAME = "coilvis.tree"
#: The version :func:`write_tree_file` writes.
FORMAT_VERSION = 1
#: The suffix tree files are given by convention.
SUFFIX = ".coiltree"
#: Most nodes (and prompt tokens) a tree file may hold: far beyond any tree worth
#: drawing, small enough that a hostile file cannot make the reader allocate gigabytes.
MAX_NODES = 2**24

_META = "meta.json"

# ``is_other`` is stored as uint8 (0 or 1): a bool member could hold any byte
MEMBERS_V1: tuple[Member, ...] = (
    Member("parent", "<i4", ("n_nodes",), values=(-1, "n_nodes")),
    Member("token_id", "<i8", ("n_nodes",), values=(-1, "d_vocab")),
    Member("depth", "<i4", ("n_nodes",), values=(0, "depth_end")),
    Member("cond_prob", "<f4", ("n_nodes",)),
    Member("path_prob", "<f4", ("n_nodes",)),
    Member("entropy", "<f4", ("n_nodes",)),
    Member("is_other", "|u1", ("n_nodes",), values=(0, "bool")),
    Member("prompt_ids", "<i8", ("n_prompt",), values=(0, "d_vocab")),
    Member("vocab_ids", "<i8", ("n_vocab",), values=(0, "d_vocab"), unique=True),
)

#: Every version this coilvis reads.
FORMATS: dict[int, FileFormat] = {1: FileFormat(MEMBERS_V1)}


def write_tree_file(handle: IO[bytes], meta_json: bytes, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a tree file to ``handle`` (seekable), deterministically.

    Args:
        handle: an open binary file.
        meta_json: ``meta.json``'s bytes (see :func:`~coilvis.record_format.encode_meta`).
        arrays: member name (without ``.npy``) -> array, every member of :data:`MEMBERS_V1`.
    """
    with zipfile.ZipFile(handle, "w") as zf:
        add_member(zf, _META, meta_json)
        write_members(zf, FORMATS[FORMAT_VERSION].members, arrays)


def read_tree_file(path: Path | str) -> Contents:
    """Read and check a tree file (see the module docstring).

    Returns:
        ``meta.json`` (checked) and the arrays, by member name.

    Raises:
        OSError: the file cannot be opened.
        RecordFormatError: anything about the file is wrong; the message names ``path``.
    """
    src = Source(path, kind="tree")
    with open(path, "rb") as fh, refusing(src):
        check_directory_size(fh, src)
        with zipfile.ZipFile(fh) as zf:
            member_names(zf, src)
            meta = read_meta(zf, src, format_name=FORMAT_NAME)
            version = check_version(meta.get("version"), src, formats=FORMATS)
            sizes = _check_meta(meta, src)
            members = list(FORMATS[version].members)
            check_members(zf.namelist(), {_META} | {f"{m.name}.npy" for m in members}, src)
            arrays, _ = read_members(zf, members, sizes, {}, src)
    contents = Contents(meta=meta, arrays=arrays)
    while version != FORMAT_VERSION:  # pragma: no cover - one version so far
        upgrade = FORMATS[version].upgrade
        assert upgrade is not None, f"tree format version {version} has no upgrade"
        contents, version = upgrade(contents), version + 1
    return contents


def _check_meta(meta: dict[str, Any], src: Source) -> dict[str, Any]:
    """Check ``scalars`` and ``strings``; return the sizes they give."""
    scalars, strings = meta.get("scalars"), meta.get("strings")
    if not isinstance(scalars, dict) or not isinstance(strings, dict):
        raise src.bad("meta.json needs the objects 'scalars' and 'strings'")
    sizes: dict[str, Any] = {
        "n_nodes": meta_int(scalars.get("n_nodes"), "scalars.n_nodes", src, 1),
        "n_prompt": meta_int(scalars.get("n_prompt"), "scalars.n_prompt", src, 0),
        "d_vocab": meta_int(scalars.get("d_vocab"), "scalars.d_vocab", src, 1),
        "n_vocab": len(string_list(strings.get("vocab_text"), "strings.vocab_text", src)),
        "depth_end": meta_int(scalars.get("depth"), "scalars.depth", src, 1) + 1,
        "bool": 2,
    }
    meta_int(scalars.get("k"), "scalars.k", src, 1)
    for size in ("n_nodes", "n_prompt"):
        if sizes[size] > MAX_NODES:
            raise src.bad(f"meta.json scalars.{size} = {sizes[size]} is more than this coilvis reads ({MAX_NODES})")
    if sizes["depth_end"] > MAX_NODES:
        raise src.bad(f"meta.json scalars.depth = {sizes['depth_end'] - 1} is more than this coilvis reads ({MAX_NODES - 1})")
    min_prob = scalars.get("min_prob")
    if isinstance(min_prob, bool) or not isinstance(min_prob, (int, float)) or not math.isfinite(min_prob) or not 0 <= min_prob < 1:
        raise src.bad("meta.json scalars.min_prob must be a number in [0, 1)")
    for key in ("model_name", "prompt"):
        if not isinstance(scalars.get(key), str):
            raise src.bad(f"meta.json scalars.{key} must be a string")
    if not isinstance(scalars.get("extra"), (dict, type(None))):
        raise src.bad("meta.json scalars.extra must be an object or null")
    return sizes
