"""The ``coilvis compare`` command: two runs side by side, drawn as one page (or saved as a comparison file).

Examples::

    coilvis compare "When Mary and John went to the store, John gave a drink to" \\
                    "When Alice and John went to the store, John gave a drink to" \\
                    --metric " Mary" " John" --lens -o ioi-diff.html
    coilvis compare "The capital of France is" --model-b path/to/tuned -o tuned.html
    coilvis compare --records clean.coil corrupt.coil -o later.html
    coilvis compare "A" "B" --lens -o pair.coilcmp        # save the Comparison
    coilvis compare --comparison pair.coilcmp -o pair.html  # draw it later, no model

:mod:`coilvis.cli` owns the parser and the exit statuses; this module adds the
subcommand's arguments, checks them and runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["COMPARISON_SUFFIX", "add_parser", "run", "usage_error"]

#: Suffix of a saved comparison written by ``-o``.
COMPARISON_SUFFIX = ".coilcmp"
_VIEW_SUFFIXES = (".html", ".htm", ".png")

EPILOG = """examples:
  coilvis compare "When Mary and John went to the store, John gave a drink to" \\
                  "When Alice and John went to the store, John gave a drink to" \\
                  --metric " Mary" " John" --lens -o ioi-diff.html
  coilvis compare "The capital of France is" --model-b path/to/tuned -o tuned.html
  coilvis compare --records clean.coil corrupt.coil -o later.html
  coilvis compare "A" "B" -o pair.coilcmp             # save the comparison
  coilvis compare --comparison pair.coilcmp -o pair.html
"""


def add_parser(sub: Any, formatter: type[argparse.HelpFormatter]) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to ``sub`` (an argparse subparsers action)."""
    p = sub.add_parser(
        "compare", help="compare two runs position by position: two prompts, one prompt through two models, or two records",
        formatter_class=formatter, epilog=EPILOG,
    )
    p.add_argument("prompts", nargs="*", default=[], metavar="PROMPT",
                   help="prompt a (the reference) and prompt b; one prompt with --model-b runs it through both models ('-' reads a prompt from stdin)")
    p.add_argument("--records", nargs=2, type=Path, default=None, metavar=("A", "B"), help="compare two saved Records (.coil) instead of running a model")
    p.add_argument("--comparison", type=Path, default=None, metavar="FILE", help=f"draw a saved comparison ({COMPARISON_SUFFIX}) instead")
    p.add_argument("--model", "-m", default=None, help="transformers model id or local folder for run a (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--model-b", default=None, help="a second model for run b (base vs tuned); it must share the tokenizer")
    p.add_argument("--device", default=None, help="torch device for the models, e.g. cpu, cuda or cuda:1 (default: cpu)")
    p.add_argument("--metric", nargs=2, default=None, metavar=("PLUS", "MINUS"),
                   help="a logit difference on both runs, e.g. --metric ' Mary' ' John' (each one token of the vocabulary)")
    p.add_argument("--lens", action="store_true", help="also compare every layer through the logit lens")
    p.add_argument("--align", choices=["end"], default=None, help="prompts of different token lengths: compare their last positions")
    p.add_argument("--movers", type=int, default=None, metavar="N", help="tokens kept each way per position whose probability rose / fell most (default: 10)")
    p.add_argument("--label-a", default=None, help="a short name for run a (default: a, or its model's name)")
    p.add_argument("--label-b", default=None, help="a short name for run b")
    p.add_argument("--color", default=None, help="what colours the coil: kl_ab, kl_ba, js (default), tv, metric, delta_next_logprob")
    p.add_argument("--stat", default=None, help="what colours the lens: kl_ab, kl_ba, js (default), tv, metric")
    p.add_argument("-o", "--output", type=Path, default=Path("compare.html"),
                   help=f"output file: .html, .png (the page) or {COMPARISON_SUFFIX} (the comparison, to draw later); a missing folder is created")
    p.add_argument("--cdn", action="store_true", help="load BokehJS from a CDN instead of inlining it (.html only)")
    p.add_argument("--title", default=None, help="page title (.html only)")
    return p


