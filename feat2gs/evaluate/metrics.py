"""Image metrics, each both paper-compatible (mask-multiplied full image) and as a true masked average."""

from __future__ import annotations

import math

import torch

from feat2gs.train.losses import ssim_map


def psnr_paper(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR of mask-multiplied images over the whole frame (masked-out zeros count), as the reference."""
    mse = ((render - gt) * mask[..., None]).pow(2).mean()
    return float(20 * torch.log10(1.0 / torch.sqrt(mse.clamp_min(1e-20))))


def psnr_masked(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR over the visible pixels only."""
    m = mask.bool()
    if not m.any():
        return math.nan
    mse = (render[m] - gt[m]).pow(2).mean()
    return float(20 * torch.log10(1.0 / torch.sqrt(mse.clamp_min(1e-20))))


def ssim_paper(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    m = mask[..., None]
    return float(ssim_map(render * m, gt * m).mean())


def ssim_masked(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """SSIM map of the unmasked images averaged over the visible pixels."""
    m = mask.bool()
    if not m.any():
        return math.nan
    return float(ssim_map(render, gt)[m].mean())


def _nchw(img: torch.Tensor) -> torch.Tensor:
    return img.permute(2, 0, 1)[None]


def lpips_paper(model: torch.nn.Module, render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """LPIPS-VGG of mask-multiplied images fed in [0, 1] — the reference's (3DGS's) input range."""
    m = mask[..., None]
    return float(model(_nchw(render * m), _nchw(gt * m)).mean())


def lpips_masked(model: torch.nn.Module, render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """Spatial LPIPS-VGG map with the inputs mapped to [-1, 1] (what LPIPS expects), averaged over the mask."""
    m = mask.bool()
    if not m.any():
        return math.nan
    was_spatial = model.spatial
    model.spatial = True  # per-pixel map: each layer's map bilinearly upsampled to the image and summed
    try:
        spatial = model(_nchw(render), _nchw(gt), normalize=True)
    finally:
        model.spatial = was_spatial
    return float(spatial[0, 0][m].mean())


def image_metrics(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                  lpips_model: torch.nn.Module | None) -> dict[str, float | None]:
    """render, gt [H, W, 3] in [0, 1]; mask [H, W] in {0, 1}."""
    render = render.clamp(0, 1)
    mask = mask.float()
    out: dict[str, float | None] = {
        "PSNR": psnr_paper(render, gt, mask), "SSIM": ssim_paper(render, gt, mask),
        "PSNR_masked": psnr_masked(render, gt, mask), "SSIM_masked": ssim_masked(render, gt, mask),
        "LPIPS": None, "LPIPS_masked": None, "mask_fraction": float(mask.mean()),
    }
    if lpips_model is not None:
        with torch.no_grad():
            out["LPIPS"] = lpips_paper(lpips_model, render, gt, mask)
            out["LPIPS_masked"] = lpips_masked(lpips_model, render, gt, mask)
    return out
