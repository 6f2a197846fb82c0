"""The coil: a prompt's positions coiled like film on a spool, coloured by what the model believed.

``coilvis.coil(record)`` lays the positions of a :class:`~coilvis.record.Record` along
a spiral (or a circle) with segments of equal length (:mod:`coilvis.geometry`), colours
each segment by a statistic of the model's next-token prediction there, bands the
outside by words and sentences, labels the segments that have room, and draws
attention inside the coil as arcs. The result is a :class:`CoilView`: save it with
``coilvis.save(view, "coil.html")`` (one offline HTML file), ``"coil.png"``, or show it
in Jupyter.

Reading it
----------
Segment ``i`` is input token ``i``. Its colour, tooltip and arcs describe the model's
prediction *after* reading tokens ``0..i`` (position ``i`` of the Record): the
probability, surprisal and rank of the token that actually came next (token ``i + 1``;
unknown, grey, at the last position), the entropy of the whole next-token distribution,
and the top-k next tokens. Arcs go from each query position to the earlier positions it
attends to most.

Named models (for page scripts, the unwind animation and tests)
---------------------------------------------------------------
``coil_figure``; ``coil_segments`` (patches) over ``coil_segment_source``, one row per
position with columns:

* ``pos`` (int32), ``token`` (raw text), ``token_id`` (int32, -1 when unknown),
  ``label`` (exact display text, :func:`coilvis.tokens.display`), ``word``,
  ``sentence`` (int32 group indices);
* ``top_prob_pct`` (float32; probability in % of the model's top next token),
  ``prob_pct``, ``entropy_bits``, ``surprisal_bits``, ``rank`` (float32; probability in %
  of the actual next token, entropy and surprisal in bits, its 1-based rank; NaN where
  the next token is unknown; the next token's label is ``label[pos + 1]``);
* ``topk_vocab`` (n, k) int32 and ``topk_pct`` (n, k) float32: the top-k next tokens as
  rows of ``coil_vocab_source`` (columns ``token_id``, ``label``) and their probability
  in %; ``next_vocab`` (int32): the actual next token's row there, -1 when unknown. The
  ``CustomJSHover`` named ``coil_text_format`` writes the tooltip's text from them, each
  token as its label and its id: ``fmt.format(pos, "token", {})``,
  ``fmt.format(pos, "next", {})`` or ``fmt.format(pos, "topk", {})`` in page JavaScript
  gives the same lines (escape them, e.g. show them in a ``PreText``);
* ``xs``, ``ys``: (n, m) float32 segment polygons (a ``rows_transform`` hands the glyph
  its rows);
* ``x``, ``y``, ``angle_rad``: segment centres and direction on the coil;
  ``x_line``, ``y_line``, ``angle_line_rad``: the same on the unwound line
  (:func:`coilvis.geometry.unwound_layout`; with ``animate``, the rows below the coil,
  :func:`coilvis.geometry.wrapped_line_layout`), for the unwind animation;
* ``anchor_x``, ``anchor_y``: where arcs attach (the inner edge's midpoint,
  :func:`coilvis.geometry.arc_anchors`).

``coil_bands`` over ``coil_band_source`` (word/sentence band, NaN-separated polygons,
a few word pieces a row, each row in the colour of a sentence parity x word parity), ``coil_sentence_marks``, ``coil_labels``
over ``coil_label_source`` (only the labels that fit: ``pos, x, y, angle_rad, text,
text_color``), ``coil_markers`` (start/end), ``coil_color_bar`` (its mapper
``coil_color_bar_mapper`` a twin of ``coil_color_mapper``), ``coil_color_mapper``,
``coil_hover`` and ``coil_hover_outline`` over ``coil_hover_outline_source`` (the hovered
segment's polygon, copied there by the hover's callback). With attention: ``coil_arcs`` and ``coil_arc_highlight`` over
``coil_link_source`` (``query, key, weight, choice``: the arcs' end and control points
are computed in the page from ``anchor_x/anchor_y`` of the segment source, as
:func:`coilvis.geometry.bent_arcs` places them, by the transforms ``coil_anchor_x``,
``coil_anchor_y``, ``coil_control_x``, ``coil_control_y``; after moving the anchors,
emit ``coil_link_source.change`` to redraw the arcs), ``coil_choice_filter`` (a
``GroupFilter`` on ``choice``; its group is the choice shown), ``coil_highlight_filter`` (an ``IndexFilter``), and
``coil_attention_select`` when more than one layer/head is embedded. With ``mass``: the
rings ``coil_mass`` over ``coil_mass_source``, ``coil_mass_outline``, ``coil_mass_hover``
and ``coil_mass_format`` (:mod:`~coilvis.views.coil.mass`, where their columns are listed);
the segments' ``coil_hover`` then leaves the tooltip to the rings. With ``animate``: the
unwind's models (:mod:`~coilvis.views.unwind`) and its front layer
(:mod:`~coilvis.views.coil.front`).

Two canvases
------------
BokehJS paints a figure on a main canvas and an overlay canvas above it, and repaints only
the overlay when only renderers of level ``"overlay"`` changed. Repainting the main one
means every segment and arc (longer than a second at 10,000 positions with arcs), so what
changes on a hover or every frame of the unwind is an overlay: the hover's outline, the
arcs' highlight, the unwind's front and playhead, and, to stay above them as drawn, the
labels and the start and end marks. The segments carry no hover glyph of their own.

The package
-----------
:func:`coil` composes the parts, each in its module: :mod:`~coilvis.views.coil.attention`
(which attention patterns to embed), :mod:`~coilvis.views.coil.links` (which links a page
holds), :mod:`~coilvis.views.coil.groups` (words, sentences and the outer band),
:mod:`~coilvis.views.coil.segments` (the per-position columns),
:mod:`~coilvis.views.coil.frame` (layouts and the figure's frame), :mod:`~coilvis.views.coil.front`
(the unwind's front layer),
:mod:`~coilvis.views.coil.labels` (which labels fit), :mod:`~coilvis.views.coil.mass`
(the mass rings), :mod:`~coilvis.views.coil.figure`
and :mod:`~coilvis.views.coil.arcs` (the Bokeh models) and
:mod:`~coilvis.views.coil.view` (:class:`CoilView`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from bokeh.layouts import column
from bokeh.models import ColumnDataSource

from coilvis import geometry
from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_float, check_int
from coilvis.options import DEFAULT_K, check_k, get_option, get_stat
from coilvis.record import Record
from coilvis.views import _style
from coilvis.views.coil.arcs import ArcParts, draw_arcs, highlight_callback
from coilvis.views.coil.attention import AttentionChoice, opening_choice, parse_attention
from coilvis.views.coil.figure import (
    END_MARK,
    START_MARK,
    add_hover,
    add_notes,
    coil_figure,
    draw_band,
    draw_labels,
    draw_hover_outline,
    draw_markers,
    draw_segments,
)
from coilvis.views.coil.frame import MAX_ARC_STEPS, Frame, coil_layouts, fit_frame, rows_layout
from coilvis.views.coil.front import build_front, order_overlays
from coilvis.views.coil.groups import token_groups
from coilvis.views.coil.labels import coil_labels, fit_labels, fitted_font_px, label_width_px
from coilvis.views.coil.mass import DEFAULT_MASS_K, MassParts, add_mass_hover, build_mass, check_mass, mass_scale
from coilvis.views.coil.segments import segment_columns, stat_columns, topk_columns
from coilvis.views.coil.view import CoilView
from coilvis.views.served import entropy_scale, sent_k
from coilvis.views.unwind import UnwindParts, build_unwind, schedule_columns

__all__ = [
    "coil",
    "CoilView",
    "AttentionChoice",
    "token_groups",
    "fit_labels",
    "label_width_px",
    "START_MARK",
    "END_MARK",
    "MAX_ARC_STEPS",
]


def _check_choice(name: str, value: Any) -> str:
    """``value`` if it is one of the choices :data:`coilvis.options.OPTIONS` declares for the coil's ``name``."""
    choices = get_option("coil", name).choices
    if not isinstance(value, str) or value not in choices:
        raise CoilvisValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def _check_flags(**flags: Any) -> None:
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise CoilvisTypeError(f"{name}: expected True or False, got {type(flag).__name__}")


