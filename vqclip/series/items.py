"""Series of runs (batch, sweep, zoom): item keys, an append-only manifest, running items in turn."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from vqclip.errors import UsageError, VqclipError
from vqclip.outputs.run_folder import create_numbered_dir, slugify
from vqclip.series.manifest import MANIFEST_NAME, Manifest

if TYPE_CHECKING:
    from vqclip.run.events import Callback
    from vqclip.run.execute import GenerateResult, Run

log = logging.getLogger(__name__)

def item_key(index: int, text: str) -> str:
    """A stable id for a work item: its position and its text, hashed (16 hex digits)."""
    return hashlib.sha256(f"{index}\n{text}".encode()).hexdigest()[:16]


def seed_from_key(key: str) -> int:
    """A seed that belongs to the item, not to the order or shard it ran in."""
    return int(key[:8], 16) % 2**31


def new_series_dir(root: str | Path, kind: str, prompt: str, today: dt.date | None = None) -> Path:
    """Make `<root>/<date>/<NNNN>-<kind>-<slug>/`, numbered with the run folders beside it."""
    return create_numbered_dir(root, f"{kind}-{slugify(prompt)}", today)


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
    """Series record one image per item: refuse a batch size that would make several, and
    candidates, which would pick the seed an item asked for."""
    if cfg.batch_size != 1:
        raise UsageError(f"batch_size={cfg.batch_size}: sweeps, prompt files and zooms make one "
                         "image per item; use --batch-size with a single generate (seeds "
                         "SEED..SEED+K-1)")
    if cfg.candidates != 1:
        raise UsageError(f"candidates={cfg.candidates}: sweeps, prompt files and zooms run each item "
                         "as given; use --candidates with a single generate")


def run_one(cfg: DictConfig, callbacks: Iterable[Callback] = (), stop: StopSwitch | None = None
            ) -> GenerateResult:
    """Prepare and execute one run, letting `stop` reach it while it runs."""
    from vqclip.run.build import build
    from vqclip.run.prepare import prepare

    check_single_image(cfg)
    run = build(prepare(cfg))
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
