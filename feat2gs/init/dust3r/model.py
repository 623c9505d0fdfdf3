"""``Dust3rNet``: the asymmetric two-view CroCo network of DUSt3R / MASt3R (state_dict-compatible with the
official checkpoints: same module names, shapes and the ``layer_rn`` aliases)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from feat2gs.errors import ConfigError
from feat2gs.init.dust3r.blocks import (
    DecoderBlock,
    EncoderBlock,
    PatchEmbed,
    layer_norm,
)
from feat2gs.init.dust3r.config import Dust3rConfig
from feat2gs.init.dust3r.heads import PixelwiseHead, postprocess

View = dict[str, Any]  # {"img": [B,3,H,W] in [-1,1], "true_shape": [B,2] (H,W), optional}


def autocast_context(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` (bf16/fp16) on ``device``; a no-op context when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=dtype)


class Dust3rNet(nn.Module):
    """DUSt3R (``cfg.kind='dust3r'``) or MASt3R (``'mast3r'``) two-view network.

    ``forward(view1, view2)`` returns ``(pred1, pred2)``:
      pred1: pts3d [B,H,W,3] (view1 frame), conf [B,H,W], (MASt3R) desc [B,H,W,n], desc_conf [B,H,W],
             feat [B,h,w,enc_dim] (encoder output after enc_norm), decfeat [B,h,w,dec_dim] (last decoder, normed)
      pred2: pts3d_in_other_view (view2's points in view1's frame) and the same other keys.
    Heads run in float32 even under autocast.
    """

    def __init__(self, cfg: Dust3rConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.dec_embed_dim))  # training only; kept for the state_dict
        self.patch_embed = PatchEmbed(c.patch_size, c.enc_embed_dim, manyar=c.manyar)
        self.enc_blocks = nn.ModuleList(
            [EncoderBlock(c.enc_embed_dim, c.enc_num_heads, c.mlp_ratio, c.rope_freq) for _ in range(c.enc_depth)])
        self.enc_norm = layer_norm(c.enc_embed_dim)
        self.decoder_embed = nn.Linear(c.enc_embed_dim, c.dec_embed_dim)
        self.dec_blocks = nn.ModuleList(
            [DecoderBlock(c.dec_embed_dim, c.dec_num_heads, c.mlp_ratio, c.rope_freq) for _ in range(c.dec_depth)])
        self.dec_norm = layer_norm(c.dec_embed_dim)
        self.dec_blocks2 = nn.ModuleList(
            [DecoderBlock(c.dec_embed_dim, c.dec_num_heads, c.mlp_ratio, c.rope_freq) for _ in range(c.dec_depth)])
        self.downstream_head1 = PixelwiseHead(c)
        self.downstream_head2 = PixelwiseHead(c)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random init (xavier-uniform Linear, zero bias, LayerNorm (1, 0), default convs). Never pretrained."""
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ----------------------------------------------------------------------------------------------------------
    def encode(self, img: torch.Tensor, true_shape: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """img [B,3,H,W] -> (tokens [B,N,enc_dim] after enc_norm, positions [B,N,2] int64 (y, x))."""
        x, pos = self.patch_embed(img, true_shape)
        for blk in self.enc_blocks:
            x = blk(x, pos)
        return self.enc_norm(x), pos

    @torch.no_grad()
    def encoder_features(self, img: torch.Tensor, true_shape: torch.Tensor | None = None,
                         autocast: torch.dtype | None = None) -> torch.Tensor:
        """Feat2GS ``feat``: encoder output after enc_norm as a grid [B, H/16, W/16, enc_dim] (float32)."""
        ts = self._true_shape({"img": img, "true_shape": true_shape})
        with autocast_context(img.device, autocast):
            tokens, _ = self.encode(img, ts)
        return self._grid(tokens.float(), ts)

    def decode(self, f1: torch.Tensor, pos1: torch.Tensor, f2: torch.Tensor, pos2: torch.Tensor
               ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Both decoders in lockstep. Returns per view ``[encoder tokens, block 1 .. block L (dec_norm'ed)]``."""
        out1, out2 = [f1], [f2]
        x1, x2 = self.decoder_embed(f1), self.decoder_embed(f2)
        for blk1, blk2 in zip(self.dec_blocks, self.dec_blocks2):
            x1, x2 = blk1(x1, x2, pos1, pos2), blk2(x2, x1, pos2, pos1)
            out1.append(x1)
            out2.append(x2)
        out1[-1] = self.dec_norm(out1[-1])
        out2[-1] = self.dec_norm(out2[-1])
        return out1, out2

    # ----------------------------------------------------------------------------------------------------------
    def _true_shape(self, view: View) -> torch.Tensor:
        img = view["img"]
        if img.ndim != 4 or img.shape[1] != 3:
            raise ConfigError(f"view['img'] must be [B, 3, H, W], got {tuple(img.shape)}")
        ts = view.get("true_shape")
        b, _, h, w = img.shape
        if ts is None:
            return torch.tensor([[h, w]], dtype=torch.int64, device=img.device).expand(b, 2)
        ts = torch.as_tensor(ts, device=img.device).reshape(-1, 2).to(torch.int64)
        if ts.shape[0] != b:
            raise ConfigError(f"true_shape has {ts.shape[0]} rows for a batch of {b} images")
        if not self.cfg.manyar and not bool(((ts[:, 0] == h) & (ts[:, 1] == w)).all()):
            raise ConfigError(f"true_shape {ts.tolist()} does not match the image tensor {h}x{w} (HxW); portrait "
                              "images are fed natively (not transposed) to the inference network")
        return ts

    def _grid(self, tokens: torch.Tensor, true_shape: torch.Tensor) -> torch.Tensor:
        # like Feat2GS reshape_feature: the first sample's true shape gives the grid of the whole batch
        p = self.cfg.patch_size
        h, w = int(true_shape[0, 0]) // p, int(true_shape[0, 1]) // p
        return tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])

    def _head(self, which: int, tokens: list[torch.Tensor], img: torch.Tensor, true_shape: torch.Tensor
              ) -> dict[str, torch.Tensor]:
        head = self.downstream_head1 if which == 1 else self.downstream_head2
        h, w = img.shape[-2:]
        if not (self.cfg.manyar and self.cfg.landscape_only):
            return postprocess(head(tokens, (h, w)), self.cfg)
        # training variant: run in the true orientation, transpose portrait results back to landscape
        portrait = true_shape[:, 0] > true_shape[:, 1]
        raw = torch.empty((img.shape[0], head.dpt.head[-1].out_channels + (
            (self.cfg.local_feat_dim + 1) if self.cfg.has_desc else 0), h, w), device=img.device)
        for mask, size, transpose in ((~portrait, (h, w), False), (portrait, (w, h), True)):
            if mask.any():
                out = head([t[mask] for t in tokens], size)
                raw[mask] = out.transpose(-1, -2) if transpose else out
        return postprocess(raw, self.cfg)

    def forward(self, view1: View, view2: View, autocast: torch.dtype | None = None
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        img1, img2 = view1["img"], view2["img"]
        ts1, ts2 = self._true_shape(view1), self._true_shape(view2)
        with autocast_context(img1.device, autocast):
            if img1.shape == img2.shape:  # one encoder pass for both views
                f, pos = self.encode(torch.cat((img1, img2)), torch.cat((ts1, ts2)))
                f1, f2 = f.chunk(2)
                pos1, pos2 = pos.chunk(2)
            else:
                f1, pos1 = self.encode(img1, ts1)
                f2, pos2 = self.encode(img2, ts2)
            dec1, dec2 = self.decode(f1, pos1, f2, pos2)
        with torch.autocast(device_type=img1.device.type, enabled=False):
            dec1 = [t.float() for t in dec1]
            dec2 = [t.float() for t in dec2]
            res1 = self._head(1, dec1, img1, ts1)
            res2 = self._head(2, dec2, img2, ts2)
        res2["pts3d_in_other_view"] = res2.pop("pts3d")
        res1["feat"], res2["feat"] = self._grid(dec1[0], ts1), self._grid(dec2[0], ts2)
        res1["decfeat"], res2["decfeat"] = self._grid(dec1[-1], ts1), self._grid(dec2[-1], ts2)
        return res1, res2
