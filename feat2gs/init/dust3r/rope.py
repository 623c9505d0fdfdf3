"""2D rotary position embedding (RoPE2D, CroCo v2) applied to attention queries and keys.

For a head of width D the first D/2 channels encode the row (``pos[..., 0]``, y) and the last D/2 the column
(``pos[..., 1]``, x). Within each half (width D/2): ``inv_freq[k] = 1 / base**(2k / (D/2))`` for k < D/4, angles
``pos * inv_freq`` duplicated as ``cat(f, f)``, output ``t*cos + rotate_half(t)*sin`` with
``rotate_half(t) = cat(-t[D/4:], t[:D/4])``. Angles are always computed in float32.
"""

from __future__ import annotations

import torch


def _inv_freq(half: int, base: float, device: torch.device) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, half, 2, device=device).float() / half))


def _rotate(t: torch.Tensor, pos: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """t [B, H, N, d] (float32), pos [B, N] integer positions."""
    ang = pos.to(torch.float32)[..., None] * inv_freq  # [B, N, d/2]
    ang = torch.cat((ang, ang), dim=-1)[:, None]  # [B, 1, N, d]
    q = t.shape[-1] // 2
    rotated = torch.cat((-t[..., q:], t[..., :q]), dim=-1)
    return t * ang.cos() + rotated * ang.sin()


def rope2d(t: torch.Tensor, pos: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """Rotate ``t`` [B, heads, N, D] by the 2D token positions ``pos`` [B, N, 2] (y, x); returns t's dtype."""
    d = t.shape[-1]
    if d % 4:
        raise ValueError(f"RoPE2D needs a head width divisible by 4, got {d}")
    half = d // 2
    inv_freq = _inv_freq(half, base, t.device)
    tf = t.float()
    y = _rotate(tf[..., :half], pos[..., 0], inv_freq)
    x = _rotate(tf[..., half:], pos[..., 1], inv_freq)
    return torch.cat((y, x), dim=-1).to(t.dtype)
