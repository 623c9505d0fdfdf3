"""Load a registered backbone (weights located first, never downloaded) and extract its token grids.

The network comes from its :class:`~feat2gs.features.backbones.config.Family`: built with its library's
architecture and a local weights file found by :mod:`.weights` (the lookup runs before anything is built), or with
a seeded random init when ``random_weights`` is set (for tests; never reported as pretrained).
"""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext

import torch
from tqdm import tqdm

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig, get_family, load_backbone_config
from feat2gs.features.backbones.grid import centre_pad, map_grid_to_image, output_grid_size
from feat2gs.features.backbones.weights import resolve_weights
from feat2gs.runinfo import autocast_dtype

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 4 * 512 * 512  # padded input pixels per forward pass (the batch memory cap)


class LoadedBackbone:
    """A network plus its config; :meth:`grid` turns a normalised, padded [N, 3, Hp, Wp] batch into [N, C, gh, gw]."""

    def __init__(self, cfg: BackboneConfig, module: torch.nn.Module, origin: str, random_weights: bool):
        self.cfg, self.module, self.origin, self.random_weights = cfg, module.eval(), origin, random_weights
        self.family = get_family(cfg.family)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def grid(self, x: torch.Tensor, first: int = 0, seed: int = 0) -> torch.Tensor:
        """Normalised, padded [n, 3, Hp, Wp] -> [n, C, gh, gw]; ``first``/``seed``: DIFT's per-image noise."""
        return self.family.grid(self.module, x, self.cfg, first, seed)


_CACHE: dict[tuple, LoadedBackbone] = {}


def clear_model_cache() -> None:
    _CACHE.clear()


def load_backbone(cfg: BackboneConfig | str, source: str | os.PathLike | None = None, random_weights: bool = False,
                  seed: int = 0, device: torch.device | str = "cpu") -> LoadedBackbone:
    """The network of ``cfg``; weights are located first (BackboneWeightsError if absent), then the model is built.

    The last loaded model is kept, so extracting several scenes in one process builds it once.
    """
    cfg = load_backbone_config(cfg) if isinstance(cfg, str) else cfg
    build = get_family(cfg.family).build
    weights = None if random_weights else resolve_weights(cfg, source)
    key = (repr(cfg), str(weights), random_weights, seed if random_weights else None, str(device))
    if key in _CACHE:
        return _CACHE[key]
    _CACHE.clear()
    if random_weights:
        log.warning("backbone %s: using RANDOM weights (random_weights=True, seed %d); results are not pretrained",
                    cfg.name, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build(cfg, None)
    else:
        module = build(cfg, weights)
    loaded = LoadedBackbone(cfg, module.to(device), "random" if random_weights else str(weights), random_weights)
    _CACHE[key] = loaded
    return loaded


@torch.no_grad()
def run_backbone(loaded: LoadedBackbone, images: torch.Tensor, pixel_budget: int = DEFAULT_MAX_PIXELS, seed: int = 0,
                 autocast: str | None = None, progress: bool = False) -> torch.Tensor:
    """images [N, H, W, 3] in [0, 1] -> [N, round(H/stride), round(W/stride), C] float32 on the CPU.

    Normalises with the config's statistics, centre-pads with zeros to a multiple of the network stride, runs the
    network in chunks of at most ``pixel_budget`` padded pixels (at least one image), and maps each grid back onto
    the unpadded pixels (:func:`grid.map_grid_to_image`). A whole-set family (VGGT) sees all views at once after its
    own preprocessing. ``autocast`` (bf16 | fp16) applies on CUDA only; ``progress`` shows a bar over the chunks.
    """
    cfg = loaded.cfg
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ConfigError(f"backbone {cfg.name!r} expects images [N, H, W, 3], got {tuple(images.shape)}")
    dtype = autocast_dtype(autocast)
    n, h, w, _ = images.shape
    mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1)
    device = loaded.device
    amp = torch.autocast("cuda", dtype=dtype) if dtype is not None and device.type == "cuda" else nullcontext()
    if loaded.family.whole_set is not None:
        x = ((images.float().permute(0, 3, 1, 2) - mean) / std).to(device)
        with amp:
            grid = loaded.family.whole_set(loaded.module, x, cfg)
        return grid.float().permute(0, 2, 3, 1).cpu().contiguous()
    out_size = output_grid_size(h, w, cfg.stride)
    hp, wp = h + (-h) % cfg.patch, w + (-w) % cfg.patch
    chunk = max(1, pixel_budget // (hp * wp))
    outs = []
    for start in tqdm(range(0, n, chunk), desc=f"{cfg.name} features", unit="batch", disable=not progress):
        x = images[start:start + chunk].float().permute(0, 3, 1, 2)
        x = ((x - mean) / std).to(device)
        x, pad = centre_pad(x, cfg.patch)
        with amp:
            grid = loaded.grid(x, first=start, seed=seed)
        grid = grid.float()
        expected = (hp // cfg.patch, wp // cfg.patch)
        if tuple(grid.shape[-2:]) != expected or grid.shape[1] != cfg.channels:
            raise RuntimeError(f"backbone {cfg.name!r} returned a {tuple(grid.shape[1:])} grid, expected "
                               f"({cfg.channels}, {expected[0]}, {expected[1]})")
        grid = map_grid_to_image(grid, (hp, wp), pad, (h, w), out_size)
        outs.append(grid.permute(0, 2, 3, 1).cpu())
    return torch.cat(outs).contiguous()
