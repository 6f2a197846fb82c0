"""Tests for coilvis.record: the Record container, its derived values, and the saved
file format (round trips, atomic writes, clear errors on newer or damaged files)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import signal
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coilvis
from coilvis import stats
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError, RecordFormatError
from coilvis.record import FORMAT_VERSION, HEAD_MAX, HEAD_MEAN, AttentionLinks, LensStats, Record
from coilvis.record_format import META_MAX_BYTES

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    '"quoted" \'single\' `tick`',
    "\x00nul",
    "\u202eRTL override",
    "line\nbreak\ttab\r",
    "é€😀",
    "\\u0000 backslash",
    "\ud800 lone surrogate",
    "",
    " ",
]


def make_record(*, seq_len: int = 6, d_vocab: int = 50, k: int = 5, seed: int = 0, attention: bool = True, lens: bool = True) -> Record:
    """A Record from random logits, with random attention and hand-built lens statistics."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(seq_len, d_vocab)).astype(np.float32) * 3
    vocab = {i: HOSTILE[i % len(HOSTILE)] + str(i) for i in range(d_vocab)}
    ids = rng.integers(0, d_vocab, size=seq_len)
    pattern = None
    if attention:
        scores = rng.normal(size=(2, 3, seq_len, seq_len))
        scores = np.where(np.triu(np.ones((seq_len, seq_len), dtype=bool), 1), -np.inf, scores)
        pattern = np.exp(scores - scores.max(-1, keepdims=True))
        pattern /= pattern.sum(-1, keepdims=True)
    record = coilvis.from_logits(
        logits, tokens=ids.tolist(), vocab=vocab, k=k, attention=pattern, attention_min_weight=0.0, model_name="random", prompt="a <b> prompt\n"
    )
    if lens:
        n_rows = 4
        lens_stats = LensStats(
            layer_names=("embed", "0", "0.mid", "1"),
            topk_ids=rng.integers(0, d_vocab, size=(n_rows, seq_len, 3)),
            topk_probs=rng.random((n_rows, seq_len, 3)),
            entropy=rng.random((n_rows, seq_len)) * 4,
            kl_to_final=rng.random((n_rows, seq_len)),
            next_prob=np.where(np.arange(seq_len) == seq_len - 1, np.nan, rng.random((n_rows, seq_len))),
            next_rank=np.where(np.arange(seq_len) == seq_len - 1, -1, rng.integers(1, d_vocab + 1, size=(n_rows, seq_len))),
            final_top_prob=rng.random((n_rows, seq_len)),
            final_top_rank=rng.integers(1, d_vocab + 1, size=(n_rows, seq_len)),
        )
        record = dataclasses.replace(record, lens=lens_stats, extra={"dtype": "float32", "nested": {"a": [1, 2.5, None]}, "nan": math.nan})
    return record


def assert_records_equal(a: Record, b: Record) -> None:
    for f in dataclasses.fields(Record):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif f.name == "attention":
            assert (x is None) == (y is None)
            if x is not None:
                for g in dataclasses.fields(AttentionLinks):
                    u, v = getattr(x, g.name), getattr(y, g.name)
                    if isinstance(u, np.ndarray):
                        assert u.dtype == v.dtype, g.name
                        np.testing.assert_array_equal(u, v, err_msg=g.name)
                    else:
                        assert u == v, g.name
        elif f.name == "lens":
            assert (x is None) == (y is None)
            if x is not None:
                assert x.layer_names == y.layer_names
                for g in dataclasses.fields(LensStats):
                    if g.name != "layer_names":
                        u, v = getattr(x, g.name), getattr(y, g.name)
                        assert u.dtype == v.dtype, g.name
                        np.testing.assert_array_equal(u, v, err_msg=g.name)
        elif f.name == "extra":
            assert json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True)
        else:
            assert x == y, f.name


# --------------------------------------------------------------------------- the container


def test_record_fields_have_fixed_dtypes_and_shapes() -> None:
    r = make_record()
    assert r.seq_len == 6 and r.k == 5 and r.d_vocab == 50
    assert r.token_ids.dtype == np.int64 and r.topk_ids.dtype == np.int64
    for name in ("topk_logits", "topk_probs", "log_z", "entropy", "next_logprob"):
        assert getattr(r, name).dtype == np.float32, name
    assert r.next_rank.dtype == np.int64
    assert r.attention is not None and r.attention.layer.dtype == np.int16 and r.attention.weight.dtype == np.float32
    assert r.lens is not None and r.lens.topk_ids.dtype == np.int32 and r.lens.n_rows == 4
    assert "attention=" in repr(r) and "lens=4 layers" in repr(r)


