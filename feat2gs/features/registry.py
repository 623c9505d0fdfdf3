"""Feature registry: a name -> how to compute a per-image feature map.

A feature string such as ``radio-mae_b16-iuvrgb`` names several features joined by ``-`` (names use ``_``, so
``-`` is unambiguous); order matters for folder names and for concatenation. A name is one of: a feature
registered here (iuv, iuvrgb, the controls, the DUSt3R/MASt3R encoders), a backbone of the zoo, a backbone from an
installed package's ``feat2gs.backbones`` entry point, or ``module:attr`` — a user's model imported by name
(:mod:`feat2gs.features.custom`).
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
    max_pixels: int = 4 * 512 * 512  # padded input pixels per network pass (the batch memory cap)
    progress: bool = False  # progress bars while networks run


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    channels: int | None  # None: known once run (a user's model)
    stride: float | None  # pixels per feature cell (1 = per pixel); None: inferred from the grid it returns
    description: str
    extract: Callable[[FeatureInputs], torch.Tensor]  # -> [N, h, w, C] float32
    tiny: bool = False  # never PCA'd; kept aside at pixel level in concatenations (iuv, iuvrgb)
    control: bool = False  # a probe control (calibrates the probe) rather than a model's feature
    needs_weights: bool = False
    scale_regularised: bool = False  # training adds the L1 log-scale regulariser (a tiny feature cannot place points)
    kind: str = "model"  # model | tiny | control | zoo | plugin | custom: where it comes from (listings)
    code_identity: str = ""  # for models outside feat2gs: their code (and weights) identity, part of step 1's key
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
    from feat2gs.features import croco, pixel  # noqa: F401  (register the built-in features)


def _named() -> dict[str, Callable[[], FeatureSpec]]:
    """Every feature with a name: registered here, the zoo's backbones, installed plugins (lazily built)."""
    from feat2gs.features.backbones import backbone_feature, list_backbone_configs
    from feat2gs.features.custom import plugin_features

    _ensure_builtin()
    named: dict[str, Callable[[], FeatureSpec]] = {k: (lambda s=s: s) for k, s in _REGISTRY.items()}
    for cfg in list_backbone_configs():
        named.setdefault(cfg.name, lambda cfg=cfg: backbone_feature(cfg))
    for name, make in plugin_features().items():
        named.setdefault(name, make)
    return named


def list_features() -> list[FeatureSpec]:
    """Every named feature (built-in, zoo, installed plugins), sorted by name; ``module:attr`` models are not listed."""
    named = _named()
    return [named[k]() for k in sorted(named)]


def get_feature(name: str) -> FeatureSpec:
    from feat2gs.features.custom import callable_feature

    if ":" in name:
        return callable_feature(name)
    named = _named()
    if name not in named:
        raise ConfigError(f"unknown feature {name!r}; known features: {', '.join(sorted(named))} "
                          "(or module:function for your own model)")
    return named[name]()


def feature_identity(feat_string: str) -> str:
    """What, besides the names, identifies the features of a string: the code of user and plugin models."""
    return "|".join(s.code_identity for s in parse_feature_string(feat_string) if s.code_identity)


def parse_feature_string(feat_string: str) -> list[FeatureSpec]:
    """``"a-b-c"`` (or a list joined by spaces) -> the specs, validated, in order."""
    names = [n for n in feat_string.replace(" ", "-").split("-") if n]
    if not names:
        raise ConfigError("empty feature string; pass e.g. --feature iuvrgb or --feature dino_b16-iuvrgb")
    if len(set(names)) != len(names):
        raise ConfigError(f"feature string {feat_string!r} repeats a feature")
    return [get_feature(n) for n in names]
