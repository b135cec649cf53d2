"""Speech-aware audio sources: units that are spoken segments (with their text) instead of time bins.

Segments come from the user's transcript (SRT, WebVTT, JSON) or from a local speech recogniser
(any transformers checkpoint with timestamps, Whisper by default), and are merged into
sentence-sized units. The engine maps each audio token to the segment holding its time; audio
tokens in silence belong to no unit. For UIs::

    from omnitrace_core import AudioItem, VideoItem, SourceConfig
    AudioItem("talk.wav")                            # follows SourceConfig.audio_units
    AudioItem("talk.wav", transcript="bins")         # time bins for this item
    AudioItem("talk.wav", transcript="asr")          # recognise speech for this item
    VideoItem("clip.mp4", transcript="clip.srt")     # the user's transcript (.srt/.vtt/.json)
    segments = load_transcript(upload_path)          # parse an upload; InputError with the line
    validate_segments(segments, probe_duration(media_path))   # check it against the media
"""

from .asr import DEFAULT_ASR_MODEL, Recognizer, TransformersRecognizer, segments_from_chunks
from .resolve import (ACCEPTED_CHOICES, ASR, BINS, TRANSCRIPT, ItemSegments, UnitChoice, choose_units, plan_units,
                      resolve_segments)
from .segments import SpeechSegment, clean_segments, ends_sentence, merge_segments, validate_segments
from .transcripts import (ACCEPTED_TRANSCRIPTS, load_transcript, parse_json, parse_srt, parse_transcript, parse_vtt,
                          segments_from_json)

__all__ = [
    "ACCEPTED_CHOICES", "ACCEPTED_TRANSCRIPTS", "ASR", "BINS", "DEFAULT_ASR_MODEL", "ItemSegments", "Recognizer",
    "SpeechSegment", "TRANSCRIPT", "TransformersRecognizer", "UnitChoice", "choose_units", "clean_segments",
    "ends_sentence", "load_transcript", "merge_segments", "parse_json", "parse_srt", "parse_transcript", "parse_vtt",
    "plan_units", "resolve_segments", "segments_from_chunks", "segments_from_json", "validate_segments",
]
