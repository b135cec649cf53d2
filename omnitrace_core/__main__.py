"""``python -m omnitrace_core``: the command-line interface (see :mod:`omnitrace_core.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
