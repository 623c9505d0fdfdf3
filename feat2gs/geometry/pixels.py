"""Pixel coordinates and camera rays: the one place that builds per-pixel grids.

Two conventions exist and both are needed: the package's (pixel ``(u, v)`` covers ``[u, u + 1)``, its centre is
``u + 0.5``) and DUSt3R/MASt3R's (pixel ``(u, v)`` sits at integer coordinates), which the aligners and MET3R keep
so that they match the reference bit for bit. Pass ``offset=0.5`` for the first, ``0`` for the second.
"""

from __future__ import annotations

import torch


def pixel_grid(height: int, width: int, offset: float = 0.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """[H, W, 2] pixel coordinates ``(u, v) + offset`` (u = column, v = row)."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype) + offset,
                          torch.arange(width, device=device, dtype=dtype) + offset, indexing="ij")
    return torch.stack([u, v], dim=-1)


def camera_rays(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[H, W, 3] camera-space rays ``(x/z, y/z, 1)`` through the pixel centres of a pinhole camera ``K`` [3, 3];
    multiply by a depth map to unproject."""
    uv = pixel_grid(height, width, offset=0.5, device=K.device, dtype=K.dtype)
    xy = (uv - K[:2, 2]) / torch.stack([K[0, 0], K[1, 1]])
    return torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1)
