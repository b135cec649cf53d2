"""What a result's verification says about each output sentence, as data for the explorer's page (pure).

:func:`verification_payload` turns ``TraceResult.verification`` (see ``omnitrace_core.verification``)
into the JSON that ``components/static/verification.js`` draws in the detail panel: beside each
curated source its measured effect, a bar chart of every verified unit's effect, the flags
("cited, no measurable effect", "not cited, strong effect"), the checks and the tile heat maps.
Flags are computed against the sentence's *current* curated sources, so they follow the curation
knobs; a check made for another citation is marked stale. Numbers only: every label reaches the
page through the unit list of the explorer's payload, written with ``textContent``.
"""

from __future__ import annotations

from typing import Any

from omnitrace_core import TraceResult

#: The question each removal mode answers (one line, shown beside the mode choice and in the panel).
MODE_QUESTIONS = {
    "input": "input: does the unit's content matter? It is removed from the input (text dropped, image "
             "flattened, audio silenced, video greyed) and the input re-encoded.",
    "knockout": "knockout: does the language model read the unit? Every decoder layer is kept from attending "
                "to it; cheap, but content an encoder spread to other positions still acts.",
}


def _round(value: float) -> float:
    return round(float(value), 4)


def _scoped(values: dict, scope: str = "all") -> float | None:
    value = values.get(scope)
    return None if value is None else _round(value)


def span_verification(result: TraceResult, index: int) -> dict[str, Any] | None:
    """One sentence's measurements, or None when the result holds no verification.

    Returns:
        ``effects``: [unit, drop in nats, changed (0/1)] per verified unit, in unit order; ``flags``:
        ``cited_no_effect`` and ``uncited_strong`` unit lists against the current curated sources;
        ``check``: comprehensiveness, sufficiency and top-k drops over all units (``stale`` when they
        were made for another citation) or None if the sentence was not checked; ``tiles``: the tile
        heat maps of images for this sentence (``unit``, ``item``, ``grid``, ``effects``, ``changed``).
    """
    v = result.verification
    if v is None:
        return None
    curated = [s.unit for s in result.spans[index].sources]
    effects = [[int(u), _round(v.effects[index, k]), int(bool(v.changed[index, k]))] for k, u in enumerate(v.units)]
    flags = {name: [int(u) for u in units] for name, units in v.flags(index, curated).items()}
    check = v.check(index)
    checked = None
    if check is not None:
        checked = {"comp": _scoped(check.comprehensiveness), "suff": _scoped(check.sufficiency),
                   "top": {str(k): _round(d) for k, d in sorted(check.top_k.get("all", {}).items())},
                   "curated": list(check.curated), "stale": tuple(check.curated) != tuple(sorted(set(curated)))}
    tiles = [{"unit": int(t.unit), "item": int(result.units[t.unit].item), "grid": [int(n) for n in t.grid],
              "effects": [_round(e) for e in t.effects], "changed": [int(bool(c)) for c in t.changed]}
             for t in v.tiles if t.sentence == index]
    return {"logp": _round(v.logp[index]), "effects": effects, "flags": flags, "check": checked, "tiles": tiles}


def verification_payload(result: TraceResult) -> dict[str, Any] | None:
    """The verification's header for the page (mode, its question, threshold, coverage, cost), or None."""
    v = result.verification
    if v is None:
        return None
    cost = {k: (round(float(value), 1) if k == "seconds" else int(value)) for k, value in v.cost.items()}
    return {"mode": v.mode, "question": MODE_QUESTIONS[v.mode], "threshold": _round(v.threshold),
            "units": len(v.units), "of": len(result.units), "checked": len(v.sentences),
            "top_k": [int(k) for k in v.top_k], "cost": cost, "stopped": bool(v.stopped)}


def verification_summary(result: TraceResult) -> str:
    """One plain-text line on what ``result``'s verification holds ("" before one): shown under the output's
    caption, in the app and in the report (callers escape it). Flags count against the current curation."""
    v = result.verification
    if v is None:
        return ""
    flagged = sum(1 for k in range(len(result.spans))
                  if any(v.flags(k, [s.unit for s in result.spans[k].sources]).values()))
    parts = [f"Verified ({v.mode} mode): {len(v.units)} of {len(result.units)} units measured",
             f"{len(v.sentences)} of {len(result.spans)} sentences checked", f"{flagged} flagged",
             f"{int(v.cost.get('forwards', 0))} forwards, {float(v.cost.get('seconds', 0.0)):.1f} s"]
    if v.stopped:
        parts.append("stopped: what was measured is kept")
    return " \u00b7 ".join(parts)
