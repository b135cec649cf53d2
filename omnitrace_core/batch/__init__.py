"""Batch runs over samples files in the official OmniTrace format, resumable and shardable.

The loops behind ``omnitrace trace`` and ``omnitrace verify``, usable from Python:

- :mod:`.questions`: reading a samples file, where its relative media paths point;
- :mod:`.shards`: shard I of N, from ``--shard`` or the launcher's environment;
- :mod:`.records`: the JSON Lines output (one record per sample, fsynced; read back to resume);
- :mod:`.settings`: a run's fingerprint, stored in every record; a resume with other settings is refused;
- :mod:`.trace`: :func:`run_batch`, the tracing loop;
- :mod:`.verify`: :func:`verify_batch`, adding a verification to every trace of an output.
"""

from .questions import check_media_root, load_questions, media_bases
from .records import read_output
from .settings import run_settings
from .shards import parse_shard, shard_from_env, shard_output_path
from .trace import RunInterrupted, RunSummary, run_batch
from .verify import VerifySummary, items_from_questions, read_traces, verify_batch

__all__ = [
    "RunInterrupted", "RunSummary", "VerifySummary", "check_media_root", "items_from_questions", "load_questions",
    "media_bases", "parse_shard", "read_output", "read_traces", "run_batch", "run_settings", "shard_from_env",
    "shard_output_path", "verify_batch",
]
