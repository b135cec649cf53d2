"""OmniTrace Explorer: trace what an omni-modal LLM draws on, sentence by sentence.

    python app.py                                  # the tiny demo model, on the CPU, no download
    python app.py --model Qwen/Qwen2.5-Omni-7B     # a real checkpoint (Hub id or local folder), GPU if any
    OMNITRACE_MODEL=Qwen/Qwen2.5-Omni-7B python app.py   # the same, as Hugging Face Spaces configure it

Thin on purpose: settings -> tracer -> build_app -> launch. Panels live in components/.
"""

from __future__ import annotations

import logging
import os
import signal

from components.blocks import build_app, launch_options
from components.model_loading import load_tracer
from components.session import remove_temp_root, temp_root
from components.settings import AppSettings, parse_args
from omnitrace_core.errors import OmniTraceError


def load_or_exit(settings: AppSettings):
    """The tracer, or exit with one line saying why the model cannot be served (no traceback): an
    unsupported architecture (the line lists the supported ones), remote code not opted into, a
    folder or Hub id that cannot be read."""
    try:
        return load_tracer(settings)
    except (OmniTraceError, OSError) as exc:
        reason = " ".join(str(exc).split())
        raise SystemExit(f"omnitrace: cannot serve {settings.model or 'the bundled demo model'}: {reason}") from None


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_args(argv)
    # Python's default for SIGTERM (how Spaces, docker and systemd stop a process) ends it at once,
    # with no cleanup; as a KeyboardInterrupt it shuts down like Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Gradio's uploads and copies of served files go into this process's temporary folder too (read
    # when the app is built), so that removing that one folder at shutdown leaves nothing behind.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(temp_root() / "gradio"))
    try:
        tracer, model_name, device = load_or_exit(settings)
        demo = build_app(tracer, settings, model_name=model_name, device=device)
        demo.launch(**launch_options(settings))  # returns when interrupted, after closing the server
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("interrupted before the server started")
    finally:
        remove_temp_root()


if __name__ == "__main__":
    main()
