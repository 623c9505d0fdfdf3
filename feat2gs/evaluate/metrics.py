"""Image metrics, each both paper-compatible (mask-multiplied full image) and as a true masked average."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from feat2gs.train.losses import ssim_map


def psnr_paper(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR of mask-multiplied images over the whole frame (masked-out zeros count), as the reference."""
    mse = ((render - gt) * mask[..., None]).pow(2).mean()
    return float(20 * torch.log10(1.0 / torch.sqrt(mse)))  # inf for identical images: not a number to report


def psnr_masked(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR over the visible pixels only."""
    m = mask.bool()
    if not m.any():
        return math.nan
    mse = (render[m] - gt[m]).pow(2).mean()
    return float(20 * torch.log10(1.0 / torch.sqrt(mse)))  # inf for identical images: not a number to report


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


METRIC_NAMES = ("PSNR", "SSIM", "LPIPS", "PSNR_masked", "SSIM_masked", "LPIPS_masked")


@dataclass
class ViewMetrics:
    """One test view's metrics; a value that could not be measured is ``None`` and ``reason`` says why."""

    values: dict[str, float | None]  # METRIC_NAMES + "mask_fraction"
    reason: str | None = None

    @property
    def scored(self) -> bool:
        return self.reason is None or any(self.values[k] is not None for k in ("PSNR", "SSIM"))


def image_metrics(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor,
                  lpips_model: torch.nn.Module | None, min_visible_fraction: float) -> ViewMetrics:
    """render, gt [H, W, 3] in [0, 1]; mask [H, W] in {0, 1}.

    A view whose visible fraction is below ``min_visible_fraction`` is not scored: every metric is ``None``
    (with a mask-multiplied image the paper-compatible PSNR of an empty mask would be infinite — a "perfect"
    score for a view that shows nothing). A metric that comes out non-finite (PSNR of identical images) is
    ``None`` too; ``reason`` names the cause.
    """
    render = render.clamp(0, 1)
    mask = mask.float()
    fraction = float(mask.mean())
    values: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
    values["mask_fraction"] = fraction
    if fraction < min_visible_fraction:
        return ViewMetrics(values, f"only {fraction:.2%} of the view is visible (< eval.min_visible_fraction "
                                   f"{min_visible_fraction:.2%}): test pose or visibility mask failed")
    values.update(PSNR=psnr_paper(render, gt, mask), SSIM=ssim_paper(render, gt, mask),
                  PSNR_masked=psnr_masked(render, gt, mask), SSIM_masked=ssim_masked(render, gt, mask))
    if lpips_model is not None:
        with torch.no_grad():
            values["LPIPS"] = lpips_paper(lpips_model, render, gt, mask)
            values["LPIPS_masked"] = lpips_masked(lpips_model, render, gt, mask)
    bad = [k for k in METRIC_NAMES if values[k] is not None and not math.isfinite(values[k])]
    for k in bad:
        values[k] = None
    return ViewMetrics(values, f"{', '.join(bad)} not finite (render identical to ground truth?)" if bad else None)


@dataclass
class MetricsSummary:
    means: dict[str, float | None]  # over the scored views; None when no view has the value
    status: str  # ok | partial (some views not scored) | degenerate (no view scored)
    reason: str | None
    num_scored: int
    null_reasons: dict[str, str] = field(default_factory=dict)  # view name -> why its metrics are null


def summarise(per_view: dict[str, ViewMetrics]) -> MetricsSummary:
    """Means over the views that were measured; never a sentinel for the ones that were not."""
    keys = list(METRIC_NAMES) + ["mask_fraction"]
    means = {}
    for k in keys:
        vals = [m.values[k] for m in per_view.values() if m.values[k] is not None]
        means[k] = float(sum(vals) / len(vals)) if vals else None
    reasons = {name: m.reason for name, m in per_view.items() if m.reason}
    scored = [name for name, m in per_view.items() if m.scored]
    if not scored:
        first = next(iter(reasons.values()), "no test view")
        return MetricsSummary(means, "degenerate", f"no test view could be scored ({first})", 0, reasons)
    unscored = [n for n in per_view if n not in scored]
    if unscored:
        return MetricsSummary(means, "partial", f"{len(unscored)} of {len(per_view)} test views not scored: "
                              + "; ".join(f"{n}: {reasons[n]}" for n in unscored), len(scored), reasons)
    return MetricsSummary(means, "ok", None, len(scored), reasons)
