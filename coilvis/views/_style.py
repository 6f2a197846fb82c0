"""What every coilvis view shares: palettes, colour scales and bars, tooltips, small JS transforms.

The coil and the lens colour cells by the same statistics (probability in %, entropy and
surprisal in bits, rank on a log scale), so the colour scales, their colour bars and the
Python-side copy of Bokeh's colour mapping (used to pick readable label colours) live
here. Default palettes are perceptually uniform (Viridis, Cividis, Magma) and oriented so
that **bright means unexpected** in every statistic: low probability, high entropy, high
surprisal and a poor rank are bright; what the model was sure of is dark.

Nothing here ever puts token text into HTML or JavaScript source: tooltips are templates
of ``@field`` references (which Bokeh escapes) around fixed markup, and the JavaScript
transforms only move numbers. Every text a view gives a Bokeh text property (titles, axis
labels, tick labels, colour bar titles) goes through :func:`plain_text`, so that no token,
layer name, model name or title is ever typeset as mathematics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from bokeh import palettes as bokeh_palettes
from bokeh.models import (
    BasicTickFormatter,
    ColorBar,
    CustomJSTransform,
    LinearColorMapper,
    LogColorMapper,
    PlainText,
    PrintfTickFormatter,
)

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import COIL_STATS, PALETTE_NAMES, STAT_VIEWS, Stat, get_stat
from coilvis.options import STATS as STATS_TABLE

__all__ = [
    "NAN_COLOR",
    "FONT",
    "PALETTES",
    "STATS",
    "ColorScale",
    "resolve_palette",
    "stat_scale",
    "view_scale",
    "color_mapper",
    "color_bar",
    "map_colors",
    "text_colors",
    "plain_text",
    "tooltip_html",
    "rows_transform",
    "lookup_transform",
]

#: Colour of cells whose statistic is unknown (the last position has no actual next token).
NAN_COLOR = "#d0d0d0"
#: Font family of labels drawn on the canvas.
FONT = "helvetica, arial, sans-serif"


def _palette256(name: str) -> tuple[str, ...]:
    """Bokeh's 256-colour palette ``name``, or its largest ColorBrewer palette (11 colours) spread over 256."""
    colors = getattr(bokeh_palettes, f"{name}256", None)
    return tuple(colors if colors is not None else bokeh_palettes.interp_palette(getattr(bokeh_palettes, f"{name}11"), 256))


#: Named palettes accepted by ``palette=`` (each 256 colours; the sequential ones perceptually uniform).
PALETTES: dict[str, tuple[str, ...]] = {name: _palette256(name) for name in PALETTE_NAMES}

_HEX = re.compile(r"#[0-9a-fA-F]{6}")
#: Characters without which no TeX can be written (every delimiter BokehJS knows needs one).
_TEX_CHARS = ("$", "\\")


#: The statistics the coil can colour by (``color=``), by name: the coil's rows of
#: :data:`coilvis.options.STATS` (data column, colour bar title with unit, legend
#: sentence, default palette and whether it runs reversed, log scale, tick format).
STATS: dict[str, Stat] = {name: STATS_TABLE[("coil", name)] for name in COIL_STATS}


@dataclass(frozen=True)
class ColorScale:
    """How one statistic maps to colour.

    Attributes:
        column: the data-source column holding the statistic.
        title: the colour bar's title, naming the unit.
        legend: one sentence saying what colour means, for the figure.
        palette: colours from ``low`` to ``high``.
        low: value mapped to ``palette[0]``.
        high: value mapped to ``palette[-1]``.
        log: map on a log scale (``low`` > 0).
        tick_format: printf format of the colour bar's tick labels, or None.
    """

    column: str
    title: str
    legend: str
    palette: tuple[str, ...]
    low: float
    high: float
    log: bool = False
    tick_format: str | None = None


