"""The Runs tab: load batch outputs, browse them in a sortable, filterable, paged table, open a sample.

Files come from an upload (the run's ``.jsonl`` files, optionally a ground-truth ``.json``, the samples
``.json`` and the media it names, in one go: each file is recognised by its content) or from the app's
data folder (``--data-dir``), whose files the app may read. Media are only ever read inside the app's
allowed folders (uploads, the data folder, the bundled examples).

The handlers are plain functions of the session (``load_files``, ``query``, ``table_event``,
``open_sample``), so that tests can call them directly; the table's clicks reach Python as one event
of its ``gr.HTML`` carrying ``{"key"}``, ``{"sort"}`` or ``{"page"}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gradio as gr

from omnitrace_core import InputError, TraceResult
from omnitrace_core.evaluation.groundtruth import FORMAT as TRUTH_FORMAT
from omnitrace_core.evaluation.groundtruth import GroundTruth

from .previews import is_within
from .runs import COLUMNS, STATUS_FILTERS, Run, expected_units, load_run, with_media
from .runs_view import render_summary, render_table
from .samples import read_sample_file, sample_items
from .session import ComposedItem, Generation, Session
from .settings import InputLimits

logger = logging.getLogger(__name__)

#: Columns whose first click sorts largest first (numbers a researcher looks at from the top).
DESCENDING_FIRST = ("sentences", "unsupported", "confidence", "f1", "comprehensiveness", "sufficiency", "agreement")
MAX_FOLDER_FILES = 2000

RUNS_JS = """
function otRunsClick(ev) {
  var t = ev.target;
  if (!t || !t.closest) return;
  var sort = t.closest('[data-sort]');
  if (sort) { trigger('click', {sort: sort.getAttribute('data-sort')}); return; }
  var page = t.closest('button[data-page]');
  if (page) { if (!page.disabled) trigger('click', {page: Number(page.getAttribute('data-page'))}); return; }
  var row = t.closest('tr[data-key]');
  if (row) { row.classList.add('ot-ropening'); trigger('click', {key: row.getAttribute('data-key')}); }
}
element.addEventListener('click', otRunsClick);
element.addEventListener('keydown', function (ev) {
  if (ev.key === 'Enter' && ev.target.closest && ev.target.closest('tr[data-key]')) {
    ev.preventDefault();
    otRunsClick(ev);
  }
});
"""


@dataclass(frozen=True)
class RunFiles:
    """Loaded files sorted by what they are."""

    runs: tuple[str, ...]
    truth: str | None = None
    samples: str | None = None
    media: tuple[str, ...] = ()


def classify(paths: Sequence[str | Path]) -> RunFiles:
    """Sort files by content: ``.jsonl`` run files, a ground-truth ``.json``, a samples ``.json``, media.

    Raises:
        InputError: a ``.json`` file that is neither, or two ground-truth or samples files.
    """
    runs, media = [], []
    truth = samples = None
    for path in (Path(p) for p in paths):
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            runs.append(str(path))
            continue
        if suffix != ".json":
            media.append(str(path))
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"'{path.name}' is not readable JSON ({exc})") from None
        if isinstance(data, dict) and data.get("format") == TRUTH_FORMAT:
            if truth is not None:
                raise InputError(f"two ground-truth files ('{Path(truth).name}', '{path.name}'): load one")
            truth = str(path)
        elif isinstance(data, list) or (isinstance(data, dict) and "question" in data):
            if samples is not None:
                raise InputError(f"two samples files ('{Path(samples).name}', '{path.name}'): load one")
            samples = str(path)
        else:
            raise InputError(f"'{path.name}' is neither a ground-truth file (\"format\": \"{TRUTH_FORMAT}\") nor a "
                             "samples file (a JSON list of samples with \"question\"); run files end in .jsonl")
    if not runs:
        raise InputError("no run file: add the .jsonl output of `python -m omnitrace_core trace` (or `verify`)")
    return RunFiles(tuple(runs), truth, samples, tuple(media))


def read_run(paths: Sequence[str | Path]) -> Run:
    """A run from its files (see :func:`classify`)."""
    files = classify(paths)
    truth = GroundTruth.load(files.truth) if files.truth else None
    samples = read_sample_file(files.samples, files.media) if files.samples else None
    return load_run(files.runs, truth, samples)


def folder_files(folder: Path | None) -> list[str]:
    """The run, ground-truth and samples files of the data folder, as paths relative to it."""
    if folder is None:
        return []
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jsonl", ".json") and p.is_file())
    return [str(p.relative_to(folder)) for p in found[:MAX_FOLDER_FILES]]


def folder_paths(folder: Path | None, names: Sequence[str]) -> list[str]:
    """Chosen data-folder files as paths; a name outside the folder is refused."""
    if folder is None:
        raise InputError("this app has no data folder (start it with --data-dir); upload the run's files instead")
    paths = []
    for name in names:
        path = folder / name
        if not is_within(path, [folder]) or not path.is_file():
            raise InputError(f"'{name}' is not a file of the data folder")
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------------------------
# Handlers (plain functions of the session)
# --------------------------------------------------------------------------------------------
def load_files(session: Session, paths: Sequence[str | Path]) -> Run:
    """Load a run into the session (its table starts on page 1, sorted by key)."""
    if not paths:
        raise InputError("choose the run's files: the .jsonl output(s), optionally a ground truth and a samples file")
    session.run = read_run(paths)
    session.run_query = {"text": "", "status": "all", "task": "all", "sort": "key", "descending": False, "page": 0}
    session.run_key = None
    return session.run


def query(session: Session, **changes: Any) -> str:
    """Apply filter, sort or page changes to the session's table; its HTML."""
    if session.run is None:
        return render_table(None)
    session.run_query.update(changes)
    return render_table(session.run.query(**session.run_query), session.run_key)


