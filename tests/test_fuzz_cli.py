"""Fuzz the command line: every subcommand, one option at a time, with hostile values.

Each call goes through :func:`coilvis.cli.main` in this process. Drawing commands read
saved records (:mod:`cli_inputs`); the commands that run a model (``record``,
``gallery``, and the run options of the drawing commands) run a tiny random Llama saved
to a folder, with the Hugging Face hub kept offline. Every call must end with exit
status 0, 1 or 2 (argparse's ``SystemExit(2)`` counts as 2), print no traceback, and
explain a non-zero status in one ``error:`` line on stderr.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coilvis import cli

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from cli_inputs import Inputs, write_inputs
except ImportError:  # tests is a package
    from tests.cli_inputs import Inputs, write_inputs

PROMPT = "Hello the world and the end"


@dataclass(frozen=True)
class Env:
    """What the baselines refer to: saved inputs and a tiny model folder."""

    inputs: Inputs
    model_dir: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer, _tiny_llama_eager) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("fuzz-cli")
    model_dir = root / "tiny-llama"
    _tiny_llama_eager.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # random model names must never reach the network
        mp.setenv("TQDM_DISABLE", "1")
        yield Env(write_inputs(root / "inputs"), model_dir)


# ------------------------------------------------------------------ values

_SPECIAL = [
    "", " ", "0", "1", "2", "3", "-1", "-2", "10", "99", "2147483648", "-9223372036854775809", "1e308", "1e-320",
    "nan", "inf", "-inf", "0.5", "-0.0", "1.5", "0x10", "1_000", "\u0663", "all", "mean", "max", "0:0", "1:1",
    "-1:0", "9:9", "1:", ":", "a:b", "embed", "0 1", "Viridis", "Magma_r", "Nope_r", "#ff0000", "prob", "kl", "js",
    "tv", "entropy", "cpu", "cuda", "cuda:99", "meta", "mps", "cpu:0", "-", "--", "-h", "\x00", "\u202e", "\ud800",
    "</script>", "$$x^2$$", "caf\u00e9", "x" * 300, "~", ".", "..",
]
VALUES = st.one_of(
    st.sampled_from(_SPECIAL),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(repr),
    st.text(max_size=12),
)
#: Names of files and folders under the example's own folder (no "/", so never outside
#: it). No .png: PNG export starts a browser, which its own tests cover.
NAMES = st.one_of(
    st.sampled_from(["x.html", "x.HTM", "x.coil", "x.txt", "x", "", ".", "..", "new/x.html", "made", "made/x.html",
                     "file/x.html", "file", "x.html/", "\x00.html", "\u202e.html", "a" * 300 + ".html"]),
    st.text(max_size=12).filter(lambda s: "/" not in s and not s.lower().endswith(".png")),
)
INPUT_FILES = ("full", "plain", "other", "damaged", "prompts", "latin1_prompts")


@dataclass(frozen=True)
class Option:
    """A fuzzed option: its flag and the kind of value it takes."""

    flag: str
    kind: str = "value"  # "value", "path" (a file or folder name), "values" (nargs="+")


_COIL = [Option("--layout"), Option("--color"), Option("--attention"), Option("--layer"), Option("--max-links"),
         Option("--pace"), Option("--duration"), Option("--floor-bits"), Option("--threshold"),
         Option("--links-per-query"), Option("--palette"), Option("--size")]
_LENS = [Option("--stat"), Option("--stride"), Option("--start"), Option("--end"), Option("--layers", "values"),
         Option("--compare", "path"), Option("--lens-palette")]
_DRAW = [Option("--record", "path"), Option("-o", "path"), Option("--title"), Option("--k")]
_RUN = [Option("--model"), Option("--device"), Option("--prepend-bos"), Option("--k"), Option("prompt")]

#: (baseline argv, fuzzed options); in a baseline, IN.x is an input file, OUT an output name.
CASES: dict[str, tuple[list[str], list[Option]]] = {
    "table": (["table", "--record", "IN.full"], [Option("--record", "path"), Option("--k"), Option("--pos")]),
    "coil": (["coil", "--record", "IN.full", "--attention", "mean", "--animate", "-o", "OUT/coil.html"], _DRAW + _COIL),
    "lens": (["lens", "--record", "IN.full", "-o", "OUT/lens.html"], _DRAW + _LENS),
    "page": (["page", "--record", "IN.full", "--attention", "mean", "--animate", "-o", "OUT/page.html"], _DRAW + _COIL + _LENS),
    "record": (["record", PROMPT, "--model", "MODEL", "--attention", "--lens", "-o", "OUT/r.coil"],
               [Option("--model"), Option("--device"), Option("--prepend-bos"), Option("--k"), Option("-o", "path")]),
    "table-run": (["table", PROMPT, "--model", "MODEL"], _RUN + [Option("--pos")]),
    "coil-run": (["coil", PROMPT, "--model", "MODEL", "--attention", "mean", "-o", "OUT/coil.html"], _RUN),
    "gallery": (["gallery", "-o", "OUT/g", "--prompts", "IN.prompts", "--model", "MODEL", "--no-thumbnails"],
                [Option("-o", "path"), Option("--prompts", "path"), Option("--only", "values"), Option("--model")]),
}


def _resolve(arg: str, env: Env, out: Path) -> str:
    if arg.startswith("IN."):
        return str(getattr(env.inputs, arg[3:]))
    if arg == "MODEL":
        return str(env.model_dir)
    if arg.startswith("OUT/"):
        return str(out / arg[4:])
    return arg


@st.composite
def _path_value(draw: st.DrawFn, out: Path) -> str:
    if draw(st.booleans()):
        return f"IN.{draw(st.sampled_from(INPUT_FILES))}"
    return str(out / draw(NAMES))


def _with_option(argv: list[str], option: Option, values: list[str]) -> list[str]:
    """``argv`` with ``option`` set to ``values``: the positional prompt replaced, or the option appended."""
    if option.flag == "prompt":
        return [argv[0], values[0], *argv[2:]]
    if option.kind == "values":
        return [*argv, option.flag, *values]
    return [*argv, f"{option.flag}={values[0]}"] if values[0].startswith("-") else [*argv, option.flag, values[0]]


def _run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """``cli.main(argv)`` in ``cwd`` with empty stdin: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    stdin, here = sys.stdin, os.getcwd()
    sys.stdin = io.StringIO("")
    os.chdir(cwd)  # (contextlib.chdir needs Python 3.11)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main(argv)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else -1
    finally:
        sys.stdin = stdin
        os.chdir(here)
    return status, out.getvalue(), err.getvalue()


