"""Option names, statistics and parsing shared by the API, the command line and the gallery.

The base layer of coilvis (standard library and :mod:`coilvis.errors` only, no Bokeh):

* :data:`STATS`: the one table of the statistics a view colours by, keyed by
  ``(view, name)``: what each one is called, its unit, its colour bar title and legend,
  its default palette (a name; :mod:`coilvis.views._style` turns names into colours),
  its range and scale. The coil, the lens (one record or a comparison of two), the CLI
  and the gallery read it.
* :func:`attention_option`: the attention spec of a command line or a prompts file
  (``"mean"``, ``"max"``, ``"3:1"``, ``[3, 1]``) as :func:`coilvis.coil` takes it.
* :func:`check_k`: the one rule for ``k``, a number of top tokens to keep or show.
* :data:`OPTIONS`: the keyword options of :func:`coilvis.coil`, :func:`coilvis.lens`,
  :func:`coilvis.page`, :func:`coilvis.run` and :meth:`coilvis.Record.table`, as data
  (name, kind, default, choices, range, help); the command line's flags and the
  gallery's option keys are attributes of these declarations, so both are derived from
  them instead of being mapped by hand.
* :data:`LN2`: ``ln 2``, to turn nats into bits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int

__all__ = [
    "LN2",
    "DEFAULT_K",
    "PALETTE_NAMES",
    "Stat",
    "STATS",
    "STAT_VIEWS",
    "COIL_STATS",
    "LENS_STATS",
    "COMPARE_STATS",
    "DIFF_COIL_STATS",
    "DIFF_LENS_STATS",
    "stat_names",
    "get_stat",
    "attention_option",
    "check_k",
    "Option",
    "OPTIONS",
    "APIS",
    "declared",
    "get_option",
    "describe",
]

#: ln 2: a value in nats divided by it is in bits.
LN2 = math.log(2.0)

#: Top tokens shown when a caller gives no ``k`` (a table's rows, a hover's list).
DEFAULT_K = 10

#: Palettes a ``palette=`` name may give, each of 256 colours: five perceptually uniform
#: sequential ones, and ``"RdBu"`` (ColorBrewer's red-blue, diverging: for signed changes).
PALETTE_NAMES: tuple[str, ...] = ("Viridis", "Cividis", "Magma", "Inferno", "Plasma", "RdBu")

# ------------------------------------------------------------------------------ statistics

#: The views that colour by a statistic: the coil, the lens of one record, the lens
#: comparing two records, and the diff coil and diff lens of a Comparison.
STAT_VIEWS: tuple[str, ...] = ("coil", "lens", "compare", "diff_coil", "diff_lens")

Span = Literal["percent", "zero_to_max", "rank", "unit", "symmetric"]


@dataclass(frozen=True)
class Stat:
    """One statistic a view colours by.

    Attributes:
        view: ``"coil"``, ``"lens"`` or ``"compare"`` (the lens of two records).
        name: what ``color=`` / ``stat=`` / ``--color`` / ``--stat`` call it.
        label: a few words saying what it is, for help texts.
        column: the view's data-source column holding it, in ``unit``.
        unit: ``"%"``, ``"bits"``, ``"rank"`` (1 = top) or ``""`` (a number in [0, 1]).
        title: the colour bar's title, naming the unit.
        legend: one sentence saying what colour means.
        palette: the default palette's name (one of :data:`PALETTE_NAMES`).
        reverse: run the default palette reversed (bright = unexpected in every view).
        log: map colours on a log scale.
        tick_format: printf format of the colour bar's tick labels, or None.
        span: the colour range rule (see :meth:`limits`).
    """

    view: str
    name: str
    label: str
    column: str
    unit: str
    title: str
    legend: str
    palette: str
    reverse: bool
    log: bool
    tick_format: str | None
    span: Span

    def limits(self, top: float) -> tuple[float, float]:
        """The colour range for data whose largest finite value is ``top``.

        ``"percent"``: 0 to 100; ``"unit"``: 0 to 1; ``"zero_to_max"``: 0 to ``top``
        (at least 1); ``"rank"``: 1 to ``top`` (at least 10); ``"symmetric"`` (a signed
        change, centred on 0): ``-top`` to ``top`` (at least 0.1), ``top`` being the
        largest absolute value.

        Examples:
            >>> get_stat("coil", "entropy").limits(3.2), get_stat("coil", "rank").limits(4.0)
            ((0.0, 3.2), (1.0, 10.0))
        """
        if self.span == "percent":
            return 0.0, 100.0
        if self.span == "unit":
            return 0.0, 1.0
        if self.span == "rank":
            return 1.0, max(10.0, float(top))
        if self.span == "symmetric":
            half = max(0.1, abs(float(top)))
            return -half, half
        return 0.0, max(1.0, float(top))


def _stat(view: str, name: str, label: str, column: str, unit: str, title: str, legend: str) -> Stat:
    """A row of :data:`STATS`; palette, direction, scale and ticks follow from the unit:
    probabilities run Viridis reversed (so that an unsure guess is bright), bits Magma,
    ranks Cividis on a log scale, numbers in [0, 1] Magma from 0 to 1, signed changes
    (logits, nats) red through white to blue, centred on 0 (red = fell)."""
    palette, reverse, log, ticks, span = {
        "%": ("Viridis", True, False, "%d%%", "percent"),
        "bits": ("Magma", False, False, None, "zero_to_max"),
        "rank": ("Cividis", False, True, None, "rank"),
        "": ("Magma", False, False, None, "unit"),
        "logits": ("RdBu", True, False, None, "symmetric"),
        "nats": ("RdBu", True, False, None, "symmetric"),
    }[unit]
    if view in ("compare", "diff_coil", "diff_lens") and name == "js":
        span = "unit"  # JS in bits is bounded by 1
    return Stat(view, name, label, column, unit, title, legend, palette, reverse, log, ticks, span)


_COMPARE_LEGEND = "Colour: how much the two runs' next-token distributions differ."


def _diff_rows(view: str) -> tuple[Stat, ...]:
    """The statistics of a Comparison (:class:`coilvis.comparison.Comparison`) a diff view
    colours by: divergences between run a's and run b's next-token distributions (bits;
    TV as is), the metric's change, and (the coil only) the change in the log-probability
    of a's actual next token. The same columns in the diff coil and the diff lens."""
    rows = [
        _stat(view, "kl_ab", "KL(a \u2016 b)", "kl_ab_bits", "bits", "KL(a \u2016 b) (bits)", _COMPARE_LEGEND),
        _stat(view, "kl_ba", "KL(b \u2016 a)", "kl_ba_bits", "bits", "KL(b \u2016 a) (bits)", _COMPARE_LEGEND),
        _stat(view, "js", "Jensen-Shannon divergence", "js_bits", "bits",
              "Jensen-Shannon divergence (bits, \u2264 1)", _COMPARE_LEGEND),
        _stat(view, "tv", "total variation distance", "tv", "", "total variation distance", _COMPARE_LEGEND),
        _stat(view, "metric", "change of the metric, b \u2212 a", "metric_change", "logits",
              "metric change, b \u2212 a (logits)",
              "Colour: how the metric (a logit difference) changed from run a to run b (red = fell, blue = rose)."),
    ]
    if view == "diff_coil":
        rows.append(
            _stat(view, "delta_next_logprob", "change in the log-probability of a's next token", "delta_next_logprob",
                  "nats", "log p_b \u2212 log p_a of a's next token (nats)",
                  "Colour: how much more likely run b found the token that came next in a (red = less, blue = more).")
        )
    return tuple(rows)


