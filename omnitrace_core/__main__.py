"""``python -m omnitrace_core``: the ``omnitrace`` command (see :mod:`omnitrace_core.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m omnitrace_core"))
