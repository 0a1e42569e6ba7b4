"""Steering options on tiny models: every loss, optimizer, schedule, init mode and prompt kind runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from vqclip.errors import ConfigError, UsageError
from vqclip.outputs.metadata import read_record
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.steer.losses import REGULARIZERS
from vqclip.steer.optimizers import OPTIMIZERS
from vqclip.steer.prompts import negative_prompts
from vqclip.steer.schedules import SCHEDULES, make_scheduler
from vqclip.steer.start_choices import SHAPE_STARTS


def run(tiny_sets, tmp_path, *items: str, steps: int = 3):
    cfg, _ = build_config(dotlist=[*tiny_sets, "prompt=a red circle", "size=[32,32]", "cutn=4",
                                   f"out={tmp_path}", "seed=0", "save_every=0", f"steps={steps}",
                                   *items])
    return build(prepare(cfg)).execute()


def log_lines(result) -> list[dict]:
    return [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_every_registered_loss_runs_and_is_logged(tiny_sets, tmp_path, name) -> None:
    result = run(tiny_sets, tmp_path, f"losses=[{{name: {name}, weight: 0.5}}]")
    losses = log_lines(result)[-1]["losses"]
    assert name in losses and math.isfinite(losses[name])


def test_unknown_loss_lists_valid_names(tiny_sets, tmp_path) -> None:
    with pytest.raises(ConfigError, match="valid: init, saturation, symmetry, tv, border"):
        run(tiny_sets, tmp_path, "losses=[{name: sharp}]")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_runs(tiny_sets, tmp_path, name) -> None:
    result = run(tiny_sets, tmp_path, f"optimizer.name={name}")
    assert result.image.exists() and math.isfinite(result.final_loss)


def test_optimizer_options_are_passed_and_checked(tiny_sets, tmp_path) -> None:
    run(tiny_sets, tmp_path, "optimizer.name=sgd", "optimizer.options.momentum=0.9")
    with pytest.raises(ConfigError, match="key='optimizer.options.warp': unknown name"):
        run(tiny_sets, tmp_path, "optimizer.name=sgd", "optimizer.options.warp=1")


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_runs(tiny_sets, tmp_path, name) -> None:
    run(tiny_sets, tmp_path, f"lr_schedule.name={name}")


def test_schedule_shapes() -> None:
    def lrs(name: str, options: dict) -> list[float]:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched = make_scheduler(name, opt, 8, options)
        values = []
        for _ in range(8):
            values.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return values

    assert lrs("constant", {}) == [1.0] * 8
    assert lrs("step", {}) == [1.0] * 6 + [0.1] * 2  # pixray: /10 at 75 %
    cosine = lrs("cosine", {})
    assert cosine[0] == 1.0 and all(a > b for a, b in zip(cosine, cosine[1:], strict=False))
    with pytest.raises(ConfigError, match="valid: factor, at \\(what 'step' takes\\)"):
        lrs("step", {"floor": 0.1})


@pytest.mark.parametrize("mode", ["tokens", "pixels", "gradient"])
def test_init_noise_modes(tiny_sets, tmp_path, mode) -> None:
    run(tiny_sets, tmp_path, f"init_noise={mode}")


@pytest.mark.parametrize("generator", ["vqgan", "pixel", "fourier"])
def test_every_generator_starts_from_a_shape_its_clip_picks(tiny_sets, tmp_path, generator) -> None:
    result = run(tiny_sets, tmp_path, "init_noise=shapes", f"generator={generator}", "size=[48,32]")
    start = read_record(result.image)["start"]
    assert start["picked"] == min(start["choices"], key=start["choices"].get)
    assert sorted(start["choices"]) == sorted(SHAPE_STARTS.names)


def test_init_weight_pulls_toward_the_init_latent(tiny_sets, tmp_path) -> None:
    free = run(tiny_sets, tmp_path, "init_image='#3060c0'", "lr=0.5", steps=6)
    held = run(tiny_sets, tmp_path, "init_image='#3060c0'", "lr=0.5", "init_weight=50", steps=6)
    assert "init" in log_lines(held)[-1]["losses"]

    def drift(result) -> float:
        state = torch.load(result.run_dir / "state.pt", weights_only=True)
        return (state["parameters"][0] - state["initial"][0]).abs().mean().item()

    assert drift(held) < drift(free)


def test_story_mode_switches_and_logs(tiny_sets, tmp_path) -> None:
    result = run(tiny_sets, tmp_path, "prompt='a red square ^ a blue square'", steps=4)
    lines = log_lines(result)
    switches = [line for line in lines if line.get("event") == "prompt_switch"]
    assert [(s["step"], s["prompt"]) for s in switches] == [(0, "a red square"), (2, "a blue square")]
    steps = [line for line in lines if "loss" in line]
    assert "text:a red square" in steps[1]["losses"] and "text:a blue square" in steps[2]["losses"]


def test_story_schedule_from_yaml(tiny_sets, tmp_path) -> None:
    cfg = tmp_path / "story.yaml"
    cfg.write_text("prompt: ''\nstory:\n  - {prompt: a cat, start: 0}\n  - {prompt: a dog, start: 1}\n")
    config, _ = build_config(config_files=[cfg], dotlist=[*tiny_sets, "size=[32,32]", "cutn=2",
                                                          f"out={tmp_path}", "steps=3", "seed=1"])
    result = build(prepare(config)).execute()
    switches = [line["step"] for line in log_lines(result) if line.get("event") == "prompt_switch"]
    assert switches == [0, 1]


def test_image_and_noise_prompts_and_negative(tiny_sets, tmp_path) -> None:
    picture = tmp_path / "C_colon" / "target:x.png"
    picture.parent.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(picture)
    result = run(tiny_sets, tmp_path, f"image_prompts=['{picture}:2']", "noise_prompts=['7:0.5']",
                 "negative='blurry | text:0.5'")
    losses = log_lines(result)[-1]["losses"]
    assert {f"image:{picture}", "noise:7", "text:blurry", "text:text"} <= set(losses)
    assert losses["text:blurry"] < 0  # pushing away counts as a negative loss


def test_image_prompt_only_needs_no_text(tiny_sets, tmp_path) -> None:
    picture = tmp_path / "p.png"
    Image.new("RGB", (32, 32), (0, 0, 255)).save(picture)
    result = run(tiny_sets, tmp_path, "prompt=''", f"image_prompts=['{picture}']")
    assert result.image.exists()


def test_missing_image_prompt_is_a_usage_error(tiny_sets, tmp_path) -> None:
    with pytest.raises(UsageError, match="image not found"):
        run(tiny_sets, tmp_path, f"image_prompts=['{tmp_path / 'none.png'}:0.5']")


def test_negative_prompt_parsing() -> None:
    items = negative_prompts("blurry | text:0.5 |  ")
    assert [(p.text, p.weight) for p in items] == [("blurry", -1.0), ("text", -0.5)]
