"""``omnitrace verify``: add a verification to every trace of a file written by ``omnitrace trace``.

    omnitrace verify --traces out.jsonl --output verified.jsonl [--mode knockout]

The loop is :func:`omnitrace_core.batch.verify_batch` (resumable the same way as tracing).
"""

from __future__ import annotations

import argparse
import sys

from ..batch import check_media_root, items_from_questions, read_traces, verify_batch
from ..verification import MODES
from .options import (EXIT_OK, add_model_options, add_reporting_options, positive_int, report_failure, top_k,
                      tracer_from_args)

EPILOG = """\
modes:
  input     change the input and re-encode (drop a text sentence, flatten an image to its mean
            colour, silence an audio second, grey out a video second and silence its track):
            does the unit's content matter?
  knockout  keep the input, block attention to the unit's positions in every decoder layer:
            does the language model read the unit? (cheap: no encoder runs)

output (JSON Lines, appended and fsynced per record):
  the trace record with "result" holding the verification (TraceResult "verification" field)
  and "verify" holding the settings; or {"key", ..., "status": "error", "error_type", "error"}.
  Rerunning the same command resumes (verified keys are skipped, errored ones retried).

media:
  The inputs are rebuilt from the result's item records (media paths as recorded at tracing,
  relative ones also looked up under --media-root), or taken from --questions, the samples file
  the traces were made from (needed for transcripts given as files).

exit status: 0 done (even with per-record errors), 1 crash, 2 bad usage, 130 interrupted.
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "verify", help="verify batch traces: measure each source unit's effect on each output sentence",
        description="Add a verification (what removing each source unit does to each output sentence) to every "
                    "trace of a JSON Lines file written by `trace`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = parser.add_argument_group("input and output")
    io.add_argument("--traces", required=True, metavar="TRACES.jsonl", help="output of `omnitrace trace`")
    io.add_argument("--output", "-o", required=True, metavar="OUT.jsonl",
                    help="JSON Lines output, appended to (resumed) unless --overwrite")
    io.add_argument("--questions", metavar="FILE.json", help="the samples file the traces were made from "
                    "(default: rebuild the inputs from the traces)")
    io.add_argument("--media-root", metavar="DIR", help="folder searched for relative media paths")
    io.add_argument("--limit", type=positive_int, metavar="N", help="only the first N traces")
    io.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming it")
    checks = parser.add_argument_group("verification")
    checks.add_argument("--mode", default="input", choices=MODES, help="removal mode (default: input)")
    checks.add_argument("--top-k", default="1,3", metavar="K,K", help="k of the top-k removal drops (default: 1,3)")
    checks.add_argument("--threshold", type=float, default=None, metavar="NATS",
                        help="log-probability drop of a strong effect (default: ln 2: the sentence's probability "
                             "halves)")
    checks.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="removals per forward")
    add_model_options(parser, default=None, model_help="the checkpoint that traced them (default: as recorded)")
    add_reporting_options(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``omnitrace verify``; returns the exit status."""
    try:
        ks = top_k(args.top_k)
        records = read_traces(args.traces)
        model = args.model or records[0]["result"].get("model_id")
        check_media_root(args.media_root)
        items_for = items_from_questions(args.questions, args.media_root) if args.questions else None
        summary = verify_batch(lambda: tracer_from_args(args, model), records, args.output, mode=args.mode,
                               top_k=ks, threshold=args.threshold, items_for=items_for, media_root=args.media_root,
                               limit=args.limit, overwrite=args.overwrite, progress=not args.no_progress,
                               batch_size=args.batch_size)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, "verify")
    print(summary.line(), file=sys.stderr)
    return EXIT_OK
