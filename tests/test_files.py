"""Tests for coilvis.files: the one atomic writer (temporary file, fsync, rename, stale
temporary files of killed writers removed, errors naming the target) and output-path checks."""

from __future__ import annotations

import ast
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import coilvis.gallery
import coilvis.views.output
from coilvis import files
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.files import STALE_AFTER_S, atomic_write, atomic_writer, check_output_path, remove_stale_temps

PACKAGE = Path(files.__file__).resolve().parent


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "x.html"
    assert atomic_write(path, b"one") == path
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    path.chmod(0o600)
    atomic_write(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the replaced file's mode is kept
    assert _listing(tmp_path) == ["x.html"]


def test_failed_write_keeps_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "x.html"
    atomic_write(path, b"old")
    with pytest.raises(ZeroDivisionError), atomic_writer(path) as handle:
        handle.write(b"half of the new")
        1 / 0  # noqa: B018
    assert path.read_bytes() == b"old"
    assert _listing(tmp_path) == ["x.html"]


def test_errors_name_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.html"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write(path, b"data")
    assert info.value.filename == str(path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_errors_in_a_folder_without_files_name_the_target() -> None:
    with pytest.raises(OSError) as info:
        atomic_write(Path("/proc/x.html"), b"data")
    assert "/proc/x.html" in str(info.value) and ".tmp" not in str(info.value)


def test_a_live_writer_of_this_process_keeps_its_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "x.html"
    with atomic_writer(path) as outer:
        outer.write(b"outer")
        atomic_write(path, b"inner")  # a second save of the same target meanwhile
        assert path.read_bytes() == b"inner"
    assert path.read_bytes() == b"outer"
    assert _listing(tmp_path) == ["x.html"]


_HOLD_A_SAVE_OPEN = """
import sys, time
from coilvis.files import atomic_writer
with atomic_writer(sys.argv[1]) as handle:
    handle.write(b"x" * 100_000)
    handle.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def test_a_killed_writer_leaves_a_temporary_file_that_the_next_write_removes(tmp_path: Path) -> None:
    path = tmp_path / "x.html"
    atomic_write(path, b"good")
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_A_SAVE_OPEN, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [name for name in _listing(tmp_path) if name != "x.html"]
    assert len(left) == 1 and left[0].startswith(".x.html.") and left[0].endswith(".tmp")
    assert path.read_bytes() == b"good"  # the killed save never touched the target
    atomic_write(path, b"new")
    assert _listing(tmp_path) == ["x.html"] and path.read_bytes() == b"new"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _our_tag(pid: int, host: str | None = None) -> str:
    return f"{host or files._host_tag()}-{pid}-0123abcd"


@pytest.mark.parametrize(
    "name, age_s, removed",
    [
        pytest.param(".x.html.{dead}.tmp", 0, True, id="dead-writer"),
        pytest.param(".x.html.{alive}.tmp", 0, False, id="live-writer"),
        pytest.param(".x.html.{alive}.tmp", 2 * STALE_AFTER_S, True, id="live-pid-but-untouched-for-long"),
        pytest.param(".x.html.{other_host}.tmp", 0, False, id="other-host-recent"),
        pytest.param(".x.html.{other_host}.tmp", 2 * STALE_AFTER_S, True, id="other-host-old"),
        pytest.param(".x.html.ab_cd12x.tmp", 0, False, id="mkstemp-name-recent"),
        pytest.param(".x.html.ab_cd12x.tmp", 2 * STALE_AFTER_S, True, id="mkstemp-name-old"),
        pytest.param(".x.html.notes.tmp", 2 * STALE_AFTER_S, False, id="not-a-temp-name"),
        pytest.param(".x.html.b.ab_cd12x.tmp", 2 * STALE_AFTER_S, False, id="temp-of-x.html.b"),
        pytest.param(".x.htmlb.ab_cd12x.tmp", 2 * STALE_AFTER_S, False, id="temp-of-x.htmlb"),
        pytest.param("x.html.ab_cd12x.tmp", 2 * STALE_AFTER_S, False, id="not-hidden"),
    ],
)
def test_stale_temporary_files_are_told_apart(tmp_path: Path, name: str, age_s: float, removed: bool) -> None:
    name = name.format(dead=_our_tag(_dead_pid()), alive=_our_tag(os.getpid()), other_host=_our_tag(_dead_pid(), "ffffffff"))
    if files._host_tag() == "ffffffff":  # pragma: no cover
        pytest.skip("this host's tag is the 'other host' of the test")
    temp = tmp_path / name
    temp.write_bytes(b"partial")
    then = time.time() - age_s
    os.utime(temp, (then, then))
    assert remove_stale_temps(tmp_path / "x.html") == ([temp] if removed else [])
    assert temp.exists() is not removed


def test_folders_named_like_temporary_files_stay(tmp_path: Path) -> None:
    folder = tmp_path / f".x.html.{_our_tag(_dead_pid())}.tmp"
    folder.mkdir()
    atomic_write(tmp_path / "x.html", b"data")
    assert folder.is_dir()


@pytest.mark.parametrize(
    "value, kwargs, error, word",
    [
        pytest.param(123, {}, CoilvisTypeError, "got int", id="int"),
        pytest.param(None, {}, CoilvisTypeError, "got NoneType", id="none"),
        pytest.param(b"x.html", {}, CoilvisTypeError, "got bytes", id="bytes"),
        pytest.param("", {}, CoilvisValueError, "file name", id="empty"),
        pytest.param("a\x00b.html", {}, CoilvisValueError, "NUL", id="nul"),
        pytest.param("{tmp}", {}, CoilvisValueError, "is a folder", id="a-folder"),
        pytest.param("{tmp}/x.txt", {"suffixes": (".html", ".png")}, CoilvisValueError, ".html, .png", id="suffix"),
        pytest.param("{tmp}/file/x.html", {}, CoilvisValueError, "not a folder", id="below-a-file"),
        pytest.param("{tmp}/file/deeper/x.html", {}, CoilvisValueError, "not a folder", id="deep-below-a-file"),
        pytest.param("{tmp}/new/x.html", {"make_parents": False}, CoilvisValueError, "does not exist", id="missing-folder"),
    ],
)
def test_check_output_path_refuses_by_name(tmp_path: Path, value: object, kwargs: dict, error: type, word: str) -> None:
    (tmp_path / "file").write_text("a file")
    if isinstance(value, str):
        value = value.format(tmp=tmp_path)
    with pytest.raises(error) as info:
        check_output_path(value, name="output", **kwargs)
    assert str(info.value).startswith("output:") and word in str(info.value)


def test_check_output_path_accepts_and_creates_nothing(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "x.HTML", suffixes=(".html",)) == tmp_path / "x.HTML"
    assert check_output_path(str(tmp_path / "new" / "deeper" / "x.coil")) == tmp_path / "new" / "deeper" / "x.coil"
    assert _listing(tmp_path) == []
    assert check_output_path("~/x.coil") == Path.home() / "x.coil"


def test_files_needs_the_standard_library_only() -> None:
    tree = ast.parse((PACKAGE / "files.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"coilvis"}


def test_one_atomic_writer_in_the_package() -> None:
    assert coilvis.views.output.atomic_write is atomic_write
    assert coilvis.gallery.atomic_write is atomic_write
    renames = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "os.replace(" in p.read_text(encoding="utf-8")
    )
    # files.py renames files; the model cache renames a whole folder into place
    assert renames == ["files.py", "models/default.py"]
