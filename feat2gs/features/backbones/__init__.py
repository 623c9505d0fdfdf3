"""Backbone zoo: ``configs/backbone/<name>.yaml`` -> registered features (protocol sections 3.8-3.10).

* :func:`register_backbones` registers every config as a feature (unimplemented ones raise a clear
  :class:`BackboneNotImplementedError` when used; nothing is ever substituted).
* :func:`extract_backbone` runs one backbone on ``FeatureInputs`` -> the native token grid [N, h, w, C], with cells
  tiling the unpadded image (patch-14 grids are mapped back, see :mod:`.grid`).
* :func:`backbone_status` says whether weights are on this machine, and where it looked (no network).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from feat2gs.features.backbones import dift, radio
from feat2gs.features.backbones.config import (
    BackboneConfig,
    backbone_names,
    config_dir,
    list_backbone_configs,
    load_backbone_config,
    parse_backbone_config,
)
from feat2gs.features.backbones.grid import (
    centre_pad,
    map_grid_to_image,
    output_grid_size,
)
from feat2gs.features.backbones.models import (
    BackboneNotImplementedError,
    LoadedBackbone,
    clear_model_cache,
    load_backbone,
    run_backbone,
)
from feat2gs.features.backbones.weights import (
    BackboneWeightsError,
    download_hint,
    find_weights,
    resolve_weights,
)
from feat2gs.features.cache import file_identity
from feat2gs.features.registry import FeatureInputs, FeatureSpec
from feat2gs.runinfo import resolve_device

__all__ = [
    "BackboneConfig", "BackboneNotImplementedError", "BackboneWeightsError", "LoadedBackbone", "backbone_names",
    "backbone_status", "centre_pad", "clear_model_cache", "config_dir", "download_hint", "extract_backbone",
    "find_weights", "list_backbone_configs", "missing_parts", "load_backbone", "load_backbone_config", "map_grid_to_image",
    "output_grid_size", "parse_backbone_config", "register_backbones", "resolve_weights", "run_backbone",
]


def extract_backbone(name: str, inputs: FeatureInputs, device: torch.device | str | None = None) -> torch.Tensor:
    """``inputs.images`` [N, H, W, 3] in [0, 1] -> [N, round(H/stride), round(W/stride), C] float32 (CPU).

    Weights: ``inputs.checkpoints[name]`` (file, directory or cached hub id), else the local caches; missing
    weights raise BackboneWeightsError before anything is built. ``inputs.random_weights``: seeded random init.
    """
    cfg = load_backbone_config(name)
    loaded = load_backbone(cfg, inputs.checkpoints.get(name), random_weights=inputs.random_weights,
                           seed=inputs.seed, device=device if device is not None else resolve_device(inputs.device))
    return run_backbone(loaded, inputs.images, seed=inputs.seed, autocast=inputs.autocast)


def backbone_cache_identity(name: str, inputs: FeatureInputs) -> str:
    """Config, weights file (or random seed), DIFT noise seed and autocast: what the grid depends on besides images."""
    cfg = load_backbone_config(name)
    if inputs.random_weights:
        weights = f"random:{inputs.seed}"
    else:
        weights = file_identity(resolve_weights(cfg, inputs.checkpoints.get(name)))
    noise = f"noise seed {inputs.seed}" if cfg.output == "dift_up_block" else ""
    return "|".join([repr(dataclasses.replace(cfg, path=None)), weights, noise, str(inputs.autocast)])


def backbone_status(name: str) -> tuple[bool, bool, list[str]]:
    """-> (implemented, weights available locally, places looked at). Never touches the network."""
    cfg = load_backbone_config(name)
    if not cfg.implemented:
        return False, False, []
    path, looked = find_weights(cfg, None)
    if path is None:
        return True, False, looked
    missing = missing_parts(cfg, path)
    return True, not missing, [str(path)] + [f"missing {m}" for m in missing]


def missing_parts(cfg: BackboneConfig, weights: Path) -> list[str]:
    """What else a found weights file needs: RADIO's code checkout, the other Stable Diffusion components."""
    if cfg.library == "torch_hub":
        hubconf = radio.hub_repo_dir(cfg) / "hubconf.py"
        return [] if hubconf.is_file() else [str(hubconf)]
    if cfg.library == "diffusers":
        root = dift.snapshot_root(weights)
        return [f"{root / c}/" for c in dift.missing_components(root)]
    return []


def _description(cfg: BackboneConfig) -> str:
    if not cfg.implemented:
        return f"NOT IMPLEMENTED (needs {cfg.requires}): {cfg.layer}"
    return f"{cfg.library} {cfg.arch}: {cfg.layer}"


_registered = False


def register_backbones(directory: str | Path | None = None) -> list[str]:
    """Register every ``configs/backbone/*.yaml`` as a feature (once; names already registered, e.g. the
    dust3r/mast3r encoders, are left alone). Returns the names registered by this call."""
    global _registered
    from feat2gs.features import registry

    if _registered:
        return []
    _registered = True
    done = []
    for cfg in list_backbone_configs(directory):
        if cfg.name in registry._REGISTRY:
            continue
        registry.register_feature(FeatureSpec(cfg.name, cfg.channels, cfg.stride, _description(cfg),
                                              functools.partial(extract_backbone, cfg.name), needs_weights=True,
                                              cache_identity=functools.partial(backbone_cache_identity, cfg.name)))
        done.append(cfg.name)
    return done
