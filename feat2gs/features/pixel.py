"""Weight-free per-pixel features: the iuv/iuvrgb baselines and two probe controls (noise, geometry oracle)."""

from __future__ import annotations

import math

import torch

from feat2gs.features.registry import FeatureInputs, FeatureSpec, register_feature

CONTROL_DIM = 256


def iuv(inputs: FeatureInputs) -> torch.Tensor:
    """(i/(N-1), u, v): image index and normalised pixel coordinates (u along x, v along y, both in [0, 1])."""
    n, h, w, _ = inputs.images.shape
    i = torch.arange(n, dtype=torch.float32) / max(n - 1, 1)
    u = torch.linspace(0, 1, w)
    v = torch.linspace(0, 1, h)
    grid_i = i[:, None, None].expand(n, h, w)
    grid_u = u[None, None, :].expand(n, h, w)
    grid_v = v[None, :, None].expand(n, h, w)
    return torch.stack([grid_i, grid_u, grid_v], dim=-1)


def iuvrgb(inputs: FeatureInputs) -> torch.Tensor:
    """iuv plus the input RGB mapped to [-1, 1]."""
    return torch.cat([iuv(inputs), inputs.images.float().cpu() * 2 - 1], dim=-1)


def noise(inputs: FeatureInputs) -> torch.Tensor:
    """Seeded i.i.d. Gaussian per-pixel features: carry no information, so they lower-bound the probe."""
    n, h, w, _ = inputs.images.shape
    gen = torch.Generator().manual_seed(inputs.seed)
    return torch.randn(n, h, w, CONTROL_DIM, generator=gen)


def oracle_xyz(inputs: FeatureInputs) -> torch.Tensor:
    """Random Fourier features of each pixel's initial 3D point: the geometry the readout must reproduce.

    Frequencies are log-spaced in scale (from 1/extent up to 32/extent) with seeded random directions, so the
    encoding holds both coarse (near-linear) and fine positional detail; it upper-bounds geometry probing.
    """
    pts = inputs.points.float().cpu()
    flat = pts.reshape(-1, 3)
    center = flat.mean(0)
    extent = (flat - center).norm(dim=-1).quantile(0.9).clamp_min(1e-6) if flat.shape[0] <= 2**24 else (
        (flat - center).norm(dim=-1).max())
    gen = torch.Generator().manual_seed(inputs.seed + 1)
    n_freq = CONTROL_DIM // 2
    directions = torch.randn(n_freq, 3, generator=gen)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    scales = torch.logspace(0, math.log10(32), n_freq) / extent
    freqs = directions * scales[:, None]  # [F, 3]
    phase = (flat - center) @ freqs.T  # [M, F]
    enc = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)
    return enc.reshape(*pts.shape[:-1], CONTROL_DIM)


register_feature(FeatureSpec("iuv", 3, 1, "image index + pixel coordinates (baseline)", iuv, tiny=True,
                             scale_regularised=True, kind="tiny"))
register_feature(FeatureSpec("iuvrgb", 6, 1, "iuv + RGB in [-1,1] (the published IUVRGB baseline)", iuvrgb, tiny=True,
                             scale_regularised=True, kind="tiny"))
register_feature(FeatureSpec("noise", CONTROL_DIM, 1, "control: seeded random per-pixel features (lower bound)",
                             noise, control=True, kind="control"))
register_feature(FeatureSpec("oracle_xyz", CONTROL_DIM, 1,
                             "control: Fourier encoding of each pixel's initial 3D point (geometry upper bound)",
                             oracle_xyz, control=True, kind="control"))