_STAT_ROWS: tuple[Stat, ...] = (
    # the coil: one row per position, the model's own prediction
    _stat("coil", "prob", "probability of the top next token", "top_prob_pct", "%",
          "probability of the model's top next token (%)",
          "Colour: how sure the model was of its top next-token guess (bright = unsure)."),
    _stat("coil", "target_prob", "probability of the actual next token", "prob_pct", "%",
          "probability of the actual next token (%)",
          "Colour: the probability the model gave the token that came next (bright = unexpected)."),
    _stat("coil", "entropy", "entropy of the next-token distribution", "entropy_bits", "bits",
          "entropy of the next-token distribution (bits)",
          "Colour: how spread out the model's next-token distribution was (bright = uncertain)."),
    _stat("coil", "surprisal", "surprisal of the actual next token", "surprisal_bits", "bits",
          "surprisal of the actual next token (bits)",
          "Colour: -log2 of the probability of the token that came next (bright = surprising)."),
    _stat("coil", "rank", "rank of the actual next token", "rank", "rank",
          "rank of the actual next token (1 = top; log scale)",
          "Colour: where the token that came next ranked among the model's guesses (bright = far down)."),
    # the lens: one cell per layer and position
    _stat("lens", "prob", "probability of the cell's top token", "value", "%",
          "probability of top token (%)",
          "Colour: probability of the cell's top token (bright = unsure)."),
    _stat("lens", "entropy", "entropy of the layer's next-token distribution", "value", "bits",
          "entropy (bits)",
          "Colour: entropy of the layer's next-token distribution (bright = spread out)."),
    _stat("lens", "kl", "KL divergence from the final prediction to the layer's", "value", "bits",
          "KL(final \u2016 layer) (bits)",
          "Colour: KL divergence from the final prediction to the layer's (bright = far from the final answer)."),
    _stat("lens", "rank", "rank of the final top token in the layer", "value", "rank",
          "rank of final top token (log scale)",
          "Colour: where the final top token ranks in the layer (1 = top; bright = far down)."),
    _stat("lens", "target_prob", "probability of the actual next token", "value", "%",
          "probability of the actual next token (%)",
          "Colour: probability the layer gives the actual next token (bright = unexpected)."),
    # the lens of two records: a lower bound of a divergence between their top-k lists
    _stat("compare", "kl", "KL(record \u2016 compare)", "value", "bits",
          "KL(record \u2016 compare) (bits, lower bound)", _COMPARE_LEGEND),
    _stat("compare", "js", "Jensen-Shannon divergence", "value", "bits",
          "Jensen-Shannon divergence (bits, \u2264 1, lower bound)", _COMPARE_LEGEND),
    _stat("compare", "tv", "total variation distance", "value", "",
          "total variation distance (lower bound)", _COMPARE_LEGEND),
    # the diff coil (one row per compared position) and diff lens (layer x position) of a Comparison
    *_diff_rows("diff_coil"),
    *_diff_rows("diff_lens"),
)

