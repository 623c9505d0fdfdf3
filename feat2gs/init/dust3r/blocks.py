"""Transformer building blocks of the CroCo v2 encoder/decoder (pre-norm ViT blocks with 2D RoPE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from feat2gs.errors import ConfigError
from feat2gs.init.dust3r.rope import rope2d

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class Mlp(nn.Module):
    """fc1 -> GELU (exact) -> fc2."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim if out_dim is not None else in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)  # [B, heads, N, hd]


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class Attention(nn.Module):
    """Self-attention with a fused qkv projection and RoPE2D on q and k."""

    def __init__(self, dim: int, num_heads: int, rope_freq: float):
        super().__init__()
        self.num_heads = num_heads
        self.rope_freq = rope_freq
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = rope2d(q, pos, self.rope_freq)
        k = rope2d(k, pos, self.rope_freq)
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """Cross-attention (separate q/k/v projections); RoPE2D with the query's and the key's own positions."""

    def __init__(self, dim: int, num_heads: int, rope_freq: float):
        super().__init__()
        self.num_heads = num_heads
        self.rope_freq = rope_freq
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, qpos: torch.Tensor,
                kpos: torch.Tensor) -> torch.Tensor:
        q = rope2d(_heads(self.projq(query), self.num_heads), qpos, self.rope_freq)
        k = rope2d(_heads(self.projk(key), self.num_heads), kpos, self.rope_freq)
        v = _heads(self.projv(value), self.num_heads)
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class EncoderBlock(nn.Module):
    """``x += attn(LN x); x += mlp(LN x)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope_freq: float):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, rope_freq)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention, cross-attention to the other view's (``norm_y``-normalised) tokens, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope_freq: float):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, rope_freq)
        self.cross_attn = CrossAttention(dim, num_heads, rope_freq)
        self.norm2 = layer_norm(dim)
        self.norm3 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = layer_norm(dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor, xpos: torch.Tensor, ypos: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), xpos)
        y = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), y, y, xpos, ypos)
        return x + self.mlp(self.norm3(x))


def grid_positions(h: int, w: int, batch: int, device: torch.device) -> torch.Tensor:
    """Token positions [B, h*w, 2] int64, row-major, (y, x)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    pos = torch.stack((ys.reshape(-1), xs.reshape(-1)), dim=-1)
    return pos[None].expand(batch, -1, -1)


class PatchEmbed(nn.Module):
    """Conv patchify (no absolute position embedding); returns tokens [B, N, C] and positions [B, N, 2].

    ``manyar=True`` is the training-time ``ManyAR_PatchEmbed``: images arrive in landscape and those whose
    ``true_shape`` is portrait are transposed back before the projection, so tokens always follow the true
    orientation.
    """

    def __init__(self, patch_size: int, embed_dim: int, manyar: bool = False):
        super().__init__()
        self.patch_size = patch_size
        self.manyar = manyar
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor, true_shape: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = img.shape
        p = self.patch_size
        if h % p or w % p:
            raise ConfigError(f"image size {h}x{w} (HxW) must be a multiple of the patch size {p}")
        if not self.manyar:
            x = self.proj(img).flatten(2).transpose(1, 2)
            return x, grid_positions(h // p, w // p, b, img.device)
        if w < h:
            raise ConfigError(f"ManyAR_PatchEmbed expects landscape image tensors, got {h}x{w} (HxW)")
        if true_shape is None:
            true_shape = torch.tensor([[h, w]], device=img.device).expand(b, 2)
        portrait = (true_shape[:, 0] > true_shape[:, 1]).to(img.device)
        n = (h // p) * (w // p)
        x = img.new_zeros((b, n, self.proj.out_channels))
        pos = torch.zeros((b, n, 2), dtype=torch.int64, device=img.device)
        land = ~portrait
        if land.any():
            x[land] = self.proj(img[land]).flatten(2).transpose(1, 2).to(x.dtype)
            pos[land] = grid_positions(h // p, w // p, int(land.sum()), img.device)
        if portrait.any():
            x[portrait] = self.proj(img[portrait].swapaxes(-1, -2)).flatten(2).transpose(1, 2).to(x.dtype)
            pos[portrait] = grid_positions(w // p, h // p, int(portrait.sum()), img.device)
        return x, pos
