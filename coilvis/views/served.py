"""What the views say of a served model's Record: the entropy is a top-k estimate, and there is no lens.

A Record from :func:`coilvis.from_logprobs` or :func:`coilvis.run_served` holds only the
top-k a server sent (``record.extra["topk_only"]``). Its entropy counts the mass outside
the top-k as one bucket, a lower bound of the full entropy: the coil's colour bar, legend
and tooltip say so. It has no hidden states, so no logit lens: :func:`coilvis.lens`
refuses it and the page says so in one line (``page_lens_unavailable``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bokeh.models import Div

from coilvis.record import Record
from coilvis.views._style import ColorScale

__all__ = ["ENTROPY_LEGEND", "ENTROPY_TITLE", "LENS_UNAVAILABLE", "entropy_scale", "is_topk_only", "lens_note", "sent_k"]

#: The one line the page and :func:`coilvis.lens` give for a served model's Record.
LENS_UNAVAILABLE = (
    "Logit lens unavailable: a served model's server sends top-k log-probabilities, not the hidden states a lens decodes."
)
#: The colour bar's title of a served Record's entropy.
ENTROPY_TITLE = "entropy, top-k estimate (bits)"
#: The legend of a served Record's entropy.
ENTROPY_LEGEND = (
    "Colour: entropy estimated from the top k the server sent, the rest counted as one bucket "
    "(a lower bound of the full entropy; bright = spread out)."
)


def is_topk_only(record: Record) -> bool:
    """Whether ``record`` holds only a server's top-k (as :func:`coilvis.logprobs.is_topk_only`)."""
    return bool(record.extra.get("topk_only"))


def sent_k(record: Record) -> int:
    """The top-k a served Record holds per position, or 0 for any other Record."""
    return int(record.extra.get("k_sent", record.k)) if is_topk_only(record) else 0


def entropy_scale(record: Record, scale: ColorScale) -> ColorScale:
    """``scale``, its title and legend saying "top-k estimate" when it colours a served
    Record's entropy."""
    if not is_topk_only(record) or scale.column != "entropy_bits":
        return scale
    return replace(scale, title=ENTROPY_TITLE, legend=ENTROPY_LEGEND)


def lens_note(record: Record, *, width: int) -> list[Any]:
    """``[Div]`` saying in one line that a served Record has no lens, or ``[]``."""
    if not is_topk_only(record):
        return []
    return [
        Div(
            text=LENS_UNAVAILABLE,
            render_as_text=True,
            disable_math=True,
            width=width,
            styles={"color": "#555555", "font-size": "13px"},
            name="page_lens_unavailable",
        )
    ]