def _check_outcome(argv: list[str], status: int, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    if status == 0 and "usage:" in stdout and any(a in ("-h", "--help") for a in argv):
        return  # a value that argparse reads as --help
    assert status in (0, 1, 2), (status, stderr)
    if status:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        assert last.startswith("coilvis") and "error:" in last, stderr


@pytest.mark.parametrize("case", list(CASES))
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_one_option_at_a_time_never_raises(case: str, env: Env, data: st.DataObject) -> None:
    baseline, options = CASES[case]
    option = data.draw(st.sampled_from(options), label="option")
    with tempfile.TemporaryDirectory(prefix="coilvis-fuzz-") as tmp:
        out = Path(tmp)
        (out / "made").mkdir()
        (out / "file").write_text("not a folder")
        if option.kind == "path":
            values = [data.draw(_path_value(out), label="path")]
        elif option.kind == "values":
            values = data.draw(st.lists(VALUES, min_size=1, max_size=3), label="values")
        else:
            values = [data.draw(VALUES, label="value")]
        argv = [_resolve(a, env, out) for a in _with_option(baseline, option, values)]
        status, stdout, stderr = _run(argv, out)
        _check_outcome(argv, status, stdout, stderr)


@pytest.mark.parametrize("case", list(CASES))
def test_each_baseline_succeeds(case: str, env: Env, tmp_path: Path) -> None:
    """The fuzz starts from command lines that work, so a refusal comes from the fuzzed option."""
    argv = [_resolve(a, env, tmp_path) for a in CASES[case][0]]
    status, stdout, stderr = _run(argv, tmp_path)
    assert status == 0, stderr
    assert "Traceback" not in stderr and stdout.strip()
