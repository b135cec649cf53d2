"""Verification on the tiny Qwen2.5-Omni and the demo model: exact teacher forcing, removals, checks, cost."""

from __future__ import annotations

import contextlib
import json
import threading

import numpy as np
import pytest
import torch

from omnitrace_core import (AudioItem, GenerationConfig, ImageItem, InputError, SourceConfig, TextItem,
                            TraceResult, VideoItem)
from omnitrace_core.verification import (ALL, SentenceCheck, Verification, Verifier, removal, spearman,
                                         verify)
from omnitrace_core.verification.metrics import check_sets, scopes, sentence_check, top_ranked

GEN = GenerationConfig(max_new_tokens=6, min_new_tokens=6)


@pytest.fixture(scope="module")
def traced(tracer, media):
    items = [TextItem("Answer the question.\n", is_prompt=True),
             TextItem("The kite is red. The drum is blue.\nWhich is red?"),
             ImageItem(str(media["image_a"])), AudioItem(str(media["audio"])), VideoItem(str(media["video"]))]
    return items, tracer.trace(items, generation=GEN, sources=SourceConfig(audio_bin_seconds=1.0))


def _full_logp(tracer, prepared, generated):
    """Reference: the whole model (encoders, decoder, LM head) over prompt + generated tokens, no cache."""
    backend = tracer.backend
    ids = torch.cat([prepared.input_ids, torch.tensor([generated[:-1]])], dim=1)
    with torch.no_grad():
        logits = backend.model(input_ids=ids, position_ids=backend.positions_for(prepared, ids.shape[1]),
                               **prepared.model_inputs).logits[0, prepared.length - 1:]
    return torch.log_softmax(logits.double(), -1)[torch.arange(len(generated)), torch.tensor(generated)].numpy()


def _verifier(tracer, result, items, mode, **kwargs):
    return Verifier.for_result(tracer.backend, result, items, mode=mode, **kwargs)


def test_teacher_forcing_equals_the_whole_model(tracer, traced):
    items, result = traced
    generated = [t.token_id for t in result.tokens]
    verifier = _verifier(tracer, result, items, "input")
    reference = _full_logp(tracer, verifier.ablator.prepared, generated)
    np.testing.assert_allclose(verifier.base.logp, reference, atol=1e-4)


@pytest.mark.parametrize("modality", ["text", "image", "audio", "video"])
def test_knockout_equals_a_forward_without_the_unit(tracer, traced, modality):
    """Knocking a unit out = deleting its tokens while every other token keeps its position id."""
    items, result = traced
    unit = next(u.index for u in result.units if u.modality == modality)
    verifier = _verifier(tracer, result, items, "knockout")
    knocked = verifier.score([removal([unit])])[0]

    backend = tracer.backend
    generated = [t.token_id for t in result.tokens]
    embeds, positions = backend.lm_inputs(verifier.ablator.prepared, generated)
    deleted = verifier.ablator.blocked(removal([unit]))
    assert len(deleted) > 0
    keep = torch.as_tensor(np.setdiff1d(np.arange(embeds.shape[1]), deleted))
    # (with a cache, transformers does not read the gap in position ids as a packed-sequence boundary)
    hidden = backend.lm_forward(embeds[:, keep], positions[..., keep], None, backend.new_cache())
    rows = hidden[0, result.prompt_tokens - 1 - len(deleted):]
    logp = torch.log_softmax(backend.lm_logits(rows).double(), -1)[torch.arange(len(generated)),
                                                                    torch.tensor(generated)].numpy()
    np.testing.assert_allclose(knocked.logp, logp, atol=1e-4)
    assert not np.allclose(knocked.logp, verifier.base.logp, atol=1e-6)  # the unit mattered at all


