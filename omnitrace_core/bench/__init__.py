"""Benchmark: what tracing costs over plain generation, in time and memory, side by side.

``python -m omnitrace_core.bench`` runs, per context length, on one random-weight Qwen2.5-Omni
model and one mixed-media input: plain SDPA generation (the baseline), the naive way of tracing
(eager ``generate(output_attentions=True)`` keeping the prefill maps; a full re-forward and
backward per token for gradients) and this engine with each signal. See ``--help``.
"""
