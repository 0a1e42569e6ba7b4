"""batch --ray: Ray actors run a batch's items, the driver claims and records them; on a local Ray
bound to 127.0.0.1, with CPU actors and the bundled shapes models."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.load_counter import counting_env, loads_by_process
from vqclip.cli.runs import register

pytestmark = pytest.mark.cluster  # many processes: make test-cluster

runner = CliRunner()
SHAPES = ["--preset", "shapes", "-s", "steps=6", "-s", "device=cpu"]
RAY_MISSING = "Ray is an optional extra (pip install 'vqclip[ray]'); make test-cluster installs it"


@pytest.fixture(scope="module")
def load_log(tmp_path_factory) -> Path:
    """Where the module's Ray workers count their model loads (tests.load_counter)."""
    return tmp_path_factory.mktemp("loads") / "loads.txt"


@pytest.fixture(scope="module")
def local_ray(load_log):
    """One local Ray for the module: 127.0.0.1 only, no dashboard, 2 CPUs, no GPU; its worker
    processes count their model loads into `load_log`."""
    with pytest.MonkeyPatch.context() as patch:
        # read by Ray on import: the loopback address instead of the machine's
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        for name, value in counting_env(dict(os.environ), load_log).items():
            patch.setenv(name, value)  # inherited by the raylet, so by every worker
        ray = pytest.importorskip("ray", reason=RAY_MISSING)
        ray.init(address="local", include_dashboard=False, num_cpus=2, num_gpus=0,
                 object_store_memory=80 * 2**20, logging_level=logging.WARNING)
        try:
            yield ray
        finally:
            ray.shutdown()


def invoke(*args: str):
    app = typer.Typer()
    register(app)
    return runner.invoke(app, ["batch", *args])


def manifest_lines(folder: Path, name: str = "manifest.jsonl") -> list[dict]:
    return [json.loads(line) for line in (folder / name).read_text().splitlines()]


def finished_runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob("*/*/final.png"))


def test_ray_runs_every_item_records_a_failure_and_a_rerun_skips_done_items(local_ray, tmp_path) -> None:
    batch = tmp_path / "prompts.txt"
    batch.write_text("a red circle\na blue square --seed 2\na bad one --set bogus=1\na green triangle\n")
    out = tmp_path / "out"
    result = invoke(str(batch), "--ray", "-o", str(out), "--json", *SHAPES)
    assert result.exit_code == 1, result.output  # the bad item failed, the others finished
    data = json.loads(result.stdout)
    assert (data["ok"], data["failed"], data["skipped"]) == (3, 1, 0)
    lines = manifest_lines(out)
    statuses = sorted((r["index"], r["status"]) for r in lines)
    assert statuses == [(0, "ok"), (1, "ok"), (2, "failed"), (3, "ok")]
    bad = next(r for r in lines if r["index"] == 2)
    assert "bogus" in bad["error"] and bad["line"] == 3
    assert {r["worker"] for r in lines} <= {0, 1} and len({r["session"] for r in lines}) == 1
    assert all(r["steps"] == 6 and Path(r["image"]).is_file() for r in lines if r["status"] == "ok")
    assert next(r["seed"] for r in lines if r["index"] == 1) == 2
    # the driver (this process) claimed every item, so a claim's liveness is the driver's
    claims = manifest_lines(out, "claims.jsonl")
    assert sorted(c["index"] for c in claims) == [0, 1, 2, 3] and {c["pid"] for c in claims} == {os.getpid()}
    assert len(finished_runs(out)) == 3
    assert local_ray.is_initialized()  # the test's Ray was used, and left running

    rerun = invoke(str(batch), "--ray", "-o", str(out), "--json", *SHAPES)
    assert rerun.exit_code == 1, rerun.output  # the bad item is tried again and fails again
    again = json.loads(rerun.stdout)
    assert (again["ok"], again["failed"], again["skipped"]) == (0, 1, 3)
    assert len(finished_runs(out)) == 3  # nothing ran twice


