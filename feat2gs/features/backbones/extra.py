"""Backbones built with HF ``transformers`` (MAE), ``segment_anything`` (SAM) and MiDaS checkpoints read into timm.

* MAE (family ``mae_hidden_states``): ``ViTMAEModel`` with the official sizes; the token grid is
  ``hidden_states[block]`` (the output after ``block`` of L blocks, no final layernorm), with *no* masking and *no*
  patch shuffling (the encoder layers are run directly on the patch tokens in raster order) and the fixed 2D sin-cos
  position embedding regenerated for the actual token grid; the CLS token is dropped.
* SAM (family ``sam_encoder_blocks``): ``sam_model_registry[arch](checkpoint=None).image_encoder``; the output of
  image-encoder block ``block`` (before the neck), the absolute position embedding bicubic-resized to the token grid
  (no padding of the image to 1024; windowed attention pads the token grid internally).
* MiDaS (family ``vit_tokens`` with ``checkpoint_prefix``): the DPT_Large checkpoint's ``pretrained.model.*`` keys are
  timm's ViT names; :func:`load_prefixed_timm_weights` strips the prefix and loads them strictly.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig, Family, register_family
from feat2gs.features.backbones.weights import BackboneWeightsError

_UNREADABLE = (RuntimeError, OSError, ValueError, EOFError, KeyError, pickle.UnpicklingError)


def read_state_dict(path: Path, name: str) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` or torch pickle (``weights_only``) file -> flat state dict (``model``/``state_dict`` unwrapped)."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (safetensors raises its own error type)
        raise BackboneWeightsError(f"cannot read {path} for backbone {name!r}: {str(exc).splitlines()[0][:300]}") \
            from exc
    for key in ("model", "state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise BackboneWeightsError(f"{path} for backbone {name!r} holds no state dict")
    return sd


def strict_load(module: torch.nn.Module, sd: dict, path: Path, cfg: BackboneConfig, what: str,
                 optional: tuple[str, ...] = ()) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in sd and not k.startswith(optional)]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise BackboneWeightsError(
            f"the weights in {path} do not fit {what} for backbone {cfg.name!r}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatch {bad[:5]}")
    module.load_state_dict({k: v for k, v in sd.items()}, strict=not optional)


# ------------------------------------------------------------------------------------------------------------------
# MAE (transformers)

MAE_SIZES = {  # official ViTMAE encoder sizes (facebook/vit-mae-*/config.json)
    "facebook/vit-mae-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                  intermediate_size=3072),
    "facebook/vit-mae-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                   intermediate_size=4096),
    "facebook/vit-mae-huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                  intermediate_size=5120, patch_size=14),
}

# official (transformers 4.x / hub) encoder key names -> the ViTMAEModel names of the installed transformers
_MAE_LAYER = [("attention.attention.query.", "attention.q_proj."), ("attention.attention.key.", "attention.k_proj."),
              ("attention.attention.value.", "attention.v_proj."), ("attention.output.dense.", "attention.o_proj."),
              ("intermediate.dense.", "mlp.fc1."), ("output.dense.", "mlp.fc2.")]


def mae_sincos(gh: int, gw: int, dim: int, layout: str = "xy") -> torch.Tensor:
    """The MAE fixed 2D sin-cos table [gh*gw, dim] (raster order). ``layout="xy"`` is the original MAE code (first
    half encodes the column, second half the row: ``np.meshgrid(grid_w, grid_h)``); ``"yx"`` swaps the halves."""
    if dim % 4:
        raise ConfigError(f"MAE sin-cos position embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    ys, xs = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64),
                            indexing="ij")
    ex, ey = xs.flatten().outer(omega), ys.flatten().outer(omega)
    parts = [ex.sin(), ex.cos(), ey.sin(), ey.cos()] if layout == "xy" else [ey.sin(), ey.cos(), ex.sin(), ex.cos()]
    return torch.cat(parts, dim=1).float()


def mae_official_to_local(sd: dict[str, torch.Tensor], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """ViTMAEForPreTraining / ViTMAEModel checkpoint (official hub names, or already the installed names) ->
    the installed ``ViTMAEModel`` names; the decoder and anything else outside the encoder is dropped."""
    own = set(module.state_dict())
    out = {}
    for key, value in sd.items():
        k = key[len("vit."):] if key.startswith("vit.") else key
        m = re.match(r"^encoder\.layer\.(\d+)\.(.*)$", k)
        if m:
            rest = m.group(2)
            for old, new in _MAE_LAYER:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            if f"layers.{m.group(1)}.{rest}" in own:  # transformers >= 5 names (4.x keeps the official ones)
                k = f"layers.{m.group(1)}.{rest}"
        if k in own:
            out[k] = value
        elif not key.startswith("decoder."):
            out[k] = value  # reported as unexpected by the strict load
    return out


def mae_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    return model.layers if hasattr(model, "layers") else model.encoder.layer


def build_mae(cfg: BackboneConfig, weights: Path | None) -> torch.nn.Module:
    from transformers import ViTMAEConfig, ViTMAEModel

    if cfg.arch not in MAE_SIZES:
        raise ConfigError(f"backbone {cfg.name!r}: unknown MAE architecture {cfg.arch!r} ({sorted(MAE_SIZES)})")
    sizes = dict(patch_size=16, **MAE_SIZES[cfg.arch])
    config = ViTMAEConfig(image_size=224, mask_ratio=0.0, **sizes)
    model = ViTMAEModel(config)
    n_layers = len(mae_layers(model))
    if not (1 <= cfg.block <= n_layers):
        raise ConfigError(f"backbone {cfg.name!r}: block {cfg.block} out of range (1..{n_layers})")
    if sizes["hidden_size"] != cfg.channels or sizes["patch_size"] != cfg.patch:
        raise ConfigError(f"backbone {cfg.name!r}: {cfg.arch} has width {sizes['hidden_size']} / patch "
                          f"{sizes['patch_size']}, the config says {cfg.channels} / {cfg.patch}")
    model.feat2gs_pos_layout = "xy"
    if weights is not None:
        sd = mae_official_to_local(read_state_dict(weights, cfg.name), model)
        strict_load(model, sd, weights, cfg, f"transformers ViTMAEModel {cfg.arch}")
        # the checkpoint's (224-pixel) table says which sin-cos layout the weights were trained with
        table = model.embeddings.position_embeddings[0, 1:].detach().float()
        g = int(round(table.shape[0] ** 0.5))
        for layout in ("xy", "yx"):
            if torch.allclose(table, mae_sincos(g, g, table.shape[1], layout), atol=1e-4):
                model.feat2gs_pos_layout = layout
                break
        else:
            raise BackboneWeightsError(f"{weights}: the position embedding of backbone {cfg.name!r} is not the MAE "
                                       f"2D sin-cos table, so it cannot be regenerated for other grids")
    return model


def mae_grid(model: torch.nn.Module, x: torch.Tensor, block: int) -> torch.Tensor:
    """[N, 3, H, W] -> hidden_states[block] patch tokens [N, C, H/p, W/p]: identity token order, no masking."""
    emb = model.embeddings
    p = model.config.patch_size
    n, gh, gw = x.shape[0], x.shape[-2] // p, x.shape[-1] // p
    tokens = emb.patch_embeddings.projection(x).flatten(2).transpose(1, 2)  # raster order, never shuffled
    pos = mae_sincos(gh, gw, tokens.shape[-1], getattr(model, "feat2gs_pos_layout", "xy"))
    tokens = tokens + pos.to(tokens)[None]
    cls = (emb.cls_token + emb.position_embeddings[:, :1]).to(tokens.dtype).expand(n, -1, -1)
    t = torch.cat([cls, tokens], dim=1)
    for layer in mae_layers(model)[:block]:
        t = layer(t)
        t = t[0] if isinstance(t, tuple) else t
    return t[:, 1:].transpose(1, 2).reshape(n, -1, gh, gw)


# ------------------------------------------------------------------------------------------------------------------
# SAM (segment_anything)


def build_sam(cfg: BackboneConfig, weights: Path | None) -> torch.nn.Module:
    from segment_anything import sam_model_registry

    if cfg.arch not in sam_model_registry:
        raise ConfigError(f"backbone {cfg.name!r}: segment_anything has no model {cfg.arch!r}")
    encoder = sam_model_registry[cfg.arch](checkpoint=None).image_encoder
    if not (0 <= cfg.block < len(encoder.blocks)):
        raise ConfigError(f"backbone {cfg.name!r}: block {cfg.block} out of range (0..{len(encoder.blocks) - 1})")
    if weights is not None:
        sd = read_state_dict(weights, cfg.name)
        sd = {k[len("image_encoder."):]: v for k, v in sd.items() if k.startswith("image_encoder.")}
        strict_load(encoder, sd, weights, cfg, f"segment_anything {cfg.arch} (image encoder)")
    return encoder


def sam_grid(encoder: torch.nn.Module, x: torch.Tensor, block: int) -> torch.Tensor:
    """[N, 3, H, W] -> image-encoder block ``block`` output [N, C, H/16, W/16] (before the neck)."""
    t = encoder.patch_embed(x)  # [N, gh, gw, C]
    if encoder.pos_embed is not None:
        pos = encoder.pos_embed
        if tuple(pos.shape[1:3]) != tuple(t.shape[1:3]):
            pos = F.interpolate(pos.permute(0, 3, 1, 2).float(), size=tuple(t.shape[1:3]), mode="bicubic",
                                align_corners=False).permute(0, 2, 3, 1)
        t = t + pos.to(t.dtype)
    for blk in encoder.blocks[:block + 1]:
        t = blk(t)
    return t.permute(0, 3, 1, 2)


# ------------------------------------------------------------------------------------------------------------------
# MiDaS DPT_Large backbone in timm


def load_prefixed_timm_weights(model: torch.nn.Module, cfg: BackboneConfig, weights: Path) -> None:
    """Load ``<prefix>*`` keys (MiDaS: ``pretrained.model.``) of a checkpoint into a timm model, strictly (only the
    classifier ``head`` may be absent)."""
    prefix = cfg.checkpoint_prefix
    sd = read_state_dict(weights, cfg.name)
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not sub:
        raise BackboneWeightsError(f"{weights} holds no '{prefix}*' keys; it is not a checkpoint for backbone "
                                   f"{cfg.name!r} ({cfg.protocol_source})")
    strict_load(model, sub, weights, cfg, f"timm {cfg.arch}", optional=("head.",))


register_family(Family("mae_hidden_states", "transformers", build_mae, needs_block=True,
                       grid=lambda module, x, cfg, first, seed: mae_grid(module, x, cfg.block)))
register_family(Family("sam_encoder_blocks", "segment_anything", build_sam, needs_block=True,
                       grid=lambda module, x, cfg, first, seed: sam_grid(module, x, cfg.block)))
