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


def first_line(err: BaseException | str, fallback: str | None = None) -> str:
    """The first line of an error's message (libraries' messages run over several lines), or
    `fallback` (the error's type name if not given) for an empty one."""
    text = str(err).strip()
    if text:
        return text.splitlines()[0]
    return fallback or (type(err).__name__ if isinstance(err, BaseException) else "unknown error")
