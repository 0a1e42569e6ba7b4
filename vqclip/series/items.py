"""Series of runs (batch, sweep, zoom): item keys, an append-only manifest, running items in turn."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import pickle
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig, OmegaConf

from vqclip.errors import UsageError, VqclipError
from vqclip.models.held import Models
from vqclip.outputs.run_folder import create_numbered_dir, slugify
from vqclip.series.claims import Heartbeat
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
    """Ctrl-C for a run or a series: ask the run in progress to stop, and start no further runs."""

    def __init__(self) -> None:
        self.requested = False
        self.current: Run | None = None
        self.last: Run | None = None  # the latest run started, kept after it ends
        self.forward: Callable[[], None] | None = None  # passes the request on to worker processes

    def request(self) -> None:
        """Stop after the current step of the current run; the series ends after it."""
        self.requested = True
        if self.current is not None:
            self.current.engine.request_stop()
        if self.forward is not None:
            self.forward()


@dataclass
class WorkItem:
    """One run of a series: its key, a label, how to build its config, and what to record."""

    index: int
    key: str
    label: str
    make_config: Callable[[], DictConfig]
    info: dict[str, Any] = field(default_factory=dict)
    resume_dir: str | None = None  # the run folder of this item's interrupted run, to continue

    def head(self) -> dict[str, Any]:
        """The fields every manifest record of this item starts with."""
        return {"key": self.key, "index": self.index, "label": self.label, **self.info}

    def portable(self) -> WorkItem:
        """The same item in a form that can be sent to another process (a worker, a Ray actor):
        itself when its `make_config` pickles (the config is then made there, when the item
        runs), else with its config made now, as plain data; an item whose config fails fails
        there with the error."""
        try:
            pickle.dumps(self.make_config)
        except (pickle.PicklingError, AttributeError, TypeError):
            pass
        else:
            return self
        try:
            container = OmegaConf.to_container(self.make_config(), resolve=True)
        except VqclipError as err:
            make = functools.partial(_raise, type(err), str(err))
        else:
            make = functools.partial(config_from_container, container)
        return replace(self, make_config=make)


def config_from_container(container: dict[str, Any]) -> DictConfig:
    """A config from its plain form (as `portable` items carry it)."""
    from vqclip.run.config import config_schema, literal

    return OmegaConf.merge(config_schema(), literal(container))


def _raise(kind: type[VqclipError], message: str) -> DictConfig:
    raise kind(message)


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


def new_record(head: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    """A manifest record of the item `head` describes (WorkItem.head): its status and `fields`,
    stamped with the time now."""
    return {**head, "status": status, **fields,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


@dataclass
class Ledger:
    """Where the records of one invocation of a series go, whichever engine runs its items: the
    manifest (each record signed with the session, the worker and the `extra` fields), this
    invocation's result, and its report."""

    manifest: Manifest
    session: str
    extra: dict[str, Any]
    result: SeriesResult | None = None
    report: Callable[[dict[str, Any]], None] | None = None

    def write(self, record: dict[str, Any], **sign: Any) -> dict[str, Any]:
        """Sign `record` (extra fields, session, then `sign`: worker, node) and append it to the
        manifest."""
        record.update(self.extra, session=self.session, **sign)
        self.manifest.append(record)
        return record

    def count(self, record: dict[str, Any]) -> None:
        """Add a record already in the manifest to this invocation's result, and report it."""
        if self.result is not None:
            self.result.records.append(record)
            self.result.interrupted |= record["status"] == "interrupted"
        if self.report is not None:
            self.report(record)

    def keep(self, record: dict[str, Any], **sign: Any) -> dict[str, Any]:
        """Write `record` to the manifest and count it."""
        self.count(self.write(record, **sign))
        return record


class SeriesEngine(Protocol):
    """Somewhere else to run the items of a series than one after another in this process: a
    pool of local worker processes (vqclip.series.pool) or Ray actors (vqclip.series.ray_pool)."""

    def run(self, items: list[WorkItem], folder: Path, result: SeriesResult, *,
            report: Callable[[dict[str, Any]], None] | None, stop: StopSwitch | None,
            extra: dict[str, Any]) -> SeriesResult:
        """Run `items` (those not yet ok) into `folder`, claiming each in its manifest and
        appending each outcome; `result` (with the items already skipped) is filled in."""
        ...


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


def run_one(cfg: DictConfig, callbacks: Iterable[Callback] = (), stop: StopSwitch | None = None,
            resume_dir: str | None = None, *, models: Models) -> GenerateResult:
    """Prepare and execute one run on the models `models` holds (loading those it lacks),
    letting `stop` reach it while it runs; with `resume_dir`, the interrupted run there is
    continued to `cfg`'s steps where its state allows."""
    from vqclip.run.build import build
    from vqclip.run.prepare import prepare

    check_single_image(cfg)
    if stop is not None:
        stop.last = None
    run = (resume_dir and _continued(Path(resume_dir), cfg, models)) or build(prepare(cfg), models)
    if stop is not None:
        stop.current = stop.last = run
        if stop.requested:
            run.engine.request_stop()
    try:
        return run.execute(list(callbacks))
    finally:
        if stop is not None:
            stop.current = None


