"""Tests for coilvis.table: logits as a DataFrame, its readable (and escaped) display,
Record.table, vocabulary checks and the errors raised on bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import coilvis
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.table import COLUMNS, MAX_VOCAB_PADDING, LogitsTable, logits_table

BASE_COLUMNS = ["token_id", "token", "logit", "log_prob", "prob", "rank"]
XSS = "<img src=x onerror=alert(1)>"


def random_logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def vocab_of(d_vocab: int) -> list[str]:
    return [f"t{i}" for i in range(d_vocab)]


def assert_rows_match_logits(table: pd.DataFrame, row: torch.Tensor) -> None:
    """Every row's logit, log-prob, prob and rank agree with torch on the full row."""
    ids = torch.tensor(table["token_id"].tolist(), dtype=torch.int64)
    logp = torch.log_softmax(row.float(), -1)
    np.testing.assert_array_equal(table["logit"].to_numpy(), row.float()[ids].numpy())
    np.testing.assert_allclose(table["log_prob"].to_numpy(), logp[ids].numpy(), atol=1e-5)
    np.testing.assert_allclose(table["prob"].to_numpy(), logp[ids].exp().numpy(), atol=1e-6)
    want_rank = [1 + (row.float() > row.float()[i]).sum().item() for i in ids]
    assert table["rank"].tolist() == want_rank


# --------------------------------------------------------------------------- shape of the table


def test_vector_gives_the_top_k_sorted_by_logit() -> None:
    row = random_logits(100)
    table = logits_table(row, vocab_of(100), k=10)
    assert isinstance(table, LogitsTable) and isinstance(table, pd.DataFrame)
    assert list(table.columns) == BASE_COLUMNS == list(COLUMNS)
    assert len(table) == 10
    assert table["token_id"].tolist() == torch.topk(row, 10).indices.tolist()
    assert table["token"].tolist() == [f"t{i}" for i in table["token_id"]]
    assert table["rank"].tolist() == list(range(1, 11))  # 1-based: the top token has rank 1
    assert table["logit"].is_monotonic_decreasing
    assert table["token_id"].dtype == np.int64 and table["rank"].dtype == np.int64
    assert table["logit"].dtype == np.float32 and table["prob"].dtype == np.float32
    assert_rows_match_logits(table, row)


def test_matrix_picks_one_position() -> None:
    logits = random_logits(5, 60)
    for pos in (0, 2, -1, -5):
        table = logits_table(logits, vocab_of(60), k=4, pos=pos)
        assert list(table.columns) == BASE_COLUMNS
        assert table["token_id"].tolist() == torch.topk(logits[pos], 4).indices.tolist()
        assert_rows_match_logits(table, logits[pos])


def test_default_is_the_last_position_top_10() -> None:
    logits = random_logits(3, 40)
    table = logits_table(logits)
    assert table["token_id"].tolist() == torch.topk(logits[-1], 10).indices.tolist()
    assert table["token"].tolist() == [f"<id {i}>" for i in table["token_id"]]


def test_pos_none_gives_every_position_with_a_pos_column() -> None:
    logits = random_logits(7, 50)
    table = logits_table(logits, vocab_of(50), k=3, pos=None)
    assert list(table.columns) == ["pos"] + BASE_COLUMNS
    assert len(table) == 7 * 3
    assert table["pos"].tolist() == [p for p in range(7) for _ in range(3)]
    for p in range(7):
        part = table[table["pos"] == p]
        assert part["token_id"].tolist() == torch.topk(logits[p], 3).indices.tolist()
        assert_rows_match_logits(part, logits[p])


