"""The coil's View: the Bokeh layout with handles on its parts (figure, sources, layouts, schedule)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bokeh.models import ColumnDataSource, CustomJS

from coilvis import geometry
from coilvis.record import Record
from coilvis.views import _style
from coilvis.views.coil.attention import AttentionChoice
from coilvis.views.output import View

__all__ = ["CoilView"]


class CoilView(View):
    """The coil of one Record: a :class:`~coilvis.views.output.View` with handles on its parts.

    Attributes:
        figure: the Bokeh figure (named ``coil_figure``).
        segments: the per-position ``ColumnDataSource`` (see :mod:`coilvis.views.coil`).
        links: the attention links' ``ColumnDataSource``, or None without attention.
        labels: the fitted labels' ``ColumnDataSource``, or None with ``labels=False``.
        coiled: the coil's :class:`~coilvis.geometry.Layout`.
        unwound: the same segments laid straight (:func:`~coilvis.geometry.unwound_layout`).
        choices: the embedded attention choices, in ``choice`` order.
        scale: the colour scale.
        record: the Record drawn.
        px_per_unit: screen pixels per data unit at the initial zoom.
        font_px: label font size in pixels (0 when no label fits).
        n_links_dropped: links that passed the top-k and threshold but exceeded ``max_links``.
        schedule: the unwind's :class:`~coilvis.views.schedule.Schedule` (None without
            ``animate``).
        ready: CustomJS callbacks the page runs when ready (autoplay); a page that moves
            this view's layout into its own document registers them there.
        mass: the mass rings' ``ColumnDataSource`` (``coil_mass_source``), or None
            without ``mass``.
    """

    def __init__(
        self,
        layout: Any,
        *,
        title: str,
        figure: Any,
        segments: ColumnDataSource,
        links: ColumnDataSource | None,
        labels: ColumnDataSource | None,
        coiled: geometry.Layout,
        unwound: geometry.Layout,
        choices: tuple[AttentionChoice, ...],
        scale: _style.ColorScale,
        record: Record,
        px_per_unit: float,
        font_px: int,
        n_links_dropped: int,
        schedule: Any = None,
        ready: Sequence[CustomJS] = (),
        mass: ColumnDataSource | None = None,
    ) -> None:
        super().__init__(layout, title=title, kind="coil")
        self.schedule = schedule
        self.ready = list(ready)
        for callback in self.ready:
            self.doc.js_on_event("document_ready", callback)
        self.figure = figure
        self.segments = segments
        self.links = links
        self.labels = labels
        self.coiled = coiled
        self.unwound = unwound
        self.choices = choices
        self.scale = scale
        self.record = record
        self.px_per_unit = px_per_unit
        self.font_px = font_px
        self.n_links_dropped = n_links_dropped
        self.mass = mass
