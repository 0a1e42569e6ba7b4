"""CLIP's image tower on fewer kernels, computing the same function (up to rounding).

A step's backward pass runs through the image tower, so every kernel of its forward and
backward is queued once per step. Two changes, measured by benchmarks/step_ops.py:
- attention: open_clip's blocks call `nn.MultiheadAttention`, whose training path splits the
  packed projection with copies and selects (about 150 extra kernels per step in
  ViT-B/32). `PackedSelfAttention` does the same on the same parameters with views.
- QuickGELU, x * sigmoid(1.702 x), costs 3 kernels forward and 5 backward. With the 1.702
  folded into the layers around it (c_fc's weight and bias times 1.702, c_proj's weight
  divided by it) it is SiLU, one kernel each way.
- the input normalization, (x - mean) / std, costs 2 kernels forward and 1 backward. A ViT's
  patch embedding is a convolution whose windows do not overlap and have no padding, so the
  normalization folds into its weight (divided by std per input channel) and a bias (minus
  the weight times mean / std, summed).
The folded weights differ from the file's by those factors, and the patch embedding gains a
bias: such a model is not for saving (vqclip saves none), and with the normalization folded its
`encode_image` takes [0, 1] pixels, not normalized ones (`Perceptor.takes_pixels` says which).
A search index fingerprints the weights as loaded, so an index made before these changes is
made again once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PackedSelfAttention(nn.Module):
    """Self-attention with `nn.MultiheadAttention`'s parameters and call signature
    (`attn(x, x, x, need_weights=False, attn_mask=mask)` returns `(out, None)`)."""

    AUTOCAST_OPERANDS = ("in_proj_weight", "in_proj_bias")

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.in_proj_weight = attention.in_proj_weight
        self.in_proj_bias = attention.in_proj_bias
        self.out_proj = attention.out_proj
        self.num_heads = attention.num_heads
        self.batch_first = attention.batch_first

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *,
                need_weights: bool = False, attn_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None]:
        if key is not query or value is not query or need_weights:
            raise ValueError("PackedSelfAttention computes self-attention only, without weights")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, length, width = x.shape
        heads = self.num_heads
        packed = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        # (B, L, 3, heads, D) -> three (B, heads, L, D) views, no copies; unbound along the
        # dimension of 3 so that the backward pass stacks their gradients back in place
        q, k, v = (part.transpose(1, 2) for part in
                   packed.view(batch, length, 3, heads, width // heads).unbind(2))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = F.linear(out.transpose(1, 2).reshape(batch, length, width), self.out_proj.weight,
                       self.out_proj.bias)
        return (out if self.batch_first else out.transpose(0, 1)), None


def streamline_image_tower(model: nn.Module) -> int:
    """Pack the self-attention and fold the QuickGELU of every open_clip
    `ResidualAttentionBlock` in `model.visual` (an open_clip CLIP's image tower), in place;
    the number of blocks changed. A block already changed is left alone."""
    from open_clip.transformer import QuickGELU, ResidualAttentionBlock

    visual = getattr(model, "visual", None)
    if visual is None:
        return 0
    changed = 0
    for block in visual.modules():
        if not isinstance(block, ResidualAttentionBlock):
            continue
        if _plain(block.attn):
            block.attn = PackedSelfAttention(block.attn)
            changed += 1
        if isinstance(getattr(block.mlp, "gelu", None), QuickGELU):
            _fold_quick_gelu(block.mlp)
    return changed


@torch.no_grad()
def fold_input_normalization(model: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> bool:
    """Fold (x - mean) / std into the patch embedding of `model.visual` (an open_clip
    VisionTransformer), in place, so that the model takes [0, 1] pixels; whether it does
    (False for towers whose first layer pads or overlaps, which stay as they are). Folding a
    model again with the same mean and std changes nothing; with others it is an error."""
    from open_clip.transformer import VisionTransformer

    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer):
        return False
    folded = (tuple(mean.flatten().tolist()), tuple(std.flatten().tolist()))
    done = getattr(visual, "folded_normalization", None)
    if done is not None:
        if done != folded:
            raise ValueError(f"the image tower already takes pixels normalized by {done}, not {folded}")
        return True
    conv = visual.conv1
    if conv.bias is not None or conv.padding != (0, 0) or conv.stride != conv.kernel_size:
        return False
    weight = conv.weight / std.view(1, -1, 1, 1).to(conv.weight)
    conv.weight.copy_(weight)
    bias = -(weight * mean.view(1, -1, 1, 1).to(weight)).sum(dim=(1, 2, 3))
    conv.bias = nn.Parameter(bias, requires_grad=False)
    visual.folded_normalization = folded
    return True


def _plain(attention: nn.Module) -> bool:
    return (isinstance(attention, nn.MultiheadAttention) and attention._qkv_same_embed_dim
            and attention.in_proj_bias is not None and attention.bias_k is None
            and not attention.add_zero_attn and attention.dropout == 0.0)


_QUICK_GELU_SCALE = 1.702


@torch.no_grad()
def _fold_quick_gelu(mlp: nn.Module) -> None:
    """c_proj(x * sigmoid(1.702 x)) with x = c_fc(h) equals c_proj'(silu(c_fc'(h))) where
    c_fc' = 1.702 c_fc and c_proj' has its weight divided by 1.702."""
    mlp.c_fc.weight.mul_(_QUICK_GELU_SCALE)
    mlp.c_fc.bias.mul_(_QUICK_GELU_SCALE)
    mlp.c_proj.weight.div_(_QUICK_GELU_SCALE)
    mlp.gelu = nn.SiLU()