def _labels(
    p: Any,
    record: Record,
    lay: geometry.Layout,
    frame: Frame,
    values: Any,
    scale: _style.ColorScale,
    *,
    font_px: int,
    whitespace: str,
) -> ColumnDataSource:
    """The labels that fit, in a colour readable on their segment's fill (``values`` by ``scale``)."""
    kept, texts = coil_labels(record.tokens, lay, px_per_unit=frame.px_per_unit, font_px=font_px, whitespace=whitespace)
    colors = _style.text_colors(_style.map_colors(values[kept], scale))
    return draw_labels(p, lay, kept, texts, colors, font_px=font_px)


def _view(
    record: Record,
    figure: Any,
    segments: ColumnDataSource,
    arcs: ArcParts | None,
    unwind: UnwindParts | None,
    *,
    labels: ColumnDataSource | None,
    coiled: geometry.Layout,
    unwound: geometry.Layout,
    choices: tuple[AttentionChoice, ...],
    scale: _style.ColorScale,
    frame: Frame,
    font_px: int,
    schedule: Any,
    title: str | None,
    rings: MassParts | None = None,
) -> CoilView:
    """The view: the choice control, the unwind's controls, the figure and its readout,
    in a column (the figure alone when there is nothing else)."""
    select = arcs.select if arcs is not None else None
    controls, readout = (unwind.controls, unwind.readout) if unwind is not None else (None, None)
    parts = [x for x in (select, controls, figure, readout) if x is not None]
    return CoilView(
        column(*parts, name="coil_root") if len(parts) > 1 else figure,
        title=title if title is not None else "coilvis · coil",
        figure=figure,
        segments=segments,
        links=arcs.links if arcs is not None else None,
        labels=labels,
        coiled=coiled,
        unwound=unwound,
        choices=choices,
        scale=scale,
        record=record,
        px_per_unit=float(frame.px_per_unit),
        font_px=int(font_px),
        n_links_dropped=arcs.n_dropped if arcs is not None else 0,
        schedule=schedule,
        ready=unwind.ready if unwind is not None else [],
        mass=rings.source if rings is not None else None,
    )

