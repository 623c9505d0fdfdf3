"""Backbone configs: ``configs/backbone/<name>.yaml`` read with ``yaml.safe_load`` and validated.

Fields (see any shipped YAML):
  name, implemented (bool), library (timm | open_clip | ...), requires (pip package, unimplemented ones),
  arch (library model id, with the weights tag for timm), pretrained_tag / quick_gelu (open_clip),
  weights {hf_hub_id, files, url, protocol_source}, layer (text), block (index or null), output (how the grid
  is produced: vit_tokens | clip_projected | convnext_last_stage | mae_hidden_states | sam_encoder_blocks |
  dift_up_block | vggt_patch_embed | vggt_aggregator | radio_features), patch (network stride in pixels),
  stride (pixels per returned cell), channels, normalisation (imagenet | pm1 | unit | {mean, std}),
  padding (center | none | crop518), notes.
  Optional: checkpoint_prefix (timm: the checkpoint's keys under this prefix are the timm model's, e.g. MiDaS
  ``pretrained.model.``). Outputs mae_hidden_states (transformers) / sam_encoder_blocks (segment_anything) /
  dift_up_block (diffusers) take ``block`` as hidden_states index / image-encoder block index / UNet up-block index.
  Library ``feat2gs``: our own implementation (VGGT); ``torch_hub``: the model's official code from the torch.hub
  cache (RADIO).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feat2gs.config import load_yaml

from feat2gs.errors import ConfigError

CONFIG_ENV = "FEAT2GS_BACKBONE_CONFIGS"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALISATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "pm1": ((0.5,) * 3, (0.5,) * 3),
                  "unit": ((0.0,) * 3, (1.0,) * 3)}
OUTPUTS = {"vit_tokens", "clip_projected", "convnext_last_stage", "mae_hidden_states", "sam_encoder_blocks",
           "dift_up_block", "vggt_patch_embed", "vggt_aggregator", "radio_features"}
PADDINGS = {"center", "none", "crop518"}
IMPLEMENTED_LIBRARIES = {"timm", "open_clip", "transformers", "segment_anything", "diffusers", "feat2gs", "torch_hub"}
_OUTPUT_LIBRARY = {"mae_hidden_states": "transformers", "sam_encoder_blocks": "segment_anything",
                   "dift_up_block": "diffusers", "vggt_patch_embed": "feat2gs", "vggt_aggregator": "feat2gs",
                   "radio_features": "torch_hub"}
_NEEDS_BLOCK = {"mae_hidden_states", "sam_encoder_blocks", "dift_up_block"}
_VGGT_OUTPUTS = {"vggt_patch_embed", "vggt_aggregator"}  # the only outputs with VGGT's own crop518 preprocessing
_REQUIRED = ("name", "implemented", "library", "weights", "layer", "patch", "stride", "channels", "normalisation",
             "padding", "notes")


@dataclass(frozen=True)
class BackboneConfig:
    name: str
    implemented: bool
    library: str
    arch: str | None
    weights: dict[str, Any]
    layer: str
    block: int | None
    output: str | None
    patch: int
    stride: int
    channels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalisation: str
    padding: str
    notes: str
    requires: str | None = None
    pretrained_tag: str | None = None
    quick_gelu: bool = False
    checkpoint_prefix: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def hf_hub_id(self) -> str | None:
        return self.weights.get("hf_hub_id")

    @property
    def weight_files(self) -> list[str]:
        return list(self.weights.get("files") or [])

    @property
    def url(self) -> str | None:
        return self.weights.get("url")


def config_dir() -> Path:
    """``$FEAT2GS_BACKBONE_CONFIGS`` or the repository's ``configs/backbone``."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "configs" / "backbone"


def _err(path: Path, msg: str) -> ConfigError:
    return ConfigError(f"backbone config {path}: {msg}")


def _int(data: dict, key: str, path: Path, allow_none: bool = False) -> int | None:
    value = data.get(key)
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _err(path, f"'{key}' must be an integer, got {value!r}")
    return value


