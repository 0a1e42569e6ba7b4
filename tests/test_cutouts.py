"""Cutouts and augmentations: shapes, ranges, determinism, the full view, every augmentation."""

import pytest
import torch

from vqclip.errors import ConfigError
from vqclip.steer.augment import AUGMENTATIONS, augment_strengths
from vqclip.steer.cutouts import Cutouts


def test_shape_range_and_determinism() -> None:
    image = torch.rand(1, 3, 48, 64)
    cut = Cutouts(16, 6, augmentations=["flip", "affine"], strengths=augment_strengths())
    first = cut(image, torch.Generator().manual_seed(1))
    second = cut(image, torch.Generator().manual_seed(1))
    third = cut(image, torch.Generator().manual_seed(2))
    assert first.shape == (6, 3, 16, 16)
    assert torch.equal(first, second) and not torch.equal(first, third)
    assert first.min() >= 0 and first.max() <= 1


def test_full_cutout_sees_the_whole_image() -> None:
    image = torch.zeros(1, 3, 32, 32)
    image[..., :, :16] = 1.0  # left half white
    full = Cutouts(16, 1, cut_full=True)(image, torch.Generator().manual_seed(0))[0]
    assert full[:, :, :7].mean() > 0.95 and full[:, :, 9:].mean() < 0.05


def test_cut_pow_controls_crop_size() -> None:
    # A bright dot in the middle: small crops often miss it or magnify it, full views shrink it.
    image = torch.zeros(1, 3, 64, 64)
    image[..., 30:34, 30:34] = 1.0
    small = Cutouts(8, 256, cut_pow=4.0)(image, torch.Generator().manual_seed(0))
    large = Cutouts(8, 256, cut_pow=0.25)(image, torch.Generator().manual_seed(0))
    assert small.amax(dim=(1, 2, 3)).std() > large.amax(dim=(1, 2, 3)).std()


def test_pooled_method_gives_whole_image_copies() -> None:
    image = torch.rand(1, 3, 32, 32)
    cuts = Cutouts(16, 4, method="pooled")(image, torch.Generator().manual_seed(0))
    assert torch.allclose(cuts[0], cuts[3])


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_changes_cutouts_and_keeps_gradients(name: str) -> None:
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    plain = Cutouts(16, 8)(image, torch.Generator().manual_seed(0))
    augmented = Cutouts(16, 8, augmentations=[name], strengths=augment_strengths())(
        image, torch.Generator().manual_seed(0)
    )
    assert augmented.shape == plain.shape
    assert not torch.allclose(augmented, plain)
    augmented.sum().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()


def test_unknown_augmentation_and_method_list_valid_names() -> None:
    with pytest.raises(ConfigError, match="valid: affine"):
        Cutouts(16, 2, augmentations=["blur"])
    with pytest.raises(ConfigError, match="valid: random, pooled"):
        Cutouts(16, 2, method="tiles")


def test_padding_decides_what_shifted_cutouts_see_past_the_edge() -> None:
    image = torch.ones(1, 3, 32, 32)
    strengths = augment_strengths(affine=1.0)

    def darkest(padding: str) -> float:
        cut = Cutouts(16, 16, method="pooled", padding=padding, augmentations=["affine"],
                      strengths=strengths)
        return float(cut(image, torch.Generator().manual_seed(0)).min())

    assert darkest("reflection") == pytest.approx(1.0)
    assert darkest("border") == pytest.approx(1.0)
    assert darkest("zeros") < 0.5
    with pytest.raises(ConfigError,
                       match="cut_padding='mirror': unknown name; valid: reflection, zeros, border"):
        Cutouts(16, 4, padding="mirror")


def test_cutouts_under_bf16_autocast_equal_fp32_cutouts_at_512() -> None:
    # A smooth 512x512 image, as the VQGAN's bf16 output under autocast: bf16 crop coordinates
    # are only good to about a pixel there, so each cutout would shift by up to one pixel.
    y, x = torch.meshgrid(torch.linspace(0, 1, 512), torch.linspace(0, 1, 512), indexing="ij")
    image = torch.stack([x, y, 0.5 + 0.5 * torch.sin(12 * x + 9 * y)]).unsqueeze(0)
    image = image.bfloat16()
    cut = Cutouts(224, 8, augmentations=["flip", "affine", "perspective"],
                  strengths=augment_strengths())
    reference = cut(image.float(), torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = cut(image, torch.Generator().manual_seed(3))
    assert fast.dtype == torch.float32
    assert (fast - reference).abs().max() <= 1e-6