#: Every statistic, keyed by ``(view, name)``, in each view's order.
STATS: Mapping[tuple[str, str], Stat] = MappingProxyType({(s.view, s.name): s for s in _STAT_ROWS})


def stat_names(view: str) -> tuple[str, ...]:
    """The statistics ``view`` colours by, in table order.

    Examples:
        >>> stat_names("compare")
        ('kl', 'js', 'tv')
    """
    if view not in STAT_VIEWS:
        raise CoilvisValueError(f"view: expected one of {list(STAT_VIEWS)}, got {view!r}")
    return tuple(name for v, name in STATS if v == view)


#: ``color=`` of the coil.
COIL_STATS: tuple[str, ...] = stat_names("coil")
#: ``stat=`` of the lens of one record.
LENS_STATS: tuple[str, ...] = stat_names("lens")
#: ``stat=`` of the lens comparing two records.
COMPARE_STATS: tuple[str, ...] = stat_names("compare")
#: ``color=`` of the diff coil of a Comparison.
DIFF_COIL_STATS: tuple[str, ...] = stat_names("diff_coil")
#: ``stat=`` of the diff lens of a Comparison.
DIFF_LENS_STATS: tuple[str, ...] = stat_names("diff_lens")


def get_stat(view: str, name: Any, *, arg: str = "stat") -> Stat:
    """The row of :data:`STATS` for ``name`` in ``view``.

    Raises:
        CoilvisValueError: ``name`` is not a statistic of ``view`` (the message names ``arg``).

    Examples:
        >>> get_stat("lens", "kl").title
        'KL(final ‖ layer) (bits)'
    """
    names = stat_names(view)
    if not isinstance(name, str) or name not in names:
        raise CoilvisValueError(f"{arg}: expected one of {list(names)}, got {name!r}")
    return STATS[(view, name)]


