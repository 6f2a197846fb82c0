"""The gallery's continuation sunbursts: each example's tree (cached beside its record), its caption, and its section of the example's page."""

from __future__ import annotations

import hashlib
import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from coilvis.errors import RecordFormatError
from coilvis.gallery.prompts import Example
from coilvis.gallery.results import ExampleResult

__all__ = [
    "TreeJob",
    "branch_masses",
    "earlier_caption",
    "grow_trees",
    "load_cached_tree",
    "mass_caption",
    "sunburst_files",
    "sunburst_section",
    "tree_cache_key",
]

#: Bump when what the gallery keeps in a cached tree changes.
_TREE_CACHE_VERSION = 1
#: Side of the sunburst on its page, in pixels.
_SIZE_PX = 640
#: One branch "takes most of the mass" from here, "almost all" from ``_ALMOST_ALL``.
_MOST, _ALMOST_ALL = 0.5, 0.9


def sunburst_files(out: Path, name: str) -> tuple[Path, Path]:
    """Where an example's sunburst files go: ``(thumbnail, tree)``.

    ``thumbs/NAME.sunburst.png`` and ``records/NAME.coiltree``; example names hold no
    ``.``, so these never meet another example's files.
    """
    return out / "thumbs" / f"{name}.sunburst.png", out / "records" / f"{name}.coiltree"


