"""EWA projection of 3D Gaussians to screen-space ellipses (gsplat's classic pinhole projection, in PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from feat2gs.geometry.rotation import quat_to_rotmat

# gsplat/3DGS clamp the point used for the Jacobian to the view frustum widened by 30 % of tan(fov / 2) on each
# side (1.3 tan(fov / 2) with a centred principal point): far off-screen Gaussians would otherwise get huge,
# meaningless screen footprints.
FOV_MARGIN = 0.3
ALPHA_THRESHOLD = 1.0 / 255.0  # fainter contributions are skipped; a Gaussian this faint is culled outright


@dataclass
class Projected:
    """Per-Gaussian screen-space quantities; entries with ``radii == 0`` are culled and meaningless."""

    means2d: torch.Tensor  # [N, 2] pixel coordinates of the projected centre
    conics: torch.Tensor  # [N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]]
    depths: torch.Tensor  # [N] camera-space z
    radii: torch.Tensor  # [N] int32 pixel radius of the 3-sigma bounding square, 0 = culled


def project_gaussians(
    means: torch.Tensor,  # [N, 3]
    quats: torch.Tensor,  # [N, 4] wxyz
    scales: torch.Tensor,  # [N, 3]
    opacities: torch.Tensor,  # [N]
    viewmat: torch.Tensor,  # [4, 4]
    K: torch.Tensor,  # [3, 3]
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
) -> Projected:
    """Project Gaussians; differentiable w.r.t. means, quats, scales and viewmat (not K).

    Culled (radius 0): centre not strictly between the near and far planes, singular screen covariance,
    bounding square off-screen, or opacity below the alpha threshold (gsplat 1.5 culls those too).
    """
    fx, _, cx, _, fy, cy = K.detach()[:2].reshape(-1).tolist()
    R_cam, t_cam = viewmat[:3, :3], viewmat[:3, 3]
    means_c = means @ R_cam.T + t_cam  # [N, 3]
    x, y, z = means_c.unbind(-1)

    in_depth = (z > near_plane) & (z < far_plane)
    # Culled Gaussians get z = 1 so that no inf/NaN enters the graph (their gradients would be NaN otherwise).
    z = torch.where(in_depth, z, torch.ones_like(z))
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    tx = z * (x / z).clamp((-cx / fx) - FOV_MARGIN * tan_fovx, (width - cx) / fx + FOV_MARGIN * tan_fovx)
    ty = z * (y / z).clamp((-cy / fy) - FOV_MARGIN * tan_fovy, (height - cy) / fy + FOV_MARGIN * tan_fovy)
    zeros = torch.zeros_like(z)
    J = torch.stack(
        [fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1
    ).reshape(-1, 2, 3)  # [N, 2, 3]

    # Sigma_2d = J W (R S)(R S)^T W^T J^T, computed as A A^T with A = J W R S.
    RS = quat_to_rotmat(quats) * scales[:, None, :]  # [N, 3, 3]
    A = J @ (R_cam @ RS)  # [N, 2, 3]
    cov2d = A @ A.transpose(1, 2)  # [N, 2, 2]
    a = cov2d[:, 0, 0] + eps2d
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    conics = torch.stack([c, -b, a], dim=-1) / det.clamp_min(1e-10)[:, None]

    with torch.no_grad():
        # Largest eigenvalue; the floor on the discriminant is that of gsplat's PyTorch reference.
        mid = 0.5 * (a + c)
        lam_max = mid + torch.sqrt(torch.clamp_min(mid * mid - det, 0.01))
        radius = torch.ceil(3.0 * torch.sqrt(lam_max))
        u, v = means2d.unbind(-1)
        on_screen = (u + radius > 0) & (u - radius < width) & (v + radius > 0) & (v - radius < height)
        valid = in_depth & (det > 0) & on_screen & (opacities >= ALPHA_THRESHOLD)
        radii = torch.where(valid, radius, torch.zeros_like(radius)).to(torch.int32)

    return Projected(means2d=means2d, conics=conics, depths=means_c[:, 2], radii=radii)
