"""Score OmniTrace attributions against ground truth: ``omnitrace evaluate``.

    omnitrace evaluate                        # demo model on the bundled benchmark
    omnitrace evaluate --model Qwen/Qwen2.5-Omni-7B --dtype bfloat16 --work-dir runs/7b
    omnitrace evaluate --questions q.json --ground-truth labels.json --model DIR
    omnitrace evaluate --questions q.json --ground-truth labels.json \\
        --traces attmean=out.jsonl --baselines random       # score existing traces, no model needed
    omnitrace evaluate --faithfulness --limit 40   # + what removing the cited units does
    omnitrace evaluate --faithfulness --questions q.json --model DIR   # no labels needed

It traces the samples with every requested signal (through the batch CLI's loop, so traces land
in ``--work-dir`` and a rerun resumes), builds the baselines (thresholds tuned on the ``dev``
split), re-curates the traces for the ablations and token-rule comparison, and prints a
Markdown report (``--report`` / ``--json`` write it to files). ``--faithfulness`` adds, per
method and modality, what removing the cited units does (comprehensiveness, sufficiency, top-k
drop, agreement with occlusion; see ``omnitrace_core.evaluation.faithfulness``) and, with labels,
whether the labels themselves are causal: each sample's labels are checked by removal, a sample whose
labels fail is listed with its problems and left out of the scores against the constructed labels,
and every method is also scored against causal labels. The report ends with the benchmark's bars
(answers, label validity, the best signal's F1, margins over the baselines; against causal labels
when measured), each met or missed with its gap; ``--json`` carries them under ``checks``.
Exit codes: 0 done, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ..batch import load_questions, media_bases
from ..config import CurationConfig, GenerationConfig, SourceConfig
from ..assets import DEFAULT_BENCHMARK_DIR, DEFAULT_MODEL_DIR
from ..errors import UsageError
from ..evaluation import runner as R
from ..evaluation.groundtruth import GroundTruth
from ..evaluation.report import render
from ..inputs import parse_sample, sample_keys
from ..signals import list_signals
from ..tasks.benchmark import GROUND_TRUTH_FILE, QUESTIONS_FILE
from ..verification import DEFAULT_THRESHOLD, MODES
from .options import EXIT_OK, add_model_options, config_from_flags, report_failure, top_k, tracer_from_args


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("evaluate", help="score attributions against ground truth and by verification",
                                 description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--benchmark", default=str(DEFAULT_BENCHMARK_DIR), metavar="DIR",
                      help="benchmark folder with <split>/questions.json and ground_truth.json "
                           "(default: the bundled one)")
    data.add_argument("--split", default="test", help="split scored (default: test)")
    data.add_argument("--tune-split", default="dev", help="split the baselines' thresholds are tuned on (default: dev)")
    data.add_argument("--questions", metavar="FILE.json", help="score these samples (official format) instead")
    data.add_argument("--ground-truth", metavar="FILE.json", help="labels of --questions (documented JSON format)")
    data.add_argument("--tune-questions", metavar="FILE.json", help="samples to tune baseline thresholds on")
    data.add_argument("--tune-ground-truth", metavar="FILE.json", help="labels of --tune-questions")
    data.add_argument("--limit", type=int, metavar="N", help="only the first N samples of each split")
    data.add_argument("--traces", action="append", default=[], metavar="SIGNAL=FILE.jsonl",
                      help="use existing traces of a signal (batch CLI output) instead of tracing")
    add_model_options(parser, default=str(DEFAULT_MODEL_DIR), model_help="checkpoint traced (default: the bundled "
                                                                          "demo model)")
    parser.add_argument_group("generation").add_argument("--max-new-tokens", type=int, default=64)
    method = parser.add_argument_group("methods")
    method.add_argument("--signals", default="attmean,attraw,attgrads", help="comma-separated signals")
    method.add_argument("--baselines", default="random,embedding",
                        help="comma-separated: random, embedding, self (self-attribution); '' for none")
    method.add_argument("--no-ablations", action="store_true", help="skip the ablations and token-rule comparison")
    method.add_argument("--alignment", default="text", choices=("text", "index"),
                        help="how expected sentences are matched to output sentences (default: text)")
    faith = parser.add_argument_group("faithfulness (verification; no labels needed)")
    faith.add_argument("--faithfulness", action="store_true",
                       help="measure each method's citations by removing units (teacher forcing): comprehensiveness, "
                            "sufficiency, top-k drop, agreement with occlusion; with labels also label validity and "
                            "F1 against causal labels")
    faith.add_argument("--verify-mode", default="input", choices=MODES,
                       help="removal mode: change the input and re-encode, or block attention (default: input)")
    faith.add_argument("--threshold", type=float, default=None, metavar="NATS",
                       help="log-probability drop of a strong unit (default: ln 2, the sentence's probability halves)")
    faith.add_argument("--top-k", default="1,3", metavar="K,K", help="k of the top-k removal drops (default: 1,3)")
    out = parser.add_argument_group("output")
    out.add_argument("--work-dir", metavar="DIR", help="where traces are written (resumable; default: a temp folder)")
    out.add_argument("--report", metavar="FILE.md", help="write the Markdown report here too")
    out.add_argument("--json", metavar="FILE.json", help="write every number as JSON")
    out.add_argument("--no-progress", action="store_true")
    out.add_argument("-v", "--verbose", action="count", default=0)
    parser.set_defaults(run=run)
    return parser


def _split(name: str, questions: Path, truth: Path | None, limit: int | None, required: bool = True) -> R.Split:
    if truth is None or not Path(truth).is_file():
        if required:
            raise UsageError(f"ground truth for '{questions}' not found (give --ground-truth, or --faithfulness "
                             "for the measures that need no labels)")
        labels = GroundTruth(())
    else:
        labels = GroundTruth.load(truth)
    samples = load_questions(questions)
    if limit is not None:
        samples = samples[:limit]
    return R.Split(name, samples, labels, media_bases(questions))


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``omnitrace evaluate`` does except printing; returns the report dict."""
    started = time.perf_counter()
    ks = top_k(args.top_k)
    generation = config_from_flags(GenerationConfig, max_new_tokens=args.max_new_tokens)
    if args.questions:
        test = _split("custom", Path(args.questions), args.ground_truth and Path(args.ground_truth), args.limit,
                      required=not args.faithfulness)
        dev = (_split("tune", Path(args.tune_questions), args.tune_ground_truth and Path(args.tune_ground_truth),
                      args.limit) if args.tune_questions and test.truth.samples else None)
    else:
        root = Path(args.benchmark)
        if not (root / args.split / QUESTIONS_FILE).is_file():
            raise UsageError(f"no benchmark split '{args.split}' under '{root}' "
                             f"(expected {args.split}/{QUESTIONS_FILE})")
        test = _split(args.split, root / args.split / QUESTIONS_FILE, root / args.split / GROUND_TRUTH_FILE, args.limit)
        tune = root / args.tune_split / QUESTIONS_FILE
        dev = _split(args.tune_split, tune, root / args.tune_split / GROUND_TRUTH_FILE, args.limit) \
            if args.tune_split and tune.is_file() else None
    given = {}
    for spec in args.traces:
        signal, _, path = spec.partition("=")
        if not path:
            raise UsageError(f"--traces takes SIGNAL=FILE.jsonl, got {spec!r}")
        given[signal] = Path(path)
    signals = [s for s in args.signals.split(",") if s] if not given else list(given)
    unknown = [s for s in signals if s not in list_signals()]
    if unknown:
        raise UsageError(f"unknown signal(s) {unknown}; known: {', '.join(list_signals())}")
    baseline_names = [b for b in args.baselines.split(",") if b]
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="omnitrace-eval-"))
    sources = SourceConfig()
    curation = CurationConfig()
    fingerprint = {"curation": curation, "model": args.model, "dtype": args.dtype}  # of the traces in the work dir
    cache: dict[str, Any] = {}

    def tracer():
        if "tracer" not in cache:
            cache["tracer"] = tracer_from_args(args, generation=generation, sources=sources, curation=curation)
        return cache["tracer"]

    traced = {}
    for signal in signals:
        path = given.get(signal) or R.trace_split(tracer, test, signal, work / f"{test.name}.{signal}.jsonl",
                                                  None, generation, sources, not args.no_progress, **fingerprint)
        traced[signal] = R.load_traced(path, test.truth, set(sample_keys(test.samples)))
        if not traced[signal].records:
            raise UsageError(f"no successful traces for {signal} in {path}")
    dev_traced = None
    if dev is not None and any(b in ("random", "embedding") for b in baseline_names):
        path = R.trace_split(tracer, dev, signals[0], work / f"{dev.name}.{signals[0]}.jsonl", None, generation,
                             sources, not args.no_progress, **fingerprint) if not given else None
        dev_traced = R.load_traced(path, dev.truth, set(sample_keys(dev.samples))) if path else None

    def items_for(split, record):
        keys = dict(zip(sample_keys(split.samples), split.samples))
        return list(parse_sample(keys[str(record["key"])], str(record["key"]), split.bases).items)

    first = traced[signals[0]]
    labelled = bool(test.truth.samples)
    runs = R.run_baselines(baseline_names, first, dev_traced, lambda: tracer().backend, items_for, (test, dev),
                           sources, args.alignment, labelled=labelled)
    report: dict[str, Any] = {
        "model": first.results[0].model_id, "split": test.name, "samples": len(first.records),
        "alignment": args.alignment, "signals": signals,
        "baseline_settings": {name: run.settings for name, run in runs.items()}, "checks": [],
    }
    if args.faithfulness:
        # first, so that samples whose labels fail the removal check are reported and left out of the scores
        report["faithfulness"] = _faithfulness(args, test, traced, runs, signals, lambda r: items_for(test, r),
                                               lambda: tracer().backend, work, ks)
    if labelled:
        faith = report.get("faithfulness") or {}
        invalid = set(faith.get("labels_left_out", ()))
        scored = {s: t.without_labels(invalid) for s, t in traced.items()}
        methods = {s: R.summarise(R.predictions(t), t, args.alignment) for s, t in scored.items()}
        methods.update(R.baseline_methods(baseline_names, scored[signals[0]], dev_traced, lambda: tracer().backend,
                                          items_for, (test, dev), sources, args.alignment, runs=runs)[0])
        f1 = R.f1_table(methods)
        best = max(signals, key=lambda s: R.mean_f1(f1[s]))
        report.update({"best_signal": best, "aligned_sentences": methods[best]["aligned_sentences"],
                       "expected_sentences": methods[best]["expected_sentences"], "outputs": R.accuracy(first),
                       "methods": methods, "labels_left_out": sorted(invalid)})
        if not args.no_ablations:
            curation = traced[best].results[0].curation
            report["ablations"] = R.curation_variants(scored[best], curation, args.alignment)
            report["token_rules"] = {s: R.token_rule_variants(t, t.results[0].curation, args.alignment)
                                     for s, t in scored.items()}
        causal = {name: {"modalities": v["causal"]} for name, v in faith.get("f1", {}).items()}
        report["checks"] = R.check_targets(report["outputs"], R.f1_table(causal or methods), signals,
                                           "causal" if causal else "constructed", faith.get("label_checks_summary"))
    if args.faithfulness:
        from ..evaluation import faithfulness as F

        report["checks"] += F.check_targets(report["faithfulness"]["summary"],
                                            report["faithfulness"].get("label_validity"), signals)
    report["work_dir"] = str(work)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _faithfulness(args: argparse.Namespace, test: Any, traced: dict[str, Any], runs: dict[str, Any],
                  signals: Sequence[str], items_for: Any, backend_fn: Any, work: Path,
                  ks: Sequence[int]) -> dict[str, Any]:
    """Verify every sample of the first signal's traces and set every method against the measurements."""
    from ..evaluation import faithfulness as F
    from ..evaluation.scoring import score

    started = time.perf_counter()
    threshold = DEFAULT_THRESHOLD if args.threshold is None else float(args.threshold)
    reference = traced[signals[0]]
    keys = [str(r["key"]) for r in reference.records]
    methods: dict[str, list] = {}
    for signal, t in traced.items():
        by_key = {str(r["key"]): res for r, res in zip(t.records, t.results)}
        methods[signal] = [F.signal_input(by_key[k]) if k in by_key else F.MethodInput(None, None, tokens=(-1,))
                           for k in keys]
    for name, run in runs.items():
        if run.tables is None and run.preds is None:
            continue
        methods[name] = [F.MethodInput(
            curated=None if run.preds is None else [span.units for span in run.preds[i].spans],
            rankings=None if run.tables is None else run.tables[i]) for i in range(len(keys))]
    rows = F.measure_split(backend_fn, reference.records, reference.results, methods, items_for,
                           mode=args.verify_mode, ks=ks, cache=work / f"{test.name}.faithfulness.jsonl",
                           progress=not args.no_progress)
    out: dict[str, Any] = {"mode": args.verify_mode, "threshold": round(threshold, 6), "top_k": list(ks),
                           "summary": F.summarise(rows, threshold, ks),
                           "forwards": sum(int(r["cost"]["forwards"]) for r in rows),
                           "verify_seconds": round(sum(float(r["cost"]["seconds"]) for r in rows), 1),
                           "units": sum(len(r["modalities"]) for r in rows)}
    if test.truth.samples:
        measures = {str(r["key"]): r for r in rows}
        out["label_validity"] = F.label_validity(reference.results, reference.truths, measures, keys, args.alignment)
        out["label_checks"] = F.sample_label_checks(reference.results, reference.truths, measures, reference.records,
                                                    args.alignment)
        out["label_checks_summary"] = F.validity_summary(out["label_checks"])
        invalid = {r["key"] for r in out["label_checks"] if r["status"] == "invalid"}
        out["labels_left_out"] = sorted(invalid)
        constructed = {k: t for k, t in reference.truth_map().items() if k not in invalid}
        causal = F.causal_truth(reference.results, reference.truths, measures, reference.records, args.alignment)
        causal_map = {s.key: s for s in causal.samples}
        preds = {s: R.predictions(t) for s, t in traced.items()}
        preds.update({name: run.preds for name, run in runs.items() if run.preds is not None})
        out["f1"] = {name: {"constructed": score(p, constructed, args.alignment).to_dict()["modalities"],
                            "causal": score(p, causal_map, "text").to_dict()["modalities"]}
                     for name, p in preds.items()}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``omnitrace evaluate``: print the report (and write it with --report / --json); the exit status."""
    try:
        report = evaluate(args)
    except (Exception, KeyboardInterrupt) as exc:
        return report_failure(exc, "evaluate")
    text = render(report)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return EXIT_OK
