"""Tests for coilvis.gallery and gallery/prompts.json.

Fast tests build small galleries with a tiny random Llama (no download, no browser):
the record cache, a failing example among good ones, the atomic index, escaping, the
``sunburst`` key (its checks, the tree's cache, the sunburst's wedges on the page, its
caption). Slow tests use the embedded default model and headless Chromium: the cheap
real examples are built with thumbnails, their pages (the sunbursts' too, zoomed by a
tap) and the index render without console errors, the factual example's sunburst has
one dominant branch and the open-ended one's does not, and a rebuild neither loads nor
runs the model. Other slow tests check the prompts file's claims against the default
model (the long document's length, the induction example's entropy drop, the top
tokens that the captions name).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import math
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coilvis
from coilvis import gallery
from coilvis.errors import CoilvisError, CoilvisTypeError, CoilvisValueError
from coilvis.gallery import Example, SunburstSpec, build_gallery, cache_key, load_examples, mass_caption, render_index, tree_cache_key
from coilvis.gallery.prompts import SUNBURST_COLORS, SUNBURST_KEYS, SUNBURST_MAX_NODES

try:
    from tree_cases import synthetic_tree
except ImportError:  # run from the repository root as a package
    from tests.tree_cases import synthetic_tree

PROMPTS = Path(__file__).resolve().parent.parent / "coilvis" / "gallery_prompts.json"
#: Examples the issue asks for, by the name they have in gallery/prompts.json.
REQUIRED = ["eiffel", "ioi", "induction", "code", "arithmetic", "rhyme", "counting", "french", "chat", "spirals_essay"]
#: The cheap real examples the slow build uses (short prompts), in file order.
CHEAP = ["eiffel", "story", "ioi", "counting"]
#: Examples with a sunburst: one branch dominates in the first, the mass spreads in the second.
SUNBURSTS = ["eiffel", "story"]


def examples_by_name() -> dict[str, Example]:
    return {e.name: e for e in load_examples(PROMPTS)}


def write_prompts(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"format": "coilvis.gallery", "version": 1, "examples": entries}), encoding="utf-8")
    return path


def entry(name: str, prompt: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "title": f"Title of {name}", "prompt": prompt, "look_for": f"Look at {name}.", "options": options}


# ------------------------------------------------------------------ the prompts file


def test_prompts_file_has_every_required_example() -> None:
    examples = examples_by_name()
    assert len(examples) >= 10
    missing = [n for n in REQUIRED if n not in examples]
    assert missing == []
    for ex in examples.values():
        assert ex.title.strip() and ex.look_for.strip() and ex.prompt.strip()
        # one or two sentences
        assert 1 <= len(re.findall(r"[.!?](\s|$)", ex.look_for)) <= 2, ex.name


def test_induction_prompt_is_one_random_sequence_repeated() -> None:
    words = examples_by_name()["induction"].prompt.split(" ")
    half = len(words) // 2
    assert len(words) % 2 == 0 and 25 <= half <= 40
    assert words[:half] == words[half:]
    assert len(set(words[:half])) == half  # no word repeats inside one copy


def test_chat_example_uses_the_chat_template_tokens() -> None:
    prompt = examples_by_name()["chat"].prompt
    assert prompt.startswith("<|im_start|>")
    assert "<|im_start|>user\n" in prompt and "<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_every_example_builds_its_view_arguments() -> None:
    for ex in examples_by_name().values():
        run = ex.run_kwargs()
        assert run["lens"] is True
        assert run["attention"] == ("attention" in ex.coil_kwargs())
        assert ex.coil_kwargs().get("animate") is True
        assert "animate" not in ex.coil_kwargs(animate=False)


# ------------------------------------------------------------------ examples, options, keys


@pytest.mark.parametrize(
    ("options", "coil", "lens"),
    [
        ({}, {"animate": True}, {}),
        ({"attention": "mean"}, {"attention": "mean", "animate": True}, {}),
        ({"attention": "max", "layer": 3}, {"attention": (3, "max"), "animate": True}, {}),
        ({"attention": "2:1"}, {"attention": (2, 1), "animate": True}, {}),
        ({"attention": [4, 0], "hide_sink": True}, {"attention": (4, 0), "hide_sink": True, "animate": True}, {}),
        ({"color": "entropy", "animate": False, "pace": "surprisal"}, {"color": "entropy"}, {}),
        ({"pace": "surprisal", "duration_s": 8}, {"animate": True, "pace": "surprisal", "duration_s": 8}, {}),
        (
            {"lens_stat": "kl", "lens_stride": 2, "lens_start": 1, "lens_end": 5},
            {"animate": True},
            {"stat": "kl", "stride": 2, "start": 1, "end": 5},
        ),
        ({"whitespace": "plain", "lens_whitespace": "markers"}, {"animate": True, "whitespace": "plain"},
         {"whitespace": "markers"}),
    ],
    ids=["none", "mean", "max-layer", "layer-head-str", "layer-head-list", "no-animate", "pace", "lens", "whitespace"],
)
def test_options_map_to_view_arguments(options: dict[str, Any], coil: dict[str, Any], lens: dict[str, Any]) -> None:
    ex = Example.from_dict(entry("x", "Hello", **options))
    assert ex.coil_kwargs() == coil
    assert ex.lens_kwargs() == lens


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"prompt": ""}, CoilvisValueError, "prompt"),
        ({"prompt": "   "}, CoilvisValueError, "prompt"),
        ({"prompt": 3}, CoilvisTypeError, "prompt"),
        ({"name": "../escape"}, CoilvisValueError, "name"),
        ({"name": "Upper"}, CoilvisValueError, "name"),
        ({"name": "index"}, CoilvisValueError, "index"),
        ({"title": None}, CoilvisTypeError, "title"),
        ({"options": {"colour": "prob"}}, CoilvisValueError, "colour"),
        ({"options": {"attention": "sideways"}}, CoilvisValueError, "attention"),
        ({"options": {"attention": "mean", "layer": "3"}}, CoilvisTypeError, "layer"),
        ({"options": []}, CoilvisTypeError, "options"),
        ({"extra_field": 1}, CoilvisValueError, "extra_field"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_examples_are_rejected_with_a_clear_message(change: dict[str, Any], error: type[Exception], words: str) -> None:
    raw = {**entry("good", "Hello"), **change}
    with pytest.raises(error, match=re.escape(words)):
        Example.from_dict(raw)


#: The keys a prompts file's ``options`` may use (a file written for an earlier coilvis keeps working).
KEYS = ["layout", "color", "attention", "layer", "hide_sink", "max_links", "animate", "pace", "duration_s",
        "lens_stat", "lens_stride", "lens_start", "lens_end", "k", "lens_k", "lens_mid", "prepend_bos",
        "whitespace", "lens_whitespace", "mass", "mass_k"]


def test_option_keys_are_derived_from_the_declared_options() -> None:
    from coilvis import options

    assert sorted(gallery.OPTION_KEYS) == sorted(KEYS)
    for api in ("coil", "lens", "run"):
        for option in options.declared(api):
            if option.key is not None:
                assert gallery.OPTION_KEYS[option.key].startswith(option.help)
    assert "(default true)" in gallery.OPTION_KEYS["animate"]  # a gallery page animates unless told not to


def test_every_key_reaches_its_function() -> None:
    every = {"layout": "circle", "color": "rank", "attention": "mean", "layer": 1, "hide_sink": True, "max_links": 7,
             "animate": True, "pace": "surprisal", "duration_s": 6, "lens_stat": "entropy", "lens_stride": 3,
             "lens_start": 2, "lens_end": 9, "k": 4, "lens_k": 3, "lens_mid": True, "prepend_bos": False,
             "whitespace": "markers", "lens_whitespace": "plain", "mass": True, "mass_k": 3}
    ex = Example.from_dict(entry("x", "Hello", **every))
    assert ex.coil_kwargs() == {"layout": "circle", "color": "rank", "attention": (1, "mean"), "hide_sink": True,
                                "max_links": 7, "animate": True, "pace": "surprisal", "duration_s": 6,
                                "whitespace": "markers", "mass": True, "mass_k": 3}
    assert ex.lens_kwargs() == {"stat": "entropy", "stride": 3, "start": 2, "end": 9, "whitespace": "plain"}
    assert ex.run_kwargs() == {"attention": True, "lens": True, "k": 4, "lens_k": 3, "lens_mid": True, "prepend_bos": False}


def test_cache_key_depends_on_what_the_model_computes_only() -> None:
    base = Example.from_dict(entry("a", "Hello there", color="prob", attention="mean"))
    same_run = Example.from_dict({**entry("b", "Hello there", color="entropy", attention="max"), "title": "Other"})
    assert cache_key(base, "m") == cache_key(same_run, "m")  # view options and names do not matter
    for other, label in [
        (Example.from_dict(entry("a", "Hello there!", color="prob", attention="mean")), "m"),
        (Example.from_dict(entry("a", "Hello there", color="prob")), "m"),  # no attention run
        (Example.from_dict(entry("a", "Hello there", color="prob", attention="mean", k=3)), "m"),
        (base, "another-model"),
    ]:
        assert cache_key(other, label) != cache_key(base, "m")


def test_load_examples_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CoilvisValueError, match="unique"):
        load_examples(write_prompts(tmp_path / "dup.json", [entry("a", "x"), entry("a", "y")]))
    with pytest.raises(CoilvisValueError, match="version"):
        (tmp_path / "new.json").write_text(json.dumps({"format": "coilvis.gallery", "version": 99, "examples": []}))
        load_examples(tmp_path / "new.json")
    with pytest.raises(CoilvisValueError, match="JSON"):
        (tmp_path / "bad.json").write_text("{not json")
        load_examples(tmp_path / "bad.json")
    with pytest.raises(CoilvisValueError, match="'empty'"):
        load_examples(write_prompts(tmp_path / "empty.json", [entry("ok", "x"), entry("empty", "")]))


# ------------------------------------------------------------------ sunbursts: the prompts file


def test_the_shipped_sunbursts_are_the_factual_and_the_open_ended_example() -> None:
    examples = examples_by_name()
    assert [n for n, e in examples.items() if e.sunburst is not None] == SUNBURSTS
    assert examples["eiffel"].prompt == "The Eiffel Tower is located in the city of"
    assert examples["story"].prompt == "Once upon a time, there was a"
    assert all(examples[n].sunburst == SunburstSpec(depth=3, k=5) for n in SUNBURSTS)


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        (True, SunburstSpec(depth=3, k=5, min_prob=0.0, color="prob")),
        (False, None),
        ({}, SunburstSpec()),
        ({"depth": 2, "k": 8}, SunburstSpec(depth=2, k=8)),
        ({"min_prob": 0.01, "color": "entropy"}, SunburstSpec(min_prob=0.01, color="entropy")),
        ({"depth": 4, "k": 8, "min_prob": 0.01}, SunburstSpec(depth=4, k=8, min_prob=0.01)),  # 273 nodes: min_prob caps each depth
        ({"depth": 8, "k": 1}, SunburstSpec(depth=8, k=1)),
    ],
    ids=["true", "false", "empty", "depth-k", "min_prob-color", "capped", "deepest"],
)
def test_the_sunburst_key_is_read(value: Any, spec: SunburstSpec | None) -> None:
    ex = Example.from_dict({**entry("x", "Hello"), "sunburst": value})
    assert ex.sunburst == spec
    assert Example.from_dict(entry("x", "Hello")).sunburst is None  # absent: none
    if spec is not None:
        assert spec.tree_kwargs() == {"depth": spec.depth, "k": spec.k, "min_prob": spec.min_prob}


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ({"depth": 0}, CoilvisValueError, "sunburst.depth"),
        ({"depth": "3"}, CoilvisTypeError, "sunburst.depth"),
        ({"depth": 3.0}, CoilvisTypeError, "sunburst.depth"),
        ({"depth": 9, "k": 1}, CoilvisValueError, "sunburst.depth"),
        ({"k": 0}, CoilvisValueError, "sunburst.k"),
        ({"k": True}, CoilvisTypeError, "sunburst.k"),
        ({"k": None}, CoilvisTypeError, "sunburst.k"),
        ({"min_prob": 1}, CoilvisValueError, "sunburst.min_prob"),
        ({"min_prob": -0.1}, CoilvisValueError, "sunburst.min_prob"),
        ({"min_prob": "0.1"}, CoilvisTypeError, "sunburst.min_prob"),
        ({"color": "rank"}, CoilvisValueError, "sunburst.color"),
        ({"color": None}, CoilvisValueError, "sunburst.color"),
        ({"depth": 4, "k": 8}, CoilvisValueError, "sunburst.depth or sunburst.k"),  # 4,681 nodes
        ({"rings": 3}, CoilvisValueError, "rings"),
        ("yes", CoilvisTypeError, "sunburst"),
        (None, CoilvisTypeError, "sunburst"),
        ([3, 5], CoilvisTypeError, "sunburst"),
    ],
    ids=lambda v: None if isinstance(v, (dict, type)) else str(v),
)
def test_a_bad_sunburst_is_rejected_naming_its_key(value: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=re.escape(words)):
        Example.from_dict({**entry("x", "Hello"), "sunburst": value})


def test_a_bad_sunburst_fails_its_example_in_a_prompts_file(tmp_path: Path) -> None:
    path = write_prompts(tmp_path / "p.json", [entry("ok", "x"), {**entry("story", "Once"), "sunburst": {"k": -1}}])
    with pytest.raises(CoilvisValueError, match=r"example 'story': sunburst\.k: expected >= 1, got -1"):
        load_examples(path)


def test_sunburst_keys_are_what_the_view_and_the_tree_take() -> None:
    import dataclasses
    import inspect

    from coilvis.views import _tree

    assert set(SUNBURST_COLORS) == set(_tree.COLORS)  # named in the prompts module so that reading a file loads no Bokeh
    assert set(SUNBURST_KEYS) == {f.name for f in dataclasses.fields(SunburstSpec)}
    tree_params = inspect.signature(coilvis.tree).parameters
    assert set(SunburstSpec().tree_kwargs()) <= set(tree_params)
    assert "color" in inspect.signature(coilvis.sunburst).parameters
    assert SUNBURST_MAX_NODES >= 156  # the default depth 3, k 5


def test_tree_cache_key_depends_on_what_the_model_computes_only() -> None:
    def ex(prompt: str = "Once upon", sunburst: Any = True, **options: Any) -> Example:
        return Example.from_dict({**entry("a", prompt, **options), "sunburst": sunburst})

    base = ex()
    assert tree_cache_key(base, "m") == tree_cache_key(ex(sunburst={"color": "entropy"}, color="entropy", attention="mean"), "m")
    others = [
        tree_cache_key(ex(prompt="Once upon a"), "m"),
        tree_cache_key(ex(sunburst={"depth": 2}), "m"),
        tree_cache_key(ex(sunburst={"k": 4}), "m"),
        tree_cache_key(ex(sunburst={"min_prob": 0.001}), "m"),
        tree_cache_key(ex(prepend_bos=True), "m"),
        tree_cache_key(base, "another-model"),
    ]
    assert tree_cache_key(base, "m") not in others and len(set(others)) == len(others)
    assert tree_cache_key(base, "m") != cache_key(base, "m")  # a tree is not a record


def _first_ring(tree: Any) -> np.ndarray:
    kids = tree.children(0)
    return np.sort(tree.path_prob[kids[~tree.is_other[kids]]].astype(np.float64))[::-1]


def _pct(p: float) -> str:
    return f"{p:.0%}" if p >= 0.01 else (f"{p:.1%}" if p >= 0.001 else "under 0.1%")


@given(
    depth=st.integers(1, 3),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    sharpness=st.floats(0.1, 12.0),
)
def test_the_caption_says_what_the_tree_holds(depth: int, k: int, seed: int, sharpness: float) -> None:
    tree = synthetic_tree(depth=depth, k=k, seed=seed, sharpness=sharpness)
    caption = mass_caption(tree)
    ring = _first_ring(tree)
    top = float(ring[0])
    if top >= 0.9:
        assert caption.startswith("One branch takes almost all the mass")
    elif top >= 0.5:
        assert caption.startswith("One branch takes most of the mass")
    else:
        assert caption.startswith("The mass spreads")
        assert f"the {ring.size} shown hold {_pct(float(ring.sum()))} together" in caption
    assert f"the likeliest next token holds {'only ' if top < 0.5 else ''}{_pct(top)}" in caption
    if ring.size > 1 and top >= 0.5:
        assert f"the runner-up {_pct(float(ring[1]))}" in caption
    deepest = (tree.depth == depth) & ~tree.is_other
    if depth >= 2:
        assert caption.endswith(f"The likeliest {depth}-token continuation holds {_pct(float(tree.path_prob[deepest].max()))}.")
    assert "<" not in caption and "&" not in caption  # fixed words and numbers only, never a token's text
    assert len(re.findall(r"[.!?](\s|$)", caption)) <= 2


# ------------------------------------------------------------------ the index page


def test_index_escapes_every_string_and_links_relatively(tmp_path: Path) -> None:
    evil = '<img src=x onerror="window.__pwned=1"></pre></script>&"\''
    ex = Example("evil", f"Title {evil}", f"Prompt {evil}", f"Look {evil}.", {})
    out = tmp_path
    (out / "pages").mkdir()
    (out / "thumbs").mkdir()
    (out / "pages" / "evil.html").write_text("x")
    (out / "thumbs" / "evil.png").write_bytes(b"x")
    built = gallery.ExampleResult("evil", ex.title, "built", page=out / "pages" / "evil.html", thumbnail=out / "thumbs" / "evil.png", seq_len=7)
    failed = gallery.ExampleResult("broken", f"Broken {evil}", "failed", error=f"CoilvisValueError: {evil}")
    text = render_index([built, failed], out_dir=out, model_label=f"model {evil}", examples={"evil": ex})
    assert "<img src=x" not in text and "</script>" not in text and 'onerror="' not in text
    assert "<script" not in text  # the index runs no code at all
    for shown in (ex.title, ex.look_for, ex.prompt, failed.title, failed.error, f"model {evil}"):
        assert html.escape(shown) in text, shown
    assert 'href="pages/evil.html"' in text and 'src="thumbs/evil.png"' in text
    assert str(tmp_path) not in text  # links are relative
    assert text.count('class="badge">failed') == 1
    assert 'href="pages/broken.html"' not in text


#: Characters that must never reach the index raw: NUL and other controls, bidi
#: overrides, embeddings, isolates and marks, zero-width and BOM, lone surrogates.
HIDDEN = "\x00\x07\x1b\x7f\x85\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200b\ufeff\u2028\ud800\udc80"


def test_index_shows_hidden_characters_as_visible_escapes(tmp_path: Path) -> None:
    hostile = "safe \u202etxt.exe\u202c <script>alert(1)</script> nul\x00 \ud800 \u2066iso\u2069"
    ex = Example("bidi", f"Title {hostile}", f"Prompt line 1\nline 2 {hostile}\n\nlast \u200f", f"Look {hostile}.", {})
    built = gallery.ExampleResult("bidi", ex.title, "built", page=tmp_path / "p.html", thumbnail=tmp_path / "t.png", seq_len=3)
    failed = gallery.ExampleResult("bad\u202ename", f"Broken {hostile}", "failed", error=f"CoilvisValueError: {hostile}\x00")
    text = render_index([built, failed], out_dir=tmp_path, model_label=f"model {hostile}", examples={"bidi": ex})
    assert not [f"U+{ord(c):04X}" for c in HIDDEN if c in text]
    assert not [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Zl", "Zp"} and c != "\n"]
    text.encode("utf-8")  # strict: a lone surrogate would raise here (and in the atomic write)
    assert "<script" not in text
    # each hidden character shows as the views show it, an escape, and the rest is kept
    for shown in ("safe \\u202etxt.exe\\u202c", "nul\\x00", "\\ud800", "\\u2066iso\\u2069", "bad\\u202ename",
                  "&lt;script&gt;alert(1)&lt;/script&gt;", "Prompt line 1\nline 2", "\n\nlast \\u200f"):
        assert shown in text, shown
    assert text.count("safe \\u202etxt.exe") == 7  # title, thumbnail alt, look, prompt, broken title, error, model


# ------------------------------------------------------------------ builds with a tiny model


@pytest.fixture
def tiny_model(tiny_llama: Any, tiny_tokenizer: Any) -> Any:
    from coilvis.models import LoadedModel

    return LoadedModel(tiny_llama, tiny_tokenizer, "tiny-llama")


def tiny_prompts(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    return write_prompts(
        tmp_path / "prompts.json",
        [
            entry("first", "Hello the world and the end\n", attention="mean", color="entropy", lens_stat="prob"),
            entry("second", "the and the and the", color="prob", lens_stat="entropy"),
            *extra,
        ],
    )


def test_build_writes_pages_records_and_index(tmp_path: Path, tiny_model: Any) -> None:
    out = tmp_path / "site"
    result = build_gallery(out, prompts_path=tiny_prompts(tmp_path), model=tiny_model, thumbnails=False, progress=False)
    assert result.ok and [e.status for e in result.examples] == ["built", "built"]
    for e in result.examples:
        assert e.page == out / "pages" / f"{e.name}.html" and e.page.stat().st_size > 100_000  # BokehJS inlined
        assert e.record is not None and coilvis.Record.load(e.record).seq_len == e.seq_len
        assert not e.cached and e.model_s > 0 and e.page_s > 0
    page = (out / "pages" / "first.html").read_text(encoding="utf-8")
    assert "<title>Title of first - coilvis</title>" in page
    index = result.index.read_text(encoding="utf-8")
    assert 'href="pages/first.html"' in index and 'href="pages/second.html"' in index
    assert "Look at first." in index and "no thumbnail" in index
    assert result.model_s >= result.model_load_s and result.render_s > 0
    assert result.size_bytes() == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert "first" in result.summary() and "built" in result.summary()
    assert list(out.rglob("*.tmp")) == []


def test_rebuild_uses_the_cache_and_never_runs_the_model(tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    prompts = tiny_prompts(tmp_path)
    build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    for page in (out / "pages").glob("*.html"):
        page.unlink()

    def no_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model ran on a cached rebuild")

    monkeypatch.setattr(coilvis, "run", no_run)
    monkeypatch.setattr(coilvis, "run_many", no_run)
    again = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert again.ok and all(e.cached and e.model_s == 0 for e in again.examples)
    assert again.model_load_s == 0
    assert all((out / "pages" / f"{n}.html").is_file() for n in ("first", "second"))  # re-rendered

    # a changed view option re-renders from the cache; a changed prompt runs that example only
    data = json.loads(prompts.read_text())
    data["examples"][0]["options"]["color"] = "surprisal"
    data["examples"][1]["prompt"] = "the and the and the and"
    prompts.write_text(json.dumps(data))
    monkeypatch.undo()
    third = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert [e.cached for e in third.examples] == [True, False]
    assert coilvis.Record.load(out / "records" / "second.coil").prompt == "the and the and the and"
    # force runs everything again
    forced = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, force=True)
    assert not any(e.cached for e in forced.examples)


def test_a_broken_example_is_reported_and_the_others_build(
    tmp_path: Path, tiny_model: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tiny_prompts(
        tmp_path,
        entry("empty", ""),  # invalid in the file
        entry("bad_k", "Hello the world", k=0),  # fails when the model runs
        entry("bad_color", "Hello the world", color="no-such-statistic"),  # fails when drawn
    )
    out = tmp_path / "site"
    result = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    status = {e.name: e.status for e in result.examples}
    assert status == {"first": "built", "second": "built", "empty": "failed", "bad_k": "failed", "bad_color": "failed"}
    assert not result.ok and {e.name for e in result.failures} == {"empty", "bad_k", "bad_color"}
    by_name = {e.name: e for e in result.examples}
    assert "prompt" in by_name["empty"].error and "k" in by_name["bad_k"].error
    assert "no-such-statistic" in by_name["bad_color"].error
    err = capsys.readouterr().err
    for name in ("empty", "bad_k", "bad_color"):
        assert f"{name} failed" in err
    index = result.index.read_text(encoding="utf-8")
    assert index.count('class="badge">failed') == 3
    assert 'href="pages/first.html"' in index and 'href="pages/bad_k.html"' not in index
    assert not (out / "pages" / "empty.html").exists()


def test_a_model_that_cannot_load_fails_every_example_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import coilvis.models
    from coilvis.errors import ModelNotFoundError

    calls = []

    def cannot_load(model: Any, tokenizer: Any = None) -> Any:
        calls.append(model)
        raise ModelNotFoundError("model: no folder or model id 'nowhere/model'")

    monkeypatch.setattr(coilvis.models, "resolve_model", cannot_load)
    result = build_gallery(tmp_path / "site", prompts_path=tiny_prompts(tmp_path), model="nowhere/model", thumbnails=False, progress=False)
    assert [e.status for e in result.examples] == ["failed", "failed"]
    assert all("nowhere/model" in (e.error or "") for e in result.examples)
    assert calls == ["nowhere/model"]  # tried once, not once per example
    assert result.index.is_file() and "nowhere/model" in result.index.read_text(encoding="utf-8")
    assert capsys.readouterr().err.count("failed: ModelNotFoundError") == 2


def test_without_a_browser_pages_build_and_thumbnails_are_skipped(
    tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from coilvis.views import output

    monkeypatch.setattr(output.shutil, "which", lambda name: None)
    result = build_gallery(tmp_path / "site", prompts_path=tiny_prompts(tmp_path), model=tiny_model, progress=False)
    assert result.ok and [e.status for e in result.examples] == ["built", "built"]
    assert all(e.thumbnail is None for e in result.examples)
    assert "chromium" in (result.examples[0].warning or "").lower() and result.examples[1].warning is None
    assert capsys.readouterr().err.lower().count("no thumbnails") == 1
    assert result.index.read_text(encoding="utf-8").count("no thumbnail") == 2


def test_only_builds_the_named_examples_and_keeps_the_others_on_the_index(tmp_path: Path, tiny_model: Any) -> None:
    out = tmp_path / "site"
    prompts = tiny_prompts(tmp_path)
    first = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["second"])
    assert [e.status for e in first.examples] == ["skipped", "built"]
    assert "not built yet" in first.index.read_text(encoding="utf-8")
    second = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["first"])
    assert [e.status for e in second.examples] == ["built", "skipped"]
    index = second.index.read_text(encoding="utf-8")
    assert 'href="pages/second.html"' in index and "not built yet" not in index  # built earlier, still linked
    with pytest.raises(CoilvisValueError, match="nope"):
        build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["nope"])


def test_an_interrupted_build_keeps_the_previous_index(tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    prompts = tiny_prompts(tmp_path)
    build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    good = (out / "index.html").read_bytes()

    # 1. interrupted mid-build (Ctrl-C while drawing the second example)
    real_page = coilvis.page
    calls = []

    def page_then_interrupt(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_page(*args, **kwargs)

    monkeypatch.setattr(coilvis, "page", page_then_interrupt)
    data = json.loads(prompts.read_text())
    data["examples"][0]["title"] = "A new title"
    prompts.write_text(json.dumps(data))
    with pytest.raises(KeyboardInterrupt):
        build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert (out / "index.html").read_bytes() == good
    monkeypatch.undo()

    # 2. a crash while the index itself is written (the rename fails): the old one stays
    import os

    real_replace = os.replace

    def replace_fails_for_index(src: Any, dst: Any) -> None:
        if Path(dst).name == "index.html":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_fails_for_index)
    with pytest.raises(OSError, match="No space"):
        build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert (out / "index.html").read_bytes() == good
    assert list(out.rglob("*.tmp")) == []
    monkeypatch.undo()

    # 3. an uninterrupted build replaces it
    build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert "A new title" in (out / "index.html").read_text(encoding="utf-8")


def test_cli_gallery_command(tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from coilvis.cli import main

    seen: dict[str, Any] = {}
    real = gallery.build_gallery

    def spy(out_dir: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(out_dir, **{**kwargs, "model": tiny_model, "progress": False})

    monkeypatch.setattr(gallery, "build_gallery", spy)
    prompts = tiny_prompts(tmp_path, entry("empty", ""))
    out = tmp_path / "site"
    rc = main(["gallery", "-o", str(out), "--prompts", str(prompts), "--only", "first", "empty", "--no-thumbnails"])
    assert rc == 1  # one example failed
    assert seen["only"] == ["first", "empty"] and seen["thumbnails"] is False and seen["force"] is False
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "index.html")
    assert "empty" in captured.err and "failed" in captured.err
    assert main(["gallery", "-o", str(out), "--prompts", str(prompts), "--only", "first", "--no-thumbnails"]) == 0
    assert main(["gallery", "-o", str(out), "--prompts", str(prompts), "--only", "missing"]) == 1  # names an example the prompts file lacks: found while running, so 1


def test_examples_with_the_same_run_options_run_as_one_batch(tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], dict[str, Any]]] = []
    real = coilvis.run_many

    def spy(prompts: list[str], model: Any, **kwargs: Any) -> Any:
        calls.append((list(prompts), kwargs))
        return real(prompts, model, **kwargs)

    monkeypatch.setattr(coilvis, "run_many", spy)
    monkeypatch.setattr(coilvis, "run", lambda *a, **kw: pytest.fail("an example ran alone"))
    prompts = tiny_prompts(tmp_path, entry("third", "and the world", color="prob"))
    result = build_gallery(tmp_path / "site", prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert result.ok
    assert sorted(c[0] for c in calls) == [["Hello the world and the end\n"], ["the and the and the", "and the world"]]
    assert all(c[1]["lens"] for c in calls)
    by_name = {e.name: e for e in result.examples}
    assert all(e.model_s > 0 for e in result.examples)
    # a batched record is the one coilvis.run gives (the run_many tests compare every statistic)
    record = coilvis.Record.load(by_name["third"].record)
    alone = real(["and the world"], tiny_model, lens=True, attention=False, progress=False)[0]
    np.testing.assert_allclose(record.entropy, alone.entropy, atol=1e-5)
    assert record.extra["gallery_key"] == cache_key(examples_by_name_in(prompts)["third"], "tiny-llama")


def examples_by_name_in(path: Path) -> dict[str, Example]:
    return {e.name: e for e in load_examples(path)}


def test_a_failing_prompt_in_a_batch_fails_alone(tmp_path: Path, tiny_model: Any) -> None:
    # "long" shares its run options with "second" but is longer than the tiny model's context
    prompts = tiny_prompts(tmp_path, entry("long", "the and " * 200, color="prob"))
    result = build_gallery(tmp_path / "site", prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    status = {e.name: e.status for e in result.examples}
    assert status == {"first": "built", "second": "built", "long": "failed"}
    assert "256 positions" in (result.examples[2].error or "")


def test_shared_js_writes_bokehjs_once_and_prunes_what_no_page_links(tmp_path: Path, tiny_model: Any) -> None:
    out = tmp_path / "site"
    prompts = tiny_prompts(tmp_path)
    shared = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, shared_js=True)
    assert shared.ok
    [library] = (out / "pages").glob("bokeh-*.min.js")
    for e in shared.built:
        html = e.page.read_text(encoding="utf-8")
        assert f'<script src="{library.name}"></script>' in html
        assert len(html) < library.stat().st_size // 4  # the page's own data and scripts: no inlined copy of BokehJS
    assert shared.size_bytes() < 2 * library.stat().st_size
    # one page rebuilt inline: the other still links the file, which stays
    build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["first"])
    assert library.is_file() and (out / "pages" / "first.html").stat().st_size > 1_000_000
    # every page inline: no page links the file any more, so it goes
    inline = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    assert inline.ok and list((out / "pages").glob("bokeh-*.min.js")) == []


def test_thumbnails_share_one_browser(tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("selenium")
    from coilvis.views import output

    try:
        from test_output import FakeDriver
    except ImportError:
        from tests.test_output import FakeDriver
    log: list[str] = []
    monkeypatch.setattr(output, "find_chromium", lambda: ("/usr/bin/chromium", "/usr/bin/chromedriver"))
    monkeypatch.setattr(output, "_chrome_driver", lambda *a: log.append("start") or FakeDriver(log))
    prompts = tiny_prompts(tmp_path, entry("third", "and the world"))
    result = build_gallery(tmp_path / "site", prompts_path=prompts, model=tiny_model, progress=False)
    assert result.ok and all(e.thumbnail is not None and e.thumbnail.is_file() for e in result.examples)
    assert log.count("start") == 1 and log.count("quit") == 1 and len([x for x in log if x.startswith("get")]) == 3


def test_cli_gallery_shared_js_flag(tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from coilvis.cli import main

    seen: dict[str, Any] = {}
    real = gallery.build_gallery

    def spy(out_dir: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(out_dir, **{**kwargs, "model": tiny_model, "progress": False})

    monkeypatch.setattr(gallery, "build_gallery", spy)
    out = tmp_path / "site"
    assert main(["gallery", "-o", str(out), "--prompts", str(tiny_prompts(tmp_path)), "--no-thumbnails", "--shared-js"]) == 0
    assert seen["shared_js"] is True and len(list((out / "pages").glob("bokeh-*.min.js"))) == 1
    assert main(["gallery", "-o", str(out), "--prompts", str(tiny_prompts(tmp_path)), "--no-thumbnails"]) == 0
    assert seen["shared_js"] is False


# ------------------------------------------------------------------ sunbursts: builds with a tiny model


def saved_models(page: Path) -> dict[str, dict[str, Any]]:
    """Every named Bokeh model of a saved page: its id and attributes, by name."""
    text = page.read_text(encoding="utf-8")
    (docs,) = re.findall(r'<script type="application/json" id="[^"]*">\s*(.*?)\s*</script>', text, re.DOTALL)
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            attributes = node.get("attributes") if node.get("type") == "object" else None
            if isinstance(attributes, dict) and isinstance(attributes.get("name"), str):
                found.setdefault(attributes["name"], {"id": node["id"], **attributes})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(html.unescape(docs)))
    return found


def source_column(source: dict[str, Any], name: str) -> np.ndarray:
    """A column of a saved ColumnDataSource (numpy columns are base64 bytes, gzipped or not)."""
    (value,) = [v for k, v in source["data"]["entries"] if k == name]
    if isinstance(value, dict) and value.get("type") == "ndarray":
        raw = value["array"]
        if isinstance(raw, dict) and raw.get("type") == "bytes":
            data = base64.b64decode(raw["data"])
            data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # coilvis compresses large columns
            return np.frombuffer(data, dtype=value["dtype"]).reshape(value["shape"])
        return np.asarray(raw, dtype=value["dtype"])
    return np.asarray(value)


def sunburst_prompts(tmp_path: Path, sunburst: Any = None, **options: Any) -> Path:
    """The tiny prompts with a third example, ``story``, that has a sunburst (default depth 2, k 3)."""
    story = {**entry("story", "Hello the world", **options), "sunburst": sunburst or {"depth": 2, "k": 3}}
    return tiny_prompts(tmp_path, story)


def test_a_sunburst_is_drawn_below_the_lens_with_wedges_from_its_tree(tmp_path: Path, tiny_model: Any) -> None:
    out = tmp_path / "site"
    prompts = sunburst_prompts(tmp_path, {"depth": 2, "k": 3, "color": "entropy"})
    result = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, shared_js=True)
    assert result.ok, result.summary()
    by_name = {e.name: e for e in result.examples}
    story = by_name["story"]
    assert story.tree == out / "records" / "story.coiltree" and not story.tree_cached and story.model_s > 0
    tree = coilvis.Tree.load(story.tree)
    assert (tree.depth_limit, tree.k, tree.prompt) == (2, 3, "Hello the world")
    assert tree.extra["gallery_key"] == tree_cache_key(examples_by_name_in(prompts)["story"], "tiny-llama")
    direct = coilvis.tree("Hello the world", tiny_model, depth=2, k=3)  # the tree coilvis.tree grows
    np.testing.assert_allclose(tree.path_prob, direct.path_prob, atol=1e-6)
    assert story.sunburst_caption == mass_caption(tree) and "cached" not in result.summary().splitlines()[3]

    # the page: the sunburst's section is the last part of the page, below the lens
    models = saved_models(story.page)
    root, section = models["page_root"], models["gallery_sunburst_section"]
    assert root["children"][-1]["id"] == section["id"] and "lens_figure" in models
    assert html.escape(story.sunburst_caption) in models["gallery_sunburst_caption"]["text"]
    # every wedge's angle is its path probability's share of the circle, children side by side inside their parent
    source = models["sunburst_source"]
    start, end = source_column(source, "start_angle"), source_column(source, "end_angle")
    share = (end.astype(np.float64) - start) / (2 * math.pi)
    np.testing.assert_allclose(share[1:], tree.path_prob[1:], atol=1e-5)
    assert share[0] == pytest.approx(1.0)  # the centre: the prompt, the whole circle
    x0, _ = tree.spans()
    np.testing.assert_allclose(math.pi / 2 - end[1:], 2 * math.pi * x0[1:], atol=1e-5)  # clockwise from the top
    assert models["sunburst_wedge_filter"]["indices"] == [i for i in range(tree.n_nodes) if share[i] > 0]
    # coloured as the example asks: by entropy, in bits
    assert models["sunburst_color_bar"]["title"].startswith("entropy")
    tokens = ~tree.is_other & (np.arange(tree.n_nodes) > 0)
    np.testing.assert_allclose(source_column(source, "value")[tokens], tree.entropy[tokens] / math.log(2), rtol=1e-5)
    # one BokehJS file for every page, the sunburst's too
    assert len(list((out / "pages").glob("bokeh-*.min.js"))) == 1
    # the examples without a sunburst have none
    assert "sunburst_source" not in saved_models(by_name["first"].page) and by_name["first"].sunburst_caption is None
    # the index: the sunburst's caption on its card, linking the page
    index = result.index.read_text(encoding="utf-8")
    assert index.count('class="burst"') == 1
    assert '<a class="burst" href="pages/story.html">' in index and html.escape(story.sunburst_caption) in index


def test_a_rebuild_reuses_the_tree_and_only_a_changed_tree_option_regrows_it(
    tmp_path: Path, tiny_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "site"
    prompts = sunburst_prompts(tmp_path)
    build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    saved = (out / "records" / "story.coiltree").read_bytes()
    grown: list[str] = []
    real_tree = coilvis.tree

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model ran on a cached rebuild")

    def spy(prompt: str, *args: Any, **kwargs: Any) -> Any:
        grown.append(prompt)
        return real_tree(prompt, *args, **kwargs)

    for name in ("run", "run_many", "tree"):
        monkeypatch.setattr(coilvis, name, refuse)
    again = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["story"])
    story = again.examples[2]
    assert again.ok and story.cached and story.tree_cached and again.model_s == 0 and again.model_load_s == 0
    assert "cached record and tree" in again.summary()
    assert story.sunburst_caption == mass_caption(coilvis.Tree.load(out / "records" / "story.coiltree"))
    assert (out / "records" / "story.coiltree").read_bytes() == saved

    # the colour is a view option: redrawn from the cached tree
    data = json.loads(prompts.read_text())
    data["examples"][2]["sunburst"] = {"depth": 2, "k": 3, "color": "path_prob"}
    prompts.write_text(json.dumps(data))
    recoloured = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["story"])
    assert recoloured.ok and recoloured.examples[2].tree_cached
    assert saved_models(out / "pages" / "story.html")["sunburst_color_bar"]["title"].startswith("probability of the whole continuation")
    # a deeper tree grows again, alone; the record stays cached
    monkeypatch.undo()
    monkeypatch.setattr(coilvis, "tree", spy)
    data["examples"][2]["sunburst"] = {"depth": 3, "k": 2}
    prompts.write_text(json.dumps(data))
    deeper = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["story"])
    assert deeper.ok and grown == ["Hello the world"] and deeper.examples[2].cached and not deeper.examples[2].tree_cached
    assert coilvis.Tree.load(out / "records" / "story.coiltree").depth_limit == 3
    # force grows it again too
    forced = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, force=True, only=["story"])
    assert forced.ok and grown == ["Hello the world"] * 2
    # --only another example: the index still shows the sunburst built earlier
    other = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["first"])
    assert grown == ["Hello the world"] * 2 and other.examples[2].status == "skipped"
    assert other.examples[2].sunburst_caption == mass_caption(coilvis.Tree.load(out / "records" / "story.coiltree"))
    assert 'class="burst" href="pages/story.html"' in other.index.read_text(encoding="utf-8")
    # no sunburst any more: the page and the index lose it, and its old thumbnail goes
    (out / "thumbs" / "story.sunburst.png").write_bytes(b"old")
    del data["examples"][2]["sunburst"]
    prompts.write_text(json.dumps(data))
    without = build_gallery(out, prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False, only=["story"])
    assert without.ok and without.examples[2].sunburst_caption is None and grown == ["Hello the world"] * 2
    assert not (out / "thumbs" / "story.sunburst.png").exists()
    assert "sunburst_source" not in saved_models(out / "pages" / "story.html")
    assert 'class="burst"' not in without.index.read_text(encoding="utf-8")


def test_a_tree_that_cannot_grow_fails_its_example_alone(tmp_path: Path, tiny_model: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # 255 one-byte tokens run (the tiny model takes 256 positions), but a tree 3 tokens deep needs 257
    prompt = "a" * 255
    assert len(tiny_model.tokenizer(prompt)["input_ids"]) == 255
    prompts = tiny_prompts(tmp_path, {**entry("deep", prompt), "sunburst": {"depth": 3, "k": 1}})
    result = build_gallery(tmp_path / "site", prompts_path=prompts, model=tiny_model, thumbnails=False, progress=False)
    status = {e.name: e.status for e in result.examples}
    assert status == {"first": "built", "second": "built", "deep": "failed"}
    error = result.examples[2].error or ""
    assert error.startswith("sunburst: CoilvisValueError") and "depth=3" in error
    assert "deep failed: sunburst" in capsys.readouterr().err
    assert 'href="pages/deep.html"' not in result.index.read_text(encoding="utf-8")


# ------------------------------------------------------------------ the default model (slow)


@pytest.mark.slow
@pytest.mark.model
def test_long_document_has_at_least_1000_tokens(default_model: Any) -> None:
    prompt = examples_by_name()["spirals_essay"].prompt
    n_tokens = len(default_model.tokenizer(prompt)["input_ids"])
    assert n_tokens >= 1000


@pytest.mark.slow
@pytest.mark.model
def test_induction_second_copy_has_low_entropy(default_model: Any) -> None:
    ex = examples_by_name()["induction"]
    rec = coilvis.run(ex.prompt, default_model)
    copy = ex.prompt[: len(ex.prompt) // 2]
    n_first = len(default_model.tokenizer(copy)["input_ids"])
    assert rec.seq_len >= 2 * n_first - 2
    h = rec.entropy_in()
    # predictions inside the first copy vs inside the second (a couple of tokens of margin
    # around the seam, where " " + the first word re-tokenises)
    first, second = h[1 : n_first - 1], h[n_first + 2 : -1]
    assert float(np.mean(second)) < 0.4 * float(np.mean(first))


@pytest.mark.slow
@pytest.mark.model
def test_essay_caption_word_pieces_are_near_certain(default_model: Any) -> None:
    rec = coilvis.run(examples_by_name()["spirals_essay"].prompt, default_model, k=3)
    after_arch = [i for i, t in enumerate(rec.tokens[:-1]) if t == " Arch"]
    assert len(after_arch) >= 3 and all(rec.tokens[i + 1] == "im" for i in after_arch)
    assert all(rec.next_prob[i] > 0.9 for i in after_arch)
    surprise = rec.surprisal()[:-1]
    for word in (" motto", " neighbouring", " treats"):
        pos = rec.tokens.index(word)
        assert surprise[pos - 1] > np.percentile(surprise, 95), word


#: (example, a token the caption names, its worst rank at the last position; 1 = top)
CAPTION_CLAIMS = [
    ("eiffel", " Paris", 1),
    ("ioi", " Mary", 1),
    ("code", " factor", 1),
    ("arithmetic", "8", 1),
    ("rhyme", " wall", 2),
    ("french", " Paris", 1),
    ("opposites", " sad", 1),
    ("chat", "The", 1),
]


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.parametrize(("name", "token", "max_rank"), CAPTION_CLAIMS, ids=[c[0] for c in CAPTION_CLAIMS])
def test_captions_match_the_default_model(default_model: Any, name: str, token: str, max_rank: int) -> None:
    rec = coilvis.run(examples_by_name()[name].prompt, default_model, k=5)
    top = [rec.token_text(i) for i in rec.topk_ids[-1]]
    assert token in top[:max_rank], top


@pytest.fixture(scope="module")
def cheap_gallery(tmp_path_factory: pytest.TempPathFactory) -> gallery.GalleryResult:
    pytest.importorskip("transformers")
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.fail("headless Chromium is not installed: apt-get install chromium chromium-driver")
    out = tmp_path_factory.mktemp("gallery")
    return build_gallery(out, prompts_path=PROMPTS, only=CHEAP, progress=False, shared_js=True)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.browser
@pytest.mark.xdist_group("gallery")
def test_cheap_examples_build_with_thumbnails(cheap_gallery: gallery.GalleryResult) -> None:
    from PIL import Image

    result = cheap_gallery
    assert result.ok, result.summary()
    assert [e.name for e in result.built] == CHEAP
    for e in result.built:
        assert e.thumbnail is not None and e.warning is None
        assert (e.sunburst_thumbnail is not None) == (e.name in SUNBURSTS)
        for thumb in (e.thumbnail, e.sunburst_thumbnail):
            if thumb is None:
                continue
            with Image.open(thumb) as img:
                assert max(img.size) <= gallery.THUMB_PX and min(img.size) >= 100
                pixels = np.asarray(img.convert("L"), dtype=np.float32)
            assert pixels.std() > 5  # a drawing, not a blank image
    [library] = (result.out_dir / "pages").glob("bokeh-*.min.js")  # BokehJS once, beside the pages
    assert all(e.page is not None and e.page.stat().st_size < library.stat().st_size for e in result.built)
    skipped = [e for e in result.examples if e.status == "skipped"]
    assert len(skipped) == len(result.examples) - len(CHEAP)
    index = result.index.read_text(encoding="utf-8")
    assert index.count("not built yet") == len(skipped)


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.browser
@pytest.mark.xdist_group("gallery")
def test_gallery_pages_render_in_chromium(cheap_gallery: gallery.GalleryResult) -> None:
    from browser import BrowserSession

    session = BrowserSession()
    try:
        for e in cheap_gallery.built:
            assert e.page is not None
            loaded = session.open(e.page, viewport=(1400, 3400))  # tall enough for a sunburst below the lens
            assert loaded.errors == [], e.name
            assert loaded.external_requests == [], e.name
            [library] = [url for url in loaded.requests if url.endswith(".min.js")]  # the shared BokehJS, from disk
            assert library.startswith(e.page.parent.resolve().as_uri() + "/bokeh-"), library
            n_roots = loaded.evaluate("() => Bokeh.documents[0].roots().length")
            assert n_roots >= 1
            assert loaded.has_model("sunburst_wedges") == (e.name in SUNBURSTS), e.name
            if e.name in SUNBURSTS:
                _tap_the_top_branch(loaded, e)
            loaded.close()

        # the index: no Bokeh, no scripts; every thumbnail loads, every link is a built page
        context = session.browser.new_context(viewport={"width": 1300, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("request", lambda req: requests.append(req.url))
        page.goto(cheap_gallery.index.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("() => Array.from(document.images, (i) => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        links = page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), (a) => a.getAttribute('href'))")
        context.close()
    finally:
        session.close()
    assert errors == []
    assert all(url.startswith("file:") for url in requests)
    assert sorted(src for src, _, _ in images) == sorted([f"thumbs/{n}.png" for n in CHEAP] + [f"thumbs/{n}.sunburst.png" for n in SUNBURSTS])
    assert all(complete and width > 0 for _, complete, width in images)
    assert {href for href in links} == {f"pages/{n}.html" for n in CHEAP}


def _tap_the_top_branch(loaded: Any, e: gallery.ExampleResult) -> None:
    """On a built page, the sunburst draws its tree and a tap on the likeliest next token zooms into it."""
    assert e.tree is not None
    tree = coilvis.Tree.load(e.tree)
    start = np.asarray(loaded.column("sunburst_source", "start_angle"), dtype=np.float64)
    end = np.asarray(loaded.column("sunburst_source", "end_angle"), dtype=np.float64)
    np.testing.assert_allclose((end - start)[1:] / (2 * math.pi), tree.path_prob[1:], atol=1e-5)
    shown = loaded.view_indices("sunburst_wedges")
    assert shown == [i for i in range(tree.n_nodes) if end[i] > start[i]] and len(shown) >= 0.9 * tree.n_nodes
    top = int(tree.children(0)[0])  # most likely first
    mid = (start[top] + end[top]) / 2
    r = (float(loaded.column("sunburst_source", "inner_radius")[top]) + float(loaded.column("sunburst_source", "outer_radius")[top])) / 2
    loaded.evaluate("() => Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('sunburst_figure')).canvas_view.el.scrollIntoView()")
    loaded.click_data("sunburst_figure", r * math.cos(mid), r * math.sin(mid))
    assert loaded.column("sunburst_state", "focus") == [top], e.name
    below = {i for i in range(tree.n_nodes) if top in tree.path(i).tolist()}  # the top branch and its subtree
    zoomed = loaded.view_indices("sunburst_wedges")
    assert zoomed[0] == top and set(zoomed) <= below and set(tree.children(top).tolist()) <= set(zoomed)
    assert loaded.errors == [], e.name


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("gallery")
def test_the_factual_sunburst_has_one_dominant_branch_and_the_open_ended_one_spreads(cheap_gallery: gallery.GalleryResult) -> None:
    by_name = {e.name: e for e in cheap_gallery.built}
    trees = {n: coilvis.Tree.load(by_name[n].tree) for n in SUNBURSTS}
    assert all((t.depth_limit, t.k, t.min_prob) == (3, 5, 0.0) for t in trees.values())
    factual, story = (_first_ring(trees[n]) for n in SUNBURSTS)
    assert factual[0] > 0.55 and factual[0] > 5 * factual[1]  # " Paris": about 70%, the runner-up a few percent
    assert story[0] < 0.25 and story.sum() < 0.6  # no next token holds more than a quarter; most mass is in none of the top 5
    assert by_name["eiffel"].sunburst_caption == mass_caption(trees["eiffel"])
    assert by_name["eiffel"].sunburst_caption.startswith("One branch takes")
    assert by_name["story"].sunburst_caption.startswith("The mass spreads")
    index = cheap_gallery.index.read_text(encoding="utf-8")
    for n in SUNBURSTS:
        assert html.escape(by_name[n].sunburst_caption or "") in index


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.xdist_group("gallery")
def test_rebuild_of_the_real_gallery_never_loads_the_model(
    cheap_gallery: gallery.GalleryResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    import coilvis.models

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model was loaded or run on a cached rebuild")

    monkeypatch.setattr(coilvis.models, "load_model", refuse)
    monkeypatch.setattr(coilvis.models, "resolve_model", refuse)
    monkeypatch.setattr(coilvis, "run", refuse)
    monkeypatch.setattr(coilvis, "run_many", refuse)
    monkeypatch.setattr(coilvis, "tree", refuse)
    again = build_gallery(cheap_gallery.out_dir, prompts_path=PROMPTS, only=CHEAP, progress=False, thumbnails=False)
    assert again.ok, again.summary()
    assert [e.cached for e in again.built] == [True] * len(CHEAP)
    assert [e.name for e in again.built if e.tree_cached] == SUNBURSTS
    assert again.model_s == 0
    # thumbnails from the first build are still shown
    assert all(e.thumbnail is not None for e in again.built)
    assert [e.name for e in again.built if e.sunburst_thumbnail is not None] == SUNBURSTS
