"""A Comparison as pandas DataFrames: one row per compared position, and the top movers of one position.

Data layer, beside :mod:`coilvis.frames`: numpy and pandas only, so a saved comparison
can be tabled where torch is not installed. Token strings stay raw in the frames (as in
every coilvis table); :class:`~coilvis.frames.LogitsTable` shows them with their
whitespace visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coilvis.frames import LogitsTable, token_column
from coilvis.options import LN2

#: A :class:`coilvis.comparison.Comparison` (not imported: that module imports this one).
Comparison = Any

__all__ = ["movers_frame", "summary_frame"]


def summary_frame(comparison: Comparison) -> LogitsTable:
    """One row per compared position (see :meth:`coilvis.Comparison.summary`).

    Columns: ``pos`` (compared position), ``pos_a``, ``pos_b``, ``token_a``, ``token_b``,
    ``differs``, ``kl_ab_bits``, ``kl_ba_bits``, ``js_bits``, ``tv``,
    ``delta_next_logprob``, then ``metric_a``, ``metric_b``, ``metric_change`` with a
    metric, and ``exact`` last.
    """
    c = comparison
    frame = pd.DataFrame(
        {
            "pos": np.arange(c.n_pos),
            "pos_a": c.positions_a,
            "pos_b": c.positions_b,
            "token_a": token_column([c.a.tokens[i] for i in c.positions_a]),
            "token_b": token_column([c.b.tokens[i] for i in c.positions_b]),
            "differs": c.differs,
            "kl_ab_bits": c.kl_ab / LN2,
            "kl_ba_bits": c.kl_ba / LN2,
            "js_bits": c.js / LN2,
            "tv": c.tv,
            "delta_next_logprob": c.delta_next_logprob,
        }
    )
    if c.metric_a is not None and c.metric_b is not None:
        frame["metric_a"] = c.metric_a
        frame["metric_b"] = c.metric_b
        frame["metric_change"] = c.metric_b - c.metric_a
    frame["exact"] = c.exact
    return LogitsTable(frame)


def movers_frame(comparison: Comparison, pos: int) -> LogitsTable:
    """The top movers at compared position ``pos`` (see :meth:`coilvis.Comparison.movers`)."""
    c = comparison
    parts = []
    for direction in ("rise", "fall"):
        ids = getattr(c, f"{direction}_ids")[pos]
        prob_a = getattr(c, f"{direction}_prob_a")[pos]
        prob_b = getattr(c, f"{direction}_prob_b")[pos]
        parts.append(
            pd.DataFrame(
                {
                    "direction": direction,
                    "token_id": ids,
                    "token": token_column([c.token_text(int(i)) for i in ids]),
                    "prob_a": prob_a,
                    "prob_b": prob_b,
                    "change": prob_b - prob_a,
                }
            )
        )
    return LogitsTable(pd.concat(parts, ignore_index=True))
