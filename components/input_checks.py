"""Checks on user input before anything runs: file types, decodability, size and token limits.

Every failure raises :class:`omnitrace_core.InputError` (or its MediaError) with a message that
says what was wrong and what is accepted; the panels turn those into ``gr.Error``.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Sequence

from omnitrace_core import InputError, MediaError, SourceConfig

from .session import ComposedItem
from .settings import InputLimits

EXTENSIONS = {
    "image": (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"),
    "audio": (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus"),
    "video": (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"),
}
ACCEPTED = ", ".join(ext for exts in EXTENSIONS.values() for ext in exts)
AUDIO_SECONDS_PER_TOKEN = 0.04  # fallback when the processor does not say (Qwen2.5-Omni: 40 ms)


def media_kind(path: str | Path) -> str:
    """"image", "audio" or "video" from the file extension; InputError for anything else."""
    suffix = Path(path).suffix.lower()
    for kind, exts in EXTENSIONS.items():
        if suffix in exts:
            return kind
    raise InputError(f"unsupported file type '{suffix or Path(path).name}': accepted media files are {ACCEPTED}")


def check_media(path: str | Path, limits: InputLimits) -> dict[str, Any]:
    """Decode a media file under the limits and summarise it.

    Returns:
        {"kind", "width"/"height" (images), "duration" (audio, video)}.

    Raises:
        InputError / MediaError: unsupported type, corrupt file, or over a limit.
    """
    from omnitrace_core.media import load_audio, load_image, load_video, probe_duration

    kind = media_kind(path)
    media_limits = limits.media_limits()
    if kind == "image":
        image = load_image(path, limits=media_limits)
        return {"kind": kind, "width": image.width, "height": image.height}
    duration = probe_duration(path) if kind == "video" else None
    if kind == "audio":
        clip = load_audio(path, sampling_rate=8000, limits=media_limits)
        return {"kind": kind, "duration": clip.duration}
    clip = load_video(path, fps=min(1.0, 4 / max(duration, 1e-3)), max_frames=4, with_audio=False, limits=media_limits)
    return {"kind": kind, "duration": clip.duration, "width": int(clip.frames.shape[2]), "height": int(clip.frames.shape[1])}


def check_text(text: str, is_prompt: bool = False) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty: type something to add")
    return text


def _clamp_pixels(pixels: float, size: Any) -> float:
    low = getattr(size, "shortest_edge", None) or 0
    high = getattr(size, "longest_edge", None) or pixels
    return min(max(pixels, low), high)


def template_tokens(processor: Any, system_prompt: str | None) -> int:
    """Tokens the chat template adds around the user's content (system prompt included)."""
    conversation = [{"role": "user", "content": [{"type": "text", "text": ""}]}]
    if system_prompt:
        conversation.insert(0, {"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    try:
        rendered = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except (AttributeError, ValueError, TypeError):  # no chat template: no overhead to count
        return 0
    tokenizer = getattr(processor, "tokenizer", processor)
    return len(tokenizer(rendered if isinstance(rendered, str) else rendered[0], add_special_tokens=False)["input_ids"])


def default_system_prompt(tracer: Any) -> str | None:
    """The system prompt a run uses: the tracer's, else its backend's default."""
    if tracer.system_prompt is not None:
        return tracer.system_prompt
    declared = getattr(tracer.backend, "default_system_prompt", None)
    if isinstance(declared, str):
        return declared
    parameter = inspect.signature(tracer.backend.prepare).parameters.get("system_prompt")
    default = parameter.default if parameter is not None else None
    return default if isinstance(default, str) else None


def estimate_prompt_tokens(items: Sequence[ComposedItem], processor: Any, sources: SourceConfig,
                           system_prompt: str | None = None) -> int:
    """A close estimate of the prompt's length in tokens, from the processor's own settings.

    Args:
        items: the composed items (media items carry their measured size / duration).
        processor: the model's processor (its tokenizer, image/video processors, feature extractor).
        sources: video sampling settings.
        system_prompt: the system prompt the run will use (counted with the chat template).
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    image_proc = getattr(processor, "image_processor", None)
    video_proc = getattr(processor, "video_processor", None)
    fe = getattr(processor, "feature_extractor", None)
    per_audio_token = (fe.hop_length * 4 / fe.sampling_rate) if fe is not None else AUDIO_SECONDS_PER_TOKEN

    def tile_pixels(proc) -> int:
        return int((getattr(proc, "patch_size", 14) * getattr(proc, "merge_size", 2)) ** 2)

    total = template_tokens(processor, system_prompt)
    for item in items:
        info = item.measures()
        if item.kind == "text":
            total += len(tokenizer(item.text, add_special_tokens=False)["input_ids"])
        elif item.kind == "image":
            pixels = _clamp_pixels(info["width"] * info["height"], getattr(image_proc, "size", None))
            total += math.ceil(pixels / tile_pixels(image_proc)) + 2
        elif item.kind == "audio":
            total += math.ceil(info["duration"] / per_audio_token) + 2
        else:
            duration = info["duration"]
            frames = min(sources.video_max_frames, max(2, math.ceil(duration * sources.video_fps)))
            pixels = _clamp_pixels((info["width"] or 224) * (info["height"] or 224), getattr(video_proc, "size", None))
            total += math.ceil(frames / 2) * math.ceil(pixels / tile_pixels(video_proc)) + 2
            if sources.use_audio_in_video:
                total += math.ceil(duration / per_audio_token)
    return total


def check_run(items: Sequence[ComposedItem], limits: InputLimits, modalities: Any = None) -> None:
    """Reject an empty or oversized composition, or one the model cannot read, before any work starts.

    Args:
        items: the composition.
        limits: input guards.
        modalities: what the model reads (a backend's ``modalities``); None for all four.
    """
    if not items:
        raise InputError("the input is empty: add a text, image, audio or video item first")
    if not any(item.kind != "text" or (item.text.strip() and not item.is_prompt) for item in items):
        raise InputError("the input has nothing to trace: add a non-instruction text or a media item")
    if len(items) > limits.max_items:
        raise InputError(f"{len(items)} items is over the limit of {limits.max_items}; remove some")
    if modalities:
        unreadable = sorted({item.kind for item in items} - set(modalities))
        if unreadable:
            raise InputError(f"this model does not read {', '.join(unreadable)} input; it reads "
                             f"{', '.join(sorted(modalities))}: remove those items")


def check_token_budget(estimate: int, limits: InputLimits) -> None:
    if estimate > limits.max_prompt_tokens:
        raise InputError(f"the input is about {estimate} tokens, over the limit of {limits.max_prompt_tokens}: "
                         "use fewer or smaller media items, shorter audio/video, or less text")


__all__ = ["ACCEPTED", "EXTENSIONS", "MediaError", "check_media", "check_run", "check_text", "check_token_budget",
           "estimate_prompt_tokens", "media_kind"]
