"""``python -m omnitrace_core.bench``: the same as ``omnitrace bench`` (see :mod:`omnitrace_core.cli.bench`)."""

import sys

from ..cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]], prog="python -m omnitrace_core"))
