"""A Comparison saved and loaded: round trips, the same bytes every time, and damaged or hostile files refused by name."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coilvis.comparison import DIVERGENCE_FIELDS, Comparison, Metric, PairLens
from coilvis.comparison_format import FORMAT_VERSION, MEMBERS_V1, RECORD_MEMBERS, record_file_bytes
from coilvis.errors import CoilvisError, CoilvisFileNotFoundError, CoilvisTypeError, CoilvisValueError, RecordFormatError
from coilvis.record import Record
from coilvis.record_format import encode_meta
from coilvis.runner.compare_records import compare_records
from tests.lens_records import VOCAB, lens_record
from tests.test_comparison import JOHN, MARY, TOKENS_A, TOKENS_B, logits_of, record_of
from tests.test_record import HOSTILE, _bomb, _huge_directory, _npy, assert_records_equal, make_record, token_strings

LENS_TOKENS = ["w1", " Paris", "w2", "\n", "w3"]
N_POS, N_ROWS, N_MOVERS, D_VOCAB = 5, 5, 3, len(VOCAB)


def lens_comparison() -> Comparison:
    """Two lens records compared with a metric: every member of the format is there."""
    a, b = lens_record(LENS_TOKENS, seed=1), lens_record(LENS_TOKENS, seed=2)
    return compare_records(a, b, metric=(" Paris", "w2"), movers=N_MOVERS, label_a="clean", label_b="corrupt")


def assert_comparisons_equal(x: Comparison, y: Comparison) -> None:
    for f in dataclasses.fields(Comparison):
        u, v = getattr(x, f.name), getattr(y, f.name)
        if isinstance(u, Record):
            assert_records_equal(u, v)
        elif isinstance(u, np.ndarray) or u is None:
            assert (v is None) == (u is None), f.name
            if u is not None:
                assert u.dtype == v.dtype and u.shape == v.shape, f.name
                np.testing.assert_array_equal(u, v, err_msg=f.name)
        elif isinstance(u, (Metric, PairLens)):
            assert type(u) is type(v), f.name
            for g in dataclasses.fields(u):
                p, q = getattr(u, g.name), getattr(v, g.name)
                if isinstance(p, np.ndarray):
                    assert p.dtype == q.dtype, g.name
                    np.testing.assert_array_equal(p, q, err_msg=g.name)
                else:
                    assert p == q and type(p) is type(q), g.name
        elif f.name == "extra":
            assert json.dumps(u, sort_keys=True) == json.dumps(v, sort_keys=True)
        else:
            assert u == v and type(u) is type(v), f.name


# --------------------------------------------------------------------------- round trips


def _plain() -> Comparison:
    a = record_of(logits_of(7, seq_len=6), [1, 2, 4, MARY, 5, JOHN], k=3)
    return compare_records(a, record_of(logits_of(8, seq_len=4), [4, MARY, 5, JOHN]), align="end")


def _metric() -> Comparison:
    c = compare_records(record_of(logits_of(0), TOKENS_A), record_of(logits_of(1), TOKENS_B, k=4), metric=([" Mary", 0], " John"))
    return dataclasses.replace(c, label_a="\u00e9t\u00e9 \U0001f600", label_b="\ud800 </script>", extra={"n": [1, 2.5, None], "nan": float("nan")})


def _hostile() -> Comparison:
    """Records with attention and hostile token strings; a metric given by ids."""
    c = compare_records(make_record(seed=1, lens=False), make_record(seed=2, lens=False), metric=(3, [4, 5]))
    return dataclasses.replace(c, vocab={**c.vocab, 7: HOSTILE[1], 8: "\ud800"})


def _lens_without_metric() -> Comparison:
    c = lens_comparison()
    assert c.lens is not None
    return dataclasses.replace(c, lens=dataclasses.replace(c.lens, metric_a=None, metric_b=None, exact=True))


def _lens_metric_only() -> Comparison:
    c = lens_comparison()
    return dataclasses.replace(c, metric=None, metric_a=None, metric_b=None)


ROUND_TRIPS: dict[str, Callable[[], Comparison]] = {
    "plain-aligned-at-the-end": _plain,
    "metric-unicode-labels-extra": _metric,
    "lens-and-metric": lens_comparison,
    "attention-lens-hostile-text": _hostile,
    "lens-without-metric": _lens_without_metric,
    "lens-metric-without-metric": _lens_metric_only,
}


@pytest.mark.parametrize("build", [pytest.param(b, id=i) for i, b in ROUND_TRIPS.items()])
def test_a_saved_comparison_loads_equal_and_saves_to_the_same_bytes(tmp_path: Path, build: Callable[[], Comparison]) -> None:
    c = build()
    path = c.save(tmp_path / "c.coilcmp")
    assert path == tmp_path / "c.coilcmp"
    back = Comparison.load(path)
    assert_comparisons_equal(c, back)
    again = back.save(tmp_path / "again.coilcmp")
    assert again.read_bytes() == path.read_bytes() == c.save(tmp_path / "third").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.coilcmp", "c.coilcmp", "third"]
    # what a person sees comes back too
    assert back.summary().equals(c.summary()) and back.movers(-1).equals(c.movers(-1)) and repr(back) == repr(c)


#: Loads a comparison where torch cannot be imported, tables it and saves it again.
CHILD = """
import importlib.abc, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r} (not installed here)", name=name)
        return None