# ------------------------------------------------------------------------------ attention spec


def attention_option(value: Any, *, layer: Any = None, name: str = "attention", layer_name: str = "layer") -> Any:
    """The coil's ``attention=`` value for a text spec, as a command line or a prompts
    file gives it.

    Args:
        value: None, ``"mean"`` or ``"max"`` (with ``layer``: that layer only),
            ``"LAYER:HEAD"``, or a ``[LAYER, HEAD]`` pair.
        layer: a layer index for ``"mean"``/``"max"``, or None for every layer (the
            coil opens on the last layer).
        name: the argument name for error messages.
        layer_name: the name of ``layer`` for error messages.

    Returns:
        What :func:`coilvis.coil` takes as ``attention``.

    Raises:
        CoilvisTypeError: ``layer`` is not an int.
        CoilvisValueError: ``value`` is none of the above.

    Examples:
        >>> attention_option("3:1"), attention_option("mean", layer=-1), attention_option([2, 0])
        ((3, 1), (-1, 'mean'), (2, 0))
    """
    if value is None:
        return None
    if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
        raise CoilvisTypeError(f"{layer_name}: expected an int, got {type(layer).__name__}")
    if value in ("mean", "max"):
        return value if layer is None else (layer, value)
    if isinstance(value, str) and ":" in value:
        a, b = value.split(":", 1)
        try:
            return (int(a), int(b))
        except ValueError:
            pass
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    ):
        return (int(value[0]), int(value[1]))
    raise CoilvisValueError(f"{name}: expected 'mean', 'max', 'LAYER:HEAD' or [LAYER, HEAD], got {value!r}")


# ------------------------------------------------------------------------------ k


def check_k(k: Any, *, available: int | None = None, name: str = "k", default: int | None = None) -> int:
    """The one rule for ``k``, a number of top tokens to keep or show.

    ``k`` must be an int >= 1 (else an error naming ``name``). A ``k`` larger than
    ``available`` (the tokens there are: ``d_vocab``, or the top-k a record kept) is
    clamped to it: asking for more top tokens than exist asks for all of them, and a
    default such as ``k=10`` must fit a 5-token vocabulary or a record saved with ``k=3``.

    Args:
        k: the number asked for; None means ``default``.
        available: how many there are (None: no upper bound).
        name: the argument's name for error messages.
        default: the value of a None ``k`` (None: a None ``k`` is refused).

    Returns:
        ``min(k, available)``.

    Raises:
        CoilvisTypeError: ``k`` is not an int (a bool is not one either).
        CoilvisValueError: ``k`` < 1.

    Examples:
        >>> check_k(20, available=5), check_k(3, available=5), check_k(None, available=4, default=DEFAULT_K)
        (5, 3, 4)
    """
    if k is None and default is not None:
        k = default
    value = check_int(name, k, minimum=1)
    return value if available is None else min(value, int(available))


# ------------------------------------------------------------------------------ declared options

#: The functions whose keyword options are declared: :func:`coilvis.coil`,
#: :func:`coilvis.lens`, :func:`coilvis.page`, :func:`coilvis.run` and
#: :meth:`coilvis.Record.table`.
APIS: tuple[str, ...] = ("coil", "lens", "page", "run", "table")

Kind = Literal[
    "int", "float", "bool", "optional_bool", "choice", "str", "palette", "attention", "layers", "record", "position", "object"
]


