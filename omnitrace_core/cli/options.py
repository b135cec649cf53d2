"""What the commands share: argument types, the model options, and loading the tracer they name.

Every command that loads a model takes the same options (:func:`add_model_options`) and loads it
the same way (:func:`tracer_from_args`, over :func:`omnitrace_core.loading.load_tracer`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Any, TypeVar

from ..batch.settings import config_flags
from ..errors import ConfigError, OmniTraceError, UnknownNameError, UsageError
from ..loading import DTYPES, load_tracer
from ..media import MediaLimits

#: Exit statuses of every command.
EXIT_OK = 0
EXIT_CRASH = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value:g}")
    return value


def signal_name(text: str) -> str:
    """A signal name, possibly with a layer or head selection, as its canonical name."""
    from ..signals import get_signal

    try:
        return get_signal(text).name
    except (UnknownNameError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def top_k(text: str) -> tuple[int, ...]:
    """``"1,3"`` -> (1, 3): the k of top-k drops, each at least 1."""
    try:
        ks = tuple(sorted({int(k) for k in str(text).split(",") if k.strip()}))
    except ValueError:
        ks = ()
    if not ks or ks[0] < 1:
        raise UsageError(f"--top-k takes k >= 1 separated by commas (e.g. 1,3), got '{text}'")
    return ks


_C = TypeVar("_C")


def config_from_flags(kind: type[_C], **values: Any) -> _C:
    """``kind(**values)`` (a GenerationConfig, SourceConfig or CurationConfig) for values read from flags.

    Raises:
        ConfigError: a bad value, naming the flag it came from (``--seed``, as the user typed it, not
            the library's ``GenerationConfig.seed``) and what that flag accepts.
    """
    return kind.from_options(values, config_flags(kind))  # type: ignore[attr-defined]


def add_model_options(parser: argparse.ArgumentParser, *, default: str | None, model_help: str,
                      required: bool = False) -> None:
    """The options naming the model and how it is loaded, and the bounds on the media it reads."""
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=default, required=required, metavar="ID_OR_DIR", help=model_help)
    model.add_argument("--dtype", default="auto", choices=DTYPES,
                       help="weights dtype (default: auto, the checkpoint's own; float32 on the CPU)")
    model.add_argument("--device", help="device to load the model on, e.g. cuda:0 or cpu (default: the GPU when "
                                        "there is one; under a multi-GPU launcher the one of the process's local rank)")
    model.add_argument("--device-map", metavar="MAP", help="accelerate device map, e.g. auto (overrides --device)")
    model.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the checkpoint")
    limits = parser.add_argument_group("media limits (an input over a limit gets an error naming it)")
    defaults = MediaLimits()
    limits.add_argument("--max-file-mb", type=positive_float, default=defaults.max_file_bytes / 2**20, metavar="MB",
                        help="largest media file (default: %(default)g)")
    limits.add_argument("--max-image-pixels", type=positive_int, default=defaults.max_image_pixels, metavar="N",
                        help="largest image, width x height (default: %(default)s)")
    limits.add_argument("--max-audio-seconds", type=positive_float, default=defaults.max_audio_seconds,
                        metavar="S", help="longest audio (default: %(default)g)")
    limits.add_argument("--max-video-seconds", type=positive_float, default=defaults.max_video_seconds,
                        metavar="S", help="longest video (default: %(default)g)")


def media_limits(args: argparse.Namespace) -> MediaLimits:
    return MediaLimits(max_file_bytes=int(args.max_file_mb * 2**20), max_image_pixels=args.max_image_pixels,
                       max_audio_seconds=args.max_audio_seconds, max_video_seconds=args.max_video_seconds)


def tracer_from_args(args: argparse.Namespace, model: str | None = None, **tracer_kwargs: Any):
    """The tracer the model options name (``model`` overrides ``--model``); UsageError when it cannot load."""
    model = str(model if model is not None else args.model)
    try:
        return load_tracer(model, dtype=args.dtype, device=args.device, device_map=args.device_map,
                           trust_remote_code=args.trust_remote_code, limits=media_limits(args), **tracer_kwargs)
    except (OSError, ValueError, KeyError) as exc:  # the library's InputError, UnknownNameError too
        raise UsageError(f"could not load model '{model}': {exc}") from exc


def add_reporting_options(parser: argparse.ArgumentParser) -> None:
    misc = parser.add_argument_group("reporting")
    misc.add_argument("--no-progress", action="store_true", help="no progress bar")
    misc.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)")


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    package = logging.getLogger("omnitrace_core")
    package.setLevel(level)
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)


def report_failure(exc: BaseException, command: str) -> int:
    """Print why a command stopped and return its exit status (usage 2, interrupted 130, crash 1)."""
    if isinstance(exc, OmniTraceError):  # UsageError, ConfigError from out-of-range values, ...
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        done = getattr(exc, "summary", None)
        print(done.line() if done is not None else f"omnitrace {command} interrupted", file=sys.stderr)
        print("rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    logging.getLogger("omnitrace_core.cli").error("crashed: %s: %s", type(exc).__name__, exc, exc_info=exc)
    print(f"error: the run crashed ({type(exc).__name__}: {exc}); rerun the same command to resume", file=sys.stderr)
    return EXIT_CRASH
