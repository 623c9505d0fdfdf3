"""Build the implemented backbones and extract their token grids: timm, open_clip (here); transformers MAE,
segment_anything SAM, MiDaS (:mod:`.extra`); diffusers DIFT (:mod:`.dift`); our VGGT (:mod:`.vggt`); RADIO through
NVIDIA's code (:mod:`.radio`).

Every model is built with its library's architecture and *no* download: pretrained weights come from a local file
found by :mod:`weights` (the lookup runs before anything is built), or the network keeps a seeded random init when
``random_weights`` is set (for tests; never reported as pretrained).
"""

from __future__ import annotations

import logging
import os
import pickle
from contextlib import nullcontext
from pathlib import Path

import torch

from feat2gs.errors import ConfigError
from feat2gs.features.backbones import dift, extra, radio, vggt
from feat2gs.features.backbones.config import BackboneConfig, load_backbone_config
from feat2gs.features.backbones.grid import (
    centre_pad,
    map_grid_to_image,
    output_grid_size,
)
from feat2gs.features.backbones.weights import BackboneWeightsError, resolve_weights

log = logging.getLogger(__name__)

MAX_PIXELS_ENV = "FEAT2GS_BACKBONE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 4 * 512 * 512  # padded input pixels per forward pass (the batch memory cap)


class BackboneNotImplementedError(ConfigError):
    """The backbone has a config but no loader yet."""


def require_implemented(cfg: BackboneConfig) -> None:
    if not cfg.implemented:
        raise BackboneNotImplementedError(
            f"backbone {cfg.name!r} is not implemented yet (needs {cfg.requires}; protocol source: "
            f"{cfg.weights.get('protocol_source')}); it is never replaced by another model")


class LoadedBackbone:
    """A network plus how to turn a normalised, padded [N, 3, Hp, Wp] batch into its [N, C, gh, gw] grid."""

    def __init__(self, cfg: BackboneConfig, module: torch.nn.Module, origin: str, random_weights: bool):
        self.cfg, self.module, self.origin, self.random_weights = cfg, module.eval(), origin, random_weights

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def grid(self, x: torch.Tensor, first: int = 0, seed: int = 0) -> torch.Tensor:
        """Normalised, padded [n, 3, Hp, Wp] -> [n, C, gh, gw]; ``first``/``seed``: DIFT's per-image noise."""
        if self.cfg.output == "vit_tokens":
            out = self.module.forward_intermediates(x, indices=[self.cfg.block], norm=False, output_fmt="NCHW",
                                                    intermediates_only=True)
            return out[-1]
        if self.cfg.output == "convnext_last_stage":
            return self.module.forward_features(x)
        if self.cfg.output == "clip_projected":
            return _clip_tokens(self.module, x)
        if self.cfg.output == "mae_hidden_states":
            return extra.mae_grid(self.module, x, self.cfg.block)
        if self.cfg.output == "sam_encoder_blocks":
            return extra.sam_grid(self.module, x, self.cfg.block)
        if self.cfg.output == "dift_up_block":
            return self.module(x, first=first, seed=seed)
        if self.cfg.output == "radio_features":
            return self.module(x)
        raise ConfigError(f"backbone {self.cfg.name!r}: unknown output kind {self.cfg.output!r}")


# ------------------------------------------------------------------------------------------------------------------
# timm


def _build_timm(cfg: BackboneConfig, weights: Path | None) -> torch.nn.Module:
    import timm

    kwargs = {"dynamic_img_size": True} if cfg.output == "vit_tokens" else {}
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
    if cfg.output == "vit_tokens" and not (0 <= cfg.block < len(model.blocks)):
        raise ConfigError(f"backbone {cfg.name!r}: block {cfg.block} out of range (0..{len(model.blocks) - 1})")
    return model


# ------------------------------------------------------------------------------------------------------------------
# open_clip


def _read_clip_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from open_clip.factory import load_state_dict
    from safetensors import SafetensorError

    unreadable = (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError, SafetensorError)
    try:
        return load_state_dict(str(path), weights_only=True)
    except unreadable as first:  # OpenAI's original files are TorchScript archives
        try:
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        except unreadable:
            raise BackboneWeightsError(f"cannot read {path}: {str(first).splitlines()[0][:300]}") from first
        return dict(sd)


