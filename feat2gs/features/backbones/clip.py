"""open_clip backbones (CLIP): the vision tower's last resblock tokens through ``ln_post`` and the projection.

Family ``clip_projected``: patch tokens (class token dropped) of the projected last resblock output, the
positional embedding resampled to the token grid; OpenAI's TorchScript files and open_clip's state dicts load.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig, Family, register_family
from feat2gs.features.backbones.weights import BackboneWeightsError


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


def _clip_check(cfg: BackboneConfig) -> str | None:
    if not cfg.pretrained_tag:
        return "open_clip backbones need pretrained_tag"
    return None if cfg.patch == cfg.stride else "ViT backbones return one cell per patch: stride must equal patch"


register_family(Family("clip_projected", "open_clip", _build_open_clip, check=_clip_check,
                       grid=lambda module, x, cfg, first, seed: _clip_tokens(module, x)))
