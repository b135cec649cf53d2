"""Samples in the official OmniTrace JSON format: read a file, turn one sample into composed items.

Media paths in the official files are relative to the folder above ``examples/``; an uploaded
sample file arrives alone in Gradio's upload folder, so its media may also be uploaded beside
it and are then matched by file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from omnitrace_core import InputError, TextItem, parse_sample, sample_keys

from .input_checks import check_media
from .previews import is_within
from .session import ComposedItem
from .settings import EXAMPLES_DIR, InputLimits

GALLERY_FILE = EXAMPLES_DIR / "gallery.json"
#: ``source_dataset`` of the gallery samples taken from the known-truth benchmark: the bundled demo
#: model was trained on that benchmark's small world and answers them; it cannot answer the others.
DEMO_DATASET = "omnitrace-benchmark"


@dataclass(frozen=True)
class SampleFile:
    """A parsed sample file: its samples by key, and where their media may be found."""

    path: str
    keys: tuple[str, ...]
    samples: tuple[Mapping[str, Any], ...]
    media_by_name: Mapping[str, str]

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown."""
        out = []
        for key, sample in zip(self.keys, self.samples):
            kinds = [k for entry in sample.get("question", []) if isinstance(entry, Mapping) for k in entry]
            label = sample.get("title") or f"{key} ({sample.get('source_dataset', 'sample')}: {', '.join(dict.fromkeys(kinds))})"
            out.append((str(label), key))
        return out


def read_sample_file(path: str | Path, extra_files: Sequence[str | Path] = ()) -> SampleFile:
    """Read a JSON file of samples (a list, or one sample object).

    Args:
        path: the JSON file.
        extra_files: media uploaded with it (matched by file name).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"'{path.name}' is not a readable JSON sample file: {exc}") from exc
    samples = data if isinstance(data, list) else [data]
    if not samples or not all(isinstance(s, Mapping) for s in samples):
        raise InputError(f"'{path.name}' must hold a sample object or a list of them, each with a 'question' list")
    by_name = {Path(f).name: str(f) for f in extra_files}
    return SampleFile(path=str(path), keys=tuple(sample_keys(samples)), samples=tuple(samples), media_by_name=by_name)


def sample_items(sample_file: SampleFile, key: str, limits: InputLimits,
                 roots: Sequence[Path] | None = None) -> list[ComposedItem]:
    """The composed items of one sample, every media file checked under ``limits``.

    Args:
        sample_file: the parsed file.
        key: which sample.
        limits: media guards.
        roots: if given, media must lie inside these folders (the app passes its upload folder and
            its examples): a sample file must not make the server read arbitrary files.
    """
    if key not in sample_file.keys:
        raise InputError(f"no sample '{key}' in {Path(sample_file.path).name}; choose one of {list(sample_file.keys)}")
    raw = sample_file.samples[sample_file.keys.index(key)]
    base = Path(sample_file.path).parent
    sample = parse_sample(raw, key, bases=(base, base.parent, EXAMPLES_DIR, EXAMPLES_DIR.parent))
    items: list[ComposedItem] = []
    for item in sample.items:
        if isinstance(item, TextItem):
            items.append(ComposedItem(kind="text", text=item.text, is_prompt=item.is_prompt))
            continue
        path = Path(item.source)
        if path.name in sample_file.media_by_name:  # uploaded beside the JSON file
            path = Path(sample_file.media_by_name[path.name])
        if not path.exists() or (roots is not None and not is_within(path, roots)):
            raise InputError(f"sample {key}: media file '{item.name or path.name}' was not found; upload it together "
                             "with the JSON file")
        info = check_media(path, limits)
        items.append(ComposedItem(kind=item.modality, path=str(path), name=item.name or path.name,
                                  width=info.get("width", 0), height=info.get("height", 0),
                                  duration=info.get("duration", 0.0)))
    return items


def gallery(demo_first: bool = False) -> SampleFile | None:
    """The bundled examples (assets/examples/gallery.json), or None if absent.

    Args:
        demo_first: lead with the samples the bundled demo model answers (``DEMO_DATASET``), for
            the app on its default model; otherwise keep the file's order, which leads with the
            official samples, for real checkpoints.
    """
    if not GALLERY_FILE.is_file():
        return None
    examples = read_sample_file(GALLERY_FILE)
    if not demo_first:
        return examples
    order = sorted(range(len(examples.keys)), key=lambda k: examples.samples[k].get("source_dataset") != DEMO_DATASET)
    return replace(examples, keys=tuple(examples.keys[k] for k in order),
                   samples=tuple(examples.samples[k] for k in order))
