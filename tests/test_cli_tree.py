"""The ``coilvis tree`` command: usage errors before anything runs, saved trees drawn, and a real-model run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import coilvis
from coilvis import cli

PROMPT = "Hello the world and the end\n"


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv, words",
    [
        pytest.param([], ["a prompt or --tree"], id="nothing"),
        pytest.param(["p", "--tree", "x.coiltree"], ["a prompt or --tree"], id="both"),
        pytest.param(["--tree", "x.coiltree", "--depth", "2"], ["--depth", "growing"], id="depth-on-saved"),
        pytest.param(["p", "-o", "x.txt"], ["-o/--output", ".coiltree"], id="suffix"),
        pytest.param(["p", "-o", "x.coiltree", "--flame"], ["--flame", "drawn picture"], id="flame-on-save"),
        pytest.param(["p", "-o", "x.png", "--title", "t"], ["--title", ".html"], id="title-on-png"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["tree", *argv])
    assert exc.value.code == 2
    line = _error(capsys)
    for word in words:
        assert word in line


def test_a_saved_tree_draws_as_a_sunburst_or_a_flame_graph(tiny_llama: Any, tiny_tokenizer: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = coilvis.tree(PROMPT, (tiny_llama, tiny_tokenizer), depth=2, k=3).save(tmp_path / "t.coiltree")
    sun = tmp_path / "sun.html"
    assert cli.main(["tree", "--tree", str(saved), "--color", "entropy", "-o", str(sun)]) == 0
    assert "sunburst" in sun.read_text(encoding="utf-8")
    flame = tmp_path / "flame.html"
    assert cli.main(["tree", "--tree", str(saved), "--flame", "-o", str(flame)]) == 0
    assert "flame" in flame.read_text(encoding="utf-8")
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(flame.resolve())
    assert cli.main(["tree", "--tree", str(saved), "--color", "nonsense", "-o", str(tmp_path / "bad.html")]) == 1
    assert "color" in _error(capsys)


@pytest.mark.slow
@pytest.mark.model
def test_tree_grows_on_the_default_model(tmp_path: Path, default_model: object) -> None:
    out = tmp_path / "eiffel.coiltree"
    assert cli.main(["tree", "The Eiffel Tower is located in the city of", "--depth", "2", "--k", "3", "-o", str(out)]) == 0
    tree = coilvis.Tree.load(out)
    page = tmp_path / "eiffel.html"
    assert cli.main(["tree", "--tree", str(out), "-o", str(page)]) == 0
    assert page.stat().st_size > 0 and tree is not None
