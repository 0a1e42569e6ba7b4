"""Files the gallery may read or link: regular files whose real path stays inside the gallery's tree.

A run folder can hold anything: a `config.yaml` linked to /etc/passwd, a frame that is a FIFO
(opening it would wait for a writer for ever), a link loop. The gallery reads and links only
regular files that resolve to a place under its root, opened without following a last link and
without blocking, and checked again once open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_TEXT = 64 * 1024 * 1024  # bytes read of a config, log or manifest; a longer file is cut there


def real_path(path: Path) -> Path | None:
    """`path` with every link resolved, or None for a link loop or a missing part."""
    try:
        return Path(os.path.realpath(path, strict=True))
    except (OSError, RuntimeError, ValueError):
        return None


class Tree:
    """The gallery's root (resolved) and the checks on what may be shown from under it."""

    def __init__(self, root: Path) -> None:
        self.root = real_path(root) or root.absolute()

    def contains(self, path: Path) -> bool:
        """Whether `path` is the root or under it, once resolved."""
        return path == self.root or self.root in path.parents

    def regular_file(self, path: Path) -> Path | None:
        """The real path of `path` when it is a regular file under the root, else None."""
        real = real_path(path)
        if real is None or not self.contains(real):
            return None
        try:
            return real if stat.S_ISREG(os.lstat(real).st_mode) else None
        except OSError:
            return None

    def folder(self, path: Path) -> bool:
        """Whether `path` is a folder under the root (a link to one out of it is not)."""
        real = real_path(path)
        return real is not None and self.contains(real) and real.is_dir()

    def read_bytes(self, path: Path, limit: int = MAX_TEXT) -> bytes | None:
        """The first `limit` bytes of a regular file under the root, or None for anything else."""
        real = self.regular_file(path)
        if real is None:
            return None
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else meanwhile
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read(limit)
        except OSError:
            return None
        finally:
            os.close(fd)

    def lines(self, path: Path) -> list[str]:
        """The lines of a JSON-lines file that decode as UTF-8; others (torn, `\\xff`) are dropped."""
        data = self.read_bytes(path)
        if data is None:
            return []
        kept = []
        for raw in data.splitlines():
            try:
                kept.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                continue
        return kept

    def files_in(self, folder: Path, suffix: str) -> list[Path]:
        """Regular files named `*suffix` in a folder under the root, by name; links that stay
        inside the tree count, special files and links out of it do not."""
        if not self.folder(folder):
            return []
        found = []
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return []
        for entry in entries:
            if not entry.name.endswith(suffix):
                continue
            try:
                plain = entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if plain or (entry.is_symlink() and self.regular_file(Path(entry.path)) is not None):
                found.append(Path(entry.path))
        return sorted(found)