def test_derived_values_follow_from_the_stored_ones() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 30)).astype(np.float32)
    ids = [3, 7, 1, 29, 0]
    r = coilvis.from_logits(logits, tokens=ids, vocab=[f"t{i}" for i in range(30)], k=4)
    logp = stats.log_softmax(logits)
    want = np.array([logp[i, ids[i + 1]] for i in range(4)])
    np.testing.assert_allclose(r.next_prob[:4], np.exp(want), atol=1e-6)
    np.testing.assert_allclose(r.surprisal()[:4], -want / math.log(2), atol=1e-5)
    np.testing.assert_allclose(r.surprisal(bits=False)[:4], -want, atol=1e-5)
    np.testing.assert_allclose(r.entropy_in(), stats.entropy(logits, bits=True), atol=1e-5)
    np.testing.assert_allclose(r.entropy_in(bits=False), stats.entropy(logits), atol=1e-6)
    assert np.isnan(r.next_prob[-1]) and np.isnan(r.surprisal()[-1]) and r.next_rank[-1] == -1
    # log_prob = logit - log_z, for every kept logit
    np.testing.assert_allclose(np.exp(r.topk_logits - r.log_z[:, None]), r.topk_probs, atol=1e-6)
    assert r.token_text(3) == "t3"
    # the record keeps only the strings it mentions (inputs and top-k)
    assert set(r.vocab) == set(ids) | set(r.topk_ids.ravel().tolist())
    absent = min(set(range(30)) - set(r.vocab))
    assert r.token_text(absent) == f"<id {absent}>"
    assert r.token_text(10_000) == "<id 10000>"


def test_attention_links_select_one_head() -> None:
    r = make_record()
    a = r.attention
    assert a is not None and a.n_layers == 2 and a.n_heads == 3 and a.top_k == 4
    q, key, w = a.select(1, 2)
    mask = (a.layer == 1) & (a.head == 2)
    np.testing.assert_array_equal(q, a.query[mask])
    np.testing.assert_array_equal(key, a.key[mask])
    np.testing.assert_array_equal(w, a.weight[mask])
    assert q.size > 0
    assert a.select(0, HEAD_MEAN)[0].size > 0 and a.select(0, HEAD_MAX)[0].size > 0
    assert a.n_links == a.layer.shape[0]


@pytest.mark.parametrize(
    "layer, head, word",
    [(2, 0, "layer"), (-1, 0, "layer"), (0, 3, "head"), (0, -3, "head")],
    ids=["layer-too-big", "layer-negative", "head-too-big", "head-below-max"],
)
def test_attention_links_select_out_of_range(layer: int, head: int, word: str) -> None:
    a = make_record().attention
    assert a is not None
    with pytest.raises(CoilvisValueError, match=word):
        a.select(layer, head)


def _base_kwargs() -> dict:
    return dict(
        token_ids=[1, 2, 3],
        tokens=("a", "b", "c"),
        topk_ids=np.zeros((3, 2)),
        topk_logits=np.zeros((3, 2)),
        topk_probs=np.zeros((3, 2)),
        log_z=np.zeros(3),
        entropy=np.zeros(3),
        next_logprob=np.zeros(3),
        next_rank=np.zeros(3),
        vocab={1: "a"},
        d_vocab=4,
    )


@pytest.mark.parametrize(
    "change, word",
    [
        pytest.param({"tokens": ("a", "b")}, "tokens", id="tokens-length"),
        pytest.param({"token_ids": [], "tokens": ()}, "token_ids", id="no-positions"),
        pytest.param({"token_ids": [[1, 2, 3]]}, "token_ids", id="token_ids-2d"),
        pytest.param({"topk_probs": np.zeros((3, 3))}, "topk_probs", id="topk-shape"),
        pytest.param({"entropy": np.zeros(4)}, "entropy", id="entropy-length"),
        pytest.param({"next_rank": np.zeros((3, 1))}, "next_rank", id="next_rank-2d"),
    ],
)
def test_record_rejects_inconsistent_fields(change: dict, word: str) -> None:
    with pytest.raises(CoilvisValueError) as info:
        Record(**{**_base_kwargs(), **change})
    assert word in str(info.value)


def test_record_rejects_a_lens_of_another_length() -> None:
    lens = make_record(seq_len=4).lens
    with pytest.raises(CoilvisValueError, match="lens"):
        dataclasses.replace(make_record(seq_len=6, lens=False), lens=lens)


