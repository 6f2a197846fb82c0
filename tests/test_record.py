"""Tests for coilvis.record: the Record container, its derived values, and the saved
file format (round trips, atomic writes, clear errors on newer or damaged files)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coilvis
from coilvis import stats
from coilvis.errors import CoilvisError, CoilvisValueError, RecordFormatError
from coilvis.record import FORMAT_VERSION, HEAD_MAX, HEAD_MEAN, AttentionLinks, LensStats, Record

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
            next_rank=rng.integers(-1, d_vocab, size=(n_rows, seq_len)),
            final_top_prob=rng.random((n_rows, seq_len)),
            final_top_rank=rng.integers(0, d_vocab, size=(n_rows, seq_len)),
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
    assert meta["format"] == "coilvis.record" and meta["version"] == FORMAT_VERSION == 1
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
    with pytest.raises(FileNotFoundError, match="path"):
        Record.load(tmp_path / "nope.coilvis")


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
    attention = rng.random((draw(st.integers(1, 2)), 2, seq_len, seq_len)) if draw(st.booleans()) else None
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

