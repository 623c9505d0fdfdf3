"""Photometric losses: L1 and the 3DGS Gaussian-window SSIM (11x11, sigma 1.5, C1=0.01², C2=0.03²)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def _window(size: int, sigma: float, channels: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w2d = (g[:, None] @ g[None, :]).to(dtype=dtype, device=device)
    return w2d.expand(channels, 1, size, size).contiguous()


def ssim_map(img1: torch.Tensor, img2: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """img [H, W, C] in [0, 1] -> per-pixel SSIM [H, W, C] (zero-padded convolution, as 3DGS)."""
    c = img1.shape[-1]
    a = img1.permute(2, 0, 1)[None]
    b = img2.permute(2, 0, 1)[None]
    w = _window(window_size, sigma, c, str(a.device), a.dtype)
    pad = window_size // 2
    mu1 = F.conv2d(a, w, padding=pad, groups=c)
    mu2 = F.conv2d(b, w, padding=pad, groups=c)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = F.conv2d(a * a, w, padding=pad, groups=c) - mu1_sq
    s2 = F.conv2d(b * b, w, padding=pad, groups=c) - mu2_sq
    s12 = F.conv2d(a * b, w, padding=pad, groups=c) - mu12
    c1, c2 = 0.01**2, 0.03**2
    out = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return out[0].permute(1, 2, 0)


def ssim(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    return ssim_map(img1, img2).mean()


def l1(img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    return (img1 - img2).abs().mean()


def photometric_loss(render: torch.Tensor, gt: torch.Tensor, lambda_dssim: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - λ)·L1 + λ·(1 - SSIM); returns (loss, L1)."""
    ll1 = l1(render, gt)
    return (1.0 - lambda_dssim) * ll1 + lambda_dssim * (1.0 - ssim(render, gt)), ll1
