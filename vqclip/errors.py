"""The exception family the CLI turns into exit codes."""

from __future__ import annotations


class VqclipError(Exception):
    """Base error: a message meant for the user, and the exit code it maps to."""

    exit_code = 1


class UsageError(VqclipError):
    """Bad usage, config or input: exit 2, one line, no traceback."""

    exit_code = 2


class ConfigError(UsageError):
    """A config value is unknown, of the wrong type or out of range."""


class ModelError(UsageError):
    """A model is missing, malformed or refused (unsafe pickle, wrong keys)."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint pickle needs a global that is not on the allowlist."""


class DownloadError(VqclipError):
    """A download failed (network, checksum, disk): exit 1."""


class OutOfMemory(VqclipError):
    """The device ran out of memory during a run (its state was saved first): exit 1."""