sys.meta_path.insert(0, _NoTorch())
from coilvis.comparison import Comparison

c = Comparison.load(sys.argv[1])
assert len(c.summary()) == c.n_pos and len(c.movers(0)) == 2 * c.n_movers
c.save(sys.argv[2])
"""


def test_the_same_comparison_saved_in_two_processes_gives_the_same_bytes(tmp_path: Path) -> None:
    # other time zones and hash seeds: zip timestamps, set and dict orders must not leak in;
    # and no torch: a saved comparison loads, tables and saves where only the drawing libraries are
    here = _metric().save(tmp_path / "c.coilcmp")
    code = CHILD
    for name, env in (("a", {"TZ": "UTC0", "PYTHONHASHSEED": "1"}), ("b", {"TZ": "JST-9", "PYTHONHASHSEED": "2"})):
        subprocess.run([sys.executable, "-c", code, str(here), str(tmp_path / name)], env={**os.environ, **env}, check=True, timeout=120)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == here.read_bytes()


def test_the_file_holds_both_record_files_as_is_and_no_pickle(tmp_path: Path) -> None:
    c = lens_comparison()
    path = c.save(str(tmp_path / "new" / "folder" / "c.coilcmp"))
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        meta = json.loads(zf.read("meta.json"))
        for name, record in zip(RECORD_MEMBERS, (c.a, c.b)):
            assert zf.getinfo(name).compress_type == zipfile.ZIP_STORED
            assert zf.read(name) == record.save(tmp_path / f"{name}").read_bytes()
        arrays = {n[: -len(".npy")]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in names if n.endswith(".npy")}
    assert names[:3] == ["meta.json", "a.coil", "b.coil"]
    assert names[3:] == [f"{m.name}.npy" for m in MEMBERS_V1]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert (meta["format"], meta["version"]) == ("coilvis.comparison", FORMAT_VERSION)
    assert meta["scalars"]["metric"] == {"plus_ids": [VOCAB.index(" Paris")], "minus_ids": [VOCAB.index("w2")]}
    assert meta["strings"]["metric_plus"] == [" Paris"] and meta["strings"]["lens_layer_names"] == ["embed", "0", "1", "2", "3"]
    assert arrays["exact"].dtype == np.uint8 and arrays["kl_ab"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(arrays["lens.js"], c.lens.js)  # type: ignore[union-attr]


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    d_vocab = draw(st.integers(1, 8))
    vocab = draw(st.lists(token_strings, min_size=d_vocab, max_size=d_vocab))
    records = []
    for run in "ab":
        n = draw(st.integers(1, 4), label=f"seq_len_{run}")
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        ids = draw(st.lists(st.integers(0, d_vocab - 1), min_size=n, max_size=n))
        records.append(record_of(rng.normal(size=(n, d_vocab)) * 3, ids, k=draw(st.integers(1, d_vocab)), vocab=vocab))
    metric = draw(st.none() | st.tuples(st.lists(st.integers(0, d_vocab - 1), min_size=1, max_size=2), st.integers(0, d_vocab - 1)))
    c = compare_records(*records, align="end", metric=metric, movers=draw(st.integers(1, 4)), label_a=draw(token_strings))
    if draw(st.booleans()):
        names = draw(st.lists(token_strings, min_size=1, max_size=3))
        shape = (len(names), c.n_pos)
        values = st.floats(width=32) | st.just(float("nan"))
        arrays = {n: np.array(draw(st.lists(values, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))).reshape(shape) for n in DIVERGENCE_FIELDS}
        c = dataclasses.replace(c, lens=PairLens(layer_names=names, exact=draw(st.booleans()), **arrays))
    return c


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(c=comparisons())
def test_random_comparisons_round_trip(tmp_path: Path, c: Comparison) -> None:
    path = c.save(tmp_path / "c.coilcmp")
    assert_comparisons_equal(c, Comparison.load(path))


# --------------------------------------------------------------------------- save and load refuse bad arguments


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    c = lens_comparison()
    rise = c.rise_ids.copy()
    rise[1, 2] = D_VOCAB
    with pytest.raises(CoilvisValueError, match=rf"^rise_ids: holds the token id {D_VOCAB}, outside the vocabulary \[0, {D_VOCAB}\)"):
        dataclasses.replace(c, rise_ids=rise).save(tmp_path / "x")
    with pytest.raises(CoilvisValueError, match="^vocab: holds the token id -1"):
        dataclasses.replace(c, vocab={-1: "x"}).save(tmp_path / "x")
    with pytest.raises(CoilvisValueError, match="^metric: holds the token id 99"):
        dataclasses.replace(c, metric=Metric((99,), (1,), ("x",), ("y",))).save(tmp_path / "x")
    with pytest.raises(CoilvisTypeError, match="^extra:"):
        dataclasses.replace(c, extra={"x": object()}).save(tmp_path / "x")
    with pytest.raises(CoilvisTypeError, match="^path:"):
        c.save(3)  # type: ignore[arg-type]
    with pytest.raises(CoilvisValueError, match="^path:"):
        c.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_paths_that_hold_no_file(tmp_path: Path) -> None:
    with pytest.raises(CoilvisFileNotFoundError, match="^path: no comparison file at") as info:
        Comparison.load(tmp_path / "nope.coilcmp")
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(CoilvisValueError, match="^path: .* is a folder"):
        Comparison.load(tmp_path)
    with pytest.raises(CoilvisTypeError, match="^path:"):
        Comparison.load(None)  # type: ignore[arg-type]


def test_a_record_file_is_not_a_comparison_file(tmp_path: Path) -> None:
    path = make_record().save(tmp_path / "r.coil")
    with pytest.raises(RecordFormatError, match=rf"^path: {path} is not a coilvis comparison file$"):
        Comparison.load(path)


# --------------------------------------------------------------------------- damaged and hostile files

_KEEP, _DELETE = object(), object()


@functools.cache
def _good() -> Comparison:
    return dataclasses.replace(lens_comparison(), vocab={i: VOCAB[i] for i in (3, 7, 30, 36, 37)})


def _meta_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


def rewrite(src: Path, dst: Path, changes: dict[str, bytes | None] | None = None, *, add: tuple[tuple[str, bytes], ...] = (), deflate: tuple[str, ...] = ()) -> None:
    """Copy a zip member by member: ``changes`` replaces (None: drops) members in place, ``add`` appends, ``deflate`` compresses."""
    changes = changes or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a duplicate name
        for info in zin.infolist():
            data = changes.get(info.filename, _KEEP)
            if data is None:
                continue
            data = zin.read(info.filename) if data is _KEEP else data
            if info.filename in deflate:
                zout.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
            else:
                zout.writestr(info, data)  # type: ignore[arg-type]
        for name, data in add:
            zout.writestr(name, data)


def _edit_meta(where: str, value: object) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        meta = _meta_of(src)
        *parents, key = where.split(".")
        node = meta
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[key]
        else:
            node[key] = value(node[key]) if callable(value) else value
        rewrite(src, dst, {"meta.json": json.dumps(meta).encode()})

    return build


def _edit_array(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path, Path], None]:
    def build(src: Path, dst: Path) -> None:
        with zipfile.ZipFile(src) as zf:
            arr = np.load(io.BytesIO(zf.read(f"{name}.npy")))
        rewrite(src, dst, {f"{name}.npy": _npy(change(arr))})

    return build


def _set(index: object, value: object) -> Callable[[np.ndarray], np.ndarray]:
    def change(arr: np.ndarray) -> np.ndarray:
        arr = arr.copy()
        arr[index] = value  # type: ignore[index]
        return arr

    return change


def _record(member: str, record: Callable[[], Record], meta: Callable[[dict], dict] = lambda m: m, arrays: Callable[[dict], dict] = lambda a: a) -> Callable[[Path, Path], None]:
    """Replace a stored record member by another record file (its meta.json and arrays edited)."""

    def build(src: Path, dst: Path) -> None:
        r = record()
        rewrite(src, dst, {member: record_file_bytes(encode_meta(meta(r._meta())), arrays(r._arrays()))})

    return build


def _flip(member: str) -> Callable[[Path, Path], None]:
    """Flip one byte in the middle of a member's data as the zip holds it."""

    def build(src: Path, dst: Path) -> None:
        raw = bytearray(src.read_bytes())
        with zipfile.ZipFile(src) as zf:
            info = zf.getinfo(member)
        local = raw[info.header_offset : info.header_offset + 30]
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        raw[start + info.compress_size // 2] ^= 0xFF
        dst.write_bytes(bytes(raw))

    return build


def _truncated(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])


