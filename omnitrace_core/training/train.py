"""Train the demo model on generated tasks (teacher forcing on the answer tokens only).

    omnitrace train-demo                                  # the shipped run: writes the bundled demo model
    omnitrace train-demo --out /tmp/demo --steps 300      # a quick one

Every training example is built by the tracing backend's own ``prepare()`` (media loading, chat
template, processor, M-RoPE positions), so training sees exactly the token layout that tracing
sees; the answer tokens and ``<|im_end|>`` follow the prompt with the positions generation gives
them. Examples come from :func:`omnitrace_core.tasks.generate` with the training seed
(the benchmark's splits use other seeds), built in a data-loader worker while the main process
trains. Everything is seeded: the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..config import SourceConfig
from ..evaluation.outputs import output_accuracy
from ..tasks import TASK_NAMES, generate
from ..tasks.benchmark import sample_items
from . import aux_targets
from .demo_model import DemoSpec, build_model, build_processor, build_tokenizer, save

logger = logging.getLogger(__name__)

SOURCE_CONFIG = SourceConfig()
_MODEL_INPUTS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                 "input_features", "feature_attention_mask")
#: QA question types that a curriculum's first steps leave out: the ones a look-up keyed by a shape,
#: by a word of the text, or by the only candidate answers (they form first and crowd out the others)
EASY_QUESTION_TYPES = ("colour of a thing", "colour of a shape", "time of the sound")
_REDRAW = 10**9  # index offset of a redrawn sample (far past any step * batch size)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of a training run."""

    steps: int = 9000
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup: int = 200
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 12345
    threads: int = 1
    workers: int = 1
    qa_weight: int = 2
    device: str = "cpu"
    eval_every: int = 3000
    eval_per_task: int = 4
    eval_seed: int = 777
    aux_weight: float = 0.3
    #: first-layer probes of colour, shape and sound, and a QA answer's key at its slot (aux_targets)
    key_probes: bool = True
    #: for this many first steps, QA samples of EASY_QUESTION_TYPES are replaced by harder ones
    curriculum_steps: int = 4000

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# ------------------------------------------------------------------------------- examples
def encode(backend, sample, folder: Path, answer_keys: bool = True) -> dict[str, Any]:
    """One training example: prompt from ``backend.prepare`` + answer tokens, with labels and positions."""
    items = sample_items(sample, folder)
    try:
        prepared = backend.prepare(items, SOURCE_CONFIG)
    finally:
        for item in items:
            if getattr(item, "modality", "") == "video":
                Path(item.source).unlink(missing_ok=True)
    tokenizer = backend.tokenizer
    encoded = tokenizer(sample.answer, add_special_tokens=False, return_offsets_mapping=True)
    target = list(encoded["input_ids"]) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    prompt = prepared.input_ids[0].cpu()
    length = len(prompt)
    later = torch.arange(length, length + len(target)) + int(prepared.extras["rope_delta"])
    positions = prepared.extras["position_ids"].cpu()[:, 0, :]
    ids = torch.cat([prompt, torch.tensor(target)])
    aux = aux_targets.targets(prepared.layout, sample, ids, list(encoded["offset_mapping"]), answer_keys)
    return {
        "aux": aux,
        "input_ids": ids,
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
    aux = {name: torch.full((batch, width), -100, dtype=torch.long) for name in aux_targets.CLASSES}
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n], labels[row, :n], mask[row, :n] = e["input_ids"], e["labels"], 1
        positions[:, row, :n] = e["position_ids"]
        for name in aux_targets.CLASSES:
            aux[name][row, :n] = e["aux"][name]
    inputs: dict[str, torch.Tensor] = {}
    for key in _MODEL_INPUTS:
        parts = [e["inputs"][key] for e in examples if key in e["inputs"]]
        if parts:
            inputs[key] = torch.cat(parts, dim=0)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "position_ids": positions, "inputs": inputs,
            "aux": aux}


def batch_schedule(tasks: Sequence[str], qa_weight: int = 1) -> tuple[tuple[str, ...], ...]:
    """The task families of successive batches: short prompts twice, then long ones, in turn.

    Text and image samples are about 110 tokens long, audio and video ones about 200 and twice as
    costly per step; batching them apart avoids padding the short ones, and giving the short ones
    two batches in three gives the text and image look-ups (the slowest to learn) more samples.
    Within a batch, QA families get ``qa_weight`` times the samples of description families: a
    QA answer trains one question-driven look-up, a description several ordered ones.
    """
    def group(names: Sequence[str]) -> tuple[str, ...]:
        return tuple(t for name in names for t in [name] * (qa_weight if name.endswith("_qa") else 1))

    short = [t for t in tasks if t.startswith(("text", "image"))]
    long = [t for t in tasks if t not in short]
    return tuple(group(names) for names in (short, long, short) if names)