@dataclass(frozen=True)
class Option:
    """One keyword option of a coilvis function, and how a command line and a prompts
    file give it.

    Attributes:
        api: the function: one of :data:`APIS`.
        name: its keyword (``"attention_threshold"``).
        kind: what it takes: ``"int"``, ``"float"``, ``"bool"``, ``"optional_bool"``
            (True, False or None for automatic), ``"choice"`` (one of ``choices``),
            ``"str"``, ``"palette"`` (a name from :data:`PALETTE_NAMES` or colours),
            ``"attention"`` (see :func:`attention_option`), ``"layers"`` (lens rows),
            ``"record"`` (a Record; a saved one's path on the command line),
            ``"position"`` (an int, or None for every position) or ``"object"``.
        default: the function's default.
        help: what it does, in a few words (no default, no flag).
        choices: the values of a ``"choice"``.
        minimum: the smallest value of an ``"int"`` or a ``"float"``, or None.
        maximum: the largest value, or None.
        above: ``minimum`` itself is excluded.
        flag: the command line's flag (``"--threshold"``), or None. Options of one
            command that share a flag all take its value (``--size`` sets ``width`` and
            ``height``); a ``"bool"`` whose default is True has a ``--no-...`` flag.
        key: the key in a gallery prompts file's ``options`` (``"lens_stat"``), or None.
        requires: the option of the same function that must be on for this one to
            matter (``"attention"``, ``"animate"``), or None. A command line refuses
            this option without it.
        keyword: False for a command-line and prompts-file helper that is not a keyword
            of ``api`` (``layer`` completes ``attention``).
    """

    api: str
    name: str
    kind: Kind
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    flag: str | None = None
    key: str | None = None
    requires: str | None = None
    keyword: bool = True

    @property
    def dest(self) -> str | None:
        """The attribute an ``argparse`` namespace keeps the flag's value in."""
        if self.flag is None:
            return None
        return self.flag.lstrip("-").replace("-", "_")


def _choices_help(names: tuple[str, ...], view: str) -> str:
    return ", ".join(f"{name} ({STATS[(view, name)].label})" for name in names)


_LENS_AND_COMPARE = LENS_STATS + tuple(s for s in COMPARE_STATS if s not in LENS_STATS)
_PALETTES_HELP = f"colour palette: {', '.join(PALETTE_NAMES)} (append _r to reverse)"
_WHITESPACE = ("markers", "subtle", "plain")
_WHITESPACE_HELP = (
    "leading and trailing spaces in dense labels (coil segments, lens cells and axes, the page's prompt): "
    "markers (\u2423, exact), subtle (a light \u00b7) or plain (spaces); hovers and the table always show \u2423"
)

