"""The continuation Tree (coilvis.continuations) and its file (coilvis.continuations_format).

The Tree's checks, one named case each; its layout on the unit interval; saving and
loading (random trees round-trip exactly, the same bytes in any process, loaded without
torch); damaged or hostile files refused by a RecordFormatError naming the path.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coilvis.continuations import OTHER_LABEL, Tree, join_texts, level_sizes, max_tree_nodes
from coilvis.continuations_format import MAX_NODES, SUFFIX
from coilvis.errors import CoilvisFileNotFoundError, CoilvisTypeError, CoilvisValueError, RecordFormatError

HOSTILE = '<img src=x onerror="window.__pwned=1">'


def small_tree(**changes: Any) -> Tree:
    """The prompt "The sky", two tokens kept at depth 1, one of them expanded."""
    fields: dict[str, Any] = dict(
        parent=[-1, 0, 0, 0, 1, 1, 1],
        token_id=[-1, 5, 7, -1, 3, 9, -1],
        depth=[0, 1, 1, 1, 2, 2, 2],
        cond_prob=[1.0, 0.6, 0.3, 0.1, 0.5, 0.25, 0.25],
        path_prob=[1.0, 0.6, 0.3, 0.1, 0.3, 0.15, 0.15],
        entropy=[np.nan, 0.9, 0.9, 0.9, 1.2, 1.2, 1.2],
        is_other=[False, False, False, True, False, False, True],
        prompt_ids=[1, 2],
        vocab={1: "The", 2: " sky", 3: " blue", 5: " is", 7: " was", 9: HOSTILE},
        d_vocab=12,
        k=2,
        depth_limit=2,
        model_name="tiny",
        prompt="The sky",
        extra={"note": "ünïcode ✓"},
    )
    fields.update(changes)
    return Tree(**fields)


# ------------------------------------------------------------------ the Tree


def test_reading_a_tree() -> None:
    t = small_tree()
    assert t.n_nodes == 7
    assert t.children(0).tolist() == [1, 2, 3] and t.children(1).tolist() == [4, 5, 6] and t.children(4).size == 0
    assert t.path(5).tolist() == [1, 5] and t.path(0).size == 0
    assert t.continuation(4) == " is blue" and t.continuation(6) == " is" and t.continuation(0) == ""
    assert t.texts == ("", " is", " was", "", " blue", HOSTILE, "")
    assert t.prompt_tokens == ("The", " sky")
    assert t.token_text(11) == "<id 11>"
    assert "n_nodes=7" in repr(t) and OTHER_LABEL == "(other tokens)"
    with pytest.raises(CoilvisValueError, match="node: 7 is out of range"):
        t.children(7)


def test_spans_lay_children_side_by_side_inside_their_parent() -> None:
    x0, x1 = small_tree().spans()
    np.testing.assert_allclose(x0, [0.0, 0.0, 0.6, 0.9, 0.0, 0.3, 0.45], atol=1e-7)
    np.testing.assert_allclose(x1, [1.0, 0.6, 0.9, 1.0, 0.3, 0.45, 0.6], atol=1e-7)


def test_join_texts_makes_split_characters_whole() -> None:
    assert join_texts(["\\xe2\\x80", "\\x99s"]) == "\u2019s"
    assert join_texts(["a\\xff", "b"]) == "a\\xffb"  # never valid UTF-8: stays escaped
    assert join_texts(["\\x41"]) == "\\x41"  # below 0x80 an escape is typed text, left alone
    t = small_tree(vocab={1: "The", 2: " sky", 3: "\\x99s", 5: "\\xe2\\x80", 7: "x", 9: "y"})
    assert t.continuation(4) == "\u2019s"


def test_level_sizes() -> None:
    assert level_sizes(3, 5) == [1, 5, 25, 125] and max_tree_nodes(3, 5) == 156
    assert level_sizes(3, 10, 0.05) == [1, 10, 20, 20]
    assert max_tree_nodes(1, 1) == 2


_N = 7
BAD_TREES = [
    pytest.param({"parent": [-1, 0, 0, 0, 1, 1]}, CoilvisValueError, "token_id: expected 6 entries", id="lengths"),
    pytest.param({"parent": [[-1, 0, 0, 0, 1, 1, 1]]}, CoilvisValueError, "parent: expected 1 dimension", id="2-d"),
    pytest.param({"parent": ["a"] * _N}, CoilvisTypeError, "parent: expected an array of numbers", id="strings"),
    pytest.param({"parent": [0, 0, 0, 0, 1, 1, 1]}, CoilvisValueError, "node 0 must be the root", id="root-parent"),
    pytest.param({"parent": [-1, 0, 0, 0, 5, 1, 1]}, CoilvisValueError, "node 4 has parent 5; each node's parent is an earlier node", id="later-parent"),
    pytest.param({"parent": [-1, 0, 1, 0, 1, 1, 1], "depth": [0, 1, 2, 1, 2, 2, 2]}, CoilvisValueError, "breadth-first", id="not-breadth-first"),
    pytest.param({"depth": [0, 1, 1, 1, 2, 3, 2]}, CoilvisValueError, "depth: node 5 has depth 3, its parent 1", id="depth"),
    pytest.param({"depth_limit": 1}, CoilvisValueError, "deeper than depth_limit=1", id="depth-limit"),
    pytest.param({"parent": [-1, 0, 0, 0, 3, 3, 3], "token_id": [-1, 5, 7, -1, 3, 9, -1]}, CoilvisValueError, "node 4 has an 'other' node as its parent", id="other-parent"),
    pytest.param({"is_other": [False, False, True, True, False, False, True], "token_id": [-1, 5, -1, -1, 3, 9, -1]}, CoilvisValueError, "node 2 is an 'other' node but not its parent's last child", id="other-first"),
    pytest.param({"token_id": [-1, 5, 12, -1, 3, 9, -1]}, CoilvisValueError, r"node 2 holds 12; .*d_vocab=12", id="token-range"),
    pytest.param({"token_id": [-1, 5, 7, 4, 3, 9, -1]}, CoilvisValueError, "token_id: node 3 holds 4", id="other-token"),
    pytest.param({"token_id": [0, 5, 7, -1, 3, 9, -1]}, CoilvisValueError, "node 0 must be the root", id="root-token"),
    pytest.param({"cond_prob": [1.0, 0.6, 1.3, 0.1, 0.5, 0.25, 0.25]}, CoilvisValueError, r"cond_prob: node 2 holds 1.3", id="prob-above-one"),
    pytest.param({"path_prob": [1.0, 0.6, np.nan, 0.1, 0.3, 0.15, 0.15]}, CoilvisValueError, "path_prob: node 2 holds nan", id="prob-nan"),
    pytest.param({"path_prob": [0.9, 0.6, 0.3, 0.1, 0.3, 0.15, 0.15]}, CoilvisValueError, "the root holds all the mass", id="root-mass"),
    pytest.param({"entropy": [np.nan, 0.9, -0.1, 0.9, 1.2, 1.2, 1.2]}, CoilvisValueError, "entropy: node 2 holds -0.1", id="entropy"),
    pytest.param({"entropy": [np.nan, 0.9, np.inf, 0.9, 1.2, 1.2, 1.2]}, CoilvisValueError, "entropy: node 2", id="entropy-inf"),
    pytest.param({"prompt_ids": [1, 99]}, CoilvisValueError, r"prompt_ids: 99 is outside \[0, d_vocab=12\)", id="prompt-ids"),
    pytest.param({"vocab": {1: "a", 40: "b"}}, CoilvisValueError, "vocab: holds id 40", id="vocab-id"),
    pytest.param({"vocab": [("a", 1)]}, CoilvisTypeError, "vocab: expected a dict", id="vocab-type"),
    pytest.param({"vocab": {1: b"a"}}, CoilvisTypeError, "vocab text: expected a str", id="vocab-bytes"),
    pytest.param({"d_vocab": 0}, CoilvisValueError, "d_vocab:", id="d_vocab"),
    pytest.param({"k": 0}, CoilvisValueError, "k:", id="k"),
    pytest.param({"min_prob": 1.0}, CoilvisValueError, r"min_prob: expected a number in \[0, 1\)", id="min_prob"),
    pytest.param({"min_prob": "0"}, CoilvisTypeError, "min_prob:", id="min_prob-type"),
    pytest.param({"prompt": None}, CoilvisTypeError, "prompt: expected a str", id="prompt"),
    pytest.param({"extra": []}, CoilvisTypeError, "extra: expected a dict", id="extra"),
]


@pytest.mark.parametrize("changes, error, match", BAD_TREES)
def test_bad_trees_are_refused(changes: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        small_tree(**changes)


# ------------------------------------------------------------------ save and load


def assert_same_tree(a: Tree, b: Tree) -> None:
    for f in dataclasses.fields(Tree):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    """Random valid trees: random branching and depth, "other" nodes, any text."""
    depth_limit = draw(st.integers(1, 4))
    d_vocab = draw(st.integers(1, 50))
    parent, token, depth, cond, path, entropy, other = [-1], [-1], [0], [1.0], [1.0], [np.nan], [False]
    frontier = [0]
    for d in range(1, depth_limit + 1):
        expanded = []
        for node in frontier:
            if node and not draw(st.booleans()):
                continue  # a leaf above the depth limit (its children pruned)
            raw = draw(st.lists(st.floats(0, 1, width=32), max_size=3))
            share = draw(st.floats(0, 1))
            probs = [p / sum(raw) * share for p in raw] if sum(raw) > 0 else [0.0] * len(raw)
            h = draw(st.floats(0, 10, width=32))
            for j, p in enumerate([*probs, max(0.0, 1.0 - sum(probs))]):
                parent.append(node)
                depth.append(d)
                cond.append(min(p, 1.0))
                path.append(path[node] * cond[-1])
                entropy.append(h)
                other.append(j == len(probs))
                token.append(-1 if other[-1] else draw(st.integers(0, d_vocab - 1)))
                if not other[-1]:
                    expanded.append(len(parent) - 1)
        frontier = expanded
    ids = sorted({t for t in token if t >= 0} | {0})
    texts = draw(st.lists(st.text(max_size=6), min_size=len(ids), max_size=len(ids)))
    return Tree(
        parent=parent, token_id=token, depth=depth, cond_prob=cond, path_prob=path, entropy=entropy, is_other=other,
        prompt_ids=draw(st.lists(st.integers(0, d_vocab - 1), max_size=5)), vocab=dict(zip(ids, texts)), d_vocab=d_vocab,
        k=draw(st.integers(1, 5)), depth_limit=depth_limit, min_prob=draw(st.sampled_from([0.0, 0.01, 0.5])),
        model_name=draw(st.text(max_size=10)), prompt=draw(st.text(max_size=20)), extra={"n": draw(st.integers())},
    )


@settings(max_examples=40, deadline=None)
@given(t=trees())
def test_random_trees_round_trip(tmp_path_factory: pytest.TempPathFactory, t: Tree) -> None:
    folder = tmp_path_factory.mktemp("trees")
    path = t.save(folder / f"t{SUFFIX}")
    back = Tree.load(path)
    assert_same_tree(t, back)
    assert back.save(folder / "again.coiltree").read_bytes() == path.read_bytes()
    x0, x1 = back.spans()
    assert np.all(x0 >= -1e-6) and np.all(x1 <= 1 + 1e-5)


def test_the_same_tree_gives_the_same_bytes_in_another_process(tmp_path: Path) -> None:
    here = small_tree().save(tmp_path / "here.coiltree")
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); sys.modules['torch'] = None\n"
        "from test_continuations import small_tree\nfrom coilvis.continuations import Tree\n"
        "small_tree().save(sys.argv[1]); Tree.load(sys.argv[1]); print('ok')"
    )
    there = tmp_path / "there.coiltree"
    out = subprocess.run([sys.executable, "-c", code, str(there), str(Path(__file__).parent)], capture_output=True, text=True,
                         env={"TZ": "Pacific/Kiritimati", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert there.read_bytes() == here.read_bytes()


def test_hostile_and_unicode_text_round_trips(tmp_path: Path) -> None:
    t = small_tree(prompt=HOSTILE + "\x00\ud800", model_name="m\u202e", vocab={1: "\ud83d", 2: "", 3: "\n", 5: "$$x$$", 7: "\\x80", 9: HOSTILE})
    assert_same_tree(t, Tree.load(t.save(tmp_path / "x.coiltree")))


# ------------------------------------------------------------------ damaged and hostile files


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _meta_edit(**scalars: Any) -> Any:
    def edit(members: dict[str, bytes]) -> None:
        meta = json.loads(members["meta.json"])
        meta["scalars"].update(scalars)
        members["meta.json"] = json.dumps(meta).encode()

    return edit


def _set(name: str, value: Any) -> Any:
    def edit(members: dict[str, bytes]) -> None:
        members[name] = value if isinstance(value, bytes) else _npy(value)

    return edit


def _drop(name: str) -> Any:
    return lambda members: members.pop(name)


def _top(key: str, value: Any) -> Any:
    def edit(members: dict[str, bytes]) -> None:
        meta = json.loads(members["meta.json"])
        meta[key] = value
        members["meta.json"] = json.dumps(meta).encode()

    return edit


DAMAGE = [
    pytest.param(_top("format", "coilvis.record"), "is not a coilvis tree file", id="a-record"),
    pytest.param(_top("version", 2), "has tree format version 2, newer than this coilvis reads", id="newer"),
    pytest.param(_top("version", 0), "version 0 does not exist", id="version-0"),
    pytest.param(_top("version", "1"), "is not an integer", id="version-str"),
    pytest.param(_top("scalars", []), "needs the objects 'scalars' and 'strings'", id="scalars"),
    pytest.param(_meta_edit(n_nodes=MAX_NODES + 1), "scalars.n_nodes = 16777217 is more than this coilvis reads", id="huge"),
    pytest.param(_meta_edit(n_nodes=0), "scalars.n_nodes", id="no-nodes"),
    pytest.param(_meta_edit(n_nodes=8), r"member 'parent.npy' has shape \(7,\), expected \(n_nodes=8\)", id="count"),
    pytest.param(_meta_edit(depth=10**9), "scalars.depth", id="depth-huge"),
    pytest.param(_meta_edit(min_prob=1), r"min_prob must be a number in \[0, 1\)", id="min-prob"),
    pytest.param(_meta_edit(k=True), "scalars.k", id="k-bool"),
    pytest.param(_meta_edit(prompt=None), "scalars.prompt must be a string", id="prompt"),
    pytest.param(_meta_edit(d_vocab=8), r"token_id.npy' holds 9 at flat index 5, outside \[-1, d_vocab=8\)", id="d_vocab"),
    pytest.param(_drop("entropy.npy"), "member 'entropy.npy' is missing", id="missing"),
    pytest.param(_set("extra.npy", np.zeros(3)), "unexpected member 'extra.npy'", id="extra-member"),
    pytest.param(_set("parent.npy", np.zeros(7, dtype=np.int64)), "has dtype <i8, expected <i4", id="dtype"),
    pytest.param(_set("parent.npy", np.array([-1, 0, 0, 0, 1, 1, 7], dtype=np.int32)), r"outside \[-1, n_nodes=7\)", id="parent-range"),
    pytest.param(_set("parent.npy", np.array([-1, 0, 0, 0, 1, 2, 1], dtype=np.int32)), "breadth-first", id="structure"),
    pytest.param(_set("is_other.npy", np.array([0, 0, 0, 2, 0, 0, 1], dtype=np.uint8)), r"is_other.npy' holds 2", id="bool"),
    pytest.param(_set("cond_prob.npy", np.array([1, 0.6, 0.3, 0.1, 0.5, 0.25, 7], dtype=np.float32)), "cond_prob: node 6 holds 7", id="prob"),
    pytest.param(_set("vocab_ids.npy", np.array([1, 1, 3, 5, 7, 9])), "holds a value twice", id="vocab-twice"),
    pytest.param(_set("meta.json", b"{not json"), "JSONDecodeError", id="json"),
    pytest.param(_set("depth.npy", b"\x93NUMPY garbage"), r"member 'depth.npy' has .npy version", id="npy-header"),
]


@pytest.mark.parametrize("damage, match", DAMAGE)
def test_damaged_files_are_refused_naming_the_path(tmp_path: Path, damage: Any, match: str) -> None:
    members = _members(small_tree().save(tmp_path / "good.coiltree"))
    damage(members)
    bad = _write(tmp_path / "bad.coiltree", members)
    with pytest.raises(RecordFormatError, match=match) as info:
        Tree.load(bad)
    assert str(bad) in str(info.value)


def test_flipped_bytes_and_other_files_are_refused(tmp_path: Path) -> None:
    good = small_tree().save(tmp_path / "good.coiltree").read_bytes()
    for at in range(0, len(good), max(1, len(good) // 40)):
        data = bytearray(good)
        data[at] ^= 0xFF
        bad = tmp_path / f"flip{at}.coiltree"
        bad.write_bytes(bytes(data))
        try:
            Tree.load(bad)  # a flip in a zip's spare bytes may change nothing read
        except RecordFormatError as exc:
            assert str(bad) in str(exc)
    (tmp_path / "text.coiltree").write_text("hello")
    with pytest.raises(RecordFormatError, match="text.coiltree"):
        Tree.load(tmp_path / "text.coiltree")
    with pytest.raises(CoilvisFileNotFoundError, match="path: no tree file"):
        Tree.load(tmp_path / "none.coiltree")
    with pytest.raises(CoilvisValueError, match="is a folder"):
        Tree.load(tmp_path)
    with pytest.raises(CoilvisTypeError, match="path:"):
        Tree.load(3)
    with pytest.raises(CoilvisTypeError, match="extra: cannot be saved as JSON"):
        small_tree(extra={"x": object()}).save(tmp_path / "x.coiltree")
