"""--batch-size K: the images of K seeds optimized together, each the image its seed makes alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app
from vqclip.outputs.metadata import read_record
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.execute import Run
from vqclip.run.memory import StepMemory
from vqclip.run.planner import smaller_settings
from vqclip.run.prepare import prepare
from vqclip.run.resume import ResumePoint

pytestmark = pytest.mark.usefixtures("one_thread")


def make_run(tiny_sets, tmp_path, *items: str) -> Run:
    cfg, _ = build_config(dotlist=[*tiny_sets, "prompt=a red circle", "size=[32,32]", "cutn=4",
                                   f"out={tmp_path}", "steps=6", "save_every=3", *items])
    return build(prepare(cfg))


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


@pytest.mark.parametrize("items", [[], ["optimizer.name=sgd", "optimizer.options.momentum=0.9",
                                        "losses=[{name: tv, weight: 0.5}]"]])
def test_each_image_of_a_batch_is_the_image_its_seed_makes_alone(tiny_sets, tmp_path, items):
    batch = make_run(tiny_sets, tmp_path / "batch", "seed=7", "batch_size=3", *items).execute()
    assert [r.seed for r in batch.batch] == [7, 8, 9]
    assert len({r.run_dir for r in batch.batch}) == 3
    for result in batch.batch:
        alone = make_run(tiny_sets, tmp_path / "alone", f"seed={result.seed}", *items).execute()
        assert abs(result.final_loss - alone.final_loss) < 1e-4
        assert np.abs(pixels(result.image) - pixels(alone.image)).max() <= 2
    # the seeds draw different images
    first, second = (pixels(r.image) for r in batch.batch[:2])
    assert np.abs(first - second).mean() > 1


def test_batch_run_folders_record_the_single_run_of_each_image(tiny_sets, tmp_path) -> None:
    result = make_run(tiny_sets, tmp_path, "seed=3", "batch_size=2").execute()
    for index, each in enumerate(result.batch):
        config = yaml.safe_load((each.run_dir / "config.yaml").read_text())
        assert config["seed"] == 3 + index and config["batch_size"] == 1
        record = read_record(each.image)
        assert record["seed"] == 3 + index
        assert record["batch"] == {"size": 2, "index": index, "seeds": [3, 4]}
        assert sorted(p.name for p in (each.run_dir / "frames").iterdir()) == [
            "000000.png", "000003.png"]
        log = [json.loads(line) for line in (each.run_dir / "log.jsonl").read_text().splitlines()]
        assert [line["step"] for line in log] == list(range(6))


def test_one_image_of_a_batch_resumes_alone_where_the_batch_stopped(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path / "batch", "seed=11", "batch_size=2", "steps=8")

    def stop_after_four(event) -> None:
        if getattr(event, "step", None) == 3:
            run.engine.request_stop()

    interrupted = run.execute([stop_after_four])
    assert interrupted.interrupted and interrupted.steps == 4
    second = interrupted.batch[1]
    point = ResumePoint.load(second.run_dir)
    resumed = build(prepare(point.config()), resume=point).execute()
    assert resumed.steps == 8 and resumed.seed == 12
    alone = make_run(tiny_sets, tmp_path / "alone", "seed=12", "steps=8").execute()
    assert np.abs(pixels(resumed.image) - pixels(alone.image)).max() <= 2


def test_generate_cli_prints_every_image_and_a_batch_list_in_json(tiny_sets, tmp_path) -> None:
    args = ["generate", "a red circle", "--size", "32x32", "--steps", "2", "--cutn", "2",
            "--seed", "5", "--batch-size", "2", "-o", str(tmp_path), "-q"]
    for item in tiny_sets:
        args += ["-s", item]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0, plain.output
    paths = plain.stdout.split()
    assert len(paths) == 2 and all(Image.open(p).size == (32, 32) for p in paths)
    data = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert data["seed"] == 5 and [each["seed"] for each in data["batch"]] == [5, 6]
    assert data["image"] == data["batch"][0]["image"]


@pytest.mark.parametrize("extra", [["--batch-size", "0"], ["--batch-size", "2", "--seeds", "1-2"]])
def test_bad_batch_size_is_a_usage_error_before_any_work(tiny_sets, tmp_path, extra) -> None:
    args = ["generate", "a red circle", "--size", "32x32", "-o", str(tmp_path), *extra]
    for item in tiny_sets:
        args += ["-s", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "batch_size" in result.stderr and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_planner_names_the_largest_batch_that_fits() -> None:
    memory = StepMemory(resident=1000, step=4000, cutout_part=2000)  # four images, 1000 bytes each
    advice = smaller_settings(memory, 3500, size=(64, 64), size_multiple=16, cutn=8, batch_size=4)
    assert "--batch-size 2" in advice


def test_batch_optimizer_state_of_one_image_has_that_images_shape(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path, "seed=1", "batch_size=3", "steps=2")
    run.execute()
    state = run.engine.state_dict(2)
    (z,) = state["parameters"]
    assert z.shape[0] == 1
    buffers = state["optimizer"]["state"][0]
    assert buffers["exp_avg"].shape == z.shape
    assert torch.equal(z, run.engine.generator.z.detach()[2:3])
