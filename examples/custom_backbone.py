"""Probe your own model: two ways, run by the tests and shown in the README.

    feat2gs eval -f custom_backbone:extract -M G ...          (a function; run from this folder or put it on PYTHONPATH)
    feat2gs eval -f custom_backbone:PatchColour-iuvrgb -M T ...   (a class; concatenated with iuvrgb)

A model takes RGB images [B, 3, H, W] in [0, 1] on the job's device and returns features [B, C, h, w]; the stride
(H / h) is inferred. These two stand-ins compute features from fixed random weights — replace them with your
network (a checkpoint you load in ``PatchColour.load``).
"""

import torch
import torch.nn.functional as F

import feat2gs


def _filters(channels: int, size: int, seed: int) -> torch.Tensor:
    return torch.randn(channels, 3, size, size, generator=torch.Generator().manual_seed(seed)) / size


def extract(images: torch.Tensor) -> torch.Tensor:
    """Random 8x8 patch filters, stride 8: 32 channels (a ViT-like patch embedding without training)."""
    weight = _filters(32, 8, seed=0).to(images.device)
    return torch.tanh(F.conv2d(images * 2 - 1, weight, stride=8))


class PatchColour(feat2gs.Backbone):
    """The class API: a name, a description, its own normalisation, a batch limit and a load step."""

    name = "patch_colour"
    description = "mean colour and random filters per 4x4 patch (an example)"
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # applied to the [0, 1] images before forward
    max_batch = 2

    def load(self, device: torch.device) -> None:
        self.weight = _filters(16, 4, seed=1).to(device)  # a real model reads its checkpoint here

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        colour = F.avg_pool2d(images, 4)
        return torch.cat([colour, torch.tanh(F.conv2d(images, self.weight, stride=4))], dim=1)
