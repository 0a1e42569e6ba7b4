"""Image generators: what the optimizer changes and how it becomes an image, chosen by name.

`VQGANGenerator` (a latent snapped to a VQGAN codebook), `PixelGenerator` (the pixels
themselves, optionally at a lower resolution) and `FourierGenerator` (a decaying frequency
spectrum) share one interface, so the engine never asks which one it drives. A generator is
one `ImageGenerator` subclass and one `GENERATORS` registration: how to build it from the config
(taking its model from the caller's `Models`), what to check of the config before anything
loads, and the dataclass of its options, which the config schema takes as a section named after
it (`pixel.scale`). Only the VQGAN has a model, which vqclip.models describes, checks and loads
by name: a new generator with a model of its own needs that there too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from vqclip.device import step_weights_dtype
from vqclip.errors import ConfigError
from vqclip.models.vqgan import VQGAN
from vqclip.models.vqgan_layers import AttnBlock
from vqclip.registry import Registry
from vqclip.steer.start_choices import SHAPE_STARTS, StartChoices

if TYPE_CHECKING:
    from vqclip.models.held import Models


class ImageGenerator:
    """What the engine needs of a generator: parameters, a [0, 1] image, and a clamp after
    steps. The defaults suit a generator with no network: one way to make the image, nothing
    to clamp or recompute."""

    size_multiple = 1  # both sides of the image are multiples of this

    def parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def image(self) -> torch.Tensor:
        """(K, 3, H, W) images in [0, 1], differentiable, as the step makes them (under the
        run's autocast, if any)."""
        raise NotImplementedError

    def exact_image(self) -> torch.Tensor:
        """The images at full precision, without autocast (the final image, and the frames when
        ema is on): `image()` unless the step runs a copy of the network in a lower precision."""
        return self.image()

    def clamp_(self) -> None:
        """Bring the parameters back into range after a step."""

    def set_low_memory(self, enabled: bool) -> None:
        """Recompute activations in the backward pass instead of keeping them."""


class _ClampWithGrad(torch.autograd.Function):
    """Clamp to [0, 1] but let gradients through where they point back into range."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        clamped = x.clamp(0.0, 1.0)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x - clamped)  # how far outside [0, 1], signed
        return clamped

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (outside,) = ctx.saved_tensors
        # Descent moves x by -grad; keep the gradient when that moves x toward [0, 1].
        return grad.masked_fill(grad * outside < 0, 0.0)


def clamp_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] with a straight-through gradient that only points back into range."""
    return _ClampWithGrad.apply(x)


class VQGANGenerator(ImageGenerator):
    """A latent z snapped to the codebook (straight-through), decoded by the VQGAN; in the step
    by `step_vqgan` when given (its autocast copy, `VQGAN.autocast_copy`)."""

    def __init__(self, vqgan: VQGAN, z: torch.Tensor, step_vqgan: VQGAN | None = None) -> None:
        self.vqgan = vqgan
        self.step_vqgan = vqgan if step_vqgan is None else step_vqgan
        self.z = z.detach().clone().requires_grad_(True)
        codebook = vqgan.codebook.detach()
        self.z_min = codebook.min(dim=0).values.view(1, -1, 1, 1).to(z)
        self.z_max = codebook.max(dim=0).values.view(1, -1, 1, 1).to(z)
        # Constant over the run: computed here once rather than in every step's quantization.
        self.code_norms = codebook.float().pow(2).sum(dim=1)
        self.half = torch.full((), 0.5, device=z.device)  # [-1, 1] -> [0, 1]: 0.5 + 0.5 x, one kernel
        for block in (*vqgan.decoder.modules(), *self.step_vqgan.decoder.modules()):
            if isinstance(block, AttnBlock):
                block.pack()

    @classmethod
    def from_random_tokens(
        cls, vqgan: VQGAN, width: int, height: int, generators: list[torch.Generator],
        step_vqgan: VQGAN | None = None,
    ) -> VQGANGenerator:
        """The classic start: a random codebook token at every latent position, one image per
        random generator."""
        device = vqgan.codebook.device
        shape = (1, height // vqgan.factor, width // vqgan.factor)
        tokens = torch.cat([torch.randint(vqgan.codebook.shape[0], shape, generator=generator,
                                          device=device) for generator in generators])
        return cls(vqgan, vqgan.tokens_to_latent(tokens), step_vqgan)

    @classmethod
    def from_image(cls, vqgan: VQGAN, image: torch.Tensor,
                   step_vqgan: VQGAN | None = None) -> VQGANGenerator:
        """Start from the VQGAN encoding of (K, 3, H, W) [0, 1] images."""
        with torch.no_grad():
            z = vqgan.encode(image.to(vqgan.codebook.device) * 2 - 1)
        return cls(vqgan, z, step_vqgan)

    def parameters(self) -> list[torch.Tensor]:
        return [self.z]

    def image(self) -> torch.Tensor:
        """(K, 3, H, W) images in [0, 1], differentiable with respect to z."""
        return self._decode(self.step_vqgan)

    def exact_image(self) -> torch.Tensor:
        return self._decode(self.vqgan)

    def _decode(self, vqgan: VQGAN) -> torch.Tensor:
        z_q, _ = vqgan.quantize_latent(self.z, self.code_norms)
        return clamp_with_grad(torch.add(self.half, vqgan.decode(z_q), alpha=0.5))

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep z inside the codebook's range in every dimension."""
        self.z.clamp_(self.z_min, self.z_max)

    def set_low_memory(self, enabled: bool) -> None:
        """Recompute each decoder block in the backward pass instead of keeping its activations."""
        self.step_vqgan.decoder.checkpoint_stages = enabled

    @property
    def size_multiple(self) -> int:
        """Both sides of the image are multiples of the VQGAN's downsampling factor."""
        return self.vqgan.factor


def _logit(image: torch.Tensor) -> torch.Tensor:
    return torch.logit(image.clamp(1e-3, 1 - 1e-3))


class PixelGenerator(ImageGenerator):
    """The image itself, as logits at 1/`scale` of the size, upsampled bilinearly."""

    def __init__(self, start: torch.Tensor, width: int, height: int, scale: int) -> None:
        low = F.interpolate(start, size=(height // scale, width // scale), mode="area")
        self.logits = _logit(low).requires_grad_(True)
        self.size = (height, width)
        self.size_multiple = scale

    def parameters(self) -> list[torch.Tensor]:
        return [self.logits]

    def image(self) -> torch.Tensor:
        image = torch.sigmoid(self.logits)
        if image.shape[-2:] != self.size:
            image = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False)
        return image


class FourierGenerator(ImageGenerator):
    """The image as a 2-D spectrum whose amplitudes are scaled by 1/frequency**decay.

    Optimizing in this basis favours smooth, large structures over pixel noise (Mordvintsev
    et al., "Differentiable Image Parameterizations", 2018).
    """

    def __init__(self, start: torch.Tensor | None, width: int, height: int, decay: float,
                 generators: list[torch.Generator]) -> None:
        device = generators[0].device
        fy = torch.fft.fftfreq(height, device=device).view(-1, 1)
        fx = torch.fft.rfftfreq(width, device=device).view(1, -1)
        frequency = torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / max(width, height))
        self.scale = frequency.pow(-decay)
        self.scale = self.scale / self.scale.max()
        if start is None:  # a faint random spectrum: mid-gray with low-frequency blotches
            shape = (1, 3, height, width // 2 + 1, 2)
            spectrum = torch.cat([torch.randn(shape, generator=generator, device=device)
                                  for generator in generators]) * 0.01
        else:
            complex_spectrum = torch.fft.rfft2(_logit(start.to(device)), norm="ortho") / self.scale
            spectrum = torch.view_as_real(complex_spectrum)
        self.spectrum = spectrum.contiguous().requires_grad_(True)
        self.size = (height, width)
        self.size_multiple = 1

    def parameters(self) -> list[torch.Tensor]:
        return [self.spectrum]

    def image(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.sigmoid(torch.fft.irfft2(spectrum, s=self.size, norm="ortho"))


def pixel_noise(width: int, height: int, rng: torch.Generator) -> torch.Tensor:
    """A (1, 3, H, W) start of uniform random pixels."""
    return torch.rand((1, 3, height, width), generator=rng, device=rng.device)


def gradient_noise(width: int, height: int, rng: torch.Generator) -> torch.Tensor:
    """A (1, 3, H, W) start ramping between two random colors at a random angle."""
    device = rng.device
    ends = torch.rand((2, 3, 1, 1), generator=rng, device=device)
    angle = torch.rand((), generator=rng, device=device) * 2 * torch.pi
    ys = torch.linspace(-1, 1, height, device=device).view(-1, 1)
    xs = torch.linspace(-1, 1, width, device=device).view(1, -1)
    ramp = (xs * torch.cos(angle) + ys * torch.sin(angle)).add(1.5).div(3).clamp(0, 1)
    return (ends[0] * (1 - ramp) + ends[1] * ramp).unsqueeze(0)


# Radius and soft edge as shares of the short side; the gray's brightness. The shapes VQGAN
# decodes a gray of 40 with a green tint (47, 55, 50) that the shapes CLIP kept as green where
# pink was asked; 20 decodes neutral (BENCHMARKS.md, "A spot start with the steered CLIP").
SPOT_RADIUS, SPOT_EDGE, SPOT_GRAY = 0.2, 0.06, 20 / 255


def centre_spot(width: int, height: int, rng: torch.Generator) -> torch.Tensor:
    """A (1, 3, H, W) black start with a dim gray disk in the centre (soft-edged), where a
    subject on a dark ground can grow as one object. The same for every seed (`rng` is not
    drawn from). The shapes preset started from it before it picked its start (BENCHMARKS.md,
    "A spot start with the steered CLIP")."""
    device = rng.device
    ys = (torch.arange(height, device=device) - (height - 1) / 2).view(-1, 1)
    xs = (torch.arange(width, device=device) - (width - 1) / 2).view(1, -1)
    distance = torch.sqrt(xs**2 + ys**2) / min(width, height)
    disk = ((SPOT_RADIUS - distance) / SPOT_EDGE).clamp(0, 1) * SPOT_GRAY
    return disk.expand(1, 3, height, width).contiguous()


# Where a run without an init image starts: a canvas (noise, or the spot), several for the run
# to pick from (the shapes, vqclip.run.start_pick), or None for the generator's own random
# start (`tokens`: random VQGAN codes).
NoiseCanvas = Callable[[int, int, torch.Generator], torch.Tensor]
INIT_NOISE: Registry[NoiseCanvas | StartChoices | None] = Registry("init_noise")
INIT_NOISE.add("tokens", None)
INIT_NOISE.add("pixels", pixel_noise)
INIT_NOISE.add("gradient", gradient_noise)
INIT_NOISE.add("spot", centre_spot)
INIT_NOISE.add("shapes", SHAPE_STARTS)

# Makes the generator at a start ((K, 3, H, W) images, or None for its own random start) with
# one image per random generator.
MakeGenerator = Callable[[torch.Tensor | None, list[torch.Generator]], ImageGenerator]


@dataclass(frozen=True)
class GeneratorKind:
    """A generator by name: `check` refuses a config it cannot draw before anything loads;
    `build` takes its model (if any) from the caller's `Models` and returns its maker and a
    description for the metadata."""

    build: Callable[[DictConfig, Models, torch.device], tuple[MakeGenerator, dict[str, Any]]]
    check: Callable[[DictConfig], None] = lambda cfg: None


GENERATORS: Registry[GeneratorKind] = Registry("generator")


def _build_vqgan(cfg: DictConfig, models: Models, device: torch.device
                 ) -> tuple[MakeGenerator, dict[str, Any]]:
    vqgan, info = models.vqgan(cfg.vqgan, device, cfg.compile)
    width, height = cfg.size
    check_size(width, height, vqgan.factor)  # checked before loading where its config said the factor
    step_vqgan = models.autocast_copy(vqgan, step_weights_dtype(cfg.precision, device, cfg.low_memory))

    def make(start: torch.Tensor | None, rngs: list[torch.Generator]) -> ImageGenerator:
        if start is None:
            return VQGANGenerator.from_random_tokens(vqgan, width, height, rngs, step_vqgan)
        return VQGANGenerator.from_image(vqgan, start, step_vqgan)

    return make, info


def check_size(width: int, height: int, factor: int) -> None:
    """Refuse a size the VQGAN cannot draw, naming the valid sizes nearby."""
    if width % factor == 0 and height % factor == 0:
        return
    widths, heights = nearby_sizes(width, factor), nearby_sizes(height, factor)
    options = ", ".join(f"{w}x{h}" for w in widths for h in heights)
    raise ConfigError(
        f"size {width}x{height}: both sides must be multiples of {factor} for this VQGAN; "
        f"nearby valid sizes: {options}"
    )


def nearby_sizes(side: int, factor: int) -> list[int]:
    """`side` if it is a multiple of `factor`, else the multiples just below and above it."""
    if side % factor == 0:
        return [side]
    low = (side // factor) * factor
    return [s for s in (low, low + factor) if s > 0]


@dataclass
class PixelOptions:
    """The `pixel` generator's section: it optimizes pixels at 1/`scale` of the size, upsampled."""

    scale: int = 1


def _check_pixel(cfg: DictConfig) -> None:
    width, height = cfg.size
    if cfg.pixel.scale < 1:
        raise ConfigError(f"pixel.scale={cfg.pixel.scale}: must be at least 1")
    if width % cfg.pixel.scale or height % cfg.pixel.scale:
        raise ConfigError(f"pixel.scale={cfg.pixel.scale} must divide both sides of the size "
                          f"{width}x{height}")


def _build_pixel(cfg: DictConfig, models: Models, device: torch.device
                 ) -> tuple[MakeGenerator, dict[str, Any]]:
    width, height = cfg.size
    scale = cfg.pixel.scale

    def make(start: torch.Tensor | None, rngs: list[torch.Generator]) -> ImageGenerator:
        if start is None:  # "tokens" has no meaning here: start from uniform noise
            start = torch.cat([pixel_noise(width, height, rng) for rng in rngs])
        return PixelGenerator(start, width, height, scale)

    return make, {"name": "pixel", "scale": scale}


@dataclass
class FourierOptions:
    """The `fourier` generator's section: spectrum amplitudes fall as 1/frequency**`decay`."""

    decay: float = 1.0


def _check_fourier(cfg: DictConfig) -> None:
    if not 0 <= cfg.fourier.decay < math.inf:
        raise ConfigError(f"fourier.decay={cfg.fourier.decay}: must be a number, 0 or more")


def _build_fourier(cfg: DictConfig, models: Models, device: torch.device
                   ) -> tuple[MakeGenerator, dict[str, Any]]:
    width, height = cfg.size

    def make(start: torch.Tensor | None, rngs: list[torch.Generator]) -> ImageGenerator:
        return FourierGenerator(start, width, height, cfg.fourier.decay, rngs)

    return make, {"name": "fourier", "decay": cfg.fourier.decay}


GENERATORS.add("vqgan", GeneratorKind(_build_vqgan))
GENERATORS.add("pixel", GeneratorKind(_build_pixel, _check_pixel), options=PixelOptions)
GENERATORS.add("fourier", GeneratorKind(_build_fourier, _check_fourier), options=FourierOptions)