def test_input_mode_drops_text_exactly_as_knockout(tracer, traced):
    items, result = traced
    text = [u.index for u in result.units if u.modality == "text"]
    a = _verifier(tracer, result, items, "input").drops([removal([u]) for u in text])[0]
    b = _verifier(tracer, result, items, "knockout").drops([removal([u]) for u in text])[0]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batching_and_prefix_reuse_change_nothing(tracer, traced):
    """Batched forwards over a reused prefix cache equal one full forward per removal."""
    items, result = traced
    first = {}
    for u in result.units:
        first.setdefault(u.modality, u.index)
    removals = [removal([u]) for u in first.values()] + [removal(list(first.values()))]
    for mode in ("input", "knockout"):
        batched = _verifier(tracer, result, items, mode, batch_size=8).drops(removals)[0]
        plain = _verifier(tracer, result, items, mode, batch_size=1)
        plain.forcer.reuse = False
        np.testing.assert_allclose(batched, plain.drops(removals)[0], atol=2e-4)


def test_input_removals_re_encode_only_what_they_remove(tracer, traced):
    """Silencing an audio second leaves every position before its item untouched; greying all tiles
    of an image is greying the image."""
    items, result = traced
    verifier = _verifier(tracer, result, items, "input")
    ablator = verifier.ablator
    audio = next(u for u in result.units if u.modality == "audio" and u.time_start == 1.0)
    variant = verifier._variant(removal([audio.index]))
    first = verifier.forcer.start(variant)
    layout = ablator.prepared.layout
    assert first >= np.flatnonzero(layout.item == audio.item).min()
    image = next(u for u in result.units if u.modality == "image")
    rows, cols = result.items[image.item].grid
    whole = verifier.drops([removal([image.index])])[0]
    tiles = verifier.drops([removal(tiles=[(image.index, t) for t in range(rows * cols)])])[0]
    np.testing.assert_allclose(whole, tiles, atol=1e-4)


def test_knockout_of_every_tile_is_knockout_of_the_image(tracer, traced):
    items, result = traced
    image = next(u for u in result.units if u.modality == "image")
    rows, cols = result.items[image.item].grid
    verifier = _verifier(tracer, result, items, "knockout")
    whole = verifier.drops([removal([image.index])])[0]
    tiles = verifier.drops([removal(tiles=[(image.index, t) for t in range(rows * cols)])])[0]
    np.testing.assert_allclose(whole, tiles, atol=1e-6)


def test_tile_heat_map(tracer, traced):
    items, result = traced
    image = next(u for u in result.units if u.modality == "image")
    v = tracer.verify(result, units="tiles", image=image.index, sentences=[0], items=items, mode="knockout")
    rows, cols = result.items[image.item].grid
    assert v.units == () and v.sentences == ()
    (heat,) = v.tiles
    assert (heat.sentence, heat.unit, heat.grid) == (0, image.index, (rows, cols))
    assert heat.effects.shape == (rows * cols,) and np.all(np.isfinite(heat.effects))
    assert v.cost["forwards"] == 1 + rows * cols
    stored = result.with_verification(v)
    assert TraceResult.from_json(stored.to_json()).verification.tile_map(0, image.index) == heat
    with pytest.raises(InputError, match="not an image"):
        tracer.verify(result, units="tiles", image=0, items=items)


@contextlib.contextmanager
def _decoder_calls(tracer):
    """The number of sequences of each decoder call made inside the block, counted by a forward hook."""
    sequences = []

    def count(_module, args, kwargs, _out):
        sequences.append(kwargs["inputs_embeds"].shape[0])

    handle = tracer.backend.lm_decoder().register_forward_hook(count, with_kwargs=True)
    try:
        yield sequences
    finally:
        handle.remove()


def test_forwards_are_counted_and_bounded(tracer, traced):
    """Decoder calls and the sequences they score, counted by a hook, match the recorded cost and its bound."""
    items, result = traced
    with _decoder_calls(tracer) as sequences:
        v = tracer.verify(result, items=items, mode="knockout", batch_size=4)
    units, sentences = len(result.units), len(result.spans)
    modalities = len({u.modality for u in result.units})
    assert v.cost["batches"] == len(sequences)
    assert v.cost["forwards"] <= sum(sequences)  # a removal that changes nothing needs no forward
    # stated bound: the output once, each unit once, then per sentence and scope (all + each
    # modality) comprehensiveness, sufficiency and the top-3 drop (the top-1 set is a unit's own)
    assert v.cost["forwards"] <= 1 + units + 3 * sentences * (modalities + 1)
    assert v.units == tuple(range(units)) and len(v.sentences) == sentences

    with _decoder_calls(tracer) as sequences:  # what the result holds is reused, not measured again
        again = tracer.verify(result.with_verification(v), items=items, mode="knockout")
    assert sequences == [] and again == v


