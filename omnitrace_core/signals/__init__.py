"""Scoring signals, registered by name: attmean, attraw, attgrads, occlusion, and any user-registered one."""

from . import attention, gradient, occlusion  # noqa: F401  (registers the built-in signals)
from .base import DEFAULT_SIGNAL, Signal, get_signal, list_signals, register_signal

__all__ = ["DEFAULT_SIGNAL", "Signal", "get_signal", "list_signals", "register_signal"]
