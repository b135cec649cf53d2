"""``omnitrace trace``: trace every sample of a questions file into a JSON Lines file.

    omnitrace trace --questions examples/question_audio.json \\
        --model Qwen/Qwen2.5-Omni-7B --signal attmean --output out.jsonl

Each sample's outcome is appended as soon as it finishes, so an interrupted run resumes where it
stopped (:func:`omnitrace_core.batch.run_batch`). ``accelerate launch -m omnitrace_core trace ...``
(or ``torchrun``, or ``mpirun``) splits the samples across processes, one output file per process.
"""

from __future__ import annotations

import argparse
import sys

from ..assets import DEFAULT_MODEL_DIR
from ..batch import (check_media_root, load_questions, media_bases, parse_shard, run_batch, shard_from_env,
                     shard_output_path)
from ..config import AUDIO_UNITS, CurationConfig, GenerationConfig, SourceConfig
from ..curation import list_token_rules
from ..loading import pick_device
from ..signals import DEFAULT_SIGNAL, list_signals
from .options import (EXIT_OK, add_model_options, add_reporting_options, config_from_flags, finite_float, positive_int,
                      report_failure, signal_name, tracer_from_args)

EPILOG = """\
input:
  --questions takes the official OmniTrace format unchanged: a JSON list of samples, each with
  "prompt" (the instruction), "question" (a list of {"text": str | [str]}, {"image": path | [path]},
  {"audio": path}, {"video": path} in order) and any metadata ("id", "task", "answer", ...).
  An audio or video entry may add "transcript": a path to an .srt, .vtt or .json file (a list
  of {"start", "end", "text"}, seconds), such a list inline, or "asr" / "bins" to pick that
  item's units. With a transcript the item's source units are its speech segments; a path is
  looked up like a media path.

speech segments:
  --audio-units segments makes speech segments the units of every audio item and video audio
  track that brings no transcript, recognised locally with --asr-model (a transformers Whisper
  or CTC checkpoint; GPU when there is one). Adjacent segments are merged into sentence-sized
  units between --segment-min-seconds and --segment-max-seconds. Audio tokens in silence
  (outside every segment) are no source.

media paths:
  Absolute paths are used as they are. A relative path is looked up, in order, under
    1. --media-root DIR (when given),
    2. the folder of the questions file,
    3. the parent of that folder (the official files say "examples/media/x.jpg", relative to the
       folder that holds examples/),
  and the first existing file wins. A sample whose media cannot be found gets an error record
  naming the file and every place searched; the other samples still run.

output (JSON Lines, one line per sample, appended and fsynced as soon as it finishes):
  {"key", "id", "status": "ok", <sample metadata except question/prompt>, "settings", "result": TraceResult.to_dict()}
  {"key", "id", "status": "error", <sample metadata>, "settings", "error_type", "error"[, "traceback"]}
  "key" is unique within the questions file: the id, or "id:task" whenever the sample has a
  "task" (e.g. "0:summarization"); a key that repeats gets "#1", "#2", ... on its later
  occurrences. Truth files of the evaluation commands use the same keys. A metadata field
  named like a record field (e.g. "status") is stored as "sample_<name>". "settings" is the
  run's fingerprint: model, dtype, signal and every generation, source and curation setting
  that changes results.
  A prompt too long for the model (its positions, less --max-new-tokens) or over
  --max-prompt-tokens gets an error record saying how long it is and which inputs to shorten.

resume:
  Rerunning the same command skips keys that already have an "ok" record and retries the
  errored ones (their new record is appended). A line cut short by a killed run is dropped.
  Resume with the same settings and the same shard count: a rerun whose settings differ from
  the file's "ok" records (another --model, --signal, --max-new-tokens, bin width, ...) is
  refused with the settings that differ, so one file never mixes them. --overwrite starts the
  output afresh; or write to another --output.

sharding:
  --shard I/N traces the samples whose position in the file is I modulo N (0-based). Without it,
  the process index and count come from the launcher's environment (RANK/WORLD_SIZE as set by
  `accelerate launch` and torchrun; PMI_*, OMPI_COMM_WORLD_*, MV2_COMM_WORLD_* under MPI), so
  `accelerate launch -m omnitrace_core trace ...` splits the work across processes. With N > 1
  each shard writes OUT.shard-I-of-N.jsonl next to --output (for --output out.jsonl:
  out.shard-0-of-4.jsonl, ...); concatenate them afterwards. With several GPUs and neither
  --device nor --device-map, each process uses cuda:LOCAL_RANK.

exit status:
  0 the run completed (even when some samples have error records), 1 crash, 2 bad usage or an
  unreadable questions file, 130 interrupted (Ctrl-C).
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "trace", help="trace every sample of a questions file into a JSON Lines file",
        description="Trace every sample of a questions file (official OmniTrace JSON format) and write "
                    "one JSON line per sample.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = parser.add_argument_group("input and output")
    io.add_argument("--questions", "--questions_path", required=True, metavar="FILE.json",
                    help="questions file: a JSON list of samples in the official format")
    io.add_argument("--media-root", metavar="DIR", help="folder searched first for relative media paths")
    io.add_argument("--output", "-o", required=True, metavar="OUT.jsonl",
                    help="JSON Lines output, appended to (resumed) unless --overwrite")
    io.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming it")
    io.add_argument("--limit", type=positive_int, metavar="N",
                    help="only the first N samples of the file (applied before sharding)")
    io.add_argument("--shard", metavar="I/N",
                    help="trace samples whose position %% N == I (0-based); default: from the launcher's environment")
    add_model_options(parser, default=str(DEFAULT_MODEL_DIR),
                      model_help="Hugging Face model id or local checkpoint folder (e.g. Qwen/Qwen2.5-Omni-7B; "
                                 "default: the bundled demo model)")
    attribution = parser.add_argument_group("attribution")
    attribution.add_argument("--signal", "--method", default=DEFAULT_SIGNAL, type=signal_name, metavar="SIGNAL",
                             help=f"scoring signal: {', '.join(list_signals())}, or one restricted to layers or heads, "
                                  f"e.g. 'attmean[4:8]', 'attmean[heads=0:2]' (default: {DEFAULT_SIGNAL}; --method is "
                                  "the reference implementation's name of this option)")
    attribution.add_argument("--trace-answer", action="store_true",
                             help="trace each sample's \"answer\" field (teacher-forced: each token's log-probability "
                                  "is stored, with the model's own choice where it differs) instead of generating")
    attribution.add_argument("--heads", action="store_true",
                             help="also store each layer's and head's attention mass per source unit (layers x heads x "
                                  "units numbers per token)")
    attribution.add_argument("--token-rule", default=CurationConfig.token_rule, choices=list_token_rules(),
                             help="how a token picks its source unit (default: %(default)s)")
    attribution.add_argument("--audio-bin-seconds", type=finite_float, default=SourceConfig.audio_bin_seconds,
                             metavar="S", help="width of audio source units in seconds (default: %(default)s)")
    attribution.add_argument("--video-bin-seconds", type=finite_float, default=SourceConfig.video_bin_seconds,
                             metavar="S", help="width of video source units in seconds (default: %(default)s)")
    attribution.add_argument("--video-fps", "--qwen-video-fps", type=finite_float, default=SourceConfig.video_fps,
                             metavar="FPS", help="frames per second sampled from videos (default: %(default)s)")
    attribution.add_argument("--video-max-frames", type=positive_int, default=SourceConfig.video_max_frames,
                             metavar="N", help="most frames sampled per video (default: %(default)s)")
    attribution.add_argument("--audio-units", choices=AUDIO_UNITS, default=SourceConfig.audio_units,
                             help="units of audio and of video audio tracks without a transcript: fixed time bins, "
                                  "or speech segments from --asr-model (default: %(default)s)")
    attribution.add_argument("--asr-model", default=SourceConfig.asr_model, metavar="ID_OR_DIR",
                             help="transformers speech-recognition checkpoint with timestamps (Whisper or CTC) for "
                                  "--audio-units segments and \"transcript\": \"asr\" entries (default: %(default)s)")
    attribution.add_argument("--segment-min-seconds", type=finite_float, default=SourceConfig.segment_min_seconds,
                             metavar="S", help="speech segments shorter than this are merged with a neighbour "
                                               "(default: %(default)s)")
    attribution.add_argument("--segment-max-seconds", type=finite_float, default=SourceConfig.segment_max_seconds,
                             metavar="S", help="merged speech units last at most this long (default: %(default)s)")
    attribution.add_argument("--segment-max-gap-seconds", type=finite_float,
                             default=SourceConfig.segment_max_gap_seconds, metavar="S",
                             help="segments are merged only across pauses up to this long (default: %(default)s)")
    attribution.add_argument("--include-prompt", action="store_true",
                             help="make the instruction prompt's sentences sources too")
    attribution.add_argument("--no-audio-in-video", action="store_true", help="do not trace the audio track of videos")

    gen = parser.add_argument_group("generation")
    gen.add_argument("--max-new-tokens", type=positive_int, default=GenerationConfig.max_new_tokens, metavar="N",
                     help="most tokens generated per sample (default: %(default)s)")
    gen.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    gen.add_argument("--temperature", type=finite_float, default=GenerationConfig.temperature,
                     help="sampling temperature (with --do-sample; default: %(default)s)")
    gen.add_argument("--top-p", type=finite_float, default=GenerationConfig.top_p,
                     help="nucleus sampling mass (with --do-sample; default: %(default)s)")
    gen.add_argument("--top-k", type=int, default=GenerationConfig.top_k,
                     help="top-k sampling, 0 disables it (with --do-sample; default: %(default)s)")
    gen.add_argument("--seed", type=int, help="random seed of sampling (with --do-sample)")
    gen.add_argument("--max-prompt-tokens", type=positive_int, metavar="N",
                     help="longest prompt in tokens; a longer one gets an error record (default: the model's "
                          "positions less --max-new-tokens)")
    add_reporting_options(parser)
    parser.set_defaults(run=run)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[GenerationConfig, SourceConfig, CurationConfig]:
    """The run's configs from parsed arguments (ConfigError naming the flag of an out-of-range value)."""
    generation = config_from_flags(GenerationConfig, max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
                                   temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed,
                                   max_prompt_tokens=args.max_prompt_tokens)
    sources = config_from_flags(SourceConfig, audio_bin_seconds=args.audio_bin_seconds,
                                video_bin_seconds=args.video_bin_seconds, include_prompt=args.include_prompt,
                                use_audio_in_video=not args.no_audio_in_video, video_fps=args.video_fps,
                                video_max_frames=args.video_max_frames, audio_units=args.audio_units,
                                asr_model=args.asr_model, segment_min_seconds=args.segment_min_seconds,
                                segment_max_seconds=args.segment_max_seconds,
                                segment_max_gap_seconds=args.segment_max_gap_seconds)
    curation = config_from_flags(CurationConfig, token_rule=args.token_rule)
    return generation, sources, curation


def run(args: argparse.Namespace) -> int:
    """Run ``omnitrace trace``; returns the exit status."""
    try:
        shard = parse_shard(args.shard) if args.shard is not None else shard_from_env()
        generation, sources, curation = configs_from_args(args)
        samples = load_questions(args.questions)
        output = shard_output_path(args.output, *shard)
        bases = media_bases(args.questions, args.media_root)
        check_media_root(args.media_root)

        def tracer():
            from ..speech import TransformersRecognizer

            # loaded only if some sample needs speech recognition; on this process's GPU under a launcher
            recognizer = TransformersRecognizer(sources.asr_model, device=pick_device(args.device, args.device_map))
            return tracer_from_args(args, signal=args.signal, generation=generation, sources=sources,
                                    curation=curation, recognizer=recognizer)

        summary = run_batch(tracer, samples, output, bases=bases, signal=args.signal, generation=generation,
                            sources=sources, curation=curation, shard=shard, limit=args.limit,
                            overwrite=args.overwrite, progress=not args.no_progress, model=args.model,
                            dtype=args.dtype, trace_answer=args.trace_answer, heads=args.heads)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, "trace")
    print(summary.line(), file=sys.stderr)
    return EXIT_OK
