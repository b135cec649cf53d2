"""``omnitrace train-demo``: train the bundled demo model (seeded; see :mod:`omnitrace_core.training.train`).

    omnitrace train-demo                          # the shipped run: writes the bundled demo model (about 60-75 min, 2 CPU cores)
    omnitrace train-demo --out /tmp/demo --steps 300
"""

from __future__ import annotations

import argparse

from ..assets import DEFAULT_MODEL_DIR
from ..tasks import TASK_NAMES
from ..training.train import TrainConfig, train
from .options import EXIT_OK, report_failure


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("train-demo", help="train the bundled demo model on the generated tasks",
                                 description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_MODEL_DIR),
                        help="folder to write the trained model to (default: the bundled demo model's, %(default)s)")
    defaults = TrainConfig()
    for name in ("steps", "batch_size", "warmup", "seed", "threads", "workers", "qa_weight", "eval_every",
                 "eval_per_task"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--device", default=defaults.device, help="device to train on (default: cpu)")
    parser.add_argument("--aux-weight", type=float, default=defaults.aux_weight)
    parser.add_argument("--curriculum-steps", type=int, default=defaults.curriculum_steps,
                        help="first steps whose QA samples leave out the easy question types")
    parser.add_argument("--no-key-probes", dest="key_probes", action="store_false",
                        help="without the first-layer probes and the answer slot's key")
    parser.add_argument("--tasks", default=",".join(TASK_NAMES), help="comma-separated task families")
    parser.add_argument("--checkpoint", help="folder to save the model to after each held-out check")
    parser.set_defaults(run=run, verbose=1)  # training logs its progress
    return parser


def run(args: argparse.Namespace) -> int:
    """Train and save the demo model; the exit status."""
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                         seed=args.seed, threads=args.threads, workers=args.workers, qa_weight=args.qa_weight,
                         device=args.device, eval_every=args.eval_every, eval_per_task=args.eval_per_task,
                         aux_weight=args.aux_weight, key_probes=args.key_probes,
                         curriculum_steps=args.curriculum_steps)
    try:
        card = train(args.out, config=config, tasks=[t for t in args.tasks.split(",") if t],
                     checkpoint=args.checkpoint)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, "train-demo")
    cpu = card["train_cpu_seconds"]
    print(f"trained in {card['train_seconds']:.0f} s (CPU: {cpu['main']:.0f} s training, {cpu['workers']:.0f} s data "
          f"workers); held-out check: {card['checks'][-1] if card['checks'] else '-'}")
    return EXIT_OK
