"""Ray as the engine of a series on one machine or many: actors that each keep their models
loaded run the items this process (the driver) claims in the manifest, one item per actor at a
time, and the driver records every outcome as it comes back.

Ray is an optional extra (pip install 'vqclip[ray]'): this module imports it only when it runs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError, VqclipError, first_line
from vqclip.models.held import Models
from vqclip.series.items import (
    Ledger,
    SeriesResult,
    StopSwitch,
    WorkItem,
    new_record,
    new_session,
    run_work_item,
)
from vqclip.series.manifest import MANIFEST_NAME, Manifest

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vqclip[ray]'"
CPU_ACTORS = 2  # actors on a cluster without GPUs, unless --ray-actors says otherwise
LOCAL_OBJECT_STORE = 100 * 2**20  # bytes; only small records travel through it
_WAIT = 0.2  # seconds between looks at a stop request while items run
CONNECT_TIMEOUT = 10.0  # seconds to wait for a --ray-address to accept a connection


@dataclass(frozen=True)
class RayPlan:
    """The series engine of `batch --ray`: which Ray to use and how many actors to start.

    `address` None: RAY_ADDRESS if set, else a local Ray on 127.0.0.1 started for the run (or
    the Ray this process is already connected to). `actors` None: one per GPU of the cluster,
    else CPU_ACTORS. `threads`: CPU threads (and Ray CPUs) of each actor; None: on the CPU the
    largest node's CPUs shared between the actors, on a GPU one."""

    address: str | None = None
    actors: int | None = None
    threads: int | None = None

    def run(self, items: list[WorkItem], folder: Path, result: SeriesResult, *,
            report: Callable[[dict[str, Any]], None] | None, stop: StopSwitch | None,
            extra: dict[str, Any]) -> SeriesResult:
        """Run `items` in Ray actors (run_ray)."""
        return run_ray(items, folder, result, address=self.address, actors=self.actors,
                       threads=self.threads, report=report, stop=stop, extra=extra)


def plan_ray(*, address: str | None = None, actors: int | None = None,
             threads: int | None = None) -> RayPlan:
    """The plan `--ray [--ray-address A] [--ray-actors N] [--threads T]` asks for; a usage error
    without the Ray extra installed."""
    if importlib.util.find_spec("ray") is None:
        raise UsageError(f"--ray needs Ray, an optional extra: {INSTALL_HINT}")
    if actors is not None and actors < 1:
        raise UsageError(f"--ray-actors {actors}: must be at least 1")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: must be at least 1")
    return RayPlan(address=address or None, actors=actors, threads=threads)


class ItemRunner:
    """A Ray actor: runs one portable item at a time; it holds the models it loads (`Models`)
    for the next item. `stop` runs beside `run` (its own concurrency group)
    and ends the current run after its step, the image and state saved."""

    def __init__(self, number: int, threads: int | None) -> None:
        self.number = number
        self.switch = StopSwitch()
        self.models = Models()  # the actor serves many items: each model loads once
        logging.basicConfig(level=logging.WARNING,
                            format=f"actor {number}: %(levelname)s %(name)s: %(message)s")
        if threads is not None:
            import torch

            torch.set_num_threads(threads)

    def ready(self) -> dict[str, Any]:
        """Where the actor runs, once it has started: host name, pid, its Ray node's IP address."""
        import ray

        return {"host": socket.gethostname(), "pid": os.getpid(), "node": ray.util.get_node_ip_address()}

    def run(self, item: WorkItem, folder: str, device: str | None) -> dict[str, Any]:
        """Run `item` into `folder`; its manifest record, for the driver to append."""
        return run_work_item(item, Path(folder), (), self.switch, device=device, models=self.models)

    def stop(self) -> None:
        """End the current run after its step, and any later one at once."""
        self.switch.request()


@dataclass
class _Layout:
    """How many actors, with what resources, and on what device each item runs."""

    count: int
    cpus: int
    gpus: int
    threads: int | None
    gpu: bool

    def device(self, wanted: str | None) -> str | None:
        """The device an item asking for `wanted` runs on in an actor: on a GPU actor, CUDA
        (Ray makes the actor's GPU the only one it sees) for auto and cuda*; else its own."""
        if self.gpu and wanted is not None and (wanted == "auto" or wanted.startswith("cuda")):
            return "cuda"
        return None


