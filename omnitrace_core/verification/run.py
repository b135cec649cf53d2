"""``verify``: measure a result's unit effects, its sentences' checks and tile heat maps, with progress and stop."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .ablation import Removal
from .forcing import Stopped
from .metrics import check_sets, scopes, sentence_check
from .records import DEFAULT_THRESHOLD, MODES, TileEffects, Verification
from .verifier import Verifier

Progress = Callable[[int, int], None]  # (removals scored so far, removals to score)


def _indices(values: Sequence[int] | None, count: int, what: str) -> list[int]:
    if values is None:
        return list(range(count))
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < count:
            raise InputError(f"{what} {v!r} does not exist: this result has {count} ({what}s 0..{count - 1})")
        out.append(int(v))
    return sorted(set(out))


def sentence_rankings(result: Any) -> list[dict[int, float]]:
    """Per output sentence, each unit's summed signal mass over the sentence's tokens (the result's own signal)."""
    unit_sum, _ = result.unit_scores()
    return [dict(enumerate(unit_sum[s.token_start:s.token_end].sum(axis=0).tolist())) for s in result.spans]


def _pick_image(result: Any, sentences: Sequence[int], image: int | None) -> int:
    images = [u.index for u in result.units if u.modality == "image"]
    if image is not None:
        if image not in images:
            raise InputError(f"unit {image!r} is not an image; image units of this result: {images or 'none'}")
        return image
    cited = [(src.share, src.unit) for k in sentences for src in result.spans[k].sources if src.modality == "image"]
    if cited:
        return max(cited)[1]
    if len(images) == 1:
        return images[0]
    raise InputError(f"units='tiles' needs image=<unit index>: the sentence cites no image and the result has "
                     f"{len(images)} image units ({images or 'none'})")


def _check_plans(result: Any, chosen: Sequence[int], curated: Sequence[Sequence[int]],
                 rankings: Sequence[Mapping[int, float]], ks: tuple[int, ...], previous: Verification | None,
                 reuse: bool) -> dict[int, dict[tuple, frozenset[int]]]:
    """Per sentence whose checks are to be made, the unit sets they remove; a check ``previous`` holds for
    the same citation and k is reused (when ``reuse``: the rankings are the result's own)."""
    pools = scopes(result.units)
    plans = {}
    for k in chosen:
        before = previous.check(k) if previous is not None and reuse else None
        if before is None or before.curated != tuple(sorted(set(curated[k]))) or previous.top_k != ks:
            plans[k] = check_sets(curated[k], pools, rankings[k], ks)
    return plans


def verify(backend: Any, result: Any, items: Sequence[Any] | None = None, *, mode: str = "input",
           sentences: Sequence[int] | None = None, units: Sequence[int] | str | None = None,
           image: int | None = None, curated: Sequence[Sequence[int]] | None = None,
           rankings: Sequence[Mapping[int, float]] | None = None, checks: bool | None = None,
           top_k: Sequence[int] = (1, 3), threshold: float = DEFAULT_THRESHOLD,
           previous: Verification | None = None, progress: Progress | None = None,
           stop: threading.Event | None = None, system_prompt: str | None = None,
           media_root: str | Path | None = None, batch_size: int = 8) -> Verification:
    """Measure what removing source units does to the output sentences of ``result``.

    Args:
        backend: the backend of the model that generated ``result``.
        result: a :class:`~omnitrace_core.TraceResult`.
        items: its input items (default: rebuilt from the result's item records).
        mode: "input" (change the input and re-encode) or "knockout" (block attention to the unit).
        sentences: span indices to check (default: all). Unit effects are measured for every
            sentence anyway: one forward per removed unit scores the whole output.
        units: unit indices to measure (default: all), or "tiles" for the tiles of one image.
        image: the image unit of ``units="tiles"`` (default: the image the sentences cite most).
        curated: per sentence of the result, the units whose checks to make (default: its curated sources).
        rankings: per sentence, unit -> score ranking the units for the top-k drop (default: the
            result's own signal mass over the sentence's tokens).
        checks: make the sentence checks (default: unless ``units="tiles"``).
        top_k: the k of the top-k removal drops.
        threshold: nats above which an effect is strong (stored; used by ``flags``).
        previous: a verification of the same result and mode whose measurements (unit effects, checks,
            tile maps of the asked sentences) are reused.
        progress: called as ``progress(done, total)`` after every decoder call.
        stop: set it to stop between decoder calls; the verification then holds what was finished
            (``stopped=True``).
        system_prompt, media_root: as for tracing / for finding media files.
        batch_size: most removals per decoder call.

    Returns:
        A :class:`Verification` with only this call's measurements (merge it with ``previous``
        to combine: :meth:`Verification.merge`).
    """
    if mode not in MODES:
        raise InputError(f"unknown verification mode {mode!r}; modes: {', '.join(MODES)}")
    ks = tuple(sorted({int(k) for k in top_k}))
    if not ks or ks[0] < 1:
        raise InputError(f"top_k must list k >= 1, got {list(top_k)}")
    if previous is not None and previous.mode != mode:
        previous = None
    started = time.perf_counter()
    chosen = _indices(sentences, len(result.spans), "sentence")
    tiles = isinstance(units, str)
    if tiles and units != "tiles":
        raise InputError(f"units must be unit indices or 'tiles', got {units!r}")
    columns = [] if tiles else _indices(units, len(result.units), "unit")
    checks = (not tiles) if checks is None else checks
    if curated is None:
        curated = [tuple(src.unit for src in span.sources) for span in result.spans]
    own_rankings = rankings is None
    if rankings is None:
        rankings = sentence_rankings(result)

    known = {} if previous is None else {u: k for k, u in enumerate(previous.units)}
    todo_columns = [u for u in columns if u not in known]
    plans = _check_plans(result, chosen, curated, rankings, ks, previous, own_rankings) if checks else {}
    image_unit = _pick_image(result, chosen, image) if tiles else None
    grid = result.items[result.units[image_unit].item].grid if tiles else None
    if tiles and grid is None:
        raise InputError(f"image unit {image_unit} has no tile grid in this result")
    # a held map is reused: its drops do not depend on the threshold (a display setting), only on the mode
    held_maps = previous is not None and all(
        previous.tile_map(k, image_unit) is not None and previous.tile_map(k, image_unit).grid == tuple(grid)
        for k in chosen)
    tile_removals = [Removal(tiles=frozenset([(image_unit, t)])) for t in range(grid[0] * grid[1])] \
        if tiles and not held_maps else []
    wanted = [Removal(frozenset([u])) for u in todo_columns] + tile_removals + [
        Removal(s) for plan in plans.values() for s in plan.values()
        if s and not (len(s) == 1 and next(iter(s)) in known)]
    wanted = list(dict.fromkeys(wanted))
    if previous is not None and not wanted:  # everything asked for is measured already
        return replace(previous, units=(), effects=np.zeros((len(previous.logp), 0)),
                       changed=np.zeros((len(previous.logp), 0), dtype=bool), sentences=(), tiles=(),
                       threshold=float(threshold), cost={}, stopped=False)

    verifier = Verifier.for_result(backend, result, items, mode=mode, system_prompt=system_prompt,
                                   media_root=media_root, batch_size=batch_size, stop=stop)
    done = [0]

    def tick(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress(done[0], len(wanted))

    if progress is not None:
        progress(0, len(wanted))
    stopped = False
    try:
        verifier.score(wanted, tick)
    except Stopped:
        stopped = True

    measured = [u for u in todo_columns if verifier.known(Removal(frozenset([u])))]
    effects, changed = verifier.drops([Removal(frozenset([u])) for u in measured])
    drop_of: dict[frozenset[int], np.ndarray] = {}
    if previous is not None:
        for unit, k in known.items():
            drop_of[frozenset([unit])] = previous.effects[:, k]
    for what in (w for w in wanted if verifier.known(w) and not w.tiles):
        drop_of[what.units] = verifier.drops([what])[0][0]
    sentence_checks = []
    for k, plan in plans.items():
        if all(not s or s in drop_of for s in plan.values()):
            sentence_checks.append(sentence_check(k, curated[k], plan, {s: d[k] for s, d in drop_of.items()}))
    tile_maps = []
    if tile_removals and all(verifier.known(r) for r in tile_removals):
        tile_drops, tile_changed = verifier.drops(tile_removals)
        tile_maps = [TileEffects(sentence=k, unit=image_unit, grid=tuple(grid), effects=tile_drops[:, k],
                                 changed=tile_changed[:, k]) for k in chosen]
    cost = verifier.cost.to_dict()
    cost["seconds"] = time.perf_counter() - started
    return Verification(mode=mode, units=tuple(measured), logp=verifier.sentence_logp(), effects=effects.T,
                        changed=changed.T, sentences=tuple(sentence_checks), tiles=tuple(tile_maps),
                        threshold=float(threshold), top_k=ks, cost=cost, stopped=stopped)