def _build_open_clip(cfg: BackboneConfig, weights: Path | None) -> torch.nn.Module:
    import open_clip
    from open_clip.model import _build_vision_tower

    model_cfg = open_clip.get_model_config(cfg.arch)
    if model_cfg is None:
        raise ConfigError(f"backbone {cfg.name!r}: open_clip has no model {cfg.arch!r}")
    visual = _build_vision_tower(model_cfg["embed_dim"], model_cfg["vision_cfg"], quick_gelu=cfg.quick_gelu)
    if visual.proj is None or visual.proj.shape[1] != cfg.channels:
        raise ConfigError(f"backbone {cfg.name!r}: {cfg.arch} does not project to {cfg.channels} channels")
    if weights is not None:
        sd = _read_clip_state_dict(weights)
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
        try:
            visual.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise BackboneWeightsError(f"the weights in {weights} do not fit open_clip {cfg.arch} (visual tower) for "
                                       f"backbone {cfg.name!r}: {str(exc).splitlines()[0][:300]} ...") from exc
    return visual


def _clip_tokens(visual: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Last resblock tokens -> ln_post -> @ proj, patch tokens as [N, C, gh, gw]; positions resampled to the grid."""
    from timm.layers import resample_abs_pos_embed

    tokens = visual.conv1(x)
    n, _, gh, gw = tokens.shape
    tokens = tokens.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(tokens.dtype).reshape(1, 1, -1).expand(n, -1, -1)
    tokens = torch.cat([cls, tokens], dim=1)
    pos = visual.positional_embedding.to(tokens.dtype)[None]
    old = tuple(visual.grid_size)
    if (gh, gw) != old:
        pos = resample_abs_pos_embed(pos, (gh, gw), old_size=old, num_prefix_tokens=1)
    tokens = visual.ln_pre(tokens + pos)  # patch dropout is inactive in eval mode
    tokens = visual.transformer(tokens)
    tokens = visual.ln_post(tokens) @ visual.proj
    return tokens[:, 1:].transpose(1, 2).reshape(n, -1, gh, gw)


# ------------------------------------------------------------------------------------------------------------------

_BUILDERS = {"timm": _build_timm, "open_clip": _build_open_clip, "transformers": extra.build_mae,
             "segment_anything": extra.build_sam, "diffusers": dift.build_dift, "feat2gs": vggt.build_vggt,
             "torch_hub": radio.build_radio}
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
_CACHE: dict[tuple, LoadedBackbone] = {}


def clear_model_cache() -> None:
    _CACHE.clear()


def load_backbone(cfg: BackboneConfig | str, source: str | os.PathLike | None = None, random_weights: bool = False,
                  seed: int = 0, device: torch.device | str = "cpu") -> LoadedBackbone:
    """The network of ``cfg``; weights are located first (BackboneWeightsError if absent), then the model is built.

    The last loaded model is kept, so extracting several scenes in one process builds it once.
    """
    cfg = load_backbone_config(cfg) if isinstance(cfg, str) else cfg
    require_implemented(cfg)
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
            module = _BUILDERS[cfg.library](cfg, None)
    else:
        module = _BUILDERS[cfg.library](cfg, weights)
    loaded = LoadedBackbone(cfg, module.to(device), "random" if random_weights else str(weights), random_weights)
    _CACHE[key] = loaded
    return loaded


def max_pixels() -> int:
    value = os.environ.get(MAX_PIXELS_ENV)
    try:
        return int(value) if value else DEFAULT_MAX_PIXELS
    except ValueError as exc:
        raise ConfigError(f"${MAX_PIXELS_ENV} must be an integer, got {value!r}") from exc


def autocast_dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    if name not in AUTOCAST:
        raise ConfigError(f"autocast must be one of {sorted(AUTOCAST)} or unset, got {name!r}")
    return AUTOCAST[name]


@torch.no_grad()
def run_backbone(loaded: LoadedBackbone, images: torch.Tensor, pixel_budget: int | None = None, seed: int = 0,
                 autocast: str | None = None) -> torch.Tensor:
    """images [N, H, W, 3] in [0, 1] -> [N, round(H/stride), round(W/stride), C] float32 on the CPU.

    Normalises with the config's statistics, centre-pads with zeros to a multiple of the network stride, runs the
    network in chunks of at most ``pixel_budget`` padded pixels (at least one image), and maps each grid back onto
    the unpadded pixels (:func:`grid.map_grid_to_image`). VGGT sees all views at once (its global attention couples
    them) after its own preprocessing (:func:`vggt.extract_vggt`). ``autocast`` (bf16 | fp16) applies on CUDA only.
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
    if cfg.padding == "crop518":
        x = ((images.float().permute(0, 3, 1, 2) - mean) / std).to(device)
        with amp:
            grid = vggt.extract_vggt(loaded.module, x, cfg.stride)
        return grid.float().permute(0, 2, 3, 1).cpu().contiguous()
    out_size = output_grid_size(h, w, cfg.stride)
    hp, wp = h + (-h) % cfg.patch, w + (-w) % cfg.patch
    chunk = max(1, (pixel_budget or max_pixels()) // (hp * wp))
    outs = []
    for start in range(0, n, chunk):
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
