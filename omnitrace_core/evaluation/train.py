"""Train the demo model on generated tasks (teacher forcing on the answer tokens only).

    python scripts/train_demo_model.py --out assets/demo_model          # the shipped run
    python -m omnitrace_core.evaluation.train --out /tmp/demo --steps 300  # a quick one

Every training example is built by the tracing backend's own ``prepare()`` (media loading, chat
template, processor, M-RoPE positions), so training sees exactly the token layout that tracing
sees; the answer tokens and ``<|im_end|>`` follow the prompt with the positions generation gives
them. Examples come from :func:`omnitrace_core.evaluation.tasks.generate` with the training seed
(the benchmark's splits use other seeds), built in a data-loader worker while the main process
trains. Everything is seeded: the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .. import layout as L
from ..config import SourceConfig
from . import synth
from .benchmark import sample_items
from .demo_model import DemoSpec, build_model, build_processor, build_tokenizer, save
from .outputs import output_accuracy
from .tasks import LETTERS, TASK_NAMES, generate

logger = logging.getLogger(__name__)

SOURCE_CONFIG = SourceConfig()
_MODEL_INPUTS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                 "input_features", "feature_attention_mask")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a training run."""

    steps: int = 3000
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup: int = 150
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 12345
    threads: int = 1
    eval_every: int = 500
    eval_per_task: int = 4
    eval_seed: int = 777
    aux_weight: float = 0.3

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# ------------------------------------------------------------------------------- examples
#: Auxiliary per-token targets (training only; their heads are not saved): what a media token
#: shows (colour, shape, sound type; class 0 = nothing) on the language model's input embeddings;
#: on the first decoder layer's output, which second a timed token lies in, which image (first,
#: second ...) an image token belongs to and, for the words of an option line, the option's letter.
AUX_CLASSES = {"colour": 1 + len(synth.COLOURS), "shape": 1 + len(synth.SHAPES), "sound": 1 + len(synth.SOUNDS),
               "second": 10, "ordinal": 4, "letter": len(LETTERS)}
_LAYER1 = ("second", "ordinal", "letter")
_COLOUR = {c: k + 1 for k, c in enumerate(synth.COLOURS)}
_SHAPE = {s: k + 1 for k, s in enumerate(synth.SHAPES)}
_SOUND = {s: k + 1 for k, s in enumerate(synth.SOUNDS)}


def aux_targets(layout, sample) -> dict[str, torch.Tensor]:
    """Per prompt position, the auxiliary targets (-100 where a target does not apply)."""
    n = len(layout)
    out = {name: torch.full((n,), -100, dtype=torch.long) for name in AUX_CLASSES}
    lines = {(ref.item, ref.char_start + 2, ref.char_end): LETTERS.index(letter)
             for letter, ref in sample.options.items()}  # an option's words, after its "A." prefix
    for pos in np.flatnonzero(layout.kind >= 0):
        kind = int(layout.kind[pos])
        item = int(layout.item[pos])
        if kind == L.TEXT:
            for (line_item, lo, hi), letter in lines.items():
                if item == line_item and lo <= layout.char_start[pos] and layout.char_end[pos] <= hi:
                    out["letter"][pos] = letter
            continue
        meta = sample.entries[item - 1].meta
        if kind == L.IMAGE:
            colour, shape = meta["cells"].get(int(layout.tile[pos]), (None, None))
            out["colour"][pos], out["shape"][pos] = _COLOUR.get(colour, 0), _SHAPE.get(shape, 0)
            ordinal = sum(e.kind == "image" for e in sample.entries[:item - 1])
            out["ordinal"][pos] = min(ordinal, AUX_CLASSES["ordinal"] - 1)
            continue
        second = int(np.floor(layout.time_start[pos] + 1e-6))
        out["second"][pos] = min(second, AUX_CLASSES["second"] - 1)
        if kind == L.VIDEO_VISUAL:
            colour, shape = meta["shown"].get(second, (None, None))
            out["colour"][pos], out["shape"][pos] = _COLOUR.get(colour, 0), _SHAPE.get(shape, 0)
        else:  # audio, or the audio track of a video
            out["sound"][pos] = _SOUND.get(meta["sounds"].get(second), 0)
    return out