def run_ray(items: list[WorkItem], folder: Path, result: SeriesResult, *, address: str | None,
            actors: int | None, report: Callable[[dict[str, Any]], None] | None,
            stop: StopSwitch | None, extra: dict[str, Any], threads: int | None = None) -> SeriesResult:
    """Run `items` in Ray actors; `result` (with the items already skipped) is filled in with
    every record appended in this session, as they arrive.

    This process claims each item in the manifest before an actor gets it, and appends the
    record the actor returns (worker: the actor's number). An actor that dies (killed, its node
    lost, out of memory) leaves its item recorded as failed with the reason, and the others go
    on. A stop request hands out no more items and asks the running actors to stop after their
    current step; a second one (KeyboardInterrupt) kills them and records their items as
    interrupted."""
    if not items:
        return result
    if stop is not None:
        stop.forward = _quit_now  # nothing runs yet: a Ctrl-C while connecting ends the batch
    try:
        ray = _connect(address)
        started = not ray.is_initialized()
        if started:
            _init(ray, address)
    finally:
        if stop is not None:
            stop.forward = None
    if stop is not None and stop.requested:
        if started:
            ray.shutdown()
        result.interrupted = True
        return result
    try:
        return _run(ray, items, folder.resolve(), result, actors=actors, threads=threads,
                    report=report, stop=stop, extra=extra)
    finally:
        if started:
            ray.shutdown()


def _connect(address: str | None) -> Any:
    """Import Ray; a local Ray it starts then binds 127.0.0.1 only (Ray reads that setting on
    import: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is what makes it use the loopback address)."""
    if not (address or os.environ.get("RAY_ADDRESS")):
        if "ray" in sys.modules and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ:
            log.debug("ray was imported before vqclip could ask it to bind 127.0.0.1 only")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as err:
        raise UsageError(f"--ray needs Ray, an optional extra: {INSTALL_HINT} ({err})") from None
    return ray


def _quit_now() -> None:
    raise KeyboardInterrupt


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A clear error naming `address` (host:port or ray://host:port) when nothing accepts a
    connection there within `timeout` seconds: Ray itself would retry for many minutes."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d+)", address.strip())
    if match is None:
        return  # "auto" or a form Ray resolves itself
    host, port = match.group(1), int(match.group(2))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        why = "nothing answered" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise VqclipError(f"cannot reach the Ray cluster at {address}: {why} (tried for up to "
                          f"{timeout:g} s; is its head node running, and is the address right?)") from None


