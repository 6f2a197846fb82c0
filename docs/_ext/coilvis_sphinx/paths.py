"""Where the site's build keeps what it generates, and the cache that is reused only while coilvis's sources are unchanged."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coilvis

#: Files of the package whose content decides what the executed pages show.
_SOURCE_SUFFIXES = (".py", ".js", ".json")


def source_key() -> str:
    """A hash of coilvis's own source files (and of this extension): 16 hex digits.

    Whatever the build runs (executed pages, command lines, the explorer) is cached
    under it, so any change to the code it runs runs it again.
    """
    digest = hashlib.sha256()
    roots = [Path(coilvis.__file__).resolve().parent, Path(__file__).resolve().parent]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class BuildPaths:
    """The folders of one docs build, all under ``docs/_build``.

    Attributes:
        key: :func:`source_key` of this build.
        root: ``docs/_build``.
        generated: what the build writes for the site (images are found there by
            Sphinx as ``/_build/generated/...``).
        extra: copied as is to the site's root (``html_extra_path``): live pages, the gallery.
        shell: the working folder of the command lines the pages run.
        cache: what this source key's build ran, reused by the next build of the same key.
        gallery: the site's copy of the gallery (see :mod:`coilvis_sphinx.gallery`).
    """

    key: str
    root: Path
    generated: Path
    extra: Path
    shell: Path
    cache: Path
    gallery: Path

    @classmethod
    def of(cls, confdir: str | Path) -> BuildPaths:
        root = Path(confdir).resolve() / "_build"
        key = source_key()
        generated = root / "generated"
        paths = cls(
            key=key,
            root=root,
            generated=generated,
            extra=generated / "extra",
            shell=generated / "shell",
            cache=root / "cache" / key,
            gallery=generated / "extra" / "gallery",
        )
        for folder in (paths.generated, paths.extra, paths.shell, paths.cache):
            folder.mkdir(parents=True, exist_ok=True)
        for old in paths.cache.parent.iterdir():  # what earlier sources ran
            if old != paths.cache:
                shutil.rmtree(old, ignore_errors=True)
        return paths

    @property
    def notebook_cache(self) -> Path:
        """jupyter-cache's folder (the executed pages)."""
        return self.cache / "notebooks"

    def cached(self, kind: str, payload: str, produce: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
        """What ``produce`` made of ``payload`` under this source key, made now if not yet.

        ``produce(folder)`` writes its files into ``folder`` and returns what else it wants
        kept (JSON); a run that fails leaves nothing behind.

        Returns:
            ``(folder, data)``.
        """
        name = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
        folder = self.cache / kind / name
        meta = folder / "meta.json"
        if meta.is_file():
            return folder, json.loads(meta.read_text(encoding="utf-8"))
        work = folder.with_name(name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        data = produce(work)
        (work / "meta.json").write_text(json.dumps(data), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        work.rename(folder)
        return folder, data
