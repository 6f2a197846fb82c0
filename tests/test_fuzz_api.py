"""Fuzz the public Python API: one malformed argument at a time on an otherwise valid call.

Every function of ``coilvis.__all__`` that takes data (``from_logits``, ``run`` on a
tiny random Llama, ``logits_table``, ``load_model``, the Record's methods, ``coil``,
``lens``, ``page`` with their options, the unwind options and ``save``) gets, for one
argument, a value drawn from wrong types, NaN and infinities, negative and huge
integers, empty and ragged containers, strings, None and bools, and arrays of any
shape. The call must either return a valid result or raise a
:class:`~coilvis.errors.CoilvisError` whose message names that argument; any other
exception fails the test.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import coilvis
import coilvis.models
from coilvis.errors import CoilvisError
from coilvis.record import Record
from coilvis.views.output import View

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from lens_records import VOCAB, lens_record_and_logits
except ImportError:  # tests is a package
    from tests.lens_records import VOCAB, lens_record_and_logits

PROMPT = "Hello the world and the end"
TOKENS = ["w1", " Paris", "w2", "\n", "w1", "w3"]
N_LAYERS, N_HEADS = 2, 2


def _examples(share: float) -> int:
    """A share of the loaded profile's example count, for calls that draw a whole view."""
    return max(10, int(settings.default.max_examples * share))


# ------------------------------------------------------------------ malformed values

_NAN, _INF = float("nan"), float("inf")
_SPECIAL: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 7, 10**9, -(10**9), 2**63, -(2**63) - 1, 2**100,
    0.0, -0.0, 0.5, 1.5, -0.5, 1e308, 1e-320, _NAN, _INF, -_INF,
    "", " ", "x", "0", "12", "-1", "mean", "max", "all", "left", "prob", "kl", "Viridis", "Magma_r", "#ff0000",
    "\x00", "\u202e", "</script>", "$$x^2$$", "x" * 300, "the " * 300, b"x", bytearray(b"1"),
    [], [[]], [0], [1, 2], [-1], [99], ["a"], [None], [_NAN], [1, [2]], [[1.0, 2.0], [1.0]], [True],
    (), (0, 0), (0, "mean"), (-1, "max"), (9, 9), (0, 1, 2), ("a", "b"), (10, 10),
    {}, {"a": 1}, {0: "a"}, set(), {1}, frozenset([0]),
    np.array([]), np.array([_NAN]), np.float32(_NAN), np.float64(0.5), np.int64(-1), np.int64(3), np.bool_(True),
    np.zeros((2, 2)), np.zeros((0, 4)), np.array(["a", "b"]), np.array([1, 2], dtype=object), np.array([1 + 2j]),
    torch.tensor(_NAN), torch.tensor(1), torch.zeros(0), torch.zeros(6, 40, dtype=torch.int64),
    object(), Path("."), Path("/"), print, range(3),
]

_ARRAYS = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=7),
)  # float elements include NaN and infinities

#: One malformed (or merely unusual) value.
BAD = st.one_of(
    st.sampled_from(_SPECIAL).map(copy.deepcopy),  # a fresh copy: a call may keep or change what it is given
    st.builds(lambda: iter([1, 2])),  # an iterator (new each time: it is used up once read)
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.one_of(st.integers(-3, 50), st.floats(), st.text(max_size=2), st.none()), max_size=6),
    st.tuples(st.integers(-4, 4), st.one_of(st.integers(-4, 6), st.sampled_from(["mean", "max", "x"]))),
    _ARRAYS,
    _ARRAYS.map(torch.from_numpy),
)


# ------------------------------------------------------------------ valid inputs


