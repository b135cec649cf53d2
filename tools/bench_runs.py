"""Benchmark of the Runs tab on a large run: index, sort, page and open, timed (prints; asserts nothing).

    python -m tools.bench_runs [--samples 10000] [--seed-samples 8] [--heads]

Traces the first ``--seed-samples`` samples of the bundled benchmark's test split with the demo model
(the batch CLI's own loop; every modality), replicates their records under new keys into a run file of
``--samples`` lines, and times what the app does with it: indexing the file, the first page, a sort, a
filter, a page turn and opening one sample (its traces read on demand), and the table's HTML.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from components.runs import load_run
from components.runs_view import render_table
from omnitrace_core import GenerationConfig
from omnitrace_core.batch import load_questions, media_bases, run_batch
from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR, DEFAULT_MODEL_DIR


def seed_records(folder: Path, count: int, heads: bool) -> list[bytes]:
    """Real trace records of ``count`` benchmark samples (demo model)."""
    from omnitrace_core import Tracer

    questions = DEFAULT_BENCHMARK_DIR / "test" / "questions.json"
    samples = load_questions(questions)[:count]
    out = folder / "seed.jsonl"
    tracer = Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    run_batch(tracer, samples, out, bases=media_bases(questions), signal="attmean",
              generation=GenerationConfig(max_new_tokens=48), progress=False, heads=heads)
    return out.read_bytes().splitlines()


def write_run(path: Path, seeds: list[bytes], samples: int) -> None:
    with open(path, "wb") as handle:
        for k in range(samples):
            record = json.loads(seeds[k % len(seeds)])
            record["key"] = f"{k:06d}:{record.get('task', '')}"
            record["id"] = f"{k:06d}"
            handle.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")


def _timed(label: str, fn):
    started = time.perf_counter()
    value = fn()
    print(f"{label:<34} {1000 * (time.perf_counter() - started):9.1f} ms")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seed-samples", type=int, default=8)
    parser.add_argument("--heads", action="store_true", help="seed traces carry layer and head masses")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omnitrace_bench_runs_") as tmp:
        folder = Path(tmp)
        seeds = seed_records(folder, args.seed_samples, args.heads)
        path = folder / "run.jsonl"
        write_run(path, seeds, args.samples)
        print(f"run file: {args.samples} samples, {path.stat().st_size / 2**20:.1f} MiB "
              f"({sum(map(len, seeds)) / len(seeds) / 1024:.1f} KiB per record)")
        run = _timed("index (load the run)", lambda: load_run([path]))
        _timed("first page + HTML", lambda: render_table(run.query()))
        _timed("sort by confidence + HTML", lambda: render_table(run.query(sort="confidence", descending=True)))
        _timed("filter 'video' + HTML", lambda: render_table(run.query(text="video")))
        last = run.query().pages - 1
        page = _timed(f"page {last + 1} + HTML", lambda: run.query(page=last))
        _timed("open one sample (parse its trace)", lambda: run.results(page.rows[-1].key))


if __name__ == "__main__":
    main()
