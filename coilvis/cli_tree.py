"""The ``coilvis tree`` command: the model's likely continuations of a prompt, as a sunburst or a flame graph (or a saved Tree).

Examples::

    coilvis tree "The Eiffel Tower is located in the city of" --depth 3 --k 5 -o eiffel-tree.html
    coilvis tree "Once upon a time" --depth 4 --k 8 --flame -o story.html
    coilvis tree "Once upon a time" -o story.coiltree            # save the Tree
    coilvis tree --tree story.coiltree --color entropy -o story.png

:mod:`coilvis.cli` owns the parser and the exit statuses; this module adds the
subcommand's arguments, checks them and runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["TREE_SUFFIX", "add_parser", "run", "usage_error"]

#: Suffix of a saved Tree written by ``-o``.
TREE_SUFFIX = ".coiltree"
_VIEW_SUFFIXES = (".html", ".htm", ".png")

EPILOG = """examples:
  coilvis tree "The Eiffel Tower is located in the city of" --depth 3 --k 5 -o eiffel-tree.html
  coilvis tree "Once upon a time" --depth 4 --k 8 --flame -o story.html
  coilvis tree "Once upon a time" -o story.coiltree       # save the tree, draw it later
  coilvis tree --tree story.coiltree --color entropy -o story.png
"""


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """Add the ``tree`` subcommand to ``sub`` (an argparse subparsers action)."""
    p = sub.add_parser("tree", help="the model's likely continuations as a sunburst (or --flame graph)", formatter_class=formatter, epilog=EPILOG)
    p.add_argument("prompt", nargs="?", default=None, help="the prompt text ('-' reads it from stdin); or give --tree")
    p.add_argument("--tree", type=Path, default=None, metavar="FILE", help=f"draw a saved Tree ({TREE_SUFFIX}) instead of running a model")
    p.add_argument("--model", "-m", default=None, help="transformers model id or local folder (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default=None, help="torch device for the model, e.g. cpu, cuda or cuda:1 (default: cpu)")
    p.add_argument("--depth", type=int, default=None, help="tokens ahead (rings of the sunburst; default: 3)")
    p.add_argument("--k", type=int, default=None, help="most likely next tokens kept under each node (default: 5)")
    p.add_argument("--min-prob", type=float, default=None, help="grow only nodes whose path probability is at least this (default: 0)")
    p.add_argument("--max-nodes", type=int, default=None, help="refuse a tree larger than this before running (default: 20000)")
    p.add_argument("--flame", action="store_true", help="draw a flame graph (depth downward, width = path probability) instead of a sunburst")
    p.add_argument("--color", default=None, help="what colours a node: prob (given its path; default), path_prob or entropy")
    p.add_argument("-o", "--output", type=Path, default=Path("tree.html"),
                   help=f"output file: .html, .png (the picture) or {TREE_SUFFIX} (the Tree, to draw later); a missing folder is created")
    p.add_argument("--title", default=None, help="page title (.html only)")
    return p


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with a ``tree`` command line by itself (None: nothing)."""
    if (args.prompt is None) == (args.tree is None):
        return "give a prompt or --tree FILE (one of them)"
    growing = [flag for flag, value in (("--model", args.model), ("--device", args.device), ("--depth", args.depth), ("--k", args.k),
                                        ("--min-prob", args.min_prob), ("--max-nodes", args.max_nodes)) if value is not None]
    if args.tree is not None and growing:
        return f"{', '.join(growing)}: apply to growing a tree, not to drawing a saved --tree"
    suffix = args.output.suffix.lower()
    if suffix not in (*_VIEW_SUFFIXES, TREE_SUFFIX):
        return f"-o/--output: expected a file name ending in .html, .htm, .png or {TREE_SUFFIX}, got {str(args.output)!r}"
    drawn = [flag for flag, value in (("--flame", args.flame), ("--color", args.color), ("--title", args.title)) if value]
    if suffix == TREE_SUFFIX and drawn:
        return f"{', '.join(drawn)}: apply to a drawn picture, not to a saved {TREE_SUFFIX}"
    if suffix == ".png" and args.title:
        return "--title: applies to .html output only"
    return None


def _tree(args: argparse.Namespace) -> Any:
    import sys

    import coilvis

    if args.tree is not None:
        return coilvis.Tree.load(args.tree)
    options = {name: getattr(args, name) for name in ("depth", "k", "min_prob", "max_nodes") if getattr(args, name) is not None}
    model = coilvis.load_model(args.model, device=args.device) if (args.model or args.device) else None
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    return coilvis.tree(prompt, model, **options)


def run(args: argparse.Namespace) -> int:
    """Run ``coilvis tree``: print the path written."""
    import coilvis

    tree = _tree(args)
    out = args.output.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == TREE_SUFFIX:
        print(tree.save(out).resolve())
        return 0
    draw = coilvis.flame if args.flame else coilvis.sunburst
    view = draw(tree, **({"color": args.color} if args.color is not None else {}))
    print(coilvis.save(view, out, title=args.title).resolve())
    return 0
