"""Similarity (Sim(3)) estimation and application."""

from __future__ import annotations

import numpy as np
import torch


def umeyama(src, dst, weights=None, with_scale: bool = True):
    """Least-squares similarity ``dst ≈ s · R @ src + t`` for corresponding points ``src``, ``dst`` [..., 3]
    (numpy arrays or tensors), optionally weighted per point (``weights`` [...] >= 0). Computed in float64.

    Returns ``(s, R [3, 3], t [3])`` with R and t of the input's kind (numpy float64, or a tensor in src's
    dtype/device). A (numerically) constant source has no scale: ``s`` is NaN and callers decide what that means.
    """
    is_torch = isinstance(src, torch.Tensor)
    x = torch.as_tensor(src).reshape(-1, 3).double()
    y = torch.as_tensor(dst, device=x.device).reshape(-1, 3).double()
    if x.shape != y.shape or len(x) < 3:
        raise ValueError(f"umeyama needs two point sets [M>=3, 3] of equal shape, got {tuple(np.shape(src))} and "
                         f"{tuple(np.shape(dst))}")
    w = (torch.ones(len(x), dtype=torch.float64, device=x.device) if weights is None
         else torch.as_tensor(weights, device=x.device).reshape(-1).double())
    w = w / w.sum()
    mx, my = w @ x, w @ y
    xc, yc = x - mx, y - my
    U, S, Vt = torch.linalg.svd((w[:, None] * yc).T @ xc)
    d = torch.ones(3, dtype=torch.float64, device=x.device)
    if torch.det(U) * torch.det(Vt) < 0:
        d[2] = -1.0
    R = U @ torch.diag(d) @ Vt
    var_x = w @ (xc**2).sum(-1)
    if not with_scale:
        s = 1.0
    elif not var_x > 1e-20 * float(w @ (x**2).sum(-1) + 1e-30):
        s = float("nan")
    else:
        s = float((S * d).sum() / var_x)
    t = my - s * (R @ mx)
    if is_torch:
        return s, R.to(src.dtype), t.to(src.dtype)
    return s, R.numpy(), t.numpy()


def apply_similarity_to_c2w(c2w: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map camera-to-world poses [..., 4, 4] through x -> s·R·x + t.

    The camera centre moves as a point (``s·R·c + t``) and the orientation rotates (``R·R_c``); the camera's
    own metric frame is kept orthonormal, so the result is again a rigid c2w.
    """
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[..., :3, :3] = R @ out[..., :3, :3]
    out[..., :3, 3] = s * (out[..., :3, 3] @ R.T) + t
    return out
