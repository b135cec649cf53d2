"""Ground-truth attribution labels: the JSON format, its validation, and matching to traced samples.

The format (version 1) is model-independent, so the same file scores any checkpoint's traces,
and it holds human or LLM-judge labels as well as the benchmark's known-by-construction ones::

    {"format": "omnitrace-ground-truth", "version": 1,
     "samples": [
       {"id": "test-0002", "task": "image_qa",          # matched to trace records by id (+ task)
        "option": "D",                                  # optional: the correct letter (QA)
        "question_type": "shape of a colour",           # optional: groups QA accuracy in the report
        "options": {"A": {"modality": "text", "item": 4, "char_start": 30, "char_end": 39}, ...},
        "spans": [                                      # expected output sentences, in order
          {"text": "The red object is a triangle.",
           "sources": [{"modality": "image", "item": 2}]},
          {"text": "The answer is D.",
           "sources": [{"modality": "text", "item": 4, "char_start": 66, "char_end": 77}]}]}]}

- ``item`` numbers inputs as the tracer does: the sample's ``prompt`` (when present) is item 0,
  then every ``question`` entry in order (an entry holding a list gives one item per element).
- A text source is a character range of its item; it matches the traced text units it overlaps
  by at least half of the unit's length (or that it covers by half of its own length).
- An image source is the whole image. Audio and video sources are time intervals in seconds,
  scored over 1-second bins (any overlap counts a bin).
- ``options`` (optional) gives the source of each lettered option for option consistency; when
  absent, option units are recognised in the trace by their ``A.`` / ``(B)`` line prefix.
- A sample may also set ``key`` (the trace record's ``key``) to match on it directly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..inputs import MODALITIES

FORMAT = "omnitrace-ground-truth"
VERSION = 1


@dataclass(frozen=True)
class SourceRef:
    """A ground-truth source: a text range, a whole image, or a time interval of an audio/video item."""

    modality: str
    item: int
    char_start: int | None = None
    char_end: int | None = None
    time_start: float | None = None
    time_end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "SourceRef":
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: a source must be an object like {{'modality': 'image', 'item': 2}}")
        modality = data.get("modality")
        if modality not in MODALITIES:
            raise InputError(f"{where}: 'modality' must be one of {list(MODALITIES)}, got {modality!r}")
        item = data.get("item")
        if not isinstance(item, int) or isinstance(item, bool) or item < 0:
            raise InputError(f"{where}: 'item' must be an item index >= 0, got {item!r}")
        unknown = set(data) - {"modality", "item", "char_start", "char_end", "time_start", "time_end"}
        if unknown:
            raise InputError(f"{where}: unknown field(s) {sorted(unknown)}")
        if modality == "text":
            lo, hi = data.get("char_start"), data.get("char_end")
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo < hi):
                raise InputError(f"{where}: a text source needs integer char_start < char_end, got {lo!r}, {hi!r}")
            return cls(modality, item, char_start=lo, char_end=hi)
        if modality == "image":
            return cls(modality, item)
        lo, hi = data.get("time_start"), data.get("time_end")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)) \
                or not 0 <= lo < hi:
            raise InputError(f"{where}: an {modality} source needs seconds time_start < time_end, got {lo!r}, {hi!r}")
        return cls(modality, item, time_start=float(lo), time_end=float(hi))


@dataclass(frozen=True)
class GoldSpan:
    """One expected output sentence and the sources it states."""

    text: str
    sources: tuple[SourceRef, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "sources": [s.to_dict() for s in self.sources]}


@dataclass(frozen=True)
class SampleTruth:
    """The labels of one sample."""

    id: str
    spans: tuple[GoldSpan, ...]
    task: str | None = None
    option: str | None = None
    options: Mapping[str, SourceRef] = field(default_factory=dict)
    key: str | None = None
    question_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        for name in ("key", "task", "option", "question_type"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.options:
            out["options"] = {k: v.to_dict() for k, v in self.options.items()}
        out["spans"] = [s.to_dict() for s in self.spans]
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "SampleTruth":
        if not isinstance(data, Mapping):
            raise InputError(f"{where} must be an object with 'id' and 'spans'")
        if "id" not in data:
            raise InputError(f"{where} has no 'id'")
        spans = data.get("spans")
        if not isinstance(spans, list):
            raise InputError(f"{where}: 'spans' must be a list of {{'text': ..., 'sources': [...]}}")
        parsed = []
        for k, span in enumerate(spans):
            if not isinstance(span, Mapping) or not isinstance(span.get("text"), str) \
                    or not isinstance(span.get("sources"), list):
                raise InputError(f"{where} span {k} must be {{'text': str, 'sources': [...]}}")
            parsed.append(GoldSpan(span["text"], tuple(SourceRef.from_dict(s, f"{where} span {k} source {j}")
                                                       for j, s in enumerate(span["sources"]))))
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise InputError(f"{where}: 'options' must map letters to text sources")
        option = data.get("option")
        if option is not None and not isinstance(option, str):
            raise InputError(f"{where}: 'option' must be a letter string")
        question_type = data.get("question_type")
        if question_type is not None and not (isinstance(question_type, str) and question_type.strip()):
            raise InputError(f"{where}: 'question_type' must be a non-empty string, got {question_type!r}")
        return cls(id=str(data["id"]), spans=tuple(parsed), task=data.get("task"), option=option,
                   options={str(k): SourceRef.from_dict(v, f"{where} option {k}") for k, v in options.items()},
                   key=data.get("key"), question_type=question_type)


@dataclass(frozen=True)
class GroundTruth:
    """The labels of a set of samples, looked up by trace record."""

    samples: tuple[SampleTruth, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "samples": [s.to_dict() for s in self.samples]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Any, where: str = "ground truth") -> "GroundTruth":
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise InputError(f"{where} is not a ground-truth file: expected an object with "
                             f"\"format\": \"{FORMAT}\", \"version\": {VERSION} and \"samples\"")
        if data.get("version") != VERSION:
            raise InputError(f"{where} has version {data.get('version')!r}; this version reads {VERSION}")
        samples = data.get("samples")
        if not isinstance(samples, list):
            raise InputError(f"{where}: 'samples' must be a list")
        return cls(tuple(SampleTruth.from_dict(s, f"{where} sample {k}") for k, s in enumerate(samples)))

    @classmethod
    def load(cls, path: str | Path) -> "GroundTruth":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read ground truth '{path}': {exc}") from exc
        return cls.from_dict(data, f"ground truth '{path}'")

    def lookup(self, record: Mapping[str, Any]) -> SampleTruth | None:
        """The labels of a trace record (``{"key", "id", "task", ...}``), or None."""
        index = self._index()
        key = record.get("key")
        if key is not None and ("key", str(key)) in index:
            return index[("key", str(key))]
        task = record.get("task", record.get("sample_task"))
        hit = index.get(("id-task", str(record.get("id")), task))
        return hit if hit is not None else index.get(("id", str(record.get("id"))))

    def _index(self) -> dict[tuple, SampleTruth]:
        cached = self.__dict__.get("_cache")
        if cached is None:
            cached = {}
            for s in self.samples:
                if s.key is not None:
                    cached[("key", s.key)] = s
                cached.setdefault(("id-task", s.id, s.task), s)
                cached.setdefault(("id", s.id), s)
            object.__setattr__(self, "_cache", cached)
        return cached
