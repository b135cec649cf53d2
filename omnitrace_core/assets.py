"""Where the bundled assets are: the demo model and the known-truth benchmark.

In a checkout (and an editable install) they are the repository's ``assets/demo_model`` and
``assets/benchmark``; an installed wheel carries them as package data (``omnitrace_core/_bundled``,
mapped from ``assets/`` by pyproject.toml), so ``omnitrace trace`` and ``omnitrace evaluate`` find
their defaults from any folder. The app's CSS and example gallery stay in the checkout: the
explorer runs from it (``python app.py``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: The repository's asset folder, beside the package in a checkout.
CHECKOUT_ASSETS = _PACKAGE.parent / "assets"
#: The copy an installed wheel holds.
INSTALLED_ASSETS = _PACKAGE / "_bundled"


def bundled(name: str) -> Path:
    """The bundled asset folder ``name``: the checkout's when there is one, else the installed copy.

    When neither exists (a checkout trimmed of its assets), the checkout's path is returned, so that
    the message of whoever reads it names where the asset belongs.
    """
    for root in (CHECKOUT_ASSETS, INSTALLED_ASSETS):
        if (root / name).is_dir():
            return root / name
    return CHECKOUT_ASSETS / name


#: The bundled demo model (a tiny trained Qwen2.5-Omni thinker): the CLI's and the app's default.
DEFAULT_MODEL_DIR = bundled("demo_model")
#: The frozen known-truth benchmark (``dev`` and ``test`` splits).
DEFAULT_BENCHMARK_DIR = bundled("benchmark")