def _other_vocabulary() -> Record:
    return dataclasses.replace(_good().b, d_vocab=D_VOCAB + 1)


def _shorter() -> Record:
    return lens_record(LENS_TOKENS[:3], seed=2)


# (id, how to spoil the file of lens_comparison(), words the message must hold)
MALFORMED: list[tuple[str, Callable[[Path, Path], None], tuple[str, ...]]] = [
    # the zip and meta.json
    ("empty-file", lambda s, d: d.write_bytes(b""), ("BadZipFile",)),
    ("random-bytes", lambda s, d: d.write_bytes(np.random.default_rng(0).bytes(4096)), ()),
    ("truncated", _truncated, ()),
    ("huge-zip-directory", _huge_directory, ("zip directory",)),
    ("meta-missing", lambda s, d: rewrite(s, d, {"meta.json": None}), ("'meta.json'", "missing")),
    ("meta-not-json", lambda s, d: rewrite(s, d, {"meta.json": b"{not json"}), ("JSONDecodeError",)),
    ("meta-a-list", lambda s, d: rewrite(s, d, {"meta.json": b"[1]"}), ("not a coilvis comparison file",)),
    ("other-format", _edit_meta("format", "coilvis.record"), ("not a coilvis comparison file",)),
    ("version-0", _edit_meta("version", 0), ("version 0", "does not exist")),
    ("version-string", _edit_meta("version", "1"), ('version "1"', "not an integer")),
    ("version-true", _edit_meta("version", True), ("version true", "not an integer")),
    ("version-newer", _edit_meta("version", FORMAT_VERSION + 1), (f"comparison format version {FORMAT_VERSION + 1}", "newer", "upgrade")),
    ("strings-missing", _edit_meta("strings", _DELETE), ("'scalars' and 'strings'",)),
    ("n_pos-missing", _edit_meta("scalars.n_pos", _DELETE), ("scalars.n_pos",)),
    ("n_pos-zero", _edit_meta("scalars.n_pos", 0), ("scalars.n_pos", ">= 1")),
    ("n_pos-float", _edit_meta("scalars.n_pos", 5.0), ("scalars.n_pos", "got float")),
    ("n_pos-past-the-end", _edit_meta("scalars.n_pos", N_POS + 1), (f"offset_a = 0 + n_pos = {N_POS + 1} passes the end of a.coil ({N_POS} positions)",)),
    ("offset-b-past-the-end", _edit_meta("scalars.offset_b", 1), ("offset_b = 1", "end of b.coil")),
    ("offset-a-negative", _edit_meta("scalars.offset_a", -1), ("scalars.offset_a",)),
    ("label-not-a-string", _edit_meta("scalars.label_a", ["x"]), ("scalars.label_a",)),
    ("label-missing", _edit_meta("scalars.label_b", _DELETE), ("scalars.label_b",)),
    ("extra-a-list", _edit_meta("scalars.extra", [1]), ("scalars.extra",)),
    ("vocab-text-short", _edit_meta("strings.vocab_text", lambda v: v[:-1]), ("'vocab_ids.npy'", "n_vocab=")),
    ("vocab-text-not-strings", _edit_meta("strings.vocab_text", lambda v: [1] * len(v)), ("strings.vocab_text",)),
    ("metric-without-texts", _edit_meta("strings.metric_plus", _DELETE), ("scalars.metric, strings.metric_plus and strings.metric_minus",)),
    ("metric-texts-without-ids", _edit_meta("scalars.metric", _DELETE), ("scalars.metric, strings.metric_plus",)),
    ("metric-not-an-object", _edit_meta("scalars.metric", [1]), ("scalars.metric must be an object",)),
    ("metric-ids-empty", _edit_meta("scalars.metric.plus_ids", []), ("scalars.metric.plus_ids", "non-empty")),
    ("metric-id-a-string", _edit_meta("scalars.metric.minus_ids", ["2"]), ("scalars.metric.minus_ids[0]", "got str")),
    ("metric-id-past-the-vocabulary", _edit_meta("scalars.metric.plus_ids", [D_VOCAB]), (f"plus_ids holds {D_VOCAB}", f"d_vocab={D_VOCAB}")),
    ("metric-texts-count", _edit_meta("strings.metric_minus", ["a", "b"]), ("strings.metric_minus holds 2 texts for 1 token ids",)),
    ("lens-without-names", _edit_meta("strings.lens_layer_names", _DELETE), ("scalars.lens and strings.lens_layer_names",)),
    ("lens-exact-not-bool", _edit_meta("scalars.lens.exact", 1), ("scalars.lens", "booleans")),
    ("lens-names-one-short", _edit_meta("strings.lens_layer_names", lambda v: v[:-1]), ("'lens.kl_ab.npy'", f"n_rows={N_ROWS - 1}")),
    ("lens-metric-undeclared", _edit_meta("scalars.lens.metric", False), ("unexpected member 'lens.metric_a.npy'",)),
    # members: each once, none missing, none unknown
    ("member-missing", lambda s, d: rewrite(s, d, {"kl_ab.npy": None}), ("'kl_ab.npy'", "missing")),
    ("record-missing", lambda s, d: rewrite(s, d, {"b.coil": None}), ("'b.coil'", "missing")),
    ("member-twice", lambda s, d: rewrite(s, d, add=(("tv.npy", _npy(np.zeros(N_POS, np.float32))),)), ("'tv.npy'", "twice")),
    ("record-twice", lambda s, d: rewrite(s, d, add=(("a.coil", b""),)), ("'a.coil'", "twice")),
    ("unexpected-member", lambda s, d: rewrite(s, d, add=(("notes.txt", b"hi"),)), ("unexpected member 'notes.txt'",)),
    # .npy members: the table's dtype and shape, values in range
    ("dtype-float64", _edit_array("kl_ab", lambda a: a.astype(np.float64)), ("'kl_ab.npy'", "dtype <f8", "expected <f4")),
    ("exact-as-bool", _edit_array("exact", lambda a: a.astype(bool)), ("'exact.npy'", "dtype |b1", "expected |u1")),
    ("ids-as-int32", _edit_array("rise_ids", lambda a: a.astype(np.int32)), ("'rise_ids.npy'", "dtype <i4")),
    ("pickled-array", lambda s, d: rewrite(s, d, {"js.npy": _npy(np.array([{"a": 1}] * N_POS, dtype=object))}), ("'js.npy'", "dtype")),
    ("shape-short", _edit_array("kl_ab", lambda a: a[:-1]), ("'kl_ab.npy'", f"n_pos={N_POS}")),
    ("lens-shape-transposed", _edit_array("lens.tv", lambda a: np.ascontiguousarray(a[:, :-1])), ("'lens.tv.npy'", f"n_pos={N_POS}")),
    ("movers-differ-between-members", _edit_array("fall_prob_b", lambda a: a[:, :-1]), ("'fall_prob_b.npy'", f"n_movers={N_MOVERS}")),
    ("movers-more-than-the-vocabulary", _edit_array("rise_ids", lambda a: np.zeros((N_POS, 2 * D_VOCAB + 1), a.dtype)), ("'rise_ids.npy'", f"more than {2 * D_VOCAB}")),
    ("size-larger-than-shape", lambda s, d: rewrite(s, d, {"tv.npy": _npy(np.zeros(N_POS, np.float32)) + b"\0" * 8}), ("'tv.npy'", "data bytes")),
    ("exact-holds-2", _edit_array("exact", _set(1, 2)), ("'exact.npy'", "holds 2")),
    ("mover-past-the-vocabulary", _edit_array("rise_ids", _set((2, 1), D_VOCAB)), ("'rise_ids.npy'", f"holds {D_VOCAB}", f"d_vocab={D_VOCAB}")),
    ("mover-negative", _edit_array("fall_ids", _set((0, 0), -1)), ("'fall_ids.npy'", "holds -1")),
    ("vocab-id-twice", _edit_array("vocab_ids", lambda a: np.append(a[:-1], a[0])), ("'vocab_ids.npy'", "twice")),
    ("crc-damaged", _flip("kl_ab.npy"), ("'kl_ab.npy'",)),
    # the records inside
    ("record-deflated", lambda s, d: rewrite(s, d, deflate=("a.coil",)), ("'a.coil'", "compressed")),
    ("record-flipped-byte", _flip("a.coil"), ("'a.coil'", "CRC")),
    ("record-garbage", lambda s, d: rewrite(s, d, {"b.coil": b"not a zip at all"}), ("(member 'b.coil') is not a valid coilvis record", "BadZipFile")),
    ("record-damaged-member", _record("a.coil", lambda: _good().a, arrays=lambda a: {**a, "entropy": a["entropy"][:-1]}), ("(member 'a.coil') is not a valid coilvis record", "'entropy.npy'", f"seq_len={N_POS}")),
    ("record-newer", _record("b.coil", lambda: _good().b, meta=lambda m: {**m, "version": 3}), ("(member 'b.coil') has record format version 3", "newer")),
    ("record-a-comparison", lambda s, d: rewrite(s, d, {"a.coil": s.read_bytes()}), ("(member 'a.coil') is not a coilvis record file",)),
    ("records-of-two-vocabularies", _record("b.coil", _other_vocabulary), (f"vocabularies of {D_VOCAB} (a.coil) and {D_VOCAB + 1} (b.coil)",)),
    ("record-too-short", _record("a.coil", _shorter), ("passes the end of a.coil (3 positions)",)),
]


