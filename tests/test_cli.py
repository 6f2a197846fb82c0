"""The coilvis command line: help, table output formats, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import coilvis
from coilvis import cli

EIFFEL = "The Eiffel Tower is located in the city of"


def test_help_lists_every_command_and_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("page", "table", "coil", "lens", "record"):
        assert command in out
    assert "examples:" in out and "coilvis table" in out


@pytest.mark.parametrize("command", ["page", "table", "coil", "lens", "record"])
def test_each_subcommand_help_documents_its_options(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    parser = cli.build_parser()
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.help == "==SUPPRESS==":
            continue
        for flag in action.option_strings:
            assert flag in out
        assert action.help, f"{command}: {action.option_strings or action.dest} has no help text"


def test_no_subcommand_means_page():
    args = cli.build_parser().parse_args(["page", "x", "-o", "p.html"])
    assert args.command == "page"
    # main() inserts "page" for a bare prompt; check the rewrite through parse only
    argv = ["a prompt", "-o", "p.html"]
    rewritten = ["page", *argv] if argv[0] not in cli._COMMANDS else argv
    assert cli.build_parser().parse_args(rewritten).command == "page"


@pytest.fixture()
def saved_record(tmp_path):
    logits = np.log(np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=np.float32))
    rec = coilvis.from_logits(logits, tokens=[0, 1], vocab=["alpha", " beta", "<img src=x>"])
    return rec.save(tmp_path / "r.coil")


def test_table_from_saved_record_formats(saved_record, capsys):
    assert cli.main(["table", "ignored", "--record", str(saved_record), "--k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["token"] for r in rows] == ["<img src=x>", "alpha"]
    assert rows[0]["prob"] == pytest.approx(0.6, abs=1e-5)
    assert cli.main(["table", "x", "--record", str(saved_record), "--k", "1", "--pos", "0", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "token_id,token,logit,log_prob,prob,rank,is_target"
    assert lines[1].split(",")[1] == "alpha"
    assert cli.main(["table", "x", "--record", str(saved_record), "--k", "2", "--pos", "all"]) == 0
    out = capsys.readouterr().out
    assert "pos" in out.splitlines()[0] and "␣beta" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["table", "x", "--k", "0"], "k:"),
        (["table", "x", "--pos", "9"], "pos:"),
        (["table", "x", "--record", "/nonexistent/r.coil"], "no record file"),
    ],
    ids=["k-zero", "pos-out-of-range", "missing-record"],
)
def test_errors_are_one_line_and_name_the_argument(argv, needle, saved_record, capsys):
    if "--record" not in argv:
        argv = [*argv, "--record", str(saved_record)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coilvis: error:") and needle in err and "\n" not in err


@pytest.mark.slow
@pytest.mark.model
def test_table_with_the_default_model_in_a_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "coilvis.cli", "table", EIFFEL, "--k", "3", "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    rows = json.loads(out.stdout)
    assert rows[0]["token"] == " Paris" and rows[0]["prob"] > 0.5
    assert len(rows) == 3


try:
    from browser import browser_session  # noqa: F401  (a fixture)
except ImportError:  # pragma: no cover
    from tests.browser import browser_session  # noqa: F401


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.browser
@pytest.mark.xdist_group("default_model")
def test_full_page_from_the_command_line_renders(browser_session, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "pages" / "eiffel.html"  # the folder is created
    assert cli.main([EIFFEL, "--attention", "mean", "--animate", "--stride", "3", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    page = browser_session.open(out)
    assert page.errors == [] and page.external_requests == []
    for name in ("coil_segments", "lens_cells", "page_topk_table", "coil_unwind_play"):
        assert page.has_model(name), name
    # the lens keeps the first and last layers under --stride
    ticks = page.evaluate(
        "() => { const o = Bokeh.documents[0].get_model_by_name('lens_layer_axis').major_label_overrides;"
        " return o instanceof Map ? Array.from(o.values()) : Object.values(o) }"
    )
    assert "embed" in ticks and "29" in ticks


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("default_model")
def test_coil_and_lens_subcommands_write_pages(tmp_path, capsys):
    coil_path, lens_path = tmp_path / "coil.html", tmp_path / "lens.html"
    assert cli.main(["coil", EIFFEL, "--color", "entropy", "--attention", "29:0", "--animate", "-o", str(coil_path)]) == 0
    assert cli.main(["lens", EIFFEL, "--stat", "kl", "--layers", "embed", "15", "29", "-o", str(lens_path)]) == 0
    for path in (coil_path, lens_path):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("<!DOCTYPE html>") and "cdn.bokeh.org" not in text
    assert "coil_unwind_scrub" in coil_path.read_text(encoding="utf-8")
