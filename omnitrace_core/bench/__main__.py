"""``python -m omnitrace_core.bench``: tracing cost vs plain generation, side by side."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from .methods import NAIVE, OUR_SIGNALS
from .models import SIZES
from .report import markdown

ALL_METHODS = (*OUR_SIGNALS, *NAIVE)


def _run_worker(size: str, device: str, target: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "omnitrace_core.bench.worker", "--size", size, "--device", device,
               "--target", str(target), "--new-tokens", str(args.new_tokens), "--methods", ",".join(args.methods),
               "--grad-tokens", str(args.grad_tokens), "--budget-s", str(args.naive_budget_s)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    status = "oom" if proc.returncode in (-9, 137) else "error"
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"target": target, "context": target, "device": device, "error": f"{status}: {' | '.join(tail)}",
            "measurements": [{"method": "plain", "context": target, "new_tokens": args.new_tokens, "status": status,
                              "wall_s": float("nan"), "first_token_s": float("nan"), "per_token_s": float("nan"),
                              "peak_mb": float("nan"), "note": f"worker exited {proc.returncode}"}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m omnitrace_core.bench",
        description="Time and memory of traced generation vs plain generation on a random-weight "
                    "Qwen2.5-Omni thinker, over mixed-media contexts of several lengths.")
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="model size (default: 'cpu', about 200 M parameters; plus '7b' when a GPU is present)")
    parser.add_argument("--lengths", default="1000,2000,4000,8000", help="target context lengths in tokens")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--methods", default=",".join(ALL_METHODS),
                        help=f"comma-separated subset of {','.join(ALL_METHODS)} (plain always runs)")
    parser.add_argument("--grad-tokens", type=int, default=2, help="tokens the naive gradient method really runs")
    parser.add_argument("--naive-budget-s", type=float, default=90.0,
                        help="skip the naive gradient method where it is projected to take longer")
    parser.add_argument("--smoke", action="store_true", help="tiny model, short contexts: a quick check")
    parser.add_argument("--output", type=Path, help="also write the raw measurements as JSON")
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(ALL_METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    if args.smoke:
        args.size, args.lengths, args.new_tokens = "tiny", "300,600", 4
    lengths = [int(x) for x in args.lengths.split(",") if x]
    plans = [(args.size or "cpu", "cpu")]
    if args.size is None and torch.cuda.is_available():
        plans = [("7b", "cuda")]
    elif args.size == "7b":
        plans = [("7b", "cuda" if torch.cuda.is_available() else "cpu")]
    report = {}
    start = time.perf_counter()
    for size, device in plans:
        runs = []
        for target in lengths:
            print(f"[bench] {size} on {device}: context ~{target} tokens ...", file=sys.stderr, flush=True)
            runs.append(_run_worker(size, device, target, args))
        params = next((r["parameters"] for r in runs if "parameters" in r), None)
        title = f"{size} model ({params / 1e6:.0f} M parameters) on {device}" if params else f"{size} on {device}"
        print(markdown(runs, title) + "\n", flush=True)
        report[f"{size}-{device}"] = runs
    print(f"[bench] finished in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
