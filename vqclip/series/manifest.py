"""The manifest of a series: an append-only JSON-lines record of every item's outcome."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from vqclip.errors import VqclipError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"


class Manifest:
    """An append-only JSON-lines file; each append is one line written under a file lock.

    Concurrent shards may share one manifest: the lock (a `.lock` file beside it) serialises
    appends, and a line torn by a crash is skipped on reading, never fatal.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")

    def append(self, record: dict[str, Any]) -> None:
        """Add one record as one line (fsynced before the lock is released)."""
        line = json.dumps(record, sort_keys=False, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    if _ends_without_newline(self.path):
                        line = "\n" + line  # heal a line torn by a crash
                    os.write(fd, line.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as err:
            raise VqclipError(f"cannot append to {self.path}: {err.strerror or err}") from None

    def records(self) -> list[dict[str, Any]]:
        """Every well-formed record, in file order."""
        if not self.path.exists():
            return []
        records = []
        for number, text in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON (torn write?); ignored", self.path, number)
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def finished(self) -> set[str]:
        """Keys of items whose latest record says ok."""
        latest: dict[str, str] = {}
        for record in self.records():
            if "key" in record:
                latest[record["key"]] = record.get("status", "")
        return {key for key, status in latest.items() if status == "ok"}


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) != b"\n"
