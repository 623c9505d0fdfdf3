"""FeatUp's JBU stack: four learned joint-bilateral ×2 upsamplers and a final 1×1 fixup.

Module and parameter names follow FeatUp's ``JBUStack`` / ``JBULearnedRange`` so its released ``upsampler.*``
weights load unchanged (``upK.range_proj.{0,3}``, ``upK.fixup_proj.{0,3}``, ``upK.range_temp``,
``upK.sigma_spatial``, ``fixup_proj.1``). The adaptive convolution (FeatUp's C++/CUDA extension) is written
here in plain PyTorch as a loop over the 7×7 offsets, so memory stays at a few feature maps on any device.

One stage, source [B, C, h, w] and guidance g [B, 3, 2h, 2w] (the image average-pooled to the output size):

* spatial kernel ``exp(-(dy² + dx²) / (2 σ²))`` over ``linspace(-1, 1, 7)²``;
* range kernel: ``softmax_k(t · <p(y+dy, x+dx), p(y, x)>)`` with ``p = conv(GELU(conv(g)))`` reflect-padded and
  ``t = clamp(exp(range_temp), 1e-4, 1e4)``;
* kernel = range · spatial normalised over the 49 offsets (sum clamped at 1e-7), then
  ``+ 0.1 · fixup([kernel, g])`` with no re-normalisation;
* output = Σ_k kernel_k · (bicubic ×2 source, reflect-padded by 3) shifted by offset k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KEY_DIM = 32
RADIUS = 3
GUIDANCE_DIM = 3
STAGES = 4
RANGE_TEMP_MIN, RANGE_TEMP_MAX = 1e-4, 1e4  # clamp of exp(range_temp)
KERNEL_SUM_MIN = 1e-7  # the normalising sum of the combined kernel is clamped at this
KERNEL_FIXUP_GAIN = 0.1  # kernel += 0.1 * fixup_proj(...)
FINAL_FIXUP_GAIN = 0.1  # out = up4 + 0.1 * fixup_proj(up4)


class JBUStage(nn.Module):
    """One learned-range joint bilateral ×2 upsampler (FeatUp ``JBULearnedRange``)."""

    def __init__(self, guidance_dim: int = GUIDANCE_DIM, key_dim: int = KEY_DIM, radius: int = RADIUS):
        super().__init__()
        self.radius = radius
        self.diameter = 2 * radius + 1
        taps = self.diameter ** 2
        self.range_temp = nn.Parameter(torch.tensor(0.0))
        self.range_proj = nn.Sequential(nn.Conv2d(guidance_dim, key_dim, 1), nn.GELU(), nn.Dropout2d(0.1),
                                        nn.Conv2d(key_dim, key_dim, 1))
        self.fixup_proj = nn.Sequential(nn.Conv2d(guidance_dim + taps, taps, 1), nn.GELU(), nn.Dropout2d(0.1),
                                        nn.Conv2d(taps, taps, 1))
        self.sigma_spatial = nn.Parameter(torch.tensor(1.0))

    def _offsets(self) -> list[tuple[int, int]]:
        d = self.diameter
        return [(i, j) for i in range(d) for j in range(d)]  # k = i*d + j, i: row (dy = i - r), j: column

    def spatial_kernel(self) -> torch.Tensor:  # -> [1, d*d, 1, 1]
        t = torch.linspace(-1, 1, self.diameter, device=self.sigma_spatial.device, dtype=self.sigma_spatial.dtype)
        d2 = t[:, None].square() + t[None, :].square()
        return torch.exp(-d2 / (2 * self.sigma_spatial ** 2)).reshape(1, -1, 1, 1)

    def range_kernel(self, guidance: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, d*d, H, W]
        h, w = guidance.shape[-2:]
        proj = self.range_proj(guidance)
        padded = F.pad(proj, [self.radius] * 4, mode="reflect")
        logits = torch.stack([(padded[:, :, i:i + h, j:j + w] * proj).sum(1) for i, j in self._offsets()], dim=1)
        temp = self.range_temp.exp().clamp(RANGE_TEMP_MIN, RANGE_TEMP_MAX)
        return torch.softmax(temp * logits, dim=1)

    def kernel(self, guidance: torch.Tensor) -> torch.Tensor:  # -> [B, d*d, H, W]
        k = self.range_kernel(guidance) * self.spatial_kernel()
        k = k / k.sum(1, keepdim=True).clamp_min(KERNEL_SUM_MIN)
        return k + KERNEL_FIXUP_GAIN * self.fixup_proj(torch.cat([k, guidance], dim=1))

    def forward(self, source: torch.Tensor,  # [B, C, h, w]
                guidance: torch.Tensor,  # [B, 3, H, W] at the output size
                ) -> torch.Tensor:  # -> [B, C, H, W]
        if source.shape[0] != guidance.shape[0]:
            raise ValueError(f"JBU source batch {source.shape[0]} != guidance batch {guidance.shape[0]}")
        h, w = guidance.shape[-2:]
        kernel = self.kernel(guidance)
        up = F.interpolate(source, (h, w), mode="bicubic", align_corners=False)
        padded = F.pad(up, [self.radius] * 4, mode="reflect")
        out = torch.zeros_like(up)
        for k, (i, j) in enumerate(self._offsets()):
            out.addcmul_(kernel[:, k:k + 1], padded[:, :, i:i + h, j:j + w])
        return out


class JBUStack(nn.Module):
    """FeatUp ``JBUStack``: ×16 in four stages. ``forward(source, guidance)`` -> (output, [stage outputs])."""

    def __init__(self, feat_dim: int):
        super().__init__()
        self.up1, self.up2, self.up3, self.up4 = (JBUStage() for _ in range(STAGES))
        self.fixup_proj = nn.Sequential(nn.Dropout2d(0.2), nn.Conv2d(feat_dim, feat_dim, 1))

    @property
    def stages(self) -> list[JBUStage]:
        return [self.up1, self.up2, self.up3, self.up4]

    def stage(self, k: int, source: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        """Stage ``k`` (0..3) on ``source``, the guidance image average-pooled to twice the source size."""
        h, w = source.shape[-2:]
        return self.stages[k](source, F.adaptive_avg_pool2d(guidance, (2 * h, 2 * w)))

    def forward(self, source: torch.Tensor,  # [B, C, h, w] low-resolution features
                guidance: torch.Tensor,  # [B, 3, 16h, 16w] image
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs = []
        x = source
        for k in range(STAGES):
            x = self.stage(k, x, guidance)
            outs.append(x)
        return x + FINAL_FIXUP_GAIN * self.fixup_proj(x), outs
