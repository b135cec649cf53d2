"""Is the generated output right? QA letters and exact description sentences against expected answers.

The known-truth tasks have deterministic expected outputs, so correctness is exact: a QA answer is
right when the letter it states ("The answer is B.") is the correct option; a description is
scored sentence by sentence, sentence k of the output against expected sentence k, after
whitespace normalisation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Sequence

_OPTION = re.compile(r"answer is\s*\(?([A-Z])\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def parse_option(text: str) -> str | None:
    """The letter an answer states ("The answer is B." -> "B"), or None."""
    found = _OPTION.findall(text)
    return found[-1] if found else None


def sentences(text: str) -> list[str]:
    """Split text at sentence ends (., !, ? followed by whitespace); whitespace is normalised."""
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def output_accuracy(samples: Sequence[Any], texts: Sequence[str]) -> dict[str, Any]:
    """Accuracy of generated ``texts`` against the expected outputs of ``samples``.

    Args:
        samples: objects with ``task``, ``option`` (correct letter or None) and ``answer``
            (expected output) attributes, e.g. :class:`~omnitrace_core.tasks.TaskSample`;
            an optional ``question_type`` groups QA samples further.
        texts: the generated output of each sample.

    Returns:
        ``{"summary": {"qa_accuracy", "qa_samples", "description_sentence_accuracy",
        "description_sentences", "exact_outputs"}, "tasks": {task: {...}},
        "question_types": [{"task", "question_type", "samples", "qa_accuracy"}, ...]}``: fractions
        in [0, 1]; ``question_types`` counts the QA samples that name their type, by task and type.
    """
    per_task: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_type: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for sample, text in zip(samples, texts):
        stats = per_task[sample.task]
        stats["samples"] += 1
        stats["exact"] += int(" ".join(text.split()) == " ".join(sample.answer.split()))
        if sample.option is not None:
            right = int(parse_option(text) == sample.option)
            stats["qa"] += 1
            stats["qa_right"] += right
            question_type = getattr(sample, "question_type", None)
            if question_type:
                per_type[sample.task, question_type][0] += 1
                per_type[sample.task, question_type][1] += right
        else:
            want, got = sentences(sample.answer), sentences(text)
            stats["sentences"] += len(want)
            stats["sentences_right"] += sum(int(k < len(got) and got[k] == w) for k, w in enumerate(want))

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    totals: dict[str, int] = defaultdict(int)
    tasks = {}
    for task, stats in sorted(per_task.items()):
        for k, v in stats.items():
            totals[k] += v
        tasks[task] = {"samples": stats["samples"], "exact_outputs": ratio(stats["exact"], stats["samples"]),
                       "qa_accuracy": ratio(stats["qa_right"], stats["qa"]),
                       "description_sentence_accuracy": ratio(stats["sentences_right"], stats["sentences"])}
    summary = {"qa_accuracy": ratio(totals["qa_right"], totals["qa"]), "qa_samples": totals["qa"],
               "description_sentence_accuracy": ratio(totals["sentences_right"], totals["sentences"]),
               "description_sentences": totals["sentences"],
               "exact_outputs": ratio(totals["exact"], totals["samples"])}
    question_types = [{"task": task, "question_type": name, "samples": n, "qa_accuracy": ratio(right, n)}
                      for (task, name), (n, right) in sorted(per_type.items())]
    return {"summary": summary, "tasks": tasks, "question_types": question_types}
