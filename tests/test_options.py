"""coilvis.options: the statistics table, the attention spec, the k rule and the declared options.

The declared options are held to the functions they declare (names, defaults, choices,
lower bounds), so the command line and the gallery, which are derived from them, cannot
drift from the API.
"""

from __future__ import annotations

import ast
import inspect
import math
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import coilvis
from coilvis import options
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import (
    COIL_STATS,
    COMPARE_STATS,
    LENS_STATS,
    OPTIONS,
    STATS,
    attention_option,
    check_k,
    declared,
    describe,
    get_option,
    get_stat,
    stat_names,
)

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from lens_records import lens_record
except ImportError:  # tests is a package
    from tests.lens_records import lens_record


def test_options_imports_no_bokeh_and_no_numpy() -> None:
    code = "import sys, coilvis.options; print(sorted(m for m in ('bokeh', 'numpy', 'torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ln2() -> None:
    assert options.LN2 == math.log(2.0)
    assert math.exp(options.LN2) == pytest.approx(2.0, rel=1e-15)


# ------------------------------------------------------------------ the statistics table


def test_each_view_has_its_statistics_in_order() -> None:
    assert COIL_STATS == ("prob", "target_prob", "entropy", "surprisal", "rank")
    assert LENS_STATS == ("prob", "entropy", "kl", "rank", "target_prob")
    assert COMPARE_STATS == ("kl", "js", "tv")
    assert set(STATS) == {(v, n) for v in options.STAT_VIEWS for n in stat_names(v)}


