"""Continuation trees built by hand from random distributions (no model), for tests and benchmarks of the tree views.

:func:`synthetic_tree` grows a full tree the way :func:`coilvis.tree` does: every node
above the depth limit draws a next-token distribution over a small vocabulary (a
softmax of random logits), keeps its top ``k`` tokens as children, most likely first,
and one "other" node with the rest of the mass. The vocabulary holds hostile and
whitespace-only texts among ordinary ones.
"""

from __future__ import annotations

import numpy as np

from coilvis.continuations import Tree

#: Texts a page must show as text, never run.
HOSTILE_IMG = '<img src=x onerror="window.__pwned=1">'
HOSTILE_SCRIPT = "</script>"
VOCAB: tuple[str, ...] = (
    " Paris",
    " France",
    ",",
    " the",
    "\n",
    "  ",
    "&amp;",
    "{safe}",
    "@path_label",
    "$$x$$",
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    *(f" w{i}" for i in range(48)),
)
PROMPT = "The Eiffel Tower is located in the city of"


def synthetic_tree(*, depth: int = 3, k: int = 3, seed: int = 0, sharpness: float = 3.0, d_vocab: int | None = None) -> Tree:
    """A full tree of ``depth`` and ``k`` (every token node above the depth limit expanded).

    Args:
        depth: tokens after the prompt.
        k: children kept per node.
        seed: the random generator's seed.
        sharpness: scale of the random logits (larger: one child takes most of the mass).
        d_vocab: vocabulary size (default: :data:`VOCAB`'s); ids past :data:`VOCAB` get
            texts ``" t{id}"``.
    """
    rng = np.random.default_rng(seed)
    n_vocab = d_vocab or len(VOCAB)
    parent, token, level, cond, path, entropy, other = [-1], [-1], [0], [1.0], [1.0], [np.nan], [False]
    frontier = [0]
    for d in range(1, depth + 1):
        expanded = []
        for node in frontier:
            logits = rng.normal(size=n_vocab) * sharpness
            p = np.exp(logits - logits.max())
            p /= p.sum()
            h = float(-(p * np.log(p)).sum())
            top = np.argsort(-p, kind="stable")[:k]
            for j, (t, q) in enumerate([*zip(top.tolist(), p[top].tolist()), (-1, max(0.0, 1.0 - float(p[top].sum())))]):
                parent.append(node)
                token.append(t)
                level.append(d)
                cond.append(q)
                path.append(path[node] * q)
                entropy.append(h)
                other.append(t < 0)
                if t >= 0:
                    expanded.append(len(parent) - 1)
        frontier = expanded
    vocab = {i: (VOCAB[i] if i < len(VOCAB) else f" t{i}") for i in sorted({t for t in token if t >= 0} | {0, 1})}
    return Tree(
        parent=parent, token_id=token, depth=level, cond_prob=cond, path_prob=path, entropy=entropy, is_other=other,
        prompt_ids=[0, 1], vocab=vocab, d_vocab=n_vocab, k=k, depth_limit=depth, model_name="synthetic", prompt=PROMPT,
    )
