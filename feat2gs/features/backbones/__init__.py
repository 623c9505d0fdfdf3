"""Backbone zoo (protocol sections 3.8-3.10): registered backbones become features of the same name.

* :mod:`.config`: :class:`BackboneConfig` + :class:`Family` and their registries; :mod:`.zoo`: the built-in ones.
* :func:`extract_backbone` runs one backbone on ``FeatureInputs`` -> the native token grid [N, h, w, C], with cells
  tiling the unpadded image (patch-14 grids are mapped back, see :mod:`.grid`).
* :func:`backbone_status` says whether weights are on this machine, and where it looked (no network).
"""

from __future__ import annotations

import functools

import torch

from feat2gs.features.backbones.config import (
    BackboneConfig,
    Family,
    backbone_names,
    get_family,
    list_backbone_configs,
    load_backbone_config,
    register_backbone,
    register_family,
)
from feat2gs.features.backbones.grid import centre_pad, map_grid_to_image, output_grid_size
from feat2gs.features.backbones.models import LoadedBackbone, clear_model_cache, load_backbone, run_backbone
from feat2gs.features.backbones.weights import BackboneWeightsError, download_hint, find_weights, resolve_weights
from feat2gs.features.cache import file_identity
from feat2gs.features.registry import FeatureInputs, FeatureSpec
from feat2gs.runinfo import resolve_device

__all__ = [
    "BackboneConfig", "BackboneWeightsError", "Family", "LoadedBackbone", "backbone_feature", "backbone_names",
    "backbone_status", "centre_pad", "clear_model_cache", "download_hint", "extract_backbone", "find_weights",
    "get_family", "list_backbone_configs", "load_backbone", "load_backbone_config", "map_grid_to_image",
    "output_grid_size", "register_backbone", "register_family", "resolve_weights", "run_backbone",
]


def extract_backbone(name: str, inputs: FeatureInputs, device: torch.device | str | None = None) -> torch.Tensor:
    """``inputs.images`` [N, H, W, 3] in [0, 1] -> [N, round(H/stride), round(W/stride), C] float32 (CPU).

    Weights: ``inputs.checkpoints[name]`` (file, directory or cached hub id), else the local caches; missing
    weights raise BackboneWeightsError before anything is built. ``inputs.random_weights``: seeded random init.
    """
    cfg = load_backbone_config(name)
    loaded = load_backbone(cfg, inputs.checkpoints.get(name), random_weights=inputs.random_weights,
                           seed=inputs.seed, device=device if device is not None else resolve_device(inputs.device))
    return run_backbone(loaded, inputs.images, pixel_budget=inputs.max_pixels, seed=inputs.seed,
                        autocast=inputs.autocast, progress=inputs.progress)


def backbone_cache_identity(name: str, inputs: FeatureInputs) -> str:
    """Config, weights file (or random seed), DIFT noise seed and autocast: what the grid depends on besides images."""
    cfg = load_backbone_config(name)
    if inputs.random_weights:
        weights = f"random:{inputs.seed}"
    else:
        weights = file_identity(resolve_weights(cfg, inputs.checkpoints.get(name)))
    noise = f"noise seed {inputs.seed}" if cfg.family == "dift_up_block" else ""
    return "|".join([repr(cfg), weights, noise, str(inputs.autocast)])


def backbone_status(name: str) -> tuple[bool, list[str]]:
    """-> (weights and everything they need are on this machine, places looked at / parts missing). No network."""
    cfg = load_backbone_config(name)
    path, looked = find_weights(cfg, None)
    if path is None:
        return False, looked
    missing = get_family(cfg.family).missing_parts(cfg, path)
    return not missing, [str(path)] + [f"missing {m}" for m in missing]


def backbone_feature(cfg: BackboneConfig) -> FeatureSpec:
    """The feature a registered backbone provides (same name)."""
    return FeatureSpec(cfg.name, cfg.channels, cfg.stride, f"{cfg.library} {cfg.arch}: {cfg.layer}",
                       functools.partial(extract_backbone, cfg.name), needs_weights=True,
                       cache_identity=functools.partial(backbone_cache_identity, cfg.name), kind="zoo")
