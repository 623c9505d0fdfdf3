"""Small tensor helpers shared by the aligner: signed log maps, quaternion order, 4x4 transforms.

Pixel convention of DUSt3R's aligner (kept on purpose, it differs from the package's ``u + 0.5``): pixel
``(u, v)`` sits at integer coordinates (``feat2gs.geometry.pixels.pixel_grid`` with offset 0) and the default
principal point is ``(W / 2, H / 2)``.
"""

from __future__ import annotations

import torch


def signed_log1p(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def signed_expm1(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


def xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 3:4], q[..., :3]], dim=-1)


def wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 1:4], q[..., 0:1]], dim=-1)


def rigid_to_4x4(R: torch.Tensor, T: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    M = torch.eye(4, dtype=R.dtype, device=R.device)
    M[:3, :3] = scale * R
    M[:3, 3] = T
    return M


def transform_points(M: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Apply a 4x4 (or batch [B,4,4] to [B,...,3]) affine transform to points [..., 3]."""
    if M.ndim == 2:
        return pts @ M[:3, :3].T + M[:3, 3]
    B = M.shape[0]
    flat = pts.reshape(B, -1, 3)
    out = flat @ M[:, :3, :3].transpose(1, 2) + M[:, None, :3, 3]
    return out.reshape(pts.shape)
