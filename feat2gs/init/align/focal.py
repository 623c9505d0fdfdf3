"""Focal length from a pointmap expressed in its own camera frame (DUSt3R's ``estimate_focal``, Weiszfeld mode).

Find ``f`` minimising ``Σ_p | (u_p, v_p) - pp - f · (x_p, y_p) / z_p |`` (a sum of 2D Euclidean norms, i.e. L1 over
pixels). Start from the closed-form L2 solution, then run 10 iteratively re-weighted least-squares steps with
weights ``1 / max(residual, 1e-8)`` (Weiszfeld). The principal point is the image centre ``(W/2, H/2)`` and the
pixel grid is integer, matching the aligner.
"""

from __future__ import annotations

import torch

from feat2gs.geometry.pixels import pixel_grid


def estimate_focal(pts3d: torch.Tensor, pp: tuple[float, float] | None = None, n_iter: int = 10) -> float:
    """pts3d [H, W, 3] in the camera frame of its image -> focal in pixels (float)."""
    H, W = pts3d.shape[:2]
    if pp is None:
        pp = (W / 2, H / 2)
    pts = pts3d.reshape(-1, 3).float()
    pixels = pixel_grid(H, W, device=pts.device).reshape(-1, 2) - torch.tensor(pp, device=pts.device)
    xy_over_z = torch.nan_to_num(pts[:, :2] / pts[:, 2:3], posinf=0.0, neginf=0.0)
    dot_xy_px = (xy_over_z * pixels).sum(-1)
    dot_xy_xy = xy_over_z.square().sum(-1)
    focal = dot_xy_px.mean() / dot_xy_xy.mean()
    for _ in range(n_iter):
        dist = (pixels - focal * xy_over_z).norm(dim=-1)
        w = dist.clip(min=1e-8).reciprocal()
        focal = (w * dot_xy_px).mean() / (w * dot_xy_xy).mean()
    return float(focal.clip(min=0.0))
