"""Benchmark: build the whole gallery, time split into model time and rendering time.

Builds every example of ``gallery/prompts.json`` with the embedded default model into a
fresh folder (so every record is computed), then rebuilds it (every record cached, so the
model is neither loaded nor run), and prints per example: tokens, model seconds, page and
thumbnail seconds, page size; then the totals and the size of the built folder.

    python benchmarks/bench_gallery.py                  # a temporary folder
    python benchmarks/bench_gallery.py -o gallery/_build --keep
    python benchmarks/bench_gallery.py --no-thumbnails  # without headless Chromium
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from coilvis.gallery import GalleryResult, build_gallery


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.2f}"


def _folder_sizes(out: Path) -> dict[str, int]:
    sizes = {"pages": 0, "thumbs": 0, "records": 0, "index": 0}
    for p in out.rglob("*"):
        if p.is_file():
            key = p.relative_to(out).parts[0] if len(p.relative_to(out).parts) > 1 else "index"
            sizes[key] = sizes.get(key, 0) + p.stat().st_size
    return sizes


def report(result: GalleryResult, *, label: str) -> None:
    """Print one build's table."""
    print(f"\n## {label}")
    print(f"{'example':<16} {'tokens':>6} {'cached':>6} {'model s':>8} {'page s':>7} {'thumb s':>8} {'page MB':>8}  status")
    for e in result.examples:
        size = e.page.stat().st_size if e.page is not None and e.page.is_file() else 0
        tokens = "" if e.seq_len is None else str(e.seq_len)
        status = e.status if e.error is None else f"{e.status}: {e.error[:60]}"
        print(
            f"{e.name:<16} {tokens:>6} {('yes' if e.cached else 'no'):>6} {e.model_s:>8.2f} "
            f"{e.page_s:>7.2f} {e.thumbnail_s:>8.2f} {_mb(size):>8}  {status}"
        )
    sizes = _folder_sizes(result.out_dir)
    print(
        f"model time {result.model_s:.1f} s (load {result.model_load_s:.1f} s + runs "
        f"{result.model_s - result.model_load_s:.1f} s); rendering time {result.render_s:.1f} s "
        f"(pages {sum(e.page_s for e in result.examples):.1f} s, thumbnails "
        f"{sum(e.thumbnail_s for e in result.examples):.1f} s, index {result.index_s:.3f} s); "
        f"wall {result.total_s:.1f} s"
    )
    print(
        f"folder {_mb(result.size_bytes())} MB: pages {_mb(sizes['pages'])}, thumbnails {_mb(sizes['thumbs'])}, "
        f"records {_mb(sizes['records'])}, index {_mb(sizes['index'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=None, help="gallery folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folder (default: removed when temporary)")
    parser.add_argument("--no-thumbnails", action="store_true", help="skip PNG thumbnails")
    parser.add_argument("--only", nargs="+", default=None, help="build only these examples")
    args = parser.parse_args(argv)

    tmp = None
    out = args.output
    if out is None:
        tmp = tempfile.mkdtemp(prefix="coilvis-bench-gallery-")
        out = Path(tmp)
    print(f"# gallery build: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    try:
        cold = build_gallery(out, only=args.only, force=True, thumbnails=not args.no_thumbnails)
        report(cold, label="cold build (every record computed)")
        warm = build_gallery(out, only=args.only, thumbnails=not args.no_thumbnails)
        report(warm, label="rebuild (records cached: the model is not loaded)")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if cold.ok and warm.ok else 1


if __name__ == "__main__":
    sys.exit(main())
