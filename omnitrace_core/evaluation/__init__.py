"""Evaluation: how good attributions are, against labels and by verification (``omnitrace evaluate``).

- :mod:`.metrics`: Time-F1 and span-level set F1 (the paper's section 4.1);
- :mod:`.groundtruth`: the documented ground-truth JSON format;
- :mod:`.predictions`, :mod:`.outputs`, :mod:`.scoring`: traces -> predicted sources, answers right or
  wrong, scores per task and modality;
- :mod:`.baselines`: the paper's post-hoc baselines on the same outputs and units;
- :mod:`.faithfulness`: each method's citations against what removing units measurably does;
- :mod:`.runner`, :mod:`.report`: the whole evaluation and its Markdown tables;
- :mod:`.speech_eval`: time bins vs speech segments (``omnitrace speech-eval``).

The task generator and the frozen benchmark are :mod:`omnitrace_core.tasks`.
"""

from .metrics import PRF, mean_prf, set_f1, time_bins, time_f1

__all__ = ["PRF", "mean_prf", "set_f1", "time_bins", "time_f1"]
