"""The Runs tab's logic on a real batch run (tiny model, the CLI's own loop): reading, table, opening, overlay."""

from __future__ import annotations

import json
import re
import time
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from components.compare import compare_results
from components.explorer_view import build_payload, render_explorer
from components.heads_view import NO_HEADS, render_heads, selection_units
from components.runs import PAGE_SIZE, expected_units, load_run, skim, _full
from components.runs_panel import (classify, folder_files, folder_paths, load_files, open_sample, read_run,
                                   show_sample, table_event)
from components.session import Session
from components.settings import InputLimits
from omnitrace_core import InputError, TraceResult
from omnitrace_core.evaluation.groundtruth import GroundTruth
from omnitrace_core.evaluation.metrics import mean_prf
from omnitrace_core.evaluation.predictions import from_trace
from omnitrace_core.evaluation.scoring import score
from tests.components.run_files import write_run


@pytest.fixture(scope="module")
def run_files(tracer, tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("run"), tracer)


@pytest.fixture(scope="module")
def run(run_files):
    return read_run(run_files.upload)


def test_skimming_a_line_gives_what_parsing_it_gives(run_files):
    for path in (run_files.attmean, run_files.attraw):
        for line in path.read_bytes().splitlines(keepends=True):
            skimmed, mass = skim(line)
            whole, whole_mass = _full(line)
            if whole["status"] != "ok":
                assert mass is None and skimmed == whole
                continue
            kept = {k: v for k, v in whole["result"].items() if k not in ("atom_sum", "atom_max", "outside", "heads")}
            assert {k: v for k, v in skimmed["result"].items() if k in kept} == kept
            assert skimmed["result"]["atom_sum"] == []
            assert bool(skimmed["result"].get("heads")) == ("heads" in whole["result"])
            np.testing.assert_allclose(mass, whole_mass)
            np.testing.assert_allclose(mass, np.asarray(whole["result"]["atom_sum"]).sum(axis=0))


def test_files_are_recognised_by_content(run_files, tmp_path):
    files = classify(run_files.upload)
    assert files.runs == (str(run_files.attmean), str(run_files.attraw))
    assert files.truth == str(run_files.truth) and files.samples == str(run_files.samples)
    assert set(files.media) == {str(m) for m in run_files.media}
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(InputError, match="neither a ground-truth file"):
        classify([run_files.attmean, other])
    with pytest.raises(InputError, match="no run file"):
        classify([run_files.truth])
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"a": 1}\n')
    with pytest.raises(InputError, match="not a batch record"):
        read_run([junk])


def test_rows_summarise_the_stored_traces(run, run_files):
    stored = run_files.results()
    truth = GroundTruth.load(run_files.truth)
    assert [r.key for r in run.rows] == ["a:caption", "b:qa", "c:caption", "d:qa", "e:qa"]
    error = run.by_key["d:qa"]
    assert error.status == "error" and "absent.png" in error.error and error.f1 is None
    for key, result in stored.items():
        row = run.by_key[key]
        assert row.answer == result.text and row.expected == next(s for s in json.loads(
            run_files.samples.read_text()) if f"{s['id']}:{s['task']}" == key)["answer"]
        assert row.sentences == len(result.spans)
        assert row.unsupported == sum(1 for s in result.spans if not s.sources)
        assert row.confidence == pytest.approx(np.mean([s.confidence for s in result.spans]))
        # F1 as the evaluation scores it
        record = {"key": key, "id": key.split(":")[0], "task": key.split(":")[1]}
        scores = score([from_trace(record, result)], {key: truth.lookup(record)})
        assert row.f1 == pytest.approx(mean_prf([p for v in scores.by_task.values() for p in v]).f1)
        # the modality split of the attention mass on sources
        totals = result.sources.unit_totals(result.atom_sum).sum(axis=0)
        for modality, share in row.mass.items():
            mine = sum(t for u, t in zip(result.units, totals) if u.modality == modality)
            assert share == pytest.approx(mine / totals.sum(), abs=1e-4)
        # agreement between the two signals, as Compare signals computes it
        other = run_files.results(run_files.attraw)[key]
        expected = compare_results({"attmean": result, "attraw": other}, "attmean").mean
        assert row.agreement == pytest.approx(expected)
        assert row.heads and not row.forced


