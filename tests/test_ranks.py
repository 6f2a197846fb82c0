"""One rank convention everywhere: 1 is the top token (records, tables, views, CLI)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coilvis
from coilvis.cli import main
from tests.lens_records import lens_record_and_logits

VOCAB = ["a", "b", "c", "d", "e"]


def ranked_record() -> coilvis.Record:
    """Position 0 predicts 'b' first and the next token is 'b' (rank 1); position 1
    predicts 'd' > 'e' > 'a' and the next token is 'a' (rank 3); position 2 is last."""
    logits = np.array(
        [
            [0.0, 5.0, 1.0, 0.5, 0.2],
            [2.0, -1.0, -2.0, 4.0, 3.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],
        ],
        dtype=np.float32,
    )
    return coilvis.from_logits(logits, tokens=[0, 1, 0], vocab=VOCAB, k=5)


def test_the_record_counts_from_one() -> None:
    assert ranked_record().next_rank.tolist() == [1, 3, -1]


def test_tables_count_from_one() -> None:
    record = ranked_record()
    table = record.table(pos=1, k=5)
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table.loc[table["is_target"], "rank"].tolist() == [3]
    vector = coilvis.logits_table(np.array([0.0, 5.0, 1.0]), ["a", "b", "c"], k=3)
    assert vector["rank"].tolist() == [1, 2, 3]


def test_the_coil_counts_from_one() -> None:
    view = coilvis.coil(ranked_record(), color="rank")
    np.testing.assert_array_equal(view.segments.data["rank"], [1.0, 3.0, np.nan])


def test_the_lens_counts_from_one() -> None:
    record, logits = lens_record_and_logits(["w3", "w4", "w5", "w6"])
    assert record.lens is not None
    assert record.lens.final_top_rank[-1].tolist() == [1] * record.seq_len  # the final row's own top
    cells = coilvis.lens(record, stat="rank").model("lens_cells")
    n = record.seq_len
    final_row = np.asarray(cells.data["row"]) == record.lens.n_rows - 1
    # the coloured value and the hover's rank are the stored 1-based ranks
    assert np.asarray(cells.data["final_rank"])[final_row].tolist() == [1] * n
    assert np.asarray(cells.data["value"])[final_row].tolist() == [1.0] * n
    assert np.asarray(cells.data["final_rank"]).min() == 1


def test_the_command_line_counts_from_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ranked_record().save(tmp_path / "r.coil")
    assert main(["table", "--record", str(path), "--pos", "1", "--k", "5", "--csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