def test_lens_stats_rejects_inconsistent_shapes() -> None:
    lens = make_record().lens
    assert lens is not None
    with pytest.raises(CoilvisValueError, match="layer_names"):
        dataclasses.replace(lens, layer_names=("a",))
    with pytest.raises(CoilvisValueError, match="lens.entropy"):
        dataclasses.replace(lens, entropy=lens.entropy[:, :-1])


def test_attention_links_reject_ragged_arrays() -> None:
    with pytest.raises(CoilvisValueError, match="weight"):
        AttentionLinks(layer=[0, 0], head=[0, 0], query=[1, 1], key=[0, 1], weight=[0.5], n_layers=1, n_heads=1, top_k=2)


def test_record_is_frozen() -> None:
    r = make_record(lens=False, attention=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.d_vocab = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- save and load


def test_save_load_round_trip_keeps_everything(tmp_path: Path) -> None:
    r = make_record()
    written = r.save(tmp_path / "r.coilvis")
    assert written == tmp_path / "r.coilvis"
    back = Record.load(written)
    assert_records_equal(r, back)
    assert back.attention is not None and back.attention.n_links == r.attention.n_links  # type: ignore[union-attr]
    assert math.isnan(back.extra["nan"])


@pytest.mark.parametrize("attention, lens", [(False, False), (True, False), (False, True)], ids=["plain", "attention-only", "lens-only"])
def test_round_trip_without_optional_parts(tmp_path: Path, attention: bool, lens: bool) -> None:
    r = make_record(attention=attention, lens=lens)
    back = Record.load(r.save(tmp_path / "r.zip"))
    assert_records_equal(r, back)
    assert (back.attention is None) == (not attention) and (back.lens is None) == (not lens)


def test_save_accepts_str_paths_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "r.coilvis"
    make_record(lens=False).save(str(path))
    assert Record.load(str(path)).seq_len == 6


def test_saved_file_is_a_documented_zip_without_pickles(tmp_path: Path) -> None:
    path = make_record().save(tmp_path / "r.coilvis")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("meta.json"))
        for name in names - {"meta.json"}:
            assert name.endswith(".npy")
            arr = np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
            assert arr.dtype != object
    assert meta["format"] == "coilvis.record" and meta["version"] == FORMAT_VERSION == 2
    assert meta["coilvis_version"] == coilvis.__version__
    assert {"token_ids.npy", "topk_ids.npy", "attention.weight.npy", "lens.entropy.npy", "vocab_ids.npy"} <= names


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    good = make_record(seed=1)
    path = good.save(tmp_path / "r.coilvis")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.coilvis"]
    # a save that fails half-way (extra is not JSON) keeps the old file and cleans up
    bad = dataclasses.replace(make_record(seed=2), extra={"not json": object()})
    with pytest.raises(TypeError):
        bad.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.coilvis"]
    assert_records_equal(good, Record.load(path))
    # overwriting with a good record replaces it
    other = make_record(seed=3)
    other.save(path)
    assert_records_equal(other, Record.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.coilvis"]


def rewrite_member(src: Path, dst: Path, member: str, data: bytes | None) -> None:
    """Copy a zip, replacing (or, with None, dropping) one member."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != member:
                zout.writestr(info, zin.read(info.filename))
        if data is not None:
            zout.writestr(member, data)


def test_version_1_files_load_with_ranks_counted_from_one(tmp_path: Path) -> None:
    """Version 1 counted ranks from 0; reading one gives today's 1-based ranks."""
    record = make_record()
    path = record.save(tmp_path / "v2.coil")
    v1 = tmp_path / "v1.coil"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(v1, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "meta.json":
                meta = json.loads(data)
                meta["version"] = 1
                data = json.dumps(meta).encode()
            elif info.filename in ("next_rank.npy", "lens.next_rank.npy", "lens.final_top_rank.npy"):
                a = np.load(io.BytesIO(data))
                buf = io.BytesIO()
                np.save(buf, np.where(a >= 1, a - 1, a).astype(a.dtype))
                data = buf.getvalue()
            zout.writestr(info, data)
    old = Record.load(v1)
    assert record.lens is not None and old.lens is not None
    np.testing.assert_array_equal(old.next_rank, record.next_rank)
    np.testing.assert_array_equal(old.lens.next_rank, record.lens.next_rank)
    np.testing.assert_array_equal(old.lens.final_top_rank, record.lens.final_top_rank)
    assert_records_equal(old, record)


def test_newer_format_version_is_refused_by_name(tmp_path: Path) -> None:
    path = make_record().save(tmp_path / "r.coilvis")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
    meta["version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.coilvis"
    rewrite_member(path, newer, "meta.json", json.dumps(meta).encode())
    with pytest.raises(RecordFormatError) as info:
        Record.load(newer)
    message = str(info.value)
    assert f"version {FORMAT_VERSION + 1}" in message and str(newer) in message and "upgrade" in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, CoilvisError)


def _meta_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p, d: d.write_bytes(np.random.default_rng(0).bytes(4096)), id="random-bytes"),
        pytest.param(lambda p, d: d.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="truncated-zip"),
        pytest.param(lambda p, d: d.write_bytes(b""), id="empty-file"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", None), id="no-meta"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", b"{not json"), id="meta-not-json"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", b"\xff\xfe"), id="meta-not-utf8"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", b"[1, 2]"), id="meta-not-an-object"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", json.dumps({**_meta_of(p), "format": "other"}).encode()), id="other-format"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", json.dumps({**_meta_of(p), "version": "1"}).encode()), id="version-not-int"),
        pytest.param(lambda p, d: rewrite_member(p, d, "meta.json", json.dumps({**_meta_of(p), "strings": {}}).encode()), id="strings-missing"),
        pytest.param(lambda p, d: rewrite_member(p, d, "entropy.npy", None), id="array-missing"),
        pytest.param(lambda p, d: rewrite_member(p, d, "entropy.npy", b"garbage"), id="array-garbage"),
        pytest.param(lambda p, d: rewrite_member(p, d, "topk_ids.npy", _npy(np.zeros((2, 2)))), id="array-wrong-shape"),
        pytest.param(lambda p, d: rewrite_member(p, d, "lens.entropy.npy", _npy(np.array([{"a": 1}], dtype=object))), id="pickled-array"),
    ],
)
def test_damaged_files_raise_record_format_error(tmp_path: Path, damage: object) -> None:
    path = make_record().save(tmp_path / "good.coilvis")
    bad = tmp_path / "bad.coilvis"
    damage(path, bad)  # type: ignore[operator]
    with pytest.raises(RecordFormatError) as info:
        Record.load(bad)
    assert str(bad) in str(info.value) and str(info.value).startswith("path:")


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    from coilvis.errors import CoilvisError

    with pytest.raises(FileNotFoundError, match="path") as caught:
        Record.load(tmp_path / "nope.coilvis")
    assert isinstance(caught.value, CoilvisError)