def test_k_none_gives_the_whole_vocabulary() -> None:
    d_vocab = 49_152
    perm = torch.randperm(d_vocab, generator=torch.Generator().manual_seed(0))
    row = (perm.float() * 1e-3).float()  # distinct float32 values
    table = logits_table(row, vocab_of(d_vocab), k=None)
    assert len(table) == d_vocab
    assert table["rank"].tolist() == list(range(1, d_vocab + 1))
    assert table["token_id"].tolist() == torch.argsort(row, descending=True).tolist()
    np.testing.assert_allclose(table["prob"].sum(), 1.0, atol=1e-4)
    assert table["token"].iloc[0] == f"t{int(torch.argmax(row))}"


def test_ranks_of_ties_agree_between_k_and_whole_vocabulary() -> None:
    row = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 0.0])
    full = logits_table(row, k=None)
    top = logits_table(row, k=4)
    assert full["rank"].tolist() == [1, 1, 1, 4, 5, 6]
    assert top["rank"].tolist() == [1, 1, 1, 4]
    # ties keep the lower id first
    assert full["token_id"].tolist()[:3] == [1, 2, 4]
    assert top["token_id"].tolist() == [1, 2, 4, 3]


def test_k_equal_to_d_vocab() -> None:
    row = random_logits(9)
    table = logits_table(row, k=9)
    assert table["rank"].tolist() == list(range(1, 10))
    pd.testing.assert_frame_equal(pd.DataFrame(table), pd.DataFrame(logits_table(row, k=None)))


# --------------------------------------------------------------------------- targets


def test_target_outside_top_k_is_appended_with_its_true_rank() -> None:
    row = random_logits(200)
    order = torch.argsort(row, descending=True)
    target = int(order[57])
    table = logits_table(row, vocab_of(200), k=5, target=target)
    assert list(table.columns) == BASE_COLUMNS + ["is_target"]
    assert len(table) == 6
    last = table.iloc[-1]
    assert last["token_id"] == target and last["rank"] == 58 and bool(last["is_target"])
    assert table["is_target"].tolist() == [False] * 5 + [True]
    assert_rows_match_logits(table, row)


def test_target_inside_top_k_is_marked_not_repeated() -> None:
    row = random_logits(200)
    target = int(torch.argsort(row, descending=True)[2])
    table = logits_table(row, k=5, target=target)
    assert len(table) == 5
    assert table["is_target"].tolist() == [False, False, True, False, False]


def test_targets_per_position_with_pos_none() -> None:
    logits = random_logits(3, 30)
    order = torch.argsort(logits, descending=True, dim=-1)
    targets = [int(order[0, 0]), int(order[1, 20]), int(order[2, 1])]
    table = logits_table(logits, k=2, pos=None, target=targets)
    assert len(table) == 2 + 3 + 2
    marked = table[table["is_target"]]
    assert marked["pos"].tolist() == [0, 1, 2]
    assert marked["token_id"].tolist() == targets
    assert marked["rank"].tolist() == [1, 21, 2]


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_16_bit_logits(dtype: torch.dtype) -> None:
    logits = random_logits(2, 80).to(dtype)
    table = logits_table(logits, k=6)
    assert table["logit"].dtype == np.float32
    assert_rows_match_logits(table, logits[-1].float())


@pytest.mark.parametrize(
    "convert",
    [pytest.param(lambda t: t.numpy(), id="numpy"), pytest.param(lambda t: t.tolist(), id="list")],
)
def test_numpy_and_list_logits(convert: Any) -> None:
    logits = random_logits(2, 30)
    pd.testing.assert_frame_equal(pd.DataFrame(logits_table(convert(logits), k=4)), pd.DataFrame(logits_table(logits, k=4)))


def test_dict_vocabulary() -> None:
    row = torch.tensor([0.0, 5.0, 1.0])
    table = logits_table(row, {0: "a", 1: " Paris", 2: "\n"}, k=3)
    assert table["token"].tolist() == [" Paris", "\n", "a"]


