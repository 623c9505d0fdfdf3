"""Small tensor helpers shared by the aligner: signed log maps, pixel grid, weighted Procrustes, quaternion order.

Pixel convention of DUSt3R's aligner (kept here on purpose, it differs from the package's ``u + 0.5``):
pixel ``(u, v)`` sits at integer coordinates and the default principal point is ``(W / 2, H / 2)``.
"""

from __future__ import annotations

import torch

from feat2gs.geometry.rotation import rotmat_to_quat


def signed_log1p(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def signed_expm1(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[H, W, 2] integer pixel coordinates (u = column, v = row)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype), torch.arange(width, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([u, v], dim=-1)


def xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 3:4], q[..., :3]], dim=-1)


def wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 1:4], q[..., 0:1]], dim=-1)


def rotmat_to_quat_wxyz(R: torch.Tensor) -> torch.Tensor:
    """R [..., 3, 3] -> unit wxyz quaternion (computed in float64, returned in R's dtype)."""
    return rotmat_to_quat(R)


def weighted_procrustes(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Weighted similarity ``dst ≈ s · R @ src + T`` (Umeyama with per-point weights, computed in float64).

    src, dst [..., 3] (flattened internally), weights [...] >= 0. Returns ``(s, R [3, 3], T [3])`` with R, T in
    src's dtype/device. A zero-variance source (all points equal) gives a non-finite scale, which the callers turn
    into an error.
    """
    x = src.reshape(-1, 3).double()
    y = dst.reshape(-1, 3).double()
    w = torch.ones(len(x), dtype=torch.float64, device=x.device) if weights is None else weights.reshape(-1).double()
    w = w / w.sum()
    mx = (w[:, None] * x).sum(0)
    my = (w[:, None] * y).sum(0)
    xc, yc = x - mx, y - my
    cov = (w[:, None] * yc).T @ xc
    U, S, Vt = torch.linalg.svd(cov)
    d = torch.ones(3, dtype=torch.float64, device=x.device)
    if torch.det(U) * torch.det(Vt) < 0:
        d[2] = -1.0
    R = U @ torch.diag(d) @ Vt
    var_x = (w * (xc**2).sum(-1)).sum()
    if not var_x > 1e-20 * float((w * (x**2).sum(-1)).sum() + 1e-30):  # (numerically) constant source
        s = float("nan")
    else:
        s = float((S * d).sum() / var_x)
    T = my - s * (R @ mx)
    return s, R.to(src.dtype), T.to(src.dtype)


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