# --------------------------------------------------------------------------- random records

token_strings = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12) | st.sampled_from(HOSTILE)


@st.composite
def records(draw: st.DrawFn) -> Record:
    seq_len = draw(st.integers(1, 5))
    d_vocab = draw(st.integers(1, 12))
    k = draw(st.integers(1, d_vocab))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(size=(seq_len, d_vocab)).astype(np.float32)
    vocab = draw(st.lists(token_strings, min_size=d_vocab, max_size=d_vocab))
    ids = draw(st.lists(st.integers(0, d_vocab - 1), min_size=seq_len, max_size=seq_len))
    attention = None
    if draw(st.booleans()):  # causal: each query attends to itself and earlier keys
        attention = np.tril(rng.random((draw(st.integers(1, 2)), 2, seq_len, seq_len)))
        attention /= attention.sum(-1, keepdims=True)
    return coilvis.from_logits(
        logits,
        tokens=ids,
        vocab=vocab,
        k=k,
        attention=attention,
        model_name=draw(token_strings),
        prompt=draw(st.none() | token_strings),
    )


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(record=records())
def test_random_records_round_trip(tmp_path: Path, record: Record) -> None:
    path = record.save(tmp_path / "r.coilvis")
    assert_records_equal(record, Record.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["r.coilvis"]



# --------------------------------------------------------------------------- hostile and inconsistent files

SEQ_LEN, D_VOCAB = 6, 50  # make_record()'s sizes
_DELETE = object()


def _edit_meta(path: Path, dst: Path, where: str, value: object) -> None:
    """Copy a record file with one key of meta.json set (``_DELETE``: removed)."""
    meta = _meta_of(path)
    *parents, key = where.split(".")
    node = meta
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[key]
    else:
        node[key] = value
    rewrite_member(path, dst, "meta.json", json.dumps(meta).encode())


def _edit_array(path: Path, dst: Path, name: str, change: object) -> None:
    """Copy a record file with one array changed by ``change(array) -> array``."""
    with zipfile.ZipFile(path) as zf:
        arr = np.load(io.BytesIO(zf.read(f"{name}.npy")))
    rewrite_member(path, dst, f"{name}.npy", _npy(change(arr)))  # type: ignore[operator]


def _set(index: object, value: object) -> object:
    def change(arr: np.ndarray) -> np.ndarray:
        arr = arr.copy()
        arr[index] = value
        return arr

    return change


def _npy_header_only(shape: tuple[int, ...], descr: str = "<f4", version: tuple[int, int] = (1, 0), data: bytes = b"") -> bytes:
    """An .npy header (any format version) declaring ``shape``, then ``data``."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1") + b"\n"
    size = len(header).to_bytes(2 if version == (1, 0) else 4, "little")
    return b"\x93NUMPY" + bytes(version) + size + header + data


def _add_members(path: Path, dst: Path, members: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(dst, "w") as zout, pytest.warns(UserWarning) if any(
        name in zin.namelist() for name, _ in members
    ) else contextlib.nullcontext():
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        for name, data in members:
            zout.writestr(name, data)


def _damage_crc(path: Path, dst: Path) -> None:
    """A stored (uncompressed) entropy member with one data byte flipped."""
    entropy = _npy(np.arange(SEQ_LEN, dtype=np.float32))
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename != "entropy.npy":
                zout.writestr(info, zin.read(info.filename))
        zout.writestr(zipfile.ZipInfo("entropy.npy"), entropy, compress_type=zipfile.ZIP_STORED)
    raw = bytearray(dst.read_bytes())
    at = raw.index(entropy) + len(entropy) - 1
    raw[at] ^= 0xFF
    dst.write_bytes(bytes(raw))


def _deep_json_meta(path: Path, dst: Path) -> None:
    text = json.dumps({**_meta_of(path), "extra_field": None}).replace("null", "[" * 200_000 + "]" * 200_000)
    rewrite_member(path, dst, "meta.json", text.encode())


def _huge_directory(path: Path, dst: Path) -> None:
    # about 250 bytes of directory per member, over 1 MiB in all
    _add_members(path, dst, [(f"padding/{'x' * 200}{i:05d}.npy", b"") for i in range(5_000)])


def _M(where: str, value: object) -> object:
    return lambda p, d: _edit_meta(p, d, where, value)


def _A(name: str, change: object) -> object:
    return lambda p, d: _edit_array(p, d, name, change)


# (id, how to spoil a good file made by make_record(), words the message must hold)
MALFORMED: list[tuple[str, object, tuple[str, ...]]] = [
    # the format version: an int this coilvis reads, nothing else
    ("version-0", _M("version", 0), ("version 0", "does not exist")),
    ("version-negative", _M("version", -5), ("version -5", "does not exist")),
    ("version-true", _M("version", True), ("version true", "not an integer")),
    ("version-string", _M("version", "1"), ('version "1"', "not an integer")),
    ("version-float", _M("version", 2.0), ("version 2.0", "not an integer")),
    ("version-null", _M("version", None), ("version null", "not an integer")),
    ("version-missing", _M("version", _DELETE), ("version null", "not an integer")),
    ("version-list", _M("version", [1]), ("version list", "not an integer")),
    ("version-newer", _M("version", FORMAT_VERSION + 1), (f"version {FORMAT_VERSION + 1}", "newer", "upgrade")),
    ("version-huge", _M("version", 10**30), ("newer", "upgrade")),
    # the vocabulary: one string per id, ids distinct and in [0, d_vocab)
    ("vocab-text-shorter", lambda p, d: _edit_meta(p, d, "strings.vocab_text", _meta_of(p)["strings"]["vocab_text"][:-1]), ("'vocab_ids.npy'", "n_vocab=")),
    ("vocab-text-longer", lambda p, d: _edit_meta(p, d, "strings.vocab_text", _meta_of(p)["strings"]["vocab_text"] + ["x"]), ("'vocab_ids.npy'", "n_vocab=")),
    ("vocab-text-not-strings", lambda p, d: _edit_meta(p, d, "strings.vocab_text", [1] * len(_meta_of(p)["strings"]["vocab_text"])), ("strings.vocab_text",)),
    ("vocab-id-twice", _A("vocab_ids", lambda a: np.append(a[:-1], a[0])), ("'vocab_ids.npy'", "twice")),
    ("vocab-id-too-big", _A("vocab_ids", _set(-1, D_VOCAB)), ("'vocab_ids.npy'", f"d_vocab={D_VOCAB}")),
    # token ids in [0, d_vocab) (input ids may be -1: a string the vocabulary lacks)
    ("token-id-too-big", _A("token_ids", _set(0, D_VOCAB)), ("'token_ids.npy'", f"holds {D_VOCAB}", f"d_vocab={D_VOCAB}")),
    ("token-id-below-minus-one", _A("token_ids", _set(2, -2)), ("'token_ids.npy'", "holds -2")),
    ("topk-id-negative", _A("topk_ids", _set((1, 1), -1)), ("'topk_ids.npy'", "holds -1")),
    ("topk-id-too-big", _A("topk_ids", _set((1, 1), 2**40)), ("'topk_ids.npy'",)),
    ("lens-id-too-big", _A("lens.topk_ids", _set((0, 0, 0), D_VOCAB)), ("'lens.topk_ids.npy'", f"holds {D_VOCAB}")),
    # attention links point at layers, heads and positions that exist
    ("attention-layer-too-big", _A("attention.layer", _set(0, 2)), ("'attention.layer.npy'", "n_layers=2")),
    ("attention-head-below-max", _A("attention.head", _set(0, -3)), ("'attention.head.npy'", "holds -3")),
    ("attention-query-beyond-the-prompt", _A("attention.query", _set(0, SEQ_LEN)), ("'attention.query.npy'", f"seq_len={SEQ_LEN}")),
    ("attention-key-negative", _A("attention.key", _set(0, -1)), ("'attention.key.npy'",)),
    # d_vocab: a positive int, at least k
    ("d_vocab-zero", _M("scalars.d_vocab", 0), ("scalars.d_vocab",)),
    ("d_vocab-negative", _M("scalars.d_vocab", -1), ("scalars.d_vocab",)),
    ("d_vocab-string", _M("scalars.d_vocab", "50"), ("scalars.d_vocab", "got str")),
    ("d_vocab-float", _M("scalars.d_vocab", 50.0), ("scalars.d_vocab", "got float")),
    ("d_vocab-true", _M("scalars.d_vocab", True), ("scalars.d_vocab", "got bool")),
    ("d_vocab-missing", _M("scalars.d_vocab", _DELETE), ("scalars.d_vocab",)),
    ("d_vocab-below-k", _M("scalars.d_vocab", 4), ("'topk_ids.npy'", "k = 5", "more than 4")),
    # the rest of meta.json
    ("meta-not-an-object", lambda p, d: rewrite_member(p, d, "meta.json", b"[1]"), ("not a coilvis record file",)),
    ("scalars-missing", _M("scalars", _DELETE), ("'scalars'",)),
    ("tokens-not-strings", lambda p, d: _edit_meta(p, d, "strings.tokens", list(range(SEQ_LEN))), ("strings.tokens",)),
    ("tokens-empty", _M("strings.tokens", []), ("strings.tokens", "empty")),
    ("tokens-one-short", lambda p, d: _edit_meta(p, d, "strings.tokens", _meta_of(p)["strings"]["tokens"][:-1]), ("'token_ids.npy'", f"seq_len={SEQ_LEN - 1}")),
    ("lens-names-one-short", _M("strings.lens_layer_names", ["embed", "0", "1"]), ("'lens.topk_ids.npy'", "n_rows=3")),
    ("model-name-int", _M("scalars.model_name", 123), ("scalars.model_name",)),
    ("prompt-list", _M("scalars.prompt", ["a"]), ("scalars.prompt",)),
    ("extra-list", _M("scalars.extra", [1]), ("scalars.extra",)),
    ("attention-not-an-object", _M("scalars.attention", "x"), ("scalars.attention",)),
    ("attention-heads-negative", _M("scalars.attention.n_heads", -1), ("scalars.attention.n_heads",)),
    ("attention-min-weight-string", _M("scalars.attention.min_weight", "x"), ("min_weight",)),
    ("meta-deeply-nested", _deep_json_meta, ("RecursionError",)),
    # members: each once, none missing, none unknown
    ("member-twice", lambda p, d: _add_members(p, d, [("entropy.npy", _npy(np.zeros(SEQ_LEN, np.float32)))]), ("'entropy.npy'", "twice")),
    ("meta-twice", lambda p, d: _add_members(p, d, [("meta.json", json.dumps(_meta_of(p)).encode())]), ("'meta.json'", "twice")),
    ("unexpected-member", lambda p, d: _add_members(p, d, [("notes.txt", b"hi")]), ("unexpected member 'notes.txt'",)),
    ("attention-members-without-meta", _M("scalars.attention", _DELETE), ("unexpected member 'attention.",)),
    ("lens-member-missing", lambda p, d: rewrite_member(p, d, "lens.entropy.npy", None), ("'lens.entropy.npy'", "missing")),
    ("huge-zip-directory", _huge_directory, ("zip directory",)),
    # .npy members: the dtype, order, shape and size the table says
    ("dtype-float64", _A("entropy", lambda a: a.astype(np.float64)), ("'entropy.npy'", "dtype <f8", "expected <f4")),
    ("dtype-int32-ids", _A("topk_ids", lambda a: a.astype(np.int32)), ("'topk_ids.npy'", "dtype <i4", "expected <i8")),
    ("fortran-order", _A("topk_logits", np.asfortranarray), ("'topk_logits.npy'", "Fortran")),
    ("shape-short", _A("entropy", lambda a: a[:-1]), ("'entropy.npy'", f"seq_len={SEQ_LEN}")),
    ("shape-extra-axis", _A("entropy", lambda a: a[:, None]), ("'entropy.npy'", "shape (6, 1)")),
    ("k-differs-between-members", _A("topk_probs", lambda a: a[:, :-1]), ("'topk_probs.npy'", "k=5")),
    ("size-larger-than-shape", lambda p, d: rewrite_member(p, d, "entropy.npy", _npy(np.zeros(SEQ_LEN, np.float32)) + b"\0" * 64), ("'entropy.npy'", "data bytes")),
    ("size-smaller-than-shape", lambda p, d: rewrite_member(p, d, "entropy.npy", _npy(np.zeros(SEQ_LEN, np.float32))[:-4]), ("'entropy.npy'", "data bytes")),
    ("npy-version-3", lambda p, d: rewrite_member(p, d, "entropy.npy", _npy_header_only((SEQ_LEN,), version=(3, 0), data=bytes(4 * SEQ_LEN))), ("'entropy.npy'", ".npy version (3, 0)")),
    ("npy-not-npy", lambda p, d: rewrite_member(p, d, "entropy.npy", b"garbage that is long enough to read"), ("'entropy.npy'", "header")),
    ("npy-object-dtype", lambda p, d: rewrite_member(p, d, "entropy.npy", _npy(np.array([{"a": 1}] * SEQ_LEN, dtype=object))), ("'entropy.npy'", "dtype")),
    ("crc-damaged", _damage_crc, ("'entropy.npy'", "CRC")),
]


@pytest.mark.parametrize("build, words", [pytest.param(b, w, id=i) for i, b, w in MALFORMED])
def test_malformed_files_are_refused_by_name(tmp_path: Path, build: object, words: tuple[str, ...]) -> None:
    record = make_record()
    assert (record.seq_len, record.d_vocab, record.k) == (SEQ_LEN, D_VOCAB, 5)
    good = record.save(tmp_path / "good.coil")
    bad = tmp_path / "bad.coil"
    build(good, bad)  # type: ignore[operator]
    with pytest.raises(RecordFormatError) as info:
        Record.load(bad)
    message = str(info.value)
    assert message.startswith(f"path: {bad} ") and "\n" not in message
    for word in words:
        assert word in message


def _bomb(good: Path, dst: Path, member: str, shape: tuple[int, ...], n_bytes: int) -> None:
    """A copy of ``good`` whose ``member`` declares ``shape`` and holds ``n_bytes`` zero bytes, deflated."""
    zeros = bytes(2**24)
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if info.filename != member:
                zout.writestr(info, zin.read(info.filename))
        with zout.open(member, "w") as fh:
            fh.write(_npy_header_only(shape))
            while n_bytes > 0:
                fh.write(zeros[: min(n_bytes, len(zeros))])
                n_bytes -= len(zeros)


@pytest.mark.parametrize(
    "shape, n_bytes, words",
    [
        # 200 MB of float32 zeros that deflate to under 1 MB; sizes agree, the shape does not
        pytest.param((50_000_000,), 200_000_000, ("'entropy.npy'", f"seq_len={SEQ_LEN}"), id="honest-size-huge-shape"),
        pytest.param((2**60,), 64, ("'entropy.npy'", "data bytes"), id="2^60-elements"),
        pytest.param((2**31, 2**31), 64, ("'entropy.npy'", "shape"), id="2^62-elements-2d"),
    ],
)
def test_array_bombs_fail_before_any_large_allocation(tmp_path: Path, shape: tuple[int, ...], n_bytes: int, words: tuple[str, ...]) -> None:
    good = make_record().save(tmp_path / "good.coil")
    bad = tmp_path / "bomb.coil"
    _bomb(good, bad, "entropy.npy", shape, n_bytes)
    assert bad.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(RecordFormatError) as info:
            Record.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    assert str(info.value).startswith(f"path: {bad} ")
    for word in words:
        assert word in str(info.value)


def test_a_meta_json_bomb_is_refused_unread(tmp_path: Path) -> None:
    good = make_record().save(tmp_path / "good.coil")
    meta = _meta_of(good)
    meta["scalars"]["extra"] = {"x": None}
    # tens of millions of empty lists: gigabytes of Python objects if it were parsed
    text = json.dumps(meta).replace('{"x": null}', '{"x": [' + "[]," * (META_MAX_BYTES // 3) + "[]]}")
    assert len(text) > META_MAX_BYTES
    bad = tmp_path / "bomb.coil"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if info.filename != "meta.json":
                zout.writestr(info, zin.read(info.filename))
        zout.writestr("meta.json", text.encode())
    del text
    tracemalloc.start()
    try:
        with pytest.raises(RecordFormatError) as info:
            Record.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    assert "'meta.json'" in str(info.value) and f"at most {META_MAX_BYTES}" in str(info.value)


def test_unknown_tokens_and_big_endian_members_still_load(tmp_path: Path) -> None:
    # token id -1: a token given as a string the vocabulary lacks
    r = coilvis.from_logits(np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32), tokens=["zz", "yy", "a"], k=3)
    assert (r.token_ids == -1).all()
    assert_records_equal(r, Record.load(r.save(tmp_path / "unknown.coil")))
    good = make_record().save(tmp_path / "good.coil")
    swapped = tmp_path / "swapped.coil"
    _edit_array(good, swapped, "entropy", lambda a: a.astype(">f4"))
    back = Record.load(swapped)
    assert back.entropy.dtype == np.float32
    np.testing.assert_array_equal(back.entropy, make_record().entropy)


# --------------------------------------------------------------------------- paths, atomic and deterministic saves


@pytest.mark.parametrize("value", [123, None, b"r.coil", 1.5], ids=["int", "none", "bytes", "float"])
def test_save_and_load_refuse_paths_of_the_wrong_type(value: object) -> None:
    with pytest.raises(CoilvisTypeError, match="^path: "):
        make_record(lens=False).save(value)  # type: ignore[arg-type]
    with pytest.raises(CoilvisTypeError, match="^path: "):
        Record.load(value)  # type: ignore[arg-type]


def test_save_and_load_refuse_a_folder(tmp_path: Path) -> None:
    with pytest.raises(CoilvisValueError, match="^path: .*is a folder"):
        make_record(lens=False).save(tmp_path)
    with pytest.raises(CoilvisValueError, match="^path: .*is a folder"):
        Record.load(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CoilvisValueError, match="^path: .*not a folder"):
        make_record(lens=False).save(tmp_path / "file" / "r.coil")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_failed_save_names_the_target() -> None:
    with pytest.raises(OSError) as info:
        make_record(lens=False).save("/proc/x.coil")
    assert "/proc/x.coil" in str(info.value) and ".tmp" not in str(info.value)


_SAVE_IN_A_CHILD = """
import os, sys, time
from coilvis.record import Record
record = Record.load(sys.argv[2])
if sys.argv[3] == "stall":
    def stall(fd):
        print("writing", flush=True)
        time.sleep(120)
    os.fsync = stall  # the save stops after writing its data, before the rename
record.save(sys.argv[1])
"""


def _child(path: Path, mode: str, source: Path, **env: str) -> subprocess.Popen:
    """Another Python process that loads ``source`` and saves it to ``path``."""
    return subprocess.Popen(
        [sys.executable, "-c", _SAVE_IN_A_CHILD, str(path), str(source), mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_a_save_killed_midway_leaves_a_temporary_file_the_next_save_removes(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    path = make_record(seed=1).save(folder / "r.coil")
    child = _child(path, "stall", make_record(seed=5).save(tmp_path / "source.coil"))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 2 and left[0].startswith(".r.coil.") and left[0].endswith(".tmp")
    assert_records_equal(make_record(seed=1), Record.load(path))  # the old file is whole
    make_record(seed=2).save(path)
    assert sorted(p.name for p in folder.iterdir()) == ["r.coil"]
    assert_records_equal(make_record(seed=2), Record.load(path))


def test_the_same_record_saved_in_two_processes_gives_the_same_bytes(tmp_path: Path) -> None:
    # other time zones and hash seeds: zip timestamps, set and dict orders must not leak in
    here = make_record(seed=7).save(tmp_path / "c.coil")
    runs = [("a.coil", {"TZ": "UTC0", "PYTHONHASHSEED": "1"}), ("b.coil", {"TZ": "JST-9", "PYTHONHASHSEED": "2"})]
    children = [_child(tmp_path / name, "save", here, **env) for name, env in runs]
    assert [child.wait() for child in children] == [0, 0]
    assert (tmp_path / "a.coil").read_bytes() == (tmp_path / "b.coil").read_bytes() == here.read_bytes()
    with zipfile.ZipFile(here) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert zf.namelist()[0] == "meta.json"


def test_next_ids_are_the_following_tokens() -> None:
    record = make_record(seq_len=4)
    assert record.next_ids.tolist() == record.token_ids[1:].tolist() + [-1]