def resolve_palette(palette: Any, *, default: str, reverse: bool = False) -> tuple[str, ...]:
    """The colours of a palette argument.

    Args:
        palette: None (``default``, reversed when ``reverse``), a name from
            :data:`PALETTES` (optionally with a size suffix such as ``"Viridis256"``, or
            ``"_r"`` to reverse), or a sequence of at least two ``"#rrggbb"`` colours.
        default: the palette name used for None.
        reverse: reverse the default (never a palette the caller gave).

    Returns:
        A tuple of ``"#rrggbb"`` strings, low to high.

    Raises:
        CoilvisTypeError: ``palette`` is neither a str nor a sequence of str.
        CoilvisValueError: an unknown name, fewer than two colours, or a colour that is
            not ``"#rrggbb"``.

    Examples:
        >>> resolve_palette(None, default="Viridis")[0]
        '#440154'
        >>> resolve_palette("Magma256_r", default="Viridis")[-1]
        '#000003'
        >>> resolve_palette(["#000000", "#ffffff"], default="Viridis")
        ('#000000', '#ffffff')
    """
    if palette is None:
        colors = PALETTES[default]
        return tuple(reversed(colors)) if reverse else colors
    if isinstance(palette, str):
        name, flip = (palette[:-2], True) if palette.endswith("_r") else (palette, False)
        base = name.rstrip("0123456789")
        if base not in PALETTES or (name != base and name != f"{base}256"):
            raise CoilvisValueError(
                f"palette: expected one of {sorted(PALETTES)} (optionally with '256' or '_r'), "
                f"or a sequence of '#rrggbb' colours, got {palette!r}"
            )
        colors = PALETTES[base]
        return tuple(reversed(colors)) if flip else colors
    if not isinstance(palette, Sequence):
        raise CoilvisTypeError(
            f"palette: expected a palette name or a sequence of '#rrggbb' colours, got {type(palette).__name__}"
        )
    colors = tuple(palette)
    if len(colors) < 2:
        raise CoilvisValueError(f"palette: expected at least 2 colours, got {len(colors)}")
    for color in colors:
        if not isinstance(color, str) or _HEX.fullmatch(color) is None:
            raise CoilvisValueError(f"palette: expected '#rrggbb' colours, got {color!r}")
    return colors


def plain_text(text: str) -> str | PlainText:
    """A text for a Bokeh text property, drawn exactly as written.

    BokehJS typesets a plain ``str`` that holds TeX delimiters (``$$x$$``, ``\\(x\\)``,
    ``\\[x\\]``) in titles, axis labels and tick labels with MathJax, and a saved page
    then inlines the MathJax bundle (about 1.8 MB). A token, a layer name, a model name
    or a title is never mathematics: a text holding ``$`` or a backslash becomes a
    ``PlainText`` model, which BokehJS draws as written. Other texts stay ``str``, which
    BokehJS cannot typeset (every TeX delimiter needs one of those characters) and which
    cost a page nothing extra (a ``PlainText`` per tick label would add a model each).

    Args:
        text: the text to show.

    Returns:
        ``text`` itself, or ``PlainText(text=text)`` when it holds ``$`` or ``\\``.

    Raises:
        CoilvisTypeError: ``text`` is not a str.

    Examples:
        >>> plain_text("layer 3")
        'layer 3'
        >>> plain_text("$$x^2$$").text
        '$$x^2$$'
    """
    if not isinstance(text, str):
        raise CoilvisTypeError(f"text: expected a str, got {type(text).__name__}")
    if any(char in text for char in _TEX_CHARS):
        return PlainText(text=text)
    return text


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def view_scale(view: str, stat: str, values: Any, *, palette: Any = None, arg: str = "stat") -> ColorScale:
    """The colour scale of a statistic of :data:`coilvis.options.STATS`, with a range that fits the data.

    The row ``(view, stat)`` gives the column, title, legend, default palette, scale and
    range rule (:meth:`coilvis.options.Stat.limits`): probability 0 to 100 %; entropy,
    surprisal and KL 0 to the largest value (at least 1 bit); JS and TV 0 to 1; rank 1
    to the largest rank (at least 10), on a log scale; a signed change (a metric's)
    from ``-m`` to ``m``, ``m`` its largest absolute value.

    Args:
        view: one of :data:`coilvis.options.STAT_VIEWS` (``"coil"``, ``"lens"``, ``"compare"``, ...).
        stat: a statistic of ``view`` (:func:`coilvis.options.stat_names`).
        values: (n,) the statistic in its unit (%, bits, 1-based rank); NaN where unknown.
        palette: see :func:`resolve_palette`.
        arg: the argument named in the error for an unknown ``stat``.

    Returns:
        A :class:`ColorScale`.

    Raises:
        CoilvisValueError: unknown ``view`` or ``stat``, or a bad ``palette``.

    Examples:
        >>> s = view_scale("compare", "js", [0.2, 0.4])
        >>> s.column, s.low, s.high
        ('value', 0.0, 1.0)
    """
    if view not in STAT_VIEWS:
        raise CoilvisValueError(f"view: expected one of {list(STAT_VIEWS)}, got {view!r}")
    spec = get_stat(view, stat, arg=arg)
    colors = resolve_palette(palette, default=spec.palette, reverse=spec.reverse)
    finite = _finite(values)
    if spec.span == "symmetric":  # a signed change: centred on 0, as far as the largest one either way
        finite = np.abs(finite)
    low, high = spec.limits(float(finite.max()) if finite.size else 0.0)
    return ColorScale(
        column=spec.column,
        title=spec.title,
        legend=spec.legend,
        palette=colors,
        low=low,
        high=high,
        log=spec.log,
        tick_format=spec.tick_format,
    )


