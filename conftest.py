"""Doctests of the package (``pytest --doctest-modules`` over ``coilvis/``): what they may need, and where they write.

Every example in a docstring runs. One that needs the embedded default model says so
with ``# doctest: +MODEL`` on its first line, one that needs headless Chromium with
``+BROWSER`` (Sphinx hides both flags in the rendered docs); such a docstring's test is
marked ``slow`` (and ``model`` or ``browser``), like the suite's other real-model and
real-browser tests, so ``-m "not slow"`` leaves it out. Doctests run in a temporary
folder, so an example may save ``"lens.html"`` as a user would.
"""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from _pytest.doctest import DoctestItem

MODEL = doctest.register_optionflag("MODEL")
BROWSER = doctest.register_optionflag("BROWSER")


def _needs(item: DoctestItem, flag: int) -> bool:
    return any(example.options.get(flag) for example in item.dtest.examples)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Mark the doctests that run the default model or a browser."""
    for item in items:
        if not isinstance(item, DoctestItem):
            continue
        if _needs(item, MODEL):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.model)
            item.add_marker(pytest.mark.xdist_group("default_model"))
        if _needs(item, BROWSER):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _doctests_write_in_a_temporary_folder(request: pytest.FixtureRequest) -> None:
    if isinstance(request.node, DoctestItem):
        request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
