"""Pop-ups show untrusted text literally: every one goes through components.alerts, which escapes it."""

from __future__ import annotations

import ast
from pathlib import Path

import gradio as gr
import pytest

from components import alerts

COMPONENTS = Path(alerts.__file__).resolve().parent
PROBE = '<a href="https://evil.example/">sign in</a><input type=password><img src=x onerror="alert(1)"> & more'
PLAIN = ('&lt;a href="https://evil.example/"&gt;sign in&lt;/a&gt;&lt;input type=password&gt;'
         '&lt;img src=x onerror="alert(1)"&gt; &amp; more')


def test_an_error_shows_its_message_and_title_as_plain_text():
    error = alerts.error(PROBE, title="<b>Load</b>")
    assert isinstance(error, gr.Error)
    assert error.message == PLAIN and error.title == "&lt;b&gt;Load&lt;/b&gt;"
    assert alerts.error(ValueError("it's <b>")).message == "it's &lt;b&gt;"  # exceptions are shown by their text


def test_warnings_and_infos_show_their_message_as_plain_text(capsys):
    # outside an event Gradio reports a warning as a Python warning and prints an info, with the message
    # it would show in the pop-up
    with pytest.warns(UserWarning) as caught:
        alerts.warning(PROBE)
    assert [str(w.message) for w in caught] == [PLAIN]
    alerts.info(PROBE)
    assert capsys.readouterr().out.strip() == PLAIN


def _popups_outside_alerts() -> list[str]:
    found = []
    for path in sorted(COMPONENTS.rglob("*.py")):
        if path.name == "alerts.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("Error", "Warning", "Info")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("gr", "gradio")):
                found.append(f"{path.relative_to(COMPONENTS)}:{node.lineno} gr.{node.func.attr}")
    return found


def test_every_popup_goes_through_the_escaping_helpers():
    assert _popups_outside_alerts() == []