def stat_scale(stat: str, values: Any, *, palette: Any = None) -> ColorScale:
    """The colour scale of a coil statistic from :data:`STATS` (see :func:`view_scale`).

    Ranges: probability 0 to 100 %; entropy and surprisal 0 to the largest value (at
    least 1 bit); rank 1 to the largest rank (at least 10), on a log scale.

    Args:
        stat: ``"prob"``, ``"target_prob"``, ``"entropy"``, ``"surprisal"`` or ``"rank"``.
        values: (n,) the statistic in its column's unit (%, bits, 1-based rank); NaN
            where unknown.
        palette: see :func:`resolve_palette`.

    Returns:
        A :class:`ColorScale`.

    Raises:
        CoilvisValueError: unknown ``stat`` or bad ``palette``.

    Examples:
        >>> s = stat_scale("entropy", [0.5, 3.2, float("nan")])
        >>> s.column, s.low, s.high, s.log
        ('entropy_bits', 0.0, 3.2, False)
        >>> stat_scale("rank", [1, 5]).high
        10.0
    """
    if not isinstance(stat, str) or stat not in STATS:
        raise CoilvisValueError(f"color: expected one of {sorted(STATS)}, got {stat!r}")
    return view_scale("coil", stat, values, palette=palette, arg="color")


def color_mapper(scale: ColorScale, *, name: str | None = None) -> LinearColorMapper | LogColorMapper:
    """The Bokeh colour mapper of a scale (NaN drawn in :data:`NAN_COLOR`).

    Args:
        scale: the colour scale.
        name: the mapper's model name.

    Returns:
        A ``LogColorMapper`` for a log scale, else a ``LinearColorMapper``.
    """
    cls = LogColorMapper if scale.log else LinearColorMapper
    return cls(
        palette=list(scale.palette),
        low=scale.low,
        high=scale.high,
        nan_color=NAN_COLOR,
        name=name,
    )


def color_bar(mapper: LinearColorMapper | LogColorMapper, scale: ColorScale, *, name: str | None = None) -> ColorBar:
    """A vertical colour bar whose title names the statistic and its unit.

    Args:
        mapper: the mapper the glyphs use.
        scale: its scale (for the title and tick format).
        name: the colour bar's model name.

    Returns:
        A ``ColorBar`` to add to a figure with ``add_layout(bar, "right")``.
    """
    formatter = PrintfTickFormatter(format=scale.tick_format) if scale.tick_format else BasicTickFormatter()
    kwargs: dict[str, Any] = {}
    if not scale.log:
        kwargs["formatter"] = formatter
    return ColorBar(
        color_mapper=mapper,
        title=plain_text(scale.title),
        title_text_font_style="normal",
        title_text_font_size="12px",
        major_label_text_font_size="11px",
        width=14,
        padding=8,
        name=name,
        **kwargs,
    )


def map_colors(values: Any, scale: ColorScale) -> list[str]:
    """The colour Bokeh's mapper gives each value, computed in Python.

    Follows BokehJS: values are placed in ``len(palette)`` equal bins between ``low``
    and ``high`` (of ``log(value)`` on a log scale); values outside are clamped to the
    end colours; NaN (and non-positive values on a log scale) give :data:`NAN_COLOR`.

    Args:
        values: (n,) numbers.
        scale: the colour scale.

    Returns:
        (n,) list of ``"#rrggbb"`` strings.

    Examples:
        >>> s = ColorScale("v", "", "", ("#000000", "#ffffff"), 0.0, 1.0)
        >>> map_colors([0.1, 0.9, float("nan")], s)
        ['#000000', '#ffffff', '#d0d0d0']
    """
    v = np.asarray(values, dtype=np.float64)
    n_colors = len(scale.palette)
    with np.errstate(invalid="ignore", divide="ignore"):
        if scale.log:
            low, high = math.log(scale.low), math.log(scale.high)
            t = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)
        else:
            low, high = scale.low, scale.high
            t = v
        span = high - low if high != low else 1.0
        idx = np.floor((t - low) / span * n_colors)
    ok = np.isfinite(idx)
    idx = np.clip(np.where(ok, idx, 0), 0, n_colors - 1).astype(np.int64)
    return [scale.palette[i] if good else NAN_COLOR for i, good in zip(idx.tolist(), ok.tolist(), strict=True)]


