"""Benchmark: build the whole gallery, before and after one browser, batched runs and shared BokehJS.

Two ways to build every example of the shipped prompts file with the embedded default
model, alternated in one process:

* ``before``: one headless Chromium per thumbnail, each example through its own
  ``coilvis.run``, BokehJS inlined in every page (how the gallery was built before);
* ``after``: one Chromium for the whole build, examples with the same run options
  through ``coilvis.run_many``, BokehJS written once beside the pages (``--shared-js``).

Each variant builds a fresh folder (every record computed: ``cold``) ``--cold`` times,
then rebuilds it from its cached records (pages and thumbnails only: ``render``)
``--repeats`` times. Per example it prints tokens, model seconds, page and thumbnail
seconds and page size for the first cold build of each; then the medians (wall time,
model time, rendering, thumbnails), the folder sizes and their ratios, with the load
average, since other work on the machine moves every figure.

    python benchmarks/bench_gallery.py                  # cold once, render 3 times, each variant
    python benchmarks/bench_gallery.py --cold 2 --repeats 5
    python benchmarks/bench_gallery.py --no-thumbnails  # without headless Chromium
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _before() -> Iterator[None]:
    """The build as it was: a browser started for each thumbnail, each example run alone."""
    import coilvis
    from coilvis.views import output

    class OneBrowserPerImage(output.PngSession):
        def png_bytes(self, view: Any, **options: Any) -> bytes:
            try:
                return super().png_bytes(view, **options)
            finally:
                self._quit()

    def one_by_one(prompts: list[str], model: Any, **options: Any) -> list[Any]:
        options.pop("batch_size", None)
        return [coilvis.run(p, model, **options) for p in prompts]

    saved = (output.PngSession, coilvis.run_many)
    output.PngSession, coilvis.run_many = OneBrowserPerImage, one_by_one  # type: ignore[misc]
    try:
        yield
    finally:
        output.PngSession, coilvis.run_many = saved  # type: ignore[misc]


def _build(variant: str, out: Path, model: Any, *, force: bool, thumbnails: bool, only: list[str] | None) -> GalleryResult:
    with _before() if variant == "before" else contextlib.nullcontext():
        return build_gallery(out, model=model, only=only, force=force, thumbnails=thumbnails, shared_js=variant == "after", progress=False)


def _summary(runs: dict[str, list[GalleryResult]], label: str) -> None:
    print(f"\n## {label}: medians over {len(runs['after'])} build(s) of each")
    print(f"{'variant':<8} {'wall s':>8} {'model s':>8} {'render s':>9} {'thumbs s':>9} {'pages MB':>9} {'folder MB':>10}")
    medians: dict[str, dict[str, float]] = {}
    for variant, results in runs.items():
        m = {
            "wall": statistics.median(r.total_s for r in results),
            "model": statistics.median(r.model_s for r in results),
            "render": statistics.median(r.render_s for r in results),
            "thumbs": statistics.median(sum(e.thumbnail_s for e in r.examples) for r in results),
            "pages": _folder_sizes(results[-1].out_dir)["pages"],
            "folder": results[-1].size_bytes(),
        }
        m["shown"] = m["folder"] - _folder_sizes(results[-1].out_dir)["records"]
        medians[variant] = m
        print(
            f"{variant:<8} {m['wall']:>8.1f} {m['model']:>8.1f} {m['render']:>9.1f} {m['thumbs']:>9.1f} "
            f"{_mb(m['pages']):>9} {_mb(m['folder']):>10}"
        )
    b, a = medians["before"], medians["after"]
    ratio = lambda key: b[key] / a[key] if a[key] else float("nan")  # noqa: E731
    print(
        f"after vs before: wall {ratio('wall'):.2f}x faster, model {ratio('model'):.2f}x, rendering {ratio('render'):.2f}x, "
        f"thumbnails {ratio('thumbs'):.2f}x; folder {_mb(b['folder'])} -> {_mb(a['folder'])} MB ({ratio('folder'):.1f}x smaller); "
        f"what a reader opens (index, pages, thumbnails; not the records/ cache) {_mb(b['shown'])} -> {_mb(a['shown'])} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, default=None, help="parent folder of the two galleries (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the folders (default: removed when temporary)")
    parser.add_argument("--no-thumbnails", action="store_true", help="skip PNG thumbnails")
    parser.add_argument("--only", nargs="+", default=None, help="build only these examples")
    parser.add_argument("--cold", type=int, default=1, help="cold builds of each variant, alternated (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="rebuilds from cached records of each variant, alternated (default 3)")
    args = parser.parse_args(argv)

    tmp = None
    parent = args.output
    if parent is None:
        tmp = tempfile.mkdtemp(prefix="coilvis-bench-gallery-")
        parent = Path(tmp)
    thumbnails = not args.no_thumbnails
    print(f"# gallery build: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    import coilvis

    model = coilvis.load_model()  # loaded once, outside the builds timed
    loads: list[float] = []
    ok = True
    try:
        variants = ["before", "after"]
        cold: dict[str, list[GalleryResult]] = {v: [] for v in variants}
        for rep in range(args.cold):
            for variant in variants if rep % 2 == 0 else variants[::-1]:
                result = _build(variant, parent / variant, model, force=True, thumbnails=thumbnails, only=args.only)
                loads.append(os.getloadavg()[0])
                ok = ok and result.ok
                if rep == 0:
                    report(result, label=f"cold build, {variant} (every record computed; load {loads[-1]:.2f})")
                cold[variant].append(result)
        render: dict[str, list[GalleryResult]] = {v: [] for v in variants}
        for rep in range(args.repeats):
            for variant in variants if rep % 2 == 0 else variants[::-1]:
                result = _build(variant, parent / variant, model, force=False, thumbnails=thumbnails, only=args.only)
                loads.append(os.getloadavg()[0])
                ok = ok and result.ok
                render[variant].append(result)
        _summary(cold, "cold builds (every record computed)")
        _summary(render, "rebuilds (records cached: pages and thumbnails only)")
        print(f"load average {statistics.median(loads):.2f} (median over the builds) on {os.cpu_count()} CPUs")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
