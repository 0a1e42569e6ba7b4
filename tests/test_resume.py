"""Runs are never lost: resume is bit-identical, Ctrl-C saves state and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app

runner = CliRunner()


def generate(tiny_sets, out: Path, *args: str):
    sets = [item for s in tiny_sets for item in ("--set", s)]
    result = runner.invoke(app, ["generate", "a red circle", *sets, "-o", str(out), "--size", "32x32",
                                 "--seed", "4", "--cutn", "4", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def pixels(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_sets, tmp_path) -> None:
    straight = generate(tiny_sets, tmp_path / "a", "--steps", "8", "--save-every", "3")
    first = generate(tiny_sets, tmp_path / "b", "--steps", "4", "--save-every", "3")
    resumed = runner.invoke(app, ["resume", first["run_dir"], "--steps", "8", "--json"])
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert data["run_dir"] == first["run_dir"] and data["steps"] == 8
    assert np.array_equal(pixels(straight["image"]), pixels(data["image"]))
    run_dir = Path(first["run_dir"])
    assert (run_dir / "final-000004.png").exists()  # the earlier result is kept, not overwritten
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": 4, "steps": 8} in lines
    assert [x["step"] for x in lines if "loss" in x] == list(range(8))


def test_resume_refuses_fewer_steps_and_missing_state(tiny_sets, tmp_path) -> None:
    first = generate(tiny_sets, tmp_path, "--steps", "3")
    fewer = runner.invoke(app, ["resume", first["run_dir"], "--steps", "2"])
    assert fewer.exit_code == 2 and "below the 3 steps" in fewer.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = runner.invoke(app, ["resume", str(empty)])
    assert missing.exit_code == 2 and "no state.pt" in missing.stderr



def test_resume_refuses_another_kind_of_device_and_names_device(tiny_sets, tmp_path) -> None:
    import torch

    first = generate(tiny_sets, tmp_path, "--steps", "2")
    path = Path(first["run_dir"]) / "state.pt"
    state = torch.load(path, weights_only=True)
    assert state["device"] == "cpu"
    # As a `device: auto` run made on CUDA leaves it: a 16-byte Philox state, not the CPU's
    # 5,056 bytes; here auto resolves to the CPU.
    config = {**state["config"], "device": "auto"}
    torch.save({**state, "device": "cuda", "rng": torch.zeros(16, dtype=torch.uint8),
                "config": config}, path)
    resumed = runner.invoke(app, ["resume", first["run_dir"], "--steps", "3"])
    assert resumed.exit_code == 2, resumed.output
    assert "ran on cuda" in resumed.stderr and "--device cuda" in resumed.stderr
    assert "Traceback" not in resumed.output

def test_ctrl_c_saves_state_exits_130_and_resumes(tiny_sets, tmp_path) -> None:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    command = [sys.executable, "-m", "vqclip", "generate", "a red circle", *sets, "-o",
               str(tmp_path), "--size", "32x32", "--cutn", "4", "--steps", "100000",
               "--save-every", "0", "--seed", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    logs: list[Path] = []
    while time.monotonic() < deadline and process.poll() is None:
        logs = list(tmp_path.glob("*/*/log.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert logs, process.stderr.read().decode() if process.poll() is not None else "no log"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert "vqclip resume" in stderr.decode()
    run_dir = logs[0].parent
    assert Path(stdout.decode().strip()) == run_dir / "final.png"
    assert (run_dir / "final.png").exists() and (run_dir / "state.pt").exists()
    assert not list(run_dir.rglob("*.tmp"))

    import torch

    done = torch.load(run_dir / "state.pt", weights_only=True)["step"]
    resumed = runner.invoke(app, ["resume", str(run_dir), "--steps", str(done + 2), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["steps"] == done + 2


def _files(run_dir: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}


def test_resume_of_a_finished_run_changes_nothing_and_says_so(tiny_sets, tmp_path) -> None:
    run_dir = Path(generate(tiny_sets, tmp_path, "--steps", "3")["run_dir"])
    before = _files(run_dir)
    again = runner.invoke(app, ["resume", str(run_dir)])
    assert again.exit_code == 2, again.output
    assert again.stderr.strip() == (f"error: {run_dir} already finished at step 3; nothing was changed "
                                    "(give --steps above 3 to continue it)")
    assert _files(run_dir) == before


def test_resume_refuses_links_and_special_files_anywhere_in_the_run_folder(tiny_sets, tmp_path) -> None:
    run_dir = Path(generate(tiny_sets, tmp_path / "out", "--steps", "3")["run_dir"])
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    log = run_dir / "log.jsonl"
    log.unlink()
    log.symlink_to(outside)
    linked = runner.invoke(app, ["resume", str(run_dir), "--steps", "5"])
    assert linked.exit_code == 2, linked.output
    assert linked.stderr.strip() == f"error: {log} is a symbolic link; a run folder holds only its own files"
    assert outside.read_text() == "keep\n"
    log.unlink()
    fifo = run_dir / "frames" / "000009.png"
    os.mkfifo(fifo)
    special = runner.invoke(app, ["resume", str(run_dir), "--steps", "5"])
    assert special.exit_code == 2, special.output
    assert f"{fifo} is not a regular file" in special.stderr and len(special.stderr.splitlines()) == 1


def test_a_state_holding_an_invalid_config_is_one_line_naming_state_pt(tiny_sets, tmp_path) -> None:
    import torch

    run_dir = Path(generate(tiny_sets, tmp_path, "--steps", "3")["run_dir"])
    path = run_dir / "state.pt"
    state = torch.load(path, weights_only=True)
    for bad, key in (({"cutn": "abc"}, "cutn"), ({"steps": -3}, "steps")):
        torch.save({**state, "config": {**state["config"], **bad}}, path)
        refused = runner.invoke(app, ["resume", str(run_dir), "--steps", "6"])
        assert refused.exit_code == 2, refused.output
        assert len(refused.stderr.strip().splitlines()) == 1 and str(path) in refused.stderr
        assert key in refused.stderr and "Traceback" not in refused.output