def coil(
    record: Record,
    *,
    layout: Literal["spiral", "circle", "auto"] = "spiral",
    color: Literal["prob", "target_prob", "entropy", "surprisal", "rank"] = "prob",
    attention: Any = None,
    attention_threshold: float = 0.02,
    attention_top_k: int | None = 3,
    max_links: int = 50_000,
    hide_sink: bool = False,
    palette: Any = None,
    width: int = 720,
    height: int = 720,
    title: str | None = None,
    labels: bool = True,
    label_font_px: int = 11,
    tooltip_k: int | None = None,
    n_arc: int | None = None,
    clockwise: bool = False,
    animate: bool = False,
    pace: Literal["entropy", "surprisal"] = "entropy",
    duration_s: float | None = None,
    floor_bits: float = 0.5,
    autoplay: bool = True,
    whitespace: Literal["markers", "subtle", "plain"] = "subtle",
    mass: bool = False,
    mass_k: int = DEFAULT_MASS_K,
) -> CoilView:
    """Draw a Record as a coil: coloured segments, word/sentence band, labels, attention arcs.

    How to read it and its geometry (equal arc length, bands, arcs, mass rings):
    :doc:`/concepts/coil`; the unwind's pace: :doc:`/concepts/unwind` (docs/concepts/).

    Args:
        record: the :class:`~coilvis.record.Record` to draw (n = ``seq_len`` >= 1); a
            :class:`~coilvis.comparison.Comparison` is drawn by
            :func:`coilvis.views.diff.diff_coil`, with the options set here that it takes.
        layout: ``"spiral"`` (Archimedean, equal-length segments), ``"circle"`` (one
            closed ring, for short prompts) or ``"auto"`` (a circle up to
            :data:`coilvis.geometry.CIRCLE_MAX_N` positions).
        color: the statistic segments are coloured by: ``"prob"`` (probability of the
            model's top next token, %: how sure it was), ``"target_prob"`` (probability of
            the actual next token, %), ``"entropy"``  (of the next-token distribution, bits),
            ``"surprisal"`` (of the actual next token, bits) or ``"rank"`` (of the actual
            next token, 1 = top, log scale). Bright means unexpected for every default
            palette.
        attention: None (no arcs); ``"mean"`` or ``"max"`` (that reduction over heads, for
            every layer the record holds, opening on the last layer: early layers
            attend mostly by position); ``(layer, head)`` with ``head`` an int,
            ``"mean"`` or ``"max"`` (that layer; negative layers count from the end); or
            a list of these, opening on the first. Every choice is embedded; with more
            than one, a control in the page switches between them.
        attention_threshold: links lighter than this weight are not drawn.
        attention_top_k: at most this many keys per query and choice (None: all kept).
        max_links: at most this many links in the page, over all choices (the heaviest
            of each choice are kept; choices share the budget evenly).
        hide_sink: leave out links to position 0 (the attention sink).
        palette: None (the statistic's default: Viridis reversed for probability,
            Magma for entropy and surprisal, Cividis for rank), a palette name
            (``"Viridis"``, ``"Cividis"``, ``"Magma"``, ``"Inferno"``, ``"Plasma"``,
            ``"_r"`` to reverse) or a sequence of ``"#rrggbb"`` colours, low to high.
        width: width of the drawing area in screen pixels (the colour bar, titles and
            controls come on top).
        height: height of the drawing area in screen pixels.
        title: figure title (default: the model name and the number of tokens).
        labels: draw token labels on the segments that have room for them.
        label_font_px: largest label font size in pixels (smaller when segments are
            thin; labels are left out below 7 px).
        tooltip_k: top next tokens listed in the hover (default: all the record kept,
            at most 10).
        n_arc: polygon steps along each segment edge (default: smooth for short prompts,
            2 for long ones to keep pages small).
        clockwise: wind clockwise.
        animate: add the unwind (:mod:`coilvis.views.unwind`): play/pause, restart,
            loop, speed and scrub controls; the coil unrolls into rows below it, the
            playhead dwelling on position i for
            ``duration_s * (floor_bits + x_i) / sum_j (floor_bits + x_j)`` seconds, x the
            entropy (or surprisal) in bits (:mod:`coilvis.views.schedule`).
        pace: ``"entropy"`` (of the next-token distribution) or ``"surprisal"`` (of the
            actual next token) sets the dwell times.
        duration_s: total unwind duration at speed 1 (default: 0.25 s per position,
            between 4 s and 180 s).
        floor_bits: added to every position's pace value, so certain positions still
            take a moment.
        autoplay: start the unwind by itself as soon as the page is ready (the default);
            False starts it paused, waiting for ▶ play. Either way it stops at the end
            unless loop is on.
        whitespace: how the segment labels show a token's leading and trailing spaces:
            ``"subtle"`` (the default: a light, narrow ``·``, so a coil of words does not
            read as a wall of markers), ``"markers"`` (``␣``, the exact label of
            :func:`coilvis.tokens.display`) or ``"plain"`` (spaces; a token of spaces
            only still shows ``␣``). Subtle and plain labels are not exact; the hover
            always shows the exact label with ``␣`` and the token id.
        mass: draw mass rings (:mod:`coilvis.views.coil.mass`): each segment cut from
            its inner edge outward into its top ``mass_k`` next tokens' shares (the
            largest innermost, each piece's area its probability, coloured by it) and
            the rest of the probability in grey, so the coil shows how spread the
            prediction is at every position. Hovering a piece shows its token (exact
            label and id), probability and rank. The rings travel with the unwind;
            arcs still attach to the segments and draw above them. Colours by
            probability: ``color`` must be ``"prob"``.
        mass_k: shares per segment with ``mass`` (at most the record's k).

    Returns:
        A :class:`CoilView`; ``coilvis.save(view, "coil.html")`` writes it.

    Raises:
        CoilvisTypeError: ``record`` is not a Record, or an option has the wrong type.
        CoilvisValueError: an option is out of range, ``attention`` asks for links the
            record does not hold, or ``mass`` is asked with a ``color`` other than ``"prob"``.

    Examples:
        >>> import numpy as np, coilvis
        >>> rec = coilvis.from_logits(np.zeros((5, 4)), tokens=[0, 1, 2, 3, 0], vocab=["a", " b", "c", "."])
        >>> view = coilvis.coil(rec)
        >>> len(view.segments.data["pos"]), view.model("coil_segments").name
        (5, 'coil_segments')
    """
    if isinstance(record, Comparison):  # two runs side by side: the diff coil, with the options set here
        from coilvis.views.diff.dispatch import for_comparison

        return for_comparison("coil", record, locals(), coil)  # type: ignore[return-value]
    o = _checked_options(
        record, layout=layout, color=color, attention=attention, attention_threshold=attention_threshold,
        attention_top_k=attention_top_k, max_links=max_links, width=width, height=height, title=title,
        label_font_px=label_font_px, tooltip_k=tooltip_k, pace=pace, whitespace=whitespace, mass=mass, mass_k=mass_k,
        flags={"hide_sink": hide_sink, "labels": labels, "clockwise": clockwise, "animate": animate, "autoplay": autoplay},
    )  # fmt: skip
    lay, band_lay = coil_layouts(record.seq_len, o.kind, n_arc=n_arc, clockwise=clockwise)
    line = rows_layout(lay) if animate else geometry.unwound_layout(lay)
    schedule, schedule_cols = None, None
    if animate:
        schedule, schedule_cols = schedule_columns(record, pace=o.pace, duration_s=duration_s, floor_bits=floor_bits)
    word, sentence = token_groups(record.tokens)
    stats = stat_columns(record)
    scale = entropy_scale(record, _style.view_scale("coil", o.stat.name, stats[o.stat.column], palette=palette, arg="color"))
    scale = mass_scale(scale, k=o.mass_k) if o.mass else scale
    topk_cols, vocab = topk_columns(record, tooltip_k=o.k, table_k=o.mass_k if o.mass else 0)
    columns = segment_columns(
        record, lay, line, topk=topk_cols, stats=stats, word=word, sentence=sentence, schedule=schedule_cols
    )
    segments = ColumnDataSource(columns, name="coil_segment_source")
    frame = fit_frame(lay, line, width=o.width, height=o.height, animate=animate)
    p = coil_figure(record, frame, title=title)
    draw_band(p, band_lay, lay, word, sentence)
    parts = _draw_parts(
        p, record, o, segments, vocab, scale, lay=lay, line=line if animate else None, frame=frame,
        label_pct=stats[scale.column], labels=labels, whitespace=whitespace, hide_sink=hide_sink, attention=attention,
    )  # fmt: skip
    rings, arcs, label_source = parts.rings, parts.arcs, parts.labels
    unwind = None
    if schedule is not None:
        front = build_front(p, segments, scale=scale, mapper=parts.mapper, mass=rings.source if rings else None, arcs=arcs)
        unwind = build_unwind(
            figure=p, segments=segments, links=arcs.links if arcs is not None else None, labels=label_source,
            text_format=parts.text_format, coiled=lay, line=line, schedule=schedule, autoplay=autoplay,
            width_px=o.width, mass=rings.source if rings else None, front=front,
            highlight=arcs.highlight if arcs is not None else None,
        )  # fmt: skip
    order_overlays(p)
    return _view(
        record, p, segments, arcs, unwind, labels=label_source, coiled=lay, unwound=line, choices=o.choices,
        scale=scale, frame=frame, font_px=parts.font_px, schedule=schedule, title=title, rings=rings,
    )  # fmt: skip


