"""``coilvis.coil``, ``coilvis.lens`` and ``coilvis.page`` given a Comparison: the options passed on to its view.

The record views take a Comparison too and hand it, with the options the caller set,
to :func:`~coilvis.views.diff.coil.diff_coil`, :func:`~coilvis.views.diff.lens.diff_lens`
or :func:`~coilvis.views.diff.page.diff_page`. An option the caller left at the record
view's default is not passed (the comparison view has defaults of its own: a coil of a
Comparison is coloured by ``"js"``, not ``"prob"``); an option the comparison view does
not take is an error naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from coilvis.comparison import Comparison
from coilvis.errors import CoilvisValueError
from coilvis.views.diff.coil import diff_coil
from coilvis.views.diff.lens import diff_lens
from coilvis.views.diff.page import diff_page
from coilvis.views.output import View

__all__ = ["VIEWS", "for_comparison"]

#: The view of a Comparison that each record view hands it to.
VIEWS: Mapping[str, Callable[..., View]] = {"coil": diff_coil, "lens": diff_lens, "page": diff_page}


def _keywords(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(function).parameters.items() if p.kind is p.KEYWORD_ONLY}


def _is_default(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return bool(type(value) is type(default) and value == default)
    except (TypeError, ValueError):  # arrays and the like: never equal to a default
        return False


def for_comparison(view: str, comparison: Comparison, given: Mapping[str, Any], record_view: Callable[..., Any]) -> View:
    """Draw ``comparison`` with the view of a Comparison that ``record_view`` hands it to.

    Args:
        view: ``"coil"``, ``"lens"`` or ``"page"``.
        comparison: the Comparison.
        given: the record view's arguments (its ``locals()`` on entry).
        record_view: the record view itself (:func:`coilvis.coil`, ...), whose defaults
            tell which options the caller set.

    Returns:
        The comparison view's :class:`~coilvis.views.output.View`.

    Raises:
        CoilvisValueError: an option set that the comparison view does not take (the
            message names it and lists the options there are).
    """
    target = VIEWS[view]
    takes = _keywords(target)
    options = {
        name: given[name]
        for name, parameter in _keywords(record_view).items()
        if name in given and not _is_default(given[name], parameter.default)
    }
    unknown = [name for name in options if name not in takes]
    if unknown:
        raise CoilvisValueError(
            f"{unknown[0]}: not an option of the {view} of a Comparison ({target.__name__}); "
            f"its options are {', '.join(takes)}"
        )
    return target(comparison, **options)
