"""Reading append-only JSON-lines files: whole, or only what was appended since the last read."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def parse_line(raw: bytes, path: Path, number: int) -> dict[str, Any] | None:
    """One line as a record; None (with a warning) for a line torn by a crash, one that is not
    UTF-8, or one that holds no JSON object."""
    if not raw.strip():
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        log.warning("%s line %d is not a JSON record (torn write?); ignored", path, number)
        return None
    return record if isinstance(record, dict) else None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every well-formed record of a JSON-lines file, in file order (none if it is missing)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    parsed = (parse_line(raw, path, number) for number, raw in enumerate(data.splitlines(), 1))
    return [record for record in parsed if record is not None]


class Tail:
    """Follows one JSON-lines file: each `read` returns only the whole lines appended since the
    last, so that reading a growing file costs what was added, not its size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # bytes consumed: always just after a newline
        self.lines = 0
        self.identity: tuple[int, int] | None = None  # (device, inode) of the file being followed

    def read(self) -> tuple[bool, list[dict[str, Any]]]:
        """(restarted, new records): `restarted` when the file was replaced or truncated since the
        last read, and the records are then the whole file's."""
        try:
            with open(self.path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                identity = (stat.st_dev, stat.st_ino)
                restarted = self.offset > 0 and (identity != self.identity or stat.st_size < self.offset)
                if restarted:
                    self.offset = self.lines = 0
                self.identity = identity
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            restarted = self.offset > 0
            self.offset = self.lines = 0
            self.identity = None
            return restarted, []
        whole = data[: data.rfind(b"\n") + 1]  # a last line without its newline is still being written
        self.offset += len(whole)
        records = []
        for raw in whole.split(b"\n")[:-1]:
            self.lines += 1
            record = parse_line(raw, self.path, self.lines)
            if record is not None:
                records.append(record)
        return restarted, records
