"""Run every method at one context length in this process; print the measurements as JSON.

``omnitrace bench`` runs it as a subprocess per context length (:func:`measure_in_subprocess`), so
that one length's memory (or a crash) never affects another's figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from ..config import SourceConfig
from .measure import release_memory
from .methods import OUR_SIGNALS, Measurement, run_naive_attention, run_naive_attgrads, run_ours, run_plain
from .models import build_bench_backend, parameter_count
from .workload import build_workload


def run_length(size: str, device: str, target: int, new_tokens: int, methods: list[str], grad_tokens: int,
               budget_s: float) -> dict:
    torch.manual_seed(0)
    backend = build_bench_backend(size, device)
    sources = SourceConfig()
    processor = backend.processor.image_processor
    image_tokens = processor.max_pixels // (28 * 28) if hasattr(processor, "max_pixels") else 64
    with tempfile.TemporaryDirectory() as folder:
        items = build_workload(target, Path(folder), image_tokens)
        # warm-up: first calls pay for lazy initialisation (kernels, spaCy, tokenizer caches)
        run_plain(backend, items[:3], sources, 2)
        run_ours("attraw")(backend, items[:3], sources, 2)
        release_memory()
        results: list[Measurement] = []
        plain = run_plain(backend, items, sources, new_tokens)
        results.append(plain)
        length = plain.context
        for signal in OUR_SIGNALS:
            if signal in methods:
                release_memory()
                results.append(run_ours(signal)(backend, items, sources, new_tokens))
        if "naive_attention" in methods:
            release_memory()
            results.append(run_naive_attention(backend, items, sources, new_tokens, length))
        if "naive_attgrads" in methods:
            release_memory()
            tokens = list(range(10, 10 + grad_tokens))  # token ids matter nothing to the cost
            # a full forward + backward over the prompt costs about three prefills
            estimate = 3 * plain.prefill_s
            results.append(run_naive_attgrads(backend, items, sources, new_tokens, length, tokens, budget_s,
                                              estimate, generation_s=plain.wall_s))
    return {"target": target, "context": length, "parameters": parameter_count(backend), "device": device,
            "measurements": [m.to_dict() for m in results]}


def measure_in_subprocess(size: str, device: str, target: int, *, new_tokens: int, methods: Sequence[str],
                          grad_tokens: int, budget_s: float) -> dict:
    """:func:`run_length` in a fresh Python process; a crash or running out of memory is reported as such."""
    command = [sys.executable, "-m", "omnitrace_core.bench.worker", "--size", size, "--device", device,
               "--target", str(target), "--new-tokens", str(new_tokens), "--methods", ",".join(methods),
               "--grad-tokens", str(grad_tokens), "--budget-s", str(budget_s)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    status = "oom" if proc.returncode in (-9, 137) else "error"
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"target": target, "context": target, "device": device, "error": f"{status}: {' | '.join(tail)}",
            "measurements": [{"method": "plain", "context": target, "new_tokens": new_tokens, "status": status,
                              "wall_s": float("nan"), "first_token_s": float("nan"), "per_token_s": float("nan"),
                              "peak_mb": float("nan"), "note": f"worker exited {proc.returncode}"}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omnitrace_core.bench.worker")
    parser.add_argument("--size", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--new-tokens", type=int, required=True)
    parser.add_argument("--methods", required=True)
    parser.add_argument("--grad-tokens", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = run_length(args.size, args.device, args.target, args.new_tokens, args.methods.split(","),
                     args.grad_tokens, args.budget_s)
    sys.stdout.write("BENCH_JSON " + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