def test_sort_filter_and_pages(run):
    by_f1 = run.query(sort="f1", descending=True)
    values = [r.f1 for r in by_f1.rows]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=True) and values[len(present):] == [None] * (len(values) - len(present))
    assert [r.key for r in run.query(status="error").rows] == ["d:qa"]
    assert {r.task for r in run.query(task="caption").rows} == {"caption"}
    assert [r.key for r in run.query(text="B:QA").rows] == ["b:qa"]
    assert run.query(text="absent.png").matching == 1
    page = run.query(page_size=2, page=1)
    assert page.pages == 3 and [r.key for r in page.rows] == ["c:caption", "d:qa"]
    assert run.query(page_size=2, page=99).index == 2  # past the end: the last page
    with pytest.raises(InputError, match="cannot sort"):
        run.query(sort="nope")


def test_table_clicks_sort_page_and_pick(run_files):
    session = Session()
    load_files(session, run_files.upload)
    html, key = table_event(session, {"sort": "f1"})
    assert key is None and session.run_query["sort"] == "f1" and session.run_query["descending"] is True
    table_event(session, {"sort": "f1"})
    assert session.run_query["descending"] is False
    html, key = table_event(session, {"key": "b:qa"})
    assert key == "b:qa" and 'class="ot-rrow ot-rsel" data-key="b:qa"' in html
    with pytest.raises(InputError, match="no sample"):
        table_event(session, {"key": "zz"})


def test_opening_a_sample_resolves_media_and_the_expected_sources(run, run_files, tmp_path):
    roots = [run_files.folder]
    opened = open_sample(run, "e:qa", InputLimits(), roots)
    assert list(opened.results) == ["attmean", "attraw"]
    stored = run_files.results()["e:qa"]
    result = opened.results["attmean"]
    image = next(i for i in result.items if i.modality == "image")
    assert Path(image.path).resolve() == (run_files.folder / "media" / "scene.png").resolve()
    assert result.spans == stored.spans and np.array_equal(result.atom_sum, stored.atom_sum)
    # the labels name the image for every sentence: its unit is expected
    image_unit = next(u.index for u in result.units if u.modality == "image")
    assert opened.gold == {k: [image_unit] for k in range(len(stored.spans))}
    session = Session()
    show_sample(session, opened)
    assert session.shown().spans == stored.spans and session.gold == opened.gold
    html = render_explorer(session.shown(), gold=session.gold)
    payload = json.loads(unescape(re.search(r'data-payload="([^"]*)"', html).group(1)))
    assert payload["gold"] is True and [s["gold"] for s in payload["spans"]] == [[image_unit]] * len(stored.spans)
    # media outside the allowed folders are not read
    elsewhere = open_sample(run, "e:qa", InputLimits(), [tmp_path])
    assert elsewhere.items == () and any("not found" in n for n in elsewhere.notes)
    with pytest.raises(InputError, match="was not traced"):
        open_sample(run, "d:qa", InputLimits(), roots)


def test_expected_units_follow_the_labels(run_files):
    result = run_files.results()["c:caption"]
    truth = GroundTruth.load(run_files.truth).lookup({"key": "c:caption", "id": "c", "task": "caption"})
    first_text = next(u for u in result.units if u.modality == "text")
    assert expected_units(result, truth) == {k: [first_text.index] for k in range(len(result.spans))}
    assert expected_units(result, None) == {}


def test_data_folder_files_stay_inside_it(run_files, tmp_path):
    names = folder_files(run_files.folder)
    assert "attmean.jsonl" in names and "truth.json" in names and not any(n.endswith(".png") for n in names)
    assert folder_paths(run_files.folder, ["attmean.jsonl"]) == [str(run_files.folder / "attmean.jsonl")]
    with pytest.raises(InputError, match="not a file of the data folder"):
        folder_paths(run_files.folder, ["../" + tmp_path.name + "/x.jsonl"])
    with pytest.raises(InputError, match="no data folder"):
        folder_paths(None, ["attmean.jsonl"])


def test_behind_the_curated_list_and_log_probs_reach_the_page(run_files):
    result = run_files.results()["a:caption"]
    payload = build_payload(result)
    for span, entry in zip(result.spans, payload["spans"]):
        shares = result.span_shares(span.index)
        ranked = [[d.unit, round(d.share, 4), d.outcome] for d in shares.decisions]
        assert [[r[0], r[1], r[3]] for r in entry["behind"]["rows"][:len(ranked)]] == ranked
        assert entry["behind"]["p_min"] == shares.p_min and entry["behind"]["coverage"] == shares.coverage
    assert all("lp" in t for t in payload["tokens"]) and payload["heads"] is True