@pytest.mark.parametrize("build, words", [pytest.param(b, w, id=i) for i, b, w in MALFORMED])
def test_malformed_files_are_refused_by_name(tmp_path: Path, build: Callable[[Path, Path], None], words: tuple[str, ...]) -> None:
    good = _good().save(tmp_path / "good.coilcmp")
    bad = tmp_path / "bad.coilcmp"
    build(good, bad)
    assert bad.read_bytes() != good.read_bytes()
    with pytest.raises(RecordFormatError) as info:
        Comparison.load(bad)
    message = str(info.value)
    assert message.startswith(f"path: {bad} ") and "\n" not in message
    assert isinstance(info.value, CoilvisError) and isinstance(info.value, ValueError)
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "member, shape, words",
    [
        # 200 MB of float32 zeros that deflate to under 1 MB: a huge declared array
        pytest.param("kl_ab.npy", (50_000_000,), ("'kl_ab.npy'", f"n_pos={N_POS}"), id="comparison-member"),
        pytest.param("rise_prob_a.npy", (N_POS, 10_000_000), ("'rise_prob_a.npy'", "shape (5, 10000000)", f"n_movers={N_MOVERS}"), id="movers"),
    ],
)
def test_array_bombs_fail_before_any_large_allocation(tmp_path: Path, member: str, shape: tuple[int, ...], words: tuple[str, ...]) -> None:
    good = _good().save(tmp_path / "good.coilcmp")
    bad = tmp_path / "bomb.coilcmp"
    _bomb(good, bad, member, shape, 4 * int(np.prod(shape)))
    assert bad.stat().st_size < 2_000_000
    _assert_refused_in_little_memory(bad, words)


