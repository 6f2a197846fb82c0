"""The continuation Tree: where a model's probability mass goes after a prompt, token by token, as plain numpy.

A :class:`Tree` is what :func:`coilvis.tree` computes and what the sunburst
(:func:`coilvis.sunburst`) and the flame graph (:func:`coilvis.flame`) draw. Node 0 is
the root, the prompt itself. Each other node is a token the model could write next,
after the tokens on the path from the root to it, or an "other" node holding the mass of
every token its parent's distribution gave outside its kept children.

For a node ``i`` with parent ``p``: ``cond_prob[i]`` is the probability of its token
given the prompt and the path to ``p`` (for an "other" node, the mass of every token not
kept), ``path_prob[i] = path_prob[p] * cond_prob[i]`` (the product along the path), and
``entropy[i]`` is the entropy of ``p``'s next-token distribution, the one the token was
chosen from. So a parent's children and its "other" node hold exactly its mass:
``sum(path_prob[children]) = path_prob[p]``.

Nodes are in breadth-first order: by depth, and within a depth by parent; each
expanded node's children come most likely first, its "other" node last. Like a
:class:`~coilvis.record.Record`, a tree holds no torch tensor and no model: it saves
to one versioned file (:meth:`Tree.save`, :mod:`coilvis.continuations_format`) and
loads where torch is not installed.

>>> import numpy as np
>>> t = Tree(parent=[-1, 0, 0, 0], token_id=[-1, 5, 7, -1], depth=[0, 1, 1, 1],
...          cond_prob=[1.0, 0.6, 0.3, 0.1], path_prob=[1.0, 0.6, 0.3, 0.1],
...          entropy=[np.nan, 0.9, 0.9, 0.9], is_other=[False, False, False, True],
...          prompt_ids=[1, 2], vocab={1: "The", 2: " sky", 5: " is", 7: " was"}, d_vocab=10, k=2, depth_limit=1)
>>> t.n_nodes, t.children(0).tolist(), t.continuation(2)
(4, [1, 2, 3], ' was')
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coilvis._version import __version__
from coilvis.continuations_format import FORMAT_NAME, FORMAT_VERSION, read_tree_file, write_tree_file
from coilvis.errors import CoilvisFileNotFoundError, CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.files import as_path, atomic_writer, check_output_path
from coilvis.record_format import Contents, Source, encode_meta

__all__ = ["Tree", "OTHER_LABEL", "join_texts", "level_sizes", "max_tree_nodes"]

#: What an "other" node is called where a token's text would be.
OTHER_LABEL = "(other tokens)"

_ARRAYS = ("parent", "token_id", "depth", "cond_prob", "path_prob", "entropy", "is_other")


def max_tree_nodes(depth: int, k: int, min_prob: float = 0.0) -> int:
    """How many nodes a tree of this ``depth`` and ``k`` holds at most, the root included
    and "other" nodes not: ``1 + k + k**2 + ... + k**depth``, where ``min_prob > 0``
    caps each depth at ``floor(1 / min_prob)`` nodes (their path probabilities sum to at
    most 1, each is at least ``min_prob``).

    >>> max_tree_nodes(3, 5), max_tree_nodes(4, 8), max_tree_nodes(6, 10, 0.01)
    (156, 4681, 511)
    """
    return sum(level_sizes(depth, k, min_prob))


def level_sizes(depth: int, k: int, min_prob: float = 0.0) -> list[int]:
    """The most nodes at each depth ``0..depth`` (see :func:`max_tree_nodes`).

    >>> level_sizes(4, 10, 0.01)
    [1, 10, 100, 100, 100]
    """
    cap = math.floor(1 / min_prob) if min_prob > 0 else None
    sizes = [1]
    for _ in range(depth):
        level = sizes[-1] * k
        sizes.append(min(level, cap) if cap is not None else level)
    return sizes


_BYTE_ESCAPES = re.compile(r"(?:\\x[89a-fA-F][0-9a-fA-F])+")


def join_texts(texts: Iterable[str]) -> str:
    r"""Token texts joined into one text, characters split between tokens made whole again.

    >>> join_texts([" caf", "\\xc3", "\\xa9", "\\xe2\\x80"])
    ' café\\xe2\\x80'
    """
    joined = "".join(texts)
    return _BYTE_ESCAPES.sub(lambda m: bytes.fromhex(m.group(0).replace("\\x", "")).decode("utf-8", "backslashreplace"), joined)


def _array(value: Any, dtype: Any, name: str) -> np.ndarray:
    try:
        out = np.ascontiguousarray(np.asarray(value), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise CoilvisTypeError(f"{name}: expected an array of numbers ({exc})") from None
    if out.ndim != 1:
        raise CoilvisValueError(f"{name}: expected 1 dimension, got shape {out.shape}")
    return out


@dataclass(frozen=True, eq=False)
class Tree:
    """A model's likely continuations of a prompt, with where its probability mass goes.

    Attributes:
        parent: (n_nodes,) int32 index of each node's parent (-1 at the root, node 0);
            a parent always comes before its children.
        token_id: (n_nodes,) int64 the node's token (-1 at the root and at "other" nodes).
        depth: (n_nodes,) int32 tokens after the prompt (0 at the root).
        cond_prob: (n_nodes,) float32 probability given the prompt and the path to the
            parent, in [0, 1] (1 at the root; an "other" node: the mass not kept).
        path_prob: (n_nodes,) float32 probability of the whole path from the prompt:
            the product of ``cond_prob`` along it.
        entropy: (n_nodes,) float32 entropy in nats of the parent's next-token
            distribution, the one the node was chosen from (NaN at the root).
        is_other: (n_nodes,) bool whether the node holds a parent's mass outside its
            kept children (one per expanded node, its last child).
        prompt_ids: (n_prompt,) int64 the prompt's token ids.
        vocab: token id -> raw text, for every id the tree mentions (untrusted text:
            escape before display, see :func:`coilvis.tokens.display`).
        d_vocab: size of the model's output vocabulary.
        k: most children kept per node (top-k of its distribution).
        depth_limit: the depth the tree was grown to (``coilvis.tree(depth=...)``).
        min_prob: path probability below which a token went to its parent's "other" node.
        model_name: a name for the model (free text).
        prompt: the prompt text.
        extra: JSON-serialisable metadata (device, dtype, timings, ...).
    """

    parent: np.ndarray
    token_id: np.ndarray
    depth: np.ndarray
    cond_prob: np.ndarray
    path_prob: np.ndarray
    entropy: np.ndarray
    is_other: np.ndarray
    prompt_ids: np.ndarray
    vocab: dict[int, str]
    d_vocab: int
    k: int
    depth_limit: int
    min_prob: float = 0.0
    model_name: str = ""
    prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in (("parent", np.int32), ("token_id", np.int64), ("depth", np.int32), ("cond_prob", np.float32),
                            ("path_prob", np.float32), ("entropy", np.float32), ("is_other", np.bool_)):
            object.__setattr__(self, name, _array(getattr(self, name), dtype, name))
        object.__setattr__(self, "prompt_ids", _array(self.prompt_ids, np.int64, "prompt_ids"))
        if not isinstance(self.vocab, dict):
            raise CoilvisTypeError(f"vocab: expected a dict of token id -> text, got {type(self.vocab).__name__}")
        object.__setattr__(self, "vocab", {check_int("vocab id", i, minimum=0): _text(v, "vocab text") for i, v in self.vocab.items()})
        object.__setattr__(self, "d_vocab", check_int("d_vocab", self.d_vocab, minimum=1))
        object.__setattr__(self, "k", check_int("k", self.k, minimum=1))
        object.__setattr__(self, "depth_limit", check_int("depth_limit", self.depth_limit, minimum=1))
        object.__setattr__(self, "min_prob", check_float("min_prob", self.min_prob, minimum=0.0))
        if self.min_prob >= 1:
            raise CoilvisValueError(f"min_prob: expected a number in [0, 1), got {self.min_prob}")
        object.__setattr__(self, "model_name", _text(self.model_name, "model_name"))
        object.__setattr__(self, "prompt", _text(self.prompt, "prompt"))
        if not isinstance(self.extra, dict):
            raise CoilvisTypeError(f"extra: expected a dict, got {type(self.extra).__name__}")
        self._check_shape()
        self._check_values()

    def _check_shape(self) -> None:
        """Every array one entry per node; a parent before its children, one level up; "other" nodes are leaves."""
        n = self.parent.shape[0]
        if n < 1:
            raise CoilvisValueError("parent: a tree needs at least its root")
        for name in _ARRAYS[1:]:
            if getattr(self, name).shape != (n,):
                raise CoilvisValueError(f"{name}: expected {n} entries (one per node), got {getattr(self, name).shape[0]}")
        if self.parent[0] != -1 or self.depth[0] != 0 or self.token_id[0] != -1 or self.is_other[0]:
            raise CoilvisValueError("parent: node 0 must be the root (parent -1, depth 0, token -1, not 'other')")
        child = np.arange(1, n)
        bad = np.flatnonzero((self.parent[1:] < 0) | (self.parent[1:] >= child))
        if bad.size:
            i = int(bad[0]) + 1
            raise CoilvisValueError(f"parent: node {i} has parent {self.parent[i]}; each node's parent is an earlier node")
        bad = np.flatnonzero(np.diff(self.parent[1:]) < 0)
        if bad.size:
            i = int(bad[0]) + 2
            raise CoilvisValueError(
                f"parent: node {i} (parent {self.parent[i]}) comes after a child of {self.parent[i - 1]}; "
                "nodes go in breadth-first order, each parent's children together"
            )
        bad = np.flatnonzero(self.depth[1:] != self.depth[self.parent[1:]] + 1)
        if bad.size:
            i = int(bad[0]) + 1
            raise CoilvisValueError(f"depth: node {i} has depth {self.depth[i]}, its parent {self.depth[self.parent[i]]}")
        if int(self.depth.max()) > self.depth_limit:
            raise CoilvisValueError(f"depth: a node has depth {int(self.depth.max())}, deeper than depth_limit={self.depth_limit}")
        bad = np.flatnonzero(self.is_other[self.parent[1:]])
        if bad.size:
            raise CoilvisValueError(f"is_other: node {int(bad[0]) + 1} has an 'other' node as its parent")
        bad = np.flatnonzero(self.is_other[1:-1] & (self.parent[1:-1] == self.parent[2:]))
        if bad.size:
            raise CoilvisValueError(f"is_other: node {int(bad[0]) + 1} is an 'other' node but not its parent's last child")

    def _check_values(self) -> None:
        """Token ids in range (-1 exactly at the root and "other" nodes), probabilities in [0, 1], entropies >= 0."""
        n = self.n_nodes
        token_less = self.is_other | (np.arange(n) == 0)
        bad = np.flatnonzero(np.where(token_less, self.token_id != -1, (self.token_id < 0) | (self.token_id >= self.d_vocab)))
        if bad.size:
            i = int(bad[0])
            raise CoilvisValueError(
                f"token_id: node {i} holds {self.token_id[i]}; expected -1 at the root and 'other' nodes, "
                f"else an id in [0, d_vocab={self.d_vocab})"
            )
        for name in ("cond_prob", "path_prob"):
            values = getattr(self, name)
            bad = np.flatnonzero(~((values >= 0) & (values <= 1)))
            if bad.size:
                raise CoilvisValueError(f"{name}: node {int(bad[0])} holds {float(values[bad[0]]):g}, expected a probability in [0, 1]")
        if self.cond_prob[0] != 1 or self.path_prob[0] != 1:
            raise CoilvisValueError("path_prob: the root holds all the mass (cond_prob and path_prob 1 at node 0)")
        bad = np.flatnonzero(~(np.isfinite(self.entropy[1:]) & (self.entropy[1:] >= 0)))
        if bad.size:
            i = int(bad[0]) + 1
            raise CoilvisValueError(f"entropy: node {i} holds {float(self.entropy[i]):g}, expected a finite entropy >= 0 (nats)")
        bad = np.flatnonzero((self.prompt_ids < 0) | (self.prompt_ids >= self.d_vocab))
        if bad.size:
            raise CoilvisValueError(f"prompt_ids: {self.prompt_ids[bad[0]]} is outside [0, d_vocab={self.d_vocab})")
        if any(i >= self.d_vocab for i in self.vocab):
            raise CoilvisValueError(f"vocab: holds id {max(self.vocab)}, outside [0, d_vocab={self.d_vocab})")

    # ------------------------------------------------------------------ reading the tree
    @property
    def n_nodes(self) -> int:
        """Number of nodes, the root and the "other" nodes included."""
        return int(self.parent.shape[0])

    def token_text(self, token_id: int) -> str:
        """Raw text of a token id (``"<id N>"`` when the tree has no string for it)."""
        token_id = check_int("token_id", token_id)
        return self.vocab.get(token_id, f"<id {token_id}>")

    @property
    def texts(self) -> tuple[str, ...]:
        """(n_nodes,) raw text of each node's token ("" at the root and "other" nodes)."""
        return tuple("" if t < 0 else self.token_text(t) for t in self.token_id.tolist())

    @property
    def prompt_tokens(self) -> tuple[str, ...]:
        """(n_prompt,) raw text of the prompt's tokens."""
        return tuple(self.token_text(t) for t in self.prompt_ids.tolist())

    def _node(self, node: Any) -> int:
        node = check_int("node", node)
        if not -self.n_nodes <= node < self.n_nodes:
            raise CoilvisValueError(f"node: {node} is out of range [0, {self.n_nodes})")
        return node % self.n_nodes

    def children(self, node: int) -> np.ndarray:
        """Indices of a node's children (its "other" node last), in order."""
        return np.flatnonzero(self.parent == self._node(node))

    def path(self, node: int) -> np.ndarray:
        """Indices of the nodes from the root's first child down to ``node`` (empty for the root)."""
        i, out = self._node(node), []
        while i > 0:
            out.append(i)
            i = int(self.parent[i])
        return np.array(out[::-1], dtype=np.int64)

    def continuation(self, node: int) -> str:
        """Raw text written after the prompt on the path to ``node`` (an "other" node: up to its parent).

        The tokens' texts joined, with a character split between tokens joined again:
        each token shows such a part as ``\\xNN`` escapes (see
        :func:`coilvis.tokens.token_text`), and escapes that make whole UTF-8 characters
        together become those characters; the rest stay escapes.
        """
        return join_texts(self.token_text(int(self.token_id[i])) for i in self.path(node) if not self.is_other[i])

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each node lies on the unit interval of the root's mass, as the views lay it out.

        Returns:
            ``(x0, x1)``, each (n_nodes,) float64: a node covers ``[x0, x1)``, of width
            its path probability, its children side by side from its own start, in
            order. The root covers ``[0, 1)``.
        """
        x0 = np.zeros(self.n_nodes, dtype=np.float64)
        mass = self.path_prob.astype(np.float64)
        if self.n_nodes > 1:
            parents = self.parent[1:].astype(np.int64)
            # within each parent's children (contiguous in breadth-first order), the mass before each
            before = np.cumsum(mass[1:]) - mass[1:]
            first = np.r_[True, parents[1:] != parents[:-1]]
            group_start = np.maximum.accumulate(np.where(first, np.arange(parents.size), 0))
            offset = before - before[group_start]
            for depth in range(1, int(self.depth.max()) + 1):  # parents are placed before their children
                at = np.flatnonzero(self.depth[1:] == depth)
                x0[at + 1] = x0[parents[at]] + offset[at]
        return x0, x0 + mass

    def __repr__(self) -> str:
        return (
            f"Tree(model={self.model_name!r}, n_nodes={self.n_nodes}, depth={self.depth_limit}, k={self.k}, "
            f"min_prob={self.min_prob:g}, d_vocab={self.d_vocab})"
        )

    # ------------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the tree to ``path`` (see :mod:`coilvis.continuations_format`).

        Like :meth:`Record.save <coilvis.record.Record.save>`: atomic (a crash never
        leaves a half-written file over a good one), missing folders created, the same
        tree always the same bytes, nothing pickled.

        Args:
            path: the file to write; ``.coiltree`` by convention (any name works).

        Returns:
            The path written.

        Raises:
            CoilvisTypeError: ``path`` is not a str or path; ``extra`` is not JSON-serialisable.
            CoilvisValueError: ``path`` is a folder, or lies below a file.
            OSError: the file cannot be written (the error names ``path``).
        """
        target = check_output_path(path, name="path")
        meta_json = encode_meta(self._meta())
        arrays: dict[str, np.ndarray] = {name: getattr(self, name) for name in _ARRAYS}
        arrays["is_other"] = self.is_other.astype(np.uint8)
        arrays["prompt_ids"] = self.prompt_ids
        arrays["vocab_ids"] = np.array(sorted(self.vocab), dtype=np.int64)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(target) as handle:
            write_tree_file(handle, meta_json, arrays)
        return target

    def _meta(self) -> dict[str, Any]:
        scalars = {
            "n_nodes": self.n_nodes,
            "n_prompt": int(self.prompt_ids.shape[0]),
            "d_vocab": self.d_vocab,
            "k": self.k,
            "depth": self.depth_limit,
            "min_prob": self.min_prob,
            "model_name": self.model_name,
            "prompt": self.prompt,
            "extra": self.extra,
        }
        strings = {"vocab_text": [self.vocab[i] for i in sorted(self.vocab)]}
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "coilvis_version": __version__, "scalars": scalars, "strings": strings}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tree:
        """Read a tree written by :meth:`save`, checking everything in it.

        Raises:
            CoilvisTypeError: ``path`` is not a str or path.
            CoilvisValueError: ``path`` is a folder.
            CoilvisFileNotFoundError: no file at ``path`` (also a ``FileNotFoundError``).
            RecordFormatError: the file is not a coilvis tree, is damaged or
                inconsistent, or comes from a newer format version.
        """
        source = as_path(path, name="path")
        if source.is_dir():
            raise CoilvisValueError(f"path: {str(source)!r} is a folder, expected a tree file")
        if not source.exists():
            raise CoilvisFileNotFoundError(f"path: no tree file at {source}")
        contents = read_tree_file(source)
        try:
            return cls._from_contents(contents)
        except (CoilvisValueError, CoilvisTypeError) as exc:
            raise Source(source, kind="tree").bad(str(exc)) from exc

    @classmethod
    def _from_contents(cls, contents: Contents) -> Tree:
        scalars, strings, arrays = contents.meta["scalars"], contents.meta["strings"], contents.arrays
        return cls(
            **{name: arrays[name] for name in _ARRAYS if name != "is_other"},
            is_other=arrays["is_other"].astype(bool),
            prompt_ids=arrays["prompt_ids"],
            vocab=dict(zip(arrays["vocab_ids"].tolist(), strings["vocab_text"])),
            d_vocab=scalars["d_vocab"],
            k=scalars["k"],
            depth_limit=scalars["depth"],
            min_prob=float(scalars["min_prob"]),
            model_name=scalars["model_name"],
            prompt=scalars["prompt"],
            extra=dict(scalars.get("extra") or {}),
        )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise CoilvisTypeError(f"{name}: expected a str, got {type(value).__name__}")
    return value