OPTIONS: tuple[Option, ...] = (
    # coilvis.coil
    Option("coil", "layout", "choice", "spiral", "coil shape (auto: a circle for short prompts)",
           choices=("spiral", "circle", "auto"), flag="--layout", key="layout"),
    Option("coil", "color", "choice", "prob", f"what colours each segment: {_choices_help(COIL_STATS, 'coil')}",
           choices=COIL_STATS, flag="--color", key="color"),
    Option("coil", "attention", "attention", None,
           "attention arcs: 'mean' or 'max' over heads (of the one layer given, else of every layer recorded, "
           "opening on the last layer), or LAYER:HEAD (e.g. 3:1); none if not given",
           flag="--attention", key="attention"),
    Option("coil", "layer", "int", None, "the layer of 'mean' or 'max' arcs only (negative counts from the end)",
           flag="--layer", key="layer", requires="attention", keyword=False),
    Option("coil", "attention_threshold", "float", 0.02, "arcs lighter than this weight are not drawn",
           minimum=0.0, maximum=1.0, flag="--threshold", requires="attention"),
    Option("coil", "attention_top_k", "int", 3, "at most this many arcs per query position and layer/head",
           minimum=1, flag="--links-per-query", requires="attention"),
    Option("coil", "max_links", "int", 50_000, "arc budget for the page", minimum=0, flag="--max-links", key="max_links",
           requires="attention"),
    Option("coil", "hide_sink", "bool", False, "hide attention to position 0 (the attention sink)", flag="--hide-sink",
           key="hide_sink", requires="attention"),
    Option("coil", "palette", "palette", None, _PALETTES_HELP, flag="--palette"),
    Option("coil", "width", "int", 720, "width of the coil's drawing area in pixels", minimum=100, flag="--size"),
    Option("coil", "height", "int", 720, "height of the coil's drawing area in pixels", minimum=100, flag="--size"),
    Option("coil", "title", "str", None, "the figure's title"),
    Option("coil", "labels", "bool", True, "draw token labels on the segments that have room", flag="--no-labels"),
    Option("coil", "label_font_px", "int", 11, "largest label font size in pixels", minimum=1),
    Option("coil", "tooltip_k", "int", None, "top next tokens listed in the hover", minimum=1, flag="--k"),
    Option("coil", "n_arc", "int", None, "polygon steps along each segment edge", minimum=1),
    Option("coil", "clockwise", "bool", False, "wind the coil clockwise", flag="--clockwise"),
    Option("coil", "animate", "bool", False, "add the entropy-paced unwind animation", flag="--animate", key="animate"),
    Option("coil", "pace", "choice", "entropy", "what slows the unwind down", choices=("entropy", "surprisal"),
           flag="--pace", key="pace", requires="animate"),
    Option("coil", "duration_s", "float", None,
           "total unwind duration in seconds (default: 0.25 s per position, 4-180 s)",
           minimum=0.0, maximum=3600.0, above=True, flag="--duration", key="duration_s", requires="animate"),
    Option("coil", "floor_bits", "float", 0.5,
           "added to every position's pace value (bits), so certain positions still take a moment",
           minimum=0.0, maximum=64.0, above=True, flag="--floor-bits", requires="animate"),
    Option("coil", "autoplay", "bool", True, "start the unwind by itself when the page opens", flag="--no-autoplay",
           requires="animate"),
    Option("coil", "whitespace", "choice", "subtle", _WHITESPACE_HELP, choices=_WHITESPACE, flag="--whitespace",
           key="whitespace"),
    Option("coil", "mass", "bool", False,
           "mass rings: cut each segment into its top next tokens' shares of probability (largest inward) and the rest "
           "in grey; colours by probability (color prob)", flag="--mass", key="mass"),
    Option("coil", "mass_k", "int", 5, "shares per segment of the mass rings (at most the k the record kept)", minimum=1,
           flag="--mass-k", key="mass_k", requires="mass"),
    # coilvis.lens
    Option("lens", "stat", "choice", None,
           f"what colours each lens cell (default prob): {_choices_help(LENS_STATS, 'lens')}; "
           f"comparing two records (default js): {_choices_help(COMPARE_STATS, 'compare')}",
           choices=_LENS_AND_COMPARE, flag="--stat", key="lens_stat"),
    Option("lens", "layers", "layers", None,
           "show only these layers (names like embed, 0, 12, or row indices); first and last always kept", flag="--layers"),
    Option("lens", "stride", "int", None, "show every STRIDE-th layer (first and last always kept)", minimum=1,
           flag="--stride", key="lens_stride"),
    Option("lens", "start", "int", None, "first position shown (negative counts from the end)", flag="--start",
           key="lens_start"),
    Option("lens", "end", "int", None, "end position shown (exclusive)", flag="--end", key="lens_end"),
    Option("lens", "compare", "record", None,
           "a record (with lens) of the same length to compare with (stat kl, js or tv)", flag="--compare"),
    Option("lens", "cell_px", "object", (56, 20), "cell size in pixels, (width, height) or one int for both"),
    Option("lens", "max_label_len", "int", 8, "characters of the top token printed in a cell", minimum=1),
    Option("lens", "hover_k", "int", 5, "top tokens listed in the hover", minimum=1),
    Option("lens", "max_width_px", "int", 1400, "widest the heatmap's frame grows before it pans", minimum=50),
    Option("lens", "max_height_px", "int", 900, "tallest the heatmap's frame grows before it pans", minimum=50),
    Option("lens", "palette", "palette", None, "colour palette of the lens (as --palette)", flag="--lens-palette"),
    Option("lens", "title", "str", None, "the figure's title"),
    Option("lens", "whitespace", "choice", "subtle", _WHITESPACE_HELP, choices=_WHITESPACE, flag="--whitespace",
           key="lens_whitespace"),
    # coilvis.page
    Option("page", "coil_options", "object", None, "keyword options of the coil"),
    Option("page", "lens_options", "object", None, "keyword options of the lens"),
    Option("page", "k", "int", 10, "rows of the table", minimum=1, flag="--k"),
    Option("page", "title", "str", None, "the page title"),
    Option("page", "whitespace", "choice", "subtle", _WHITESPACE_HELP, choices=_WHITESPACE, flag="--whitespace"),
    # coilvis.run
    Option("run", "tokenizer", "object", None, "the model's tokenizer"),
    Option("run", "k", "int", 10, "top next tokens kept per position when running a model", minimum=1, flag="--k", key="k"),
    Option("run", "attention", "bool", False, "keep pruned attention links", flag="--attention"),
    Option("run", "attention_top_k", "int", 4, "keys kept in the Record per query and head (the arcs a coil draws are its own attention_top_k)", minimum=1),
    Option("run", "attention_min_weight", "float", 0.01, "drop links lighter than this weight", minimum=0.0, maximum=1.0),
    Option("run", "attention_layers", "object", None, "keep links of these layers only"),
    Option("run", "lens", "bool", False, "keep logit-lens statistics", flag="--lens"),
    Option("run", "lens_k", "int", 5, "top tokens kept per lens cell", minimum=1, key="lens_k"),
    Option("run", "lens_mid", "bool", False, "also decode the residual after each layer's attention", flag="--mid",
           key="lens_mid"),
    Option("run", "prepend_bos", "optional_bool", None, "prepend a BOS token (default: as the tokenizer does)",
           flag="--prepend-bos", key="prepend_bos"),
    Option("run", "truncate", "choice", None, "drop the first ('left') or last ('right') tokens of a prompt too long",
           choices=("left", "right")),
    Option("run", "progress", "optional_bool", None, "show progress bars (default: for long prompts)"),
    Option("run", "remote", "object", False, "an nnsight model's trace runs on NDIF (True) or as nnsight's local dry run ('local')"),
    Option("run", "on_forward", "object", None, "called with the Record of the forward pass before its lens is computed",
           requires="lens"),
    # Record.table
    Option("table", "pos", "position", -1, "position (negative counts from the end), or 'all'", flag="--pos"),
    Option("table", "k", "int", None, "rows (top tokens) per position, at most all the record kept",
           minimum=1, flag="--k"),
)


