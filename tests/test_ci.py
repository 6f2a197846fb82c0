"""The CI set-up: the same hypothesis examples on every machine, no state left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import hypothesis_profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "environ, profile",
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "thorough"}, "thorough"),
    ],
    ids=["local", "ci-true", "ci-1", "ci-false", "explicit"],
)
def test_profile_follows_the_environment(environ, profile):
    assert hypothesis_profile(environ) == profile


def test_ci_profile_is_derandomised_without_a_database():
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.database is None
    assert settings.get_profile("dev").derandomize is False


def test_ci_run_selects_the_ci_profile_and_runs_the_readme_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert 'export CI="${CI:-true}"' in script
    assert "make test" in script
    assert "make test" in (ROOT / "README.md").read_text()


def test_a_ci_process_loads_the_ci_profile():
    code = "import tests.conftest\nfrom hypothesis import settings\nprint(settings.default.derandomize, settings.default.database)"
    env = {k: v for k, v in os.environ.items() if k not in ("HYPOTHESIS_PROFILE", "CI")}
    out = {}
    for ci in ("true", None):
        extra = {} if ci is None else {"CI": ci}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env | extra, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out[ci] = done.stdout.split()
    assert out["true"] == ["True", "None"]
    assert out[None][0] == "False" and out[None][1] != "None"
