"""DPT dense-prediction adapter (``DPTOutputAdapter_fix`` layout: act_postprocess, scratch, fusion, head)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class Interpolate(nn.Module):
    """Bilinear x2 upsampling (align_corners=True); no parameters (keeps the ``head.N`` numbering)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _up2(x)


class ResidualConvUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))``."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """``out_conv(up2x(RCU2(x + RCU1(skip))))`` (RefineNet-style)."""

    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        return self.out_conv(_up2(self.resConfUnit2(x)))


class Scratch(nn.Module):
    """Per-level 3x3 projections to ``features`` (also reachable as ``layer_rn[i]``, as in the official state_dict)
    and the four fusion blocks."""

    def __init__(self, layer_dims: tuple[int, ...], features: int):
        super().__init__()
        for i, d in enumerate(layer_dims):
            setattr(self, f"layer{i + 1}_rn", nn.Conv2d(d, features, 3, padding=1, bias=False))
        # the same modules under a second name: official state_dicts list both keys
        self.layer_rn = nn.ModuleList([getattr(self, f"layer{i + 1}_rn") for i in range(len(layer_dims))])
        for i in range(4):
            setattr(self, f"refinenet{i + 1}", FusionBlock(features))


class DPTAdapter(nn.Module):
    """Tokens of 4 hooked layers -> dense map [B, num_channels, H, W] at full image resolution."""

    def __init__(self, in_dims: list[int], hooks: list[int], layer_dims: tuple[int, ...], feature_dim: int,
                 last_dim: int, num_channels: int, patch_size: int = 16):
        super().__init__()
        self.hooks = list(hooks)
        self.patch_size = patch_size
        self.scratch = Scratch(layer_dims, feature_dim)
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            Interpolate(),
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(last_dim, num_channels, 1),
        )
        ld = layer_dims
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_dims[0], ld[0], 1), nn.ConvTranspose2d(ld[0], ld[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(in_dims[1], ld[1], 1), nn.ConvTranspose2d(ld[1], ld[1], 2, stride=2)),
            nn.Sequential(nn.Conv2d(in_dims[2], ld[2], 1)),
            nn.Sequential(nn.Conv2d(in_dims[3], ld[3], 1), nn.Conv2d(ld[3], ld[3], 3, stride=2, padding=1)),
        ])

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        h, w = image_size[0] // self.patch_size, image_size[1] // self.patch_size
        layers = []
        for i, hook in enumerate(self.hooks):
            t = tokens[hook]
            t = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
            layers.append(self.scratch.layer_rn[i](self.act_postprocess[i](t)))
        s = self.scratch
        path = s.refinenet4(layers[3])[:, :, : layers[2].shape[2], : layers[2].shape[3]]
        path = s.refinenet3(path, layers[2])
        path = s.refinenet2(path, layers[1])
        path = s.refinenet1(path, layers[0])
        return self.head(path)
