"""The explorer's pop-ups: every ``gr.Error``, ``gr.Warning`` and ``gr.Info`` is made here.

Gradio renders a pop-up's message as HTML: a sample id, a trace field or a transcript line
echoed into it would show live links, images and form fields. These helpers escape the message
and the title, so no caller can forget (``tests/components/test_alerts.py`` checks that nothing
else in ``components/`` builds a pop-up). Quotes stay as they are: outside a tag they are
harmless, and ``gradio_client`` users read the message as plain text.
"""

from __future__ import annotations

import html

import gradio as gr


def _plain(text: object) -> str:
    return html.escape(str(text), quote=False)


def error(message: object, title: str = "Error") -> gr.Error:
    """A ``gr.Error`` (to raise) that shows ``message`` as plain text."""
    return gr.Error(_plain(message), title=_plain(title))


def warning(message: object, title: str = "Warning") -> None:
    """Show ``message`` as plain text in a warning pop-up (the event goes on)."""
    gr.Warning(_plain(message), title=_plain(title))


def info(message: object, title: str = "Info") -> None:
    """Show ``message`` as plain text in an information pop-up."""
    gr.Info(_plain(message), title=_plain(title))
