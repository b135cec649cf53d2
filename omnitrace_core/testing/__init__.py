"""Fixtures for tests, developer tools and benchmarks (as ``captum.testing``): nothing here traces.

- :mod:`.tiny_qwen2_5_omni`: a small, structurally real Qwen2.5-Omni thinker checkpoint built
  offline (its processor and config builders also make the demo model and the cost benchmark's
  models); :mod:`.tiny_tokenizer`: the Qwen2.5-Omni tokenizer rebuilt offline, which they use;
- :mod:`.synthetic`: traces with hand-set scores over a real result's inputs (known sources).
"""