def test_hf_tokenizer_gives_raw_token_text(tiny_tokenizer: Any) -> None:
    d_vocab = len(tiny_tokenizer)
    the = tiny_tokenizer.convert_tokens_to_ids("Ġthe")
    newline = tiny_tokenizer.convert_tokens_to_ids("Ċ")
    row = torch.zeros(d_vocab)
    row[the], row[newline] = 5.0, 4.0
    table = logits_table(row, tiny_tokenizer, k=2)
    assert table["token"].tolist() == [" the", "\n"]


def test_model_vocab_padded_beyond_the_tokenizer_works(tiny_tokenizer: Any) -> None:
    n = len(tiny_tokenizer)
    row = torch.zeros(n + 8)
    row[n + 3] = 9.0  # a padding id wins
    row[5] = 8.0
    table = logits_table(row, tiny_tokenizer, k=2)
    assert table["token_id"].tolist() == [n + 3, 5]
    assert table["token"].tolist() == [f"<id {n + 3}>", "\x05"]
    listed = logits_table(row, vocab_of(n), k=1)
    assert listed["token"].tolist() == [f"<id {n + 3}>"]
    # the largest padding allowed
    assert len(logits_table(torch.zeros(10 + MAX_VOCAB_PADDING), vocab_of(10), k=1)) == 1


# --------------------------------------------------------------------------- display


def test_html_escapes_tokens_and_shows_percentages() -> None:
    row = torch.tensor([5.0, 1.0, 0.0])
    table = logits_table(row, [XSS, " Paris", "a&b"], k=3)
    html = table._repr_html_()
    assert "<img" not in html and "onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "a&amp;b" in html
    assert "␣Paris" in html
    probs = torch.softmax(row, -1)
    assert f"{float(probs[0]):.2%}" in html and "%" in html
    assert table["token"].iloc[0] == XSS  # the data keeps the raw text


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\x00", "\u202e"], ids=["lone-high", "lone-low", "nul", "bidi"])
def test_any_token_text_fits_in_a_table(text: str) -> None:
    """Token text is kept raw whatever it holds, lone surrogates included (pandas'
    Arrow-backed strings cannot hold those), in logit tables and a Record's table alike."""
    vocab = ["a", text, "c"]
    table = logits_table(torch.tensor([0.0, 2.0, 1.0]), vocab, k=3)
    record = coilvis.from_logits(torch.tensor([[0.0, 2.0, 1.0], [2.0, 0.0, 1.0]]), tokens=[0, 2], vocab=vocab, k=3)
    for got in (table, record.table(pos=0, k=3), record.table(pos=None, k=2)):
        assert got["token"].dtype == object and text in got["token"].tolist()
        shown = repr(got) + got._repr_html_()
        shown.encode("utf-8")  # what is shown is escaped: no surrogate reaches the display


def test_text_repr_shows_whitespace_and_percentages() -> None:
    table = logits_table(torch.tensor([3.0, 2.0, 1.0]), [" Paris", "\n", "x\t"], k=3)
    text = repr(table)
    assert "␣Paris" in text and "↵" in text and "⇥" in text
    assert "%" in text and text == table.to_string()
    assert table["token"].tolist() == [" Paris", "\n", "x\t"]


def test_pandas_operations_keep_working() -> None:
    table = logits_table(random_logits(50), k=8)
    assert isinstance(table.head(3), LogitsTable) and len(table.head(3)) == 3
    assert float(table["prob"].sum()) <= 1.0
    assert table.sort_values("token_id")["token_id"].is_monotonic_increasing


# --------------------------------------------------------------------------- Record.table


