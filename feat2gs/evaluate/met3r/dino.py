"""FeatUp's ``dino16`` featurizer: DINO ViT-S/16 patch tokens (last block, final LayerNorm), then ``ChannelNorm``.

The ViT is timm's ``VisionTransformer`` (the architecture of the zoo's ``dino_b16``, here at ViT-S/16 width), so
DINO's original checkpoint, timm's ``vit_small_patch16_224.dino`` and the ViT stored inside a FeatUp checkpoint
all load with the same keys. Only the token preparation follows FeatUp rather than timm:

* the image is ImageNet-normalised here (the input is RGB in [0, 1]);
* the position embedding is resized by bicubic interpolation with ``scale_factor = (g + 0.1) / 14`` per axis
  (DINO's trick), not to a target size: the source coordinates use that scale factor, so the result differs from
  timm's size-based resampling;
* FeatUp's patch embedding drops the last patch row and column when the number of patch rows is odd, after which
  its token reshape fails; such inputs are refused here with a clear error.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import IMAGENET_MEAN, IMAGENET_STD

PATCH = 16
POS_GRID_OFFSET = 0.1  # DINO's interpolate_pos_encoding adds 0.1 to the token grid before dividing by 14
CHANNEL_NORM_EPS = 1e-5  # FeatUp ChannelNorm: nn.LayerNorm(dim) default eps
VIT_S16 = {"embed_dim": 384, "depth": 12, "num_heads": 6, "mlp_ratio": 4.0}


class Met3rInputError(ConfigError):
    """Images that MET3R cannot take (size, range, shape)."""


def build_vit(embed_dim: int = 384, depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
              img_size: int = 224) -> nn.Module:
    """timm ViT with DINO's ViT-S/16 layout (qkv bias, LayerNorm eps 1e-6, exact GELU, no head)."""
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=img_size, patch_size=PATCH, embed_dim=embed_dim, depth=depth,
                             num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, num_classes=0,
                             global_pool="token")


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel of a [B, C, H, W] map (FeatUp's ``use_norm=True``)."""

    def __init__(self, dim: int, eps: float | None = None):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=CHANNEL_NORM_EPS if eps is None else eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def check_image_size(h: int, w: int) -> None:
    """MET3R's DINO needs H, W multiples of 16 and an even number of patch rows."""
    if h % PATCH or w % PATCH:
        raise Met3rInputError(f"MET3R needs image sides that are multiples of {PATCH}, got {h}x{w} (HxW); resize "
                              f"the images (e.g. --size 256)")
    if (h // PATCH) % 2:
        raise Met3rInputError(f"MET3R's DINO featurizer (FeatUp dino16) cannot take {h // PATCH} patch rows "
                              f"(image height {h}): the number of patch rows must be even (height a multiple of 32)")


def interpolate_pos_embed(pos_embed: torch.Tensor,  # [1, 1 + N, D], N a square
                          gh: int, gw: int) -> torch.Tensor:  # -> [1, 1 + gh*gw, D]
    """DINO/FeatUp position-embedding resize to a (gh, gw) token grid (see the module docstring)."""
    n = pos_embed.shape[1] - 1
    side = math.isqrt(n)
    if side * side != n:
        raise ConfigError(f"position embedding of {n} patch tokens is not a square grid")
    if gh * gw == n and gh == gw:
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = ((gh + POS_GRID_OFFSET) / math.sqrt(n), (gw + POS_GRID_OFFSET) / math.sqrt(n))
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    if tuple(grid.shape[-2:]) != (gh, gw):
        raise ConfigError(f"position embedding resized to {tuple(grid.shape[-2:])}, expected {(gh, gw)}")
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)], dim=1)


class DinoFeaturizer(nn.Module):
    """``forward(x01 [B, 3, H, W] in [0, 1])`` -> (tokens [B, D, H/16, W/16], lr_feat [B, D, H/16, W/16]).

    tokens: last block after the final LayerNorm, cls dropped; lr_feat: after ChannelNorm (= tokens when
    ``channel_norm`` is None, FeatUp's ``use_norm=False``).
    """

    def __init__(self, vit: nn.Module, channel_norm: ChannelNorm | None):
        super().__init__()
        self.vit = vit
        self.channel_norm = channel_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    @property
    def dim(self) -> int:
        return int(self.vit.embed_dim)

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self.mean) / self.std

    def forward(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x01.shape
        check_image_size(h, w)
        vit = self.vit
        grid = vit.patch_embed.proj(self.normalize(x01))  # [B, D, h/16, w/16]
        gh, gw = grid.shape[-2:]
        x = grid.flatten(2).transpose(1, 2)
        x = torch.cat([vit.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + interpolate_pos_embed(vit.pos_embed, gh, gw)
        x = vit.norm_pre(vit.pos_drop(x))
        for blk in vit.blocks:
            x = blk(x)
        x = vit.norm(x)
        tokens = x[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)
        lr = self.channel_norm(tokens) if self.channel_norm is not None else tokens
        return tokens, lr