def test_verifying_twice_counts_each_forward_once(tracer, traced):
    """Verify, store, verify more, store: the stored cost is every decoder call made, each counted once."""
    items, result = traced
    image = next(u.index for u in result.units if u.modality == "image")
    with _decoder_calls(tracer) as first:
        stored = result.with_verification(tracer.verify(result, items=items, mode="knockout", sentences=[0]))
    with _decoder_calls(tracer) as second:  # new work on top of what the result holds
        v = tracer.verify(stored, items=items, mode="knockout", units="tiles", image=image, sentences=[0])
        stored = stored.with_verification(v)
    assert first and second
    cost = stored.verification.cost
    assert (cost["forwards"], cost["batches"]) == (sum(first) + sum(second), len(first) + len(second))
    assert stored.verification.check(0) is not None and stored.verification.tile_map(0, image) is not None
    assert TraceResult.from_json(stored.to_json()).verification.cost == pytest.approx(cost, abs=1e-3)
    with _decoder_calls(tracer) as third:  # nothing left to measure: nothing runs, nothing is added
        again = stored.with_verification(tracer.verify(stored, items=items, mode="knockout", sentences=[0]))
    assert third == [] and again.verification.cost == cost


def test_held_tile_maps_are_reused(tracer, traced):
    """A tile map the result holds in the same mode is not measured again (another threshold only
    changes what counts as strong); one of the other mode is."""
    items, result = traced
    image = next(u for u in result.units if u.modality == "image")
    rows, cols = result.items[image.item].grid
    v = tracer.verify(result, units="tiles", image=image.index, sentences=[0], items=items, mode="knockout")
    stored = result.with_verification(v)
    with _decoder_calls(tracer) as sequences:
        again = tracer.verify(stored, units="tiles", image=image.index, sentences=[0], items=items, mode="knockout")
        stricter = tracer.verify(stored, units="tiles", image=image.index, sentences=[0], items=items,
                                 mode="knockout", threshold=2.0)
    assert sequences == [] and again == v
    assert stricter.threshold == 2.0 and stricter.tile_map(0, image.index) == v.tile_map(0, image.index)
    assert stricter.cost == v.cost
    with _decoder_calls(tracer) as sequences:
        other = tracer.verify(stored, units="tiles", image=image.index, sentences=[0], items=items, mode="input")
    assert sum(sequences) == other.cost["forwards"] == 1 + rows * cols


def test_progress_and_stop(tracer, traced):
    items, result = traced
    seen = []
    v = tracer.verify(result, items=items, mode="knockout", progress=lambda done, total: seen.append((done, total)),
                      batch_size=2)
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:]))
    stop = threading.Event()
    stop.set()
    stopped = tracer.verify(result, items=items, mode="knockout", stop=stop)
    assert stopped.stopped and stopped.units == () and stopped.sentences == ()
    assert not v.stopped

    midway = threading.Event()  # stopped after the first decoder call: what was measured is kept
    part = tracer.verify(result, items=items, mode="knockout", batch_size=2, stop=midway,
                         progress=lambda done, total: done and midway.set())
    assert part.stopped and len(part.units) == 2 and part.sentences == ()
    np.testing.assert_allclose(part.effects, v.effects[:, list(part.units)], atol=1e-6)


def test_result_round_trip_and_validation(tracer, traced):
    items, result = traced
    v = tracer.verify(result, items=items, mode="knockout", sentences=[0])
    stored = result.with_verification(v)
    back = TraceResult.from_json(stored.to_json())
    assert back == stored and back.verification == v
    assert "verification" not in result.to_dict()  # traces without one are written as before
    data = stored.to_dict()
    data["verification"]["effects"] = data["verification"]["effects"][:-1] if len(result.spans) > 1 else [[1.0]]
    with pytest.raises(InputError, match="effects"):
        TraceResult.from_dict(data)
    data = stored.to_dict()
    data["verification"]["mode"] = "blur"
    with pytest.raises(InputError, match="mode"):
        TraceResult.from_dict(json.loads(json.dumps(data)))
    data = stored.to_dict()
    data["verification"]["units"] = [len(result.units) + 3]
    data["verification"]["effects"] = [[0.0]] * len(result.spans)
    data["verification"]["changed"] = [[False]] * len(result.spans)
    with pytest.raises(InputError, match="unit"):
        TraceResult.from_dict(data)


