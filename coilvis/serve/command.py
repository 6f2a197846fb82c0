"""The ``coilvis serve`` command: start the live explorer and print its URL.

Examples::

    coilvis serve                                   # the embedded default model, http://127.0.0.1:5006/
    coilvis serve --model gpt2 --model path/to/tuned --show
    coilvis serve --host 0.0.0.0 --allow-websocket-origin myhost:5006

:mod:`coilvis.cli` owns the parser and the exit statuses; this module adds the
subcommand's arguments, checks them and runs it.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["EPILOG", "add_parser", "run", "usage_error"]

EPILOG = """examples:
  coilvis serve                                   # the default model at http://127.0.0.1:5006/
  coilvis serve --model gpt2 --model path/to/tuned --show
  coilvis serve --port 0                          # any free port (printed)
  coilvis serve --host 0.0.0.0 --allow-websocket-origin myhost:5006

Open http://127.0.0.1:5006/?prompt=The%20Eiffel%20Tower%20is%20in&color=entropy to run a
prompt at once; Ctrl-C stops the server.
"""


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``sub`` (an argparse subparsers action)."""
    p = sub.add_parser("serve", help="start the live explorer on a Bokeh server: type a prompt, see the coil, lens and table",
                       formatter_class=formatter, epilog=EPILOG)
    p.add_argument("--model", "-m", action="append", default=None, metavar="ID_OR_DIR",
                   help="a model for the chooser (repeat for several; default: the embedded SmolLM2-135M-Instruct); each loads on first use")
    p.add_argument("--port", type=int, default=5006, help="TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
                   help="also accept pages served to this origin (needed with --host other than loopback)")
    p.add_argument("--show", action="store_true", help="open the explorer in a browser")
    p.add_argument("--no-lens", action="store_true", help="runs skip the logit lens unless a tab turns it on")
    return p


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with a ``serve`` command line by itself (None: nothing)."""
    if not 0 <= args.port <= 65535:
        return f"--port: expected 0..65535, got {args.port}"
    if not args.host:
        return "--host: give an address, e.g. 127.0.0.1"
    models = args.model or []
    if len(set(models)) != len(models):
        return "--model: a model is given twice"
    return None


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from coilvis.serve.server import serve

    serve(args.model, port=args.port, host=args.host, allow_websocket_origin=args.allow_websocket_origin, show=args.show, lens=not args.no_lens)
    return 0