@pytest.mark.parametrize("key", list(STATS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_every_statistic_names_its_unit_and_a_default_palette(key: tuple[str, str]) -> None:
    s = STATS[key]
    assert (s.view, s.name) == key
    assert s.palette in options.PALETTE_NAMES
    assert s.legend.startswith("Colour: ") and s.legend.endswith(".")
    # the colour bar's title says the unit; probabilities are percent, ranks a log scale
    if s.unit == "%":
        assert "(%)" in s.title and s.reverse and s.tick_format == "%d%%" and s.limits(7.0) == (0.0, 100.0)
    if s.unit == "bits":
        assert "bits" in s.title and not s.reverse
    if s.unit == "rank":
        assert "log scale" in s.title and s.log
    assert s.log == (s.unit == "rank")


@pytest.mark.parametrize(
    ("view", "name", "top", "limits"),
    [
        ("coil", "prob", 40.0, (0.0, 100.0)),
        ("coil", "entropy", 3.5, (0.0, 3.5)),
        ("coil", "surprisal", 0.2, (0.0, 1.0)),  # at least 1 bit
        ("coil", "rank", 500.0, (1.0, 500.0)),
        ("coil", "rank", 3.0, (1.0, 10.0)),  # at least 10
        ("lens", "kl", 0.0, (0.0, 1.0)),
        ("compare", "kl", 2.5, (0.0, 2.5)),
        ("compare", "js", 0.3, (0.0, 1.0)),  # JS in bits is at most 1
        ("compare", "tv", 0.3, (0.0, 1.0)),
    ],
)
def test_colour_ranges(view: str, name: str, top: float, limits: tuple[float, float]) -> None:
    assert get_stat(view, name).limits(top) == limits


def test_an_unknown_statistic_is_refused_naming_the_argument() -> None:
    with pytest.raises(CoilvisValueError, match=r"^color: expected one of \['prob'"):
        get_stat("coil", "kl", arg="color")
    with pytest.raises(CoilvisValueError, match="stat"):
        get_stat("compare", None)
    with pytest.raises(CoilvisValueError, match="view"):
        stat_names("table")


def test_the_views_colour_scales_come_from_the_table() -> None:
    from coilvis.views import _style

    assert list(_style.STATS) == list(COIL_STATS)
    assert all(_style.STATS[n] is STATS[("coil", n)] for n in COIL_STATS)
    assert tuple(_style.PALETTES) == options.PALETTE_NAMES
    for (view, name), s in STATS.items():
        scale = _style.view_scale(view, name, np.array([0.5, 2.0, np.nan]))
        assert (scale.column, scale.title, scale.legend, scale.log) == (s.column, s.title, s.legend, s.log)
        assert (scale.low, scale.high) == s.limits(2.0)
        assert scale.palette == _style.resolve_palette(None, default=s.palette, reverse=s.reverse)
    assert _style.stat_scale("rank", [3.0]) == _style.view_scale("coil", "rank", [3.0])


# ------------------------------------------------------------------ the attention spec

ATTENTION_CASES: list[tuple[dict[str, Any], Any]] = [
    ({"value": None}, None),
    ({"value": None, "layer": "x"}, None),  # no arcs: the layer is not looked at
    ({"value": "mean"}, "mean"),
    ({"value": "max"}, "max"),
    ({"value": "mean", "layer": -1}, (-1, "mean")),
    ({"value": "max", "layer": 3}, (3, "max")),
    ({"value": "3:1"}, (3, 1)),
    ({"value": "-1:0"}, (-1, 0)),
    ({"value": " 2 : 1 "}, (2, 1)),  # int() strips spaces
    ({"value": [2, 0]}, (2, 0)),
    ({"value": (4, 5)}, (4, 5)),
    ({"value": "3:1", "layer": 7}, (3, 1)),  # a layer:head spec keeps its own layer
    ({"value": "sideways"}, CoilvisValueError),
    ({"value": "1:"}, CoilvisValueError),
    ({"value": "a:b"}, CoilvisValueError),
    ({"value": "1:2:3"}, CoilvisValueError),
    ({"value": [1]}, CoilvisValueError),
    ({"value": [1, 2, 3]}, CoilvisValueError),
    ({"value": [True, 0]}, CoilvisValueError),
    ({"value": [1.0, 0]}, CoilvisValueError),
    ({"value": 3}, CoilvisValueError),
    ({"value": "mean", "layer": "3"}, CoilvisTypeError),
    ({"value": "mean", "layer": True}, CoilvisTypeError),
    ({"value": "mean", "layer": 1.0}, CoilvisTypeError),
]


@pytest.mark.parametrize(("kwargs", "want"), ATTENTION_CASES, ids=[repr(c[0]) for c in ATTENTION_CASES])
def test_attention_option(kwargs: dict[str, Any], want: Any) -> None:
    if isinstance(want, type) and issubclass(want, Exception):
        with pytest.raises(want):
            attention_option(**kwargs)
    else:
        assert attention_option(**kwargs) == want


def test_attention_errors_name_the_arguments_given() -> None:
    with pytest.raises(CoilvisValueError, match=r"^--attention: expected 'mean', 'max', 'LAYER:HEAD'"):
        attention_option("sideways", name="--attention")
    with pytest.raises(CoilvisTypeError, match=r"^options\.layer: expected an int, got str"):
        attention_option("mean", layer="3", layer_name="options.layer")


def test_each_concept_is_defined_once_in_the_package() -> None:
    """The attention parser, the k rule and ln 2 live in coilvis.options only."""
    package = Path(coilvis.__file__).resolve().parent
    found: dict[str, list[str]] = {"attention_option": [], "check_k": [], "LN2": []}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in found:
                found[node.name].append(path.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and ast.unparse(node.value) == "math.log(2.0)":
                found["LN2"].append(path.name)
    assert found["attention_option"] == ["options.py"] and found["check_k"] == ["options.py"]
    assert "options.py" in found["LN2"]


# ------------------------------------------------------------------ k


@pytest.mark.parametrize(
    ("args", "kwargs", "want"),
    [
        ((5,), {}, 5),
        ((5,), {"available": 10}, 5),
        ((10,), {"available": 10}, 10),
        ((11,), {"available": 10}, 10),  # more than there are: all of them
        ((np.int64(3),), {"available": 2}, 2),
        ((None,), {"available": 4, "default": 10}, 4),
        ((None,), {"available": 40, "default": 10}, 10),
        ((0,), {"available": 10}, CoilvisValueError),
        ((-3,), {}, CoilvisValueError),
        ((None,), {"available": 4}, CoilvisTypeError),
        ((2.0,), {}, CoilvisTypeError),
        ((True,), {}, CoilvisTypeError),
        (("3",), {}, CoilvisTypeError),
    ],
)
def test_check_k(args: tuple[Any, ...], kwargs: dict[str, Any], want: Any) -> None:
    if isinstance(want, type):
        with pytest.raises(want, match="^k: "):
            check_k(*args, **kwargs)
    else:
        got = check_k(*args, **kwargs)
        assert got == want and type(got) is int


def test_check_k_names_the_argument() -> None:
    with pytest.raises(CoilvisValueError, match=r"^tooltip_k: expected >= 1, got 0$"):
        check_k(0, available=3, name="tooltip_k")


# ------------------------------------------------------------------ declared options


def _function(api: str) -> Any:
    return {"coil": coilvis.coil, "lens": coilvis.lens, "page": coilvis.page, "run": coilvis.run, "table": coilvis.Record.table}[api]


def _keywords(api: str) -> list[inspect.Parameter]:
    """The options of ``api``: its keyword-only parameters (Record.table: every one after self)."""
    params = list(inspect.signature(_function(api)).parameters.values())
    if api == "table":
        return params[1:]
    return [p for p in params if p.kind is p.KEYWORD_ONLY]


@pytest.mark.parametrize("api", options.APIS)
def test_declared_options_are_the_functions_keywords_with_their_defaults(api: str) -> None:
    declared_here = [o for o in declared(api) if o.keyword]
    assert [o.name for o in declared_here] == [p.name for p in _keywords(api)]
    for o, p in zip(declared_here, _keywords(api), strict=True):
        assert o.default == p.default, o.name
        assert o.help and not o.help.endswith("."), o.name


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.kind == "choice"], ids=lambda o: f"{o.api}.{o.name}")
def test_choices_are_the_functions_literal_values(option: options.Option) -> None:
    hint = typing.get_type_hints(_function(option.api)).get(option.name)
    if typing.get_origin(hint) is typing.Literal:
        assert option.choices == typing.get_args(hint)
    if (option.api, option.name) == ("coil", "color"):
        assert option.choices == COIL_STATS
    if (option.api, option.name) == ("lens", "stat"):
        assert option.choices == (*LENS_STATS, "js", "tv")


def test_flags_keys_and_requirements_are_consistent() -> None:
    keys = [o.key for o in OPTIONS if o.key is not None]
    assert len(keys) == len(set(keys))
    for o in OPTIONS:
        if o.flag is not None:
            assert o.flag.startswith("--") and o.dest == o.flag[2:].replace("-", "_")
            if o.kind == "bool" and o.default:
                assert o.flag.startswith("--no-"), o.name
        if o.requires is not None:
            assert get_option(o.api, o.requires).kind in ("attention", "bool")
        if o.kind in ("int", "float") and o.minimum is not None and o.maximum is not None:
            assert o.minimum < o.maximum
    # options that share a flag in one function take the same kind of value
    for o in OPTIONS:
        if o.flag is not None:
            assert {p.kind for p in declared(o.api) if p.flag == o.flag} == {o.kind}


def test_unknown_api_or_option_is_refused() -> None:
    with pytest.raises(CoilvisValueError, match="api"):
        declared("gallery")
    with pytest.raises(CoilvisValueError, match="'colour'"):
        get_option("coil", "colour")


def test_describe() -> None:
    assert describe(get_option("coil", "layout")).endswith(": 'spiral', 'circle' or 'auto'")
    assert describe(get_option("coil", "color")) == get_option("coil", "color").help  # the help names every choice
    assert describe(get_option("run", "prepend_bos")).endswith("(true/false, or null)")
    assert describe(get_option("lens", "stride")) == get_option("lens", "stride").help


def _call(api: str, record: Any, **kwargs: Any) -> Any:
    if api == "coil":
        return coilvis.coil(record, **kwargs)
    if api == "lens":
        return coilvis.lens(record, **kwargs)
    return coilvis.page(record, **kwargs)


_BOUNDED = [
    o for o in OPTIONS
    if o.api in ("coil", "lens", "page") and o.keyword and o.kind in ("int", "float") and o.minimum is not None
]


@pytest.mark.parametrize("option", _BOUNDED, ids=lambda o: f"{o.api}.{o.name}")
def test_declared_lower_bounds_are_the_functions(option: options.Option) -> None:
    """The function takes the declared minimum (a step above it when excluded) and refuses
    a step below, naming the option; so a command line that checks the declared bound
    refuses what the function would."""
    record = lens_record(["w1", "w2", "w3", "w1"], n_layers=2, k=3)
    extra: dict[str, Any] = {"animate": True} if option.requires == "animate" else {}
    step = 1 if option.kind == "int" else 0.25
    low = option.minimum + step if option.above else option.minimum
    _call(option.api, record, **extra, **{option.name: low})
    below = option.minimum if option.above else option.minimum - step
    with pytest.raises(CoilvisValueError, match=option.name):
        _call(option.api, record, **extra, **{option.name: below})