def test_bad_requests_get_clear_errors(tracer, traced):
    items, result = traced
    with pytest.raises(InputError, match="sentence 99 does not exist"):
        tracer.verify(result, sentences=[99], items=items)
    with pytest.raises(InputError, match="unknown verification mode"):
        tracer.verify(result, mode="blur", items=items)
    with pytest.raises(InputError, match="differ from the trace|prompt of"):
        tracer.verify(result, items=items[:-1])


def test_checks_on_a_hand_worked_table():
    """comprehensiveness / sufficiency / top-k from a table of removal -> sentence drop, worked by hand."""
    from omnitrace_core.sources import SourceUnit

    units = [SourceUnit(0, "text", 1, "a"), SourceUnit(1, "text", 1, "b"),
             SourceUnit(2, "audio", 2, "0-1s", time_start=0, time_end=1),
             SourceUnit(3, "audio", 2, "1-2s", time_start=1, time_end=2)]
    pools = scopes(units)
    assert pools == {ALL: (0, 1, 2, 3), "text": (0, 1), "audio": (2, 3)}
    ranking = {0: 0.1, 1: 0.5, 2: 0.4, 3: 0.0}
    assert top_ranked(ranking, pools[ALL], 3) == (1, 2, 0)
    assert top_ranked(ranking, pools["audio"], 3) == (2,)  # unit 3 has no positive score
    sets = check_sets([1, 2], pools, ranking, (1, 3))
    logp = {frozenset(): -2.0, frozenset({1, 2}): -9.0, frozenset({0, 3}): -2.5, frozenset({1}): -6.0,
            frozenset({0}): -2.2, frozenset({2}): -4.0, frozenset({3}): -2.0, frozenset({0, 1, 2}): -10.0,
            frozenset({0, 1}): -6.2}
    drop = {k: logp[frozenset()] - v for k, v in logp.items()}
    check = sentence_check(0, [2, 1], sets, drop)
    assert check.curated == (1, 2)
    assert check.comprehensiveness == pytest.approx({ALL: 7.0, "text": 4.0, "audio": 2.0})
    assert check.sufficiency == pytest.approx({ALL: 0.5, "text": 0.2, "audio": 0.0})
    assert check.top_k == {ALL: pytest.approx({1: 4.0, 3: 8.0}), "text": pytest.approx({1: 4.0, 3: 4.2}),
                           "audio": pytest.approx({1: 2.0, 3: 2.0})}
    assert SentenceCheck.from_dict(check.to_dict()) == check
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 2]) == pytest.approx(-np.sqrt(3) / 2)
    assert spearman([1, 1], [0, 1]) is None


def test_flags_and_merge():
    v = Verification(mode="input", units=(0, 2), logp=np.array([-1.0, -2.0]),
                     effects=np.array([[3.0, 0.1], [0.0, 2.0]]), changed=np.array([[True, False], [False, True]]),
                     cost={"forwards": 3, "batches": 1, "encodes": 2, "seconds": 0.5})
    assert v.strong(0) == (0,) and v.effect(1, 2) == 2.0 and v.effect(1, 1) is None
    assert v.flags(0, [2, 5]) == {"cited_no_effect": (2,), "uncited_strong": (0,)}
    more = Verification(mode="input", units=(1,), logp=v.logp, effects=np.array([[1.0], [-1.0]]),
                        changed=np.array([[True], [False]]), cost={"forwards": 2, "batches": 1, "encodes": 1,
                                                                   "seconds": 0.25})
    merged = v.merge(more)
    assert merged.units == (0, 1, 2) and merged.effect(1, 1) == -1.0 and merged.effect(0, 0) == 3.0
    assert merged.cost == {"forwards": 5, "batches": 2, "encodes": 3, "seconds": 0.75}
    assert Verification.from_dict(merged.to_dict()) == merged
    with pytest.raises(InputError, match="merge"):
        v.merge(Verification(mode="knockout", units=(), logp=v.logp, effects=np.zeros((2, 0)),
                             changed=np.zeros((2, 0), bool)))