@dataclass(frozen=True)
class _Options:
    """:func:`coil`'s options, checked (each error names its argument)."""

    kind: str
    stat: Any
    threshold: float
    top_k: int | None
    max_links: int
    width: int
    height: int
    label_font_px: int
    k: int
    mass: bool
    mass_k: int
    choices: list[AttentionChoice]
    pace: str


def _checked_options(
    record: Any, *, layout: Any, color: Any, attention: Any, attention_threshold: Any, attention_top_k: Any,
    max_links: Any, width: Any, height: Any, title: Any, label_font_px: Any, tooltip_k: Any, pace: Any,
    whitespace: Any, mass: Any, mass_k: Any, flags: dict[str, Any],
) -> _Options:
    """Check every option of :func:`coil` before anything is drawn."""
    if not isinstance(record, Record):
        raise CoilvisTypeError(f"record: expected a coilvis Record, got {type(record).__name__}")
    kind = _check_choice("layout", layout)
    stat = get_stat("coil", color, arg="color")
    threshold = check_float("attention_threshold", attention_threshold, minimum=0.0, maximum=1.0)
    top_k = None if attention_top_k is None else check_int("attention_top_k", attention_top_k, minimum=1)
    max_links = check_int("max_links", max_links, minimum=0)
    width = check_int("width", width, minimum=100)
    height = check_int("height", height, minimum=100)
    label_font_px = check_int("label_font_px", label_font_px, minimum=1)
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    _check_flags(**flags, mass=mass)
    _check_choice("whitespace", whitespace)
    k = check_k(tooltip_k, available=record.k, name="tooltip_k", default=DEFAULT_K)
    mass_k = check_mass(mass, mass_k, record=record, color=stat.name)
    choices = parse_attention(attention, record)
    pace = _check_choice("pace", pace) if flags["animate"] else pace
    return _Options(kind, stat, threshold, top_k, max_links, width, height, label_font_px, k, bool(mass), mass_k, choices, pace)


