"""Prediction heads (DUSt3R 'dpt', MASt3R 'catmlp+dpt') and the output post-processing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from feat2gs.init.dust3r.blocks import Mlp
from feat2gs.init.dust3r.config import Dust3rConfig
from feat2gs.init.dust3r.dpt import DPTAdapter


def reg_dense_depth(xyz: torch.Tensor, mode: tuple[str, float, float]) -> torch.Tensor:
    """xyz [..., 3] -> 3D points: direction times a function of the norm."""
    name, vmin, vmax = mode
    d = xyz.norm(dim=-1, keepdim=True)
    xyz = xyz / d.clip(min=1e-8)
    if name == "linear":
        return xyz * d.clip(min=vmin, max=vmax)
    if name == "square":
        return xyz * d.square()
    return xyz * torch.expm1(d)  # 'exp'


def reg_dense_conf(x: torch.Tensor, mode: tuple[str, float, float]) -> torch.Tensor:
    name, vmin, vmax = mode
    if name == "exp":
        return vmin + x.exp().clip(max=vmax - vmin)
    return (vmax - vmin) * torch.sigmoid(x) + vmin  # 'sigmoid'


def postprocess(out: torch.Tensor, cfg: Dust3rConfig) -> dict[str, torch.Tensor]:
    """Raw head output [B, C, H, W] -> dict of [B, H, W, ...] maps."""
    fmap = out.permute(0, 2, 3, 1)
    res = {"pts3d": reg_dense_depth(fmap[..., 0:3], cfg.depth_mode), "conf": reg_dense_conf(fmap[..., 3], cfg.conf_mode)}
    if cfg.has_desc:
        n = cfg.local_feat_dim
        desc = fmap[..., 4:4 + n]
        res["desc"] = desc / desc.norm(dim=-1, keepdim=True)
        res["desc_conf"] = reg_dense_conf(fmap[..., 4 + n], cfg.effective_desc_conf_mode)
    return res


class PixelwiseHead(nn.Module):
    """DUSt3R ``dpt`` head, and MASt3R ``catmlp+dpt`` (DPT for pts3d+conf, token MLP + pixel_shuffle for desc)."""

    def __init__(self, cfg: Dust3rConfig):
        super().__init__()
        self.cfg = cfg
        p = cfg.patch_size
        in_dims = [cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.dec_embed_dim, cfg.dec_embed_dim]
        self.dpt = DPTAdapter(in_dims, cfg.dpt_hooks, cfg.dpt_layer_dims, cfg.dpt_feature_dim, cfg.last_dim,
                              num_channels=4, patch_size=p)
        if cfg.has_desc:
            in_dim = cfg.enc_embed_dim + cfg.dec_embed_dim
            out_dim = (cfg.local_feat_dim + 1) * p * p  # +1: desc_conf (two_confs)
            self.head_local_features = Mlp(in_dim, int(cfg.local_feat_hidden_factor * in_dim), out_dim)

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        """tokens: [encoder output, decoder block 1..L outputs (last one dec_norm'ed)] -> raw [B, C, H, W]."""
        out = self.dpt(tokens, image_size)
        if not self.cfg.has_desc:
            return out
        p = self.cfg.patch_size
        h, w = image_size[0] // p, image_size[1] // p
        local = self.head_local_features(torch.cat((tokens[0], tokens[-1]), dim=-1))  # [B, N, (n+1)*p*p]
        local = local.transpose(1, 2).reshape(local.shape[0], -1, h, w)
        local = F.pixel_shuffle(local, p)  # [B, n+1, H, W]
        return torch.cat((out, local), dim=1)
