"""The benchmark scripts: a GPU call's plan fits its time, and the imports fit a bare GPU box."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def plan(*args: str) -> tuple[list[tuple[str, int, str]], int]:
    """The runs `benchmarks/gpu.sh --dry-run` lists (name, seconds, command) and its total."""
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", *args],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    runs = [(m[1], int(m[2]), m[3]) for m in (re.match(r"(\S+) +(\d+) s  (.*)", line)
                                            for line in out[:-1]) if m]
    total = re.fullmatch(r"total (\d+) s of 480 s", out[-1])
    assert len(runs) == len(out) - 1 and total
    return runs, int(total[1])


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_gpu_script_fits_one_device_call_cheap_runs_first(device: str) -> None:
    runs, total = plan("--device", device)
    names = [name for name, _, _ in runs]
    assert sum(seconds for _, seconds, _ in runs) == total < 480  # under 8 minutes, all limits hit
    # Imports are checked before anything is measured; the compiled run, the slowest to start,
    # comes last so that a long compilation loses no other row.
    assert names[:3] == ["machine", "install", "imports"]
    assert names[-1] == "compiled" and all("--compile" not in cmd for _, _, cmd in runs[:-1])
    measured = [cmd for _, _, cmd in runs[3:]]
    assert all(f"--device {device}" in cmd for cmd in measured)
    model = "full" if device == "cuda" else "tiny"
    ours = [cmd for name, _, cmd in runs[3:] if name != "peer"]
    assert all(f"--model {model}" in cmd for cmd in ours)
    assert any("--precision fp32 --grid 512:32" in cmd for cmd in ours) or device == "cpu"
    assert any("--capture" in cmd and "--batch-sizes" in cmd for cmd in ours)
    # The peer at the settings of the fp32 row (its only precision), beside it.
    peer = dict((name, cmd) for name, _, cmd in runs)["peer"]
    assert peer.endswith("512 32 20") or device == "cpu"


def test_benchmarks_import_no_download_code() -> None:
    # A bare GPU box has no pooch; the benchmarks build models from random weights only.
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import step_bench, memory_bench; "
            "print(sorted({'pooch', 'requests', 'vqclip.models.download'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "[]"


def test_clip_preference_reads_run_folders_and_scores_their_final_images(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from vqclip.run.config import build_config
    from vqclip.shapes.data import draw_shape

    for name, prompt in [("square", "a red square"), ("other", "a red square at the top")]:
        run = tmp_path / name
        run.mkdir()
        cfg, _ = build_config(preset="shapes", dotlist=[f"prompt={prompt}"])
        OmegaConf.save(cfg, run / "config.yaml")
        draw_shape("square", "red", radius=0.2).save(run / "final.png")  # one of the clean renders
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def square_row(*extra: str) -> list[str]:
        out = subprocess.run([sys.executable, "benchmarks/clip_preference.py", str(tmp_path),
                              "--threads", "1", *extra],
                             cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
        row = next(line for line in out.splitlines() if line.startswith("| square |"))
        return [cell.strip() for cell in row.strip("|").split("|")[1:]]

    images, drawn, best, _, drawn_near, clean_near, right = square_row()
    assert images == "1" and right == "100%"  # the other prompt is not "a COLOR SHAPE": skipped
    assert float(best) >= float(drawn) > 0.3
    # The drawn image is one of the clean renders: as near their centroid as they are.
    assert abs(float(drawn_near) - float(clean_near)) < 0.1 and float(drawn_near) > 0.5

    from vqclip.shapes.train_clip import build_clip, clip_model_config, save_clip

    other = save_clip(build_clip(clip_model_config(), seed=3), tmp_path / "untrained")
    _, other_drawn, *_ = square_row("--clip", f"local-dir:{other}")
    assert other_drawn != drawn  # scored by the untrained CLIP, not the run's own