# --------------------------------------------------------------------------------------------
# The demo model on the known-truth benchmark
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_tracer():
    from omnitrace_core import Tracer
    from omnitrace_core.assets import DEFAULT_MODEL_DIR

    return Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")


def _benchmark_samples(task: str, count: int):
    from omnitrace_core.batch import load_questions, media_bases
    from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR
    from omnitrace_core.evaluation.groundtruth import GroundTruth
    from omnitrace_core.inputs import parse_sample

    path = DEFAULT_BENCHMARK_DIR / "test" / "questions.json"
    truth = GroundTruth.load(DEFAULT_BENCHMARK_DIR / "test" / "ground_truth.json")
    raw = [s for s in load_questions(path) if s["task"] == task][:count]
    return [(parse_sample(s, s["id"], media_bases(path)), truth.lookup(s)) for s in raw]


def test_silencing_the_labelled_second_drops_its_sentence_most(demo_tracer):
    """Benchmark audio descriptions: where silencing the labelled second changes the sentence, silencing
    any other second drops that sentence's log-probability less, except the seconds that earlier
    sentences describe: teacher forcing keeps those sentences, and with their evidence gone the kept
    text is false, which disturbs what follows (the demo model enumerates events in order)."""
    checked = 0
    for sample, truth in _benchmark_samples("audio_description", 3):
        result = demo_tracer.trace(sample.items)
        v = demo_tracer.verify(result, mode="input", checks=False)
        audio = [u for u in result.units if u.modality == "audio"]
        described: set[int] = set()
        for gold in truth.spans:
            (label,) = [ref for ref in gold.sources if ref.modality == "audio"]
            labelled = next(u.index for u in audio if u.time_start == label.time_start)
            span = next((s for s in result.spans if s.text.strip() == gold.text), None)
            if span is not None and v.changed[span.index, v.units.index(labelled)]:
                others = [v.effect(span.index, u.index) for u in audio if u.index not in described | {labelled}]
                assert v.effect(span.index, labelled) > max(others), (result.text, gold.text)
                checked += 1
            described.add(labelled)
    assert checked >= 6


# --------------------------------------------------------------------------------------------
# The occlusion signal
# --------------------------------------------------------------------------------------------
def test_occlusion_scores_on_a_hand_worked_table():
    from omnitrace_core.signals.occlusion import occlusion_scores

    drops = np.array([[2.0, -1.0, 6.0], [0.0, -0.5, 0.0]])  # 2 tokens x 3 units
    atom_unit = np.array([0, 2, 2, 1])  # unit 2 has two atoms (say, two tiles)
    out = occlusion_scores(drops, atom_unit)
    np.testing.assert_allclose(out[0], [0.25, 0.375, 0.375, 0.0, 0.25, 0.75, 0.75, 0.0, 0.0])
    np.testing.assert_allclose(out[1], np.zeros(9))  # no removal lowers the token: no evidence


def test_occlusion_signal_traces_through_the_engine(tracer, traced):
    from omnitrace_core import list_signals

    assert "occlusion" in list_signals()
    items, plain = traced
    result = tracer.trace(items, signal="occlusion", generation=GEN, sources=SourceConfig(audio_bin_seconds=1.0))
    assert [t.token_id for t in result.tokens] == [t.token_id for t in plain.tokens]  # generation is untouched
    assert result.signal == "occlusion" and result.timings["post_hoc_s"] > 0
    unit_sum, unit_max = result.unit_scores()
    totals = unit_sum.sum(axis=1)
    assert np.all(unit_sum >= 0) and np.all((np.abs(totals - 1) < 1e-6) | (totals == 0))
    np.testing.assert_allclose(unit_max, unit_sum, atol=1e-6)  # a unit's atoms carry its score whole
    # the same drops measured by a verifier on the attention trace's identical tokens
    verifier = _verifier(tracer, plain, items, "input")
    drops = verifier.token_drops(range(len(plain.units)))
    positive = np.clip(drops, 0, None)
    expected = positive / np.where(positive.sum(1, keepdims=True) > 0, positive.sum(1, keepdims=True), 1)
    np.testing.assert_allclose(unit_sum, expected, atol=1e-4)
    assert TraceResult.from_json(result.to_json()) == result


