"""Views: a :class:`~coilvis.record.Record` drawn as Bokeh models, and pages to save or show.

* :mod:`coilvis.views.coil`: the coil (``coilvis.coil``), a package with one module a job:
  ``attention`` (which patterns to embed), ``links`` (which links a page holds),
  ``groups`` (words, sentences, the outer band), ``segments`` (the per-position
  columns), ``frame`` (layouts and the figure's frame), ``labels`` (which labels fit),
  ``figure`` and ``arcs`` (the Bokeh models) and ``view`` (:class:`CoilView`).
* :mod:`coilvis.views.lens`: the logit-lens heatmap (``coilvis.lens``), one record or a
  comparison of two: ``grid`` (records, rows, positions, cell size), ``cells`` (the
  cells' columns and string table), ``figure`` (the Bokeh models).
* :mod:`coilvis.views.unwind` and :mod:`coilvis.views.schedule`: the coil's unwind
  animation (``coil(record, animate=True)``; the page runs ``unwind.js``) and its timing.
* :mod:`coilvis.views.page`: the coil, the lens and the top-k table on one linked page
  (``coilvis.page``).
* :mod:`coilvis.views.sunburst` and :mod:`coilvis.views.flame`: a continuation
  :class:`~coilvis.continuations.Tree` as a sunburst (``coilvis.sunburst``) or a flame
  graph (``coilvis.flame``), zoomable in the page; what they share is in
  :mod:`coilvis.views._tree`.
* :mod:`coilvis.views.output`: the :class:`~coilvis.views.output.View` every view
  returns, and ``coilvis.save`` / ``coilvis.show`` (standalone HTML, PNG, notebooks).
* :mod:`coilvis.views._style`: palettes, colour scales and bars (from the statistics
  table of :mod:`coilvis.options`), tooltip templates and the small JavaScript
  transforms the views share.

Every view names the Bokeh models a page script or a test reads (``coil_*`` in the
coil, ``lens_*`` in the lens, ``page_*`` on the page, ``sunburst_*`` and ``flame_*``), so ``view.model(name)`` in
Python and ``Bokeh.documents[0].get_model_by_name`` in the page find them. Token text
reaches a page only as data (escaped by Bokeh), never in HTML templates or JavaScript.

Views import bokeh, numpy and coilvis's torch-free layers only (:mod:`coilvis.options`,
:mod:`coilvis.record`, :mod:`coilvis.continuations`, :mod:`coilvis.tokens`, :mod:`coilvis.geometry`,
:mod:`coilvis.topk_bounds`, :mod:`coilvis.files`), never torch or a model, so a saved
:class:`~coilvis.record.Record` can be drawn on a machine without either.
"""

from __future__ import annotations

__all__: list[str] = []
