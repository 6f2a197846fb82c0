"""Start the explorer: on a Bokeh server from a shell (:func:`serve`, :func:`start`), or inside Jupyter (:func:`explore`).

The server binds to loopback by default. Models load once, lazily, on a tab's first run
of them. Ctrl-C stops the server cleanly (the workers finish their current job).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coilvis.errors import CoilvisTypeError, CoilvisValueError, check_int
from coilvis.serve.app import ExplorerApp
from coilvis.serve.workers import DEFAULT_MODEL, ModelPool

__all__ = ["Running", "explore", "model_table", "serve", "start"]

#: How often the server looks for closed tabs, and how long a closed tab's session lives on (ms).
CHECK_UNUSED_MS = 2_000
UNUSED_LIFETIME_MS = 5_000


def model_table(models: Sequence[Any] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Name -> model spec for the chooser: ``None`` is the embedded default model; a list
    of ids or folders is named by them; a mapping is used as given."""
    if models is None:
        return {DEFAULT_MODEL: None}
    if isinstance(models, Mapping):
        table = {str(k): v for k, v in models.items()}
    elif isinstance(models, (str, bytes)) or not isinstance(models, Sequence):
        raise CoilvisTypeError(f"models: expected a list of model ids or folders, or a dict name -> model, got {type(models).__name__}")
    else:
        table = {}
        for spec in models:
            if not isinstance(spec, str) or not spec:
                raise CoilvisTypeError(f"models: each entry of a list must be a model id or folder, got {spec!r}")
            table[spec] = spec
    if not table:
        raise CoilvisValueError("models: give at least one model (or None for the default model)")
    return table


def free_port(host: str) -> int:
    """A free TCP port on ``host``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A started explorer server.

    Attributes:
        server: the Bokeh ``Server``.
        app: the application (its ``sessions`` are the live tabs).
        url: the address to open.
    """

    server: Any
    app: ExplorerApp
    url: str

    def stop(self) -> None:
        """Stop serving and the model workers."""
        self.server.stop()
        self.app.pool.shutdown()


def start(
    models: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    port: int = 5006,
    host: str = "127.0.0.1",
    allow_websocket_origin: Sequence[str] = (),
    lens: bool = True,
    check_unused_ms: int = CHECK_UNUSED_MS,
    unused_lifetime_ms: int = UNUSED_LIFETIME_MS,
) -> Running:
    """Start the explorer's Bokeh server on the current thread's IO loop (not running it).

    Args:
        models: the chooser's models (see :func:`model_table`).
        port: the TCP port (0: a free one).
        host: the address to bind (loopback by default).
        allow_websocket_origin: further ``host[:port]`` origins allowed to connect.
        lens: compute the logit lens by default.
        check_unused_ms: how often closed tabs are looked for.
        unused_lifetime_ms: how long a closed tab's session lives on.

    Returns:
        A :class:`Running` server; run its ``server.io_loop.start()``.
    """
    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server

    port = check_int("port", port, minimum=0)
    if port > 65535:
        raise CoilvisValueError(f"port: expected a TCP port in 0..65535, got {port}")
    if not isinstance(host, str) or not host:
        raise CoilvisTypeError(f"host: expected an address such as 127.0.0.1, got {host!r}")
    origins = [str(o) for o in allow_websocket_origin]
    port = port or free_port(host)
    app = ExplorerApp(ModelPool(model_table(models)), lens=lens)
    shown = f"[{host}]" if ":" in host else host
    allowed = [f"{shown}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", *origins]
    server = Server(
        {"/": Application(FunctionHandler(app))}, port=port, address=host, allow_websocket_origin=allowed,
        check_unused_sessions_milliseconds=check_unused_ms, unused_session_lifetime_milliseconds=unused_lifetime_ms,
    )
    server.start()
    return Running(server, app, f"http://{shown}:{port}/")


def serve(
    models: Sequence[Any] | Mapping[str, Any] | None = None,
    *,
    port: int = 5006,
    host: str = "127.0.0.1",
    allow_websocket_origin: Sequence[str] = (),
    show: bool = False,
    lens: bool = True,
) -> None:
    """Serve the explorer until Ctrl-C: prints its URL, opens a browser with ``show``.

    Args:
        models: the chooser's models: ``None`` (the embedded default model), a list of
            model ids or folders, or a dict name -> model (any model :func:`coilvis.run`
            takes). Each loads on its first run.
        port: the TCP port (0: a free one).
        host: the address to bind; loopback by default. Binding another address makes
            the explorer reachable from other machines: add their ``host:port`` with
            ``allow_websocket_origin``.
        allow_websocket_origin: further origins allowed to open the explorer.
        show: open the explorer in a browser.
        lens: compute the logit lens by default.
    """
    running = start(models, port=port, host=host, allow_websocket_origin=allow_websocket_origin, lens=lens)
    print(f"coilvis explorer at {running.url} (Ctrl-C to stop)", flush=True)
    if show:
        running.server.io_loop.add_callback(running.server.show, "/")
    try:
        running.server.io_loop.start()
    except KeyboardInterrupt:
        print("coilvis explorer: stopping", flush=True)
    finally:
        running.stop()


def explore(model: Any = None, *, lens: bool = True, notebook_url: str = "localhost:8888") -> ExplorerApp:
    """Show the explorer in a Jupyter notebook, running ``model`` (the one the notebook holds).

    Bokeh runs the application on a server inside the kernel and embeds it in the cell
    (``bokeh.io.show`` of an application); the notebook needs ``output_notebook()`` (called
    here) and a ``notebook_url`` the browser can reach.

    Args:
        model: any model :func:`coilvis.run` takes (a loaded model object, a
            ``(model, tokenizer)`` pair, an id or folder); ``None``: the embedded default model.
        lens: compute the logit lens by default.
        notebook_url: where the notebook server is (Bokeh's ``notebook_url``).

    Returns:
        The application (its ``sessions`` are the live cells).
    """
    from bokeh.io import output_notebook, show

    name = DEFAULT_MODEL if model is None else (model if isinstance(model, str) else "model")
    app = ExplorerApp(ModelPool({name: model}), lens=lens)
    output_notebook(hide_banner=True)
    show(app, notebook_url=notebook_url)
    return app
