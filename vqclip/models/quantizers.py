"""Codebook quantizers of taming VQGANs: snap latents to their nearest codebook vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GumbelQuantizer", "VectorQuantizer", "code_scores", "lookup_codes", "nearest_codes",
           "split_products"]


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor,
                  squared_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest codebook row (L2) for each position of z (B, C, h, w) -> (B, h, w).

    `squared_norms` (the rows' squared lengths, fp32) may be given, computed once."""
    b, c, h, w = z.shape
    if c != codebook.shape[1]:
        raise ValueError(f"latent has {c} channels, the codebook {codebook.shape[1]}")
    # Distances in fp32 even under autocast (in bf16 the nearest code is often the wrong one).
    with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
        flat = z.detach().float().permute(0, 2, 3, 1).reshape(-1, c)
        codes = codebook.detach().float()
        if squared_norms is None:
            squared_norms = codes.pow(2).sum(dim=1)
        return code_scores(flat, codes, squared_norms).argmin(dim=1).view(b, h, w)


def code_scores(flat: torch.Tensor, codes: torch.Tensor, squared_norms: torch.Tensor) -> torch.Tensor:
    """|z - e|^2 - |z|^2 = |e|^2 - 2 z.e for every latent row z of `flat` (N, C) and code e
    (|z|^2 is the same for every code, so it is dropped), (N, n_embed).

    To about fp32 accuracy even where CUDA matmuls use TF32 (whose 10-bit products can flip
    the choice between two close codes): there each side is split into a bf16-exact high part
    and the rest, and three products are summed (hi.hi + hi.lo + lo.hi); TF32 holds the high
    parts exactly and loses only the low parts' low bits, about 2**-19 of each product.
    Unlike switching TF32 off around the product, this changes no global setting, so a
    compiled or captured step holds it whole. Elsewhere matmuls are fp32, and the scores are
    one fused multiply-add kernel."""
    if flat.device.type == "cuda":
        return squared_norms - 2.0 * split_products(flat, codes)
    return torch.addmm(squared_norms, flat, codes.t(), alpha=-2.0)


def split_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T as hi.hi + (hi.lo + lo.hi) of bf16-exact high parts and fp32 remainders."""
    a_high, b_high = a.bfloat16().float(), b.bfloat16().float()
    a_low, b_low = a - a_high, b - b_high
    return a_high @ b_high.t() + (a_high @ b_low.t() + a_low @ b_high.t())


def lookup_codes(indices: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Codebook vectors for token indices (B, h, w) -> latent (B, C, h, w), looked up by index."""
    return F.embedding(indices, codebook).permute(0, 3, 1, 2).contiguous()


class _StraightThrough(torch.autograd.Function):
    """Straight-through (VQ-VAE, van den Oord et al. 2017): forward is z_q, the gradient with
    respect to z is the identity, so the optimizer can move z between codes. The same as
    z + (z_q - z).detach() without its two kernels each step."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        return z_q

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _NearestCodeQuantizer(nn.Module):
    """Shared behaviour: quantize to the nearest row of ``codebook`` (set by subclasses)."""

    n_embed: int
    embed_dim: int

    @property
    def codebook(self) -> torch.Tensor:
        """The codebook, (n_embed, embed_dim)."""
        raise NotImplementedError

    def encode_latent(self, h: torch.Tensor) -> torch.Tensor:
        """Map the output of quant_conv into codebook space (already there for plain VQ)."""
        return h

    def forward(self, z: torch.Tensor, squared_norms: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Snap z to its nearest codes with a straight-through gradient -> (z_q, indices);
        `squared_norms` as `nearest_codes` takes them."""
        indices = nearest_codes(z, self.codebook, squared_norms)
        z_q = lookup_codes(indices, self.codebook).to(z.dtype)
        return _StraightThrough.apply(z, z_q), indices

    def embed_code(self, indices: torch.Tensor) -> torch.Tensor:
        """Latent (B, embed_dim, h, w) of token indices (B, h, w)."""
        return lookup_codes(indices, self.codebook)


class VectorQuantizer(_NearestCodeQuantizer):
    """Nearest-neighbour quantizer of taming's VQModel (parameter ``embedding``)."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.n_embed = n_embed
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(n_embed, embed_dim)

    @property
    def codebook(self) -> torch.Tensor:
        """The codebook, (n_embed, embed_dim)."""
        return self.embedding.weight


class GumbelQuantizer(_NearestCodeQuantizer):
    """Quantizer of taming's GumbelVQ (parameters ``embed`` and ``proj``, as GumbelQuantize).

    Training sampled codes with Gumbel-softmax over ``proj`` logits (Jang et al. 2016). For
    generation the latent lives in ``embed`` space and is snapped to its nearest ``embed``
    vector like plain VQ; ``proj`` is only used to encode images (argmax of its logits,
    the noise-free version of taming's hard sample).
    """

    def __init__(self, n_embed: int, embed_dim: int, num_hiddens: int) -> None:
        super().__init__()
        self.n_embed = n_embed
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(num_hiddens, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embed_dim)

    @property
    def codebook(self) -> torch.Tensor:
        """The codebook, (n_embed, embed_dim)."""
        return self.embed.weight

    def encode_latent(self, h: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of the most likely code per position of quant_conv's output."""
        return lookup_codes(self.proj(h).argmax(dim=1), self.codebook).to(h.dtype)
