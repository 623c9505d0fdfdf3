"""Feature registry: a name -> how to compute a per-image feature map.

A feature string such as ``radio-mae_b16-iuvrgb`` names several registered features joined by ``-``
(names use ``_``, so ``-`` is unambiguous); order matters for folder names and for concatenation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from feat2gs.errors import ConfigError


@dataclass
class FeatureInputs:
    """What an extractor may use.

    images  [N, H, W, 3] float32 in [0, 1] at the step-1 working resolution
    points  [N, H, W, 3] the initial per-pixel 3D points (from the init method), world frame
    precomputed  features an init method already produced (e.g. the DUSt3R encoder), by feature name
    """

    images: torch.Tensor
    points: torch.Tensor
    seed: int = 0
    precomputed: dict[str, torch.Tensor] = field(default_factory=dict)
    checkpoints: dict[str, str | None] = field(default_factory=dict)  # weights per feature name (None: default)
    random_weights: bool = False  # build networks with random weights (never reported as pretrained)
    autocast: str | None = None  # bf16 | fp16 for backbone networks on CUDA
    cache_dir: Path | None = None  # raw network grids are cached here (features.cache); None: no cache
    device: str = "auto"  # where networks run: auto | cpu | cuda[:i]


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    channels: int
    stride: int  # pixels per feature cell (1 = per pixel)
    description: str
    extract: Callable[[FeatureInputs], torch.Tensor]  # -> [N, h, w, C] float32
    tiny: bool = False  # never PCA'd; kept aside at pixel level in concatenations (iuv, iuvrgb)
    control: bool = False  # a probe control (calibrates the probe) rather than a model's feature
    needs_weights: bool = False
    # what, besides the images, determines the raw grid (weights identity, seed, ...); None: never cached
    cache_identity: Callable[[FeatureInputs], str] | None = None


_REGISTRY: dict[str, FeatureSpec] = {}


def register_feature(spec: FeatureSpec) -> FeatureSpec:
    if "-" in spec.name:
        raise ValueError(f"feature names may not contain '-': {spec.name}")
    if spec.name in _REGISTRY:
        raise ValueError(f"feature {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtin() -> None:
    from feat2gs.features import backbones, croco, pixel  # noqa: F401  (register the built-in features)

    backbones.register_backbones()


def list_features() -> list[FeatureSpec]:
    _ensure_builtin()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_feature(name: str) -> FeatureSpec:
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature {name!r}; known features: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def parse_feature_string(feat_string: str) -> list[FeatureSpec]:
    """``"a-b-c"`` (or a list joined by spaces) -> the specs, validated, in order."""
    names = [n for n in feat_string.replace(" ", "-").split("-") if n]
    if not names:
        raise ConfigError("empty feature string; pass e.g. --feature iuvrgb or --feature dino_b16-iuvrgb")
    if len(set(names)) != len(names):
        raise ConfigError(f"feature string {feat_string!r} repeats a feature")
    return [get_feature(n) for n in names]
