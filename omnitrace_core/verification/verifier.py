"""One output's verification session: its inputs prepared once, every removal scored once and kept.

:class:`Verifier` is the low-level engine (used by :func:`~omnitrace_core.verification.verify`, the
``occlusion`` signal and the faithfulness evaluation): give it removals, get per-sentence drops
and changes (or per-token drops); scores are cached per removal, so several methods' checks on
the same output share every forward they have in common.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import SourceConfig
from ..errors import InputError, MediaError
from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem
from ..sources import SourceSet, build_sources
from .ablation import Ablator, Removal
from .forcing import Cost, Scored, Stopped, TeacherForcer, Variant
from .metrics import Spans, sentence_changed, sentence_sums

_MEDIA = {"image": ImageItem, "audio": AudioItem, "video": VideoItem}


def items_from_result(result: Any, media_root: str | Path | None = None) -> list[Item]:
    """The input items a result was traced from, rebuilt from its item records.

    Media paths are used as recorded; a relative one that does not exist is looked up under
    ``media_root``. Raises MediaError naming a media file that cannot be found, InputError for
    media traced from memory (pass the items themselves then).
    """
    items: list[Item] = []
    for info in result.items:
        if info.modality == "text":
            items.append(TextItem(info.text or "", is_prompt=info.is_prompt))
            continue
        if info.path is None:
            raise InputError(f"item {info.index} ({info.label}) was traced from memory, not from a file: pass the "
                             "input items to verify it")
        path = Path(info.path)
        if not path.exists() and media_root is not None and (Path(media_root) / path).exists():
            path = Path(media_root) / path
        if not path.exists():
            where = f" or under '{media_root}'" if media_root is not None else ""
            raise MediaError(f"{info.modality} file '{info.path}' of item {info.index} does not exist (looked for it "
                             f"as recorded{where}); pass media_root (CLI: --media-root) or the questions file")
        items.append(_MEDIA[info.modality](str(path), name=info.label))
    return items


def _unit_key(unit: Any) -> tuple:
    times = tuple(None if t is None else round(float(t), 4) for t in (unit.time_start, unit.time_end))
    return unit.modality, unit.item, unit.char_start, unit.char_end, times


def result_sources(result: Any, items: Sequence[Item], prepared: Any) -> SourceSet:
    """The result's source units with their position map for ``prepared`` (speech segments from the result).

    Raises InputError when the re-prepared input gives other units or another prompt length than the
    trace (other items, other settings, other media files).
    """
    from ..speech import SpeechSegment

    if result.prompt_tokens and prepared.length != result.prompt_tokens:
        raise InputError(f"the inputs give a prompt of {prepared.length} tokens, the trace has {result.prompt_tokens}: "
                         "verify with the items, media and settings the result was traced with")
    segments = {}
    for info in result.items:
        if info.media.get("audio_units") == "segments":
            segments[info.index] = [SpeechSegment(u.time_start, u.time_end, u.text) for u in result.units
                                    if u.item == info.index and u.text is not None]
    sources = build_sources(prepared.layout, items, result.source_config, labels=prepared.labels, segments=segments)
    if [_unit_key(u) for u in sources.units] != [_unit_key(u) for u in result.units]:
        raise InputError(f"the inputs give {len(sources.units)} source units that differ from the trace's "
                         f"{len(result.units)}: verify with the items and settings the result was traced with")
    return sources


class Verifier:
    """Scores removals of source units from one generation by teacher forcing (see the package docstring).

    Args:
        backend: the loaded backend that generated the output.
        items: the input items.
        prepared: ``backend.prepare(items, source_config)`` (the unablated input).
        sources: its source units and position map.
        generated: the generated token ids (EOS excluded).
        spans: token ranges [start, end) of the output sentences.
        mode: "input" or "knockout".
        source_config, system_prompt: as used for tracing.
        batch_size, max_batch_tokens: batching of the decoder calls.
        stop: set it (from another thread) to stop between decoder calls (:class:`Stopped` is raised).
    """

    def __init__(self, backend: Any, items: Sequence[Item], prepared: Any, sources: SourceSet,
                 generated: Sequence[int], spans: Spans, *, mode: str = "input",
                 source_config: SourceConfig = SourceConfig(), system_prompt: str | None = None,
                 batch_size: int = 8, max_batch_tokens: int = 32768, stop: threading.Event | None = None) -> None:
        if not len(generated):
            raise InputError("the result has no generated tokens to verify")
        self.backend = backend
        self.generated = list(generated)
        self.spans = [(int(a), int(b)) for a, b in spans]
        self.units = sources.units
        self.mode = mode
        self.stop = stop
        started = time.perf_counter()
        self.ablator = Ablator(mode, backend, items, prepared, sources, source_config, system_prompt)
        embeds, positions = backend.lm_inputs(prepared, self.generated)
        self.forcer = TeacherForcer(backend, embeds, positions, prepared.length, self.generated, batch_size,
                                    max_batch_tokens)
        self._scored: dict[Removal, Scored] = {Removal(): self.forcer.base}
        self._seconds = time.perf_counter() - started  # wall-clock: encodes, forwards, bookkeeping

    @classmethod
    def for_result(cls, backend: Any, result: Any, items: Sequence[Item] | None = None, *,
                   system_prompt: str | None = None, media_root: str | Path | None = None,
                   **kwargs: Any) -> "Verifier":
        """A verifier of ``result`` (items rebuilt from it when not given; see :func:`items_from_result`)."""
        items = list(items) if items is not None else items_from_result(result, media_root)
        prepare_kwargs = {} if system_prompt is None else {"system_prompt": system_prompt}
        prepared = backend.prepare(items, result.source_config, **prepare_kwargs)
        sources = result_sources(result, items, prepared)
        spans = [(s.token_start, s.token_end) for s in result.spans]
        return cls(backend, items, prepared, sources, [t.token_id for t in result.tokens], spans,
                   source_config=result.source_config, system_prompt=system_prompt, **kwargs)

    @property
    def cost(self) -> Cost:
        return Cost(forwards=self.forcer.cost.forwards, batches=self.forcer.cost.batches,
                    encodes=self.ablator.encodes, seconds=self._seconds)

    @property
    def base(self) -> Scored:
        return self.forcer.base

    def known(self, what: Removal) -> bool:
        return what in self._scored

    def score(self, removals: Sequence[Removal], on_batch: Callable[[int], None] | None = None) -> list[Scored]:
        """Teacher-forced scores under each removal (cached); raises :class:`~.forcing.Stopped` when stopped."""
        todo = list(dict.fromkeys(r for r in removals if r not in self._scored))
        step = self.forcer.batch_size
        started = time.perf_counter()
        try:
            for lo in range(0, len(todo), step):
                if self._stopped():  # before re-encoding the next chunk's media
                    raise Stopped
                chunk = todo[lo:lo + step]
                variants = [self._variant(r) for r in chunk]
                for what, scored in zip(chunk, self.forcer.run(variants, self._stopped, on_batch)):
                    self._scored[what] = scored
        finally:
            self._seconds += time.perf_counter() - started
        return [self._scored[r] for r in removals]

    def drops(self, removals: Sequence[Removal], on_batch: Callable[[int], None] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(R, S) drop of each sentence's log-probability under each removal, and (R, S) whether it changes."""
        scored = self.score(removals, on_batch)
        base = self.base
        drops = np.stack([sentence_sums(base.logp - s.logp, self.spans) for s in scored]) if scored else \
            np.zeros((0, len(self.spans)))
        changed = np.stack([sentence_changed(s.choice, base.choice, self.spans) for s in scored]) if scored else \
            np.zeros((0, len(self.spans)), dtype=bool)
        return drops, changed

    def token_drops(self, units: Sequence[int], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """(T, len(units)) drop of each generated token's log-probability when each unit alone is removed."""
        scored = self.score([Removal(frozenset([u])) for u in units], on_batch)
        return np.stack([self.base.logp - s.logp for s in scored], axis=1) if scored else \
            np.zeros((len(self.generated), 0))

    def sentence_logp(self) -> np.ndarray:
        """(S,) log-probability of each sentence as generated."""
        return sentence_sums(self.base.logp, self.spans)

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _variant(self, what: Removal) -> Variant:
        blocked = self.ablator.blocked(what)
        if not self.ablator.needs_encoding(what):
            return Variant(blocked=blocked)
        embeds, positions = self.backend.lm_inputs(self.ablator.edited_input(what), self.generated)
        return Variant(embeds=embeds, positions=positions, blocked=blocked)
