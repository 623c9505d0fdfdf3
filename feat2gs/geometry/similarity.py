"""Similarity (Sim(3)) estimation and application."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity with ``dst ≈ s · R @ src + t`` for corresponding points src, dst [M, 3].

    Returns ``(s, R [3, 3], t [3])``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or src.shape[0] < 3:
        raise ValueError(f"umeyama needs two [M>=3, 3] arrays of equal shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / src.shape[0]
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    var_s = (xs**2).sum() / src.shape[0]
    s = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def apply_similarity_to_c2w(c2w: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map camera-to-world poses [..., 4, 4] through x -> s·R·x + t.

    The camera centre moves as a point (``s·R·c + t``) and the orientation rotates (``R·R_c``); the camera's
    own metric frame is kept orthonormal, so the result is again a rigid c2w.
    """
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[..., :3, :3] = R @ out[..., :3, :3]
    out[..., :3, 3] = s * (out[..., :3, 3] @ R.T) + t
    return out
