"""The explorer as a Bokeh application: one session per tab over shared model workers, and links that open a run.

:class:`ExplorerApp` is what the Bokeh server (or a notebook) runs for every new tab:
it builds an :class:`~coilvis.serve.session.ExplorerSession`, applies the link's query
(``?prompt=...&model=...&color=...``) and forgets the session when the tab closes.

Query arguments: ``prompt`` (run at once), ``model`` (a name in the chooser),
``color``, ``layout``, ``attention`` (``off``/``mean``/``max``/``head``), ``layer``,
``head``, ``stat`` (the lens colour) and ``lens`` (``0`` or ``1``). An unknown value is
reported in the status line and the default kept.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from coilvis.serve.session import ExplorerSession
from coilvis.serve.workers import ModelPool

__all__ = ["QUERY_KEYS", "ExplorerApp"]

#: Query arguments a link may carry, and the control each sets.
QUERY_KEYS = {
    "model": "model", "color": "color", "layout": "layout", "attention": "attention", "layer": "layer", "head": "head",
    "stat": "lens_stat", "lens": "lens", "prompt": "prompt",
}


def _decode(values: Any) -> str | None:
    if not values:
        return None
    value = values[-1]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ExplorerApp:
    """The explorer's Bokeh application function and its shared state.

    Args:
        pool: the model workers shared by every tab.
        lens: whether runs compute the logit lens by default.

    Attributes:
        sessions: the live tabs, by Bokeh session id.
    """

    def __init__(self, pool: ModelPool, *, lens: bool = True) -> None:
        self.pool = pool
        self.lens = lens
        self.sessions: dict[str, ExplorerSession] = {}
        self._lock = threading.Lock()

    @property
    def n_sessions(self) -> int:
        """Number of live tabs."""
        with self._lock:
            return len(self.sessions)

    def __call__(self, doc: Any) -> None:
        """Build a tab in ``doc`` (Bokeh calls this for every new session)."""
        session = ExplorerSession(doc, self.pool, lens_default=self.lens)
        key = self._session_id(doc)
        with self._lock:
            self.sessions[key] = session
        doc.on_session_destroyed(lambda context: self._forget(key))
        arguments = self._arguments(doc)
        if arguments:
            self.apply_query(session, arguments)

    @staticmethod
    def _session_id(doc: Any) -> str:
        context = getattr(doc, "session_context", None)
        return str(getattr(context, "id", None) or id(doc))

    @staticmethod
    def _arguments(doc: Any) -> dict[str, str]:
        context = getattr(doc, "session_context", None)
        request = getattr(context, "request", None) if context is not None else None
        raw: Mapping[str, Any] = getattr(request, "arguments", None) or {}
        return {key: value for key, value in ((k, _decode(v)) for k, v in raw.items()) if value is not None}

    def _forget(self, key: str) -> None:
        with self._lock:
            session = self.sessions.pop(key, None)
        if session is not None:
            session.close()

    def apply_query(self, session: ExplorerSession, arguments: Mapping[str, str]) -> None:
        """Set the tab's controls from a link's query, then run its prompt."""
        c = session.c
        problems = []
        for key, value in arguments.items():
            target = QUERY_KEYS.get(key)
            if target is None or target == "prompt":
                continue
            widget = getattr(c, target)
            try:
                if target == "lens":
                    widget.active = value not in ("0", "false", "no", "off")
                elif target in ("layer", "head"):
                    widget.value = int(value)
                elif value in [o if isinstance(o, str) else o[0] for o in widget.options]:
                    widget.value = value
                else:
                    problems.append(f"{key}={value!r} is not one of {', '.join(o if isinstance(o, str) else o[0] for o in widget.options)}")
            except ValueError:
                problems.append(f"{key}={value!r} is not a number")
        prompt = arguments.get("prompt")
        if prompt:
            c.prompt.value = prompt
            session.request_run()
        if problems:
            session.set_status("Link: " + "; ".join(problems) + (" (running with the defaults)" if prompt else ""))