def test_a_bomb_inside_a_record_fails_before_any_large_allocation(tmp_path: Path) -> None:
    record = _good().a.save(tmp_path / "a.coil")
    bomb = tmp_path / "bomb.coil"
    _bomb(record, bomb, "entropy.npy", (50_000_000,), 200_000_000)
    good = _good().save(tmp_path / "good.coilcmp")
    bad = tmp_path / "bad.coilcmp"
    rewrite(good, bad, {"a.coil": bomb.read_bytes()})
    assert bad.stat().st_size < 2_000_000
    _assert_refused_in_little_memory(bad, ("(member 'a.coil') is not a valid coilvis record", "'entropy.npy'"))


def _assert_refused_in_little_memory(bad: Path, words: tuple[str, ...]) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(RecordFormatError) as info:
            Comparison.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    assert str(info.value).startswith(f"path: {bad} ")
    for word in words:
        assert word in str(info.value)


def test_flipped_bytes_and_truncations_raise_record_format_error_or_nothing(tmp_path: Path) -> None:
    """Whatever byte of a good file is damaged, loading gives a RecordFormatError (or, where zip
    checks nothing, an equal comparison), never another exception."""
    good = _good().save(tmp_path / "good.coilcmp").read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.coilcmp"
    refused = 0
    for at in rng.integers(0, len(good), size=150).tolist():
        damaged = bytearray(good)
        damaged[at] ^= int(rng.integers(1, 256))
        for data in (bytes(damaged), good[:at]):
            bad.write_bytes(data)
            try:
                Comparison.load(bad)
            except RecordFormatError as exc:
                assert str(exc).startswith(f"path: {bad} ")
                refused += 1
    assert refused >= 200
