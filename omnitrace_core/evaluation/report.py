"""Markdown tables of an evaluation (pure: the evaluation's JSON in, text out)."""

from __future__ import annotations

from typing import Any, Mapping

from ..inputs import MODALITIES
from .runner import ABLATION_LABELS

_HEAD = {"text": "Text F1", "image": "Image F1", "audio": "Audio Time-F1", "video": "Video Time-F1"}
_BASELINE_NAMES = {"random": "Random", "embedding": "Embedding (model input embeddings)",
                   "self": "Self-attribution"}


def _cell(summary: Mapping[str, Any], modality: str, key: str = "f1") -> str:
    value = summary.get("modalities", {}).get(modality, {}).get(key)
    return "–" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def outputs_table(acc: Mapping[str, Any]) -> list[str]:
    s = acc["summary"]
    lines = [f"QA answers correct: **{_pct(s['qa_accuracy'])}** of {s['qa_samples']}; description sentences "
             f"exactly right: **{_pct(s['description_sentence_accuracy'])}** of {s['description_sentences']}; "
             f"whole outputs exact: {_pct(s['exact_outputs'])}.", "",
             "| Task | Samples | QA accuracy | Description sentences exact | Exact outputs |",
             "|---|---:|---:|---:|---:|"]
    for task, t in acc["tasks"].items():
        lines.append(f"| {task} | {t['samples']} | {_pct(t['qa_accuracy'])} | "
                     f"{_pct(t['description_sentence_accuracy'])} | {_pct(t['exact_outputs'])} |")
    if acc.get("question_types"):
        lines += ["", "QA accuracy by question type (what is asked, of what the question names):", "",
                  "| Task | Question type | Samples | QA accuracy |", "|---|---|---:|---:|"]
        lines += [f"| {q['task']} | {q['question_type']} | {q['samples']} | {_pct(q['qa_accuracy'])} |"
                  for q in acc["question_types"]]
    return lines


def methods_table(report: Mapping[str, Any]) -> list[str]:
    lines = ["| Method | " + " | ".join(_HEAD[m] for m in MODALITIES) + " | Option consistency |",
             "|---|" + "---:|" * (len(MODALITIES) + 1)]
    settings = report.get("baseline_settings", {})
    for name, summary in report["methods"].items():
        label = f"OmniTrace {name}" if name in report["signals"] else _BASELINE_NAMES.get(name, name)
        if name == report.get("best_signal"):
            label += " (best)"
        if name == "self" and not settings.get("self", {}).get("follows_prompt", True):
            s = settings["self"]
            lines.append(f"| {label} | n/a: the model does not follow the prompt ({s['parsed']}/{s['asked']} "
                         "answers parsed) |" + " |" * len(MODALITIES))
            continue
        consistency = summary.get("option_consistency", {})
        cons = f"{consistency['consistency']:.1f}" if consistency.get("samples") else "–"
        lines.append(f"| {label} | " + " | ".join(_cell(summary, m) for m in MODALITIES) + f" | {cons} |")
    return lines


def task_table(summary: Mapping[str, Any]) -> list[str]:
    lines = ["| Task | Modality | Precision | Recall | F1 | Sentences |", "|---|---|---:|---:|---:|---:|"]
    for task, per in summary["tasks"].items():
        for m in MODALITIES:
            if m in per:
                v = per[m]
                lines.append(f"| {task} | {m} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | "
                             f"{v['sentences']} |")
    return lines


def prf_table(rows: Mapping[str, Mapping[str, Any]], labels: Mapping[str, str]) -> list[str]:
    head = " | ".join(f"{m.capitalize()} P | R | F1" for m in MODALITIES)
    lines = [f"| Method | {head} |", "|---|" + "---:|" * (3 * len(MODALITIES))]
    for name, summary in rows.items():
        cells = " | ".join(f"{_cell(summary, m, 'precision')} | {_cell(summary, m, 'recall')} | {_cell(summary, m)}"
                           for m in MODALITIES)
        lines.append(f"| {labels.get(name, name)} | {cells} |")
    return lines


