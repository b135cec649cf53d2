"""Known-truth tasks: generated interleaved inputs whose supporting sources are known by construction.

- :mod:`.families`: the eight task families (text, image, audio and video; QA and descriptions);
- :mod:`.synth`: their procedural media (flat shapes, synthetic sound events, short videos);
- :mod:`.benchmark`: the frozen benchmark's splits written as media files, official-format JSON
  and ground truth (``python -m omnitrace_core.tasks.benchmark --out DIR`` rewrites it byte for byte).

The demo model trains on them (:mod:`omnitrace_core.training`) and the evaluation scores on the
benchmark (:mod:`omnitrace_core.evaluation`).
"""

from .families import TASK_NAMES, TaskSample, generate

__all__ = ["TASK_NAMES", "TaskSample", "generate"]
