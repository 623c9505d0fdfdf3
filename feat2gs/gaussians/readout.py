"""Readout: per-attribute 2-layer MLP heads on per-Gaussian features, plus free per-Gaussian tensors."""

from __future__ import annotations

import torch
from torch import nn

from feat2gs.gaussians.modes import PARAM_KEYS, ProbeMode
from feat2gs.render.types import Gaussians


class ReadoutHead(nn.Sequential):
    """Linear(C, C) -> ReLU -> Linear(C, out); hidden width = feature width, no output activation (raw params)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, in_dim), nn.ReLU(), nn.Linear(in_dim, out_dim))


class FeatureReadout(nn.Module):
    """Maps per-Gaussian features [M, C] to raw 3DGS parameters according to a probing mode.

    In the ``ft`` modes the features are an ``nn.Parameter`` and receive gradients from every head, unless
    ``detach_rest``: then the f_rest head reads them detached, as the reference did (see TrainConfig).
    """

    def __init__(self, features: torch.Tensor, init: dict[str, torch.Tensor], mode: ProbeMode,
                 detach_rest: bool = False) -> None:
        super().__init__()
        self.mode = mode
        self.detach_rest = detach_rest
        feats = features.float()
        if mode.finetune_features:
            self.features = nn.Parameter(feats.clone())
        else:
            self.register_buffer("features", feats.clone())
        c = feats.shape[1]
        self.heads = nn.ModuleDict({k: ReadoutHead(c, init[k].shape[1]) for k in mode.heads})
        self.free = nn.ParameterDict({k: nn.Parameter(init[k].clone()) for k in mode.free})

    def forward(self) -> dict[str, torch.Tensor]:
        out = {k: head(self.features.detach() if k == "f_rest" and self.detach_rest else self.features)
               for k, head in self.heads.items()}
        out.update({k: p for k, p in self.free.items()})
        return {k: out[k] for k in PARAM_KEYS}


def activate(raw: dict[str, torch.Tensor]) -> Gaussians:
    """Raw parameters (flat per Gaussian) -> activated Gaussians with SH colours [M, K, 3]."""
    m = raw["xyz"].shape[0]
    sh = torch.cat([raw["f_dc"].reshape(m, 1, 3), raw["f_rest"].reshape(m, -1, 3)], dim=1)
    return Gaussians(
        means=raw["xyz"],
        quats=raw["rotation"],
        scales=torch.exp(raw["scaling"]),
        opacities=torch.sigmoid(raw["opacity"]).squeeze(-1),
        colors=sh,
    )


def sh_degree_of(raw: dict[str, torch.Tensor]) -> int:
    """SH degree from the width of f_rest (((d+1)^2 - 1) * 3 coefficients)."""
    return int(round((raw["f_rest"].shape[1] // 3 + 1) ** 0.5)) - 1
