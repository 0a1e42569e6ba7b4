"""Image generators: what the optimizer changes and how it becomes an image, chosen by name.

`VQGANGenerator` (a latent snapped to a VQGAN codebook), `PixelGenerator` (the pixels
themselves, optionally at a lower resolution) and `FourierGenerator` (a decaying frequency
spectrum) share one interface, so the engine never asks which one it drives.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from vqclip.models.vqgan import VQGAN


class ImageGenerator(Protocol):
    """What the engine needs of a generator: parameters, a [0, 1] image, and a clamp after steps."""

    def parameters(self) -> list[torch.Tensor]: ...

    def image(self) -> torch.Tensor: ...

    def clamp_(self) -> None: ...

    def set_low_memory(self, enabled: bool) -> None: ...

    def compile(self) -> None: ...

    @property
    def size_multiple(self) -> int: ...


class _ClampWithGrad(torch.autograd.Function):
    """Clamp to [0, 1] but let gradients through where they point back into range."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # Descent moves x by -grad; keep the gradient when that moves x toward [0, 1].
        outside = x - x.clamp(0.0, 1.0)
        return grad * (grad * outside >= 0)


def clamp_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] with a straight-through gradient that only points back into range."""
    return _ClampWithGrad.apply(x)


class VQGANGenerator:
    """A latent z snapped to the codebook (straight-through), decoded by the VQGAN."""

    def __init__(self, vqgan: VQGAN, z: torch.Tensor) -> None:
        self.vqgan = vqgan
        self.z = z.detach().clone().requires_grad_(True)
        codebook = vqgan.codebook.detach()
        self.z_min = codebook.min(dim=0).values.view(1, -1, 1, 1).to(z)
        self.z_max = codebook.max(dim=0).values.view(1, -1, 1, 1).to(z)

    @classmethod
    def from_random_tokens(
        cls, vqgan: VQGAN, width: int, height: int, generators: list[torch.Generator]
    ) -> VQGANGenerator:
        """The classic start: a random codebook token at every latent position, one image per
        random generator."""
        device = vqgan.codebook.device
        shape = (1, height // vqgan.factor, width // vqgan.factor)
        tokens = torch.cat([torch.randint(vqgan.codebook.shape[0], shape, generator=generator,
                                          device=device) for generator in generators])
        return cls(vqgan, vqgan.tokens_to_latent(tokens))

    @classmethod
    def from_image(cls, vqgan: VQGAN, image: torch.Tensor) -> VQGANGenerator:
        """Start from the VQGAN encoding of (K, 3, H, W) [0, 1] images."""
        with torch.no_grad():
            z = vqgan.encode(image.to(vqgan.codebook.device) * 2 - 1)
        return cls(vqgan, z)

    def parameters(self) -> list[torch.Tensor]:
        return [self.z]

    def image(self) -> torch.Tensor:
        """(K, 3, H, W) images in [0, 1], differentiable with respect to z."""
        z_q, _ = self.vqgan.quantize_latent(self.z)
        return clamp_with_grad(self.vqgan.decode(z_q).add(1).div(2))

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep z inside the codebook's range in every dimension."""
        self.z.copy_(torch.maximum(torch.minimum(self.z, self.z_max), self.z_min))

    def set_low_memory(self, enabled: bool) -> None:
        """Recompute each decoder block in the backward pass instead of keeping its activations."""
        self.vqgan.decoder.checkpoint_stages = enabled

    def compile(self) -> None:
        """Compile the decoder with torch.compile (on its first call)."""
        self.vqgan.decoder.compile()

    @property
    def size_multiple(self) -> int:
        """Both sides of the image are multiples of the VQGAN's downsampling factor."""
        return self.vqgan.factor


def _logit(image: torch.Tensor) -> torch.Tensor:
    return torch.logit(image.clamp(1e-3, 1 - 1e-3))


class PixelGenerator:
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

    def clamp_(self) -> None:
        """Nothing to clamp: the sigmoid keeps every pixel in range."""

    def set_low_memory(self, enabled: bool) -> None:
        """Nothing to recompute: the image is one sigmoid and one resize away."""

    def compile(self) -> None:
        """Nothing worth compiling: two element-wise ops."""


class FourierGenerator:
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

    def clamp_(self) -> None:
        """Nothing to clamp: the sigmoid keeps every pixel in range."""

    def set_low_memory(self, enabled: bool) -> None:
        """Nothing to recompute: the image is one inverse FFT and one sigmoid away."""

    def compile(self) -> None:
        """Nothing worth compiling: one inverse FFT and one sigmoid."""
