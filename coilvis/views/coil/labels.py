"""Token labels that fit on the coil's segments: a width estimate, greedy fitting, the font size."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

import numpy as np

from coilvis import geometry
from coilvis.tokens import display, label_whitespace

__all__ = ["MIN_FONT_PX", "LABEL_MAX_CHARS", "label_width_px", "fit_labels", "fitted_font_px", "coil_labels"]

#: Labels smaller than this are left out.
MIN_FONT_PX = 7
#: Characters of a token shown on its segment.
LABEL_MAX_CHARS = 16


def label_width_px(text: str, font_px: float) -> float:
    """A generous estimate of the width of a label drawn at ``font_px`` (sans-serif).

    Meant never to fall short of the real width in common sans-serif fonts (Helvetica,
    Arial, Liberation Sans, DejaVu Sans; the browser tests check it against the canvas's
    own measurement): narrow letters and punctuation (and ``·``) count 0.42 em, ``m w M W @ %``
    1.05 em, other capitals 0.82 em, other ASCII 0.66 em, wide East Asian characters and
    emoji 1.3 em, any other character (arrows, ``␣``, accented letters) 1.05 em.

    Examples:
        >>> round(label_width_px("il", 10.0), 6), round(label_width_px("ab", 10.0), 6)
        (8.4, 13.2)
    """
    em = 0.0
    for ch in text:
        if ch in "ijlI.,:;'!| \u00b7":
            em += 0.42
        elif ch in "mwMW@%":
            em += 1.05
        elif ch.isascii() and ch.isupper():
            em += 0.82
        elif ch.isascii():
            em += 0.66
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            em += 1.3
        else:
            em += 1.05
    return em * font_px


def fit_labels(
    along_px: np.ndarray,
    widths_px: np.ndarray,
    *,
    gap_px: float,
    closed_px: float | None = None,
) -> np.ndarray:
    """Which labels fit along a track without touching each other (greedy, in order).

    Label ``i`` is centred at ``along_px[i]`` along the track and is ``widths_px[i]``
    long; it is kept when it starts at least ``gap_px`` after the end of the last kept
    label. On a closed track (a circle of length ``closed_px``) the last kept label must
    also end ``gap_px`` before the first kept one starts, one lap later.

    Args:
        along_px: (n,) label centres along the track, increasing, in pixels.
        widths_px: (n,) label lengths in pixels (``inf`` for labels never to draw).
        gap_px: least space between two labels.
        closed_px: length of a closed track, or None.

    Returns:
        (n,) bool, True for the labels kept.

    Examples:
        >>> fit_labels(np.array([5.0, 15.0, 25.0, 35.0]), np.array([8.0, 8.0, 30.0, 8.0]), gap_px=2.0).tolist()
        [True, True, False, True]
    """
    keep = np.zeros(along_px.shape[0], dtype=bool)
    last_end = -math.inf
    first_start = math.nan
    last_kept = -1
    for i, (centre, width) in enumerate(zip(along_px.tolist(), widths_px.tolist(), strict=True)):
        if not math.isfinite(width):
            continue
        start = centre - 0.5 * width
        if start >= last_end + gap_px:
            keep[i] = True
            last_end = centre + 0.5 * width
            last_kept = i
            if math.isnan(first_start):
                first_start = start
    wraps_onto_first = closed_px is not None and first_start + closed_px < last_end + gap_px
    if wraps_onto_first and keep.sum() > 1:
        keep[last_kept] = False
    return keep


def fitted_font_px(lay: geometry.Layout, *, px_per_unit: float, max_font_px: int) -> int:
    """The labels' font size: ``max_font_px``, smaller for thin segments (80 % of their
    width on screen), 0 when that is under :data:`MIN_FONT_PX` (no labels)."""
    font_px = min(max_font_px, int(0.8 * lay.band_width * px_per_unit))
    return font_px if font_px >= MIN_FONT_PX else 0


def coil_labels(
    tokens: Sequence[str], lay: geometry.Layout, *, px_per_unit: float, font_px: int, whitespace: str = "markers"
) -> tuple[np.ndarray, list[str]]:
    """The positions whose labels fit along the coil, and their texts.

    A label is its token's display text (:func:`coilvis.tokens.display`, at most
    :data:`LABEL_MAX_CHARS` characters; leading and trailing spaces as ``whitespace``
    says), drawn straight along its segment; on a spiral a label whose sag would reach
    the next turn is never drawn.

    Args:
        tokens: (n,) raw token texts.
        lay: the coil's layout.
        px_per_unit: screen pixels per data unit.
        font_px: the font size (:func:`fitted_font_px`, > 0).
        whitespace: the view's ``whitespace=`` option: ``"markers"`` (``␣``, the exact
            label), ``"subtle"`` (``·``) or ``"plain"`` (spaces); see
            :data:`coilvis.tokens.LABEL_WHITESPACE`.

    Returns:
        ``(kept, texts)``: (n_kept,) int64 positions, increasing, and their label texts.
    """
    n = len(tokens)
    mode = label_whitespace(whitespace)
    texts = [display(t, max_len=LABEL_MAX_CHARS, whitespace=mode) for t in tokens]
    widths = np.array([label_width_px(t, font_px) for t in texts])
    if lay.kind == "spiral":  # a straight label on a curved turn must not reach the next turn
        sag_px = widths**2 / (8.0 * lay.r * px_per_unit)
        widths = np.where(sag_px <= 0.5 * (lay.pitch * px_per_unit - font_px), widths, np.inf)
    along = (np.arange(n) + 0.5) * lay.arc_len * px_per_unit
    closed = n * lay.arc_len * px_per_unit if lay.kind == "circle" else None
    kept = np.flatnonzero(fit_labels(along, widths, gap_px=0.5 * font_px, closed_px=closed))
    return kept, [texts[i] for i in kept.tolist()]
