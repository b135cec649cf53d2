"""Exception types raised by omnitrace_core, so callers can tell bad input from bugs."""

from __future__ import annotations


class OmniTraceError(Exception):
    """Base class of every error omnitrace_core raises on purpose."""


class InputError(OmniTraceError, ValueError):
    """An input item or sample is malformed (unknown type, empty text, wrong field)."""


class MediaError(InputError):
    """A media file is missing, unreadable, empty or over a configured limit."""


class ConfigError(OmniTraceError, ValueError):
    """A configuration value is out of its accepted range."""


class UnknownNameError(OmniTraceError, KeyError):
    """A registry lookup (signal, backend, reduction) named something that does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


class UsageError(OmniTraceError):
    """A run was asked for in a way it cannot be done: a bad option or launcher environment, an
    unreadable questions or output file, an output traced with other settings (the CLI exits with 2)."""


class MissingDependencyError(OmniTraceError, ImportError):
    """An optional library is needed for this feature and is not installed."""
