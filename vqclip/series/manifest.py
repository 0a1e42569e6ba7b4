"""The manifest of a series: an append-only JSON-lines record of every item's outcome, and beside
it (claims.jsonl) which process took which item, so that processes sharing a folder never run an
item twice."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from vqclip.errors import VqclipError
from vqclip.series.claims import Claim, Heartbeat, alive, describe, lease_seconds, owner
from vqclip.series.jsonlines import Tail, read_records

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
CLAIMS_NAME = "claims.jsonl"


class Manifest:
    """An append-only JSON-lines file; each append is one line written under a file lock.

    Concurrent shards may share one manifest: the lock (a `.lock` file beside it) serialises
    appends, and a line torn by a crash (or not UTF-8) is skipped on reading, never fatal.
    Claims read only what the two files gained since the last claim, so a claim costs the same
    at the ten-thousandth item as at the first.
    """

    def __init__(self, path: str | Path, *, lease: float | None = None) -> None:
        self.path = Path(path)
        self.claims_path = self.path.with_name(CLAIMS_NAME)
        self._lease = lease
        self._lock = FileLock(str(self.path) + ".lock")
        self._outcomes = Tail(self.path)
        self._claims = Tail(self.claims_path)
        self._status: dict[str, str] = {}  # key -> latest outcome's status
        self._ended: dict[str, set[str]] = {}  # key -> sessions with an outcome
        self._held: dict[str, dict[str, dict[str, Any]]] = {}  # key -> session -> its claim
        self._me: dict[str, Any] | None = None

    @property
    def lease(self) -> float:
        """Seconds a claim from another host holds without being renewed (read when first
        needed: reading a manifest needs none)."""
        if self._lease is None:
            self._lease = lease_seconds()
        return self._lease

    def append(self, record: dict[str, Any]) -> None:
        """Add one record as one line (fsynced before the lock is released)."""
        self._append(self.path, record)

    def records(self) -> list[dict[str, Any]]:
        """Every well-formed record, in file order."""
        return read_records(self.path)

    def _append(self, path: Path, *records: dict[str, Any]) -> None:
        text = "".join(json.dumps(record, sort_keys=False, default=str) + "\n" for record in records)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._lock:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
                try:
                    if _ends_without_newline(fd):
                        text = "\n" + text  # heal a line torn by a crash
                    os.write(fd, text.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as err:
            raise VqclipError(f"cannot append to {path}: {err.strerror or err}") from None

    def claim(self, key: str, session: str, **fields: Any) -> Claim:
        """Take item `key` for this process, under the lock; not taken (falsy) when it is finished,
        was already tried in this `session` (one invocation of a series), or is claimed by a
        live process. A claim whose process has died is taken over (and logged)."""
        with self._lock:
            self._refresh()
            ended = self._ended.get(key, set())
            held = self._held.get(key, {})
            if session in ended or session in held:  # before "done": a sibling worker's item is no skip
                return Claim(False, "tried")
            if self._status.get(key) == "ok":
                return Claim(False, "done")
            if self._me is None:
                self._me = owner()
            now = time.time()
            open_claims = [claim for other, claim in held.items() if other not in ended]
            if any(alive(claim, self._me, self.lease, now) for claim in open_claims):
                return Claim(False, "busy")
            dead = [claim for claim in open_claims if claim.get("pid") != self._me["pid"]
                    or claim.get("host") != self._me["host"]]
            if dead:
                log.warning("taking over item %s, claimed by %s, which has died", fields.get("index", key),
                            ", ".join(describe(claim) for claim in dead))
            self._append(self.claims_path, {
                "key": key, "session": session, **self._me, **fields, "renewed": round(now, 3),
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            return Claim(True, "taken", dead)

    def renew(self, held: list[tuple[str, str]]) -> None:
        """Renew this process's claims on `held` (key, session) pairs: one line each."""
        if self._me is None:
            self._me = owner()
        now = round(time.time(), 3)
        self._append(self.claims_path, *({"key": key, "session": session, **self._me, "renewed": now}
                                         for key, session in held))

    def heartbeat(self) -> Heartbeat:
        """A heartbeat that renews this manifest's claims within the lease."""
        return Heartbeat(self.renew, self.lease)

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each item's latest record, by key."""
        return {record["key"]: record for record in self.records() if isinstance(record.get("key"), str)}

    def _refresh(self) -> None:
        """Take in what both files gained since the last look (everything, if one was replaced)."""
        restarted, outcomes = self._outcomes.read()
        if restarted:
            self._status.clear()
            self._ended.clear()
        for record in outcomes:
            if isinstance(record.get("key"), str):
                self._status[record["key"]] = record.get("status", "")
                self._ended.setdefault(record["key"], set()).add(record.get("session"))
        restarted, claims = self._claims.read()
        if restarted:
            self._held.clear()
        for record in claims:
            if isinstance(record.get("key"), str):
                sessions = self._held.setdefault(record["key"], {})
                sessions[record.get("session")] = {**sessions.get(record.get("session"), {}), **record}


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"
