"""Draw the README's picture, ``docs/coil.png``: the coil of the gallery's induction example.

Usage (from the source tree)::

    python gallery/readme_image.py                      # runs the default model, writes docs/coil.png
    python gallery/readme_image.py --record gallery/_build/records/induction.coil   # a gallery build's record

The coil is drawn as the gallery draws the example (its options, with the views'
defaults: arcs of the last layer, subtle whitespace markers), without the unwind, at
560 px, and saved as a PNG (headless Chromium) with its transparent margins trimmed.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

NAME = "induction"
SIZE_PX = 560
ROOT = Path(__file__).resolve().parent.parent


def draw(out: Path, record_path: Path | None) -> Path:
    """Draw the example's coil to ``out`` (a PNG) and return the path."""
    from PIL import Image

    import coilvis
    from coilvis.files import atomic_write
    from coilvis.gallery import load_examples

    (example,) = [e for e in load_examples() if e.name == NAME]
    if record_path is not None:
        record = coilvis.Record.load(record_path)
    else:
        record = coilvis.run(example.prompt, progress=False, **example.run_kwargs())
    kwargs = example.coil_kwargs(animate=False)
    title = f"{example.title} (colour: {kwargs.get('color', 'prob')})"
    view = coilvis.coil(record, **kwargs, title=title, width=SIZE_PX, height=SIZE_PX)
    full = coilvis.save(view, out.with_suffix(".full.png"))
    try:
        with Image.open(full) as opened:
            rgba = opened.convert("RGBA")
    finally:
        full.unlink()
    bbox = rgba.getchannel("A").getbbox()
    if bbox is not None:
        rgba = rgba.crop(bbox)
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG", optimize=True)
    atomic_write(out, buffer.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "coil.png", help="the PNG to write")
    parser.add_argument("--record", type=Path, default=None, help="a saved record of the example (default: run the model)")
    args = parser.parse_args(argv)
    print(draw(args.output, args.record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
