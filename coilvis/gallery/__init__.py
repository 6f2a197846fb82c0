"""The gallery: example prompts built into a folder of standalone pages.

A prompts file (:mod:`coilvis.gallery.prompts`; coilvis ships one, see
:func:`default_prompts_path`) lists the examples (a name, a title, the prompt, one or two
sentences on what to look for, and view options). :func:`build_gallery` runs the
prompts through a model (those with the same run options together, in batches:
:func:`coilvis.run_many`), keeps each :class:`~coilvis.record.Record` in
``OUT/records/NAME.coil``, and draws:

* ``OUT/pages/NAME.html``: the full page (animated coil, lens and table, see
  :func:`coilvis.page`);
* ``OUT/thumbs/NAME.png``: a thumbnail of the coil (one headless Chromium for the whole
  build);
* for an example with a ``"sunburst"``: its continuation tree (:func:`coilvis.tree`),
  kept in ``OUT/records/NAME.coiltree``, drawn as a sunburst (:func:`coilvis.sunburst`,
  tap a wedge to zoom) below the lens on the example's page, under a caption that says
  whether one branch takes most of the probability mass or the mass spreads (its
  numbers read from the tree: :func:`coilvis.gallery.trees.mass_caption`), and its
  thumbnail ``OUT/thumbs/NAME.sunburst.png``;
* ``OUT/index.html``: one card per example with its thumbnail, title, caption and
  prompt, linking to its page (with a sunburst: also its thumbnail and caption).

A record is reused when its cache key (a hash of the prompt, the options that change
what the model computes, the model's name and the coilvis version) still matches, and a
tree likewise (prompt, ``depth``, ``k``, ``min_prob``, BOS, model, version: not its
colour), so a rebuild without changes redraws every page without running the model,
and without loading it. A failing example is reported (in the result, on stderr and on the index)
while the others still build. Every file is written atomically, the index last, so an
interrupted build never leaves a broken index over a good one
(:mod:`coilvis.gallery.builder`; the index page: :mod:`coilvis.gallery.index`; what a
build did: :mod:`coilvis.gallery.results`).

From the command line::

    coilvis gallery -o gallery/_build
    coilvis gallery -o gallery/_build --only eiffel induction --force
    coilvis gallery -o gallery/_build --shared-js   # BokehJS once, in pages/, not in every page

The prompts file format (``version`` 1)::

    {"format": "coilvis.gallery", "version": 1, "examples": [
        {"name": "eiffel", "title": "...", "prompt": "...", "look_for": "...",
         "options": {"attention": "mean", "color": "prob", "lens_stat": "prob"},
         "sunburst": {"depth": 3, "k": 5}}]}

``options`` takes the keys of :data:`OPTION_KEYS`; ``sunburst`` (optional) is ``true``
(depth 3, k 5), ``false`` or an object of :data:`SUNBURST_KEYS` (``depth``, ``k``,
``min_prob``, ``color``; see :class:`SunburstSpec`).

>>> ex = Example.from_dict({"name": "eiffel", "title": "Eiffel", "prompt": "The Eiffel Tower is in",
...                         "look_for": "Paris.", "options": {"attention": "mean", "lens_stat": "kl"}})
>>> ex.run_kwargs()["attention"], ex.lens_kwargs(), ex.sunburst
(True, {'stat': 'kl'}, None)
>>> Example.from_dict({"name": "story", "title": "Story", "prompt": "Once upon a time", "look_for": "Spread.",
...                    "sunburst": {"depth": 2}}).sunburst
SunburstSpec(depth=2, k=5, min_prob=0.0, color='prob')
"""

from __future__ import annotations

from coilvis.files import atomic_write  # noqa: F401  (the one atomic writer every gallery file goes through)
from coilvis.gallery.builder import THUMB_PX, build_gallery, cache_key
from coilvis.gallery.index import render_index
from coilvis.gallery.prompts import (
    OPTION_KEYS,
    PROMPTS_FORMAT,
    PROMPTS_VERSION,
    SUNBURST_KEYS,
    Example,
    SunburstSpec,
    default_prompts_path,
    load_examples,
)
from coilvis.gallery.results import ExampleResult, GalleryResult
from coilvis.gallery.trees import mass_caption, tree_cache_key

__all__ = [
    "Example",
    "ExampleResult",
    "GalleryResult",
    "build_gallery",
    "cache_key",
    "default_prompts_path",
    "load_examples",
    "render_index",
    "mass_caption",
    "tree_cache_key",
    "SunburstSpec",
    "OPTION_KEYS",
    "SUNBURST_KEYS",
    "PROMPTS_FORMAT",
    "PROMPTS_VERSION",
    "THUMB_PX",
]
