"""The input composer: text, image, audio and video items in any order; reorder, remove, load samples.

Handlers are plain functions over a list of :class:`ComposedItem` (kept in a per-session
``gr.State``); the builder only wires them to components.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import gradio as gr

from omnitrace_core import InputError
from omnitrace_core.speech import load_transcript, validate_segments

from . import alerts
from .explorer_view import esc
from .input_checks import EXTENSIONS, check_media, check_text
from .samples import SampleFile, gallery, read_sample_file, sample_items
from .session import ComposedItem
from .settings import InputLimits

logger = logging.getLogger(__name__)

ICONS = {"text": "T", "image": "IMG", "audio": "AUD", "video": "VID"}


# -- handlers (plain functions) -----------------------------------------------------------------
def add_text(items: Sequence[ComposedItem], text: str, is_prompt: bool, limits: InputLimits) -> list[ComposedItem]:
    """Append a text item (an instruction when ``is_prompt``)."""
    check_text(text)
    if len(items) >= limits.max_items:
        raise InputError(f"at most {limits.max_items} items; remove one first")
    return [*items, ComposedItem(kind="text", text=text, is_prompt=bool(is_prompt))]


def add_files(items: Sequence[ComposedItem], files: Sequence[str] | None,
              limits: InputLimits) -> tuple[list[ComposedItem], list[str]]:
    """Append uploaded media files, each checked (type, decodability, limits).

    Returns:
        (the new item list, one message per rejected file).
    """
    out, problems = list(items), []
    for path in files or []:
        name = Path(path).name
        if len(out) >= limits.max_items:
            problems.append(f"{name}: at most {limits.max_items} items")
            continue
        try:
            info = check_media(path, limits)
        except InputError as exc:  # MediaError included
            problems.append(str(exc))
            continue
        out.append(ComposedItem(kind=info["kind"], path=str(path), name=name, width=info.get("width", 0),
                                height=info.get("height", 0), duration=info.get("duration", 0.0)))
    return out, problems


UNIT_MODES = (("Time bins", "bins"), ("Speech recognition (ASR)", "asr"), ("Transcript file", "transcript"))
TRANSCRIPT_TYPES = (".srt", ".vtt", ".json")


def timed_items(items: Sequence[ComposedItem]) -> list[tuple[str, int]]:
    """Dropdown choices: the audio and video items, by position."""
    return [(f"#{k + 1} {item.summary()}", k) for k, item in enumerate(items) if item.kind in ("audio", "video")]


def set_units(items: Sequence[ComposedItem], index: int | None, mode: str,
              transcript_path: str | None) -> list[ComposedItem]:
    """Choose the source units of one audio or video item: time bins, ASR segments or a transcript.

    An uploaded transcript is read and checked against the item's duration here, so a bad file
    is reported at once, not when tracing.
    """
    if index is None or not 0 <= int(index) < len(items) or items[int(index)].kind not in ("audio", "video"):
        raise InputError("choose an audio or video item first")
    index = int(index)
    item = items[index]
    if mode == "bins":
        transcript = ""
    elif mode == "asr":
        transcript = "asr"
    elif mode == "transcript":
        if not transcript_path:
            raise InputError("upload a transcript file first (.srt, .vtt or .json)")
        if Path(transcript_path).suffix.lower() not in TRANSCRIPT_TYPES:
            raise InputError(f"{Path(transcript_path).name}: a transcript must be an .srt, .vtt or .json file")
        validate_segments(load_transcript(transcript_path), duration=item.duration or None)
        transcript = str(transcript_path)
    else:
        raise InputError(f"unknown source-unit mode '{mode}'; choose one of {[m for _, m in UNIT_MODES]}")
    out = list(items)
    out[index] = replace(item, transcript=transcript)
    return out


def move_item(items: Sequence[ComposedItem], index: int, delta: int) -> list[ComposedItem]:
    """Move item ``index`` by ``delta`` places (clamped to the list)."""
    out = list(items)
    if not 0 <= index < len(out):
        return out
    target = min(max(index + delta, 0), len(out) - 1)
    out.insert(target, out.pop(index))
    return out


def remove_item(items: Sequence[ComposedItem], index: int) -> list[ComposedItem]:
    return [item for k, item in enumerate(items) if k != index]


def item_row_html(index: int, item: ComposedItem) -> str:
    """One row of the item list (escaped)."""
    role = "instruction" if item.is_prompt else item.kind
    return (f'<div class="ot-row" data-kind="{esc(item.kind)}" data-index="{index}">'
            f'<span class="ot-badge ot-m-{esc(item.kind)}">{esc(role)}</span>'
            f'<span class="ot-rowtext">{esc(item.summary())}</span></div>')


def read_samples(files: Sequence[str] | None) -> tuple[SampleFile | None, list[tuple[str, str]]]:
    """Read an uploaded sample file (the .json among ``files``; the others are its media)."""
    files = list(files or [])
    if not files:
        return None, []
    jsons = [f for f in files if Path(f).suffix.lower() == ".json"]
    if len(jsons) != 1:
        raise InputError("upload exactly one .json sample file (and, optionally, the media files it names)")
    sample_file = read_sample_file(jsons[0], [f for f in files if f not in jsons])
    return sample_file, sample_file.choices()


# -- builder ------------------------------------------------------------------------------------
@dataclass
class ComposePanel:
    items: gr.State


def _gr_error(exc: Exception) -> gr.Error:
    return alerts.error(exc, title="Input problem")


def build_compose_panel(limits: InputLimits, roots: Sequence[Path]) -> ComposePanel:
    """The input column: item list, add text / media, sample files and the examples gallery.

    Args:
        limits: input guards.
        roots: folders a sample file's media may come from (uploads, the bundled examples).
    """
    items = gr.State([])
    gr.Markdown("### Input", elem_classes="ot-panel-title")
    with gr.Group(elem_classes="ot-itemlist"):
        @gr.render(inputs=items)
        def _render(current: list[ComposedItem]) -> None:
            if not current:
                gr.HTML('<div class="ot-row ot-row-empty">No items yet: add text and media below, '
                        'or pick an example.</div>', js_on_load=None, padding=False)
            for k, item in enumerate(current):
                with gr.Row(equal_height=True, elem_classes="ot-itemrow"):
                    gr.HTML(item_row_html(k, item), js_on_load=None, padding=False, scale=8, min_width=120)
                    up = gr.Button("\u2191", size="sm", scale=0, min_width=34, elem_classes="ot-up", interactive=k > 0)
                    down = gr.Button("\u2193", size="sm", scale=0, min_width=34, elem_classes="ot-down",
                                     interactive=k < len(current) - 1)
                    remove = gr.Button("\u2715", size="sm", scale=0, min_width=34, elem_classes="ot-rm")
                up.click(lambda its, k=k: move_item(its, k, -1), items, items, api_visibility="private")
                down.click(lambda its, k=k: move_item(its, k, 1), items, items, api_visibility="private")
                remove.click(lambda its, k=k: remove_item(its, k), items, items, api_visibility="private")

    with gr.Tab("Text"):
        text = gr.Textbox(label="Text", lines=3, placeholder="A question, a passage, a caption...", elem_id="ot-text-in")
        with gr.Row():
            is_prompt = gr.Checkbox(label="Instruction (not a source)", value=False, elem_id="ot-is-prompt", scale=2)
            add_btn = gr.Button("Add text", size="sm", elem_id="ot-add-text", variant="primary", scale=1)
    with gr.Tab("Media"):
        upload = gr.File(label="Image, audio or video files (several keep their order)", file_count="multiple",
                         file_types=[ext for exts in EXTENSIONS.values() for ext in exts], elem_id="ot-media-in")
    with gr.Tab("Sample file"):
        sample_state = gr.State(None)
        # no height cap: every uploaded file stays listed; the sample picker has the column's full width
        sample_upload = gr.File(label="Official OmniTrace JSON sample file (+ the media it names)", file_count="multiple",
                                file_types=[".json"] + [ext for exts in EXTENSIONS.values() for ext in exts],
                                elem_id="ot-sample-in")
        sample_key = gr.Dropdown(label="Sample", choices=[], interactive=True, elem_id="ot-sample-key")
        load_btn = gr.Button("Load sample", size="sm", elem_id="ot-load-sample")
    with gr.Tab("Speech"):
        gr.Markdown("Source units of an audio or video item: fixed time bins, speech segments found by a "
                    "speech recogniser, or the segments of your own transcript.", elem_classes="ot-hint")
        speech_item = gr.Dropdown(label="Audio or video item", choices=[], interactive=True, elem_id="ot-speech-item")
        speech_mode = gr.Radio(choices=list(UNIT_MODES), value="bins", label="Source units", elem_id="ot-speech-mode")
        transcript_file = gr.File(label="Transcript (.srt, .vtt or .json)", file_types=list(TRANSCRIPT_TYPES),
                                  elem_id="ot-transcript-in", height=100)
        speech_apply = gr.Button("Apply", size="sm", elem_id="ot-speech-apply")
    clear_btn = gr.Button("Clear all items", size="sm", variant="secondary", elem_id="ot-clear")

    def on_set_units(current, index, mode, transcript):
        try:
            return set_units(current, index, mode, transcript)
        except InputError as exc:
            raise _gr_error(exc) from exc

    def on_add_text(current, value, prompt):
        try:
            return add_text(current, value, prompt, limits), ""
        except InputError as exc:
            raise _gr_error(exc) from exc

    def on_upload(current, files):
        # each rejected file is reported once: one error when nothing was added, else a warning per file
        new, problems = add_files(current, files, limits)
        if problems and len(new) == len(current):
            raise alerts.error("; ".join(problems), title="File not added")
        for problem in problems:
            alerts.warning(problem, title="File not added")
        return new

    def on_sample_upload(files):
        try:
            sample_file, choices = read_samples(files)
        except InputError as exc:
            raise _gr_error(exc) from exc
        first = choices[0][1] if choices else None
        return sample_file, gr.update(choices=choices, value=first)

    def on_load_sample(sample_file, key):
        if sample_file is None or not key:
            raise alerts.error("upload a sample file and choose a sample first", title="Input problem")
        try:
            return sample_items(sample_file, key, limits, roots)
        except InputError as exc:
            raise _gr_error(exc) from exc

    add_btn.click(on_add_text, [items, text, is_prompt], [items, text], api_name="add_text")
    text.submit(on_add_text, [items, text, is_prompt], [items, text], api_visibility="private")
    # the Media box is emptied after every upload, added or not: a rejected file is never sent again
    # (both outcomes named: Gradio 6.31's page does not run a .then step after a failed event)
    added = upload.upload(on_upload, [items, upload], items, api_name="add_media")
    for outcome in (added.success, added.failure):
        outcome(lambda: None, None, upload, queue=False, api_visibility="private")
    sample_upload.upload(on_sample_upload, sample_upload, [sample_state, sample_key], api_name="read_samples")
    load_btn.click(on_load_sample, [sample_state, sample_key], items, api_name="load_sample")
    clear_btn.click(lambda: [], None, items, api_name="clear_items")
    items.change(lambda current: gr.update(choices=timed_items(current), value=None), items, speech_item,
                 api_visibility="private")
    speech_apply.click(on_set_units, [items, speech_item, speech_mode, transcript_file], items, api_name="set_units")

    return ComposePanel(items=items)


def build_gallery(gallery_file: SampleFile | None) -> gr.Dataset | None:
    """The bundled examples as a clickable table (None when there are none)."""
    if gallery_file is None:
        return None
    gr.Markdown("#### Examples: one click loads and traces", elem_classes="ot-panel-title")
    labels = [label for label, _ in gallery_file.choices()]
    return gr.Dataset(components=["textbox"], samples=[[label] for label in labels], type="index", label="Examples",
                      show_label=False, elem_id="ot-gallery", layout="table", samples_per_page=8)


def load_gallery_example(index: int, gallery_file: SampleFile | None, limits: InputLimits) -> list[ComposedItem]:
    """The items of gallery example ``index``."""
    if gallery_file is None or not 0 <= int(index) < len(gallery_file.keys):
        raise InputError(f"no example number {index}")
    return sample_items(gallery_file, gallery_file.keys[int(index)], limits)


__all__ = ["ComposePanel", "add_files", "build_gallery", "gallery", "add_text", "build_compose_panel", "item_row_html", "load_gallery_example",
           "move_item", "read_samples", "remove_item"]