def _init(ray: Any, address: str | None) -> None:
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(address="local", include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE,
                     logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise VqclipError(f"cannot start or reach {where}: {first_line(err)}") from None


def _layout(ray: Any, items: list[WorkItem], actors: int | None, threads: int | None) -> tuple[
        _Layout, dict[str, str | None]]:
    """The actors to start for `items` on this cluster, and each item's own device."""
    wanted = {item.key: _wanted_device(item) for item in items}
    gpus = int(ray.cluster_resources().get("GPU", 0))
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    node_cpus = int(max((node.get("CPU", 0) for node in nodes), default=0))
    asks_cuda = sorted({d for d in wanted.values() if d and d.startswith("cuda")})
    if asks_cuda and gpus == 0:
        raise UsageError(f"items ask for device {asks_cuda[0]}, but the Ray cluster has no GPU")
    gpu = gpus > 0 and any(d is not None and (d == "auto" or d.startswith("cuda"))
                           for d in wanted.values())
    count = actors or (gpus if gpu else CPU_ACTORS)
    count = max(1, min(count, len(items)))
    if gpu and count > gpus:
        log.warning("%d GPU actors asked for, the Ray cluster has %d GPUs: the others wait for one",
                    count, gpus)
    if threads is not None and node_cpus and threads > node_cpus:
        raise UsageError(f"--threads {threads}: no node of the Ray cluster has more than {node_cpus} CPUs")
    if threads is None and not gpu:
        threads = max(1, node_cpus // count) if node_cpus else None
    cpus = threads or 1
    return _Layout(count=count, cpus=cpus, gpus=1 if gpu else 0, threads=threads, gpu=gpu), wanted


def _wanted_device(item: WorkItem) -> str | None:
    try:
        return str(item.make_config().device)
    except VqclipError:
        return None  # the item fails in its actor, with this error


def _start(runner: Any, number: int, layout: _Layout) -> Any:
    return runner.options(num_cpus=layout.cpus, num_gpus=layout.gpus, max_restarts=0,
                          max_task_retries=0).remote(number, layout.threads)


def _submit(actor: Any, item: WorkItem, folder: str, device: str | None) -> Any:
    """Hand `item` to `actor`; the reference its record comes back by."""
    return actor.run.remote(item, folder, device)


def _run(ray: Any, items: list[WorkItem], folder: Path, result: SeriesResult, *, actors: int | None,
         threads: int | None, report: Callable[[dict[str, Any]], None] | None, stop: StopSwitch | None,
         extra: dict[str, Any]) -> SeriesResult:
    from ray.exceptions import RayActorError, RayError

    portable = [item.portable() for item in items]
    layout, wanted = _layout(ray, portable, actors, threads)
    session = new_session()
    ledger = Ledger(Manifest(folder / MANIFEST_NAME), session, extra, result, report)
    manifest = ledger.manifest
    runner = ray.remote(concurrency_groups={"control": 1})(ItemRunner)
    handles: dict[int, Any] = {}
    starting: dict[Any, int] = {}  # reference to an actor's ready() -> its number, until it has started
    where: dict[int, dict[str, Any]] = {}
    idle: deque[int] = deque()  # started and waiting for an item
    running: dict[Any, tuple[int, WorkItem]] = {}  # reference -> (actor number, item)
    todo = deque(portable)
    stopping = False
    last_death = ""

    heartbeat = manifest.heartbeat()  # this process renews the claims of the items its actors run

    def finish(record: dict[str, Any], number: int) -> None:
        heartbeat.release(record["key"], session)
        # node: the Ray node's IP address, which tells nodes apart where host names do not
        node = where.get(number, {}).get("node")
        if record["status"] == "ok" and not Path(record["image"]).is_file():
            record.update(status="failed", error=f"the image was made on node {node} but is not at "
                          f"{record['image']} here: the output folder must be storage every node shares")
        ledger.keep(record, worker=number, node=node)

    try:
        for number in range(layout.count):
            handles[number] = _start(runner, number, layout)
            starting[handles[number].ready.remote()] = number
        while True:
            if stop is not None and stop.requested and not stopping:
                stopping = True
                for number, _ in running.values():
                    handles[number].stop.options(concurrency_group="control").remote()
            while idle and todo and not stopping:
                item = todo.popleft()
                number = idle[0]
                if not manifest.claim(item.key, session, index=item.index, worker=number):
                    result.skipped.append(item.index)  # finished or being run by another process
                    continue
                idle.popleft()
                heartbeat.hold(item.key, session)
                running[_submit(handles[number], item, str(folder), layout.device(wanted[item.key]))] = (
                    number, item)
            if not running and (stopping or not todo):
                break
            if not running and not starting:
                raise VqclipError(f"every Ray actor died ({last_death}); {len(todo)} items were not run: "
                                  "rerun the batch to run them")
            ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=_WAIT)
            for ref in ready:
                if ref in starting:
                    number = starting.pop(ref)
                    try:
                        where[number] = ray.get(ref)
                    except RayError as err:
                        last_death = first_line(err)
                        log.warning("Ray actor %d did not start: %s", number, last_death)
                    else:
                        idle.append(number)
                    continue
                number, item = running.pop(ref)
                try:
                    record = ray.get(ref)
                except RayActorError as err:
                    last_death = first_line(err)
                    record = _lost(item, f"Ray actor {number}{_at(where.get(number))} died while running "
                                         f"it: {last_death}")
                except RayError as err:  # the method itself raised: the actor lives on
                    record = _lost(item, f"Ray actor {number}: {first_line(err)}")
                    idle.append(number)
                else:
                    idle.append(number)
                finish(record, number)
    except BaseException:  # a second Ctrl-C (KeyboardInterrupt), SIGTERM: the actors go at once
        for number, item in running.values():
            finish(_lost(item, f"stopped at once; Ray actor {number} was killed", "interrupted"), number)
        running.clear()
        raise
    finally:
        heartbeat.close()
        for handle in handles.values():  # frees their models (and GPUs) now
            try:
                ray.kill(handle)
            except Exception as err:  # noqa: BLE001 - the connection may be gone; Ray ends them then
                log.debug("ray.kill: %s", err)
    result.interrupted |= bool(stop is not None and stop.requested)
    return result


def _at(place: dict[str, Any] | None) -> str:
    return f" (pid {place['pid']} on {place['host']})" if place else ""


def _lost(item: WorkItem, error: str, status: str = "failed") -> dict[str, Any]:
    """The record of an item whose actor did not return one."""
    return new_record(item.head(), status, error=error)
