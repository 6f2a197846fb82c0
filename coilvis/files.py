"""Writing files safely: the one atomic writer of coilvis, and checks of output paths.

Every file coilvis writes (pages, images, records, the gallery) goes through
:func:`atomic_write` or :func:`atomic_writer`:

1. Temporary files left by an earlier save of the same target that was killed
   (``kill -9``, power loss) are removed first, see :func:`remove_stale_temps`.
2. The data goes to a temporary file in the target's folder, named
   ``.NAME.HOST-PID-RANDOM.tmp`` (``HOST``: 8 hex digits of a hash of the host name;
   ``PID``: the writing process), created with ``O_EXCL``.
3. The temporary file is flushed and ``fsync``-ed, given the mode of the file it
   replaces (or ``0o666`` less the umask), and renamed over the target with
   :func:`os.replace`, which is atomic within one file system; then the folder is
   ``fsync``-ed where the system allows it, so the rename itself survives a crash.

So a reader sees the old file or the new one, never half of one; a failed save leaves
the old file and no temporary file. Errors name the target, never the temporary file.

This module needs the standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from coilvis.errors import CoilvisTypeError, CoilvisValueError

__all__ = [
    "STALE_AFTER_S",
    "as_path",
    "atomic_write",
    "atomic_writer",
    "check_output_path",
    "remove_stale_temps",
]

#: A temporary file whose writer cannot be shown to be dead is removed once it has not
#: been written to for this long (a live writer writes its file continuously).
STALE_AFTER_S = 600.0

_TEMP_SUFFIX = ".tmp"
# ours: HOST-PID-RANDOM; older coilvis versions used tempfile.mkstemp's 8 characters
_OUR_TAG = re.compile(r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}")
_LEGACY_TAG = re.compile(r"[a-z0-9_]{8}")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "surrogatepass")).hexdigest()[:8]


def as_path(value: Any, *, name: str = "path") -> Path:
    """``value`` as a :class:`~pathlib.Path` (``~`` expanded).

    Raises:
        CoilvisTypeError: ``value`` is not a ``str`` or ``os.PathLike`` of ``str``.
        CoilvisValueError: ``value`` is empty or holds a NUL character.
    """
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, (str, os.PathLike)):
        raise CoilvisTypeError(f"{name}: expected a str or path, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise CoilvisTypeError(f"{name}: expected a str or path, got a path of {type(text).__name__}")
    if not text or text == ".":
        raise CoilvisValueError(f"{name}: expected a file name, got {text!r}")
    if "\x00" in text:
        raise CoilvisValueError(f"{name}: {text!r} holds a NUL character")
    return Path(text).expanduser()


def _mode(path: Path) -> int | None:
    """``st_mode`` of ``path`` (links followed), or ``None`` when nothing is there."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return 0  # there, but not usable (no permission, a loop of links)


def check_output_path(
    path: Any,
    *,
    suffixes: tuple[str, ...] | None = None,
    make_parents: bool = True,
    name: str = "path",
) -> Path:
    """Check, before any work is done, that a file can be written at ``path``.

    Creates nothing: call it before a long computation (a model run) so that a bad
    output path fails at once.

    Args:
        path: where a file will be written.
        suffixes: accepted file name endings (compared case-insensitively, with the
            dot: ``(".html", ".png")``); ``None`` accepts any.
        make_parents: whether a missing folder will be created by the writer; when
            ``False`` the folder must exist.
        name: the argument's name, for messages.

    Returns:
        The path, ``~`` expanded.

    Raises:
        CoilvisTypeError: ``path`` is not a ``str`` or path.
        CoilvisValueError: wrong suffix, ``path`` is a folder, its folder is missing
            (with ``make_parents=False``) or is a file, or the folder is not writable.
    """
    out = as_path(path, name=name)
    if suffixes is not None and out.suffix.lower() not in tuple(s.lower() for s in suffixes):
        want = ", ".join(suffixes)
        raise CoilvisValueError(f"{name}: expected a file name ending in {want}, got {str(path)!r}")
    if stat.S_ISDIR(_mode(out) or 0):
        raise CoilvisValueError(f"{name}: {str(out)!r} is a folder, expected a file name")
    folder = out.parent
    existing = folder
    while _mode(existing) is None and existing != existing.parent:
        existing = existing.parent
    if not make_parents and existing != folder:
        raise CoilvisValueError(f"{name}: the folder {str(folder)!r} does not exist")
    if not stat.S_ISDIR(_mode(existing) or 0):
        raise CoilvisValueError(f"{name}: {str(existing)!r} is not a folder, so {str(out)!r} cannot be written")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CoilvisValueError(f"{name}: the folder {str(existing)!r} is not writable")
    return out


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this host; ``None`` when that cannot be told."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows
        return None
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):
        return None
    return True


def _is_stale(tag: str, mtime: float, now: float) -> bool:
    match = _OUR_TAG.fullmatch(tag)
    if match is not None and match["host"] == _host_tag() and _pid_alive(int(match["pid"])) is False:
        return True
    return now - mtime > STALE_AFTER_S


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files of ``path`` left behind by saves that were killed.

    A sibling ``.NAME.TAG.tmp`` of ``path`` (``NAME``: the target's file name) is a
    temporary file of the same target. It is removed when its writer is known to be
    dead (same host, and no process with its pid), or when it has not been modified
    for :data:`STALE_AFTER_S` seconds (a writer on another host sharing the folder,
    a reused pid, or a file from an older coilvis). Only regular files are removed;
    failures (permissions, a race with another cleaner) are ignored.

    Returns:
        The files removed.
    """
    target = Path(path)
    prefix = f".{target.name}."
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(_TEMP_SUFFIX)):
            continue
        tag = entry.name[len(prefix) : -len(_TEMP_SUFFIX)]
        if not (_OUR_TAG.fullmatch(tag) or _LEGACY_TAG.fullmatch(tag)):
            continue
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and _is_stale(tag, info.st_mtime, now):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _renamed(exc: OSError, target: Path) -> OSError:
    """The same error, naming the target instead of the temporary file."""
    name = os.path.basename(os.fsdecode(exc.filename)) if isinstance(exc.filename, (str, bytes)) else None
    ours = name is None or (name.startswith(f".{target.name}.") and name.endswith(_TEMP_SUFFIX))
    if exc.errno is None or not ours:
        return exc
    return type(exc)(exc.errno, f"cannot write ({exc.strerror})", str(target))


def _create_temp(target: Path) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {target}")  # pragma: no cover


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt" or not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file handle whose contents replace ``path`` atomically on success.

    Write to the handle inside the ``with`` block; when the block ends without an
    error the file is flushed, ``fsync``-ed and renamed over ``path`` (see the module
    docstring). When the block raises, the temporary file is removed and ``path`` is
    left as it was. The folder must exist.

    Raises:
        OSError: the file cannot be written; the error names ``path``.
    """
    target = Path(path)
    remove_stale_temps(target)
    try:
        try:
            mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = None
        fd, tmp = _create_temp(target)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        named = _renamed(exc, target)
        if named is exc:
            raise
        raise named from exc
    _fsync_folder(target.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    with atomic_writer(target) as handle:
        handle.write(data)
    return target
