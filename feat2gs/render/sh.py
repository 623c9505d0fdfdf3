"""Real spherical harmonics up to degree 3 (the basis and constants of 3DGS / gsplat)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SH_DEGREE = 3

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of coefficients per channel of an SH expansion of ``degree``."""
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """dirs [..., 3] unit vectors -> basis values [..., (degree + 1)^2]."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """coeffs [..., K, 3] with K >= (degree + 1)^2, dirs [..., 3] (any length) -> values [..., 3].

    Only the first ``(degree + 1)^2`` coefficients are used, so a model can activate bands progressively.
    """
    basis = sh_basis(degree, F.normalize(dirs, dim=-1))  # [..., B]
    return (basis[..., None] * coeffs[..., : basis.shape[-1], :]).sum(dim=-2)


def sh_to_rgb(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """coeffs [..., K, 3], dirs [..., 3] -> RGB [..., 3]: the SH value offset by 0.5 and clamped at 0, as in 3DGS."""
    return torch.clamp_min(eval_sh(degree, coeffs, dirs) + 0.5, 0.0)
