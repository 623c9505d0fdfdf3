"""VGGT (facebook/VGGT-1B) features with our own implementation of its aggregator (no PyPI package provides it).

Architecture (official key names, so ``model.pt`` / ``model.safetensors`` load strictly under ``aggregator.``):

* ``patch_embed``: DINOv2 ViT-L/14 with 4 registers (timm ``vit_large_patch14_reg4_dinov2``; the checkpoint's
  original DINOv2 names are converted with timm's own DINOv2 filter). ``vggt_e`` is its final-norm patch tokens
  (``x_norm_patchtokens``), 1024 channels.
* per frame, ``[camera token, 4 register tokens, patches]``; frame 0 takes the first of the two learned
  camera/register tokens, every other frame the second;
* 24 alternating pairs of blocks: ``frame_blocks[i]`` attend within each frame, ``global_blocks[i]`` across all
  frames; each block: pre-LayerNorm attention with LayerNorm on q and k and 2D RoPE (base 100, positions
  (row+1, col+1) for patches, (0, 0) for the 5 special tokens), LayerScale, MLP. ``vggt_d`` is the last pair's
  frame and global outputs concatenated (2048 channels), patch tokens only.

Inputs follow VGGT's ``load_and_preprocess_images`` (crop mode) applied to our working images: resized (bicubic,
antialiased) to width 518 and height ``round(H * 518 / W / 14) * 14``, centre-cropped to 518 rows when taller;
ImageNet normalisation. All views go through the network together (global attention couples them), so the batch
is never chunked. The returned grid has ``round(H/14) x round(W/14)`` cells tiling our image, sampled from VGGT's
grid at the matching pixels (rows cropped away take the nearest kept row).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig, Family, register_family
from feat2gs.features.backbones.extra import read_state_dict, strict_load
from feat2gs.features.backbones.grid import output_grid_size, sample_grid
from feat2gs.features.backbones.weights import BackboneWeightsError
from feat2gs.init.dust3r.rope import rope2d

WIDTH = 518
PATCH = 14
HEAD_DIM, DEPTH, REGISTERS = 64, 24, 4  # width and heads follow the patch embedding (ViT-L: 1024 = 16 x 64)
PATCH_START = 1 + REGISTERS
ROPE_BASE = 100.0
PATCH_EMBED_ARCH = "vit_large_patch14_reg4_dinov2"


class RopeAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.q_norm = nn.LayerNorm(dim // heads)
        self.k_norm = nn.LayerNorm(dim // heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rope2d(self.q_norm(q), pos, ROPE_BASE), rope2d(self.k_norm(k), pos, ROPE_BASE)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class AggregatorBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        from timm.layers import LayerScale, Mlp

        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RopeAttention(dim, heads)
        self.ls1 = LayerScale(dim, init_values=0.01)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim, init_values=0.01)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), pos))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VGGTEncoder(nn.Module):
    """``vggt_e``: the DINOv2 patch embedding only."""

    def __init__(self):
        import timm

        super().__init__()
        self.patch_embed = timm.create_model(PATCH_EMBED_ARCH, pretrained=False, dynamic_img_size=True, num_classes=0)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[S, 3, H, W] normalised -> final-norm patch tokens [S, (H/14)(W/14), C]."""
        m = self.patch_embed
        return m.forward_features(x)[:, m.num_prefix_tokens:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, _, h, w = x.shape
        return self.patch_tokens(x).transpose(1, 2).reshape(s, -1, h // PATCH, w // PATCH)


class VGGTAggregator(VGGTEncoder):
    """``vggt_d``: the whole alternating-attention aggregator; returns the last frame+global output grid."""

    def __init__(self, depth: int | None = None):
        super().__init__()
        depth = DEPTH if depth is None else depth
        dim = self.patch_embed.embed_dim
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, REGISTERS, dim) * 1e-6)
        self.frame_blocks = nn.ModuleList(AggregatorBlock(dim, dim // HEAD_DIM) for _ in range(depth))
        self.global_blocks = nn.ModuleList(AggregatorBlock(dim, dim // HEAD_DIM) for _ in range(depth))

    @staticmethod
    def _per_frame(token: torch.Tensor, s: int) -> torch.Tensor:
        """[1, 2, X, C] -> [S, X, C]: frame 0 takes token 0, the other frames token 1."""
        return torch.cat([token[0, :1], token[0, 1:].expand(s - 1, -1, -1)], dim=0)

    @staticmethod
    def positions(s: int, gh: int, gw: int, device: torch.device) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
        patches = torch.stack([ys, xs], dim=-1).reshape(-1, 2) + 1
        pos = torch.cat([torch.zeros(PATCH_START, 2, dtype=patches.dtype, device=device), patches])
        return pos[None].expand(s, -1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, _, h, w = x.shape
        gh, gw = h // PATCH, w // PATCH
        patches = self.patch_tokens(x)
        tokens = torch.cat([self._per_frame(self.camera_token, s).to(patches.dtype),
                            self._per_frame(self.register_token, s).to(patches.dtype), patches], dim=1)
        p, c = tokens.shape[1], tokens.shape[2]
        pos = self.positions(s, gh, gw, x.device)
        pos_all = pos.reshape(1, s * p, 2)
        frame = glob = tokens
        for frame_block, global_block in zip(self.frame_blocks, self.global_blocks):
            frame = frame_block(glob, pos)
            glob = global_block(frame.reshape(1, s * p, c), pos_all).reshape(s, p, c)
        out = torch.cat([frame, glob], dim=-1)[:, PATCH_START:]
        return out.transpose(1, 2).reshape(s, 2 * c, gh, gw)


# ------------------------------------------------------------------------------------------------------------------
# weights


def _official_patch_embed_to_timm(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    from timm.models.vision_transformer import checkpoint_filter_fn

    return checkpoint_filter_fn(dict(sd), model)


def load_official(module: VGGTEncoder, path: Path, cfg: BackboneConfig) -> None:
    """Load ``aggregator.*`` of a VGGT checkpoint (the heads are ignored) strictly into ``module``."""
    sd = read_state_dict(path, cfg.name)
    agg = {k[len("aggregator."):]: v for k, v in sd.items() if k.startswith("aggregator.")}
    if not agg:
        raise BackboneWeightsError(f"{path} holds no 'aggregator.*' keys; it is not a VGGT checkpoint for backbone "
                                   f"{cfg.name!r} ({cfg.protocol_source})")
    pe = {k[len("patch_embed."):]: v for k, v in agg.items() if k.startswith("patch_embed.")}
    ours = {f"patch_embed.{k}": v for k, v in _official_patch_embed_to_timm(pe, module.patch_embed).items()}
    if isinstance(module, VGGTAggregator):  # vggt_e takes the patch embedding only
        ours.update({k: v for k, v in agg.items() if not k.startswith("patch_embed.")})
    strict_load(module, ours, path, cfg, "the VGGT aggregator")


def build_vggt(cfg: BackboneConfig, weights: Path | None) -> VGGTEncoder:
    module = VGGTAggregator() if cfg.family == "vggt_aggregator" else VGGTEncoder()
    width = module.patch_embed.embed_dim * (2 if cfg.family == "vggt_aggregator" else 1)
    if width != cfg.channels:
        raise ConfigError(f"backbone {cfg.name!r}: the VGGT {cfg.family} grid has {width} channels, the config says "
                          f"{cfg.channels}")
    if weights is not None:
        load_official(module, weights, cfg)
    return module


# ------------------------------------------------------------------------------------------------------------------
# preprocessing and grid mapping


def vggt_frame_size(height: int, width: int) -> tuple[int, int, int]:
    """-> (resized height, crop top, cropped height) of VGGT's crop-mode preprocessing for a HxW image."""
    new_h = max(PATCH, round(height * (WIDTH / width) / PATCH) * PATCH)
    top = (new_h - WIDTH) // 2 if new_h > WIDTH else 0
    return new_h, top, min(new_h, WIDTH)


def extract_vggt(module: VGGTEncoder, x: torch.Tensor, out_patch: int) -> torch.Tensor:
    """x [N, 3, H, W] normalised -> [N, C, round(H/p), round(W/p)] on our image's cells (all N views at once)."""
    n, _, h, w = x.shape
    new_h, top, crop_h = vggt_frame_size(h, w)
    frames = F.interpolate(x, size=(new_h, WIDTH), mode="bicubic", align_corners=False, antialias=True)
    frames = frames[:, :, top:top + crop_h]
    grid = module(frames)
    oh, ow = output_grid_size(h, w, out_patch)
    ys = ((torch.arange(oh, dtype=torch.float64) + 0.5) * (h / oh)) * (new_h / h) - top  # VGGT-frame pixels
    xs = ((torch.arange(ow, dtype=torch.float64) + 0.5) * (w / ow)) * (WIDTH / w)
    return sample_grid(grid, ys, xs, (crop_h, WIDTH))


for _family in ("vggt_patch_embed", "vggt_aggregator"):
    register_family(Family(_family, "feat2gs", build_vggt,
                           whole_set=lambda module, x, cfg: extract_vggt(module, x, cfg.stride)))
