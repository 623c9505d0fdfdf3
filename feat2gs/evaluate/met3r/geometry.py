"""MET3R's camera for a pair: DUSt3R/MASt3R pointmaps -> canonical pointmap -> median focal -> NDC projection.

Both point clouds of a pair (view 1's ``pts3d`` and view 2's ``pts3d_in_other_view``) are rendered with one camera
in view 1's frame: PyTorch3D's NDC ``PerspectiveCameras`` with principal point 0, R = diag(-1, -1, 1), T = 0, so a
point (x, y, z) lands at NDC ``(fx·(-x)/z, fy·(-y)/z)`` with depth z (+x points left, +y up in NDC).

The official quirks kept here (they change the numbers):

* the canonical pointmap averages pixel (i, j) of view 1 with pixel (i, j) of view 2 (different scene points),
  weighted by ``conf - 0.999``;
* focal votes use integer pixel indices minus W/2, H/2 (no +0.5); the median ignores NaN, keeps ±inf, and takes
  the lower of the two middle values for an even count (``torch.nanmedian``);
* the NDC focal is ``1 + f/W`` (literally "1 +", not 2f/W), the same for both views of a pair.
"""

from __future__ import annotations

import torch

from feat2gs.errors import ConfigError
from feat2gs.geometry.pixels import pixel_grid

CONF_OFFSET = 0.999  # weights of the canonical pointmap: conf - 0.999


def canonical_pointmap(pts1: torch.Tensor,  # [B, H, W, 3] view 1's points (view 1 frame)
                       conf1: torch.Tensor,  # [B, H, W]
                       pts2: torch.Tensor,  # [B, H, W, 3] view 2's points in view 1's frame
                       conf2: torch.Tensor,  # [B, H, W]
                       ) -> torch.Tensor:  # -> [B, H, W, 3]
    w1 = (conf1 - CONF_OFFSET)[..., None]
    w2 = (conf2 - CONF_OFFSET)[..., None]
    return (w1 * pts1 + w2 * pts2) / (w1 + w2)


def focal_votes(canon: torch.Tensor,  # [B, H, W, 3]
                ) -> torch.Tensor:  # -> [B, H*W, 2] per-pixel (fx, fy) in pixels
    b, h, w, _ = canon.shape
    uv = pixel_grid(h, w, device=canon.device, dtype=canon.dtype)
    u = (uv[..., 0] - w / 2)[None]
    v = (uv[..., 1] - h / 2)[None]
    x, y, z = canon.unbind(-1)
    return torch.stack([u * z / x, v * z / y], dim=-1).reshape(b, h * w, 2)


def median_focal(votes: torch.Tensor) -> torch.Tensor:  # [B, N, 2] -> [B, 2]
    """``torch.nanmedian`` over the pixels (NaN ignored, lower middle value for an even count)."""
    return torch.nanmedian(votes, dim=1).values


def ndc_focal(focal_px: torch.Tensor, h: int, w: int) -> torch.Tensor:  # [B, 2] -> [B, 2]
    return torch.stack([1 + focal_px[:, 0] / w, 1 + focal_px[:, 1] / h], dim=-1)


def project_ndc(points: torch.Tensor,  # [N, P, 3] in view 1's frame
                focal: torch.Tensor,  # [N, 2] NDC focal of each cloud
                ) -> torch.Tensor:  # -> [N, P, 3] (x_ndc, y_ndc, z)
    """PyTorch3D NDC projection with R = diag(-1, -1, 1), T = 0 and principal point 0 (plain division by z)."""
    if points.ndim != 3 or points.shape[-1] != 3 or focal.shape != (points.shape[0], 2):
        raise ConfigError(f"project_ndc: points {tuple(points.shape)} / focal {tuple(focal.shape)} do not fit")
    x, y, z = points.unbind(-1)
    fx, fy = focal[:, :1], focal[:, 1:]
    return torch.stack([fx * -x / z, fy * -y / z, z], dim=-1)
