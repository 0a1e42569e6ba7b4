"""VQGAN encoder and decoder with taming-transformers' parameter names, run stage by stage."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils.checkpoint import checkpoint

__all__ = ["AttnBlock", "Decoder", "Downsample", "Encoder", "ResnetBlock", "Upsample"]

Stage = Callable[[torch.Tensor], torch.Tensor]


def group_norm(channels: int) -> nn.GroupNorm:
    """The normalization taming uses everywhere: 32 groups, eps 1e-6."""
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """Pre-activation residual block (GroupNorm, SiLU, 3x3 conv, twice) with a 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # taming names this nin_shortcut ("network in network", a 1x1 conv).
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + residual(x); F.silu is the same swish as taming's x*sigmoid(x) in one kernel."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, with 1x1-conv projections."""

    AUTOCAST_OPERANDS = ("packed_weight", "packed_bias")  # its stacked q/k/v conv's, once packed

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        # q, k and v's weights stacked once (`pack`): a copy outside the state dict.
        self.register_buffer("packed_weight", None, persistent=False)
        self.register_buffer("packed_bias", None, persistent=False)
        self.register_load_state_dict_post_hook(lambda block, keys: block.unpack())

    @torch.no_grad()
    def pack(self) -> None:
        """Stack q, k and v's weights once, for a block whose weights no longer change (frozen
        for generation), so that no step stacks them again; a state dict loaded later unpacks."""
        if self.packed_weight is not None:
            return  # stacked already (a model held across runs)
        if any(p.requires_grad for p in (*self.q.parameters(), *self.k.parameters(), *self.v.parameters())):
            return  # still learning: the stacked copy would not follow
        weight = torch.cat([self.q.weight, self.k.weight, self.v.weight])
        if isinstance(weight, FakeTensor):
            return  # made while a memory plan runs on fake tensors: no values to keep
        self.packed_weight = weight
        self.packed_bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])

    def unpack(self) -> None:
        """Forget the stacked copy: the weights are stacked on each call again."""
        self.packed_weight = self.packed_bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + proj_out(softmax(q k^T / sqrt(C)) v)."""
        b, c, h, w = x.shape
        # q, k and v as one 1x1 conv of their stacked weights: one kernel each way instead of
        # three, and no gradient sums where the three meet (the weights keep taming's names).
        weight, bias = self.packed_weight, self.packed_bias
        if weight is None:
            weight = torch.cat([self.q.weight, self.k.weight, self.v.weight])
            bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])
        packed = F.conv2d(self.norm(x), weight, bias)
        # (B, 3C, H, W) -> three (B, 1, HW, C), contiguous in one copy: the fused attention
        # kernels need a unit stride in the last dimension and otherwise fall back to the
        # math kernel, which holds the whole HW x HW matrix.
        tokens = packed.reshape(b, 3, c, h * w).transpose(2, 3).contiguous()
        q, k, v = tokens.unsqueeze(2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Halve the resolution with a stride-2 3x3 conv after padding right and bottom by one."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Asymmetric padding as in taming (torch convs only pad symmetrically)."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest x2 then conv."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _StagedNet(nn.Module):
    """A network that is a chain of stages, optionally gradient-checkpointed one at a time."""

    norm_out: nn.GroupNorm
    conv_out: nn.Conv2d

    def __init__(self) -> None:
        super().__init__()
        # Per-stage checkpointing cuts activation memory ~6x; one checkpoint around the
        # whole network would not, since its backward rebuilds every activation at once.
        self.checkpoint_stages = False

    def stages(self) -> list[Stage]:
        """The callables forward() applies, in order."""
        raise NotImplementedError

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the stages in order (checkpointing each one if checkpoint_stages is set)."""
        use_checkpoint = self.checkpoint_stages and torch.is_grad_enabled()
        for stage in self.stages():
            x = checkpoint(stage, x, use_reentrant=False) if use_checkpoint else stage(x)
        return x


def _level_stages(level: nn.Module) -> list[Stage]:
    """Residual blocks of one resolution level, each followed by its attention if any."""
    stages: list[Stage] = []
    for i, block in enumerate(level.block):
        stages.append(block)
        if len(level.attn) > 0:
            stages.append(level.attn[i])
    return stages


def _check_channels(ch: int, ch_mult: Sequence[int]) -> None:
    bad = [ch * m for m in (1, *ch_mult) if (ch * m) % 32]
    if bad:
        raise ValueError(f"GroupNorm(32) needs channel counts divisible by 32, got {bad}")


class Encoder(_StagedNet):
    """Image (B, in_channels, H, W) -> features (B, z_channels, H/f, W/f), f = 2**(levels-1)."""

    def __init__(
        self, *, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
        attn_resolutions: Sequence[int], in_channels: int, resolution: int, z_channels: int,
        double_z: bool = False, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_channels(ch, ch_mult)
        self.num_resolutions = len(ch_mult)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        res = resolution
        in_mult = (1, *ch_mult)
        self.down = nn.ModuleList()
        block_in = ch
        for i_level, mult in enumerate(ch_mult):
            level = nn.Module()
            level.block = nn.ModuleList()
            level.attn = nn.ModuleList()
            block_in = ch * in_mult[i_level]
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(block_in, ch * mult, dropout))
                block_in = ch * mult
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i_level != len(ch_mult) - 1:
                level.downsample = Downsample(block_in)
                res //= 2
            self.down.append(level)
        self.mid = _middle(block_in, dropout)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3,
                                  padding=1)

    def stages(self) -> list[Stage]:
        """conv_in, each level's blocks (+attention) and downsample, middle, output head."""
        stages: list[Stage] = [self.conv_in]
        for i_level, level in enumerate(self.down):
            stages += _level_stages(level)
            if i_level != self.num_resolutions - 1:
                stages.append(level.downsample)
        stages += [self.mid.block_1, self.mid.attn_1, self.mid.block_2, self._head]
        return stages


class Decoder(_StagedNet):
    """Latent (B, z_channels, h, w) -> image (B, out_ch, h*f, w*f), about [-1, 1]."""

    def __init__(
        self, *, ch: int, out_ch: int, ch_mult: Sequence[int], num_res_blocks: int,
        attn_resolutions: Sequence[int], resolution: int, z_channels: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_channels(ch, ch_mult)
        self.num_resolutions = len(ch_mult)
        block_in = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = _middle(block_in, dropout)
        # Built from the lowest resolution up, stored in level order (up[0] is full size),
        # which is the order of taming's keys.
        levels: list[nn.Module] = []
        for i_level in reversed(range(len(ch_mult))):
            level = nn.Module()
            level.block = nn.ModuleList()
            level.attn = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock(block_in, ch * ch_mult[i_level], dropout))
                block_in = ch * ch_mult[i_level]
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(block_in))
            if i_level != 0:
                level.upsample = Upsample(block_in)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, padding=1)

    def stages(self) -> list[Stage]:
        """conv_in, middle, each level's blocks (+attention) and upsample, output head."""
        stages: list[Stage] = [self.conv_in, self.mid.block_1, self.mid.attn_1, self.mid.block_2]
        for i_level in reversed(range(self.num_resolutions)):
            stages += _level_stages(self.up[i_level])
            if i_level != 0:
                stages.append(self.up[i_level].upsample)
        stages.append(self._head)
        return stages


def _middle(channels: int, dropout: float) -> nn.Module:
    """The middle section: block_1, attn_1, block_2 at the lowest resolution."""
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, dropout)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels, dropout)
    return mid