@dataclass
class _Parts:
    """What :func:`_draw_parts` adds to the figure and the unwind moves."""

    mapper: Any
    rings: MassParts | None
    arcs: ArcParts | None
    labels: ColumnDataSource | None
    font_px: int
    text_format: Any


def _draw_parts(
    p: Any, record: Record, o: _Options, segments: ColumnDataSource, vocab: dict[str, Any], scale: Any, *,
    lay: geometry.Layout, line: geometry.Layout | None, frame: Frame, label_pct: np.ndarray, labels: bool,
    whitespace: str, hide_sink: bool, attention: Any,
) -> _Parts:
    """Draw the segments, mass rings, arcs, labels, markers and hover of a coil into ``p``
    (``line``: the layout the unwind moves to, None for a still coil)."""
    renderer, mapper = draw_segments(p, segments, scale, hover_glyph=False)
    rings = build_mass(p, record, lay, line, k=o.mass_k, vocab_ids=vocab["token_id"],
                       mapper=mapper, segments=segments) if o.mass else None  # fmt: skip
    arcs = None
    if o.choices:
        arcs = draw_arcs(p, record, o.choices, segments, top_k=o.top_k, threshold=o.threshold, hide_sink=hide_sink,
                         max_links=o.max_links, initial=opening_choice(attention, o.choices))  # fmt: skip
    font_px = fitted_font_px(lay, px_per_unit=frame.px_per_unit, max_font_px=o.label_font_px) if labels else 0
    label_source = None
    if font_px:
        pct = rings.label_pct if rings else label_pct
        label_source = _labels(p, record, lay, frame, pct, scale, font_px=font_px, whitespace=whitespace)
    draw_markers(p, lay)
    highlight = highlight_callback(arcs, segments) if arcs is not None else None
    outline = None if o.mass else draw_hover_outline(p, segments)  # with rings, the piece hovered is outlined
    text_format = add_hover(p, renderer, segments, vocab, k=o.k, highlight=highlight, served_k=sent_k(record),
                            tooltips=not o.mass, outline=outline)  # fmt: skip
    if rings is not None:
        add_mass_hover(p, rings.renderer, k=o.mass_k, text_format=text_format)
    add_notes(p, mapper, scale, arcs=bool(o.choices), width=o.width)
    return _Parts(mapper, rings, arcs, label_source, font_px, text_format)