class AuxHeads(torch.nn.Module):
    """Linear probes of the auxiliary targets (training only)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict({name: torch.nn.Linear(hidden, k) for name, k in AUX_CLASSES.items()})

    def loss(self, embeds: torch.Tensor, layer1: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        total = embeds.new_zeros(())
        for name, head in self.heads.items():
            mask = targets[name] != -100
            if mask.any():
                source = layer1 if name in _LAYER1 else embeds
                total = total + torch.nn.functional.cross_entropy(head(source[mask]).float(), targets[name][mask])
        return total


def encode(backend, sample, folder: Path) -> dict[str, Any]:
    """One training example: prompt from ``backend.prepare`` + answer tokens, with labels and positions."""
    items = sample_items(sample, folder)
    try:
        prepared = backend.prepare(items, SOURCE_CONFIG)
    finally:
        for item in items:
            if getattr(item, "modality", "") == "video":
                Path(item.source).unlink(missing_ok=True)
    tokenizer = backend.tokenizer
    target = tokenizer(sample.answer, add_special_tokens=False)["input_ids"]
    target.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    prompt = prepared.input_ids[0].cpu()
    length = len(prompt)
    later = torch.arange(length, length + len(target)) + int(prepared.extras["rope_delta"])
    positions = prepared.extras["position_ids"].cpu()[:, 0, :]
    aux = {k: torch.cat([v, torch.full((len(target),), -100, dtype=torch.long)])
           for k, v in aux_targets(prepared.layout, sample).items()}
    return {
        "aux": aux,
        "input_ids": torch.cat([prompt, torch.tensor(target)]),
        "labels": torch.tensor([-100] * length + target),
        "position_ids": torch.cat([positions, later.expand(positions.shape[0], -1)], dim=1),
        "inputs": {k: prepared.model_inputs[k].cpu() for k in _MODEL_INPUTS if k in prepared.model_inputs},
    }


def collate(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a list of examples into one batch; media inputs are concatenated in order."""
    width = max(len(e["input_ids"]) for e in examples)
    batch = len(examples)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    labels = torch.full((batch, width), -100, dtype=torch.long)
    mask = torch.zeros((batch, width), dtype=torch.long)
    positions = torch.zeros((3, batch, width), dtype=torch.long)
    aux = {name: torch.full((batch, width), -100, dtype=torch.long) for name in AUX_CLASSES}
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n], labels[row, :n], mask[row, :n] = e["input_ids"], e["labels"], 1
        positions[:, row, :n] = e["position_ids"]
        for name in AUX_CLASSES:
            aux[name][row, :n] = e["aux"][name]
    inputs: dict[str, torch.Tensor] = {}
    for key in _MODEL_INPUTS:
        parts = [e["inputs"][key] for e in examples if key in e["inputs"]]
        if parts:
            inputs[key] = torch.cat(parts, dim=0)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": positions, "inputs": inputs,
            "aux": aux}


class _Batches(torch.utils.data.IterableDataset):
    """Training batches ``start, start + 1, ...`` of the seeded task stream (built in a worker)."""

    def __init__(self, backend, seed: int, batch_size: int, start: int, stop: int, tasks: Sequence[str]) -> None:
        self.backend, self.seed, self.batch_size = backend, seed, batch_size
        self.start, self.stop, self.tasks = start, stop, tuple(tasks)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        torch.set_num_threads(1)
        pad = self.backend.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        with tempfile.TemporaryDirectory(prefix="omnitrace-train-", dir=_scratch()) as folder:
            for step in range(self.start, self.stop):
                examples = []
                for k in range(self.batch_size):
                    index = step * self.batch_size + k
                    sample = generate(self.seed, index, self.tasks[index % len(self.tasks)])
                    examples.append(encode(self.backend, sample, Path(folder)))
                yield collate(examples, pad)