def _attention(seq_len: int, seed: int = 0) -> np.ndarray:
    """Causal random attention, (N_LAYERS, N_HEADS, seq_len, seq_len), rows summing to 1."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, size=(N_LAYERS, N_HEADS, seq_len, seq_len))
    scores = np.where(np.tril(np.ones((seq_len, seq_len), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def _full_record(seed: int = 0) -> Record:
    """A record with top-k, lens statistics and attention links."""
    lensed, logits = lens_record_and_logits(TOKENS, n_layers=N_LAYERS, k=4, seed=seed)
    ids = [VOCAB.index(t) for t in TOKENS]
    plain = coilvis.from_logits(logits[-1].astype(np.float32), tokens=ids, vocab=list(VOCAB), attention=_attention(len(ids), seed), model_name="tiny")
    return dataclasses.replace(plain, lens=lensed.lens, vocab=lensed.vocab)


RECORD = _full_record()
LOGITS = np.random.default_rng(3).normal(0.0, 2.0, size=(len(TOKENS), len(VOCAB))).astype(np.float32)
IDS = [VOCAB.index(t) for t in TOKENS]


def _names_the_argument(message: str, names: tuple[str, ...]) -> bool:
    """Whether the message starts with one of the names, as ``name: ...`` or ``name[i]: ...``."""
    return any(message.startswith((name + ":", name + "[")) for name in names)


def check_call(call: Callable[[], Any], names: tuple[str, ...], valid: Callable[[Any], None]) -> None:
    """Run ``call``: a valid result, or a CoilvisError whose message starts with one of
    ``names``; nothing else."""
    try:
        result = call()
    except CoilvisError as exc:
        message = str(exc)
        assert _names_the_argument(message, names), f"{type(exc).__name__} names none of {names}: {message}"
        return
    valid(result)


def _is_record(result: Any) -> None:
    assert isinstance(result, Record) and result.seq_len >= 1
    assert result.topk_ids.shape == (result.seq_len, result.k)
    assert np.isfinite(result.topk_logits).all() and ((result.topk_probs >= 0) & (result.topk_probs <= 1)).all()
    if result.attention is not None:
        links = result.attention
        assert (links.key <= links.query).all() and ((links.weight >= 0) & (links.weight <= 1)).all()
        assert ((links.layer >= 0) & (links.layer < links.n_layers)).all()


def _is_table(result: Any) -> None:
    assert isinstance(result, pd.DataFrame)
    assert {"token_id", "token", "logit", "log_prob", "prob", "rank"} <= set(result.columns)
    assert len(result) >= 1 and ((result["prob"] >= 0) & (result["prob"] <= 1)).all()


def _is_view(result: Any) -> None:
    assert isinstance(result, View)


# ------------------------------------------------------------------ from_logits, logits_table, the Record

FROM_LOGITS_ARGS = ("logits", "tokens", "vocab", "k", "attention", "attention_top_k", "attention_min_weight", "model_name", "prompt")


@pytest.mark.parametrize("arg", FROM_LOGITS_ARGS)
@settings(max_examples=_examples(0.25))
@given(value=BAD)
def test_fuzz_from_logits(arg: str, value: Any) -> None:
    kwargs: dict[str, Any] = {
        "logits": LOGITS, "tokens": IDS, "vocab": list(VOCAB), "k": 5, "attention": _attention(len(IDS)),
        "attention_top_k": 3, "attention_min_weight": 0.05, "model_name": "m", "prompt": PROMPT,
    }
    if arg == "logits":  # alone, so that a differently shaped but valid logits stays valid
        kwargs = {"logits": value}
    else:
        kwargs[arg] = value
    logits = kwargs.pop("logits")
    check_call(lambda: coilvis.from_logits(logits, **kwargs), (arg,), _is_record)


@pytest.mark.parametrize("arg", ("logits", "tokenizer_or_vocab", "k", "pos", "target"))
@settings(max_examples=_examples(0.25))
@given(value=BAD)
def test_fuzz_logits_table(arg: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"logits": LOGITS, "tokenizer_or_vocab": list(VOCAB), "k": 3, "pos": -1, "target": IDS[0]}
    if arg == "logits":  # alone, with every row kept (an explicit k larger than d_vocab is refused)
        kwargs = {"logits": value, "k": None}
    elif arg == "pos":  # no target: pos=None needs one target per position
        kwargs = {"logits": LOGITS, "tokenizer_or_vocab": list(VOCAB), "pos": value}
    else:
        kwargs[arg] = value
    logits = kwargs.pop("logits")
    check_call(lambda: coilvis.logits_table(logits, **kwargs), (arg,), _is_table)


def _is_text(result: Any) -> None:
    assert isinstance(result, str)


def _is_per_position(result: Any) -> None:
    assert isinstance(result, np.ndarray) and result.shape == (RECORD.seq_len,)


@pytest.mark.parametrize(
    "method, arg, valid",
    [
        ("table", "pos", _is_table),
        ("table", "k", _is_table),
        ("surprisal", "bits", _is_per_position),
        ("entropy_in", "bits", _is_per_position),
        ("token_text", "token_id", _is_text),
    ],
)
@settings(max_examples=_examples(0.25))
@given(value=BAD)
def test_fuzz_record_methods(method: str, arg: str, valid: Callable[[Any], None], value: Any) -> None:
    check_call(lambda: getattr(RECORD, method)(**{arg: value}), (arg,), valid)


def _relative(value: Any) -> Any:
    """A drawn str or bytes as a name with no separator (relative to the example's folder)."""
    if isinstance(value, str):
        return value.replace(os.sep, "_")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).replace(os.sep.encode(), b"_")
    return value