class _Batches(torch.utils.data.IterableDataset):
    """Training batches ``start, start + 1, ...`` of the seeded task stream (built in workers)."""

    def __init__(self, backend, seed: int, batch_size: int, start: int, stop: int,
                 schedule: Sequence[Sequence[str]], curriculum_steps: int = 0, answer_keys: bool = True) -> None:
        self.backend, self.seed, self.batch_size = backend, seed, batch_size
        self.start, self.stop, self.schedule = start, stop, tuple(tuple(g) for g in schedule)
        self.curriculum_steps, self.answer_keys = curriculum_steps, answer_keys

    def draw(self, step: int, k: int, group: Sequence[str]) -> Any:
        """Sample ``k`` of batch ``step``; during the curriculum, never of an easy QA type.

        An easy QA sample is replaced by the first sample of a harder type drawn from the group's
        QA families in turn (at indices past the stream's, so no sample is drawn twice).
        """
        index, family = step * self.batch_size + k, group[k % len(group)]
        sample = generate(self.seed, index, family)
        if step >= self.curriculum_steps or sample.question_type not in EASY_QUESTION_TYPES:
            return sample
        families = [family] + sorted({f for f in group if f.endswith("_qa")} - {family})
        for attempt in range(1, 64):
            sample = generate(self.seed, index + attempt * _REDRAW, families[attempt % len(families)])
            if sample.question_type not in EASY_QUESTION_TYPES:
                return sample
        raise RuntimeError(f"no QA sample of a harder type in the families {families}")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        torch.set_num_threads(1)
        pad = self.backend.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        worker = torch.utils.data.get_worker_info()
        # Worker k builds steps k, k + n, ...; the loader takes one from each worker in turn, so
        # the batches arrive in step order whatever the number of workers.
        first, stride = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        with tempfile.TemporaryDirectory(prefix="omnitrace-train-", dir=_scratch()) as folder:
            for step in range(self.start + first, self.stop, stride):
                group = self.schedule[step % len(self.schedule)]
                examples = []
                for k in range(self.batch_size):
                    sample = self.draw(step, k, group)
                    examples.append(encode(self.backend, sample, Path(folder), self.answer_keys))
                yield collate(examples, pad)


def _scratch() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# ------------------------------------------------------------------------------- training
def _to(batch: Any, device: str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _loss(model, batch: dict[str, Any], aux: aux_targets.AuxHeads | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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


def _check(backend, config: TrainConfig, tasks: Sequence[str], step: int) -> dict[str, Any]:
    """A held-out check during training, logged; its record for the card."""
    report = evaluate_outputs(backend, config.eval_seed, config.eval_per_task, tasks)
    types = {f"{q['task']}/{q['question_type']}": q["qa_accuracy"] for q in report["question_types"]}
    logger.info("step %d held-out: %s", step, report["summary"])
    logger.info("per task: %s", {t: v["exact_outputs"] for t, v in report["tasks"].items()})
    logger.info("QA per question type: %s", {k: round(v, 2) for k, v in types.items()})
    return {"step": step, **report["summary"], "question_types": types}


def train(out_dir: str | Path, spec: DemoSpec = DemoSpec(), config: TrainConfig = TrainConfig(),
          tasks: Sequence[str] = TASK_NAMES, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Build, train and save the demo model; returns the card written beside the weights.

    ``checkpoint``: a folder the model is also saved to after each held-out check.
    """
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
    heads = (aux_targets.AuxHeads(spec.model.text_hidden, model.config.text_config.vocab_size, config.key_probes)
             if config.aux_weight > 0 else None)
    schedule = batch_schedule(tasks, config.qa_weight)
    stream = _Batches(backend, config.seed, config.batch_size, 0, config.steps, schedule, config.curriculum_steps,
                      config.key_probes)
    loader = torch.utils.data.DataLoader(stream,
                                         batch_size=None, num_workers=config.workers,
                                         prefetch_factor=6 if config.workers else None,
                                         multiprocessing_context="fork" if config.workers else None)
    batches = iter(loader)  # the workers fork here, while the model is on the CPU: they build CPU tensors
    model.to(config.device)
    if heads is not None:
        heads.to(config.device)
    trained = list(model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    decay = [p for p in trained if p.ndim >= 2]
    no_decay = [p for p in trained if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
    history, evals = [], []
    smooth = None
    t0 = time.perf_counter()
    waited = 0.0
    t_ready = time.perf_counter()
    for step, batch in enumerate(batches):
        waited += time.perf_counter() - t_ready
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        loss, aux_loss = _loss(model, _to(batch, config.device), heads)
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
            if heads is not None and step % 500 == 0:
                logger.info("aux losses: %s", " ".join(f"{k} {v:.3f}" for k, v in sorted(heads.last.items())))
        if config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
            evals.append(_check(backend, config, tasks, step + 1))
            if checkpoint is not None:
                save(Path(checkpoint), model, processor, {"step": step + 1, "checks": evals})
        t_ready = time.perf_counter()
    train_seconds = time.perf_counter() - started
    del batches, loader  # joins the workers, so that their CPU time is counted below
    if config.eval_per_task:
        evals.append(_check(backend, config, tasks, config.steps))
    model.eval()
    card = {
        "name": "omnitrace-demo-qwen2_5_omni",
        "architecture": type(model).__name__,
        "parameters": params,
        "spec": spec.to_dict(),
        "train": asdict(config),
        "tasks": list(tasks),
        "batch_schedule": [list(group) for group in schedule],
        "train_seconds": round(train_seconds, 1),
        # CPU time, which other work on the machine does not inflate as it does the wall time:
        # the training process and its data-loader workers, each on its own core
        "train_cpu_seconds": {"main": round(_cpu_seconds(resource.RUSAGE_SELF), 1),
                              "workers": round(_cpu_seconds(resource.RUSAGE_CHILDREN), 1)},
        "torch_threads": config.threads,
        "loss_history": history,
        "checks": evals,
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else "",
    }
    save(Path(out_dir), model, processor, card)
    return card


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
