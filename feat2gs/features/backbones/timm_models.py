"""timm backbones: ViT token grids (DINO, DINOv2, DeiT-III, SigLIP, MiDaS) and the ConvNeXt last stage.

Families ``vit_tokens`` (block ``block`` output, patch tokens, no final norm, positional embedding resampled to
the grid; ``checkpoint_prefix`` reads checkpoints whose keys sit under a prefix, e.g. MiDaS ``pretrained.model.``)
and ``convnext_last_stage`` (stride 32, resampled to the config's stride by the grid mapping).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from feat2gs.errors import ConfigError
from feat2gs.features.backbones import extra
from feat2gs.features.backbones.config import BackboneConfig, Family, register_family
from feat2gs.features.backbones.weights import BackboneWeightsError


def _build_timm(cfg: BackboneConfig, weights: Path | None) -> torch.nn.Module:
    import timm

    kwargs = {"dynamic_img_size": True} if cfg.family == "vit_tokens" else {}
    if weights is None:
        model = timm.create_model(cfg.arch, pretrained=False, **kwargs)
    elif cfg.checkpoint_prefix:  # e.g. MiDaS DPT_Large: its ViT under ``pretrained.model.`` with timm's names
        model = timm.create_model(cfg.arch, pretrained=False, **kwargs)
        extra.load_prefixed_timm_weights(model, cfg, weights)
    else:
        try:  # timm applies its own checkpoint filter (original DINO/DINOv2/DeiT/ConvNeXt files load too)
            model = timm.create_model(cfg.arch, pretrained=True, **kwargs,
                                      pretrained_cfg_overlay={"file": str(weights), "source": "", "hf_hub_id": None,
                                                              "url": None})
        except (RuntimeError, KeyError, ValueError, OSError, AssertionError, pickle.UnpicklingError) as exc:
            raise BackboneWeightsError(f"cannot load {weights} into timm {cfg.arch} for backbone {cfg.name!r}: "
                                       f"{str(exc).splitlines()[0][:300]}") from exc
    if cfg.family == "vit_tokens" and not (0 <= cfg.block < len(model.blocks)):
        raise ConfigError(f"backbone {cfg.name!r}: block {cfg.block} out of range (0..{len(model.blocks) - 1})")
    return model


def _vit_grid(module: torch.nn.Module, x: torch.Tensor, cfg: BackboneConfig, first: int, seed: int) -> torch.Tensor:
    out = module.forward_intermediates(x, indices=[cfg.block], norm=False, output_fmt="NCHW", intermediates_only=True)
    return out[-1]


def _vit_check(cfg: BackboneConfig) -> str | None:
    return None if cfg.patch == cfg.stride else "ViT backbones return one cell per patch: stride must equal patch"


def _convnext_check(cfg: BackboneConfig) -> str | None:
    if cfg.checkpoint_prefix is not None:
        return "checkpoint_prefix is only used by vit_tokens"
    return None if cfg.patch % cfg.stride == 0 else "convnext: patch (network stride) must be a multiple of stride"


register_family(Family("vit_tokens", "timm", _build_timm, grid=_vit_grid, needs_block=True, check=_vit_check))
register_family(Family("convnext_last_stage", "timm", _build_timm, check=_convnext_check,
                       grid=lambda module, x, cfg, first, seed: module.forward_features(x)))
