"""OmniTrace Explorer: trace what an omni-modal LLM draws on, sentence by sentence.

    python app.py                                  # the tiny demo model, on the CPU, no download
    python app.py --model Qwen/Qwen2.5-Omni-7B     # a real checkpoint (Hub id or local folder), GPU if any
    OMNITRACE_MODEL=Qwen/Qwen2.5-Omni-7B python app.py   # the same, as Hugging Face Spaces configure it

Thin on purpose: settings -> tracer -> build_app -> launch. Panels live in components/.
"""

from __future__ import annotations

import logging

from components.blocks import build_app, launch_options
from components.model_loading import load_tracer
from components.settings import parse_args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_args(argv)
    tracer, model_name, device = load_tracer(settings)
    demo = build_app(tracer, settings, model_name=model_name, device=device)
    demo.launch(**launch_options(settings))


if __name__ == "__main__":
    main()
