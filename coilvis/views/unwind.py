"""The unwind: the coil unrolls into rows of text, paced by the model's uncertainty.

``coilvis.coil(record, animate=True)`` adds this to the coil: play/pause, restart, loop,
a speed control, a scrub slider over positions and a readout of the current token and
the model's top-k there. The playhead dwells on each position for a time that grows with
its entropy (or surprisal): see :mod:`coilvis.views.schedule` for the formula. The
schedule is computed here in Python and stored in the page (``start_s`` and ``dwell_s``
columns of the segment source); ``unwind.js`` (a real file in the package, run as a
Bokeh ``CustomJS``) drives it with ``requestAnimationFrame`` and moves only the segments
whose place changed. Nothing needs a server: it runs in a saved page and in a notebook.

A frame repaints the figure's overlay canvas only: while it plays, the positions from the
playhead to about a second ahead are drawn there by the front layer
(:mod:`coilvis.views.coil.front`), and the main canvas (every segment and arc) is
repainted when the playhead passes them or stops, about once a second; the slider and
the readout follow at most every 250 ms while it plays, and the selection (a page's
table and lens follow it) at each of those repaints.

Named models: ``coil_unwind_play`` (Button), ``coil_unwind_restart`` (Button),
``coil_unwind_loop`` (Toggle), ``coil_unwind_speed`` (Slider), ``coil_unwind_scrub``
(Slider over positions ``[0, seq_len]``; its value is the playhead),
``coil_unwind_readout`` (PreText), ``coil_unwind_playhead`` (the marker) over
``coil_unwind_playhead_source``. In the page, the controller object lives on the segment
source as ``__coilvis_unwind`` (``state.progress``, ``state.frames``, ``state.commits``,
..., and ``render(progress, stopped)``, ``position_at(t_s)``), for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.layouts import row
from bokeh.models import Button, ColumnDataSource, CustomJS, CustomJSHover, IndexFilter, PreText, Slider, Toggle

from coilvis import geometry
from coilvis.record import Record
from coilvis.views.schedule import Schedule, record_schedule

if TYPE_CHECKING:
    from coilvis.views.coil.front import FrontParts

__all__ = ["UnwindParts", "build_unwind", "unwind_js"]

_PLAYHEAD_COLOR = "#e6550d"


def unwind_js() -> str:
    """The animation's JavaScript (the body of a Bokeh ``CustomJS``), read from ``unwind.js``."""
    return resources.files("coilvis.views").joinpath("unwind.js").read_text(encoding="utf-8")


@dataclass
class UnwindParts:
    """What :func:`build_unwind` adds to a coil.

    Attributes:
        controls: a row of the play/restart/loop buttons and the speed and scrub sliders.
        readout: the PreText showing the current token and the top-k there.
        ready: CustomJS callbacks to run on ``document_ready`` (autoplay).
    """

    controls: Any
    readout: PreText
    ready: list[CustomJS]


def schedule_columns(record: Record, *, pace: str, duration_s: float | None, floor_bits: float) -> tuple[Schedule, dict[str, np.ndarray]]:
    """The schedule of a record and the segment-source columns that carry it.

    Returns:
        ``(schedule, {"start_s": (n,) float32, "dwell_s": (n,) float32})``.
    """
    schedule = record_schedule(record, pace=pace, floor_bits=floor_bits, duration_s=duration_s)
    return schedule, {"start_s": schedule.start_s.astype(np.float32), "dwell_s": schedule.dwell_s.astype(np.float32)}


def _widgets(n: int, schedule: Schedule, *, width_px: int, autoplay: bool) -> dict[str, Any]:
    """The controls (``play``, ``restart``, ``loop``, ``speed``, ``scrub``) and the ``readout``."""
    lead = "The coil unwinds" if autoplay else "Press ▶ play: the coil unwinds"
    return {
        "play": Button(label="▶ play", button_type="primary", width=90, name="coil_unwind_play"),
        "restart": Button(label="↺ restart", width=90, name="coil_unwind_restart"),
        "loop": Toggle(label="loop", active=False, width=60, name="coil_unwind_loop"),
        "speed": Slider(start=0.25, end=4.0, step=0.25, value=1.0, title="speed ×", width=140, name="coil_unwind_speed"),
        "scrub": Slider(
            start=0.0,
            end=float(n),
            step=0.01,
            value=0.0,
            title="position",
            width=max(160, width_px - 420),
            name="coil_unwind_scrub",
        ),
        "readout": PreText(
            text=(
                f"{lead} token by token in {schedule.duration_s:.0f} s, "
                f"dwelling on each position for a time that grows with its {schedule.pace} "
                f"(floor {schedule.floor_bits:g} bits + {schedule.pace} in bits)."
            ),
            width=width_px,
            disable_math=True,  # token text, never mathematics
            name="coil_unwind_readout",
        ),
    }


def _playhead(figure: Any, coiled: geometry.Layout) -> ColumnDataSource:
    """The playhead's marker (``coil_unwind_playhead``), at the first segment."""
    playhead = ColumnDataSource({"x": [float(coiled.x[0])], "y": [float(coiled.y[0])]}, name="coil_unwind_playhead_source")
    figure.scatter(
        "x",
        "y",
        source=playhead,
        marker="circle",
        size=14,
        fill_color=None,
        line_color=_PLAYHEAD_COLOR,
        line_width=3,
        level="overlay",  # moved every frame: on the overlay canvas (see coilvis.views.coil.front)
        name="coil_unwind_playhead",
    )
    return playhead