def tree_cache_key(example: Example, model_label: str) -> str:
    """Hash of what decides an example's tree: prompt, tree options, BOS, model, coilvis version.

    The sunburst's colour is left out: changing it redraws from the cached tree.

    >>> from coilvis.gallery.prompts import SunburstSpec
    >>> a = Example("a", "A", "Hello", "x", sunburst=SunburstSpec())
    >>> b = Example("b", "B", "Hello", "y", sunburst=SunburstSpec(color="entropy"))
    >>> tree_cache_key(a, "m") == tree_cache_key(b, "m"), tree_cache_key(a, "m") == tree_cache_key(a, "other")
    (True, False)
    """
    from coilvis import __version__

    spec = example.sunburst
    payload = {
        "cache": _TREE_CACHE_VERSION,
        "prompt": example.prompt,
        "tree": None if spec is None else spec.tree_kwargs(),
        "prepend_bos": example.run_kwargs().get("prepend_bos"),
        "model": model_label,
        "coilvis": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()


def load_cached_tree(path: Path, key: str) -> Any:
    """The cached :class:`~coilvis.continuations.Tree` at ``path`` if its key matches, else None."""
    from coilvis.continuations import Tree

    if not path.is_file():
        return None
    try:
        tree = Tree.load(path)
    except (RecordFormatError, OSError, ValueError):
        return None
    return tree if tree.extra.get("gallery_key") == key else None


class TreeJob(NamedTuple):
    """An example whose tree the build still needs to grow, its result, and its cache key."""

    entry: Example
    res: ExampleResult
    key: str


def grow_trees(jobs: list[TreeJob], model: Callable[[], Any], out: Path) -> dict[str, Any]:
    """Grow each job's tree with :func:`coilvis.tree` and save it under its cache key.

    Args:
        jobs: the examples without a cached tree.
        model: gives the loaded model (called for the first job only when it succeeds;
            its error fails every job).
        out: the gallery folder.

    Returns:
        The trees by example name. A failed example's error (``sunburst: ...``) is in its
        result, and its time in the result's ``model_s``.
    """
    import dataclasses

    import coilvis

    trees: dict[str, Any] = {}
    for job in jobs:
        spec = job.entry.sunburst
        if spec is None:
            continue
        t0 = time.perf_counter()
        try:
            loaded = model()
            prepend_bos = job.entry.run_kwargs().get("prepend_bos")
            tree = coilvis.tree(job.entry.prompt, loaded, **spec.tree_kwargs(), prepend_bos=prepend_bos, progress=False)
            tree = dataclasses.replace(tree, extra={**tree.extra, "gallery_key": job.key})
            tree.save(sunburst_files(out, job.entry.name)[1])
            trees[job.entry.name] = tree
        except Exception as exc:  # one example's failure must not stop the others
            job.res.error = f"sunburst: {type(exc).__name__}: {exc}"
        job.res.model_s += time.perf_counter() - t0
    return trees


# ---------------------------------------------------------------------------- what it shows


def branch_masses(tree: Any) -> Any:
    """(n_kept,) float64 path probabilities of the kept next tokens (ring 1, "other" aside), largest first."""
    import numpy as np

    kids = tree.children(0)
    kept = kids[~tree.is_other[kids]]
    return np.sort(tree.path_prob[kept].astype(np.float64))[::-1]


def _pct(p: float) -> str:
    """A share of the mass as a percentage: whole percents from 1%, one decimal below."""
    if p >= 0.01:
        return f"{p:.0%}"
    return f"{p:.1%}" if p >= 0.001 else "under 0.1%"


def mass_caption(tree: Any) -> str:
    """What the reader sees in the sunburst, in one or two sentences, every number read from ``tree``.

    One branch takes almost all (at least 90%) or most (at least half) of the mass, or
    the mass spreads; then the likeliest continuation of the tree's full depth.
    """
    import numpy as np

    masses = branch_masses(tree)
    if masses.size == 0:
        return f"No next token reaches min_prob={tree.min_prob:g}: the grey wedge is the whole mass."
    top = float(masses[0])
    runner_up = f", the runner-up {_pct(float(masses[1]))}" if masses.size > 1 else ""
    if top >= _ALMOST_ALL:
        first = f"One branch takes almost all the mass: the likeliest next token holds {_pct(top)}{runner_up}."
    elif top >= _MOST:
        first = f"One branch takes most of the mass: the likeliest next token holds {_pct(top)}{runner_up}."
    else:
        rest = max(0.0, 1.0 - float(masses.sum()))
        first = (
            f"The mass spreads: the likeliest next token holds only {_pct(top)}, the {masses.size} shown hold "
            f"{_pct(float(masses.sum()))} together, and the grey wedge ({_pct(rest)}) is every other token."
        )
    depth = int(tree.depth.max())
    deepest = np.flatnonzero((tree.depth == depth) & ~tree.is_other)
    if depth < 2 or deepest.size == 0:
        return first
    best = float(tree.path_prob[deepest].max())
    return f"{first} The likeliest {depth}-token continuation holds {_pct(best)}."


def earlier_caption(path: Path) -> str | None:
    """The caption of the tree saved at ``path`` by an earlier build (None: none readable there)."""
    from coilvis.continuations import Tree

    try:
        return mass_caption(Tree.load(path))
    except (RecordFormatError, OSError, ValueError):
        return None


def sunburst_section(example: Example, tree: Any, caption: str) -> Any:
    """The sunburst's section of an example's page: a heading and the caption, the sunburst below.

    The sunburst is :func:`coilvis.sunburst` of ``tree`` in the example's colour. The
    heading and caption (a ``Div``, ``gallery_sunburst_caption``) hold fixed words and
    numbers only, no token text: tokens reach the page as the sunburst's data.

    Returns:
        A Bokeh column (``gallery_sunburst_section``), in no document yet.
    """
    from bokeh.layouts import column
    from bokeh.models import Div

    import coilvis

    color = example.sunburst.color if example.sunburst is not None else "prob"
    drawn = coilvis.sunburst(tree, color=color, size_px=_SIZE_PX)
    layout = drawn.layout
    drawn.doc.remove_root(layout)  # it joins the page's document
    text = (
        "<h3 style=\"margin: 24px 0 4px\">Where the mass goes next</h3>"
        f"<p style=\"margin: 0\">The model's likely continuations of the prompt, {tree.depth_limit} tokens ahead, "
        f"the top {tree.k} under each. {html.escape(caption)}</p>"
    )
    header = Div(text=text, name="gallery_sunburst_caption", styles={"font-size": "14px", "max-width": f"{_SIZE_PX + 160}px"})
    return column(header, layout, name="gallery_sunburst_section")
