"""The coilvis command line: help, table output formats, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from coilvis import cli

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from cli_inputs import Inputs, write_inputs
except ImportError:  # tests is a package
    from tests.cli_inputs import Inputs, write_inputs

EIFFEL = "The Eiffel Tower is located in the city of"


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


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


#: Flags of each command that no declared option of coilvis.options stands for: the
#: prompt or record, the model and device (or the server), the output and the table's formats.
_PLUMBING = {"-h", "--help", "--record", "-r", "--model", "-m", "--device", "--served", "--served-model", "-o", "--output", "--cdn", "--title", "--json", "--csv"}


@pytest.mark.parametrize("command", ["page", "table", "coil", "lens", "record"])
def test_flags_are_derived_from_the_declared_options(command):
    from coilvis import options

    sub = cli._build()[1][command]
    actions = {flag: a for a in sub._actions for flag in a.option_strings}
    declared = cli._command_options(command)
    assert set(actions) - _PLUMBING == {o.flag for o in declared}
    for o in declared:
        action = actions[o.flag]
        assert action.dest == o.dest
        if o.kind == "choice":
            assert tuple(action.choices) == o.choices
        if o.requires is not None:
            assert action.default in (None, False) and action.help.startswith(f"with --{o.requires}:")
        elif o.kind not in ("bool", "optional_bool") and o is declared[[d.flag for d in declared].index(o.flag)]:
            assert action.default == o.default, o.flag
    assert options.get_option("coil", "color").choices == options.COIL_STATS


def test_command_line_values_reach_the_functions_as_declared():
    argv = ["page", "--record", "r.coil", "--layout", "circle", "--color", "rank", "--attention", "mean", "--layer", "2",
            "--threshold", "0.1", "--links-per-query", "2", "--max-links", "9", "--hide-sink", "--palette", "Magma",
            "--size", "300", "--no-labels", "--clockwise", "--animate", "--pace", "surprisal", "--duration", "5",
            "--floor-bits", "1", "--no-autoplay", "--k", "4", "--stat", "kl", "--stride", "2", "--start", "1", "--end", "-1",
            "--lens-palette", "Cividis_r", "--prepend-bos", "no", "--mid", "--whitespace", "plain", "--mass", "--mass-k", "3"]
    args = cli.build_parser().parse_args(argv)
    assert cli._kwargs(args, "coil") == {
        "layout": "circle", "color": "rank", "attention": (2, "mean"), "attention_threshold": 0.1, "attention_top_k": 2,
        "max_links": 9, "hide_sink": True, "palette": "Magma", "width": 300, "height": 300, "labels": False, "tooltip_k": 4,
        "clockwise": True, "animate": True, "pace": "surprisal", "duration_s": 5.0, "floor_bits": 1.0, "autoplay": False,
        "whitespace": "plain", "mass": True, "mass_k": 3,
    }
    assert cli._kwargs(args, "lens") == {
        "stat": "kl", "stride": 2, "start": 1, "end": -1, "palette": "Cividis_r", "whitespace": "plain",
    }
    assert cli._kwargs(args, "page") == {"k": 4, "whitespace": "plain"}
    assert cli._kwargs(args, "run") == {"prepend_bos": False, "k": 4, "lens_mid": True}


def test_options_not_given_are_left_to_the_functions_defaults():
    args = cli.build_parser().parse_args(["page", "--record", "r.coil"])
    assert cli._kwargs(args, "coil") == {
        "layout": "spiral", "color": "prob", "width": 720, "height": 720, "labels": True, "tooltip_k": 10,
        "clockwise": False, "animate": False, "whitespace": "subtle", "mass": False,
    }
    assert cli._kwargs(args, "lens") == {"whitespace": "subtle"}
    assert cli._kwargs(args, "page") == {"k": 10, "whitespace": "subtle"}
    assert cli._kwargs(args, "run") == {"k": 10, "lens_mid": False}
    args = cli.build_parser().parse_args(["table", "--pos", "all", "--record", "r.coil"])
    assert cli._kwargs(args, "table") == {"pos": None, "k": 10}  # None: every position
    args = cli.build_parser().parse_args(["record", "p", "-o", "r.coil", "--attention", "--lens", "--prepend-bos", "yes"])
    assert cli._kwargs(args, "run") == {"prepend_bos": True, "k": 10, "attention": True, "lens": True, "lens_mid": False}


def test_the_command_line_and_the_gallery_load_no_bokeh_to_parse_options():
    code = ("import sys; from coilvis import cli, gallery; cli._check_usage(cli.build_parser().parse_args("
            "['coil', '--record', 'r.coil', '--attention', '3:1']));"
            " print(sorted(m for m in ('bokeh', 'torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_subcommand_means_page():
    args = cli.build_parser().parse_args(["page", "x", "-o", "p.html"])
    assert args.command == "page"
    # main() inserts "page" for a bare prompt; check the rewrite through parse only
    argv = ["a prompt", "-o", "p.html"]
    rewritten = ["page", *argv] if argv[0] not in cli._COMMANDS else argv
    assert cli.build_parser().parse_args(rewritten).command == "page"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Run every test in its own folder: an output the command line writes by default
    (coil.html, ...) lands there, not in the source tree."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    return write_inputs(tmp_path_factory.mktemp("cli-inputs"))


@pytest.fixture()
def saved_record(inputs):
    return inputs.plain


def _models_named(html: str, name: str) -> list[dict]:
    """The attributes of every Bokeh model named ``name`` in a saved page."""
    (docs,) = re.findall(r'<script type="application/json" id="[^"]*">\s*(.*?)\s*</script>', html, re.S)
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("attributes", {}).get("name") == name:
                found.append(node["attributes"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(docs))
    return found


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


def test_table_from_saved_record_formats(saved_record, capsys):
    assert cli.main(["table", "--record", str(saved_record), "--k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["token"] for r in rows] == ["<img src=x>", "alpha"]
    assert rows[0]["prob"] == pytest.approx(0.6, abs=1e-5)
    assert cli.main(["table", "--record", str(saved_record), "--k", "1", "--pos", "0", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "token_id,token,logit,log_prob,prob,rank,is_target"
    assert lines[1].split(",")[1] == "alpha"
    assert cli.main(["table", "--record", str(saved_record), "--k", "2", "--pos", "all"]) == 0
    out = capsys.readouterr().out
    assert "pos" in out.splitlines()[0] and "␣beta" in out


def test_table_k_above_what_the_record_kept_shows_all_it_kept(saved_record, capsys):
    # the k rule (coilvis.options.check_k): more top tokens than there are means all of them
    assert cli.main(["table", "--record", str(saved_record), "--k", "50", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_coil_layout_takes_every_layout_the_coil_does(inputs, tmp_path, capsys):
    out = tmp_path / "auto.html"
    assert cli.main(["coil", "--record", str(inputs.full), "--layout", "auto", "-o", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["table", "--pos", "9"], "pos:"),
        (["table", "--record", "/nonexistent/r.coil"], "no record file"),
        (["table", "--record", "DAMAGED"], "damaged.coil"),
        (["lens", "-o", "OUT/x.html"], "lens"),
        (["page", "--stat", "kl", "-o", "OUT/x.html"], "--stat"),
        (["coil", "--attention", "7:0", "-o", "OUT/x.html", "--record", "FULL"], "7"),
    ],
    ids=["pos-out-of-range", "missing-record", "damaged-record", "lens-of-a-record-without-lens",
         "lens-option-on-a-record-without-lens", "attention-layer-the-record-lacks"],
)
def test_failures_exit_1_with_one_line_naming_the_cause(argv, needle, inputs, tmp_path, capsys):
    argv = [a.replace("DAMAGED", str(inputs.damaged)).replace("FULL", str(inputs.full)).replace("OUT", str(tmp_path)) for a in argv]
    if "--record" not in argv:
        argv = [*argv, "--record", str(inputs.plain)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("coilvis: error:") and needle in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def _usage_error(argv: list[str], capsys) -> str:
    """Run ``argv``, expect argparse's usage error (exit status 2), return its message line."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    return _error_line(capsys)


