"""``omnitrace bench``: what tracing costs over plain generation, in time and memory, side by side.

Per context length, on one random-weight Qwen2.5-Omni model and one mixed-media input: plain SDPA
generation (the baseline), the naive way of tracing and this engine with each signal (see
:mod:`omnitrace_core.bench`). Each length runs in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..bench.methods import NAIVE, OUR_SIGNALS
from ..bench.models import SIZES
from ..bench.report import markdown
from ..bench.worker import measure_in_subprocess
from .options import EXIT_OK, EXIT_USAGE

ALL_METHODS = (*OUR_SIGNALS, *NAIVE)


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "bench", help="time and memory of traced vs plain generation",
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
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``omnitrace bench``: a Markdown table per model size on stdout; the exit status."""
    import torch

    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        print(f"error: unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}", file=sys.stderr)
        return EXIT_USAGE
    size, lengths, new_tokens = args.size, args.lengths, args.new_tokens
    if args.smoke:
        size, lengths, new_tokens = "tiny", "300,600", 4
    plans = [(size or "cpu", "cpu")]
    if size is None and torch.cuda.is_available():
        plans = [("7b", "cuda")]
    elif size == "7b":
        plans = [("7b", "cuda" if torch.cuda.is_available() else "cpu")]
    report = {}
    start = time.perf_counter()
    for size, device in plans:
        runs = []
        for target in [int(x) for x in lengths.split(",") if x]:
            print(f"[bench] {size} on {device}: context ~{target} tokens ...", file=sys.stderr, flush=True)
            runs.append(measure_in_subprocess(size, device, target, new_tokens=new_tokens, methods=methods,
                                              grad_tokens=args.grad_tokens, budget_s=args.naive_budget_s))
        params = next((r["parameters"] for r in runs if "parameters" in r), None)
        title = f"{size} model ({params / 1e6:.0f} M parameters) on {device}" if params else f"{size} on {device}"
        print(markdown(runs, title) + "\n", flush=True)
        report[f"{size}-{device}"] = runs
    print(f"[bench] finished in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
    return EXIT_OK