#: How far ahead of the playhead a front reaches: seconds of playback at the current speed
#: (a repaint of the main canvas about this often while playing), and positions at most.
FRONT_HORIZON_S = 1.0
MAX_FRONT = 256
#: The most arcs of other positions crossing the front that it draws above itself (the
#: heaviest), as they are drawn on a single canvas; lighter ones pass under it while it plays.
MAX_CROSSING = 1000


def _front_args(front: FrontParts | None) -> dict[str, Any]:
    """The front layer's models as the script's arguments (None where absent)."""
    return {
        "front": front.segments if front else None,
        "hidden": front.hidden if front else None,
        "color_column": front.color_column if front else "",
        "front_mass": front.mass if front else None,
        "hidden_pieces": front.hidden_pieces if front else None,
        "front_outline": front.outline if front else None,
        "hidden_outline": front.hidden_outline if front else None,
        "front_links": front.links if front else None,
        "front_crossing": front.crossing if front else None,
        "hidden_links": front.hidden_links if front else None,
        "front_highlight": front.highlight if front else None,
        "horizon_s": FRONT_HORIZON_S,
        "max_front": MAX_FRONT,
        "max_crossing": MAX_CROSSING,
        **geometry.arcs.js_constants(),
    }


def build_unwind(
    *,
    figure: Any,
    segments: ColumnDataSource,
    links: ColumnDataSource | None,
    labels: ColumnDataSource | None,
    text_format: CustomJSHover,
    coiled: geometry.Layout,
    line: geometry.Layout,
    schedule: Schedule,
    autoplay: bool = True,
    width_px: int = 720,
    mass: ColumnDataSource | None = None,
    front: FrontParts | None = None,
    highlight: IndexFilter | None = None,
) -> UnwindParts:
    """Add the unwind's controls, playhead and readout to a coil figure.

    Args:
        figure: the coil's Bokeh figure.
        segments: the coil's segment source, with ``start_s``/``dwell_s`` columns and
            ``x_line``/``y_line``/``angle_line_rad`` giving ``line``'s centres.
        links: the attention link source, or None.
        labels: the label source, or None.
        text_format: the coil's tooltip text formatter (``coil_text_format``).
        coiled: the coil's layout.
        line: the layout the segments unwind to (kind ``"line"``).
        schedule: the timing.
        autoplay: start playing when the page is ready (playback stops at the end
            unless loop is on).
        width_px: width of the controls row.
        mass: the mass rings' source (``coil_mass_source``, with the radial bounds of
            each piece on the coil and on the line), or None: the rings are cut from
            their moving segment.
        front: the front layer (:func:`coilvis.views.coil.front.build_front`) that draws
            the positions about to move while the unwind plays, or None: every frame
            then repaints the whole figure.
        highlight: the arcs' highlight filter (``coil_highlight_filter``), or None: the
            playhead's links are highlighted when it stops.

    Returns:
        :class:`UnwindParts`.
    """
    widgets = _widgets(coiled.n, schedule, width_px=width_px, autoplay=autoplay)
    playhead = _playhead(figure, coiled)
    # one segment on the line, in its own frame (all line segments are the same shape)
    local_x = (line.poly_xs[0] - line.x[0]).astype(np.float64)
    local_y = (line.poly_ys[0] - line.y[0]).astype(np.float64)
    inner_sign = -1.0 if line.clockwise else 1.0  # the line's inner side faces away from the group band
    args: dict[str, Any] = {
        "segments": segments,
        "links": links,
        "labels": labels,
        "mass": mass,
        "playhead": playhead,
        **{name: widgets[name] for name in ("scrub", "speed", "play", "loop", "readout")},
        "text_format": text_format,
        "line_local_x": local_x.tolist(),
        "line_local_y": local_y.tolist(),
        "line_anchor_dx": 0.0,
        "line_anchor_dy": inner_sign * 0.5 * line.band_width,
        "highlight": highlight,
        **_front_args(front),
    }
    unwind = CustomJS(args=args, code=unwind_js(), name="coil_unwind_js")  # the page holds the script once

    def callback(action: str, name: str) -> CustomJS:
        # the action is one of the names above, never text from the record
        return CustomJS(args={"unwind": unwind}, code=f'unwind.execute(cb_obj, {{action: "{action}"}})', name=name)

    widgets["play"].js_on_click(callback("toggle", "coil_unwind_toggle_js"))
    widgets["restart"].js_on_click(callback("restart", "coil_unwind_restart_js"))
    widgets["loop"].js_on_change("active", callback("loop", "coil_unwind_loop_js"))
    widgets["speed"].js_on_change("value", callback("speed", "coil_unwind_speed_js"))
    widgets["scrub"].js_on_change("value", callback("scrub", "coil_unwind_scrub_js"))
    ready = [callback("play", "coil_unwind_autoplay_js")] if autoplay else []
    buttons = (widgets[name] for name in ("play", "restart", "loop", "speed", "scrub"))
    controls = row(*buttons, name="coil_unwind_controls")
    return UnwindParts(controls=controls, readout=widgets["readout"], ready=ready)
