"""The frozen known-truth benchmark: generated samples written as media files + official JSON + ground truth.

A split is a folder::

    <root>/<split>/questions.json      samples in the official OmniTrace format (``python -m
                                       omnitrace_core trace --questions`` reads it unchanged)
    <root>/<split>/ground_truth.json   supporting sources of every expected sentence
                                       (format: :mod:`omnitrace_core.evaluation.groundtruth`)
    <root>/<split>/media/              PNG images, 16-bit FLAC audio, H.264/AAC MP4 video
    <root>/manifest.json               seed, sizes and a SHA-256 of every file

Split ``dev`` tunes the baselines' thresholds; split ``test`` is the held-out set all reported
numbers come from. :func:`write_split` regenerates a split byte for byte from its seed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from ..evaluation.groundtruth import GroundTruth, SampleTruth
from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem
from . import synth
from .families import TASK_NAMES, TaskSample, generate

#: split -> (seed, samples per task). The seeds differ from the training stream's.
SPLITS: dict[str, tuple[int, int]] = {"dev": (1001, 10), "test": (2002, 40)}
QUESTIONS_FILE = "questions.json"
GROUND_TRUTH_FILE = "ground_truth.json"
MANIFEST_FILE = "manifest.json"
_EXTENSIONS = {"image": "png", "audio": "flac", "video": "mp4"}


def sample_id(split: str, index: int) -> str:
    return f"{split}-{index:04d}"


def media_name(split: str, index: int, item: int, kind: str) -> str:
    return f"{sample_id(split, index)}_{item}.{_EXTENSIONS[kind]}"


def write_media(sample: TaskSample, folder: Path, split: str, kinds: Sequence[str] = ("image", "audio", "video")
                ) -> dict[int, Path]:
    """Write the sample's media of the given kinds into ``folder``; item index -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for position, entry in enumerate(sample.entries):
        if entry.kind not in kinds:
            continue
        item = position + 1
        path = folder / media_name(split, sample.index, item, entry.kind)
        if entry.kind == "image":
            synth.write_png(path, entry.value)
        elif entry.kind == "audio":
            synth.write_flac(path, entry.value)
        else:
            synth.write_mp4(path, entry.value)
        paths[item] = path
    return paths


def sample_items(sample: TaskSample, video_folder: Path, split: str = "train") -> list[Item]:
    """The sample as tracer items: images and audio in memory, videos written to ``video_folder``."""
    from PIL import Image

    videos = write_media(sample, video_folder, split, kinds=("video",))
    items: list[Item] = [TextItem(sample.prompt, is_prompt=True)]
    for position, entry in enumerate(sample.entries):
        if entry.kind == "text":
            items.append(TextItem(entry.value))
        elif entry.kind == "image":
            items.append(ImageItem(Image.fromarray(entry.value), name=f"image {position + 1}"))
        elif entry.kind == "audio":
            items.append(AudioItem((entry.value, synth.SAMPLING_RATE), name=f"audio {position + 1}"))
        else:
            items.append(VideoItem(str(videos[position + 1])))
    return items


def official_sample(sample: TaskSample, split: str, media_prefix: str = "media") -> dict[str, Any]:
    """The sample in the official JSON format, media paths relative to the split folder."""
    question = []
    for position, entry in enumerate(sample.entries):
        if entry.kind == "text":
            question.append({"text": entry.value})
        else:
            question.append({entry.kind: f"{media_prefix}/{media_name(split, sample.index, position + 1, entry.kind)}"})
    record = {"id": sample_id(split, sample.index), "task": sample.task, "prompt": sample.prompt,
              "question": question, "answer": sample.answer}
    if sample.option is not None:
        record["option"] = sample.option
    return record


def sample_truth(sample: TaskSample, split: str) -> SampleTruth:
    return SampleTruth(id=sample_id(split, sample.index), task=sample.task, spans=tuple(sample.spans),
                       option=sample.option, options=dict(sample.options), question_type=sample.question_type)


def split_samples(split: str, seed: int, per_task: int, tasks: Sequence[str] = TASK_NAMES) -> list[TaskSample]:
    """The samples of a split: ``per_task`` of every task, interleaved task by task."""
    out = []
    for index in range(per_task * len(tasks)):
        out.append(generate(seed, index, tasks[index % len(tasks)]))
    return out


def write_split(root: Path, split: str, seed: int, per_task: int) -> dict[str, str]:
    """Generate and write one split; returns relative path -> SHA-256 of every written file."""
    folder = Path(root) / split
    samples = split_samples(split, seed, per_task)
    records, truths = [], []
    for sample in samples:
        write_media(sample, folder / "media", split)
        records.append(official_sample(sample, split))
        truths.append(sample_truth(sample, split))
    (folder / QUESTIONS_FILE).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    GroundTruth(tuple(truths)).save(folder / GROUND_TRUTH_FILE)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_benchmark(root: str | Path, splits: dict[str, tuple[int, int]] = SPLITS) -> Path:
    """Write every split and a manifest (seeds, counts, file hashes) under ``root``."""
    root = Path(root)
    hashes: dict[str, str] = {}
    for split, (seed, per_task) in splits.items():
        hashes.update(write_split(root, split, seed, per_task))
    manifest = {"generator": "omnitrace_core.tasks.benchmark", "tasks": list(TASK_NAMES),
                "splits": {s: {"seed": seed, "per_task": n, "samples": n * len(TASK_NAMES)}
                           for s, (seed, n) in splits.items()},
                "files": hashes}
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m omnitrace_core.tasks.benchmark [--out DIR]``: (re)write the frozen benchmark."""
    import argparse

    from ..assets import DEFAULT_BENCHMARK_DIR

    parser = argparse.ArgumentParser(prog="python -m omnitrace_core.tasks.benchmark",
                                     description="Write the known-truth benchmark (same seeds, same bytes).")
    parser.add_argument("--out", default=str(DEFAULT_BENCHMARK_DIR), help="folder (default: %(default)s)")
    args = parser.parse_args(argv)
    root = write_benchmark(args.out)
    manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    print(f"wrote {len(manifest['files'])} files under {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
