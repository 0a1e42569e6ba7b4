"""Runs survive being killed: SIGKILL at any instant resumes, SIGTERM saves and exits 143."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vqclip.cli.app import app

runner = CliRunner()
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def vqclip(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqclip", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)


def sets(tiny_sets) -> list[str]:
    return [item for s in tiny_sets for item in ("--set", s)]


def wait_for(condition, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode())
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def log_steps(run_dir: Path) -> int:
    path = run_dir / "log.jsonl"
    return sum('"loss"' in line for line in path.read_text().splitlines()) if path.exists() else 0


def test_sigkill_at_random_instants_of_saves_always_resumes(tiny_sets, tmp_path) -> None:
    draw = random.Random(19)
    steps = 60
    process = vqclip("generate", "a red circle", *sets(tiny_sets), "-o", str(tmp_path), "--size",
                     "32x32", "--cutn", "2", "--steps", str(steps), "--save-every", "1", "--seed", "3")
    wait_for(lambda: list(tmp_path.glob("*/*/state.pt")), process)
    run_dir = next(tmp_path.glob("*/*/state.pt")).parent
    for _ in range(4):
        logged = log_steps(run_dir)
        wait_for(lambda logged=logged: log_steps(run_dir) > logged, process)
        time.sleep(draw.uniform(0, 0.3))  # somewhere among frame, state and log writes
        process.kill()
        process.wait()
        process = vqclip("resume", str(run_dir))
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()
    assert torch.load(run_dir / "state.pt", weights_only=True)["step"] == steps
    frames = sorted(int(p.stem) for p in (run_dir / "frames").glob("*.png"))
    assert frames == list(range(steps))
    assert not [p for p in run_dir.rglob(".*") if ".tmp" in p.name]


def test_frames_newer_than_the_state_and_stale_temporaries_do_not_block_resume(
        tiny_sets, tmp_path) -> None:
    first = runner.invoke(app, ["generate", "a red circle", *sets(tiny_sets), "-o", str(tmp_path),
                                "--size", "32x32", "--cutn", "2", "--steps", "3", "--save-every",
                                "1", "--seed", "3", "--json"])
    assert first.exit_code == 0, first.output
    run_dir = Path(json.loads(first.stdout)["run_dir"])
    # what a kill between a frame and its state leaves: a frame past the state, half a state
    shutil.copy(run_dir / "frames" / "000002.png", run_dir / "frames" / "000003.png")
    (run_dir / ".state.4242.0badf00d.tmp.pt").write_bytes(b"half a state")
    (run_dir / "frames" / ".000004.4242.0badf00d.tmp.png").write_bytes(b"half a frame")
    resumed = runner.invoke(app, ["resume", str(run_dir), "--steps", "5"])
    assert resumed.exit_code == 0, resumed.output
    assert sorted(p.name for p in (run_dir / "frames").iterdir()) == [
        f"{step:06d}.png" for step in range(5)]
    assert not list(run_dir.glob(".state.*"))


def test_sigterm_finishes_the_step_saves_and_exits_143(tiny_sets, tmp_path) -> None:
    process = vqclip("generate", "a red circle", *sets(tiny_sets), "-o", str(tmp_path), "--size",
                     "32x32", "--cutn", "2", "--steps", "100000", "--save-every", "0")
    wait_for(lambda: any(log_steps(p.parent) >= 2 for p in tmp_path.glob("*/*/log.jsonl")), process)
    process.terminate()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr.decode()
    run_dir = next(tmp_path.glob("*/*/log.jsonl")).parent
    assert f"vqclip resume {run_dir}" in stderr.decode()
    assert Path(stdout.decode().strip()) == run_dir / "final.png"
    done = torch.load(run_dir / "state.pt", weights_only=True)["step"]
    assert done >= 2 and log_steps(run_dir) == done
    assert not [p for p in run_dir.rglob(".*") if ".tmp" in p.name]


@pytest.mark.cluster  # a batch process: make test-cluster
def test_sigterm_in_a_batch_records_the_item_as_interrupted(tiny_sets, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 100000\na blue square\n")
    folder = tmp_path / "batch"
    process = vqclip("batch", str(prompts), *sets(tiny_sets), "-o", str(folder), "--set",
                     "size=[32,32]", "--set", "cutn=2", "--set", "save_every=0")
    wait_for(lambda: any(log_steps(p.parent) >= 2 for p in folder.glob("*/*/log.jsonl")), process)
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr.decode()
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["interrupted"]
    run_dir = Path(records[0]["run_dir"])
    assert (run_dir / "final.png").exists() and (run_dir / "state.pt").exists()
    assert f"vqclip resume {run_dir}" in stderr.decode()


@pytest.mark.cluster  # a batch process: make test-cluster
def test_a_rerun_continues_an_interrupted_batch_item_in_its_folder(tiny_sets, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 40\n")
    folder = tmp_path / "batch"
    args = ("batch", str(prompts), *sets(tiny_sets), "-o", str(folder), "--set", "size=[32,32]",
            "--set", "cutn=2", "--set", "save_every=1")
    process = vqclip(*args)
    wait_for(lambda: any(log_steps(p.parent) >= 2 for p in folder.glob("*/*/log.jsonl")), process)
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr.decode()
    run_dir = Path(json.loads((folder / "manifest.jsonl").read_text())["run_dir"])
    stopped_at = torch.load(run_dir / "state.pt", weights_only=True)["step"]
    assert 2 <= stopped_at < 40

    rerun = runner.invoke(app, list(args))
    assert rerun.exit_code == 0, rerun.output
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["interrupted", "ok"]
    assert records[1]["run_dir"] == str(run_dir) and records[1]["steps"] == 40
    assert len(list(folder.glob("*/*/log.jsonl"))) == 1  # no second run folder
    assert log_steps(run_dir) == 40  # continued from its state, not started again


@pytest.mark.cluster  # a batch process: make test-cluster
def test_a_second_sigterm_in_a_batch_quits_at_once_and_records_the_item(tiny_sets, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 100000\na blue square\n")
    folder = tmp_path / "batch"
    process = vqclip("batch", str(prompts), *sets(tiny_sets), "-o", str(folder), "--set",
                     "size=[32,32]", "--set", "cutn=2", "--set", "save_every=1")
    wait_for(lambda: any(log_steps(p.parent) >= 2 for p in folder.glob("*/*/log.jsonl")), process)
    process.terminate()
    process.terminate()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr.decode()
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["interrupted"]
    run_dir = Path(records[0]["run_dir"])
    assert (run_dir / "state.pt").exists() and "Traceback" not in stderr.decode()
    assert f"vqclip resume {run_dir}" in stderr.decode()


@pytest.mark.cluster  # a batch process: make test-cluster
def test_a_sigkilled_batch_leaves_its_claim_to_the_next_run_which_says_so(tiny_sets, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 3\na blue square --steps 3\n")
    folder = tmp_path / "batch"
    args = ("batch", str(prompts), *sets(tiny_sets), "-o", str(folder), "--set", "size=[32,32]",
            "--set", "cutn=2", "--set", "save_every=0")
    process = vqclip(*args)
    wait_for(lambda: (folder / "claims.jsonl").is_file(), process)
    process.kill()
    process.communicate(timeout=30)
    again = vqclip(*args)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()
    assert f"taking over item 0, claimed by pid {process.pid} on " in stderr.decode()
    records = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records if r["status"] == "ok") == [0, 1]
