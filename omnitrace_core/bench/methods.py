"""The compared ways of generating: plain, naive tracing, and this engine's signals.

Every runner starts from the same items, includes input preparation in its wall time, and
returns a :class:`Measurement`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch

from ..backends import Backend
from ..capture import CAPTURE_ATTENTION
from ..config import GenerationConfig, SourceConfig
from ..engine import Tracer
from ..inputs import Item
from .measure import PeakMemory, available_bytes

OUR_SIGNALS = ("attmean", "attraw", "attgrads")
NAIVE = ("naive_attention", "naive_attgrads")


@dataclass
class Measurement:
    """One method at one context length.

    ``status`` is "ok", "oom" (ran out of memory, or predicted to and not run), "skipped" (over
    the time budget) or "error". ``prefill_s`` is the time from the prepared input to the first
    token (media encoders + prompt prefill + first step); ``per_token_s`` is decode time per token
    after the first.
    """

    method: str
    context: int
    new_tokens: int
    status: str = "ok"
    wall_s: float = float("nan")
    first_token_s: float = float("nan")
    prefill_s: float = float("nan")
    per_token_s: float = float("nan")
    peak_mb: float = float("nan")
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class _FirstToken:
    """A stopping criterion that only notes when the first new token exists."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, input_ids, scores, **kwargs):
        if self.at is None:
            self.at = time.perf_counter()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _with_attention(backend: Backend, implementation: str):
    class _Switch:
        def __enter__(self):
            backend.model.set_attn_implementation({backend.text_config_key: implementation})

        def __exit__(self, *exc):
            backend.model.set_attn_implementation({backend.text_config_key: CAPTURE_ATTENTION})

    return _Switch()


def _hf_generate(backend: Backend, items: Sequence[Item], sources: SourceConfig, n: int,
                 implementation: str, keep_attentions: bool) -> tuple[float, float, float, float, int, object]:
    from transformers import StoppingCriteriaList

    start = time.perf_counter()
    prepared = backend.prepare(items, sources)
    ready = time.perf_counter()
    first = _FirstToken()
    with _with_attention(backend, implementation), torch.no_grad():
        out = backend.model.generate(
            **backend.generate_kwargs(prepared), max_new_tokens=n, min_new_tokens=n, do_sample=False,
            stopping_criteria=StoppingCriteriaList([first]), output_attentions=keep_attentions,
            return_dict_in_generate=keep_attentions)
        if keep_attentions:  # the reference's attmean: mean over layers, heads and query rows
            scores = [torch.stack([a[0].float().mean(dim=(0, 1)) for a in step]).mean(0) for step in out.attentions]
            del scores
    end = time.perf_counter()
    return start, ready, first.at or end, end, prepared.length, out


def run_plain(backend: Backend, items, sources: SourceConfig, n: int) -> Measurement:
    with PeakMemory(backend.input_device) as mem:
        start, ready, first, end, length, _ = _hf_generate(backend, items, sources, n, "sdpa", keep_attentions=False)
    return Measurement("plain", length, n, wall_s=end - start, first_token_s=first - start, prefill_s=first - ready,
                       per_token_s=(end - first) / max(1, n - 1), peak_mb=mem.added_mb)


def run_ours(signal: str) -> Callable[..., Measurement]:
    def run(backend: Backend, items, sources: SourceConfig, n: int) -> Measurement:
        tracer = Tracer(backend, signal=signal, sources=sources)
        with PeakMemory(backend.input_device) as mem:
            result = tracer.trace(items, generation=GenerationConfig(max_new_tokens=n, min_new_tokens=n))
        t = result.timings
        return Measurement(signal, result.prompt_tokens, len(result.tokens), wall_s=t["total_s"],
                           first_token_s=t["first_token_s"], prefill_s=t["first_token_s"] - t["prepare_s"],
                           per_token_s=(t["total_s"] - t["first_token_s"]) / max(1, len(result.tokens) - 1),
                           peak_mb=mem.added_mb)
    return run


def _attention_map_bytes(backend: Backend, length: int) -> int:
    config = backend.text_model_config()
    element = torch.finfo(backend.model.dtype).bits // 8 if backend.model.dtype.is_floating_point else 4
    return config.num_attention_heads * length * length * element


def run_naive_attention(backend: Backend, items, sources: SourceConfig, n: int, length: int) -> Measurement:
    layers = backend.num_layers
    predicted = _attention_map_bytes(backend, length) * (layers + 3)
    if predicted > 0.75 * available_bytes(backend.input_device):
        return Measurement("naive_attention", length, n, status="oom",
                           note=f"predicted {predicted / 2**30:.1f} GiB of attention maps")
    try:
        with PeakMemory(backend.input_device) as mem:
            start, ready, first, end, length, out = _hf_generate(backend, items, sources, n, "eager",
                                                                 keep_attentions=True)
            del out
    except (torch.OutOfMemoryError, MemoryError) as exc:
        return Measurement("naive_attention", length, n, status="oom", note=type(exc).__name__)
    return Measurement("naive_attention", length, n, wall_s=end - start, first_token_s=first - start,
                       prefill_s=first - ready, per_token_s=(end - first) / max(1, n - 1), peak_mb=mem.added_mb)


def run_naive_attgrads(backend: Backend, items, sources: SourceConfig, n: int, length: int,
                       tokens: Sequence[int], budget_s: float, estimate_s: float, generation_s: float) -> Measurement:
    """After plain generation (``generation_s``), a full teacher-forced forward + backward per
    token with the media re-encoded each time, as the reference implementation does.

    Runs ``len(tokens)`` tokens and projects the gradient part to ``n`` tokens.
    """
    layers = backend.num_layers
    predicted = _attention_map_bytes(backend, length) * 3 * layers
    if predicted > 0.75 * available_bytes(backend.input_device):
        return Measurement("naive_attgrads", length, n, status="oom",
                           note=f"predicted {predicted / 2**30:.1f} GiB for maps and their graph")
    if estimate_s * len(tokens) > budget_s:
        return Measurement("naive_attgrads", length, n, status="skipped",
                           note=f"projected {estimate_s * len(tokens):.0f} s > budget {budget_s:.0f} s")
    model = backend.model
    try:
        with PeakMemory(backend.input_device) as mem, _with_attention(backend, "eager"):
            start = time.perf_counter()
            prepared = backend.prepare(items, sources)
            kwargs = backend.generate_kwargs(prepared)
            model.requires_grad_(True)  # as a loaded model is by default
            firsts = []
            for t, token in enumerate(tokens):
                ids = torch.cat([prepared.input_ids, torch.tensor([list(tokens[:t])], dtype=torch.long,
                                                                  device=prepared.input_ids.device)], dim=1)
                step_kwargs = {**kwargs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
                out = model(**step_kwargs, output_attentions=True)
                logit = out.logits[0, -1, token]
                (grad,) = torch.autograd.grad(logit, out.attentions[-1])
                (out.attentions[-1][0, :, -1] * grad[0, :, -1]).sum(0).clamp_min(0).detach()
                del out, grad, logit
                firsts.append(time.perf_counter())
    except (torch.OutOfMemoryError, MemoryError) as exc:
        return Measurement("naive_attgrads", length, n, status="oom", note=type(exc).__name__)
    finally:
        model.requires_grad_(False)
    per_token = (firsts[-1] - start) / len(tokens)
    return Measurement("naive_attgrads", length, n, wall_s=generation_s + per_token * n,
                       first_token_s=generation_s + firsts[0] - start, per_token_s=per_token,
                       peak_mb=mem.added_mb, note=f"gradients measured on {len(tokens)} tokens, projected to {n}")
