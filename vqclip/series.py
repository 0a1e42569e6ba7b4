"""Series of runs (batch, sweep, zoom): item keys, an append-only manifest, running items in turn."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock
from omegaconf import DictConfig

from vqclip.errors import UsageError, VqclipError
from vqclip.outputs import create_numbered_dir, slugify

if TYPE_CHECKING:
    from vqclip.engine import Callback
    from vqclip.generate import GenerateResult, Run

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"


def item_key(index: int, text: str) -> str:
    """A stable id for a work item: its position and its text, hashed (16 hex digits)."""
    return hashlib.sha256(f"{index}\n{text}".encode()).hexdigest()[:16]


def seed_from_key(key: str) -> int:
    """A seed that belongs to the item, not to the order or shard it ran in."""
    return int(key[:8], 16) % 2**31


def new_series_dir(root: str | Path, kind: str, prompt: str, today: dt.date | None = None) -> Path:
    """Make `<root>/<date>/<NNNN>-<kind>-<slug>/`, numbered with the run folders beside it."""
    return create_numbered_dir(root, f"{kind}-{slugify(prompt)}", today)


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


class StopSwitch:
    """Ctrl-C for a series: ask the run in progress to stop, and start no further runs."""

    def __init__(self) -> None:
        self.requested = False
        self.current: Run | None = None

    def request(self) -> None:
        """Stop after the current step of the current run; the series ends after it."""
        self.requested = True
        if self.current is not None:
            self.current.engine.request_stop()


@dataclass
class WorkItem:
    """One run of a series: its key, a label, how to build its config, and what to record."""

    index: int
    key: str
    label: str
    make_config: Callable[[], DictConfig]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeriesResult:
    """What one invocation of a series did; `records` are the lines it appended."""

    folder: Path
    manifest: Path
    records: list[dict[str, Any]]
    skipped: list[int]
    interrupted: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Records of items that failed this time."""
        return [r for r in self.records if r["status"] == "failed"]

    @property
    def ok(self) -> list[dict[str, Any]]:
        """Records of items that finished this time."""
        return [r for r in self.records if r["status"] == "ok"]

    def to_json(self) -> dict[str, Any]:
        """The --json object of a series command."""
        return {"folder": str(self.folder), "manifest": str(self.manifest),
                "ok": len(self.ok), "failed": len(self.failed), "skipped": len(self.skipped),
                "interrupted": self.interrupted, "items": self.records}


def check_single_image(cfg: DictConfig) -> None:
    """Series record one image per item: refuse a batch size that would make several."""
    if cfg.batch_size != 1:
        raise UsageError(f"batch_size={cfg.batch_size}: sweeps, prompt files and zooms make one "
                         "image per item; use --batch-size with a single generate (seeds "
                         "SEED..SEED+K-1)")


def run_one(cfg: DictConfig, callbacks: Iterable[Callback] = (), stop: StopSwitch | None = None
            ) -> GenerateResult:
    """Prepare and execute one run, letting `stop` reach it while it runs."""
    from vqclip.generate import Run

    check_single_image(cfg)
    run = Run(cfg)
    if stop is not None:
        stop.current = run
        if stop.requested:
            run.engine.request_stop()
    try:
        return run.execute(list(callbacks))
    finally:
        if stop is not None:
            stop.current = None


def run_items(
    items: list[WorkItem],
    folder: Path,
    *,
    callbacks: Iterable[Callback] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    stop: StopSwitch | None = None,
    extra: dict[str, Any] | None = None,
) -> SeriesResult:
    """Run every item not already ok in `folder`'s manifest; a failure is recorded, not raised.

    Each item's runs land in `folder` (its config's `out` is set to it). `report` sees each
    record as it is appended; `extra` fields (e.g. the shard) go into every record.
    """
    manifest = Manifest(folder / MANIFEST_NAME)
    done = manifest.finished()
    result = SeriesResult(folder, manifest.path, [], [])
    for item in items:
        if item.key in done:
            result.skipped.append(item.index)
            continue
        if stop is not None and stop.requested:
            result.interrupted = True
            break
        record = _run_item(item, folder, callbacks, stop)
        record.update(extra or {})
        manifest.append(record)
        result.records.append(record)
        if report is not None:
            report(record)
        if record["status"] == "interrupted":
            result.interrupted = True
            break
    return result


def _run_item(item: WorkItem, folder: Path, callbacks: Iterable[Callback],
              stop: StopSwitch | None) -> dict[str, Any]:
    record: dict[str, Any] = {"key": item.key, "index": item.index, "label": item.label,
                              "status": "failed", **item.info}
    try:
        cfg = item.make_config()
        cfg.out = str(folder)
        if cfg.seed is None:
            cfg.seed = seed_from_key(item.key)
        record["seed"] = cfg.seed
        result = run_one(cfg, callbacks, stop)
    except VqclipError as err:
        record["error"] = str(err)
    except Exception as err:  # noqa: BLE001 - one bad item must not end the series
        log.debug("item %d failed", item.index, exc_info=True)
        record["error"] = f"{type(err).__name__}: {err}"
    else:
        record.update(
            status="interrupted" if result.interrupted else "ok", seed=result.seed,
            run_dir=str(Path(result.run_dir).resolve()), image=str(Path(result.image).resolve()),
            steps=result.steps, final_loss=round(result.final_loss, 6),
            seconds=round(result.seconds, 3),
        )
    record["time"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return record
