"""The Comparison of two runs: its checks, its tables, and compare_records' values against numpy references on full distributions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import coilvis
from coilvis.comparison import DIVERGENCE_FIELDS, MOVER_FIELDS, Comparison, Metric, PairLens
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.options import LN2
from coilvis.record import Record
from coilvis.runner.compare_records import compare_records
from tests.lens_records import VOCAB, lens_record_and_logits

D_VOCAB = 12
TEXTS = [f"t{i}" for i in range(D_VOCAB - 3)] + [" Mary", " John", "<b>&"]
MARY, JOHN = TEXTS.index(" Mary"), TEXTS.index(" John")
TOL = dict(rtol=1e-4, atol=5e-5)


def logits_of(seed: int, seq_len: int = 5, d_vocab: int = D_VOCAB, scale: float = 2.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(seq_len, d_vocab)) * scale).astype(np.float32)


def record_of(logits: np.ndarray, tokens: list[int], *, k: int = D_VOCAB, vocab: list[str] = TEXTS, model_name: str = "") -> Record:
    return coilvis.from_logits(logits, tokens=tokens, vocab=vocab, k=k, model_name=model_name)


def reference(x_a: np.ndarray, x_b: np.ndarray) -> dict[str, np.ndarray]:
    """KL both ways, JS and TV of the softmaxes of two (..., d_vocab) logit arrays, float64."""
    lp_a = x_a - np.logaddexp.reduce(x_a.astype(np.float64), axis=-1, keepdims=True)
    lp_b = x_b - np.logaddexp.reduce(x_b.astype(np.float64), axis=-1, keepdims=True)
    p_a, p_b = np.exp(lp_a), np.exp(lp_b)
    lp_m = np.log(0.5 * (p_a + p_b))
    return {
        "kl_ab": (p_a * (lp_a - lp_b)).sum(-1),
        "kl_ba": (p_b * (lp_b - lp_a)).sum(-1),
        "js": 0.5 * (p_a * (lp_a - lp_m)).sum(-1) + 0.5 * (p_b * (lp_b - lp_m)).sum(-1),
        "tv": 0.5 * np.abs(p_a - p_b).sum(-1),
        "p_a": p_a,
        "p_b": p_b,
        "lp_a": lp_a,
        "lp_b": lp_b,
    }


TOKENS_A = [0, 3, MARY, 5, JOHN]
TOKENS_B = [0, 4, MARY, 5, JOHN]


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray, Comparison]:
    """Two runs that kept every token (exact), with a metric."""
    x_a, x_b = logits_of(0), logits_of(1)
    c = compare_records(record_of(x_a, TOKENS_A), record_of(x_b, TOKENS_B), metric=(" Mary", " John"), movers=4)
    return x_a, x_b, c


# --------------------------------------------------------------------------- the data classes


def _fields(c: Comparison) -> dict[str, object]:
    return {f.name: getattr(c, f.name) for f in dataclasses.fields(Comparison)}


BAD_FIELDS: list[tuple[str, dict[str, object], type[CoilvisError], tuple[str, ...]]] = [
    ("kl_ab-2d", {"kl_ab": np.zeros((5, 1))}, CoilvisValueError, ("kl_ab:", "n_pos")),
    ("kl_ab-empty", {"kl_ab": np.zeros(0)}, CoilvisValueError, ("kl_ab:",)),
    ("js-short", {"js": np.zeros(4)}, CoilvisValueError, ("js:", "(5,)")),
    ("tv-long", {"tv": np.zeros(6)}, CoilvisValueError, ("tv:",)),
    ("delta-short", {"delta_next_logprob": np.zeros(2)}, CoilvisValueError, ("delta_next_logprob:",)),
    ("exact-short", {"exact": np.ones(4, bool)}, CoilvisValueError, ("exact:",)),
    ("rise-ids-1d", {"rise_ids": np.zeros(5, np.int64)}, CoilvisValueError, ("rise_ids:",)),
    ("fall-ids-other-shape", {"fall_ids": np.zeros((5, 3), np.int64)}, CoilvisValueError, ("fall_ids:", "(5, 4)")),
    ("rise-prob-b-shape", {"rise_prob_b": np.zeros((5, 2))}, CoilvisValueError, ("rise_prob_b:",)),
    ("offset-a-past-the-end", {"offset_a": 1}, CoilvisValueError, ("offset_a:", "1 + 5", "5 positions")),
    ("offset-b-negative", {"offset_b": -1}, CoilvisValueError, ("offset_b:",)),
    ("offset-a-float", {"offset_a": 0.5}, CoilvisTypeError, ("offset_a:",)),
    ("offset-b-bool", {"offset_b": False}, CoilvisTypeError, ("offset_b:",)),
    ("metric-without-values", {"metric_a": None, "metric_b": None}, CoilvisValueError, ("metric_a, metric_b",)),
    ("metric-one-value", {"metric_b": None}, CoilvisValueError, ("metric_a, metric_b",)),
    ("values-without-metric", {"metric": None}, CoilvisValueError, ("metric:",)),
    ("metric-a-shape", {"metric_a": np.zeros(3)}, CoilvisValueError, ("metric_a:",)),
    ("a-not-a-record", {"a": "clean"}, CoilvisTypeError, ("a:", "Record")),
    ("b-not-a-record", {"b": None}, CoilvisTypeError, ("b:",)),
    ("label-a-not-str", {"label_a": 1}, CoilvisTypeError, ("label_a:",)),
    ("label-b-not-str", {"label_b": None}, CoilvisTypeError, ("label_b:",)),
    (
        "b-other-vocabulary",
        {"b": record_of(logits_of(1, d_vocab=D_VOCAB + 1), TOKENS_B, k=3, vocab=[*TEXTS, "x"])},
        CoilvisValueError,
        ("b:", str(D_VOCAB + 1), str(D_VOCAB), "vocabular"),
    ),
]


@pytest.mark.parametrize("change, error, words", [pytest.param(c, e, w, id=i) for i, c, e, w in BAD_FIELDS])
def test_a_comparison_refuses_inconsistent_fields(pair: tuple, change: dict, error: type, words: tuple[str, ...]) -> None:
    *_, good = pair
    with pytest.raises(error) as info:
        Comparison(**{**_fields(good), **change})
    for word in words:
        assert word in str(info.value)


def test_a_comparison_refuses_a_lens_of_other_positions(pair: tuple) -> None:
    *_, good = pair
    lens = PairLens(layer_names=("embed", "0"), **{n: np.zeros((2, 3)) for n in DIVERGENCE_FIELDS})
    with pytest.raises(CoilvisValueError, match=r"^lens: has 3 positions, the comparison 5"):
        dataclasses.replace(good, lens=lens)


def test_fields_get_their_dtypes(pair: tuple) -> None:
    *_, good = pair
    c = Comparison(
        **{
            **_fields(good),
            **{n: getattr(good, n).astype(np.float64).tolist() for n in (*DIVERGENCE_FIELDS, "delta_next_logprob")},
            "exact": [1, 0, 1, 1, 1],
            "rise_ids": good.rise_ids.astype(np.int32),
            "vocab": {np.int64(3): np.str_("x")},
        }
    )
    for name in (*DIVERGENCE_FIELDS, "delta_next_logprob", "rise_prob_a", "metric_a"):
        assert getattr(c, name).dtype == np.float32 and getattr(c, name).flags.c_contiguous, name
    assert c.exact.dtype == bool and c.exact.tolist() == [True, False, True, True, True]
    assert c.rise_ids.dtype == np.int64 and c.fall_ids.dtype == np.int64
    assert c.vocab == {3: "x"} and type(next(iter(c.vocab))) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.kl_ab = np.zeros(5)  # type: ignore[misc]


@pytest.mark.parametrize(
    "change, words",
    [
        pytest.param({"kl_ab": np.zeros((3, 4))}, ("lens.kl_ab:", "(2, n_pos)"), id="rows-not-names"),
        pytest.param({"js": np.zeros((2, 5))}, ("lens.js:", "(2, 4)"), id="js-other-shape"),
        pytest.param({"metric_a": np.zeros((2, 4))}, ("lens.metric_a, lens.metric_b",), id="one-metric"),
        pytest.param({"metric_a": np.zeros((2, 3)), "metric_b": np.zeros((2, 3))}, ("lens.metric_a:",), id="metric-shape"),
    ],
)
def test_a_pair_lens_refuses_inconsistent_fields(change: dict, words: tuple[str, ...]) -> None:
    fields = {"layer_names": ["embed", "0"], **{n: np.zeros((2, 4)) for n in DIVERGENCE_FIELDS}}
    lens = PairLens(**fields)  # type: ignore[arg-type]
    assert lens.n_rows == 2 and lens.layer_names == ("embed", "0") and lens.exact is True and lens.kl_ab.dtype == np.float32
    with pytest.raises(CoilvisValueError) as info:
        PairLens(**{**fields, **change})  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


def test_a_metric_needs_one_text_per_token_on_both_sides() -> None:
    m = Metric([3, np.int64(4)], (5,), ("a", "b"), ["c"])
    assert m.plus_ids == (3, 4) and m.minus_ids == (5,) and m.plus_text == ("a", "b")
    assert m.label == "mean['a', 'b'] \u2212 'c'"
    assert Metric((MARY,), (JOHN,), (" Mary",), (" John",)).label == "' Mary' \u2212 ' John'"
    for bad in ({"plus_ids": ()}, {"plus_text": ()}, {"minus_ids": (1, 2)}):
        with pytest.raises(CoilvisValueError, match=r"^metric: the (plus|minus) side"):
            Metric(**{"plus_ids": (3,), "minus_ids": (5,), "plus_text": ("a",), "minus_text": ("c",), **bad})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- tables


def test_summary_has_one_row_per_position_with_the_arrays_values(pair: tuple) -> None:
    *_, c = pair
    frame = c.summary()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "pos", "pos_a", "pos_b", "token_a", "token_b", "differs", "kl_ab_bits", "kl_ba_bits", "js_bits", "tv",
        "delta_next_logprob", "metric_a", "metric_b", "metric_change", "exact",
    ]  # fmt: skip
    assert frame["pos"].tolist() == list(range(5)) and frame["pos_a"].tolist() == list(range(5))
    assert frame["token_a"].tolist() == [TEXTS[i] for i in TOKENS_A] and frame["token_b"].tolist() == [TEXTS[i] for i in TOKENS_B]
    assert frame["differs"].tolist() == [False, True, False, False, False]
    for name in ("kl_ab", "kl_ba", "js"):
        np.testing.assert_allclose(frame[f"{name}_bits"], c.divergence(name) / LN2, rtol=1e-6)
        np.testing.assert_allclose(c.divergence(name, bits=True), c.divergence(name) / LN2, rtol=1e-6)
    np.testing.assert_array_equal(frame["tv"], c.tv)
    np.testing.assert_array_equal(c.divergence("tv", bits=True), c.tv)
    np.testing.assert_array_equal(frame["delta_next_logprob"], c.delta_next_logprob)
    np.testing.assert_allclose(frame["metric_change"], c.metric_b - c.metric_a)
    np.testing.assert_array_equal(c.metric_change, c.metric_b - c.metric_a)
    assert frame["exact"].tolist() == [True] * 5
    with pytest.raises(CoilvisValueError, match="^name:"):
        c.divergence("kl")


def test_summary_without_a_metric_has_no_metric_columns() -> None:
    c = compare_records(record_of(logits_of(0), TOKENS_A), record_of(logits_of(1), TOKENS_B))
    assert "metric_a" not in c.summary().columns and c.metric_change is None
    assert c.summary().columns[-1] == "exact"


def test_movers_frame_lists_rises_then_falls_with_both_probabilities(pair: tuple) -> None:
    *_, c = pair
    frame = c.movers(-1)
    assert list(frame.columns) == ["direction", "token_id", "token", "prob_a", "prob_b", "change"]
    assert frame["direction"].tolist() == ["rise"] * 4 + ["fall"] * 4
    assert frame["token_id"].tolist() == c.rise_ids[4].tolist() + c.fall_ids[4].tolist()
    assert frame["token"].tolist() == [TEXTS[i] for i in frame["token_id"]]
    np.testing.assert_array_equal(frame["prob_a"], np.concatenate([c.rise_prob_a[4], c.fall_prob_a[4]]))
    np.testing.assert_array_equal(frame["prob_b"], np.concatenate([c.rise_prob_b[4], c.fall_prob_b[4]]))
    np.testing.assert_allclose(frame["change"], frame["prob_b"] - frame["prob_a"])
    rise, fall = frame["change"][:4].to_numpy(), frame["change"][4:].to_numpy()
    assert np.all(np.diff(rise) <= 1e-7) and np.all(np.diff(fall) >= -1e-7)
    assert frame.equals(c.movers(4)) and not frame.equals(c.movers(0))
    for bad in (5, -6):
        with pytest.raises(CoilvisValueError, match="^pos:"):
            c.movers(bad)
    with pytest.raises(CoilvisTypeError, match="^pos:"):
        c.movers(1.0)  # type: ignore[arg-type]


def test_positions_tokens_and_text(pair: tuple) -> None:
    *_, c = pair
    assert c.n_pos == 5 and c.n_movers == 4
    assert c.token_ids_a.tolist() == TOKENS_A and c.token_ids_b.tolist() == TOKENS_B
    assert c.token_text(MARY) == " Mary" and c.token_text(10**6) == f"<id {10**6}>"
    assert c.check_pos(-1) == 4
    assert "metric=' Mary' \u2212 ' John'" in repr(c) and "n_pos=5" in repr(c)


# --------------------------------------------------------------------------- compare_records: values


def test_runs_that_kept_every_token_compare_exactly(pair: tuple) -> None:
    x_a, x_b, c = pair
    ref = reference(x_a, x_b)
    assert c.exact.all() and "lower bound" not in repr(c)
    for name in DIVERGENCE_FIELDS:
        np.testing.assert_allclose(getattr(c, name), ref[name], **TOL, err_msg=name)
    assert np.all(c.kl_ab >= 0) and np.all(c.js <= LN2 + 1e-6) and np.all((c.tv >= 0) & (c.tv <= 1))
    # movers: the largest rise and fall over the whole vocabulary, with both probabilities
    change = ref["p_b"] - ref["p_a"]
    rows = np.arange(5)[:, None]
    np.testing.assert_allclose(change[rows, c.rise_ids][:, 0], change.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(change[rows, c.fall_ids][:, 0], change.min(axis=1), atol=1e-6)
    np.testing.assert_allclose(c.rise_prob_a, ref["p_a"][rows, c.rise_ids], atol=1e-6)
    np.testing.assert_allclose(c.fall_prob_b, ref["p_b"][rows, c.fall_ids], atol=1e-6)
    assert all(len(set(row)) == c.n_movers for row in c.rise_ids.tolist())


def test_identical_runs_differ_by_nothing() -> None:
    record = record_of(logits_of(3), TOKENS_A)
    c = compare_records(record, record)
    for name in (*DIVERGENCE_FIELDS, "delta_next_logprob"):
        np.testing.assert_allclose(np.nan_to_num(getattr(c, name)), 0.0, atol=2e-5, err_msg=name)
    assert np.isnan(c.delta_next_logprob[-1]) and not c.differs.any()


@pytest.mark.parametrize("k_a, k_b", [(1, 1), (3, 2), (D_VOCAB, 2), (4, D_VOCAB)])
def test_runs_that_kept_their_top_k_give_lower_bounds(k_a: int, k_b: int) -> None:
    x_a, x_b = logits_of(5), logits_of(6)
    c = compare_records(record_of(x_a, TOKENS_A, k=k_a), record_of(x_b, TOKENS_B, k=k_b))
    ref = reference(x_a, x_b)
    assert not c.exact.any() and "lower bound at 5 positions" in repr(c)
    for name in DIVERGENCE_FIELDS:
        assert np.all(getattr(c, name) >= -1e-6) and np.all(getattr(c, name) <= ref[name] + 2e-5), name
    # probabilities a run did not keep are unknown, never made up
    for ids, prob_a, prob_b in ((c.rise_ids, c.rise_prob_a, c.rise_prob_b), (c.fall_ids, c.fall_prob_a, c.fall_prob_b)):
        in_a = (ids[:, :, None] == c.a.topk_ids[:, None, :]).any(-1)
        in_b = (ids[:, :, None] == c.b.topk_ids[:, None, :]).any(-1)
        assert np.array_equal(~np.isnan(prob_a), in_a) and np.array_equal(~np.isnan(prob_b), in_b)
        np.testing.assert_allclose(prob_a[in_a], ref["p_a"][np.nonzero(in_a)[0], ids[in_a]], atol=1e-6)


def test_align_end_compares_the_last_positions() -> None:
    x_a, x_b = logits_of(7, seq_len=6), logits_of(8, seq_len=4)
    a = record_of(x_a, [1, 2, 4, MARY, 5, JOHN])
    b = record_of(x_b, [4, MARY, 5, JOHN])
    c = compare_records(a, b, align="end")
    assert (c.offset_a, c.offset_b, c.n_pos) == (2, 0, 4)
    assert c.positions_a.tolist() == [2, 3, 4, 5] and c.summary()["pos_a"].tolist() == [2, 3, 4, 5]
    ref = reference(x_a[2:], x_b)
    for name in DIVERGENCE_FIELDS:
        np.testing.assert_allclose(getattr(c, name), ref[name], **TOL, err_msg=name)
    assert not c.differs.any()
    swapped = compare_records(b, a, align="end")
    assert (swapped.offset_a, swapped.offset_b) == (0, 2)
    np.testing.assert_allclose(swapped.kl_ab, c.kl_ba, **TOL)


def test_runs_of_different_lengths_need_align_end() -> None:
    a = record_of(logits_of(0, seq_len=5), TOKENS_A)
    longer = record_of(logits_of(1, seq_len=7), [0, 3, 8, 5, JOHN, 1, 1])
    with pytest.raises(CoilvisValueError) as info:
        compare_records(a, longer)
    message = str(info.value)
    assert message.startswith("b: has 7 tokens and a has 5") and "first differ at position 2" in message
    assert "'␣Mary' in a, 't8' in b" in message and "align='end'" in message
    prefix = record_of(logits_of(1, seq_len=3), TOKENS_A[:3])
    with pytest.raises(CoilvisValueError, match=r"b: has 3 tokens and a has 5.*prefix.*position 3"):
        compare_records(a, prefix)
    with pytest.raises(CoilvisValueError, match="^align:"):
        compare_records(a, prefix, align="start")


def test_records_of_different_vocabularies_are_refused() -> None:
    a = record_of(logits_of(0), TOKENS_A)
    bigger = record_of(logits_of(1, d_vocab=D_VOCAB + 1), TOKENS_B, vocab=[*TEXTS, "x"])
    with pytest.raises(CoilvisValueError, match=rf"^b: .*{D_VOCAB + 1} vocabulary entries.*{D_VOCAB}"):
        compare_records(a, bigger)
    renamed = record_of(logits_of(1), TOKENS_B, vocab=[*TEXTS[:MARY], " Maria", *TEXTS[MARY + 1 :]])
    with pytest.raises(CoilvisValueError, match=rf"^b: token id {MARY} is '␣Maria' in b but '␣Mary' in a"):
        compare_records(a, renamed)
    for name, args in (("a", ("x", a)), ("b", (a, None))):
        with pytest.raises(CoilvisTypeError, match=f"^{name}: expected a Record"):
            compare_records(*args)  # type: ignore[arg-type]


def test_a_metric_token_the_records_never_mention_is_refused() -> None:
    a, b = record_of(logits_of(0), TOKENS_A, k=2), record_of(logits_of(1), TOKENS_B, k=2)
    with pytest.raises(CoilvisValueError, match=r"^metric: ' Alice' is not among the tokens"):
        compare_records(a, b, metric=(" Mary", " Alice"))
    with pytest.raises(CoilvisValueError, match=r"^metric: token id 99 is outside the vocabulary \[0, 12\)"):
        compare_records(a, b, metric=(MARY, 99))
    with pytest.raises(CoilvisTypeError, match="^metric:"):
        compare_records(a, b, metric=" Mary")


def test_the_metric_is_the_logit_difference_where_both_tokens_were_kept() -> None:
    x_a, x_b = logits_of(0), logits_of(1)
    full = compare_records(record_of(x_a, TOKENS_A), record_of(x_b, TOKENS_B), metric=(" Mary", JOHN))
    np.testing.assert_allclose(full.metric_a, x_a[:, MARY] - x_a[:, JOHN], atol=1e-5)
    np.testing.assert_allclose(full.metric_b, x_b[:, MARY] - x_b[:, JOHN], atol=1e-5)
    assert full.metric is not None and full.metric.plus_text == (" Mary",) and full.metric.minus_ids == (JOHN,)
    mean = compare_records(record_of(x_a, TOKENS_A), record_of(x_b, TOKENS_B), metric=([" Mary", 0], [JOHN]))
    np.testing.assert_allclose(mean.metric_a, (x_a[:, MARY] + x_a[:, 0]) / 2 - x_a[:, JOHN], atol=1e-5)
    # top-8 only: the difference where both tokens are kept, NaN elsewhere
    a = record_of(x_a, TOKENS_A, k=8)
    part = compare_records(a, record_of(x_b, TOKENS_B, k=8), metric=(" Mary", " John"))
    kept = (a.topk_ids == MARY).any(1) & (a.topk_ids == JOHN).any(1)
    assert np.array_equal(~np.isnan(part.metric_a), kept) and kept.any() and not kept.all()
    np.testing.assert_allclose(part.metric_a[kept], (x_a[:, MARY] - x_a[:, JOHN])[kept], atol=1e-5)


def test_delta_next_logprob_is_the_change_in_as_next_token() -> None:
    x_a, x_b = logits_of(0), logits_of(1)
    ref = reference(x_a, x_b)
    t = np.array(TOKENS_A[1:])
    want = ref["lp_b"][np.arange(4), t] - ref["lp_a"][np.arange(4), t]
    c = compare_records(record_of(x_a, TOKENS_A), record_of(x_b, TOKENS_B))
    np.testing.assert_allclose(c.delta_next_logprob[:4], want, atol=2e-5)
    assert np.isnan(c.delta_next_logprob[4])
    # b kept its top-2: known where a's next token is among them or is b's own next token
    b = record_of(x_b, TOKENS_B, k=2)
    part = compare_records(record_of(x_a, TOKENS_A), b)
    known = (b.topk_ids[:4] == t[:, None]).any(1) | (np.array(TOKENS_B[1:]) == t)
    assert np.array_equal(~np.isnan(part.delta_next_logprob[:4]), known) and known.any() and not known.all()
    np.testing.assert_allclose(part.delta_next_logprob[:4][known], want[known], atol=2e-5)


def test_labels_movers_and_the_source() -> None:
    x_a, x_b = logits_of(0), logits_of(1)
    same = compare_records(record_of(x_a, TOKENS_A, model_name="m"), record_of(x_b, TOKENS_B, model_name="m"), movers=2)
    assert (same.label_a, same.label_b, same.n_movers) == ("a", "b", 2)
    assert same.extra == {"source": "records"}
    other = compare_records(record_of(x_a, TOKENS_A, model_name="base"), record_of(x_b, TOKENS_B, model_name="tuned"))
    assert (other.label_a, other.label_b) == ("base", "tuned") and "b='tuned'" in repr(other)
    named = compare_records(record_of(x_a, TOKENS_A), record_of(x_b, TOKENS_B), label_a="clean", label_b="corrupt")
    assert (named.label_a, named.label_b) == ("clean", "corrupt")
    with pytest.raises(CoilvisValueError, match="^movers:"):
        compare_records(same.a, same.b, movers=0)
    with pytest.raises(CoilvisTypeError, match="^label_a:"):
        compare_records(same.a, same.b, label_a=1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- compare_records: the lens

LENS_TOKENS = ["w1", " Paris", "w2", "\n", "w3"]


@pytest.mark.parametrize("k", [len(VOCAB), 20])
def test_records_with_lens_statistics_compare_per_layer_and_position(k: int) -> None:
    a, x_a = lens_record_and_logits(LENS_TOKENS, k=k, seed=1)
    b, x_b = lens_record_and_logits(LENS_TOKENS, k=k, seed=2)
    paris, w2 = VOCAB.index(" Paris"), VOCAB.index("w2")
    c = compare_records(a, b, metric=(paris, w2))
    assert c.lens is not None and c.lens.layer_names == ("embed", "0", "1", "2", "3") and c.lens.kl_ab.shape == (5, 5)
    ref = reference(x_a, x_b)
    assert c.lens.exact is (k == len(VOCAB))
    assert c.lens.metric_a is not None and c.lens.metric_b is not None
    if c.lens.exact:
        for name in DIVERGENCE_FIELDS:
            np.testing.assert_allclose(getattr(c.lens, name), ref[name], **TOL, err_msg=name)
        np.testing.assert_allclose(c.lens.metric_a, x_a[..., paris] - x_a[..., w2], atol=1e-4)
        np.testing.assert_allclose(c.lens.metric_b, x_b[..., paris] - x_b[..., w2], atol=1e-4)
    else:
        for name in DIVERGENCE_FIELDS:
            assert np.all(getattr(c.lens, name) <= ref[name] + 2e-5), name
        known = ~np.isnan(c.lens.metric_a)
        assert known.any() and not known.all()
        np.testing.assert_allclose(c.lens.metric_a[known], (x_a[..., paris] - x_a[..., w2])[known], atol=1e-4)
    # the final row decodes the models' output: the records kept its top 10, so the
    # per-position values are lower bounds of the (exact) final row
    assert not c.exact.any()
    if c.lens.exact:
        for name in DIVERGENCE_FIELDS:
            assert np.all(getattr(c, name) <= getattr(c.lens, name)[-1] + 2e-5), name


def test_lens_comparison_needs_both_lenses_and_the_same_layers() -> None:
    a = lens_record_and_logits(LENS_TOKENS, seed=1)[0]
    b = lens_record_and_logits(LENS_TOKENS, seed=2, n_layers=3)[0]
    with pytest.raises(CoilvisValueError, match=r"^b: its lens decodes the layers \['embed', '0', '1', '2'\]"):
        compare_records(a, b)
    assert compare_records(a, dataclasses.replace(b, lens=None)).lens is None


def test_mover_fields_are_the_documented_ones(pair: tuple) -> None:
    *_, c = pair
    for name in MOVER_FIELDS:
        assert getattr(c, name).shape == (5, 4), name
