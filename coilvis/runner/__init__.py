"""Runs: a prompt through a model, a TransformerLens cache, or raw logits, each kept as a :class:`Record`.

>>> import numpy as np, coilvis
>>> logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
>>> rec = coilvis.from_logits(logits, tokens=[0, 2], vocab=["a", "b", "c"])
>>> rec.topk_ids[:, 0].tolist(), round(float(rec.next_prob[0]), 3)
([0, 2], 0.1)

One module a way in: :mod:`~coilvis.runner.prompt` (:func:`run`),
:mod:`~coilvis.runner.cache` (:func:`from_cache`), :mod:`~coilvis.runner.logits`
(:func:`from_logits`), :mod:`~coilvis.runner.many` (:func:`run_many`: many prompts in
padded batches), :mod:`~coilvis.runner.pair` (:func:`compare`: two runs side by
side, or two saved Records through :mod:`~coilvis.runner.compare_records`); :mod:`~coilvis.runner.inputs` checks what users hand them and
:mod:`~coilvis.runner.assemble` holds what they share (attention links, Record assembly).

``attention_top_k`` here means the keys *kept in the Record* per query (and per head,
and for the mean and max over heads) when recording; it is stored as
:attr:`~coilvis.record.AttentionLinks.top_k`. Views draw from what was kept: the arcs a
view draws per query are its own ``attention_top_k`` (see :func:`coilvis.coil`).
"""

from __future__ import annotations

from coilvis.runner.cache import from_cache, lens_from_tl_cache
from coilvis.runner.logits import from_logits
from coilvis.runner.many import run_many
from coilvis.runner.pair import compare
from coilvis.runner.prompt import run

__all__ = ["compare", "from_cache", "from_logits", "lens_from_tl_cache", "run", "run_many"]
