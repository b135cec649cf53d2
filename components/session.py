"""Per-session state: one user's composed input, their traces, their stop switch and temp folder.

A :class:`Session` lives in a ``gr.State`` (created fresh for each browser session), so no user
ever sees another's inputs or results. Its temporary folder is removed when Gradio drops the
state (tab closed, or time-to-live over) and, for whatever is left, when the process exits.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnitrace_core import AudioItem, CurationConfig, ImageItem, TextItem, TraceResult, VideoItem
from omnitrace_core.result import ItemInfo

from .previews import PreviewCache

logger = logging.getLogger(__name__)

_TEMP_ROOT: Path | None = None


def temp_root() -> Path:
    """The process's temporary folder for session files (removed at exit)."""
    global _TEMP_ROOT  # one folder per process, created on first use; not model or run state
    if _TEMP_ROOT is None or not _TEMP_ROOT.exists():
        _TEMP_ROOT = Path(tempfile.mkdtemp(prefix="omnitrace_explorer_"))
        atexit.register(shutil.rmtree, _TEMP_ROOT, True)
    return _TEMP_ROOT


def remove_temp_root() -> None:
    """Delete the process's temporary folder now, with every session's files (app.py's shutdown)."""
    global _TEMP_ROOT
    if _TEMP_ROOT is not None:
        shutil.rmtree(_TEMP_ROOT, ignore_errors=True)
        _TEMP_ROOT = None


@dataclass(frozen=True)
class ComposedItem:
    """One input item as composed in the UI.

    Attributes:
        kind: "text", "image", "audio" or "video".
        text: the text (text items).
        is_prompt: the text is the task instruction (not a source unless asked).
        path: the media file (media items).
        name: display name of the media file.
        width, height, duration: what the upload check measured.
        transcript: source units of an audio or video item: "" time bins, "asr" speech segments
            from the recogniser, or the path of an uploaded transcript (.srt, .vtt, .json).
    """

    kind: str
    text: str = ""
    is_prompt: bool = False
    path: str = ""
    name: str = ""
    width: int = 0
    height: int = 0
    duration: float = 0.0
    transcript: str = ""

    def to_engine(self):
        """The engine's item for this one."""
        if self.kind == "text":
            return TextItem(self.text, is_prompt=self.is_prompt)
        if self.kind == "image":
            return ImageItem(self.path, name=self.name)
        cls = AudioItem if self.kind == "audio" else VideoItem
        return cls(self.path, name=self.name, transcript=self.transcript or None)

    def units_label(self) -> str:
        """How an audio or video item is cut into source units ("" for other items)."""
        if self.kind not in ("audio", "video"):
            return ""
        if self.transcript == "asr":
            return "speech (ASR)"
        return f"transcript {Path(self.transcript).name}" if self.transcript else "time bins"

    def info(self, index: int) -> ItemInfo:
        """A stand-in for the result's ItemInfo, to show inputs before a trace exists."""
        label = self.name or (" ".join(self.text.split())[:40])
        return ItemInfo(index=index, modality=self.kind, label=label, is_prompt=self.is_prompt,
                        text=self.text if self.kind == "text" else None, path=self.path or None)

    def summary(self) -> str:
        if self.kind == "text":
            words = " ".join(self.text.split())
            return (words[:70] + "...") if len(words) > 70 else words
        name = self.name or Path(self.path).name
        if self.kind == "image":
            return f"{name} ({self.width}x{self.height})" if self.width else name
        timed = f"{name} ({self.duration:.1f} s)" if self.duration else name
        return f"{timed} \u00b7 {self.units_label()}"


@dataclass(frozen=True)
class Generation:
    """What one generation left in a session (see ``Session``), kept to put back if the next one fails."""

    results: dict[str, TraceResult]
    base_signal: str | None
    view_signal: str | None
    run_items: tuple[Any, ...]
    run_settings: dict[str, Any]
    gold: dict[int, list[int]] | None = None


