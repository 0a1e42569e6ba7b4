"""The memory planner: its estimate against measured peaks, its decisions, and out-of-memory runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from tests.test_engine import make_run
from vqclip.cli.app import app
from vqclip.errors import ConfigError, UsageError
from vqclip.run import planner
from vqclip.run.memory import StepMemory, parse_bytes, simulate_peak
from vqclip.run.planner import plan

runner = CliRunner()
BENCH = Path(__file__).parent.parent / "benchmarks" / "memory_bench.py"


def test_parse_bytes_reads_binary_units() -> None:
    assert parse_bytes("8GiB") == 8 * 2**30
    assert parse_bytes("512mb") == 512 * 2**20
    assert parse_bytes("1.5G") == int(1.5 * 2**30)
    assert parse_bytes("4096") == 4096
    with pytest.raises(ConfigError, match="max_memory='lots'"):
        parse_bytes("lots")


def test_simulated_step_touches_nothing_real(tiny_sets, tmp_path, one_thread) -> None:
    engine = make_run(tiny_sets, tmp_path, "steps=2").engine
    z = engine.generator.z.detach().clone()
    rng_state = engine.rngs[0].get_state()
    peak = simulate_peak(lambda: engine.forward()[2], engine.generator.parameters())
    assert peak > 0
    assert engine.generator.z.grad is None
    assert torch.equal(engine.generator.z, z)
    assert torch.equal(engine.rngs[0].get_state(), rng_state)


def test_estimate_is_within_a_quarter_of_the_measured_peak_at_three_sizes() -> None:
    def one(setting: str) -> dict:
        command = [sys.executable, str(BENCH), "--model", "half", "--threads", "1", "--one", setting]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(output.strip().splitlines()[-1])

    with ThreadPoolExecutor(3) as pool:
        rows = list(pool.map(one, ["192:8", "256:8", "320:8"]))
    for row in rows:
        ratio = row["estimated"] / row["measured"]
        assert 0.75 <= ratio <= 1.25, row
    assert rows[0]["measured"] < rows[1]["measured"] < rows[2]["measured"]


GIB = 2**30


class FakeMeasure:
    """Stands in for planner.measure: 1 GiB resident, a step of 3 GiB (1 GiB with low memory),
    half of it from the cutouts; records whether low memory was on."""

    def __init__(self) -> None:
        self.low = False

    def set_low_memory(self, enabled: bool) -> None:
        self.low = enabled

    def __call__(self, engine, device, *, low_memory: bool, split_cutouts: bool = False,
                 start=None) -> StepMemory:
        assert low_memory == self.low
        step = GIB if self.low else 3 * GIB
        return StepMemory(GIB, step, step // 2 if split_cutouts else 0)


def plan_with(fake: FakeMeasure, monkeypatch, budget: int, *, low_memory: bool = False):
    monkeypatch.setattr(planner, "measure", fake)
    fake.low = low_memory
    engine = SimpleNamespace(judges=[SimpleNamespace(cutouts=SimpleNamespace(cutn=32))], batch_size=1)
    return plan(engine, torch.device("cpu"), size=(512, 512), size_multiple=16,
                low_memory=low_memory, set_low_memory=fake.set_low_memory, max_memory=budget)


def test_a_run_that_fits_is_left_alone(monkeypatch) -> None:
    fake = FakeMeasure()
    result = plan_with(fake, monkeypatch, 5 * GIB)
    assert not result.switched_low_memory and not fake.low and result.note() is None


def test_low_memory_is_switched_on_when_only_that_fits(monkeypatch) -> None:
    fake = FakeMeasure()
    result = plan_with(fake, monkeypatch, 3 * GIB)
    assert result.switched_low_memory and fake.low
    assert result.note() == ("--low-memory switched on: the run needs about 4.0 GiB without it "
                             "and 2.0 GiB with it; 3.0 GiB is available")


def test_a_run_that_cannot_fit_names_settings_that_would(monkeypatch) -> None:
    # 1.75 GiB leaves the low-memory step 0.75 GiB: half the pixels, or half the cutouts
    with pytest.raises(UsageError) as err:
        plan_with(FakeMeasure(), monkeypatch, int(1.75 * GIB))
    message = str(err.value)
    assert "needs about 2.0 GiB" in message and "1.8 GiB is available" in message
    assert "--size 352x352 or --cutn 16 (with --low-memory)" in message
    with pytest.raises(UsageError, match="less than the 1.0 GiB that the models"):
        plan_with(FakeMeasure(), monkeypatch, GIB // 2)


def test_too_small_max_memory_exits_2_without_a_run_folder_unless_unchecked(tiny_sets, tmp_path) -> None:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    result = runner.invoke(app, ["generate", "a red circle", *sets, "-o", str(tmp_path),
                                 "--steps", "2", "--max-memory", "10MiB"])
    assert result.exit_code == 2
    assert "0.0 GiB of memory is less than" in result.output
    assert not any(tmp_path.iterdir())
    bad = runner.invoke(app, ["generate", "a red circle", *sets, "-o", str(tmp_path),
                              "--max-memory", "lots"])
    assert bad.exit_code == 2 and "max_memory=lots" in bad.output
    unchecked = runner.invoke(app, ["generate", "a red circle", *sets, "-o", str(tmp_path),
                                    "--steps", "2", "--size", "32x32", "--max-memory", "10MiB",
                                    "--set", "plan_memory=false"])
    assert unchecked.exit_code == 0, unchecked.output


def test_out_of_memory_mid_run_saves_state_and_suggests_smaller_settings(
    tiny_sets, tmp_path, monkeypatch
) -> None:
    from vqclip.run.engine import Engine

    forward = Engine.forward
    failed = []

    def failing_forward(self: Engine, numbers=None):
        if self.step == 3 and not failed:  # the real step 3, not the planner's simulation after
            failed.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, numbers)

    monkeypatch.setattr(Engine, "forward", failing_forward)
    sets = [item for s in tiny_sets for item in ("--set", s)]
    result = runner.invoke(app, ["generate", "a red circle", *sets, "-o", str(tmp_path),
                                 "--steps", "6", "--size", "64x64", "--seed", "1"])
    assert result.exit_code == 1
    assert "out of memory at step 3" in result.output
    assert "--low-memory" in result.output and "--size" in result.output
    run_dir = next(tmp_path.glob("*/*"))
    assert torch.load(run_dir / "state.pt", weights_only=True)["step"] == 3
    assert (run_dir / "final.png").is_file()

    monkeypatch.setattr(Engine, "forward", forward)
    resumed = runner.invoke(app, ["resume", str(run_dir), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["steps"] == 6
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["steps"] == 6


def peak_of_refused_run(tiny_sets, tmp_path: Path, size: str, start: Path) -> int:
    """Peak resident set (KiB) of a generate that the memory check refuses (exit 2)."""
    sets = [item for s in tiny_sets for item in ("--set", s)]
    command = [sys.executable, "-m", "vqclip", "generate", "a red circle", *sets, "-o",
               str(tmp_path / "out"), "--size", size, "--max-memory", "1GiB" if "4096" in size
               else "1MiB", "--init-image", str(start), "--image-prompt", str(start)]
    # a fresh parent, so that the peak resident set read is this child's alone
    measure = ("import resource, subprocess, sys; "
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "print(done.stderr, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    code, peak_kib = map(int, result.stdout.split())
    assert code == 2, result.stderr
    assert result.stderr.startswith("error: 1.0 GiB of memory is less than") or "1MiB" in command
    assert not list((tmp_path / "out").glob("*/*"))
    return peak_kib


def test_a_start_image_too_big_for_the_budget_is_refused_before_it_is_loaded(
        tiny_sets, tmp_path) -> None:
    """--size 4096x4096 with an init image and an image prompt: exit 2 at the size the
    program has with its models loaded (encoding the image alone would take gigabytes)."""
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 64), "red").save(start)
    models_loaded = peak_of_refused_run(tiny_sets, tmp_path, "32x32", start)
    huge = peak_of_refused_run(tiny_sets, tmp_path, "4096x4096", start)
    assert huge < models_loaded + 200 * 1024, f"{models_loaded // 1024} MiB, then {huge // 1024} MiB"
