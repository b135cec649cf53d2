"""The ``omnitrace`` command: one parser, a subcommand per task, one exit-status convention."""

from __future__ import annotations

import argparse
from typing import Sequence

from . import bench, evaluate, speech_eval, trace, train_demo, verify
from .options import EXIT_USAGE, setup_logging

#: Every subcommand's module: each has ``add_parser(commands)``, whose parser sets ``run(args) -> status``.
COMMANDS = (trace, verify, evaluate, speech_eval, bench, train_demo)

DESCRIPTION = "Generation-time attribution (OmniTrace) for omni-modal LLMs."


def build_parser(prog: str = "omnitrace") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "omnitrace") -> int:
    """Run one ``omnitrace`` command line; returns the exit status (0 done, 1 crash, 2 usage, 130 interrupted)."""
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    setup_logging(getattr(args, "verbose", 0))
    return args.run(args)
