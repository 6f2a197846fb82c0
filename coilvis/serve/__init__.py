"""The live explorer on the Bokeh server: type a prompt and watch the coil, the lens and the table answer.

``coilvis serve`` (:func:`serve`) starts a Bokeh server application on loopback and
prints its URL; :func:`explore` shows the same application inside Jupyter (Bokeh's own
way of embedding a server app in a notebook), with the model the notebook holds.

Every tab is a session of its own (:mod:`coilvis.serve.session`): a prompt box
(``coilvis_prompt``), a Run button (``coilvis_run``), a status line (``coilvis_status``),
the model chooser, view settings that redraw without running the model, the tab's
history, an edit panel (tap a token, replace it, run again and see the diff against the
run before) and downloads of the page, the Record and the table. Runs from every tab go
through one worker per model (:mod:`coilvis.serve.workers`). A link
``http://host:port/?prompt=...&model=...&color=...`` opens the explorer with that
prompt already run (:mod:`coilvis.serve.app`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["explore", "serve"]


def __getattr__(name: str) -> Any:
    """``explore`` and ``serve``, loaded on first use (so the command line parses its
    options without loading Bokeh)."""
    if name in __all__:
        from coilvis.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'coilvis.serve' has no attribute {name!r}")