def parse_backbone_config(data: Any, path: Path) -> BackboneConfig:
    """Validate the mapping read from ``path``; raise ConfigError naming the file and field at fault."""
    if not isinstance(data, dict):
        raise _err(path, "must be a YAML mapping")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise _err(path, f"missing field(s) {', '.join(missing)}")
    name = data["name"]
    if not isinstance(name, str) or not name or "-" in name:
        raise _err(path, f"'name' must be a non-empty string without '-', got {name!r}")
    if name != path.stem:
        raise _err(path, f"'name' {name!r} differs from the file name {path.stem!r}")
    if not isinstance(data["implemented"], bool):
        raise _err(path, "'implemented' must be true or false")
    weights = data["weights"]
    if not isinstance(weights, dict):
        raise _err(path, "'weights' must be a mapping (hf_hub_id, files, url, protocol_source)")
    if not isinstance(weights.get("files") or [], list):
        raise _err(path, "'weights.files' must be a list of file names")
    patch, stride, channels = _int(data, "patch", path), _int(data, "stride", path), _int(data, "channels", path)
    if patch <= 0 or stride <= 0 or channels <= 0:
        raise _err(path, "'patch', 'stride' and 'channels' must be positive")
    block = _int(data, "block", path, allow_none=True)
    norm = data["normalisation"]
    if isinstance(norm, str):
        if norm not in NORMALISATIONS:
            raise _err(path, f"'normalisation' must be one of {sorted(NORMALISATIONS)} or {{mean, std}}, got {norm!r}")
        mean, std = NORMALISATIONS[norm]
    elif isinstance(norm, dict) and len(norm.get("mean", [])) == 3 and len(norm.get("std", [])) == 3:
        mean, std = tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"])
        norm = "custom"
    else:
        raise _err(path, f"'normalisation' must be a name or {{mean: [3], std: [3]}}, got {norm!r}")
    if data["padding"] not in PADDINGS:
        raise _err(path, f"'padding' must be one of {sorted(PADDINGS)}, got {data['padding']!r}")
    library, output, arch = data["library"], data.get("output"), data.get("arch")
    if data["implemented"]:
        if library not in IMPLEMENTED_LIBRARIES:
            raise _err(path, f"implemented backbones must use one of {sorted(IMPLEMENTED_LIBRARIES)}, got {library!r}")
        if output not in OUTPUTS:
            raise _err(path, f"'output' must be one of {sorted(OUTPUTS)}, got {output!r}")
        if not isinstance(arch, str) or not arch:
            raise _err(path, "'arch' (the library's model id) is required")
        if not weights.get("hf_hub_id") and not weights.get("url"):
            raise _err(path, "'weights' needs an hf_hub_id or a url")
        if not weights.get("files"):
            raise _err(path, "'weights.files' must name the file(s) to look for in the hub cache")
        if library == "open_clip" and not data.get("pretrained_tag"):
            raise _err(path, "open_clip backbones need 'pretrained_tag'")
        want = _OUTPUT_LIBRARY.get(output)
        if (want is not None and library != want) or (want is None and library in _OUTPUT_LIBRARY.values()):
            raise _err(path, f"output {output!r} does not go with library {library!r}")
        if output in _NEEDS_BLOCK and block is None:
            raise _err(path, f"output {output!r} needs 'block'")
        if data.get("checkpoint_prefix") is not None and library != "timm":
            raise _err(path, "'checkpoint_prefix' is only used with timm")
        if output == "convnext_last_stage" and patch % stride:
            raise _err(path, "convnext: 'patch' (network stride) must be a multiple of the output 'stride'")
        if (output in _VGGT_OUTPUTS) != (data["padding"] == "crop518"):
            raise _err(path, "padding 'crop518' (VGGT's own 518-wide preprocessing) goes with the VGGT outputs only")
        if output != "convnext_last_stage" and patch != stride:
            raise _err(path, "ViT backbones return one cell per patch: 'stride' must equal 'patch'")
    elif not data.get("requires"):
        raise _err(path, "unimplemented backbones must name what they need in 'requires'")
    return BackboneConfig(
        name=name, implemented=data["implemented"], library=str(library), arch=arch, weights=dict(weights),
        layer=str(data["layer"]), block=block, output=output, patch=patch, stride=stride, channels=channels,
        mean=mean, std=std, normalisation=norm, padding=data["padding"], notes=str(data["notes"]),
        requires=data.get("requires"), pretrained_tag=data.get("pretrained_tag"),
        quick_gelu=bool(data.get("quick_gelu", False)), checkpoint_prefix=data.get("checkpoint_prefix"), path=path)


def load_backbone_config(name: str, directory: str | os.PathLike | None = None) -> BackboneConfig:
    d = Path(directory) if directory is not None else config_dir()
    path = d / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(backbone_names(d)) or "none"
        raise ConfigError(f"unknown backbone {name!r}: no {path}; known backbones: {known}")
    return parse_backbone_config(load_yaml(path), path)


def backbone_names(directory: str | os.PathLike | None = None) -> list[str]:
    d = Path(directory) if directory is not None else config_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def list_backbone_configs(directory: str | os.PathLike | None = None) -> list[BackboneConfig]:
    return [load_backbone_config(n, directory) for n in backbone_names(directory)]