def _sources(args: argparse.Namespace) -> list[str]:
    given = []
    if args.prompts:
        given.append("PROMPT")
    if args.records is not None:
        given.append("--records")
    if args.comparison is not None:
        given.append("--comparison")
    return given


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with a ``compare`` command line by itself (None: nothing)."""
    sources = _sources(args)
    if len(sources) != 1:
        return "give two prompts (or one with --model-b), --records A B, or --comparison FILE" + (f"; got {' and '.join(sources)}" if sources else "")
    run_only = [flag for flag, value in (("--model", args.model), ("--model-b", args.model_b), ("--device", args.device), ("--lens", args.lens)) if value]
    if args.prompts:
        if len(args.prompts) > 2:
            return f"at most two prompts (a and b), got {len(args.prompts)}; quote a prompt that has spaces"
        if len(args.prompts) == 1 and args.model_b is None:
            return "one prompt compares two models: add --model-b, or give a second prompt"
        if args.prompts.count("-") > 1:
            return "only one prompt can be read from stdin ('-')"
    elif run_only:
        return f"{', '.join(run_only)}: apply to running models, not to {sources[0]}"
    if args.comparison is not None and any(v is not None for v in (args.metric, args.align, args.movers, args.label_a, args.label_b)):
        return "--metric, --align, --movers, --label-a, --label-b: the saved comparison already has them"
    if args.movers is not None and args.movers < 1:
        return f"--movers: expected an integer >= 1, got {args.movers}"
    suffix = args.output.suffix.lower()
    if suffix not in (*_VIEW_SUFFIXES, COMPARISON_SUFFIX):
        return f"-o/--output: expected a file name ending in .html, .htm, .png or {COMPARISON_SUFFIX}, got {str(args.output)!r}"
    drawn = [flag for flag, value in (("--color", args.color), ("--stat", args.stat), ("--cdn", args.cdn), ("--title", args.title)) if value]
    if suffix == COMPARISON_SUFFIX and drawn:
        return f"{', '.join(drawn)}: apply to a drawn page, not to a saved {COMPARISON_SUFFIX}"
    if suffix == ".png" and (args.cdn or args.title):
        return "--cdn, --title: apply to .html output only"
    return None


def _read_prompt(text: str) -> str:
    import sys

    return sys.stdin.read() if text == "-" else text


def _comparison(args: argparse.Namespace) -> Any:
    """The comparison the command line asks for: loaded, of two records, or run."""
    import coilvis

    if args.comparison is not None:
        return coilvis.Comparison.load(args.comparison)
    options: dict[str, Any] = {"align": args.align, "label_a": args.label_a, "label_b": args.label_b}
    if args.metric is not None:
        options["metric"] = tuple(args.metric)
    if args.movers is not None:
        options["movers"] = args.movers
    if args.records is not None:
        a, b = (coilvis.Record.load(path) for path in args.records)
        return coilvis.compare(a, b, **options)
    model = coilvis.load_model(args.model, device=args.device) if (args.model or args.device) else None
    model_b = coilvis.load_model(args.model_b, device=args.device) if args.model_b else None
    prompts = [_read_prompt(p) for p in args.prompts]
    b = prompts[1] if len(prompts) == 2 else None
    return coilvis.compare(prompts[0], b, model=model, model_b=model_b, lens=args.lens, **options)


def run(args: argparse.Namespace) -> int:
    """Run ``coilvis compare``: print the path written."""
    import coilvis

    comparison = _comparison(args)
    out = args.output.expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == COMPARISON_SUFFIX:
        print(comparison.save(out).resolve())
        return 0
    coil_options = {"color": args.color} if args.color is not None else {}
    lens_options = {"stat": args.stat} if args.stat is not None else {}
    if args.stat is not None and comparison.lens is None:
        from coilvis.errors import CoilvisValueError

        raise CoilvisValueError("--stat: the comparison has no lens to colour; add --lens")
    from coilvis.views.diff import diff_page

    view = diff_page(comparison, coil_options=coil_options, lens_options=lens_options)
    path = coilvis.save(view, out, resources="cdn" if args.cdn else "inline", title=args.title)
    print(path.resolve())
    return 0
