"""Who runs which item of a series: a claim names its process (host, pid, start time) and is
renewed while the item runs, so that a claim whose process died can be taken over: at once on
the same host (the pid is checked), after its lease runs out on another."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from vqclip.errors import UsageError

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0  # a claim from another host, not renewed for this long, belongs to a dead process
LEASE_ENV = "VQCLIP_CLAIM_LEASE"  # seconds, overriding LEASE_SECONDS
HOST_ENV = "VQCLIP_HOST"  # the host name claims record, overriding the machine's


def lease_seconds() -> float:
    """The claim lease: VQCLIP_CLAIM_LEASE seconds if set, else LEASE_SECONDS."""
    text = os.environ.get(LEASE_ENV)
    if text is None:
        return LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UsageError(f"environment variable {LEASE_ENV}={text!r}: expected a number of seconds above 0")
    return value


def host_name() -> str:
    """This machine as claims name it: VQCLIP_HOST if set (machines that share a host name, such
    as containers), else its host name."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def owner() -> dict[str, Any]:
    """This process, as a claim names it: host, pid and the pid's start time (pids are reused)."""
    return {"host": host_name(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def alive(claim: dict[str, Any], me: dict[str, Any], lease: float, now: float | None = None) -> bool:
    """Whether the process that made `claim` still runs, other than this one (whose earlier
    sessions have ended): on this host, its pid is checked; on another, it is taken to run while
    its claim was renewed within `lease` seconds."""
    if all(claim.get(key) == value for key, value in me.items()):
        return False
    if claim.get("host") != me["host"]:
        renewed = claim.get("renewed")
        if not isinstance(renewed, int | float):
            return True  # a claim written before leases: nothing says when it ends
        return (time.time() if now is None else now) - renewed < lease
    pid = claim.get("pid")
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return claim.get("started") is None or claim.get("started") == _start_time(int(pid))


def _start_time(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (Linux); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def describe(claim: dict[str, Any]) -> str:
    """A claim's process, for a message: "pid 123 on node7"."""
    return f"pid {claim.get('pid')} on {claim.get('host')}"


@dataclass
class Claim:
    """The answer to a claim: `taken` (truthy) or why not: "done" (finished), "tried" (already
    tried in this session), "busy" (a live process holds it). `dead` are the claims of dead
    processes that a taken claim took over."""

    taken: bool
    reason: str = "taken"
    dead: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.taken

    @property
    def by_another(self) -> bool:
        """Not taken because another process finished or runs the item (a skip to count)."""
        return self.reason in ("done", "busy")


class Heartbeat:
    """Renews the claims this process holds every third of the lease, on a thread of its own,
    so that no other host takes over an item that is still running, however long it runs."""

    def __init__(self, renew: Callable[[list[tuple[str, str]]], None], lease: float) -> None:
        self._renew = renew
        self._interval = lease / 3
        self._held: set[tuple[str, str]] = set()  # (key, session)
        self._guard = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, key: str, session: str) -> None:
        """Renew the claim on `key` from now until `release`."""
        with self._guard:
            self._held.add((key, session))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="vqclip-claims", daemon=True)
                self._thread.start()

    def release(self, key: str, session: str) -> None:
        """Stop renewing the claim on `key` (its item has ended)."""
        with self._guard:
            self._held.discard((key, session))

    @contextmanager
    def holding(self, key: str, session: str) -> Iterator[None]:
        """Keep renewing the claim on `key` while the block runs."""
        self.hold(key, session)
        try:
            yield
        finally:
            self.release(key, session)

    def close(self) -> None:
        """Stop renewing."""
        self._stopped.set()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._guard:
                held = sorted(self._held)
            if held:
                try:
                    self._renew(held)
                except Exception as err:  # noqa: BLE001 - a full disk must not end the item
                    log.warning("cannot renew the claims on %d items: %s", len(held), err)
