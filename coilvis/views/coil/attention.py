"""Which attention patterns a coil embeds: the choices, checked against a Record's links.

The text spec of a command line or a prompts file (``"3:1"``) is parsed by
:func:`coilvis.options.attention_option`; this reads what :func:`coilvis.coil` takes,
and says which choice the page opens on (:func:`opening_choice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.record import HEAD_MAX, HEAD_MEAN, Record

__all__ = ["AttentionChoice", "opening_choice", "parse_attention"]


@dataclass(frozen=True)
class AttentionChoice:
    """One embedded attention pattern: a layer and a head (or the mean/max over heads).

    Attributes:
        layer: layer index in ``[0, n_layers)``.
        head: head index, or :data:`~coilvis.record.HEAD_MEAN` (-1) /
            :data:`~coilvis.record.HEAD_MAX` (-2).
    """

    layer: int
    head: int

    @property
    def label(self) -> str:
        """How the in-page control names it, e.g. ``"layer 3 · head 5"``."""
        if self.head == HEAD_MEAN:
            return f"layer {self.layer} · mean of heads"
        if self.head == HEAD_MAX:
            return f"layer {self.layer} · max over heads"
        return f"layer {self.layer} · head {self.head}"


def _parse_head(value: Any, n_heads: int) -> int:
    if value == "mean":
        return HEAD_MEAN
    if value == "max":
        return HEAD_MAX
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CoilvisTypeError(f"attention: a head is an int, 'mean' or 'max', got {value!r}")
    head = int(value)
    if not (-2 <= head < n_heads):
        raise CoilvisValueError(f"attention: head {head} is out of range [0, {n_heads}) (or 'mean', 'max')")
    return head


def _reduced_choices(item: str, present: set[tuple[int, int]]) -> list[AttentionChoice]:
    """``"mean"`` or ``"max"``: that reduction over heads, for every layer the record holds."""
    if item not in ("mean", "max"):
        raise CoilvisValueError(f"attention: expected 'mean', 'max' or (layer, head), got {item!r}")
    head = HEAD_MEAN if item == "mean" else HEAD_MAX
    layers = sorted({layer for layer, h in present if h == head})
    if not layers:
        raise CoilvisValueError(f"attention: the record holds no {item!r}-over-heads links")
    return [AttentionChoice(layer, head) for layer in layers]


def _pair_choice(item: tuple[Any, Any], record: Record, present: set[tuple[int, int]]) -> AttentionChoice:
    """``(layer, head)``: one layer (negative counts from the end) and a head, mean or max."""
    assert record.attention is not None
    layer_arg, head_arg = item
    if isinstance(layer_arg, bool) or not isinstance(layer_arg, (int, np.integer)):
        raise CoilvisTypeError(f"attention: a layer is an int, got {layer_arg!r}")
    n_layers = record.attention.n_layers
    if not (-n_layers <= int(layer_arg) < n_layers):
        raise CoilvisValueError(f"attention: layer {int(layer_arg)} is out of range for {n_layers} layers")
    layer = int(layer_arg) % n_layers
    head = _parse_head(head_arg, record.attention.n_heads)
    if (layer, head) not in present:
        raise CoilvisValueError(
            f"attention: the record holds no links for {AttentionChoice(layer, head).label} "
            f"(were they recorded? see coilvis.run(..., attention_layers=...))"
        )
    return AttentionChoice(layer, head)


def parse_attention(spec: Any, record: Record) -> tuple[AttentionChoice, ...]:
    """The choices a coil's ``attention=`` asks for, checked against the record's links.

    Args:
        spec: None, ``"mean"``, ``"max"``, ``(layer, head)`` or a list of these (see
            :func:`coilvis.coil`).
        record: the Record drawn.

    Returns:
        The distinct choices, in the order asked (empty for None).

    Raises:
        CoilvisTypeError: an item of the wrong type.
        CoilvisValueError: the record has no links, or not the ones asked for.
    """
    if spec is None:
        return ()
    links = record.attention
    if links is None:
        raise CoilvisValueError(
            "attention: the record has no attention links; make it with "
            "coilvis.run(prompt, attention=True) or coilvis.from_logits(..., attention=pattern)"
        )
    items = list(spec) if isinstance(spec, list) else [spec]
    if not items:
        raise CoilvisValueError("attention: expected at least one choice, got an empty list")
    present = set(zip(links.layer.tolist(), links.head.tolist(), strict=True))
    choices: list[AttentionChoice] = []
    for item in items:
        if isinstance(item, str):
            choices.extend(_reduced_choices(item, present))
        elif isinstance(item, tuple) and len(item) == 2:
            choices.append(_pair_choice(item, record, present))
        else:
            raise CoilvisTypeError(
                f"attention: expected None, 'mean', 'max', a (layer, head) tuple or a list of these, got {item!r}"
            )
    return tuple(dict.fromkeys(choices))


def opening_choice(spec: Any, choices: tuple[AttentionChoice, ...]) -> int:
    """The index in ``choices`` of the one the page opens on: the first asked.

    ``"mean"`` or ``"max"`` embeds that reduction for every layer the record holds and
    opens on the last of them (early layers attend mostly by position, the last ones
    by content); a ``(layer, head)`` opens on its own layer.

    Args:
        spec: what :func:`coilvis.coil` took as ``attention=``.
        choices: what :func:`parse_attention` made of it, for the same record.

    Returns:
        An index into ``choices`` (0 when there are none).

    Examples:
        >>> from coilvis.record import HEAD_MEAN
        >>> opening_choice("mean", (AttentionChoice(0, HEAD_MEAN), AttentionChoice(5, HEAD_MEAN)))
        1
    """
    first = spec[0] if isinstance(spec, list) and spec else spec
    if not isinstance(first, str) or first not in ("mean", "max"):
        return 0
    head = HEAD_MEAN if first == "mean" else HEAD_MAX
    layers = [c.layer for c in choices if c.head == head]
    return choices.index(AttentionChoice(max(layers), head)) if layers else 0