def rules_table(rules: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = ["| Signal | Token rule | " + " | ".join(_HEAD[m] for m in MODALITIES) + " | Option consistency |",
             "|---|---|" + "---:|" * (len(MODALITIES) + 1)]
    for signal, per_rule in rules.items():
        for rule, summary in per_rule.items():
            cons = summary.get("option_consistency", {})
            c = f"{cons['consistency']:.1f}" if cons.get("samples") else "–"
            lines.append(f"| {signal} | {rule} | " + " | ".join(_cell(summary, m) for m in MODALITIES) + f" | {c} |")
    return lines


def _short(check: Mapping[str, Any]) -> str:
    return f"short by {-check['gap']:.2f}" if check["gap"] < 0 else "must be above the target"


def targets_lines(checks: list[Mapping[str, Any]]) -> list[str]:
    lines = []
    for c in checks:
        kind = "stretch" if c.get("stretch") else "bar"
        if c["met"] is None:
            lines.append(f"- not measured: {c['check']}")
        elif c["met"]:
            lines.append(f"- met: {c['check']} ({c['value']:.2f})")
        elif kind == "stretch":
            lines.append(f"- stretch, not reached: {c['check']} ({c['value']:.2f}, {_short(c)})")
        else:
            lines.append(f"- **missed**: {c['check']} ({c['value']:.2f}, {_short(c)})")
    return lines


#: invalid samples listed by name in the Markdown report (the JSON has all of them)
LISTED_INVALID = 12


def label_checks_lines(f: Mapping[str, Any]) -> list[str]:
    """Per task: samples whose labels pass the removal check, fail it, or could not be checked; then the
    failing samples with their problems."""
    summary = f["label_checks_summary"]
    lines = ["| Task | Valid | Invalid | Unchecked | Valid share |", "|---|---:|---:|---:|---:|"]
    for task, v in [*summary["tasks"].items(), ("all", summary["all"])]:
        name = "**All**" if task == "all" else task
        lines.append(f"| {name} | {v['valid']} | {v['invalid']} | {v['unchecked']} | {_pct(v['valid_share'])} |")
    invalid = [r for r in f["label_checks"] if r["status"] == "invalid"]
    if invalid:
        lines += ["", f"Samples whose labels fail the check ({len(invalid)}; left out of the F1 scores against "
                      "constructed labels):", ""]
        for r in invalid[:LISTED_INVALID]:
            more = f" (+{len(r['problems']) - 2} more)" if len(r["problems"]) > 2 else ""
            lines.append(f"- `{r['id']}` ({r['task']}): " + "; ".join(r["problems"][:2]) + more)
        if len(invalid) > LISTED_INVALID:
            lines.append(f"- ... {len(invalid) - LISTED_INVALID} more in the JSON report (`faithfulness.label_checks`)")
    return lines


_SCOPES = {"all": "All units", "text": "Text units", "image": "Image units", "audio": "Audio units",
           "video": "Video units"}


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def method_label(name: str, signals: Any) -> str:
    return f"OmniTrace {name}" if name in signals else _BASELINE_NAMES.get(name, name)


def faithfulness_tables(f: Mapping[str, Any], signals: Any) -> list[str]:
    """Per scope: comprehensiveness, sufficiency, top-k drops, agreement with occlusion, per method."""
    summary, ks = f["summary"], f["top_k"]
    lines = [f"Removal mode `{f['mode']}`. Drops in the sentence's log-probability (nats, summed over its tokens) "
             f"when units are removed, teacher-forcing the output. A unit is *strong* for a sentence when removing it "
             f"drops the log-probability by more than {f['threshold']:.3f} nats; a scope's sentences are those with a "
             f"strong unit of the scope ({summary['sentences_without_strong_unit']} of {summary['sentences_total']} "
             f"output sentences have none). {f['forwards']} teacher-forced forwards, {f['seconds']:.0f} s.", ""]
    for scope in _SCOPES:
        rows = [(name, per[scope]) for name, per in summary["methods"].items() if scope in per]
        if not rows:
            continue
        lines += [f"### {_SCOPES[scope]} ({summary['sentences'].get(scope, 0)} sentences)", "",
                  "| Method | Cited units | Comprehensiveness ↑ | Sufficiency ↓ | "
                  + " | ".join(f"Top-{k} drop ↑" for k in ks)
                  + " | Precision vs occlusion | Recall vs occlusion | Spearman vs occlusion |",
                  "|---|" + "---:|" * (6 + len(ks))]
        for name, v in rows:
            tops = " | ".join(_num(v["top_k"].get(str(k))) for k in ks)
            lines.append(f"| {method_label(name, signals)} | {_num(v.get('cited'), 1)} | "
                         f"{_num(v['comprehensiveness'])} | {_num(v['sufficiency'])} | {tops} | "
                         f"{_num(v['precision'], 1)} | {_num(v['recall'], 1)} | {_num(v['spearman'])} |")
        lines.append("")
    return lines


def validity_table(validity: Mapping[str, Any]) -> list[str]:
    lines = ["| Units | Labelled | Labelled: removal changes the sentence | Unlabelled | "
             "Unlabelled: removal changes the sentence |", "|---|---:|---:|---:|---:|"]
    for scope, v in validity.items():
        lines.append(f"| {_SCOPES.get(scope, scope)} | {v['labelled']} | {_pct(v['labelled_changed'])} | "
                     f"{v['unlabelled']} | {_pct(v['unlabelled_changed'])} |")
    return lines


def causal_f1_table(f1: Mapping[str, Any], signals: Any) -> list[str]:
    head = " | ".join(f"{_HEAD[m]}: constructed | causal" for m in MODALITIES)
    lines = [f"| Method | {head} |", "|---|" + "---:|" * (2 * len(MODALITIES))]
    for name, v in f1.items():
        cells = " | ".join(f"{_num(v['constructed'].get(m, {}).get('f1'))} | {_num(v['causal'].get(m, {}).get('f1'))}"
                           for m in MODALITIES)
        lines.append(f"| {method_label(name, signals)} | {cells} |")
    return lines


def render(report: Mapping[str, Any]) -> str:
    """The whole report as Markdown."""
    best = report.get("best_signal")
    out = [f"# OmniTrace evaluation: {report['model']}", ""]
    if report.get("methods") is None:
        out += [f"Split `{report['split']}`: {report['samples']} samples, no labels.", ""]
    else:
        out += [f"Split `{report['split']}`: {report['samples']} samples; sentences aligned with the ground truth: "
                f"{report['aligned_sentences']} of {report['expected_sentences']} (alignment: {report['alignment']})."
                + (f" {len(report['labels_left_out'])} samples whose labels fail the removal check are left out of "
                   "the scores (see *Label check per sample*)." if report.get("labels_left_out") else "")
                + ("" if report.get("faithfulness") else " The labels were not checked by removal (`--faithfulness` "
                                                         "checks them and leaves out samples whose labels fail)."),
                ""]
    if report.get("outputs"):
        out += ["## Outputs", ""] + outputs_table(report["outputs"]) + [""]
    if report.get("methods") is not None:
        out += ["## Attribution (paper Table 2 layout)", "",
                "Span-level F1 for text and image sources, Time-F1 over 1 s bins for audio and video; macro "
                "averages over output sentences. Option consistency: appendix B.3.", ""]
        out += methods_table(report) + [""]
    if best:
        out += [f"### Per task: OmniTrace {best}", ""] + task_table(report["methods"][best]) + [""]
    if report.get("ablations"):
        out += [f"## Curation ablations (paper Table 3 layout, OmniTrace {best})", ""]
        out += prf_table(report["ablations"], ABLATION_LABELS) + [""]
    if report.get("token_rules"):
        out += ["## Token -> source reduction: summed mass (`sum`) vs strongest token (`max_token`)", ""]
        out += rules_table(report["token_rules"]) + [""]
    faith = report.get("faithfulness")
    if faith:
        out += ["## Faithfulness (verification by removal)", ""] + faithfulness_tables(faith, report["signals"])
        if faith.get("label_validity"):
            out += ["### Are the labels causal?", "",
                    "Over the output sentences aligned with the labels: how often removing a labelled source, and "
                    "an unlabelled unit, changes the sentence (greedy decoding no longer writes it).", ""]
            out += validity_table(faith["label_validity"]) + [""]
        if faith.get("label_checks_summary"):
            out += ["### Label check per sample", "",
                    "A sample's labels pass when, on every output sentence aligned with an expected one, removing each "
                    "labelled source changes the sentence and removing any unlabelled unit does not.", ""]
            out += label_checks_lines(faith) + [""]
        if faith.get("f1"):
            out += ["### F1 against the constructed labels and against causal labels", "",
                    "Causal labels: the units whose removal changes the sentence, on the same aligned sentences.", ""]
            out += causal_f1_table(faith["f1"], report["signals"]) + [""]
    if report.get("checks"):
        out += ["## Bars", ""] + targets_lines(report["checks"]) + [""]
    return "\n".join(out)
