"""What every view of a Comparison shares: the checks, the per-position values, colour scales, a token table, names.

The diff coil, the diff lens, the movers table and the diff page read a
:class:`~coilvis.comparison.Comparison` through these helpers, so they agree on units
(divergences in bits, TV as is, the metric in logits, log-probability changes in nats),
on what "lower bound" means and on how tokens are labelled (each token's exact label of
:func:`coilvis.tokens.display` and its id, from one table a page holds once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
from bokeh.model import Model

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.options import LN2, get_stat
from coilvis.tokens import display
from coilvis.views._style import ColorScale, view_scale

__all__ = [
    "EXACT_TEXT",
    "LOWER_BOUND_TEXT",
    "TokenTable",
    "check_comparison",
    "check_title",
    "diff_scale",
    "position_values",
    "prefix_names",
    "run_name",
]

#: What the hover says of a position (or lens) whose values are exact, and of one whose are not.
EXACT_TEXT = "exact (full vocabulary)"
LOWER_BOUND_TEXT = "lower bound (from the runs' top-k)"
#: Characters of a token label in a hover list.
_HOVER_LEN = 32


def check_comparison(comparison: Any, name: str = "comparison") -> Comparison:
    """``comparison`` if it is a :class:`~coilvis.comparison.Comparison`.

    Raises:
        CoilvisTypeError: it is not (the message names ``name``).
    """
    if not isinstance(comparison, Comparison):
        raise CoilvisTypeError(
            f"{name}: expected a coilvis Comparison (coilvis.compare(a, b)), got {type(comparison).__name__}"
        )
    return comparison


def check_title(title: Any) -> str | None:
    """``title`` if it is a str or None."""
    if title is not None and not isinstance(title, str):
        raise CoilvisTypeError(f"title: expected a str or None, got {type(title).__name__}")
    return title


def position_values(comparison: Comparison) -> dict[str, np.ndarray]:
    """The per-position values a diff view colours by and shows, one (n_pos,) column each.

    Returns:
        float32 ``kl_ab_bits``, ``kl_ba_bits``, ``js_bits`` (bits), ``tv``,
        ``delta_next_logprob`` (nats), ``metric_a``, ``metric_b``, ``metric_change``
        (logits; NaN without a metric), and uint8 ``exact`` and ``differs``.
    """
    c = comparison
    nan = np.full(c.n_pos, np.nan, dtype=np.float32)
    metric_a = c.metric_a if c.metric_a is not None else nan
    metric_b = c.metric_b if c.metric_b is not None else nan
    return {
        "kl_ab_bits": (c.kl_ab / LN2).astype(np.float32),
        "kl_ba_bits": (c.kl_ba / LN2).astype(np.float32),
        "js_bits": (c.js / LN2).astype(np.float32),
        "tv": c.tv.astype(np.float32),
        "delta_next_logprob": c.delta_next_logprob.astype(np.float32),
        "metric_a": metric_a.astype(np.float32),
        "metric_b": metric_b.astype(np.float32),
        "metric_change": (metric_b - metric_a).astype(np.float32),
        "exact": c.exact.astype(np.uint8),
        "differs": c.differs.astype(np.uint8),
    }


def diff_scale(
    view: str,
    stat: Any,
    comparison: Comparison,
    values_of: Any,
    *,
    lower_bound: str | None,
    palette: Any = None,
    arg: str = "stat",
) -> ColorScale:
    """The colour scale of a statistic of a diff view (a row of :data:`coilvis.options.STATS`).

    Args:
        view: ``"diff_coil"`` or ``"diff_lens"``.
        stat: the statistic's name.
        comparison: the Comparison drawn.
        values_of: a callable giving the statistic's values from its column name (the
            scale's range fits them).
        lower_bound: None when every value drawn is exact; else what the colour bar's
            title adds to a divergence's (``"lower bound"``, ``"lower bound where marked"``).
        palette: see :func:`coilvis.views._style.resolve_palette`.
        arg: the argument named in errors.

    Raises:
        CoilvisValueError: an unknown statistic, or ``"metric"`` for a comparison
            without one.
    """
    spec = get_stat(view, stat, arg=arg)
    if spec.name == "metric" and comparison.metric is None:
        raise CoilvisValueError(
            f"{arg}: 'metric' colours by a metric's change, but this comparison has none; "
            "compare with metric=(' Mary', ' John') (two tokens, or two lists of tokens)"
        )
    scale = view_scale(view, spec.name, values_of(spec.column), palette=palette, arg=arg)
    if lower_bound is not None and spec.unit in ("bits", ""):  # divergences of top-k lists: lower bounds
        scale = dataclasses.replace(scale, title=f"{scale.title}, {lower_bound}")
    return scale


def run_name(comparison: Comparison, which: str) -> str:
    """``"a (clean)"``: a run's letter and its label, shown as token text is (hidden
    characters visible), or the letter alone when the label is the letter."""
    label = comparison.label_a if which == "a" else comparison.label_b
    shown = display(label, max_len=40, whitespace="none")
    return which if shown in ("", which) else f"{which} ({shown})"


class TokenTable:
    """A table of distinct token ids with their exact labels; views hold row indices into it.

    A page holds each token's label once (a ``ColumnDataSource`` with columns
    ``token_id`` and ``label``) and the cells or segments hold int32 rows of it (-1 for
    none), so the hover's scripts only look strings up by index.
    """

    def __init__(self, comparison: Comparison) -> None:
        self.comparison = comparison
        self.index: dict[int, int] = {}

    def add(self, ids: Any) -> np.ndarray:
        """int32 rows of ``ids`` (any shape; ids < 0 give -1), added when new."""
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = np.array(
            [self.index.setdefault(int(i), len(self.index)) if i >= 0 else -1 for i in uniq.tolist()], dtype=np.int32
        )
        return rows[inverse].reshape(np.shape(ids))

    def columns(self, *, max_len: int = _HOVER_LEN) -> dict[str, Any]:
        """``token_id`` (int64) and ``label`` (the exact display label, cut to ``max_len``)."""
        ids = list(self.index)
        return {
            "token_id": np.asarray(ids, dtype=np.int64),
            "label": [display(self.comparison.token_text(i), max_len=max_len) for i in ids],
        }


def prefix_names(models: Iterable[Model], old: str, new: str) -> None:
    """Rename every model named ``old...`` to ``new...`` (the coil's and the lens's parts,
    reused in a diff view, take the diff view's prefix, so a page with both finds each)."""
    seen: set[str] = set()
    for root in models:
        for model in root.references():
            if model.id in seen:
                continue
            seen.add(model.id)
            name = getattr(model, "name", None)
            if isinstance(name, str) and name.startswith(old):
                model.name = new + name[len(old):]
