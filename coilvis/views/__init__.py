"""Views: a :class:`~coilvis.record.Record` drawn as Bokeh models.

* :mod:`coilvis.views.coil`: the coil (``coilvis.coil``).
* :mod:`coilvis.views.output`: the :class:`~coilvis.views.output.View` every view
  returns, and ``coilvis.save`` / ``coilvis.show`` (standalone HTML, PNG, notebooks).
* :mod:`coilvis.views._style`: palettes, colour scales and bars, tooltip templates and
  the small JavaScript transforms the views share.

Every view names the Bokeh models a page script or a test reads (``coil_*`` in the
coil), so ``view.model(name)`` in Python and ``Bokeh.documents[0].get_model_by_name``
in the page find them.

Views import bokeh, numpy and coilvis's pure-numpy modules only, never torch or a model,
so a saved :class:`~coilvis.record.Record` can be drawn on a machine without either.
"""

from __future__ import annotations

__all__: list[str] = []
