"""The manifest of a series: an append-only JSON-lines record of every item's outcome, and beside
it (claims.jsonl) which process took which item, so that processes sharing a folder never run an
item twice."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from filelock import FileLock

from vqclip.errors import VqclipError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
CLAIMS_NAME = "claims.jsonl"


class Manifest:
    """An append-only JSON-lines file; each append is one line written under a file lock.

    Concurrent shards may share one manifest: the lock (a `.lock` file beside it) serialises
    appends, and a line torn by a crash is skipped on reading, never fatal.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.claims_path = self.path.with_name(CLAIMS_NAME)
        self._lock = FileLock(str(self.path) + ".lock")

    def append(self, record: dict[str, Any]) -> None:
        """Add one record as one line (fsynced before the lock is released)."""
        self._append(self.path, record)

    def records(self) -> list[dict[str, Any]]:
        """Every well-formed record, in file order."""
        return _read(self.path)

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=False, default=str) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    if _ends_without_newline(path):
                        line = "\n" + line  # heal a line torn by a crash
                    os.write(fd, line.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as err:
            raise VqclipError(f"cannot append to {path}: {err.strerror or err}") from None

    def claim(self, key: str, session: str, **fields: Any) -> bool:
        """Take item `key` for this process, under the lock; False when it is finished, was
        already tried in this `session` (one invocation of a series), or is claimed by a live
        process. A claim whose process has died is taken over."""
        with self._lock:
            outcomes = [r for r in self.records() if r.get("key") == key]
            claims = [r for r in _read(self.claims_path) if r.get("key") == key]
            if outcomes and outcomes[-1].get("status") == "ok":
                return False
            if any(r.get("session") == session for r in outcomes + claims):
                return False
            ended = {r.get("session") for r in outcomes}
            me = owner()
            if any(claim.get("session") not in ended and _alive(claim, me) for claim in claims):
                return False
            self._append(self.claims_path, {
                "key": key, "session": session, **me, **fields,
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            return True

    def finished(self) -> set[str]:
        """Keys of items whose latest record says ok."""
        latest: dict[str, str] = {}
        for record in self.records():
            if "key" in record:
                latest[record["key"]] = record.get("status", "")
        return {key for key, status in latest.items() if status == "ok"}


def _read(path: Path) -> list[dict[str, Any]]:
    """Every well-formed record of a JSON-lines file, in file order (none if it is missing)."""
    if not path.exists():
        return []
    records = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (torn write?); ignored", path, number)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) != b"\n"


def owner() -> dict[str, Any]:
    """This process, as a claim names it: host, pid and the pid's start time (pids are reused)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _alive(record: dict[str, Any], me: dict[str, Any]) -> bool:
    """Whether the process that made claim `record` still runs, other than this one (whose
    earlier sessions have ended). One on another machine cannot be checked and is taken to."""
    if all(record.get(key) == value for key, value in me.items()):
        return False
    if record.get("host") != me["host"]:
        return True
    pid = record.get("pid")
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return record.get("started") is None or record.get("started") == _start_time(int(pid))


def _start_time(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (Linux); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
