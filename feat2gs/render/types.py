"""Types of the rendering API: activated Gaussians in, images out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

RenderMode = Literal["RGB", "ED", "RGB+ED"]


@dataclass
class Gaussians:
    """Activated Gaussian parameters (what a rasteriser consumes).

    means      [N, 3]  world positions
    quats      [N, 4]  wxyz rotations (need not be unit; backends normalise)
    scales     [N, 3]  positive standard deviations along the local axes (already ``exp``-ed)
    opacities  [N]     in (0, 1) (already ``sigmoid``-ed)
    colors     [N, K, 3] SH coefficients (K = (sh_degree + 1)^2) or [N, 3] RGB when ``sh_degree`` is None
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    def __len__(self) -> int:
        return self.means.shape[0]


@dataclass(frozen=True)
class RenderSettings:
    """Options shared by all backends; defaults are gsplat's (and so the protocol's)."""

    near_plane: float = 0.01
    far_plane: float = 1e10
    eps2d: float = 0.3
    sh_degree: int | None = 3
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    render_mode: RenderMode = "RGB"


@dataclass
class RenderOutput:
    """image [H, W, 3] (None for "ED"), alpha [H, W, 1], depth [H, W, 1] expected depth (None for "RGB"),
    radii [N] int32: the larger half-extent in pixels of each Gaussian's screen box (gsplat's per-axis radii,
    reduced by max), 0 = culled."""

    image: torch.Tensor | None
    alpha: torch.Tensor
    depth: torch.Tensor | None
    radii: torch.Tensor