@dataclass
class Session:
    """Everything one browser session owns.

    The composed input list lives in its own ``gr.State`` (the item list re-renders on it).

    Attributes:
        results: traces of the last generation, by signal name (raw, as generated).
        base_signal: the signal of the first trace of that generation (the reference for comparisons).
        view_signal: the signal the explorer shows.
        curation: the current curation settings (applied with ``recurate``).
        run_items: the items of the last generation, as given to the engine (for re-tracing).
        run_settings: signal-independent settings of the last generation (source/generation configs).
        stop: set to end the running generation early, or to cancel a queued one before it starts.
        stop_reply: held by Stop while it decides what to answer; a verification takes it before it sends its
            final status, so that Stop's reply cannot arrive after it and overwrite it.
        queued: Trace was pressed and its run has not started yet.
        running: a run of this session is generating or verifying.
        activity: what the running (or last) run does: "trace" or "verify" (Stop's message says what it stops).
        run: the batch run loaded in the Runs tab (``components.runs.Run``), with ``run_query`` its table's
            filter, sort and page, and ``run_key`` the sample opened from it.
        gold: per output sentence, the units the ground truth expects (a sample opened from a run with labels).
        selection: what was last clicked in the explorer (``span``, ``token``, ``unit``), for the layer x head map.
    """

    results: dict[str, TraceResult] = field(default_factory=dict)
    base_signal: str | None = None
    view_signal: str | None = None
    curation: CurationConfig = field(default_factory=lambda: CurationConfig(use_p_min=True))
    run_items: tuple[Any, ...] = ()
    run_settings: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reply: threading.Lock = field(default_factory=threading.Lock)
    queued: bool = False
    running: bool = False
    activity: str = "trace"
    run: Any = None
    run_query: dict[str, Any] = field(default_factory=dict)
    run_key: str | None = None
    gold: dict[int, list[int]] | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    _workdir: Path | None = None
    _previews: PreviewCache | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __deepcopy__(self, memo: dict) -> "Session":
        # gr.State deep-copies its initial value; a fresh session is what every copy should be
        return Session()

    @property
    def workdir(self) -> Path:
        """This session's private temporary folder (exports are written here)."""
        with self._lock:
            if self._workdir is None or not self._workdir.exists():
                self._workdir = Path(tempfile.mkdtemp(prefix="session_", dir=temp_root()))
            return self._workdir

    def preview_cache(self, factory) -> PreviewCache:
        if self._previews is None:
            self._previews = factory(self)
        return self._previews

    def shown(self) -> TraceResult | None:
        """The result the explorer shows, curated with the current settings."""
        result = self.results.get(self.view_signal or "") if self.view_signal else None
        if result is None:
            return None
        return result if result.curation == self.curation else result.recurate(self.curation)

    def store_verification(self, signal: str, verification: Any) -> TraceResult:
        """Keep a verification with the result of ``signal`` (``shown()`` carries it over any re-curation);
        returns the stored result. ``Tracer.verify`` returns what the result held in the same mode merged
        with what it measured: it replaces the stored one (``TraceResult.with_verification``).
        """
        self.results[signal] = self.results[signal].with_verification(verification)
        return self.results[signal]

    def saved(self) -> Generation:
        """The current generation, to ``restore`` if what replaces it fails."""
        return Generation(dict(self.results), self.base_signal, self.view_signal, self.run_items,
                          dict(self.run_settings), self.gold)

    def restore(self, generation: Generation) -> None:
        self.gold, self.selection = generation.gold, {}
        self.results = dict(generation.results)
        self.base_signal, self.view_signal = generation.base_signal, generation.view_signal
        self.run_items, self.run_settings = generation.run_items, dict(generation.run_settings)

    def new_generation(self, signal: str, run_items: tuple[Any, ...], settings: dict[str, Any]) -> Generation:
        """Start a generation; returns the previous one (to ``restore`` if this one fails)."""
        previous = self.saved()
        self.restore(Generation({}, signal, signal, run_items, dict(settings)))
        return previous

    def adopt(self, result: TraceResult) -> Generation:
        """Show a loaded trace, curated with the current knobs (no items to re-run with: comparing
        signals needs a new generation). Returns the previous generation."""
        previous = self.saved()
        self.restore(Generation({result.signal: result}, result.signal, result.signal, (), {}))
        return previous

    def close(self) -> None:
        """Stop any generation and delete this session's files."""
        self.stop.set()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def new_session() -> Session:
    """gr.State factory: a fresh session per browser session."""
    return Session()


def close_session(session: Session | None) -> None:
    """gr.State delete callback."""
    if session is not None:
        session.close()
