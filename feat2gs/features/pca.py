"""PCA of feature maps: deterministic exact PCA (default) or the reference's randomised low-rank PCA, seeded."""

from __future__ import annotations

import torch

from feat2gs.errors import ConfigError

_CHUNK = 1 << 16


def _covariance(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    cov = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        chunk = (x[start:start + _CHUNK].double() - mean)
        cov += chunk.T @ chunk
    return cov / max(x.shape[0] - 1, 1)


def pca_project(features: torch.Tensor, dim: int, method: str = "exact", seed: int = 0) -> torch.Tensor:
    """features [..., C] -> [..., dim]: centred projection onto the top principal axes (no whitening).

    ``exact``: eigen-decomposition of the covariance in float64, each axis' sign fixed so that its largest
    component is positive — the same input always gives the same output. ``lowrank``: ``torch.pca_lowrank``
    with ``niter=50`` under a fixed seed (the reference implementation's solver, made repeatable).
    """
    c = features.shape[-1]
    if dim > c:
        raise ConfigError(f"--feat-dim {dim} is larger than the feature width {c}; use --feat-dim <= {c}")
    x = features.reshape(-1, c).float()
    mean = x.double().mean(0)
    if method == "exact":
        evals, evecs = torch.linalg.eigh(_covariance(x, mean))
        axes = evecs[:, torch.argsort(evals, descending=True)[:dim]]
        signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
        axes = (axes * torch.where(signs == 0, torch.ones_like(signs), signs)).float()
    elif method == "lowrank":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, _, v = torch.pca_lowrank(x - mean.float(), q=dim, center=False, niter=50)
        axes = v[:, :dim]
    else:
        raise ConfigError(f"unknown PCA method {method!r}; use exact or lowrank")
    out = (x - mean.float()) @ axes
    return out.reshape(*features.shape[:-1], dim)
