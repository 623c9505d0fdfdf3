"""Quaternion (wxyz) <-> rotation matrix, and the 7-vector pose parametrisation used for pose optimisation."""

from __future__ import annotations

import numpy as np
import torch


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
    """R [..., 3, 3] -> unit quaternion [..., 4] wxyz with w >= 0 (numerically stable branch choice)."""
    is_torch = isinstance(R, torch.Tensor)
    Rn = R.detach().cpu().double().numpy() if is_torch else np.asarray(R, dtype=np.float64)
    batch = Rn.shape[:-2]
    M = Rn.reshape(-1, 3, 3)
    out = np.empty((M.shape[0], 4))
    for i, m in enumerate(M):
        tr = np.trace(m)
        if tr > 0:
            s = 2.0 * np.sqrt(tr + 1.0)
            q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
        elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
            s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
            q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
        elif m[1, 1] > m[2, 2]:
            s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
            q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
        else:
            s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
            q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
        q = np.asarray(q)
        q /= np.linalg.norm(q)
        out[i] = -q if q[0] < 0 else q
    out = out.reshape(batch + (4,))
    if is_torch:
        return torch.as_tensor(out, dtype=R.dtype, device=R.device)
    return out


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
