"""OmniTrace Explorer's engine: generation-time attribution for omni-modal LLMs.

Public API::

    from omnitrace_core import Tracer, TextItem, ImageItem, AudioItem, VideoItem
    tracer = Tracer.from_pretrained("Qwen/Qwen2.5-Omni-7B", dtype="bfloat16")
    result = tracer.trace([TextItem("What is shown?"), ImageItem("photo.jpg")], signal="attmean")
    result.spans[0].sources        # curated sources of the first output sentence
    result.recurate(CurationConfig(p_min=0.1))   # new curation, no new generation
"""

from .backends import Backend, list_backends, load_backend, register_backend
from .config import CurationConfig, GenerationConfig, SourceConfig
from .curation import Span, SpanSource, ablation_configs, curate, list_token_rules, register_token_rule
from .engine import TraceStep, Tracer
from .errors import ConfigError, InputError, MediaError, MissingDependencyError, OmniTraceError, UnknownNameError
from .inputs import MODALITIES, AudioItem, ImageItem, Item, Sample, TextItem, VideoItem, parse_sample, sample_keys
from .media import MediaLimits
from .result import SCHEMA_VERSION, TraceResult
from .signals import DEFAULT_SIGNAL, Signal, get_signal, list_signals, register_signal

__all__ = [
    "DEFAULT_SIGNAL", "MODALITIES", "SCHEMA_VERSION", "AudioItem", "Backend", "ConfigError", "CurationConfig",
    "GenerationConfig", "ImageItem", "InputError", "Item", "MediaError", "MediaLimits", "MissingDependencyError",
    "OmniTraceError", "Sample", "Signal", "SourceConfig", "Span", "SpanSource", "TextItem", "TraceResult", "TraceStep",
    "Tracer", "UnknownNameError", "VideoItem", "ablation_configs", "curate", "get_signal", "list_backends",
    "list_signals", "list_token_rules", "load_backend", "parse_sample", "register_backend", "register_signal",
    "register_token_rule", "sample_keys",
]