def test_record_table_equals_logits_table_on_the_same_logits() -> None:
    logits = random_logits(6, 120, seed=4)
    order = torch.argsort(logits, descending=True, dim=-1)
    ids = [0, int(order[0, 1]), int(order[1, 40]), int(order[2, 0]), int(order[3, 7]), int(order[4, 99])]
    vocab = vocab_of(120)
    record = coilvis.from_logits(logits, tokens=ids, vocab=vocab, k=10)
    for pos in range(6):
        got = record.table(pos=pos, k=5)
        target = ids[pos + 1] if pos + 1 < 6 else None
        want = logits_table(logits, vocab, k=5, pos=pos, target=target)
        assert list(got.columns) == BASE_COLUMNS + ["is_target"]
        assert got["token_id"].tolist() == want["token_id"].tolist(), pos
        assert got["token"].tolist() == want["token"].tolist()
        assert got["rank"].tolist() == want["rank"].tolist()
        for col in ("logit", "log_prob", "prob"):
            np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), atol=1e-5, err_msg=f"{pos} {col}")
        if target is None:
            assert not got["is_target"].any()
        else:
            assert got["is_target"].tolist() == want["is_target"].tolist()


def test_record_table_pos_none() -> None:
    logits = random_logits(4, 30)
    record = coilvis.from_logits(logits, tokens=[1, 2, 3, 4], vocab=vocab_of(30), k=3)
    table = record.table(pos=None, k=2)
    assert list(table.columns) == ["pos"] + BASE_COLUMNS + ["is_target"]
    assert set(table["pos"]) == {0, 1, 2, 3}
    assert table.groupby("pos")["is_target"].sum().tolist()[:3] == [1, 1, 1]


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        pytest.param({"k": 0}, CoilvisValueError, ["k"], id="k-zero"),
        pytest.param({"k": 2.5}, CoilvisTypeError, ["k"], id="k-float"),
        pytest.param({"pos": 4}, CoilvisValueError, ["pos", "4", "seq_len 4"], id="pos-too-big"),
        pytest.param({"pos": -5}, CoilvisValueError, ["pos", "-5"], id="pos-too-small"),
        pytest.param({"pos": "0"}, CoilvisTypeError, ["pos", "str"], id="pos-str"),
    ],
)
def test_record_table_bad_input(kwargs: dict, error: type, words: list[str]) -> None:
    record = coilvis.from_logits(random_logits(4, 30), tokens=[1, 2, 3, 4], vocab=vocab_of(30), k=10)
    with pytest.raises(error) as info:
        record.table(**kwargs)
    for word in words:
        assert word in str(info.value)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, words",
    [
        pytest.param(lambda: logits_table(torch.zeros(2, 3, 5)), CoilvisValueError, ["logits", "(2, 3, 5)"], id="3d-logits"),
        pytest.param(lambda: logits_table(torch.tensor(1.0)), CoilvisValueError, ["logits"], id="0d-logits"),
        pytest.param(lambda: logits_table(torch.zeros(0, 5)), CoilvisValueError, ["logits", "no positions"], id="no-positions"),
        pytest.param(lambda: logits_table("logits"), CoilvisTypeError, ["logits"], id="string-logits"),
        pytest.param(lambda: logits_table(torch.zeros(5), vocab_of(6)), CoilvisValueError, ["tokenizer_or_vocab", "6", "d_vocab=5"], id="vocab-larger"),
        pytest.param(lambda: logits_table(torch.zeros(2000), vocab_of(10)), CoilvisValueError, ["tokenizer_or_vocab", "10", "d_vocab=2000"], id="vocab-far-smaller"),
        pytest.param(lambda: logits_table(torch.zeros(5), 5), CoilvisTypeError, ["tokenizer_or_vocab", "int"], id="vocab-int"),
        pytest.param(lambda: logits_table(torch.zeros(5), "abcde"), CoilvisTypeError, ["tokenizer_or_vocab", "str"], id="vocab-str"),
        pytest.param(lambda: logits_table(torch.zeros(3), ["a", 1, "c"]), CoilvisTypeError, ["vocab"], id="vocab-non-str-entry"),
        pytest.param(lambda: logits_table(torch.zeros(5), k=0), CoilvisValueError, ["k", "0"], id="k-zero"),
        pytest.param(lambda: logits_table(torch.zeros(5), k=-1), CoilvisValueError, ["k", "-1"], id="k-negative"),
        pytest.param(lambda: logits_table(torch.zeros(5), k=2.0), CoilvisTypeError, ["k", "float"], id="k-float"),
        pytest.param(lambda: logits_table(torch.zeros(3, 5), pos=3), CoilvisValueError, ["pos", "3", "seq_len 3"], id="pos-too-big"),
        pytest.param(lambda: logits_table(torch.zeros(3, 5), pos=-4), CoilvisValueError, ["pos", "-4"], id="pos-too-small"),
        pytest.param(lambda: logits_table(torch.zeros(3, 5), pos=1.0), CoilvisTypeError, ["pos", "float"], id="pos-float"),
        pytest.param(lambda: logits_table(torch.zeros(5), k=2, target=5), CoilvisValueError, ["target", "5"], id="target-out-of-range"),
        pytest.param(lambda: logits_table(torch.zeros(5), k=2, target=-1), CoilvisValueError, ["target", "-1"], id="target-negative"),
        pytest.param(lambda: logits_table(torch.zeros(5), k=2, target="a"), CoilvisTypeError, ["target", "str"], id="target-str"),
        pytest.param(lambda: logits_table(torch.zeros(3, 5), k=2, pos=None, target=[1, 2]), CoilvisValueError, ["target", "3", "2"], id="targets-wrong-length"),
    ],
)
def test_bad_input_names_the_argument(call: Any, error: type[Exception], words: list[str]) -> None:
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert isinstance(info.value, CoilvisError)


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "+inf"])
@pytest.mark.parametrize("pos", [None, 4, -2], ids=["all-positions", "pos4", "pos-2"])
def test_nan_or_posinf_names_the_position(bad: float, pos: int | None) -> None:
    logits = random_logits(6, 20)
    logits[4, 3] = bad
    with pytest.raises(CoilvisValueError) as info:
        logits_table(logits, k=3, pos=pos)
    message = str(info.value)
    assert "logits" in message and "NaN or +inf" in message and "position(s) 4" in message


