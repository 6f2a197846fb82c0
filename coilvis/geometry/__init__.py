"""Where each token position sits: spiral and circle layouts, segment polygons, arcs, unwinding.

Pure numpy. Every function is vectorised over positions (``n`` up to 10,000 and beyond)
and over arcs (``m`` up to 50,000 and beyond). One module a job:

- :mod:`~coilvis.geometry.spiral`: the Archimedean spiral's arc length and its inverse;
- :mod:`~coilvis.geometry.layout`: the :class:`Layout` type, spiral and circle layouts,
  and the one circle-or-spiral choice (:func:`coil_kind`, :func:`coil_layout`);
- :mod:`~coilvis.geometry.line`: the same segments laid straight (the unwind's targets);
- :mod:`~coilvis.geometry.unwind`: the blend from coil to line (the reference of the
  page's animation);
- :mod:`~coilvis.geometry.bands`: group bands outside the segments;
- :mod:`~coilvis.geometry.shares`: segments split radially into shares of their area
  (the coil's mass rings);
- :mod:`~coilvis.geometry.arcs`: arcs between positions, and the constants a page's
  JavaScript draws them with;
- :mod:`~coilvis.geometry.angles`: wrapping, upright text, rotations.

Scale
-----
All lengths are in *data units*, scaled by ``pitch``: the radial distance between two
consecutive turns of the spiral (``pitch = 2*pi*b`` for the spiral ``r = r_start + b*phi``).
With the defaults (``pitch=1``) a segment is ``arc_len = 1`` long along the spiral and
``band_width = 0.8`` wide, so segments are roughly square, and ``n`` positions cover an
area of about ``n * arc_len * pitch``: the spiral of ``n`` positions has an outer radius of
about ``sqrt(n * arc_len * pitch / pi + r_start^2)`` (10,000 positions: about 57). Coils
are centred on the origin.
``Layout.bounds`` is the bounding box of the segment polygons, to which a renderer fits
its plot range (a group band adds at most ``pitch - band_width`` outside it).

Segments
--------
Segment ``i`` covers the arc-length interval ``[i * arc_len, (i + 1) * arc_len)`` of the
centre line, so all segments have the same length along the spiral (equal angles would
crowd the centre). Its polygon is the centre line offset radially by ``+-band_width/2``:
the outer edge from the segment's start to its end (``n_arc + 1`` vertices), then the
inner edge back (``n_arc + 1`` vertices), so ``poly_xs`` and ``poly_ys`` are ``(n, m)``
arrays with ``m = 2 * (n_arc + 1)``, open (a renderer closes them). Radial offsets keep
consecutive turns exactly ``pitch - band_width`` apart at every angle, and segment ``i``'s
end edge is bit-for-bit segment ``i + 1``'s start edge (column ``n_arc`` and ``n_arc + 1``
of row ``i`` equal columns ``0`` and ``m - 1`` of row ``i + 1``). Bokeh's ``patches``
takes ``list(layout.poly_xs)`` (see :meth:`Layout.as_patches`).

Unwinding
---------
:func:`unwound_layout` lays the same segments on one straight line (segment ``i``
centred at ``x_start + (i + 0.5) * arc_len``, so the line is ``n * arc_len`` long), and
:func:`wrapped_line_layout` in rows below the coil. :func:`unwind_positions` moves each
segment from the coil toward the line as a rigid body, token by token; the formulas are
in :mod:`coilvis.geometry.unwind`.
"""

from __future__ import annotations

from coilvis.geometry.angles import upright_angle_rad, wrap_angle_rad
from coilvis.geometry.arcs import (
    ARC_DEPTH_MAX,
    ARC_DEPTH_SCALE,
    Arcs,
    arc_anchors,
    arc_curves,
    bent_arcs,
    sample_arcs,
)
from coilvis.geometry.bands import group_band
from coilvis.geometry.layout import (
    CIRCLE_MAX_N,
    Layout,
    circle_layout,
    coil_kind,
    coil_layout,
    spiral_layout,
)
from coilvis.geometry.line import unwound_layout, wrapped_line_layout
from coilvis.geometry.shares import radial_pieces, share_bounds, split_radially
from coilvis.geometry.spiral import spiral_arc_len, spiral_phi_rad
from coilvis.geometry.unwind import interpolate, unwind_anchors, unwind_positions, unwind_shares, unwind_weights

__all__ = [
    "Layout",
    "Arcs",
    "CIRCLE_MAX_N",
    "ARC_DEPTH_SCALE",
    "ARC_DEPTH_MAX",
    "coil_kind",
    "spiral_layout",
    "circle_layout",
    "coil_layout",
    "unwound_layout",
    "wrapped_line_layout",
    "unwind_weights",
    "unwind_positions",
    "unwind_anchors",
    "unwind_shares",
    "interpolate",
    "share_bounds",
    "radial_pieces",
    "split_radially",
    "group_band",
    "arc_anchors",
    "arc_curves",
    "bent_arcs",
    "sample_arcs",
    "spiral_arc_len",
    "spiral_phi_rad",
    "upright_angle_rad",
    "wrap_angle_rad",
]
