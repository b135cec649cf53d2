"""``python -m omnitrace_core.evaluate``: the same as ``omnitrace evaluate`` (see :mod:`omnitrace_core.cli.evaluate`)."""

import sys

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(["evaluate", *sys.argv[1:]], prog="python -m omnitrace_core"))