# --------------------------------------------------------------------------------------------
# Other model families (tiny random models of tests/backends)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_audio", "llava_onevision", "smolvlm"])
def test_other_families_teacher_force_and_knock_out_exactly(family, media):
    """Teacher forcing equals the whole model, and knockout of the media unit equals deleting its tokens."""
    import importlib

    from omnitrace_core import Tracer

    backend = importlib.import_module(f"tests.backends.test_{family}").build_backend()
    tracer = Tracer(backend)
    media_item = ImageItem(str(media["image_a"])) if "image" in backend.modalities else AudioItem(str(media["audio"]))
    items = [TextItem("The kite is red. Which is red?"), media_item]
    result = tracer.trace(items, generation=GenerationConfig(max_new_tokens=4, min_new_tokens=4))
    generated = [t.token_id for t in result.tokens]
    verifier = _verifier(tracer, result, items, "knockout")
    prepared = verifier.ablator.prepared
    ids = torch.cat([prepared.input_ids, torch.tensor([generated[:-1]])], dim=1)
    with torch.no_grad():
        logits = backend.model(input_ids=ids, position_ids=backend.positions_for(prepared, ids.shape[1]),
                               **prepared.model_inputs).logits[0, prepared.length - 1:]
    whole = torch.log_softmax(logits.double(), -1)[torch.arange(len(generated)), torch.tensor(generated)].numpy()
    np.testing.assert_allclose(verifier.base.logp, whole, atol=1e-4)

    unit = next(u.index for u in result.units if u.modality != "text")
    knocked = verifier.score([removal([unit])])[0]
    embeds, positions = backend.lm_inputs(prepared, generated)
    deleted = verifier.ablator.blocked(removal([unit]))
    keep = torch.as_tensor(np.setdiff1d(np.arange(embeds.shape[1]), deleted))
    rows = backend.lm_forward(embeds[:, keep], positions[..., keep], None,
                              backend.new_cache())[0, prepared.length - 1 - len(deleted):]
    logp = torch.log_softmax(backend.lm_logits(rows).double(), -1)[torch.arange(len(generated)),
                                                                    torch.tensor(generated)].numpy()
    np.testing.assert_allclose(knocked.logp, logp, atol=1e-4)
    assert np.all(np.isfinite(_verifier(tracer, result, items, "input").drops([removal([unit])])[0]))


@pytest.mark.parametrize("family, reason", [("gemma3n", "per_layer_inputs"), ("qwen3_vl", "visual_pos_masks")])
def test_families_verification_cannot_forward_are_refused_clearly(family, reason, media):
    import importlib

    from omnitrace_core import Tracer

    backend = importlib.import_module(f"tests.backends.test_{family}").build_backend()
    tracer = Tracer(backend)
    items = [TextItem("The kite is red. Which is red?"), ImageItem(str(media["image_a"]))]
    result = tracer.trace(items, generation=GenerationConfig(max_new_tokens=3, min_new_tokens=3))
    with pytest.raises(NotImplementedError, match=reason):
        tracer.verify(result, items=items, mode="knockout")


def test_hybrid_decoders_refuse_blocking(media):
    """Linear-attention layers read every position whatever the mask: no knockout, no dropped text."""
    from omnitrace_core import Tracer
    from tests.backends.test_minicpmv4_6 import build_backend

    backend = build_backend()
    assert len(backend.attention_layers) < backend.num_layers
    tracer = Tracer(backend)
    items = [TextItem("The kite is red. Which is red?"), ImageItem(str(media["image_a"]))]
    result = tracer.trace(items, generation=GenerationConfig(max_new_tokens=3, min_new_tokens=3))
    with pytest.raises(InputError, match="linear-attention"):
        tracer.verify(result, items=items, mode="knockout")
    image = next(u.index for u in result.units if u.modality == "image")
    v = tracer.verify(result, items=items, mode="input", units=[image], checks=False)  # media edits still work
    assert v.units == (image,) and np.all(np.isfinite(v.effects))
