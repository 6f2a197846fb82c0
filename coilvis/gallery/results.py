"""What a gallery build did: one result per example, and the whole build's with its times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Status", "ExampleResult", "GalleryResult"]

Status = Literal["built", "failed", "skipped"]


@dataclass
class ExampleResult:
    """What building one example did.

    Attributes:
        name: the example's name.
        title: its title.
        status: ``"built"``, ``"failed"``, or ``"skipped"`` (not selected by ``only``).
        page: the page written (None unless built).
        thumbnail: the thumbnail written (None when it was not, see ``warning``).
        record: the cached record file.
        cached: whether the record came from the cache (the model did not run).
        sunburst_thumbnail: the sunburst's thumbnail (None when it was not drawn).
        sunburst_caption: what the sunburst on the page shows, its numbers read from the
            tree (:func:`coilvis.gallery.trees.mass_caption`); None when the page has no
            sunburst.
        tree: the cached continuation tree file (None without a sunburst).
        tree_cached: whether the tree came from the cache (the model did not grow it).
        seq_len: number of token positions.
        model_s: seconds spent running the model and growing the tree (0 when both are cached).
        page_s: seconds spent drawing and writing the pages.
        thumbnail_s: seconds spent drawing the thumbnails.
        error: why the example failed.
        warning: a problem that did not stop the page (e.g. no thumbnail).
    """

    name: str
    title: str
    status: Status
    page: Path | None = None
    thumbnail: Path | None = None
    record: Path | None = None
    cached: bool = False
    sunburst_thumbnail: Path | None = None
    sunburst_caption: str | None = None
    tree: Path | None = None
    tree_cached: bool = False
    seq_len: int | None = None
    model_s: float = 0.0
    page_s: float = 0.0
    thumbnail_s: float = 0.0
    error: str | None = None
    warning: str | None = None

    @property
    def render_s(self) -> float:
        """Seconds spent drawing this example (page and thumbnail)."""
        return self.page_s + self.thumbnail_s


@dataclass
class GalleryResult:
    """What :func:`build_gallery` did, with the time it took.

    Attributes:
        out_dir: the gallery folder.
        index: the index page.
        examples: one result per example of the prompts file, in file order.
        model_load_s: seconds spent loading the model (0 when every record was cached).
        index_s: seconds spent writing the index.
        total_s: wall-clock seconds of the whole build.
    """

    out_dir: Path
    index: Path
    examples: list[ExampleResult]
    model_load_s: float = 0.0
    index_s: float = 0.0
    total_s: float = 0.0

    @property
    def built(self) -> list[ExampleResult]:
        """The examples built in this run."""
        return [e for e in self.examples if e.status == "built"]

    @property
    def failures(self) -> list[ExampleResult]:
        """The examples that failed in this run."""
        return [e for e in self.examples if e.status == "failed"]

    @property
    def ok(self) -> bool:
        """Whether no example failed."""
        return not self.failures

    @property
    def model_s(self) -> float:
        """Seconds of model time: loading it plus running every uncached example."""
        return self.model_load_s + sum(e.model_s for e in self.examples)

    @property
    def render_s(self) -> float:
        """Seconds of rendering time: pages, thumbnails and the index."""
        return sum(e.render_s for e in self.examples) + self.index_s

    def size_bytes(self) -> int:
        """Total size of the files in the gallery folder, in bytes."""
        return sum(p.stat().st_size for p in self.out_dir.rglob("*") if p.is_file())

    def summary(self) -> str:
        """A short text table of the build, one line per example."""
        lines = [f"{'example':<16} {'status':<8} {'tokens':>6} {'model s':>8} {'render s':>9}  note"]
        for e in self.examples:
            note = e.error or e.warning or _cache_note(e)
            tokens = "" if e.seq_len is None else str(e.seq_len)
            lines.append(f"{e.name:<16} {e.status:<8} {tokens:>6} {e.model_s:>8.2f} {e.render_s:>9.2f}  {note}")
        lines.append(
            f"model {self.model_s:.1f} s (load {self.model_load_s:.1f} s), render {self.render_s:.1f} s, "
            f"total {self.total_s:.1f} s; {len(self.built)} built, {len(self.failures)} failed -> {self.index}"
        )
        return "\n".join(lines)


def _cache_note(e: ExampleResult) -> str:
    """What came from the cache: ``"cached record"``, ``"cached record and tree"``, ``"cached tree"`` or nothing."""
    cached = [what for what, hit in (("record", e.cached), ("tree", e.tree is not None and e.tree_cached)) if hit]
    return f"cached {' and '.join(cached)}" if cached else ""