@pytest.mark.parametrize("command", ["coil", "lens", "page", "table"])
def test_every_drawing_command_draws_a_saved_record_without_a_prompt(command, inputs, tmp_path, capsys):
    argv = [command, "--record", str(inputs.full)]
    if command != "table":
        argv += ["-o", str(tmp_path / f"{command}.html")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    if command == "table":
        assert "token" in out.splitlines()[0]
    else:
        assert out.strip() == str((tmp_path / f"{command}.html").resolve())
        assert (tmp_path / f"{command}.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("command", ["coil", "lens", "page"])
@pytest.mark.parametrize(("whitespace", "paris"), [(None, "·Paris"), ("markers", "␣Paris"), ("plain", " Paris")])
def test_whitespace_flag_reaches_the_drawn_labels(command, whitespace, paris, inputs, tmp_path, capsys):
    out = tmp_path / f"{command}.html"
    flag = [] if whitespace is None else ["--whitespace", whitespace]
    assert cli.main([command, "--record", str(inputs.full), *flag, "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    if command in ("lens", "page"):
        (axis,) = _models_named(html, "lens_input_axis")
        assert paris in json.dumps(axis["major_label_overrides"], ensure_ascii=False)
    if command in ("coil", "page"):
        (labels,) = _models_named(html, "coil_label_source")
        assert paris in json.dumps(labels["data"], ensure_ascii=False)
    if command == "page":
        (prompt,) = _models_named(html, "page_prompt_source")
        assert paris in json.dumps(prompt["data"], ensure_ascii=False)


def test_whitespace_applies_to_a_page_of_a_record_without_lens(inputs, tmp_path, capsys):
    out = tmp_path / "p.html"
    assert cli.main(["page", "--record", str(inputs.plain), "--whitespace", "markers", "-o", str(out)]) == 0
    assert not _models_named(out.read_text(encoding="utf-8"), "lens_cells")


def test_a_bad_whitespace_is_a_usage_error(inputs, tmp_path, capsys):
    line = _usage_error(["lens", "--record", str(inputs.full), "--whitespace", "none", "-o", str(tmp_path / "x.html")], capsys)
    assert "--whitespace" in line and "'none'" in line


def test_a_bare_record_option_means_page(inputs, tmp_path, capsys):
    out = tmp_path / "p.html"
    assert cli.main(["--record", str(inputs.full), "-o", str(out)]) == 0
    assert _models_named(out.read_text(encoding="utf-8"), "lens_cells")


@pytest.mark.parametrize("command", ["coil", "lens", "page", "table"])
def test_a_prompt_and_a_record_together_are_a_usage_error(command, inputs, capsys):
    line = _usage_error([command, "a prompt", "--record", str(inputs.full)], capsys)
    assert "--record" in line and "prompt" in line


@pytest.mark.parametrize("command", ["coil", "lens", "page", "table", "record"])
def test_no_prompt_and_no_record_is_a_usage_error(command, capsys):
    argv = [] if command == "table" else ["-o", "x.coil" if command == "record" else "x.html"]
    line = _usage_error([command, *argv], capsys)
    assert "prompt" in line


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--model", "m"], "--model"),
        (["--device", "cpu"], "--device"),
        (["--prepend-bos", "yes"], "--prepend-bos"),
        (["--mid"], "--mid"),
        (["--model", "m", "--mid"], "--model, --mid"),
    ],
)
def test_run_options_with_a_record_are_refused_by_name(extra, named, inputs, tmp_path, capsys):
    line = _usage_error(["page", "--record", str(inputs.full), *extra, "-o", str(tmp_path / "p.html")], capsys)
    assert named in line and "--record" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, named",
    [
        (["coil", "--layer", "1"], "--layer"),
        (["coil", "--attention", "1:0", "--layer", "1"], "--layer"),
        (["coil", "--pace", "surprisal"], "--pace"),
        (["coil", "--duration", "5"], "--duration"),
        (["coil", "--floor-bits", "1"], "--floor-bits"),
        (["coil", "--no-autoplay"], "--no-autoplay"),
        (["coil", "--threshold", "0.5"], "--threshold"),
        (["coil", "--links-per-query", "2"], "--links-per-query"),
        (["coil", "--max-links", "10"], "--max-links"),
        (["coil", "--hide-sink"], "--hide-sink"),
        (["lens", "--stat", "js"], "--compare"),
        (["lens", "--stat", "tv"], "--compare"),
        (["coil", "--cdn", "-o", "OUT/c.png"], "--cdn"),
        (["coil", "--title", "t", "-o", "OUT/c.png"], "--title"),
    ],
)
def test_options_that_would_be_ignored_are_refused_by_name(argv, named, inputs, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "x.html")]
    line = _usage_error([*argv, "--record", str(inputs.full)], capsys)
    assert named in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, named",
    [
        (["table", "--k", "0"], "--k"),
        (["page", "--k", "0"], "--k"),
        (["coil", "--k", "-3"], "--k"),
        (["table", "--pos", "x"], "--pos"),
        (["coil", "--attention", "sideways"], "--attention"),
        (["coil", "--attention", "mean", "--layer", "x"], "--layer"),
        (["coil", "--size", "0"], "--size"),
        (["coil", "--size", "99"], "--size"),  # the coil's smallest drawing area is 100 px
        (["coil", "--attention", "mean", "--threshold", "1.5"], "--threshold"),
        (["coil", "--attention", "mean", "--threshold", "nan"], "--threshold"),
        (["coil", "--attention", "mean", "--max-links", "-1"], "--max-links"),
        (["coil", "--attention", "mean", "--links-per-query", "0"], "--links-per-query"),
        (["coil", "--animate", "--duration", "inf"], "--duration"),
        (["coil", "--animate", "--duration", "0"], "--duration"),
        (["coil", "--animate", "--floor-bits", "-1"], "--floor-bits"),
        (["coil", "--animate", "--floor-bits", "0"], "--floor-bits"),  # the unwind's floor is > 0
        (["lens", "--stride", "0"], "--stride"),
        (["coil", "-o", "OUT/coil.txt"], "--output"),
        (["coil", "-o", "OUT/a\x00b.html"], "--output"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(argv, named, inputs, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    if "-o" not in argv and argv[0] != "table":
        argv += ["-o", str(tmp_path / "x.html")]
    line = _usage_error([*argv, "--record", str(inputs.full)], capsys)
    assert named in line
    assert list(tmp_path.iterdir()) == []


def test_page_k_from_a_record_sets_the_table_rows(inputs, tmp_path, capsys):
    out = tmp_path / "p.html"
    assert cli.main(["page", "--record", str(inputs.full), "--k", "3", "-o", str(out)]) == 0
    (table_filter,) = _models_named(out.read_text(encoding="utf-8"), "page_topk_filter")
    assert len(table_filter["indices"]) == 3


def test_record_output_must_be_a_record_file(capsys, tmp_path):
    line = _usage_error(["record", "a prompt", "-o", str(tmp_path / "r.html"), "--model", "/nonexistent"], capsys)
    assert "--output" in line and ".coil" in line


@pytest.mark.parametrize("where", ["folder", "parent-is-a-file"])
def test_unwritable_output_fails_before_the_model_runs(where, tmp_path, capsys):
    if where == "folder":
        out = tmp_path / "taken.html"
        out.mkdir()
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "x.html"
    # the model folder does not exist: an error about it would mean the model came first
    assert cli.main(["coil", "a prompt", "--model", str(tmp_path / "no-model"), "-o", str(out)]) == 1
    line = _error_line(capsys)
    assert line.startswith("coilvis: error: -o/--output:") and str(out) in line


def test_a_missing_output_folder_is_created(inputs, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "coil.html"
    assert cli.main(["coil", "--record", str(inputs.full), "-o", str(out)]) == 0
    assert out.is_file()


def test_a_bogus_device_is_a_usage_error_before_the_model_loads(tmp_path, capsys):
    line = _usage_error(["table", "a prompt", "--device", "bogus", "--model", str(tmp_path / "no-model")], capsys)
    assert "--device" in line and "bogus" in line


@pytest.mark.parametrize("device", [
    "cuda:99",
    "meta",
    pytest.param("cuda", marks=pytest.mark.skipif(_has_cuda(), reason="this machine has CUDA")),
])
def test_an_unavailable_device_fails_in_one_line_before_the_model_loads(device, tmp_path, capsys):
    assert cli.main(["table", "a prompt", "--device", device, "--model", str(tmp_path / "no-model")]) == 1
    line = _error_line(capsys)
    assert line.startswith("coilvis: error: --device:") and repr(device) in line


def test_gallery_with_a_prompts_file_that_is_not_utf8(inputs, tmp_path, capsys):
    argv = ["gallery", "-o", str(tmp_path / "g"), "--prompts", str(inputs.latin1_prompts), "--no-thumbnails"]
    assert cli.main([*argv, "--model", str(tmp_path / "no-model")]) == 1
    line = _error_line(capsys)
    assert line.startswith("coilvis: error: prompts_path:") and "UTF-8" in line


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


@pytest.mark.slow
@pytest.mark.browser
def test_a_lens_png_from_the_command_line_shows_the_whole_prompt(tmp_path, capsys):
    from PIL import Image

    try:
        from lens_records import lens_record
    except ImportError:  # pragma: no cover
        from tests.lens_records import lens_record

    record = lens_record([f"w{i % 30}" for i in range(60)], n_layers=3, k=3, seed=16).save(tmp_path / "long.coil")
    out = tmp_path / "lens.png"
    assert cli.main(["lens", "--record", str(record), "-o", str(out)]) == 0
    with Image.open(out) as image:
        width = image.width
    assert 60 * 56 < width < 60 * 56 + 400  # every position at its cell width: the frame, its axes and colour bar


def test_a_gallery_with_failed_examples_ends_with_an_error_line(inputs, tmp_path, capsys):
    argv = ["gallery", "-o", str(tmp_path / "g"), "--prompts", str(inputs.prompts), "--no-thumbnails"]
    assert cli.main([*argv, "--model", str(tmp_path / "no-model")]) == 1
    assert _error_line(capsys) == "coilvis: error: 1 of 1 examples failed (one); see above"


@pytest.mark.parametrize("arg", ["-\x1e0", "-\u202ex", "-a\nb"])
def test_usage_errors_show_hidden_characters_as_escapes_on_one_line(arg, inputs, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["table", "--record", str(inputs.full), arg])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"coilvis: error: unrecognized arguments: {arg.encode('unicode_escape').decode()}"
    assert all(ch.isprintable() for ch in err.splitlines()[-1])


def test_attention_help_says_mean_opens_on_the_last_layer(capsys):
    """--attention mean opens on the last layer (tests/test_coil_attention.py checks the page);
    the command line's help, the option's help and coilvis.coil's docstring say so."""
    import coilvis
    from coilvis import options

    with pytest.raises(SystemExit):
        cli.main(["coil", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "opening on the last layer" in out
    assert "opening on the last layer" in options.get_option("coil", "attention").help
    assert "opening on the last layer" in " ".join(coilvis.coil.__doc__.split())
