"""Build the coilvis gallery: ``python gallery/build.py -o gallery/_build``.

The same as ``coilvis gallery``; see ``coilvis gallery --help`` for the options
(``--only NAME ...``, ``--force``, ``--prompts FILE``, ``--no-thumbnails``, ``--shared-js``,
``--model``).
The build logic lives in :mod:`coilvis.gallery`.
"""

from __future__ import annotations

import sys

from coilvis.cli import main

if __name__ == "__main__":
    sys.exit(main(["gallery", *sys.argv[1:]]))
