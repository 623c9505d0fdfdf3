"""Initial 3DGS parameters from a point cloud (protocol §4.3): the warm-start targets."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

SH_C0 = 0.28209479177387814


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def knn_log_scale(points: np.ndarray, k: int = 3) -> np.ndarray:
    """log(sqrt(mean squared distance to the k nearest neighbours)), clamped at 1e-7 (as simple-knn's distCUDA2)."""
    tree = cKDTree(points)
    dist, _ = tree.query(points, k=k + 1, workers=-1)
    d2 = np.maximum((dist[:, 1:] ** 2).mean(axis=1), 1e-7)
    return np.log(np.sqrt(d2)).astype(np.float32)


def noised_positions(points: torch.Tensor, noise_std: float, seed: int) -> torch.Tensor:
    """points + seeded Gaussian noise of std ``noise_std / 1000`` (the DTU protocol's ``--noise_std``: 10 = 1 cm at
    DTU's metre scale); ``noise_std = 0`` returns the points unchanged."""
    if noise_std == 0:
        return points
    gen = torch.Generator().manual_seed(seed)
    return points + torch.randn(points.shape, generator=gen, dtype=points.dtype) * (noise_std / 1000.0)


def initial_params(points: torch.Tensor, colors: torch.Tensor, sh_degree: int) -> dict[str, torch.Tensor]:
    """points [M, 3], colors [M, 3] in [0, 1] -> raw parameters, flat per Gaussian:

    xyz [M,3], scaling [M,3] (log, isotropic), rotation [M,4] (1,0,0,0), opacity [M,1] (logit 0.1),
    f_dc [M,3] (RGB -> SH DC), f_rest [M, ((d+1)^2-1)*3] zeros.
    """
    m = points.shape[0]
    log_scale = torch.from_numpy(knn_log_scale(points.detach().cpu().double().numpy()))
    rotation = torch.zeros(m, 4)
    rotation[:, 0] = 1.0
    n_rest = ((sh_degree + 1) ** 2 - 1) * 3
    return {
        "xyz": points.float().cpu().clone(),
        "scaling": log_scale[:, None].repeat(1, 3),
        "rotation": rotation,
        "opacity": torch.full((m, 1), float(np.log(0.1 / 0.9))),
        "f_dc": rgb_to_sh(colors.float().cpu()),
        "f_rest": torch.zeros(m, n_rest),
    }