@settings(max_examples=_examples(0.3))
@given(value=BAD.map(_relative), name=st.sampled_from(["x.coil", "x", "", ".", "..", "a/b.coil", "\x00.coil", "\u202e.coil", "x.coil/"]), as_path=st.booleans())
def test_fuzz_record_save_and_load(value: Any, name: str, as_path: bool, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("save")
    target = folder / name if as_path else str(folder) + os.sep + name

    def saved(path: Any) -> None:
        assert isinstance(path, Path) and path.is_file()
        assert Record.load(path).token_ids.tolist() == RECORD.token_ids.tolist()

    check_call(lambda: RECORD.save(target), ("path",), saved)
    with contextlib.chdir(folder):  # relative names land in the example's folder
        check_call(lambda: RECORD.save(value), ("path",), saved)
        check_call(lambda: Record.load(value), ("path",), _is_record)


# ------------------------------------------------------------------ views

COIL_OPTIONS = (
    "layout", "color", "attention", "attention_threshold", "attention_top_k", "max_links", "hide_sink", "palette",
    "width", "height", "title", "labels", "label_font_px", "tooltip_k", "n_arc", "clockwise",
)
UNWIND_OPTIONS = ("pace", "duration_s", "floor_bits", "autoplay")
LENS_OPTIONS = (
    "stat", "layers", "stride", "start", "end", "compare", "cell_px", "max_label_len", "hover_k", "max_width_px",
    "max_height_px", "palette", "title",
)


@pytest.mark.parametrize("arg", ("record",) + COIL_OPTIONS)
@settings(max_examples=_examples(0.1))
@given(value=BAD)
def test_fuzz_coil(arg: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"record": RECORD, "attention": "mean"}
    kwargs[arg] = value
    record = kwargs.pop("record")
    check_call(lambda: coilvis.coil(record, **kwargs), (arg,), _is_view)


@pytest.mark.parametrize("arg", UNWIND_OPTIONS)
@settings(max_examples=_examples(0.1))
@given(value=BAD)
def test_fuzz_unwind_options(arg: str, value: Any) -> None:
    check_call(lambda: coilvis.coil(RECORD, animate=True, **{arg: value}), (arg,), _is_view)


@pytest.mark.parametrize("arg", ("record",) + LENS_OPTIONS)
@settings(max_examples=_examples(0.1))
@given(value=BAD)
def test_fuzz_lens(arg: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"record": RECORD, "compare": None}
    kwargs[arg] = value
    record = kwargs.pop("record")
    check_call(lambda: coilvis.lens(record, **kwargs), (arg,), _is_view)


@pytest.mark.parametrize("arg", ("record", "coil_options", "lens_options", "k", "title", "coil_options.", "lens_options."))
@settings(max_examples=_examples(0.1))
@given(value=BAD, data=st.data())
def test_fuzz_page(arg: str, value: Any, data: st.DataObject) -> None:
    names: tuple[str, ...] = (arg,)
    kwargs: dict[str, Any] = {"record": RECORD}
    if arg.endswith("."):  # one option inside the options dict
        option = data.draw(st.sampled_from(COIL_OPTIONS if arg.startswith("coil") else LENS_OPTIONS), label="option")
        kwargs[arg[:-1]] = {option: value}
        names = (arg[:-1], option)
    else:
        kwargs[arg] = value
    record = kwargs.pop("record")
    check_call(lambda: coilvis.page(record, **kwargs), names, _is_view)


VIEW = coilvis.coil(RECORD)


PAGE_NAMES = ["x.html", "x.HTM", "x", "", ".", "..", "new/x.html", "x.html/", "\x00.html", "\u202e.html", "x.txt"]


@pytest.mark.parametrize("arg", ("view", "path", "path-name", "resources", "title"))
@settings(max_examples=_examples(0.1))
@given(value=BAD, name=st.sampled_from(PAGE_NAMES))
def test_fuzz_save(arg: str, value: Any, name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("page")
    kwargs: dict[str, Any] = {"view": VIEW, "path": folder / "x.html"}
    if arg == "path-name":  # a file name of the example's own folder
        arg, value = "path", folder / name
    elif arg == "path":
        value = _relative(value)
    if arg == "path" and isinstance(value, (str, Path)) and value != "" and Path(value).suffix.lower() == ".png":
        value = Path(value).with_suffix(".html")  # PNG needs a browser
    kwargs[arg] = value

    def written(path: Any) -> None:
        assert isinstance(path, Path) and path.is_file() and path.read_bytes().startswith(b"<!DOCTYPE html>")

    view, path = kwargs.pop("view"), kwargs.pop("path")
    with contextlib.chdir(folder):  # relative names land in the example's folder
        check_call(lambda: coilvis.save(view, path, **kwargs), (arg,), written)


# ------------------------------------------------------------------ run and load_model on tiny random models

RUN_ARGS = (
    "prompt", "model", "tokenizer", "k", "attention", "attention_top_k", "attention_min_weight", "attention_layers",
    "lens", "lens_k", "lens_mid", "prepend_bos", "truncate", "progress",
)


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # model names drawn at random must never reach the network
        mp.setenv("TQDM_DISABLE", "1")
        yield


@pytest.mark.parametrize("arg", RUN_ARGS)
@settings(max_examples=_examples(0.15))
@given(value=BAD)
def test_fuzz_run(arg: str, value: Any, offline: None, _tiny_llama_eager: Any, tiny_tokenizer: Any) -> None:
    if arg == "model" and value is None:
        return  # None is the embedded default model: valid, and not tiny
    kwargs: dict[str, Any] = {"prompt": PROMPT, "model": (_tiny_llama_eager, tiny_tokenizer), "attention": True, "lens": True}
    kwargs[arg] = value
    prompt, model = kwargs.pop("prompt"), kwargs.pop("model")
    check_call(lambda: coilvis.run(prompt, model, **kwargs), (arg,), _is_record)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, _tiny_llama_eager: Any, tiny_tokenizer: Any) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    _tiny_llama_eager.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("arg", ("name_or_path", "device", "dtype", "progress"))
@settings(max_examples=_examples(0.15))
@given(value=BAD)
def test_fuzz_load_model(arg: str, value: Any, offline: None, tiny_model_dir: Path) -> None:
    if arg == "name_or_path" and value is None:
        return  # None is the embedded default model: valid, and not tiny
    kwargs: dict[str, Any] = {"name_or_path": str(tiny_model_dir)}
    kwargs[arg] = value

    def loaded(result: Any) -> None:
        model, tokenizer, name = result
        assert isinstance(name, str) and callable(tokenizer) and isinstance(model, torch.nn.Module)

    name = kwargs.pop("name_or_path")
    names = (arg, "model") if arg == "name_or_path" else (arg,)  # a model that cannot load is "model: ...", as in run()
    before = set(coilvis.models._LOADED)
    try:
        check_call(lambda: coilvis.load_model(name, **kwargs), names, loaded)
    finally:  # every example loads afresh; models other tests loaded stay loaded
        for key in set(coilvis.models._LOADED) - before:
            del coilvis.models._LOADED[key]


def test_values_cover_every_kind() -> None:
    """The value pool holds each kind the fuzz promises, so a narrowed pool fails here."""
    kinds = {type(v) for v in _SPECIAL}
    assert {type(None), bool, int, float, str, bytes, list, tuple, dict, set, np.ndarray, torch.Tensor} <= kinds
    assert any(isinstance(v, float) and math.isnan(v) for v in _SPECIAL)
    assert any(isinstance(v, float) and math.isinf(v) for v in _SPECIAL)
    assert any(isinstance(v, list) and v and isinstance(v[0], list) and len({len(r) for r in v}) > 1 for v in _SPECIAL)


# ------------------------------------------------------------------ what the fuzz found, kept as named cases


@pytest.mark.parametrize(
    "call, name",
    [
        pytest.param(lambda tmp: coilvis.logits_table(LOGITS, [[]]), "tokenizer_or_vocab", id="table-vocab-entry-not-str"),
        pytest.param(lambda tmp: coilvis.logits_table(LOGITS, bytearray(b"1")), "tokenizer_or_vocab", id="table-vocab-bytearray"),
        pytest.param(lambda tmp: RECORD.token_text("mean"), "token_id", id="token_text-str"),
        pytest.param(lambda tmp: RECORD.token_text(None), "token_id", id="token_text-none"),
        pytest.param(lambda tmp: RECORD.surprisal(bits=np.zeros(2)), "bits", id="surprisal-array"),
        pytest.param(lambda tmp: RECORD.entropy_in(bits=np.zeros(2)), "bits", id="entropy_in-array"),
        pytest.param(lambda tmp: coilvis.save(VIEW, tmp / "x.html", resources=np.array([])), "resources", id="save-resources-array"),
        pytest.param(lambda tmp: coilvis.page(RECORD, coil_options={"a": 1}), "coil_options", id="page-unknown-coil-option"),
        pytest.param(lambda tmp: coilvis.page(RECORD, lens_options={0: 1}), "lens_options", id="page-unknown-lens-option"),
        pytest.param(lambda tmp: coilvis.load_model(str(tmp), dtype=np.zeros(2)), "dtype", id="load_model-dtype-array"),
        pytest.param(lambda tmp: coilvis.load_model("x" * 300), "model", id="load_model-name-too-long"),
        pytest.param(lambda tmp: coilvis.coil(RECORD, n_arc=2**63), "n_arc", id="coil-n_arc-huge"),
        pytest.param(lambda tmp: coilvis.coil(RECORD, n_arc=10**9), "n_arc", id="coil-n_arc-too-many-vertices"),
    ],
)
def test_cases_the_fuzz_found(call: Callable[[Path], Any], name: str, tmp_path: Path, offline: None) -> None:
    with pytest.raises(CoilvisError) as info:
        call(tmp_path)
    assert str(info.value).startswith((name + ":", name + "[")), str(info.value)


def test_save_is_coilvis_save_after_nnsight_is_imported(tmp_path: Path) -> None:
    pytest.importorskip("nnsight")  # it gives every object a ``save`` attribute
    import nnsight  # noqa: F401

    assert hasattr(object, "save")
    path = coilvis.save(VIEW, tmp_path / "x.html")
    assert path == tmp_path / "x.html" and path.read_bytes().startswith(b"<!DOCTYPE html>")
