"""A local worker pool for a series: one process per device (or per share of the CPU), each
loading its models once and claiming the next unfinished item from the manifest."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError, VqclipError
from vqclip.run.reuse import REUSE
from vqclip.series.items import SeriesResult, StopSwitch, WorkItem, new_session, run_work_item
from vqclip.series.manifest import MANIFEST_NAME, Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    """One worker process: the device it runs on (None: each item's own) and its CPU threads
    (None: torch's default)."""

    device: str | None = None
    threads: int | None = None


@dataclass(frozen=True)
class ProcessPool:
    """The series engine of `batch --workers/--devices`: local worker processes."""

    workers: list[Worker]

    def run(self, items: list[WorkItem], folder: Path, result: SeriesResult, *,
            report: Callable[[dict[str, Any]], None] | None, stop: StopSwitch | None,
            extra: dict[str, Any]) -> SeriesResult:
        """Run `items` on the pool's worker processes (run_pool)."""
        return run_pool(items, folder, self.workers, result, report=report, stop=stop, extra=extra)


def plan_workers(*, workers: int | None, devices: str | None, threads: int | None) -> ProcessPool | None:
    """The worker processes `--workers N [--threads T]` or `--devices LIST|all` ask for; None
    for a series run in this process."""
    if devices is not None and workers is not None:
        raise UsageError("give --workers (CPU worker processes) or --devices (one per device), not both")
    if devices is not None:
        names = _cuda_devices() if devices.strip() == "all" else [d.strip() for d in devices.split(",")]
        if not names or not all(names):
            raise UsageError(f"--devices {devices!r}: expected a list such as cuda:0,cuda:1, or all")
        return ProcessPool([Worker(device=name, threads=threads) for name in names])
    if workers is None:
        if threads is not None:
            raise UsageError("--threads sets the threads of each --workers process; give --workers too")
        return None
    if workers < 1:
        raise UsageError(f"--workers {workers}: must be at least 1")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: must be at least 1")
    share = threads or max(1, (os.cpu_count() or 1) // workers)
    return ProcessPool([Worker(device=None, threads=share) for _ in range(workers)])


def _cuda_devices() -> list[str]:
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise UsageError("--devices all: no CUDA device is visible")
    return [f"cuda:{index}" for index in range(count)]


def run_pool(items: list[WorkItem], folder: Path, workers: list[Worker], result: SeriesResult, *,
             report: Callable[[dict[str, Any]], None] | None, stop: StopSwitch | None,
             extra: dict[str, Any]) -> SeriesResult:
    """Run `items` on `workers` processes; `result` (with the items already skipped) is filled
    in with every record appended in this session, as they arrive.

    A worker that dies (killed, out of memory) leaves its item recorded as failed with the
    reason, and the other workers go on; a stop request reaches every worker, which ends its
    run after the current step (image and state saved)."""
    context = multiprocessing.get_context("spawn")  # no CUDA or thread state shared with the workers
    events = context.Queue()
    session = new_session()
    portable = [item.portable() for item in items]
    processes = [
        context.Process(target=work, args=(number, worker, portable, str(folder), session, extra, events),
                        name=f"vqclip-worker-{number}")
        for number, worker in enumerate(workers)
    ]
    for process in processes:
        process.start()
    if stop is not None:
        stop.forward = lambda: _signal_all(processes, signal.SIGTERM)
    manifest = Manifest(folder / MANIFEST_NAME)
    running: dict[int, dict[str, Any]] = {}  # worker number -> the item it is running

    def take(event: tuple[str, int, dict[str, Any]]) -> None:
        kind, number, payload = event
        if kind == "start":
            running[number] = payload
            return
        running.pop(number, None)
        result.records.append(payload)
        result.interrupted |= payload["status"] == "interrupted"
        if report is not None:
            report(payload)

    try:
        while any(process.is_alive() for process in processes) or not events.empty():
            try:
                take(events.get(timeout=0.2))
            except queue.Empty:
                pass
            for number, process in enumerate(processes):
                if not process.is_alive() and number in running:
                    _drain(events, take)
                    if number in running:
                        take(("record", number, _died(manifest, running[number], process, session, extra)))
    finally:
        if stop is not None:
            stop.forward = None
        if any(process.is_alive() for process in processes):  # a second Ctrl-C: quit now
            _signal_all(processes, signal.SIGTERM)
        for process in processes:
            process.join()
    result.interrupted |= bool(stop is not None and stop.requested)
    failed_to_start = [p.exitcode for p in processes if p.exitcode]
    if items and not result.records and len(failed_to_start) == len(processes):
        raise VqclipError(f"every worker process ended before running an item (exit codes "
                          f"{', '.join(map(str, failed_to_start))}); run with -v, or without --workers")
    return result


def _drain(events: Any, take: Callable[[tuple[str, int, dict[str, Any]]], None]) -> None:
    while True:
        try:
            take(events.get(timeout=0.2))
        except queue.Empty:
            return


def _died(manifest: Manifest, item: dict[str, Any], process: Any, session: str,
          extra: dict[str, Any]) -> dict[str, Any]:
    """Record the item of a worker that ended without finishing it as failed, with why (unless
    the worker recorded its outcome just before it ended)."""
    mine = [r for r in manifest.records() if r.get("key") == item["key"] and r.get("session") == session]
    if mine:
        return mine[-1]
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    record = {**item, "status": "failed", **extra, "session": session,
              "error": f"worker process {process.pid} died while running it ({how})",
              "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    manifest.append(record)
    return record


def _signal_all(processes: list[Any], signum: int) -> None:
    for process in processes:
        if process.is_alive():
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:
                pass


def work(number: int, worker: Worker, items: list[WorkItem], folder: str, session: str,
         extra: dict[str, Any], events: Any) -> None:
    """A worker process: claim the next unfinished item, run it, record it; until none is left.

    Ctrl-C is the parent's to handle: it passes a stop on as SIGTERM, which ends the current
    run after its step (a second SIGTERM quits at once)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = StopSwitch()

    def terminate(signum: int, frame: object) -> None:
        if stop.requested:
            raise SystemExit(128 + signum)
        stop.request()

    signal.signal(signal.SIGTERM, terminate)
    logging.basicConfig(level=logging.WARNING, format=f"worker {number}: %(levelname)s %(name)s: %(message)s")
    if worker.threads is not None:
        import torch

        torch.set_num_threads(worker.threads)
    REUSE.hold()  # this process serves the items: each model loads once
    manifest = Manifest(Path(folder) / MANIFEST_NAME)
    for item in items:
        if stop.requested:
            break
        if not manifest.claim(item.key, session, index=item.index, worker=number):
            continue
        events.put(("start", number, {"key": item.key, "index": item.index, "label": item.label,
                                      **item.info}))
        record = run_work_item(item, Path(folder), (), stop, device=worker.device)
        record.update(extra, session=session, worker=number)
        manifest.append(record)
        events.put(("record", number, record))
        if record["status"] == "interrupted":
            break
