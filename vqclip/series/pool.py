"""A local worker pool for a series: one process per device (or per share of the CPU), each
loading its models once and claiming the next unfinished item from the manifest."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError, VqclipError
from vqclip.models.held import Models
from vqclip.series.items import (
    Ledger,
    SeriesResult,
    StopSwitch,
    WorkItem,
    new_record,
    new_session,
    run_work_item,
    stopped_at_once,
)
from vqclip.series.manifest import MANIFEST_NAME, Manifest

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
    """Run `items` on `workers` processes (no more than there are items); `result` (with the
    items already skipped) is filled in with every record appended in this session, as they
    arrive.

    A worker that dies (killed, out of memory) leaves its item recorded as failed with the
    reason, and the other workers go on. A stop request reaches every worker, started or still
    starting, which ends its run after the current step (image and state saved); a second one
    ends the workers at once, their items recorded interrupted. The workers die with this
    process, even when it is killed with SIGKILL."""
    if not items:
        return result
    if len(workers) > len(items):
        log.warning("%d worker processes asked for %d item%s: starting %d", len(workers), len(items),
                    "" if len(items) == 1 else "s", len(items))
        workers = workers[: len(items)]
    context = multiprocessing.get_context("spawn")  # no CUDA or thread state shared with the workers
    events = context.Queue()
    lifeline, lifeline_end = context.Pipe(duplex=False)  # its end closes when this process dies
    session = new_session()
    portable = [item.portable() for item in items]  # configs are made in the workers, as items run
    inboxes = [context.Pipe(duplex=False) for _ in workers]  # the items go to each worker by a thread
    processes = [
        context.Process(target=work, args=(number, worker, inbox, str(folder), session, extra, events,
                                           os.getpid(), lifeline), name=f"vqclip-worker-{number}")
        for number, (worker, (inbox, _)) in enumerate(zip(workers, inboxes, strict=True))
    ]
    started: list[Any] = []
    ledger = Ledger(Manifest(folder / MANIFEST_NAME), session, extra, result, report)
    running: dict[int, dict[str, Any]] = {}  # worker number -> the item it is running
    skipped = set(result.skipped)

    def take(event: tuple[str, int, dict[str, Any]]) -> None:
        kind, number, payload = event
        if kind == "start":
            running[number] = payload
            skipped.discard(payload["index"])
            return
        if kind == "skip":
            if payload["index"] not in skipped:
                skipped.add(payload["index"])
                result.skipped.append(payload["index"])
            return
        running.pop(number, None)
        ledger.count(payload)  # the worker wrote it to the manifest

    if stop is not None:
        stop.forward = lambda: _signal_all(started, signal.SIGTERM)
    try:
        for process in processes:
            if stop is not None and stop.requested:
                break  # a worker not yet started is not started
            _start(process, started)
            threading.Thread(target=_send, args=(inboxes[len(started) - 1][1], portable), daemon=True,
                             name="vqclip-items").start()
            if stop is not None and stop.requested:  # asked while it was starting
                _signal_all([process], signal.SIGTERM)
        while any(process.is_alive() for process in started) or not events.empty():
            try:
                take(events.get(timeout=0.2))
            except queue.Empty:
                pass
            for number, process in enumerate(started):
                if not process.is_alive() and number in running:
                    _drain(events, take)
                    if number in running:
                        take(("record", number, _died(ledger, running[number], process, number)))
    except BaseException:
        if stop is None or not stop.requested:
            _end_at_once(started, events, take)
            raise
        _end_at_once(started, events, take)  # the second of two interrupts: the workers go now
        for number in list(running):
            take(("record", number, _stopped(ledger, running[number], number)))
    finally:
        if stop is not None:
            stop.forward = None
        for process in started:
            process.join()
        lifeline_end.close()
    result.interrupted |= bool(stop is not None and stop.requested)
    failed_to_start = [p.exitcode for p in started if p.exitcode]
    if not result.records and started and len(failed_to_start) == len(started) and not result.interrupted:
        raise VqclipError(f"every worker process ended before running an item (exit codes "
                          f"{', '.join(map(str, failed_to_start))}); run with -v, or without --workers")
    return result


def _send(outbox: Any, items: list[WorkItem]) -> None:
    """Send a worker its items, off the main thread: a long list fills the pipe until the worker
    reads it, and a Ctrl-C meanwhile must find the main thread free."""
    try:
        outbox.send(items)
    except OSError:
        pass  # the worker ended before it read them (stopped while starting)
    finally:
        outbox.close()


def _start(process: Any, started: list[Any]) -> None:
    """Start a worker (and add it to `started`) with Ctrl-C and SIGTERM held back meanwhile, so
    that neither cuts what it is sent; the worker unblocks them once its handlers are in place."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        process.start()
        started.append(process)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _end_at_once(processes: list[Any], events: Any, take: Callable[[tuple[str, int, dict[str, Any]]], None],
                 grace: float = 5.0) -> None:
    """A second SIGTERM to every worker (which ends its run mid-step and records it
    interrupted), then SIGKILL for any still there after `grace` seconds."""
    _signal_all(processes, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        try:
            take(events.get(timeout=0.1))
        except queue.Empty:
            pass
    _signal_all(processes, signal.SIGKILL)
    for process in processes:
        process.join()
    _drain(events, take, wait=0.05)


def _stopped(ledger: Ledger, item: dict[str, Any], number: int) -> dict[str, Any]:
    """Record the item of a worker ended at once as interrupted (unless it recorded it itself)."""
    return _own_record(ledger, item) or ledger.write(
        new_record(item, "interrupted", error="stopped at once by a second interrupt; its worker was killed"),
        worker=number)


def _own_record(ledger: Ledger, item: dict[str, Any]) -> dict[str, Any] | None:
    """The record a worker appended for `item` in this session before it ended, if any."""
    mine = [r for r in ledger.manifest.records()
            if r.get("key") == item["key"] and r.get("session") == ledger.session]
    return mine[-1] if mine else None


def _drain(events: Any, take: Callable[[tuple[str, int, dict[str, Any]]], None],
           wait: float = 0.2) -> None:
    while True:
        try:
            take(events.get(timeout=wait))
        except queue.Empty:
            return


def _died(ledger: Ledger, item: dict[str, Any], process: Any, number: int) -> dict[str, Any]:
    """Record the item of a worker that ended without finishing it as failed, with why (unless
    the worker recorded its outcome just before it ended)."""
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    return _own_record(ledger, item) or ledger.write(
        new_record(item, "failed", error=f"worker process {process.pid} died while running it ({how})"),
        worker=number)


def _signal_all(processes: list[Any], signum: int) -> None:
    for process in processes:
        if process.is_alive():
            try:
                os.kill(process.pid, signum)
            except ProcessLookupError:
                pass


def work(number: int, worker: Worker, inbox: Any, folder: str, session: str,
         extra: dict[str, Any], events: Any, parent: int, lifeline: Any) -> None:
    """A worker process: receive the items from `inbox`, then claim the next unfinished one, run
    it, record it; until none is left.

    Ctrl-C is the parent's to handle: it passes a stop on as SIGTERM, which ends the current
    run after its step; a second SIGTERM ends it at once, recorded interrupted. The worker dies
    with its parent (`parent`, whose end of `lifeline` closes when it dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = StopSwitch()

    def terminate(signum: int, frame: object) -> None:
        if stop.requested:
            raise SystemExit(128 + signum)
        stop.request()

    signal.signal(signal.SIGTERM, terminate)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # held while starting
    die_with_parent(parent, lifeline)
    items: list[WorkItem] = inbox.recv()
    inbox.close()
    logging.basicConfig(level=logging.WARNING, format=f"worker {number}: %(levelname)s %(name)s: %(message)s")
    if worker.threads is not None:
        import torch

        torch.set_num_threads(worker.threads)
    models = Models()  # this process serves the items: each model loads once
    ledger = Ledger(Manifest(Path(folder) / MANIFEST_NAME), session, extra)
    manifest = ledger.manifest
    heartbeat = manifest.heartbeat()
    for item in items:
        if stop.requested:
            break
        claim = manifest.claim(item.key, session, index=item.index, worker=number)
        if not claim:
            if claim.by_another:
                events.put(("skip", number, {"index": item.index}))
            continue
        events.put(("start", number, item.head()))
        try:
            with heartbeat.holding(item.key, session):
                record = run_work_item(item, Path(folder), (), stop, device=worker.device, models=models)
        except SystemExit:
            record = ledger.write(stopped_at_once(item, stop, "stopped at once by a second interrupt"),
                                  worker=number)
            events.put(("record", number, record))
            raise
        events.put(("record", number, ledger.write(record, worker=number)))
        if record["status"] == "interrupted":
            break
    heartbeat.close()


def die_with_parent(parent: int, lifeline: Any) -> None:
    """End this process when `parent` dies: at once by the kernel on Linux (PR_SET_PDEATHSIG;
    the pool's thread that starts the workers waits for them, so it outlives them), and
    elsewhere by a thread that finds `lifeline` closed."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)

    def watch() -> None:
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="vqclip-lifeline", daemon=True).start()
