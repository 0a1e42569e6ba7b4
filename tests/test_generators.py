"""Pixel and Fourier generators and CLIP ensembles, through the same engine as the VQGAN."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tests.tiny_clip import write_tiny_clip
from vqclip.errors import ConfigError
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare
from vqclip.steer.generators import FourierGenerator, PixelGenerator


def run(sets: list[str], tmp_path, *items: str, steps: int = 12):
    cfg, _ = build_config(dotlist=[*sets, "prompt=a red circle", "size=[32,32]", "cutn=8",
                                   f"out={tmp_path}", "seed=0", "save_every=0", f"steps={steps}",
                                   "augmentations=[]", *items])
    return build(prepare(cfg)).execute()


def losses(result) -> list[float]:
    lines = (result.run_dir / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


@pytest.mark.parametrize(("name", "lr"), [("pixel", 0.2), ("fourier", 0.5)])
def test_pixel_and_fourier_lower_the_loss_without_a_vqgan(tiny_clip, tmp_path, name, lr) -> None:
    sets = [f"clip.model=local-dir:{tiny_clip}", "clip.pretrained=null", "device=cpu",
            "vqgan.model=null"]
    result = run(sets, tmp_path, f"generator={name}", f"lr={lr}")
    values = losses(result)
    assert sum(values[-3:]) / 3 < sum(values[:3]) / 3
    with Image.open(result.image) as image:
        assert image.size == (32, 32)
    record = json.loads(Image.open(result.image).info["vqclip"])
    assert record["models"][name]["name"] == name


def test_generators_start_from_an_init_image() -> None:
    start = torch.zeros(1, 3, 16, 16)
    start[:, 0] = 0.8
    pixel = PixelGenerator(start, 16, 16, scale=2)
    fourier = FourierGenerator(start, 16, 16, 1.0, [torch.Generator().manual_seed(0)])
    for generator in (pixel, fourier):
        image = generator.image()
        assert image.shape == (1, 3, 16, 16)
        assert torch.allclose(image[:, 0].mean(), torch.tensor(0.8), atol=0.02)


def test_pixel_scale_must_divide_the_size(tiny_clip, tmp_path) -> None:
    sets = [f"clip.model=local-dir:{tiny_clip}", "clip.pretrained=null", "device=cpu"]
    with pytest.raises(ConfigError, match="pixel.scale=3"):
        run(sets, tmp_path, "generator=pixel", "pixel.scale=3")


def test_unknown_generator_lists_valid_names(tiny_sets, tmp_path) -> None:
    with pytest.raises(ConfigError, match="valid: vqgan, pixel, fourier"):
        run(tiny_sets, tmp_path, "generator=diffusion")


def test_ensemble_of_two_clips_with_different_input_sizes(tiny_sets, tiny_clip, tmp_path) -> None:
    other = write_tiny_clip(tmp_path / "clip48", seed=1, image_size=48)
    sets = [s for s in tiny_sets if not s.startswith("clip.")]
    models = (f"clip.models=[{{model: 'local-dir:{tiny_clip}', weight: 1.0}}, "
              f"{{model: 'local-dir:{other}', weight: 0.5}}]")
    result = run(sets, tmp_path, models, steps=3)
    last = json.loads((result.run_dir / "log.jsonl").read_text().splitlines()[-1])
    assert len(last["losses"]) == 2 and all("/text:a red circle" in k for k in last["losses"])
    record = json.loads(Image.open(result.image).info["vqclip"])
    assert [m["weight"] for m in record["models"]["clip"]] == [1.0, 0.5]
