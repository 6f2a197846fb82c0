"""Make a drawn Bokeh model graph equal to a freshly built one of the same shape, changing only the values that differ.

A view already shown in a browser (a live explorer's page) can be brought up to date by
building the view again and copying what changed into the models the browser already
has: new data in a data source, a new title, a new colour range. The browser then
repaints what changed instead of building and laying out new views of every model.
:func:`graft` does this when the two graphs have the same shape (the same model types,
linked the same way, which a view built by the same code with the same options has);
otherwise it changes nothing and says so, and the caller replaces the view instead.

Example:
    >>> from bokeh.models import ColumnDataSource
    >>> from bokeh.plotting import figure
    >>> def draw(xs):
    ...     fig = figure(title=f"{len(xs)} points")
    ...     fig.scatter("x", "x", source=ColumnDataSource({"x": xs}))
    ...     return fig
    >>> shown, fresh = draw([1, 2]), draw([1, 2, 3])
    >>> twin = graft(shown, fresh)
    >>> shown.title.text, shown.renderers[0].data_source.data["x"], twin(fresh.title) is shown.title
    ('3 points', [1, 2, 3], True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from bokeh.model import Model

__all__ = ["graft"]


class _Mismatch(Exception):
    """The two graphs differ in shape."""


def _fields(value: Any) -> dict[str, Any] | None:
    """The fields of a Bokeh value object (``Field``, ``Value``, ...), else None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def _has_models(value: Any) -> bool:
    if isinstance(value, Model):
        return True
    fields = _fields(value)
    if fields is not None:
        return _has_models(fields)
    if isinstance(value, dict):
        return any(_has_models(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_models(v) for v in value)
    return False


def _pair(old: Any, new: Any, pairs: dict[int, tuple[Model, Model]]) -> None:
    """Pair the models of ``new`` with those of ``old`` in the same places (``pairs``:
    ``id(new model) -> (old model, new model)``); raises :class:`_Mismatch`."""
    if isinstance(new, Model):
        if new is old:
            return  # a model both graphs share (one outside the view, linked to it)
        if type(new) is not type(old):
            raise _Mismatch
        if id(new) in pairs:
            if pairs[id(new)][0] is not old:
                raise _Mismatch
            return
        pairs[id(new)] = (old, new)
        for name in _names(type(new), True):
            _pair(getattr(old, name), getattr(new, name), pairs)
    elif not (_has_models(new) or _has_models(old)):
        return  # a plain value: compared and copied later
    elif _fields(new) is not None and type(old) is type(new):
        _pair(_fields(old), _fields(new), pairs)
    elif isinstance(new, dict) and isinstance(old, dict) and old.keys() == new.keys():
        for key in new:
            _pair(old[key], new[key], pairs)
    elif isinstance(new, list | tuple) and isinstance(old, list | tuple) and len(old) == len(new):
        for o, n in zip(old, new, strict=True):
            _pair(o, n, pairs)
    else:
        raise _Mismatch


@functools.cache
def _names(cls: type[Model], refs: bool) -> tuple[str, ...]:
    """The serialised properties of a model class (no deprecated aliases), in a fixed
    order: with ``refs``, those that may hold models (read-only ones too: a data
    source's ``selected``); else the writable ones."""
    names = cls.properties_with_refs() if refs else cls.properties()
    out = []
    for name in sorted(names):
        descriptor = cls.lookup(name)
        if descriptor.property.serialized and (refs or not descriptor.readonly):
            out.append(name)
    return tuple(out)


def _set_names(old: Model, new: Model) -> list[str]:
    """The properties of two twins that either has set (a property at its default in both
    is equal in both); all of them if Bokeh does not say which are set."""
    names = _names(type(new), False)
    try:
        set_ = {*old._property_values, *new._property_values, *old._unstable_default_values, *new._unstable_default_values}
    except AttributeError:
        return list(names)
    return [name for name in names if name in set_]


def _translate(value: Any, pairs: dict[int, tuple[Model, Model]]) -> Any:
    """``value`` of a new model with every paired model replaced by its old twin."""
    if isinstance(value, Model):
        return pairs[id(value)][0] if id(value) in pairs else value
    fields = _fields(value)
    if fields is not None and _has_models(fields):
        return dataclasses.replace(value, **_translate(fields, pairs))
    # plain containers: Bokeh's wrapped ones belong to the new model
    if isinstance(value, dict):
        return {k: _translate(v, pairs) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, pairs) for v in value]
    if isinstance(value, tuple) and _has_models(value):
        return tuple(_translate(v, pairs) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Whether two property values are equal (models by identity, arrays by value)."""
    if isinstance(a, Model) or isinstance(b, Model):
        return a is b
    if _fields(a) is not None or _fields(b) is not None:
        return type(a) is type(b) and _same(_fields(a), _fields(b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if (isinstance(a, list) and isinstance(b, list)) or (isinstance(a, tuple) and isinstance(b, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def graft(old: Model, new: Model) -> Callable[[Any], Any] | None:
    """Make the models under ``old`` equal to those under ``new``, in place.

    ``new`` is a graph of the same shape as ``old`` (every model of the same type, in
    the same place), typically the same view built again from newer data; models the
    two graphs share (the same object in both) are left alone. Every property of
    ``old``'s models whose value differs from its twin's is set to that value (models
    in it replaced by their twins under ``old``), so a Document holding ``old`` sends
    the browser only those changes, and ``new``'s models are not added to it.

    Args:
        old: the root of the graph shown (changed in place).
        new: the root of the graph to copy the values of (not changed).

    Returns:
        When ``old`` now equals ``new`` (but for model ids), a function that maps any value
        holding ``new``'s models (a model, a list, a tuple, a dict) to the same value
        holding their twins under ``old``; None, with nothing changed, when the graphs
        differ in shape.
    """
    pairs: dict[int, tuple[Model, Model]] = {}
    try:
        _pair(old, new, pairs)
    except _Mismatch:
        return None
    changes = []
    for twin, model in pairs.values():
        for name in _set_names(twin, model):
            value = _translate(getattr(model, name), pairs)
            if not _same(getattr(twin, name), value):
                changes.append((twin, name, value))
    doc = old.document
    # a Document recomputes its index of models after a change that moves references,
    # once a change unless frozen, and once on leaving the freeze: freeze only if needed
    moves = doc is not None and any(_has_models(value) or _has_models(getattr(twin, name)) for twin, name, value in changes)
    with doc.models.freeze() if moves else contextlib.nullcontext():
        for twin, name, value in changes:
            setattr(twin, name, value)
    return lambda value: _translate(value, pairs)