def table_event(session: Session, data: dict[str, Any]) -> tuple[str, str | None]:
    """A click in the table: sort by a column (again: the other way), turn a page, or pick a sample.

    Returns:
        (table HTML, key of the sample to open or None).
    """
    if session.run is None:
        return render_table(None), None
    if data.get("key") is not None:
        key = str(data["key"])
        if key not in session.run.by_key:
            raise InputError(f"no sample '{key}' in this run")
        session.run_key = key
        return render_table(session.run.query(**session.run_query), key), key
    if data.get("sort") in COLUMNS:
        column = data["sort"]
        same = session.run_query.get("sort") == column
        descending = not session.run_query.get("descending") if same else column in DESCENDING_FIRST
        return query(session, sort=column, descending=descending, page=0), None
    if data.get("page") is not None:
        return query(session, page=int(data["page"])), None
    return query(session), None


@dataclass(frozen=True)
class OpenedSample:
    """A sample of a run, ready for the explorer."""

    key: str
    results: dict[str, TraceResult]
    items: tuple[ComposedItem, ...]
    gold: dict[int, list[int]] | None
    notes: tuple[str, ...]


def open_sample(run: Run, key: str, limits: InputLimits, roots: Sequence[Path]) -> OpenedSample:
    """The sample's traces (every file's, by signal), with media from the run's samples file.

    Media are resolved through the samples file (beside it, uploaded with it, or in the data folder) and
    only inside ``roots``; without them the traces' own paths are shown where they are allowed.

    Raises:
        InputError: the sample has no successful trace (the message gives its error).
    """
    row = run.by_key.get(key)
    if row is None:
        raise InputError(f"no sample '{key}' in this run")
    if not row.ok_files:
        raise InputError(f"sample {key} was not traced: {row.error}")
    results = run.results(key)
    first = next(iter(results.values()))
    notes: list[str] = []
    items: tuple[ComposedItem, ...] = ()
    if run.samples is not None and key in run.samples.keys:
        try:
            items = tuple(sample_items(run.samples, key, limits, roots))
        except InputError as exc:
            notes.append(f"media not shown: {exc}")
        if items and len(items) != len(first.items):
            notes.append(f"the samples file gives {len(items)} items for {key}, its trace {len(first.items)}: "
                         "media not shown")
            items = ()
    elif run.samples is not None:
        notes.append(f"the samples file has no sample {key}: media not shown")
    paths = {k: item.path for k, item in enumerate(items) if item.kind != "text"}
    results = {signal: with_media(result, paths) for signal, result in results.items()}
    truth = run.truth.lookup({"key": key, "id": row.id, "task": row.task}) if run.truth is not None else None
    gold = expected_units(first, truth) if truth is not None else None
    return OpenedSample(key, results, items, gold, tuple(notes))


