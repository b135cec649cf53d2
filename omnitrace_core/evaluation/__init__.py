"""Evaluation: attribution metrics (:mod:`.metrics`) and comparisons built on them (:mod:`.speech_eval`)."""

from .metrics import PRF, mean_prf, set_f1, time_bins, time_f1

__all__ = ["PRF", "mean_prf", "set_f1", "time_bins", "time_f1"]
