"""A small batch run made for real: a samples file with media, traced by the batch CLI with two signals, and labels.

Used by the Runs tests (handlers and browser). The run is traced on the session's tiny model with
``run_batch`` (the CLI's own loop), attmean with layer and head masses, attraw without; one sample names
a missing file, so each output also holds an error record. The ground truth names, for every output
sentence of the attmean trace, the sample's image (or its first text unit when it has no image).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from omnitrace_core import GenerationConfig, TraceResult
from omnitrace_core.batch import run_batch
from omnitrace_core.evaluation.groundtruth import FORMAT, VERSION

from tests.components.app_harness import media_path

SAMPLES = [
    {"id": "a", "task": "caption", "prompt": "Describe briefly.\n",
     "question": [{"text": "A red house stands in a field. The sun shines."}, {"image": "media/scene.png"}],
     "answer": "A red house."},
    {"id": "b", "task": "qa", "prompt": "Answer the question.\n",
     "question": [{"text": "What is heard? A clock ticks."}, {"audio": "media/chirp.wav"}], "answer": "Clicks."},
    {"id": "c", "task": "caption", "question": [{"text": "Two notes. The first is long. The second is short."}],
     "answer": "Two notes."},
    {"id": "d", "task": "qa", "question": [{"text": "Where is it?"}, {"image": "media/absent.png"}], "answer": "Here."},
    {"id": "e", "task": "qa", "prompt": "Answer.\n",
     "question": [{"image": "media/scene.png"}, {"text": "Is the sun shining? Yes or no."}], "answer": "Yes."},
]


@dataclass(frozen=True)
class RunFixture:
    folder: Path
    samples: Path
    attmean: Path
    attraw: Path
    truth: Path
    media: tuple[Path, ...]

    @property
    def upload(self) -> list[Path]:
        """Every file a user uploads to open the run: outputs, labels, samples file and its media."""
        return [self.attmean, self.attraw, self.truth, self.samples, *self.media]

    def results(self, path: Path | None = None) -> dict[str, TraceResult]:
        """key -> the stored trace of each ok record of one output (default: attmean)."""
        out = {}
        for line in (path or self.attmean).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["status"] == "ok":
                out[record["key"]] = TraceResult.from_dict(record["result"])
        return out


def write_run(folder: Path, tracer) -> RunFixture:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "media").mkdir(exist_ok=True)
    media = tuple(Path(shutil.copyfile(media_path(name), folder / "media" / name))
                  for name in ("scene.png", "chirp.wav"))
    samples = folder / "samples.json"
    samples.write_text(json.dumps(SAMPLES), encoding="utf-8")
    generation = GenerationConfig(max_new_tokens=8)
    outputs = {}
    for signal, heads in (("attmean", True), ("attraw", False)):
        outputs[signal] = folder / f"{signal}.jsonl"
        run_batch(tracer, SAMPLES, outputs[signal], bases=[folder], signal=signal, generation=generation,
                  progress=False, heads=heads)
    truth = []
    for line in outputs["attmean"].read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["status"] != "ok":
            continue
        result = TraceResult.from_dict(record["result"])
        image = next((i.index for i in result.items if i.modality == "image"), None)
        text = next(u for u in result.units if u.modality == "text")
        source = ({"modality": "image", "item": image} if image is not None else
                  {"modality": "text", "item": text.item, "char_start": text.char_start, "char_end": text.char_end})
        truth.append({"id": record["id"], "task": record["task"],
                      "spans": [{"text": span.text, "sources": [source]} for span in result.spans]})
    truth_path = folder / "truth.json"
    truth_path.write_text(json.dumps({"format": FORMAT, "version": VERSION, "samples": truth}), encoding="utf-8")
    return RunFixture(folder, samples, outputs["attmean"], outputs["attraw"], truth_path, media)