def show_sample(session: Session, opened: OpenedSample) -> None:
    """Make the opened sample the session's trace: every signal's result, the first one shown."""
    first = next(iter(opened.results))
    result = opened.results[first]
    run_items = tuple(item.to_engine() for item in opened.items)
    settings: dict[str, Any] = {}
    if run_items:  # what Compare signals needs to trace the same generation with other signals
        settings = {"generation": result.generation, "sources": result.source_config,
                    **({"answer": result.text} if result.forced else {}),
                    **({"heads": True} if result.heads is not None else {})}
    session.restore(Generation(dict(opened.results), first, first, run_items, settings, opened.gold))
    session.run_key = opened.key


# --------------------------------------------------------------------------------------------
# Builder
# --------------------------------------------------------------------------------------------
@dataclass
class RunsPanel:
    files: gr.File
    folder: gr.Dropdown | None
    load: gr.Button | None
    summary: gr.HTML
    text: gr.Textbox
    status: gr.Dropdown
    task: gr.Dropdown
    table: gr.HTML
    task_plot: gr.Plot
    mass_plot: gr.Plot
    confidence_plot: gr.Plot


def build_runs_panel(data_dir: Path | None) -> RunsPanel:
    """The Runs tab's components (events are wired in ``components.blocks``)."""
    from .plots import confidence_histogram, modality_mass_figure, task_f1_figure

    gr.Markdown("Browse a batch run: the `.jsonl` output of `python -m omnitrace_core trace` or `verify` (several "
                "files, e.g. one per signal), optionally a ground-truth `.json` (F1 and the expected sources) and the "
                "samples `.json` with its media (to show them). Click a row to open the sample in the explorer.")
    with gr.Row(equal_height=False):
        files = gr.File(label="Run files, ground truth, samples file and media", file_count="multiple",
                        elem_id="ot-run-files", scale=3)
        folder = load = None
        if data_dir is not None:
            with gr.Column(scale=2):
                folder = gr.Dropdown(folder_files(data_dir), multiselect=True, label="Or from the data folder",
                                     elem_id="ot-run-folder")
                load = gr.Button("Load", elem_id="ot-run-load")
    summary = gr.HTML("", js_on_load=None, elem_id="ot-run-summary", padding=False)
    with gr.Row():
        text = gr.Textbox(label="Filter", placeholder="key, task, answer or error text; Enter applies",
                          elem_id="ot-run-filter", scale=3)
        status = gr.Dropdown(list(STATUS_FILTERS), value="all", label="Show", elem_id="ot-run-status", scale=1)
        task = gr.Dropdown(["all"], value="all", label="Task", elem_id="ot-run-task", scale=1)
    table = gr.HTML(render_table(None), js_on_load=RUNS_JS, elem_id="ot-runs-table", padding=False)
    with gr.Row():
        task_plot = gr.Plot(task_f1_figure(None), show_label=False, elem_id="ot-run-f1")
        mass_plot = gr.Plot(modality_mass_figure(None), show_label=False, elem_id="ot-run-mass")
        confidence_plot = gr.Plot(confidence_histogram(None), show_label=False, elem_id="ot-run-conf")
    return RunsPanel(files, folder, load, summary, text, status, task, table, task_plot, mass_plot, confidence_plot)


def loaded_outputs(session: Session, notes: Sequence[str] = ()) -> tuple[Any, ...]:
    """(summary, table, task dropdown, F1 plot, mass plot, confidence plot) of the session's run."""
    from .plots import confidence_histogram, modality_mass_figure, task_f1_figure

    run = session.run
    tasks = ["all", *(run.tasks() if run is not None else [])]
    return (render_summary(run, notes), query(session), gr.update(choices=tasks, value="all"), task_f1_figure(run),
            modality_mass_figure(run), confidence_histogram(run))
