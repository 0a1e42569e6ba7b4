"""vqclip batch under a real SLURM (one machine as controller and node), with the job script the
README shows: an array split into shards, preemption with requeue, and the time-limit signal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.cluster_slurm import FINISHED, SlurmCluster, unavailable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "slurm" / "batch.sbatch"
WHY_NOT = unavailable()

needs_slurm = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def test_the_readme_shows_the_job_script_the_cluster_tests_submit() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```bash\n{SCRIPT.read_text()}```" in readme


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.leftovers(), "processes of the SLURM cluster outlived it"


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """The environment jobs are submitted with: `vqclip` on PATH runs this checkout's code."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "vqclip"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vqclip "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1", "VQCLIP_OFFLINE": "1"}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _task(record: dict[str, str]) -> str:
    return f"{record['ArrayJobId']}_{record['ArrayTaskId']}"


def _wait_for_steps(out: Path, steps: int, timeout: float) -> Path:
    """The run folder whose log.jsonl has reached `steps` steps."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for log in out.glob("*/*/log.jsonl"):
            if sum('"step"' in line for line in log.read_text().splitlines()) >= steps:
                return log.parent
        time.sleep(0.1)
    raise TimeoutError(f"no run in {out} reached step {steps} in {timeout:.0f} s")


@pytest.mark.cluster
@needs_slurm
def test_daemons_listen_on_loopback_only(slurm: SlurmCluster) -> None:
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    ours = [line.split()[3] for line in listening.splitlines()
            if line.split()[3].rsplit(":", 1)[1] in {str(port) for port in slurm.ports}]
    assert sorted(ours) == sorted(f"127.0.0.1:{port}" for port in slurm.ports)


@pytest.mark.cluster
@needs_slurm
def test_array_job_makes_every_item_exactly_once(slurm: SlurmCluster, tmp_path: Path,
                                                 job_env: dict[str, str]) -> None:
    shapes = ["red circle", "blue square", "green triangle", "yellow star", "white circle", "red square"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a {shape} --seed {seed}\n" for seed, shape in enumerate(shapes)))
    out = tmp_path / "out"
    start = time.monotonic()
    job = slurm.submit(SCRIPT, str(prompts), str(out), "--preset", "shapes", "-s", "steps=2",
                       options=["--array=0-2", f"--chdir={tmp_path}"], env=job_env)
    tasks = slurm.wait(job, FINISHED, timeout=900)
    seconds = time.monotonic() - start

    assert sorted((t["ArrayTaskId"], t["JobState"], t["ExitCode"]) for t in tasks) == [
        (str(i), "COMPLETED", "0:0") for i in range(3)], slurm.logs()
    records = _manifest(out)
    assert sorted(r["index"] for r in records) == list(range(len(shapes)))  # each item once
    assert all(r["status"] == "ok" and r["shard"] == f"{r['index'] % 3}/3" for r in records)
    images = sorted(out.glob("*/*/final.png"))
    assert len(images) == len(shapes)
    for image in images:
        with Image.open(image) as picture:
            assert picture.size == (64, 64)
    print(f"array of 3 tasks: {len(images)} items made once each in {seconds:.0f} s")


@pytest.mark.cluster
@needs_slurm
def test_preempted_job_saves_its_state_and_finishes_when_requeued(
        slurm: SlurmCluster, tmp_path: Path, job_env: dict[str, str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a green triangle --seed 5\n")
    out = tmp_path / "out"
    job = slurm.submit(SCRIPT, str(prompts), str(out), "--preset", "shapes", "-s", "steps=40",
                       "-s", "save_every=10", options=["--array=0", f"--chdir={tmp_path}"], env=job_env)
    run = _wait_for_steps(out, 1, timeout=600)
    signalled = time.monotonic()
    slurm.command("scancel", "--signal=TERM", "--full", job)
    [task] = slurm.wait(job, FINISHED, timeout=300)
    stopped = time.monotonic() - signalled

    assert (task["JobState"], task["ExitCode"]) == ("FAILED", "143:0"), slurm.logs()
    [record] = _manifest(out)
    assert record["status"] == "interrupted" and record["run_dir"] == str(run)
    assert (run / "state.pt").stat().st_size > 0 and (run / "final.png").exists()
    steps_saved = record["steps"]
    assert 1 <= steps_saved < 40

    requeued = time.monotonic()
    slurm.command("scontrol", "requeue", _task(task))
    # A requeued job may start no sooner than two minutes later (SLURM's own delay): start it
    # sooner, but not within the second slurmd revoked its last credential in, or slurmd refuses
    # the new one ("Job credential revoked") and the job fails instead of running again.
    time.sleep(2)
    slurm.command("scontrol", "update", f"JobId={_task(task)}", "StartTime=now")
    [task] = slurm.wait(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=900)
    recovered = time.monotonic() - requeued

    assert (task["JobState"], task["ExitCode"], task["Restarts"]) == ("COMPLETED", "0:0", "1"), slurm.logs()
    first, second = _manifest(out)
    assert second["key"] == first["key"] and (second["status"], second["steps"]) == ("ok", 40)
    assert second["run_dir"] == str(run)  # continued from its saved state, in its own folder
    logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert logged == list(range(40)), logged  # each step once: none made again from step 0
    log = (tmp_path / f"vqclip-batch-{_task(task)}.log").read_text()
    assert "vqclip resume" in log and "1 ok" in log  # --open-mode=append: both runs' output
    print(f"preempted at step {steps_saved}: exit 143 {stopped:.1f} s after scancel; "
          f"requeued, ok {recovered:.0f} s later")


@pytest.mark.cluster
@needs_slurm
def test_time_limit_signal_reaches_vqclip(slurm: SlurmCluster, tmp_path: Path,
                                          job_env: dict[str, str]) -> None:
    """The script's --signal=B:TERM@120 with a 3-minute limit: SIGTERM arrives 30-60 s in."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a blue square --seed 8\n")
    out = tmp_path / "out"
    job = slurm.submit(SCRIPT, str(prompts), str(out), "--preset", "shapes", "-s", "steps=100000",
                       "-s", "save_every=1000", options=["--array=0", "--time=3", f"--chdir={tmp_path}"],
                       env=job_env)
    [task] = slurm.wait(job, FINISHED, timeout=400)

    assert (task["JobState"], task["ExitCode"]) == ("FAILED", "143:0"), slurm.logs()
    [record] = _manifest(out)
    assert record["status"] == "interrupted" and 1 <= record["steps"] < 100000
    run = Path(record["run_dir"])
    assert (run / "state.pt").stat().st_size > 0 and (run / "final.png").exists()
    print(f"B:TERM@120 with --time=3: interrupted at step {record['steps']}, exit 143, "
          f"run time {task['RunTime']}")
