"""``omnitrace speech-eval``: Time-F1 of time-bin units against speech-segment units on the same samples.

    omnitrace speech-eval --questions q.json --truth truth.json --model Qwen/Qwen2.5-Omni-7B \\
        [--asr-model openai/whisper-small] [--output report.json]

The comparison is :func:`omnitrace_core.evaluation.speech_eval.compare_audio_units`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..batch import load_questions, media_bases
from ..config import GenerationConfig, SourceConfig
from ..evaluation.speech_eval import TRUTH_FORMAT, compare_audio_units, load_truth
from ..loading import pick_device
from ..signals import DEFAULT_SIGNAL
from .options import EXIT_OK, add_model_options, config_from_flags, report_failure, signal_name, tracer_from_args


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("speech-eval", help="Time-F1 of time bins vs speech segments on the same samples",
                                 description="Time-F1 of time bins vs speech segments on the same samples.")
    parser.add_argument("--questions", required=True, metavar="FILE.json", help="samples in the official format")
    parser.add_argument("--truth", required=True, metavar="TRUTH.json", help=f"true intervals: {TRUTH_FORMAT}")
    parser.add_argument("--media-root", metavar="DIR", help="folder searched first for relative media paths")
    parser.add_argument("--output", metavar="REPORT.json", help="also write the per-sample report as JSON")
    add_model_options(parser, default=None, model_help="omni-modal checkpoint to trace with", required=True)
    units = parser.add_argument_group("units")
    units.add_argument("--signal", "--method", default=DEFAULT_SIGNAL, type=signal_name, metavar="SIGNAL",
                       help="scoring signal (default: %(default)s)")
    units.add_argument("--max-new-tokens", type=int, default=256, metavar="N")
    units.add_argument("--asr-model", default=SourceConfig.asr_model, metavar="ID_OR_DIR",
                       help="speech recogniser for items without a transcript (default: %(default)s)")
    units.add_argument("--audio-bin-seconds", type=float, default=SourceConfig.audio_bin_seconds, metavar="S")
    units.add_argument("--segment-min-seconds", type=float, default=SourceConfig.segment_min_seconds, metavar="S")
    units.add_argument("--segment-max-seconds", type=float, default=SourceConfig.segment_max_seconds, metavar="S")
    units.add_argument("--bin-seconds", type=float, default=1.0, metavar="S", help="Time-F1 bin width (default: 1)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Trace every sample twice (time bins, speech segments) and print the Time-F1 table; the exit status."""
    from ..speech import TransformersRecognizer

    try:
        sources = config_from_flags(SourceConfig, audio_bin_seconds=args.audio_bin_seconds, asr_model=args.asr_model,
                                    segment_min_seconds=args.segment_min_seconds,
                                    segment_max_seconds=args.segment_max_seconds)
        generation = config_from_flags(GenerationConfig, max_new_tokens=args.max_new_tokens)
        samples = load_questions(args.questions)
        truth = load_truth(args.truth)
        recognizer = TransformersRecognizer(args.asr_model, device=pick_device(args.device, args.device_map))
        tracer = tracer_from_args(args, signal=args.signal, recognizer=recognizer)
        report = compare_audio_units(tracer, samples, truth, bases=media_bases(args.questions, args.media_root),
                                     generation=generation,
                                     sources=sources, bin_seconds=args.bin_seconds)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, "speech-eval")
    print(report.table())
    if args.output:
        Path(args.output).write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    return EXIT_OK
