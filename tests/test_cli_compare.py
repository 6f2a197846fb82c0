"""The ``coilvis compare`` command: usage errors before anything runs, saved records and comparisons, and a real-model run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import coilvis
from coilvis import cli

VOCAB = ["a", " b", "<script>c", "\u202ed"]


def _record(path: Path, probs: list[list[float]], tokens: list[int]) -> Path:
    record = coilvis.from_logits(np.log(np.asarray(probs)), tokens=tokens, vocab=VOCAB, k=4)
    return record.save(path)


@pytest.fixture
def records(tmp_path: Path) -> tuple[Path, Path]:
    a = _record(tmp_path / "a.coil", [[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.25] * 4], [0, 1, 2])
    b = _record(tmp_path / "b.coil", [[0.1, 0.7, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.25] * 4], [0, 3, 2])
    return a, b


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_help_documents_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model-b", "--metric", "--lens", "--align", "--records", "--comparison", "-o"):
        assert flag in out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "compare" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        pytest.param([], ["two prompts"], id="nothing"),
        pytest.param(["only one"], ["--model-b"], id="one-prompt"),
        pytest.param(["a", "b", "c"], ["at most two prompts"], id="three"),
        pytest.param(["a", "b", "--records", "x.coil", "y.coil"], ["PROMPT and --records"], id="two-sources"),
        pytest.param(["--records", "x.coil", "y.coil", "--lens"], ["--lens", "running models"], id="lens-with-records"),
        pytest.param(["--comparison", "x.coilcmp", "--metric", " a", " b"], ["--metric", "already"], id="metric-on-saved"),
        pytest.param(["a", "b", "-o", "x.txt"], ["-o/--output", ".coilcmp"], id="suffix"),
        pytest.param(["a", "b", "-o", "x.coilcmp", "--color", "js"], ["--color", "drawn page"], id="color-on-save"),
        pytest.param(["a", "b", "--movers", "0"], ["--movers"], id="movers"),
        pytest.param(["a", "b", "--align", "start"], ["--align"], id="align"),
        pytest.param(["-", "-"], ["stdin"], id="two-stdin"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", *argv])
    assert exc.value.code == 2
    line = _error(capsys)
    for word in words:
        assert word in line


def test_saved_records_compare_into_a_page_and_a_comparison_file(records: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = records
    page = tmp_path / "out" / "diff.html"
    assert cli.main(["compare", "--records", str(a), str(b), "-o", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "diff_coil_segments" in html and "<script>c" not in html  # token text only as escaped data
    saved = tmp_path / "pair.coilcmp"
    assert cli.main(["compare", "--records", str(a), str(b), "--label-a", "clean", "-o", str(saved)]) == 0
    comparison = coilvis.Comparison.load(saved)
    want = coilvis.compare(coilvis.Record.load(a), coilvis.Record.load(b))
    np.testing.assert_allclose(comparison.js, want.js)
    assert comparison.label_a == "clean" and comparison.exact.all()
    again = tmp_path / "again.html"
    assert cli.main(["compare", "--comparison", str(saved), "-o", str(again), "--color", "tv"]) == 0
    assert again.exists()
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(again.resolve())


def test_failures_while_running_exit_1(records: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = records
    assert cli.main(["compare", "--records", str(a), str(tmp_path / "missing.coil"), "-o", str(tmp_path / "x.html")]) == 1
    assert "missing.coil" in _error(capsys)
    assert cli.main(["compare", "--records", str(a), str(a), "--stat", "js", "-o", str(tmp_path / "x.html")]) == 1
    line = _error(capsys)
    assert "--stat" in line and "no lens" in line
    short = _record(tmp_path / "short.coil", [[0.5, 0.2, 0.2, 0.1]], [0])
    assert cli.main(["compare", "--records", str(a), str(short), "-o", str(tmp_path / "y.html")]) == 1
    line = _error(capsys)
    assert "has 1 tokens" in line and "a has 3" in line


@pytest.mark.slow
@pytest.mark.model
def test_compare_runs_the_default_model(tmp_path: Path, capsys: pytest.CaptureFixture[str], default_model: object) -> None:
    out = tmp_path / "ioi.coilcmp"
    argv = [
        "compare", "When Mary and John went to the store, John gave a drink to",
        "When Alice and John went to the store, John gave a drink to", "--metric", " Mary", " John", "--lens", "-o", str(out),
    ]
    assert cli.main(argv) == 0
    comparison = coilvis.Comparison.load(out)
    assert comparison.lens is not None and comparison.metric is not None
    assert comparison.metric_a[-1] > comparison.metric_b[-1] + 2.0
    page = tmp_path / "ioi.html"
    assert cli.main(["compare", "--comparison", str(out), "--stat", "metric", "-o", str(page)]) == 0
    assert "diff_lens_cells" in page.read_text(encoding="utf-8")
