"""Shared file helpers: atomic writes (a temporary file beside the target, renamed into place only
when whole) and file digests."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in `folder`; return them.

    Only for a folder no other process is writing (a run folder whose lock is held)."""
    removed = []
    for path in Path(folder).iterdir():
        if _TEMPORARY.match(path.name) and path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside `target` (same suffix) that replaces it only if the block succeeds.

    A fresh name rather than mkstemp, so the file gets the usual umask-based permissions; the
    suffix stays last because some writers (ffmpeg) pick the format from it.
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise FileExistsError(f"refusing to overwrite {target}")
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{target.suffix}")
    try:
        yield tmp
        if not overwrite and target.exists():  # someone else finished the same name meanwhile
            raise FileExistsError(f"refusing to overwrite {target}")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> None:
    """Write bytes durably (fsync) to a temporary file, then rename it to `path`; an OSError
    (a full disk) names `path`."""
    try:
        with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        if err.filename is not None or err.errno is None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None


def not_a_file(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a file ("file not found", "not a regular file"), or None."""
    path = Path(path)
    if not path.exists():
        return "file not found"
    if path.is_dir():
        return "a folder, not a file"
    if not path.is_file():
        return "not a regular file"
    return None


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON, replacing `path` atomically."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, text.encode(), overwrite=True)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, read once per process while its size and modification time stay
    (model files recorded in every image's metadata); `sha256_file` when it must be read."""
    stat = Path(path).stat()
    return _sha256_of_version(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)

