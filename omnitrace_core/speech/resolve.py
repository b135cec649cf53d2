"""Decide, per audio or video item, whether its units are time bins or speech segments, and get them.

Two steps, so that a bad transcript fails before any media is decoded:

1. :func:`plan_units` reads each item's ``transcript`` choice (and parses transcript files);
2. :func:`resolve_segments`, once the media durations are known, validates the transcripts,
   runs the recogniser where asked, and merges segments into sentence-sized units.

An item's own ``transcript`` wins over ``SourceConfig.audio_units``: ``"bins"`` forces bins,
``"asr"`` forces recognition, segments/a file use them; ``None`` follows the config (bins, or
recognition when ``audio_units == "segments"``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..config import SourceConfig
from ..errors import InputError
from ..media import MediaLimits
from .asr import Recognizer
from .segments import SpeechSegment, clean_segments, merge_segments, validate_segments
from .transcripts import ACCEPTED_TRANSCRIPTS, load_transcript, looks_like_transcript_text

logger = logging.getLogger(__name__)

BINS, ASR, TRANSCRIPT = "bins", "asr", "transcript"
#: What an item's ``transcript`` may be, for error messages and UIs.
ACCEPTED_CHOICES = (f'None (follow SourceConfig.audio_units), "{BINS}", "{ASR}", a list of segments, or '
                    f"{ACCEPTED_TRANSCRIPTS}")
SAMPLING_RATE = 16000


@dataclass(frozen=True)
class UnitChoice:
    """How one audio or video item is cut into units.

    Attributes:
        mode: "bins", "asr" or "transcript".
        segments: the transcript's segments as given (mode "transcript"; validated later).
        origin: where the transcript came from (its file name, or "inline").
        explicit: whether the item asked for this itself (else it follows the config).
    """

    mode: str
    segments: tuple[SpeechSegment, ...] = ()
    origin: str = ""
    explicit: bool = False


@dataclass(frozen=True)
class ItemSegments:
    """The speech units of one item, or why it kept time bins.

    Attributes:
        segments: merged segments in time order; empty when the item fell back to bins.
        origin: "transcript:<name>" or "asr:<model>".
        note: why the item fell back to bins, if it did.
    """

    segments: tuple[SpeechSegment, ...]
    origin: str
    note: str = ""

    def info(self) -> dict[str, Any]:
        """A JSON-ready summary for the item's record in a result."""
        out: dict[str, Any] = {"audio_units": "segments" if self.segments else BINS, "segments_from": self.origin,
                               "segments": len(self.segments)}
        if self.note:
            out["note"] = self.note
        return out


def _is_keyword(value: Any, word: str) -> bool:
    return isinstance(value, str) and value.strip().lower() == word


def choose_units(transcript: Any, config: SourceConfig) -> UnitChoice:
    """The unit choice for an item whose ``transcript`` field holds ``transcript``.

    Raises:
        InputError: the transcript is of an unknown kind, or its file is missing or malformed.
    """
    if transcript is None:
        return UnitChoice(ASR if config.audio_units == "segments" else BINS)
    if _is_keyword(transcript, BINS):
        return UnitChoice(BINS, explicit=True)
    if _is_keyword(transcript, ASR):
        return UnitChoice(ASR, explicit=True)
    if isinstance(transcript, (str, os.PathLike, list, tuple, SpeechSegment)):
        segments = load_transcript(transcript)
        is_path = isinstance(transcript, os.PathLike) or (
            isinstance(transcript, str) and not looks_like_transcript_text(transcript))
        origin = os.path.basename(os.fspath(transcript)) if is_path else "inline"
        return UnitChoice(TRANSCRIPT, segments, origin, explicit=True)
    raise InputError(f"transcript must be {ACCEPTED_CHOICES}; got a {type(transcript).__name__}")


def plan_units(items: Sequence[Any], config: SourceConfig) -> dict[int, UnitChoice]:
    """Unit choices of the audio and video items (by item index); InputError names the item."""
    from ..inputs import item_label

    plan = {}
    for index, item in enumerate(items):
        if item.modality not in ("audio", "video"):
            continue
        try:
            plan[index] = choose_units(getattr(item, "transcript", None), config)
        except InputError as exc:
            raise InputError(f"{item.modality} item {index} ('{item_label(item)}'): {exc}") from None
    return plan


def _waveform(item: Any, limits: MediaLimits):
    """(waveform, rate) of an audio item or of a video's audio track (None when a video has none)."""
    from ..media import load_audio, load_video

    if item.modality == "audio":
        clip = load_audio(item.source, sampling_rate=SAMPLING_RATE, limits=limits)
        return clip.waveform, clip.sampling_rate
    # the video loader aligns the track with the first frame, as the backend does
    clip = load_video(item.source, fps=0.1, max_frames=1, with_audio=True, sampling_rate=SAMPLING_RATE, limits=limits)
    if clip.audio is None:
        return None
    return clip.audio.waveform, clip.audio.sampling_rate


def resolve_segments(items: Sequence[Any], plan: Mapping[int, UnitChoice], config: SourceConfig,
                     durations: Mapping[int, float], get_recognizer: Callable[[], Recognizer] | None = None,
                     limits: MediaLimits = MediaLimits()) -> dict[int, ItemSegments]:
    """Speech units of every item whose plan is not bins.

    Args:
        items: the input items.
        plan: from :func:`plan_units`.
        config: merge limits (``segment_min_seconds`` ...) and the recogniser model name.
        durations: seconds per audio/video item (the backend's ``layout.durations``).
        get_recognizer: returns the recogniser to use (called only when some item needs one).
        limits: media guards for decoding audio for the recogniser.

    Returns:
        item index -> :class:`ItemSegments`; an entry with no segments fell back to bins (a
        recogniser that heard no speech, or a video without an audio track that did not ask
        for recognition itself).

    Raises:
        InputError: a transcript that does not fit its media; recognition asked of a video
            with no audio track.
    """
    from ..inputs import item_label

    out: dict[int, ItemSegments] = {}
    for index, choice in plan.items():
        if choice.mode == BINS:
            continue
        item = items[index]
        where = f"{item.modality} item {index} ('{item_label(item)}')"
        duration = float(durations[index])
        if choice.mode == TRANSCRIPT:
            try:
                segments = validate_segments(choice.segments, duration)
            except InputError as exc:
                raise InputError(f"{where}: transcript {choice.origin}: {exc}") from None
            origin = f"transcript:{choice.origin}"
        else:
            audio = _waveform(item, limits)
            if audio is None:
                if choice.explicit:
                    raise InputError(f"{where} has no audio track to recognise speech in; choose bins or give "
                                     "a transcript")
                out[index] = ItemSegments((), f"asr:{config.asr_model}", note="no audio track")
                continue
            if get_recognizer is None:
                raise InputError(f"{where} asks for speech recognition but no recogniser is available")
            engine = get_recognizer()
            origin = f"asr:{getattr(engine, 'model_id', type(engine).__name__)}"
            heard = [SpeechSegment.from_any(s) for s in engine(*audio)]
            segments = clean_segments(heard, duration)
            if not segments:
                logger.warning("%s: no speech recognised; keeping time bins", where)
                out[index] = ItemSegments((), origin, note="no speech recognised")
                continue
        merged = merge_segments(segments, config.segment_min_seconds, config.segment_max_seconds,
                                config.segment_max_gap_seconds)
        out[index] = ItemSegments(merged, origin)
    return out