def _luminance(color: str) -> float:
    channels = [int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_colors(background: Sequence[str]) -> list[str]:
    """Black or white, whichever contrasts more with each background colour (WCAG).

    Args:
        background: (n,) ``"#rrggbb"`` colours.

    Returns:
        (n,) ``"#000000"`` or ``"#ffffff"``.

    Examples:
        >>> text_colors(["#ffff00", "#000080"])
        ['#000000', '#ffffff']
    """
    out = []
    for color in background:
        lum = _luminance(color)
        # contrast with black (lum + 0.05) / 0.05 vs with white 1.05 / (lum + 0.05)
        out.append("#000000" if (lum + 0.05) ** 2 > 0.0525 else "#ffffff")
    return out


_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMAT = re.compile(r"[0-9a-zA-Z.,%$+\-() ]*")


def tooltip_html(rows: Sequence[tuple[str, str]], *, max_width_px: int = 380) -> str:
    """A hover-tool template of fixed markup around escaped ``@field`` values.

    Args:
        rows: (label, value) pairs. ``label`` is fixed text written by coilvis (it
            must not contain ``<``, ``>``, ``&`` or ``@``); ``value`` is a template of
            ``@field`` or ``@field{format}`` references and fixed text. A value whose
            template starts with ``"pre:"`` is shown with its line breaks kept.

    Returns:
        The template. Bokeh escapes every ``@field`` value; the unescaping ``safe``
        format is refused.

    Raises:
        CoilvisValueError: a label holds markup, a value uses the ``safe`` format or a field
            name that is not an identifier.

    Examples:
        >>> "@pos" in tooltip_html([("position", "@pos")])
        True
    """
    parts = [f'<div style="max-width:{max_width_px}px;font-size:12px;line-height:1.35">']
    for label, value in rows:
        if any(ch in label for ch in "<>&@"):
            raise CoilvisValueError(f"rows: a label must be plain text, got {label!r}")
        pre = value.startswith("pre:")
        if pre:
            value = value[4:]
        for match in re.finditer(r"@(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)(\{([^}]*)\})?", value):
            field = match.group(1)
            if field.startswith("{") or _FIELD.fullmatch(field) is None:
                raise CoilvisValueError(f"rows: field names must be identifiers, got {field!r}")
            fmt = match.group(3)
            if fmt is not None and (fmt.strip().lower() == "safe" or _FORMAT.fullmatch(fmt) is None):
                raise CoilvisValueError(f"rows: format {{{fmt}}} is not allowed (token text is never left unescaped)")
        style = "white-space:pre;font-family:monospace;font-size:11px" if pre else "white-space:pre-wrap"
        if label:
            parts.append(
                f'<div><span style="color:#666">{label}</span> <span style="{style}">{value}</span></div>'
                if not pre
                else f'<div style="color:#666;margin-top:3px">{label}</div><div style="{style}">{value}</div>'
            )
        else:
            parts.append(f'<div style="{style}">{value}</div>')
    parts.append("</div>")
    return "".join(parts)


_ROWS_JS = """
// xs: an (n, m) array (flat, with .shape); give the glyph n rows of m values (views, no copy)
const shape = xs.shape
if (shape == null || shape.length != 2) return xs
const n = shape[0], m = shape[1], size = xs.BYTES_PER_ELEMENT
const Typed = xs instanceof Float64Array ? Float64Array : Float32Array
const out = new Array(n)
for (let i = 0; i < n; i++) out[i] = new Typed(xs.buffer, xs.byteOffset + i * m * size, m)
return out
"""

_LOOKUP_JS = """
// xs: integer positions; return source.data[column] at each of them
const values = source.data[column]
const out = new Float64Array(xs.length)
for (let i = 0; i < xs.length; i++) out[i] = values[xs[i]]
return out
"""


def rows_transform(*, name: str | None = None) -> CustomJSTransform:
    """A transform that hands a glyph the rows of an ``(n, m)`` array column.

    Bokeh ships a 2-D numpy array as one binary block but ``patches`` wants a list of
    arrays, and a list of n small arrays costs about 250 bytes each in a page. Storing
    polygons as one ``(n, m)`` float32 column and drawing
    ``patches(xs=transform("xs", rows_transform()), ...)`` keeps pages small.

    Returns:
        A ``CustomJSTransform`` (JavaScript that only slices numbers).
    """
    return CustomJSTransform(v_func=_ROWS_JS, name=name)


def lookup_transform(source: Any, column: str, *, name: str | None = None) -> CustomJSTransform:
    """A transform that maps integer positions to ``source.data[column]`` at those positions.

    Used to draw links between positions (``x0=transform("query", lookup(...))``)
    without storing their end points per link.

    Args:
        source: the ``ColumnDataSource`` holding ``column`` (one row per position).
        column: the column to read.

    Returns:
        A ``CustomJSTransform``.
    """
    if _FIELD.fullmatch(column) is None:
        raise CoilvisValueError(f"column: expected an identifier, got {column!r}")
    return CustomJSTransform(args={"source": source, "column": column}, v_func=_LOOKUP_JS, name=name)