def test_each_actor_of_a_batch_of_eight_loads_each_model_once(local_ray, load_log, tmp_path) -> None:
    batch = tmp_path / "prompts.txt"
    batch.write_text("".join(f"a red circle --seed {seed}\n" for seed in range(8)))
    load_log.unlink(missing_ok=True)  # the loads of the module's earlier batches
    out = tmp_path / "out"
    result = invoke(str(batch), "--ray", "--ray-actors", "2", "-o", str(out), "-q", *SHAPES)
    assert result.exit_code == 0, result.output
    lines = manifest_lines(out)
    assert sorted(r["status"] for r in lines) == ["ok"] * 8
    loads = loads_by_process(load_log)
    assert os.getpid() not in loads  # the driver loads no model
    assert len(loads) == len({r["worker"] for r in lines})  # the actors that ran items
    assert all(counts == {"load_vqgan": 1, "load_perceptor": 1} for counts in loads.values()), loads


def test_an_actor_killed_while_it_holds_an_item_leaves_it_failed_and_a_rerun_finishes_it(
        local_ray, tmp_path, monkeypatch) -> None:
    from vqclip.series import ray_pool

    submit = ray_pool._submit
    killed: list[int] = []

    def submit_and_kill(actor, item, folder, device):
        reference = submit(actor, item, folder, device)
        if "doomed" in item.label:  # SIGKILL the actor's process while its run is in hand
            place = local_ray.get(actor.ready.options(concurrency_group="control").remote())
            os.kill(place["pid"], signal.SIGKILL)
            killed.append(place["pid"])
        return reference

    monkeypatch.setattr(ray_pool, "_submit", submit_and_kill)
    batch = tmp_path / "prompts.txt"
    batch.write_text("a red circle\na doomed square\na green triangle\n")
    out = tmp_path / "out"
    result = invoke(str(batch), "--ray", "-o", str(out), *SHAPES)
    assert result.exit_code == 1, result.output
    assert len(killed) == 1
    lines = manifest_lines(out)
    assert sorted((r["index"], r["status"]) for r in lines) == [(0, "ok"), (1, "failed"), (2, "ok")]
    doomed = next(r for r in lines if r["index"] == 1)
    assert f"pid {killed[0]}" in doomed["error"] and "died while running it" in doomed["error"]

    monkeypatch.setattr(ray_pool, "_submit", submit)
    rerun = invoke(str(batch), "--ray", "-o", str(out), "--json", *SHAPES)
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["skipped"] == 2
    ok = Counter(r["key"] for r in manifest_lines(out) if r["status"] == "ok")
    assert len(ok) == 3 and set(ok.values()) == {1}  # each item done exactly once
    assert len(finished_runs(out)) == 3


def test_a_stop_request_hands_out_no_more_items_and_stops_the_running_ones(local_ray, tmp_path) -> None:
    from vqclip.series.batch import BatchSettings, parse_batch, run_batch
    from vqclip.series.items import StopSwitch
    from vqclip.series.ray_pool import plan_ray

    items = parse_batch("a red circle\na blue square --steps 400\na green triangle\na yellow star\n")
    settings = BatchSettings(preset="shapes", sets=["steps=6", "device=cpu"])
    stop = StopSwitch()
    result = run_batch(items, tmp_path, settings, stop=stop, report=lambda record: stop.request(),
                       engine=plan_ray(actors=2))
    assert result.interrupted
    statuses = {r["index"]: r["status"] for r in result.records}
    assert 1 <= len(statuses) <= 2 and set(statuses) <= {0, 1, 2}
    assert statuses.get(1) in (None, "interrupted")  # 400 steps: stopped after its current step
    claimed = {c["index"] for c in manifest_lines(tmp_path, "claims.jsonl")}
    assert claimed == set(statuses)  # nothing handed out after the stop


def test_ray_options_are_usage_errors_with_workers_alone_or_without_the_extra(tmp_path, monkeypatch) -> None:
    from vqclip.series import ray_pool

    batch = tmp_path / "prompts.txt"
    batch.write_text("a red circle\n")
    both = invoke(str(batch), "--ray", "--workers", "2", "-o", str(tmp_path / "o"))
    assert both.exit_code == 2 and "not both" in both.stderr
    alone = invoke(str(batch), "--ray-actors", "2", "-o", str(tmp_path / "o"))
    assert alone.exit_code == 2 and "go with --ray" in alone.stderr
    monkeypatch.setattr(ray_pool.importlib.util, "find_spec", lambda name: None)
    missing = invoke(str(batch), "--ray", "-o", str(tmp_path / "o"))
    assert missing.exit_code == 2 and "pip install 'vqclip[ray]'" in missing.stderr
    assert not (tmp_path / "o").exists()
