"""No tensor of L x L elements is ever created while tracing (prefill and decode alike)."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from omnitrace_core import AudioItem, GenerationConfig, ImageItem, SourceConfig, TextItem
from omnitrace_core.capture import AttentionRecorder, recording


class SquareProbe(TorchDispatchMode):
    """Records, over every tensor an aten op returns, the largest *second-largest* dimension.

    An attention map over the context has two dimensions of about L; activations, features and
    weights grow in at most one dimension with the context.
    """

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(value, torch.Tensor) and value.dim() >= 2:
                self.largest = max(self.largest, sorted(value.shape)[-2])
        return out


def _items(media):
    return [TextItem("Describe everything in detail. " * 20), ImageItem(str(media["image_a"])),
            AudioItem(str(media["audio"]))]


@pytest.mark.parametrize("signal", ["attmean", "attgrads"])
def test_traced_generation_allocates_no_context_squared_tensor(tracer, media, signal, monkeypatch):
    """Every model call of a traced generation (prefill, decode steps, their backward) is probed.

    The processor is left out on purpose: Whisper's feature extractor pads audio to its 300 s
    window, which is large but linear in nothing the model does.
    """
    backend = tracer.backend
    prepared = backend.prepare(_items(media), SourceConfig())
    L = prepared.length
    widest_weight = max(sorted(p.shape)[-2] for p in backend.model.parameters() if p.dim() >= 2)
    assert L > 2 * widest_weight, "prompt too short for the probe to tell maps from weights"
    probe = SquareProbe()
    calls = []
    for name in ("prefill", "step"):
        original = getattr(backend, name)

        def probed(*args, _original=original, **kwargs):
            calls.append(1)
            with probe:
                return _original(*args, **kwargs)

        monkeypatch.setattr(backend, name, probed)
    result = tracer.trace(_items(media), signal=signal, generation=GenerationConfig(max_new_tokens=3))
    assert len(result.tokens) >= 1 and len(calls) >= 2
    assert 0 < probe.largest < L // 2


def test_probe_detects_the_naive_eager_maps(tracer, media):
    """Control: the reference way (eager attention, output_attentions) does allocate L x L maps."""
    backend = tracer.backend
    prepared = backend.prepare(_items(media), SourceConfig())
    L = prepared.length
    backend.model.set_attn_implementation({"text_config": "eager"})
    try:
        with SquareProbe() as probe, torch.no_grad():
            backend.model(input_ids=prepared.input_ids, position_ids=prepared.extras["position_ids"],
                          output_attentions=True, **prepared.model_inputs)
    finally:
        backend._use_capture_attention()
    assert probe.largest >= L


def test_recorder_rejects_a_layer_that_never_ran():
    recorder = AttentionRecorder([0, 1])
    with recording(recorder):
        recorder.record(0, torch.ones(2, 5))
    with pytest.raises(RuntimeError, match=r"layers \[1\]"):
        recorder.rows_for([0, 1])


def test_capture_is_per_context(tracer, media):
    """A recorder active in one thread does not receive another thread's steps."""
    import threading

    other = AttentionRecorder(range(tracer.backend.num_layers))
    seen_in_thread = []

    def run():
        with recording(other):
            seen_in_thread.append(len(other.rows))

    with recording(AttentionRecorder([0])):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        tracer.trace([TextItem("Hello there.")], generation=GenerationConfig(max_new_tokens=2))
    assert seen_in_thread == [0] and other.rows == {}


@pytest.mark.parametrize("signal", ["attmean", "attgrads"])
def test_no_recorder_stays_active_after_a_run_that_raised(tracer, media, monkeypatch, signal):
    """A decode step that raises mid-run leaves no recorder behind: later forwards are plain SDPA again."""
    from omnitrace_core import capture

    steps = []
    original = tracer.backend.step

    def failing_step(*args, **kwargs):
        steps.append(capture._ACTIVE_RECORDER.get())
        if len(steps) == 2:
            raise RuntimeError("out of memory in step 2")
        return original(*args, **kwargs)

    monkeypatch.setattr(tracer.backend, "step", failing_step)
    with pytest.raises(RuntimeError, match="step 2"):
        tracer.trace(_items(media), signal=signal, generation=GenerationConfig(max_new_tokens=4))
    assert all(isinstance(r, AttentionRecorder) for r in steps)  # each step ran with its recorder
    assert capture._ACTIVE_RECORDER.get() is None and torch.is_grad_enabled()
    monkeypatch.undo()
    assert len(tracer.trace(_items(media), signal=signal, generation=GenerationConfig(max_new_tokens=2)).tokens) == 2
