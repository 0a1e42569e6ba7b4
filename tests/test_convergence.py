"""Options for faster convergence: the latent's moving average, the early-fading anchor, mixed cutouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.steer.cutouts import Cutouts
from vqclip.steer.losses import DECAYS, WeightedRegularizer

pytestmark = pytest.mark.usefixtures("one_thread")


def make_run(tiny_sets, out, *items: str):
    cfg, _ = build_config(dotlist=[*tiny_sets, "prompt=a red circle", "size=[32,32]", "cutn=4",
                                   "seed=2", "lr=0.5", f"out={out}", "steps=6", "save_every=2", *items])
    return build(prepare(cfg))


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_early_decay_reaches_zero_at_its_share_of_the_run() -> None:
    early = DECAYS["early"]
    assert early(0, 100, 0.25) == 1.0
    assert early(10, 100, 0.25) == pytest.approx(0.6)
    assert early(25, 100, 0.25) == 0.0 and early(90, 100, 0.25) == 0.0
    anchor = WeightedRegularizer("init", 2.0, "early", until=0.5)
    assert anchor.weight_at(25, 100) == pytest.approx(1.0) and anchor.weight_at(50, 100) == 0.0
    assert WeightedRegularizer("init", 2.0, "linear").weight_at(50, 100) == pytest.approx(1.0)


def test_early_anchor_holds_the_start_then_lets_go(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path, "init_image='#3060c0'", "init_weight=50",
                   "init_weight_decay=early", "init_weight_until=0.5")
    run.execute()
    lines = [json.loads(x) for x in (run.run_dirs[0] / "log.jsonl").read_text().splitlines()]
    init = [line["losses"]["init"] for line in lines]
    assert init[0] == 0.0  # the start is where it started
    assert init[1] > 0 and all(value == 0.0 for value in init[3:])  # no pull from step 3 of 6 on


def test_mixed_cutouts_are_half_whole_images_and_half_crops() -> None:
    image = torch.rand(1, 3, 32, 32)
    cuts = Cutouts(16, 8, method="mixed", cut_min=0.3)(image, torch.Generator().manual_seed(0))
    whole = Cutouts(16, 1, method="pooled")(image, torch.Generator().manual_seed(0))[0]
    assert all(torch.allclose(cuts[i], whole) for i in range(4))
    assert not any(torch.allclose(cuts[i], whole) for i in range(4, 8))


def test_ema_shows_the_averaged_latent_and_resumes_it(tiny_sets, tmp_path) -> None:
    plain = make_run(tiny_sets, tmp_path / "plain").execute()
    averaged_run = make_run(tiny_sets, tmp_path / "ema", "ema=0.9")
    averaged = averaged_run.execute()
    # the same optimization, another image shown: the last step's loss is the same
    assert abs(plain.final_loss - averaged.final_loss) < 1e-5
    assert np.abs(pixels(plain.image) - pixels(averaged.image)).max() > 2
    engine = averaged_run.engine
    state = torch.load(averaged.run_dir / "state.pt", weights_only=True)
    assert torch.equal(state["averaged"][0], engine.averaged[0])
    assert not torch.equal(state["averaged"][0], state["parameters"][0])


def test_ema_run_resumes_to_the_same_image(tiny_sets, tmp_path) -> None:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    args = ["generate", "a red circle", *sets, "--size", "32x32", "--seed", "4", "--cutn", "4",
            "--json", "-s", "ema=0.8", "--save-every", "3"]
    straight = json.loads(CliRunner().invoke(app, [*args, "-o", str(tmp_path / "a"), "--steps", "8"]).stdout)
    first = json.loads(CliRunner().invoke(app, [*args, "-o", str(tmp_path / "b"), "--steps", "4"]).stdout)
    resumed = CliRunner().invoke(app, ["resume", first["run_dir"], "--steps", "8", "--json"])
    assert resumed.exit_code == 0, resumed.output
    image = json.loads(resumed.stdout)["image"]
    assert np.array_equal(pixels(straight["image"]), pixels(image))
    assert Path(image).parent == Path(first["run_dir"])