def _scratch() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# ------------------------------------------------------------------------------- training
def _loss(model, batch: dict[str, Any], aux: AuxHeads | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(answer cross-entropy, auxiliary loss); the LM head runs only where a label follows."""
    out = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      position_ids=batch["position_ids"], use_cache=False, output_hidden_states=aux is not None,
                      **batch["inputs"])
    hidden = out.last_hidden_state[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = model.lm_head(hidden[keep])
    lm = torch.nn.functional.cross_entropy(logits.float(), targets[keep])
    if aux is None:
        return lm, lm.new_zeros(())
    return lm, aux.loss(out.hidden_states[0], out.hidden_states[1], batch["aux"])


def _backend_for(model, processor):
    """A tracing backend around ``model`` (for ``prepare``), with the model left trainable on SDPA."""
    from ..backends.qwen2_5_omni import Qwen25OmniBackend

    backend = Qwen25OmniBackend(model, processor, "omnitrace-demo")
    model.set_attn_implementation({"text_config": "sdpa"})
    model.requires_grad_(True)
    model.train()
    return backend


def evaluate_outputs(backend, seed: int, per_task: int, tasks: Sequence[str] = TASK_NAMES,
                     max_new_tokens: int = 64) -> dict[str, Any]:
    """Greedy answers on a held-out stream: QA accuracy and description sentences exactly right."""
    model = backend.model
    was_training = model.training
    model.eval()
    samples, texts = [], []
    with tempfile.TemporaryDirectory(prefix="omnitrace-eval-", dir=_scratch()) as folder, torch.no_grad():
        for index in range(per_task * len(tasks)):
            sample = generate(seed, index, tasks[index % len(tasks)])
            prepared = backend.prepare(sample_items(sample, Path(folder)), SOURCE_CONFIG)
            out = model.generate(**backend.generate_kwargs(prepared), max_new_tokens=max_new_tokens, do_sample=False)
            samples.append(sample)
            texts.append(backend.decode(out[0, prepared.length:].tolist()))
    model.train(was_training)
    return output_accuracy(samples, texts)


def train(out_dir: str | Path, spec: DemoSpec = DemoSpec(), config: TrainConfig = TrainConfig(),
          tasks: Sequence[str] = TASK_NAMES) -> dict[str, Any]:
    """Build, train and save the demo model; returns the card written beside the weights."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    tokenizer = build_tokenizer(spec)
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, spec)
    backend = _backend_for(model, processor)
    params = sum(p.numel() for p in model.parameters())
    logger.info("demo model: %.2f M parameters, %d tokens", params / 1e6, len(tokenizer))
    heads = AuxHeads(spec.model.text_hidden) if config.aux_weight > 0 else None
    trained = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
    loader = torch.utils.data.DataLoader(_Batches(backend, config.seed, config.batch_size, 0, config.steps, tasks),
                                         batch_size=None, num_workers=1, prefetch_factor=6,
                                         multiprocessing_context="fork")
    history, evals = [], []
    smooth = None
    t0 = time.perf_counter()
    waited = 0.0
    t_ready = time.perf_counter()
    for step, batch in enumerate(loader):
        waited += time.perf_counter() - t_ready
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        loss, aux_loss = _loss(model, batch, heads)
        optimizer.zero_grad(set_to_none=True)
        (loss + config.aux_weight * aux_loss).backward()
        torch.nn.utils.clip_grad_norm_(trained, config.clip)
        optimizer.step()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % 50 == 0 or step == config.steps - 1:
            elapsed = time.perf_counter() - t0
            logger.info("step %d/%d loss %.4f (smoothed %.4f, aux %.3f) lr %.2e %.1f s (%.1f s waiting for data)",
                        step, config.steps, loss.item(), smooth, aux_loss.item(), config.lr_at(step), elapsed, waited)
            history.append({"step": step, "loss": round(smooth, 5), "aux": round(aux_loss.item(), 4),
                            "seconds": round(elapsed, 1)})
        if config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
            report = evaluate_outputs(backend, config.eval_seed, config.eval_per_task, tasks)
            logger.info("step %d held-out: %s", step + 1, report["summary"])
            logger.info("per task: %s", {t: v["exact_outputs"] for t, v in report["tasks"].items()})
            evals.append({"step": step + 1, **report["summary"]})
        t_ready = time.perf_counter()
    train_seconds = time.perf_counter() - started
    if config.eval_per_task:
        final = evaluate_outputs(backend, config.eval_seed, config.eval_per_task, tasks)
        logger.info("final held-out (training-time check): %s", final["summary"])
        evals.append({"step": config.steps, **final["summary"]})
    model.eval()
    card = {
        "name": "omnitrace-demo-qwen2_5_omni",
        "architecture": type(model).__name__,
        "parameters": params,
        "spec": spec.to_dict(),
        "train": asdict(config),
        "tasks": list(tasks),
        "train_seconds": round(train_seconds, 1),
        "torch_threads": config.threads,
        "loss_history": history,
        "checks": evals,
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else "",
    }
    save(Path(out_dir), model, processor, card)
    return card


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train_demo_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the trained model to")
    defaults = TrainConfig()
    for name in ("steps", "batch_size", "warmup", "seed", "threads", "eval_every", "eval_per_task"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--aux-weight", type=float, default=defaults.aux_weight)
    parser.add_argument("--tasks", default=",".join(TASK_NAMES), help="comma-separated task families")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                         seed=args.seed, threads=args.threads, eval_every=args.eval_every,
                         eval_per_task=args.eval_per_task, aux_weight=args.aux_weight)
    card = train(args.out, config=config, tasks=[t for t in args.tasks.split(",") if t])
    print(f"trained in {card['train_seconds']:.0f} s; held-out check: {card['checks'][-1] if card['checks'] else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