def test_head_map_of_a_sentence(run_files):
    result = run_files.results()["a:caption"]
    units = selection_units(result, 0, None)
    assert [u for _, u in units][:len(result.spans[0].sources)] == [s.unit for s in result.spans[0].sources]
    unit = units[0][1]
    html = render_heads(result, 0, None, unit)
    grid = result.head_map(unit, span=0)
    cells = {(int(a), int(b)): float(v) for a, b, v in
             re.findall(r'data-layer="(\d+)" data-head="(\d+)" data-v="([0-9.e-]+)"', html)}
    assert len(cells) == grid.size
    for (layer, head), value in cells.items():
        assert value == pytest.approx(grid[result.heads.layers.index(layer), head], abs=1e-6)
    no_heads = run_files.results(run_files.attraw)["a:caption"]
    assert NO_HEADS in render_heads(no_heads, 0, None, unit)


def _synthetic_lines(count: int, template: dict) -> bytes:
    lines = []
    for k in range(count):
        record = dict(template, key=f"s{k:05d}", id=f"s{k:05d}", task=("qa", "caption")[k % 2])
        lines.append(json.dumps(record))
    return ("\n".join(lines) + "\n").encode()


def test_a_10000_sample_run_loads_and_pages(run_files, tmp_path):
    template = json.loads(run_files.attraw.read_text().splitlines()[0])
    path = tmp_path / "big.jsonl"
    path.write_bytes(_synthetic_lines(10_000, template))
    started = time.perf_counter()
    big = load_run([path])
    page = big.query(sort="key", descending=True, page=7)
    print(f"10,000 samples indexed and paged in {time.perf_counter() - started:.1f} s")  # informative, not asserted
    assert len(big.rows) == 10_000 and page.pages == 10_000 // PAGE_SIZE
    assert [r.key for r in page.rows][:2] == [f"s{9999 - 7 * PAGE_SIZE:05d}", f"s{9998 - 7 * PAGE_SIZE:05d}"]
    key = page.rows[0].key
    assert big.results(key)["attraw"].text == TraceResult.from_dict(template["result"]).text  # read on demand
    assert big.query(task="qa").matching == 5_000


def test_a_half_written_last_line_is_ignored(run_files, tmp_path):
    path = tmp_path / "killed.jsonl"
    data = run_files.attmean.read_bytes()
    path.write_bytes(data + data[:200])
    assert len(load_run([path]).rows) == len(data.splitlines())


def test_a_verify_output_gives_the_faithfulness_columns(tracer, run_files, tmp_path):
    from omnitrace_core.batch import read_traces, verify_batch

    verified = tmp_path / "verified.jsonl"
    verify_batch(tracer, read_traces(run_files.attmean)[:2], verified, mode="knockout", progress=False)
    run = load_run([verified])
    assert [r.key for r in run.rows] == ["a:caption", "b:qa"]
    for row in run.rows:
        result = run.results(row.key)["attmean"]
        checks = result.verification.sentences
        assert checks and row.comprehensiveness == pytest.approx(np.mean([c.comprehensiveness["all"] for c in checks]))
        assert row.sufficiency == pytest.approx(np.mean([c.sufficiency["all"] for c in checks]))
    # with the trace file first, the verified file adds its signal's second copy: no agreement between them
    both = load_run([run_files.attmean, verified])
    assert both.by_key["a:caption"].agreement is None and len(both.results("a:caption")) == 2
    assert both.by_key["a:caption"].comprehensiveness == run.by_key["a:caption"].comprehensiveness


def test_run_file_text_is_escaped_in_the_table(run_files, tmp_path):
    from components.runs_view import render_summary, render_table

    evil = '<img src=x onerror="window.__pwned=1">'
    lines = run_files.attraw.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    ok = next(r for r in records if r["status"] == "ok")
    error = next(r for r in records if r["status"] == "error")
    ok.update(key=evil, task=evil, answer=evil)
    ok["result"]["text"] = evil
    error.update(key=evil + "2", error=evil)
    path = tmp_path / f"{'x'}.jsonl"
    path.write_text(json.dumps(ok) + "\n" + json.dumps(error) + "\n", encoding="utf-8")
    run = load_run([path])
    html = render_table(run.query()) + render_summary(run)
    assert "<img" not in html and "&lt;img src=x onerror=" in html
