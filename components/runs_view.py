"""The Runs table and its summary line as escaped HTML (pure: a loaded run's page in, HTML out).

Rows carry ``data-key`` (click: open the sample in the explorer), column heads ``data-sort`` and the
pager's buttons ``data-page``; the panel's script turns clicks on them into one event (see
``components/runs_panel.py``). Every value from a run file passes through ``html.escape``.
"""

from __future__ import annotations

from typing import Sequence

from .explorer_view import esc
from .runs import Page, Row, Run

#: (column, heading, tooltip) in table order; every column sorts.
HEADINGS = (
    ("key", "sample", "the sample's key (id, or id:task)"),
    ("task", "task", "the sample's task"),
    ("status", "status", "ok, or the error that stopped the sample"),
    ("answer", "model answer",
     "the traced answer (a given one with --trace-answer); \u2713/\u2717: it matches the expected one"),
    ("expected", "expected", "the sample's \"answer\" field"),
    ("sentences", "sent.", "output sentences"),
    ("unsupported", "no src", "sentences without a curated source"),
    ("confidence", "conf.", "mean sentence confidence"),
    ("f1", "F1", "mean F1 against the ground truth (scored sentence and modality pairs)"),
    ("comprehensiveness", "compr.",
     "mean comprehensiveness of verified sentences (nats; higher: the citation holds what the sentence needs)"),
    ("sufficiency", "suff.", "mean sufficiency of verified sentences (nats; lower: the citation is enough)"),
    ("agreement", "agree", "mean per-sentence Jaccard of curated sources between the run's signals"),
)


def _num(value: float | None, digits: int = 2) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    return "\u2013" if value is None else str(value)


def _clip(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "\u2026"


def _answer_cell(row: Row) -> str:
    mark = {True: '<b class="ot-ok">\u2713</b> ', False: '<b class="ot-bad">\u2717</b> ', None: ""}[row.answer_ok]
    forced = ' <span class="ot-tag" title="a given answer, teacher-forced">given</span>' if row.forced else ""
    return f'<td class="ot-rtext" title="{esc(row.answer)}">{mark}{esc(_clip(row.answer))}{forced}</td>'


def _status_cell(row: Row) -> str:
    if row.status == "ok":
        return '<td><span class="ot-pill ot-pill-ok">ok</span></td>'
    return (f'<td class="ot-rtext" title="{esc(row.error)}"><span class="ot-pill ot-pill-err">error</span> '
            f'{esc(_clip(row.error, 60))}</td>')


def _row_html(row: Row, selected: str | None) -> str:
    cls = "ot-rrow ot-rsel" if row.key == selected else "ot-rrow"
    f1 = f'<td class="ot-rnum ot-rf1" style="--ot-s:{row.f1:.3f}">{row.f1:.2f}</td>' if row.f1 is not None \
        else '<td class="ot-rnum">\u2013</td>'
    return (f'<tr class="{cls}" data-key="{esc(row.key)}" tabindex="0" role="button" '
            f'title="open {esc(row.key)} in the explorer">'
            f'<td class="ot-rkey">{esc(row.key)}</td><td>{esc(row.task)}</td>{_status_cell(row)}{_answer_cell(row)}'
            f'<td class="ot-rtext" title="{esc(row.expected)}">{esc(_clip(row.expected))}</td>'
            f'<td class="ot-rnum">{_count(row.sentences)}</td>'
            f'<td class="ot-rnum{" ot-rwarn" if row.unsupported else ""}">{_count(row.unsupported)}</td>'
            f'<td class="ot-rnum">{_num(row.confidence, 3)}</td>{f1}'
            f'<td class="ot-rnum">{_num(row.comprehensiveness)}</td><td class="ot-rnum">{_num(row.sufficiency)}</td>'
            f'<td class="ot-rnum">{_num(row.agreement)}</td></tr>')


def render_table(page: Page | None, selected: str | None = None) -> str:
    """The page's table with sortable heads and a pager; a prompt to load a run when there is none."""
    if page is None:
        return ('<div class="ot-runs"><p class="ot-empty">Load a run: the <code>.jsonl</code> output of '
                '<code>python -m omnitrace_core trace</code> or <code>verify</code> (several files, e.g. one per '
                'signal), optionally a ground-truth file and the samples file with its media.</p></div>')
    heads = []
    for column, heading, tip in HEADINGS:
        arrow = (" \u25bc" if page.descending else " \u25b2") if column == page.sort else ""
        active = " ot-sorted" if column == page.sort else ""
        heads.append(f'<th><button class="ot-sort{active}" data-sort="{column}" title="{esc(tip)}; click to sort">'
                     f'{esc(heading)}{arrow}</button></th>')
    body = "".join(_row_html(row, selected) for row in page.rows) or \
        f'<tr><td colspan="{len(HEADINGS)}" class="ot-empty">No sample matches the filter.</td></tr>'
    pager = (f'<div class="ot-pager"><button data-page="{page.index - 1}"{" disabled" if page.index == 0 else ""}>'
             f'\u2039 previous</button><span>page {page.index + 1} of {page.pages} \u00b7 {page.matching} of '
             f'{page.total} samples</span><button data-page="{page.index + 1}"'
             f'{" disabled" if page.index >= page.pages - 1 else ""}>next \u203a</button></div>')
    return (f'<div class="ot-runs" data-page="{page.index}" data-pages="{page.pages}" data-matching="{page.matching}">'
            f'{pager}<div class="ot-rscroll"><table class="ot-rtable"><thead><tr>{"".join(heads)}</tr></thead>'
            f'<tbody>{body}</tbody></table></div></div>')


def render_summary(run: Run | None, notes: Sequence[str] = ()) -> str:
    """One block above the table: the files, their signals, counts, and what was (not) found."""
    if run is None:
        return ""
    files = "".join(f'<li><b>{esc(f.name)}</b> \u00b7 signal {esc(f.signal)} \u00b7 {f.records} records'
                    f'{f" ({f.errors} errors)" if f.errors else ""}</li>' for f in run.files)
    ok = sum(1 for r in run.rows if r.status == "ok")
    truth = ("ground truth loaded" if run.truth is not None else "no ground truth (F1 empty)")
    samples = ("samples file loaded: media are shown" if run.samples is not None
               else "no samples file: media are shown only where the traces' own paths are readable here")
    extra = "".join(f'<li class="ot-rnote">{esc(n)}</li>' for n in notes)
    return (f'<div class="ot-runsummary"><p><b>{len(run.rows)}</b> samples, {ok} traced, '
            f'{len(run.rows) - ok} with errors \u00b7 {truth} \u00b7 {samples}</p><ul>{files}{extra}</ul></div>')
