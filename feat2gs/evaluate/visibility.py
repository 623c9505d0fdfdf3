"""Visibility masks of test views: pixels whose surface is seen by at least one training view."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from feat2gs.geometry.pixels import camera_rays


def visibility_mask(
    depth_test: torch.Tensor, K_test: torch.Tensor, c2w_test: torch.Tensor,
    depths_train: torch.Tensor, Ks_train: torch.Tensor, c2ws_train: torch.Tensor, atol: float = 1e-2,
) -> torch.Tensor:
    """depth_test [H, W], K_test [3, 3], c2w_test [4, 4]; depths_train [N, h, w], Ks_train [N, 3, 3],
    c2ws_train [N, 4, 4] -> bool [H, W].

    A test pixel is kept when its depth is positive, its 3D point projects strictly inside at least one
    training image, and in at least one training view its camera-space depth matches that view's depth map
    (bilinear lookup) within ``atol`` — the in-frustum and depth-consistency test of the protocol.
    """
    h, w = depth_test.shape
    pts_cam = camera_rays(K_test, h, w) * depth_test[..., None]
    pts = pts_cam @ c2w_test[:3, :3].T + c2w_test[:3, 3]
    flat = pts.reshape(-1, 3)
    in_frustum = torch.zeros(flat.shape[0], dtype=torch.bool)
    consistent = torch.zeros_like(in_frustum)
    for depth_tr, K, c2w in zip(depths_train, Ks_train, c2ws_train):
        w2c = torch.linalg.inv(c2w)
        cam = flat @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam[:, 2]
        uv = (cam[:, :2] / z.clamp_min(1e-9)[:, None]) @ K[:2, :2].T + K[:2, 2]
        th, tw = depth_tr.shape
        inside = (z > 1e-6) & (uv[:, 0] > 0) & (uv[:, 0] < tw) & (uv[:, 1] > 0) & (uv[:, 1] < th)
        grid = torch.stack([uv[:, 0] / tw * 2 - 1, uv[:, 1] / th * 2 - 1], dim=-1)[None, None]
        sampled = F.grid_sample(depth_tr[None, None].to(grid.dtype), grid, mode="bilinear", align_corners=False)
        sampled = sampled.reshape(-1)
        in_frustum |= inside
        consistent |= inside & ((z - sampled).abs() < atol)
    return ((depth_test.reshape(-1) > 1e-6) & in_frustum & consistent).reshape(h, w)
