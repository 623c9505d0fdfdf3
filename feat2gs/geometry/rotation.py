"""Quaternion (wxyz) <-> rotation matrix, and the 7-vector pose parametrisation used for pose optimisation."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation


def normalize_quat(q: torch.Tensor) -> torch.Tensor:
    """q [..., 4] -> unit quaternions [..., 4]."""
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """q [..., 4] wxyz (need not be unit) -> R [..., 3, 3]; differentiable."""
    w, x, y, z = normalize_quat(q).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """R [..., 3, 3] -> unit quaternion [..., 4] wxyz with w >= 0 (scipy, in float64; a tensor comes back in R's
    dtype and device)."""
    is_torch = isinstance(R, torch.Tensor)
    Rn = R.detach().cpu().double().numpy() if is_torch else np.asarray(R, dtype=np.float64)
    q = Rotation.from_matrix(Rn.reshape(-1, 3, 3)).as_quat(scalar_first=True)
    q = np.where(q[:, :1] < 0, -q, q).reshape(Rn.shape[:-2] + (4,))
    return torch.as_tensor(q, dtype=R.dtype, device=R.device) if is_torch else q


def pose_vec_to_viewmat(pose: torch.Tensor) -> torch.Tensor:
    """pose [..., 7] = [qw qx qy qz tx ty tz] of a w2c -> viewmat [..., 4, 4]; differentiable."""
    R = quat_to_rotmat(pose[..., :4])
    t = pose[..., 4:7]
    top = torch.cat([R, t[..., :, None]], dim=-1)
    bottom = torch.zeros(pose.shape[:-1] + (1, 4), dtype=pose.dtype, device=pose.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def viewmat_to_pose_vec(viewmat: torch.Tensor) -> torch.Tensor:
    """viewmat [..., 4, 4] -> pose [..., 7] = [q(wxyz), t]."""
    q = rotmat_to_quat(viewmat[..., :3, :3])
    return torch.cat([q, viewmat[..., :3, 3]], dim=-1)