def declared(api: str) -> tuple[Option, ...]:
    """The declared options of ``api`` (one of :data:`APIS`), in signature order.

    Examples:
        >>> [o.name for o in declared("page")]
        ['coil_options', 'lens_options', 'k', 'title', 'whitespace']
    """
    if api not in APIS:
        raise CoilvisValueError(f"api: expected one of {list(APIS)}, got {api!r}")
    return tuple(o for o in OPTIONS if o.api == api)


def get_option(api: str, name: str) -> Option:
    """The declared option ``name`` of ``api``.

    Raises:
        CoilvisValueError: no such option.
    """
    for o in declared(api):
        if o.name == name:
            return o
    raise CoilvisValueError(f"name: {api} has no option {name!r}")


def _quoted(values: tuple[Any, ...]) -> str:
    words = [repr(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def describe(option: Option) -> str:
    """One line on what ``option`` takes, for documentation (a prompts file's keys).

    Examples:
        >>> describe(get_option("coil", "pace"))
        "what slows the unwind down: 'entropy' or 'surprisal'"
        >>> describe(get_option("coil", "hide_sink"))
        'hide attention to position 0 (the attention sink) (true/false)'
    """
    if option.kind == "choice" and not all(str(c) in option.help for c in option.choices):
        return f"{option.help}: {_quoted(option.choices)}"
    if option.kind == "bool":
        return f"{option.help} (true/false)"
    if option.kind == "optional_bool":
        return f"{option.help} (true/false, or null)"
    return option.help
