"""The explorer's run-time settings: which model, on which device, and the input limits.

Everything a deployment may want to change is here, read from command-line flags with
environment variables as defaults (Hugging Face Spaces configure apps through variables).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from omnitrace_core import MediaLimits, SourceConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
EXAMPLES_DIR = ASSETS_DIR / "examples"
CSS_DIR = ASSETS_DIR / "css"
STATIC_DIR = Path(__file__).resolve().parent / "static"

ENV_MODEL = "OMNITRACE_MODEL"
ENV_DEVICE = "OMNITRACE_DEVICE"
ENV_CACHE = "OMNITRACE_CACHE"
ENV_CONCURRENCY = "OMNITRACE_CONCURRENCY"
ENV_ASR_MODEL = "OMNITRACE_ASR_MODEL"
ENV_DATA_DIR = "OMNITRACE_DATA_DIR"


@dataclass(frozen=True)
class InputLimits:
    """Guards on what one user may submit; every message names the limit it hit.

    Attributes:
        max_file_mb: largest uploaded media file, in MiB.
        max_image_pixels: largest image, width x height.
        max_audio_seconds / max_video_seconds: longest audio / video.
        max_prompt_tokens: largest prompt in tokens (text + image + audio + video), checked exactly before the model runs.
        max_items: most input items in one prompt.
        max_new_tokens: the ceiling of the generation-length slider.
    """

    max_file_mb: float = 50.0
    max_image_pixels: int = 16_000_000
    max_audio_seconds: float = 120.0
    max_video_seconds: float = 60.0
    max_prompt_tokens: int = 16_000
    max_items: int = 16
    max_new_tokens: int = 512

    def media_limits(self) -> MediaLimits:
        """The same guards in the engine's terms, for its media loaders."""
        return MediaLimits(max_file_bytes=int(self.max_file_mb * 1024 * 1024), max_image_pixels=self.max_image_pixels,
                           max_audio_seconds=self.max_audio_seconds, max_video_seconds=self.max_video_seconds)


def default_cache_dir() -> Path:
    """Where the fallback tiny model is built: $OMNITRACE_CACHE or ~/.cache/omnitrace_explorer."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "omnitrace_explorer")


@dataclass(frozen=True)
class AppSettings:
    """Settings of one explorer process.

    Attributes:
        model: Hub id or local folder; None for the bundled demo model.
        device: "cuda", "cpu" or None (the GPU when there is one).
        dtype: torch dtype name or "auto" (bfloat16 on GPU, float32 on CPU).
        concurrency: generations running at once; later users wait in the queue.
        default_new_tokens: initial value of the generation-length slider.
        limits: input guards.
        host / port: where to serve.
        asr_model: speech recogniser for audio and video items set to speech segments (a Hub id or
            a local folder of any transformers ASR checkpoint with timestamps).
        data_dir: a folder of batch runs (their .jsonl outputs, ground-truth and samples files, media)
            that the Runs tab lists and the app may read and serve; None: uploads only.
    """

    model: str | None = None
    device: str | None = None
    dtype: str = "auto"
    concurrency: int = 1
    default_new_tokens: int = 64
    limits: InputLimits = field(default_factory=InputLimits)
    host: str = "127.0.0.1"
    port: int | None = None
    asr_model: str = SourceConfig().asr_model
    data_dir: Path | None = None

    @property
    def is_default_model(self) -> bool:
        return self.model is None


def parse_args(argv: list[str] | None = None) -> AppSettings:
    """Settings from command-line flags, with environment variables as defaults."""
    env = os.environ
    parser = argparse.ArgumentParser(description="OmniTrace Explorer: trace what an omni-modal LLM draws on.")
    parser.add_argument("--model", default=env.get(ENV_MODEL) or None,
                        help=f"Hub id or local checkpoint folder (env {ENV_MODEL}); default: the bundled demo model (assets/demo_model)")
    parser.add_argument("--device", default=env.get(ENV_DEVICE) or None,
                        help="cuda, cuda:N or cpu; default: the GPU when there is one")
    parser.add_argument("--dtype", default="auto", help="bfloat16, float16, float32 or auto")
    parser.add_argument("--concurrency", type=int, default=int(env.get(ENV_CONCURRENCY, "1")),
                        help="generations running at once (others queue)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="initial generation length")
    parser.add_argument("--asr-model", default=env.get(ENV_ASR_MODEL) or SourceConfig().asr_model,
                        help=f"speech recogniser for speech-segment units (env {ENV_ASR_MODEL})")
    parser.add_argument("--data-dir", default=env.get(ENV_DATA_DIR) or None,
                        help=f"folder of batch runs (.jsonl outputs, ground truth, samples and media) the Runs tab "
                             f"lists; the app may read and serve files in it (env {ENV_DATA_DIR})")
    parser.add_argument("--host", default=env.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env["GRADIO_SERVER_PORT"]) if env.get("GRADIO_SERVER_PORT") else None)
    limits = InputLimits()
    parser.add_argument("--max-file-mb", type=float, default=limits.max_file_mb)
    parser.add_argument("--max-image-pixels", type=int, default=limits.max_image_pixels)
    parser.add_argument("--max-audio-seconds", type=float, default=limits.max_audio_seconds)
    parser.add_argument("--max-video-seconds", type=float, default=limits.max_video_seconds)
    parser.add_argument("--max-prompt-tokens", type=int, default=limits.max_prompt_tokens)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).expanduser().resolve() if args.data_dir else None
    if data_dir is not None and not data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir}: not a folder")
    limits = InputLimits(max_file_mb=args.max_file_mb, max_image_pixels=args.max_image_pixels,
                         max_audio_seconds=args.max_audio_seconds, max_video_seconds=args.max_video_seconds,
                         max_prompt_tokens=args.max_prompt_tokens)
    # the demo model's answers are short and fast on CPU; a real checkpoint gets a longer default answer
    new_tokens = args.max_new_tokens or (48 if args.model is None else 256)
    return AppSettings(model=args.model, device=args.device, dtype=args.dtype, concurrency=max(1, args.concurrency),
                       default_new_tokens=min(new_tokens, limits.max_new_tokens), limits=limits, host=args.host,
                       port=args.port, asr_model=args.asr_model, data_dir=data_dir)