def _continued(run_dir: Path, cfg: DictConfig, models: Models) -> Run | None:
    """The interrupted run in `run_dir` made ready to continue to `cfg`'s steps on `cfg`'s device;
    None (with a warning) where it cannot be (no state saved, damaged, in use, another device),
    and the item then starts afresh in a new folder, leaving that one as it is."""
    from vqclip.run.build import build
    from vqclip.run.prepare import prepare
    from vqclip.run.resume import ResumePoint

    try:
        point = ResumePoint.load(run_dir)
    except UsageError as err:
        log.warning("starting the item afresh: %s", err)
        return None
    try:
        return build(prepare(point.config(steps=cfg.steps, device=cfg.device)), models, resume=point)
    except UsageError as err:
        point.lock.release()
        log.warning("starting the item afresh: %s", err)
        return None
    except BaseException:
        point.lock.release()
        raise


def _with_resume(item: WorkItem, record: dict[str, Any] | None) -> WorkItem:
    """`item`, pointed at the run folder of its latest record when that run was interrupted."""
    if record is None or record.get("status") != "interrupted" or not isinstance(record.get("run_dir"), str):
        return item
    return replace(item, resume_dir=record["run_dir"])


def run_items(
    items: list[WorkItem],
    folder: Path,
    *,
    callbacks: Iterable[Callback] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    stop: StopSwitch | None = None,
    extra: dict[str, Any] | None = None,
    engine: SeriesEngine | None = None,
) -> SeriesResult:
    """Run every item not already ok in `folder`'s manifest; a failure is recorded, not raised.

    Each item's runs land in `folder` (its config's `out` is set to it). `report` sees each
    record as it is appended; `extra` fields (e.g. the shard) go into every record. Each item is
    claimed in the manifest before it runs, so processes sharing the folder split the items;
    an `engine` runs them elsewhere (worker processes, Ray actors) instead of in this process.
    """
    manifest = Manifest(folder / MANIFEST_NAME)
    latest = manifest.latest()
    done = {key for key, record in latest.items() if record.get("status") == "ok"}
    skipped = [item.index for item in items if item.key in done]
    todo = [_with_resume(item, latest.get(item.key)) for item in items if item.key not in done]
    result = SeriesResult(folder, manifest.path, [], skipped)
    if engine is not None:
        return engine.run(todo, folder, result, report=report, stop=stop, extra=extra or {})
    ledger = Ledger(manifest, new_session(), extra or {}, result, report)
    heartbeat = manifest.heartbeat()
    try:  # the items share their models: each loads once, and is freed when the series ends
        _run_in_turn(todo, folder, ledger, result, heartbeat, callbacks, stop, Models())
    finally:
        heartbeat.close()
    return result


def _run_in_turn(todo: list[WorkItem], folder: Path, ledger: Ledger, result: SeriesResult,
                 heartbeat: Heartbeat, callbacks: Iterable[Callback], stop: StopSwitch | None,
                 models: Models) -> None:
    """Claim and run each item in this process, one after another, on the models `models`
    holds, appending its record.

    A second interrupt (KeyboardInterrupt, or the exception a second SIGTERM raises) after a
    stop request ends the item at once: it is recorded interrupted (with its run folder, which
    holds the state of its latest frame) and the series ends."""
    session = ledger.session
    for item in todo:
        if stop is not None and stop.requested:
            result.interrupted = True
            break
        claim = ledger.manifest.claim(item.key, session, index=item.index)
        if not claim:
            if claim.by_another:
                result.skipped.append(item.index)  # finished or being run by another process
            continue
        try:
            with heartbeat.holding(item.key, session):
                record = run_work_item(item, folder, callbacks, stop, models=models)
        except BaseException:
            if stop is None or not stop.requested:
                raise  # not the second of two interrupts
            record = stopped_at_once(item, stop, "stopped at once by a second interrupt")
        if ledger.keep(record)["status"] == "interrupted":
            break


def stopped_at_once(item: WorkItem, stop: StopSwitch | None, why: str) -> dict[str, Any]:
    """The record of an item whose run was ended mid-step: interrupted, with the run folder its
    run had made (if any), which holds the state of its latest frame."""
    run = stop.last if stop is not None else None
    made = {"run_dir": str(Path(run.run_dirs[0]).resolve())} if run is not None and run.run_dirs else {}
    return new_record(item.head(), "interrupted", error=why, **made)


def new_session() -> str:
    """An id for one invocation of a series: an item is tried at most once per session."""
    return secrets.token_hex(8)


def run_work_item(item: WorkItem, folder: Path, callbacks: Iterable[Callback],
                  stop: StopSwitch | None, device: str | None = None, *, models: Models) -> dict[str, Any]:
    """Run one item into `folder` (on `device` instead of its config's, if given) on the models
    `models` holds; its manifest record (ok, interrupted or failed with why)."""
    seed: dict[str, Any] = {}  # known once the config is made
    try:
        cfg = item.make_config()
        cfg.out = str(folder)
        if device is not None:
            cfg.device = device
        if cfg.seed is None:
            cfg.seed = seed_from_key(item.key)
        seed["seed"] = cfg.seed
        result = run_one(cfg, callbacks, stop, item.resume_dir, models=models)
    except VqclipError as err:
        return new_record(item.head(), "failed", **seed, error=str(err))
    except Exception as err:  # noqa: BLE001 - one bad item must not end the series
        log.debug("item %d failed", item.index, exc_info=True)
        return new_record(item.head(), "failed", **seed, error=f"{type(err).__name__}: {err}")
    return new_record(
        item.head(), "interrupted" if result.interrupted else "ok", seed=result.seed,
        run_dir=str(Path(result.run_dir).resolve()), image=str(Path(result.image).resolve()),
        steps=result.steps, final_loss=result.to_json()["final_loss"], seconds=round(result.seconds, 3),
    )
