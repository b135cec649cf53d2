"""Training the bundled demo model (``omnitrace train-demo``): not needed to trace.

- :mod:`.demo_model`: its spec, builder and model card (a tiny Qwen2.5-Omni thinker);
- :mod:`.train`: the seeded training run on generated tasks (:mod:`omnitrace_core.tasks`);
- :mod:`.aux_targets`: auxiliary probes trained beside it and then discarded.
"""
