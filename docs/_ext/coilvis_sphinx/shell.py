"""The ``coilvis-shell`` directive: command lines run at build time, shown with what they printed and drew.

In a page::

    ```{coilvis-shell}
    coilvis "The Eiffel Tower is located in the city of" -o eiffel.html
    coilvis table "The Eiffel Tower is located in the city of" --k 5
    ```

Each line is one ``coilvis`` command. It runs through the command's own entry point
(:func:`coilvis.cli.main`, in the build's process, so the default model loads once), in
one working folder shared by the whole build (a record one page writes, a later command
can read). The page shows the command and what it printed; a command that fails stops
the build. For each HTML page a command writes, the page is copied into the site (a
link opens it live: hover, play) and the same command is run once more with a ``.png``
output, whose image is shown: the picture is the command's own, never pasted
(``:no-image:`` leaves the PNG out). What a block printed and drew is kept under the
build's source key (:meth:`coilvis_sphinx.paths.BuildPaths.cached`): a rebuild of the
same coilvis sources shows it again without running the commands.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

#: How the working folder is shown in printed paths.
SHOWN_FOLDER = "/home/you/demo"
_OUTPUT_FLAGS = ("-o", "--output")


def run_command(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``coilvis ARGV...`` in ``cwd``; returns ``(status, stdout, stderr)``."""
    from coilvis.cli import main

    out, err = io.StringIO(), io.StringIO()
    here = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse refusals
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
    return status, out.getvalue(), err.getvalue()


def html_output(argv: list[str]) -> tuple[int, str] | None:
    """``(index of the value, the value)`` of the command's ``-o`` when it names an HTML file."""
    for i, arg in enumerate(argv[:-1]):
        if arg in _OUTPUT_FLAGS and argv[i + 1].endswith(".html"):
            return i + 1, argv[i + 1]
    return None


class CoilvisShell(SphinxDirective):
    """Run ``coilvis`` command lines; show them, their output, and the pages they draw."""

    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"no-image": lambda arg: True}

    def run(self) -> list[nodes.Node]:
        paths = self.env.app.coilvis_paths
        lines = [line.strip() for line in self.content if line.strip() and not line.strip().startswith("#")]
        for line in lines:
            if shlex.split(line)[0] != "coilvis":
                raise self.error(f"coilvis-shell runs coilvis commands only: {line!r}")
        images = "no-image" not in self.options
        payload = "\n".join([self.env.docname, str(images), *lines])
        folder, data = paths.cached("shell", payload, lambda out: self._produce(lines, out, images=images))
        text = "\n".join(data["shown"])
        block = nodes.literal_block(text, text, language="console")
        return [block, *(self._figure(folder, name, images=images) for name in data["pages"])]

    def _produce(self, lines: list[str], out: Path, *, images: bool) -> dict[str, Any]:
        """Run the commands; keep what they printed, the pages they wrote and their PNGs in ``out``."""
        shell = self.env.app.coilvis_paths.shell
        shown, pages = [], []
        for line in lines:
            argv = shlex.split(line)
            status, printed, err = run_command(argv[1:], shell)
            if status != 0:
                raise ExtensionError(f"{self.env.docname}: `{line}` exited with {status}:\n{err[-2000:]}")
            shown.append(f"$ {line}\n{printed.replace(str(shell), SHOWN_FOLDER)}".rstrip("\n"))
            target = html_output(argv)
            if target is None:
                continue
            index, name = target
            page = Path(name).name
            shutil.copyfile(shell / name, out / page)
            pages.append(page)
            if images:
                png = out / (Path(page).stem + ".png")
                status, _, err = run_command([*argv[1:index], str(png), *argv[index + 1 :]], shell)
                if status != 0:
                    raise ExtensionError(f"{self.env.docname}: drawing {png.name} failed:\n{err[-2000:]}")
        return {"shown": shown, "pages": pages}

    def _figure(self, folder: Path, page: str, *, images: bool) -> nodes.Node:
        """A page a command wrote: copied into the site (linked live), and its PNG drawn by the same command."""
        slug = self.env.docname.replace("/", "-")
        live = self.env.app.coilvis_paths.extra / "live" / slug / page
        live.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / page, live)
        href = "../" * self.env.docname.count("/") + f"live/{slug}/{page}"
        if not images:
            para = nodes.paragraph()
            para += nodes.reference("", f"Open {page} (live: hover, tap, play)", refuri=href)
            return para
        png = folder / (Path(page).stem + ".png")
        uri = "/" + png.relative_to(Path(self.env.srcdir)).as_posix()
        figure = nodes.figure(classes=["coilvis-shot"])
        link = nodes.reference("", "", refuri=href, classes=["image-reference"])
        link += nodes.image(uri=uri, alt=f"{page}, as the command draws it")
        figure += link
        caption = nodes.caption()
        caption += nodes.Text(f"{page}, drawn by the same command with -o {png.name}. ")
        caption += nodes.reference("", "Open the page live", refuri=href)
        caption += nodes.Text(" (hover, tap, play).")
        figure += caption
        return figure
