"""Surface normals from a rendered depth map."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def depth_to_normals(
    depth: torch.Tensor,  # [H, W, 1] camera z (e.g. the expected depth "ED")
    viewmat: torch.Tensor,  # [4, 4] OpenCV world-to-camera
    K: torch.Tensor,  # [3, 3] pixel intrinsics
) -> torch.Tensor:
    """World-space unit normals [H, W, 3], oriented towards the camera; the 1-pixel border is zero.

    Pixel centres (u + 0.5, v + 0.5) are unprojected to world points; the normal is the cross product of the
    central differences down the rows and along the columns (differentiable).
    """
    height, width = depth.shape[:2]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    u = (torch.arange(width, dtype=depth.dtype, device=depth.device) + 0.5 - cx) / fx  # [W]
    v = (torch.arange(height, dtype=depth.dtype, device=depth.device) + 0.5 - cy) / fy  # [H]
    rays = torch.stack(
        [u.expand(height, width), v[:, None].expand(height, width), torch.ones_like(depth[..., 0])], dim=-1
    )  # [H, W, 3] camera rays with z = 1
    c2w = torch.linalg.inv(viewmat)
    points = (rays * depth) @ c2w[:3, :3].T + c2w[:3, 3]  # [H, W, 3]
    d_cols = points[1:-1, 2:] - points[1:-1, :-2]  # [H-2, W-2, 3] along +x
    d_rows = points[2:, 1:-1] - points[:-2, 1:-1]  # [H-2, W-2, 3] along +y
    # (+y) x (+x) = -z in the camera frame: the normal faces the camera.
    normals = F.normalize(torch.linalg.cross(d_rows, d_cols, dim=-1), dim=-1)
    return F.pad(normals, (0, 0, 1, 1, 1, 1))
