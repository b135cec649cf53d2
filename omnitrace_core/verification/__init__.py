"""Verification: measure what each source unit really does to each output sentence.

An attribution says which inputs a sentence draws on; verification removes them and measures.
Every measurement teacher-forces the generated tokens and reads the drop in each sentence's
log-probability (positive: removing the unit makes the sentence less likely) and whether its
greedy output changes. One forward per removed unit scores the whole output; forwards are
batched and reuse the unablated prompt's KV cache up to the first changed position.

- :mod:`.ablation`: what removing a unit means in each mode (``input``: change the input and
  re-encode; ``knockout``: block attention to the unit's positions) and the question each answers;
- :mod:`.forcing`: teacher forcing with shared-prefix reuse and batching; its cost;
- :mod:`.verifier`: one output's session (inputs prepared once, every removal scored once);
- :mod:`.metrics`: comprehensiveness, sufficiency, top-k drop, rank correlation (pure);
- :mod:`.records`: :class:`Verification`, stored on a result and round-tripped through JSON;
- :func:`verify`: the whole measurement, with progress and a stop event (``Tracer.verify``).
"""

from .ablation import Removal, removal
from .forcing import Cost, Stopped
from .metrics import spearman
from .records import ALL, DEFAULT_THRESHOLD, MODES, SentenceCheck, TileEffects, Verification
from .run import sentence_rankings, verify
from .verifier import Verifier, items_from_result

__all__ = ["ALL", "Cost", "DEFAULT_THRESHOLD", "MODES", "Removal", "SentenceCheck", "Stopped", "TileEffects",
           "Verification", "Verifier", "items_from_result", "removal", "sentence_rankings", "spearman", "verify"]