def test_nan_at_another_position_does_not_block_a_clean_one() -> None:
    logits = random_logits(3, 20)
    logits[0, 0] = math.nan
    assert len(logits_table(logits, k=3, pos=2)) == 3


def test_nan_in_a_vector() -> None:
    row = random_logits(20)
    row[7] = math.nan
    with pytest.raises(CoilvisValueError, match="logits: NaN"):
        logits_table(row)


@pytest.mark.parametrize("pos", [None, 1], ids=["all-positions", "pos1"])
def test_rows_of_only_minus_inf_are_rejected(pos: int | None) -> None:
    logits = torch.zeros(3, 20)
    logits[1] = -torch.inf
    with pytest.raises(CoilvisValueError) as info:
        logits_table(logits, k=3, pos=pos)
    assert "-inf" in str(info.value) and "position(s) 1" in str(info.value)


def test_partly_masked_row_is_fine() -> None:
    row = torch.zeros(10)
    row[3:] = -torch.inf
    table = logits_table(row, k=None)
    assert table["token_id"].tolist()[:3] == [0, 1, 2]
    np.testing.assert_allclose(table["prob"].to_numpy()[:3], 1 / 3, atol=1e-6)
    assert (table["prob"].to_numpy()[3:] == 0).all()


def test_k_above_what_there_is_gives_all_of_it() -> None:
    """The one k rule (coilvis.options.check_k): more rows than exist means all of them."""
    record = coilvis.from_logits(random_logits(4, 30), tokens=[1, 2, 3, 4], vocab=vocab_of(30), k=10)
    pd.testing.assert_frame_equal(record.table(pos=0, k=11), record.table(pos=0, k=10))
    assert len(logits_table(random_logits(5), vocab_of(5), k=6)) == 5
    assert len(logits_table(random_logits(3, 5), vocab_of(5), k=6, pos=None)) == 15
