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
# Cap, in standard deviations, of the half-extent of a Gaussian's screen box (gsplat 1.5's CUDA projection).
MAX_EXTENT_SIGMAS = 3.33


@dataclass
class Projected:
    """Per-Gaussian screen-space quantities; entries with ``radii == 0`` are culled and meaningless."""

    means2d: torch.Tensor  # [N, 2] pixel coordinates of the projected centre
    conics: torch.Tensor  # [N, 3] (a, b, c) of the inverse 2D covariance [[a, b], [b, c]]
    depths: torch.Tensor  # [N] camera-space z
    radii: torch.Tensor  # [N, 2] int32 half-width and half-height of the screen box, (0, 0) = culled


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

    The screen box and the culling are those of gsplat 1.5.3's CUDA projection (``ProjectionEWA3DGSFused.cu``):
    per axis, radius = ceil(e * sqrt(blurred screen variance)) with e = min(3.33, sqrt(2 ln(255 opacity))), the
    Mahalanobis distance at which alpha falls to 1/255. Every pixel centre whose alpha reaches 1/255 lies in this
    box, so evaluating the box's pixels gives what gsplat's evaluation of whole 16 x 16 tiles gives.
    Culled (radii 0): centre in front of the near or beyond the far plane, singular screen covariance, opacity
    below the alpha threshold, or a box entirely off-screen.
    """
    fx, _, cx, _, fy, cy = K.detach()[:2].reshape(-1).tolist()
    R_cam, t_cam = viewmat[:3, :3], viewmat[:3, 3]
    means_c = means @ R_cam.T + t_cam  # [N, 3]
    x, y, z = means_c.unbind(-1)

    in_depth = (z >= near_plane) & (z <= far_plane)
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
        extent = torch.sqrt(2.0 * torch.log(opacities.detach().clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extent = extent.clamp_max(MAX_EXTENT_SIGMAS)
        rx, ry = torch.ceil(extent * torch.sqrt(a.clamp_min(0))), torch.ceil(extent * torch.sqrt(c.clamp_min(0)))
        u, v = means2d.unbind(-1)
        on_screen = (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)
        valid = in_depth & (det > 0) & (opacities >= ALPHA_THRESHOLD) & ((rx > 0) | (ry > 0)) & on_screen
        radii = torch.where(valid[:, None], torch.stack([rx, ry], dim=-1), 0.0).to(torch.int32)

    return Projected(means2d=means2d, conics=conics, depths=means_c[:, 2], radii=radii)
