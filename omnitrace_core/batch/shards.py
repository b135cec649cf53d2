"""Splitting a samples file across processes: shard I of N, from ``--shard`` or the launcher's environment."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from ..errors import UsageError
from ..launcher import RANK_ENV, WORLD_SIZE_ENV, env_int


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), 0-based, with 0 <= i < n; UsageError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise UsageError(f"--shard must look like I/N (0-based shard I of N, e.g. 0/4); got '{text}'")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise UsageError(f"--shard {text}: the shard count N must be at least 1")
    if not 0 <= index < count:
        raise UsageError(f"--shard {text}: the shard index I must satisfy 0 <= I < N (0-based), so 0..{count - 1}")
    return index, count


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(process index, process count) from a distributed launcher's environment; (0, 1) when none."""
    environ = os.environ if environ is None else environ
    size = env_int(WORLD_SIZE_ENV, environ)
    if size is None or size[1] <= 1:
        return 0, 1
    rank = env_int(RANK_ENV, environ)
    if rank is None:
        raise UsageError(f"{size[0]}={size[1]} is set but no process index is ({', '.join(RANK_ENV)}); "
                         "pass --shard I/N")
    if not 0 <= rank[1] < size[1]:
        raise UsageError(f"{rank[0]}={rank[1]} is outside 0..{size[1] - 1} ({size[0]}={size[1]}); pass --shard I/N")
    return rank[1], size[1]


def shard_output_path(output: str | Path, index: int, count: int) -> Path:
    """The file one shard writes: ``out.jsonl`` itself for a single shard, else ``out.shard-{i}-of-{n}.jsonl``."""
    output = Path(output)
    if count <= 1:
        return output
    return output.with_name(f"{output.stem}.shard-{index}-of-{count}{output.suffix}")
