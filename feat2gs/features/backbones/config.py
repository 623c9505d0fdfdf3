"""What a backbone is, in one place: :class:`BackboneConfig` (weights, layer tapped, grid, normalisation) and the
:class:`Family` that builds and taps it; both registered once, like timm's ``@register_model``.

A built-in backbone is one :func:`register_backbone` call in :mod:`.zoo`; a new kind of network adds one
:func:`register_family` next to its loader (see :mod:`.timm_models`, :mod:`.clip`, :mod:`.extra`, :mod:`.dift`,
:mod:`.vggt`, :mod:`.radio`). A pip-installed package adds backbones through the ``feat2gs.backbones`` entry-point
group (see :mod:`feat2gs.features.custom`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feat2gs.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALISATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "pm1": ((0.5,) * 3, (0.5,) * 3),
                  "unit": ((0.0,) * 3, (1.0,) * 3)}
PADDINGS = ("center", "none", "crop518")

Build = Callable[["BackboneConfig", "Path | None"], Any]  # (config, weights file or None for random) -> nn.Module
Grid = Callable[[Any, Any, "BackboneConfig", int, int], Any]  # (module, padded batch, config, first, seed) -> grid


def _no_parts(cfg: "BackboneConfig", weights: Path) -> list[str]:
    return []


@dataclass(frozen=True)
class Family:
    """How one kind of network is built and its grid tapped.

    ``grid(module, x, cfg, first, seed)``: a normalised, centre-padded batch [n, 3, Hp, Wp] -> [n, C, Hp/p, Wp/p]
    (``first``/``seed``: DIFT's per-image noise). ``whole_set(module, x, cfg)`` instead sees every view at once
    (VGGT) and returns the grid on the image's cells. ``missing_parts(cfg, weights)``: what else a found weights
    file needs (a code checkout, other model components). ``check(cfg)``: the family's own rules (a problem or None).
    """

    name: str
    library: str  # the pip package that provides the architecture
    build: Build
    grid: Grid | None = None
    whole_set: Callable[[Any, Any, "BackboneConfig"], Any] | None = None
    missing_parts: Callable[["BackboneConfig", Path], list[str]] = _no_parts
    needs_block: bool = False
    check: Callable[["BackboneConfig"], str | None] | None = None


@dataclass(frozen=True)
class BackboneConfig:
    """One backbone of the zoo. ``patch`` is the network stride, ``stride`` the pixels per returned cell."""

    name: str
    family: str  # a registered Family
    arch: str  # the library's model id
    layer: str  # what is taken, in words
    patch: int
    stride: int
    channels: int
    hf_hub_id: str | None = None
    weight_files: tuple[str, ...] = ()  # files to look for in the Hugging Face cache / a weights folder
    url: str | None = None
    protocol_source: str = ""  # how the reference loads it
    block: int | None = None  # block / hidden-state / up-block index, for families that need one
    normalisation: str = "imagenet"  # imagenet | pm1 | unit
    padding: str = "center"  # center | none | crop518 (VGGT's own preprocessing)
    notes: str = ""
    pretrained_tag: str | None = None  # open_clip
    quick_gelu: bool = False  # open_clip
    checkpoint_prefix: str | None = None  # timm: the checkpoint's keys under this prefix (MiDaS)
    mean: tuple[float, float, float] = field(init=False)
    std: tuple[float, float, float] = field(init=False)

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ConfigError(f"backbone {self.name!r}: normalisation must be one of {', '.join(NORMALISATIONS)}, "
                              f"got {self.normalisation!r}")
        mean, std = NORMALISATIONS[self.normalisation]
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "weight_files", tuple(self.weight_files))

    @property
    def library(self) -> str:
        return get_family(self.family).library

    @property
    def output(self) -> str:
        return self.family


_FAMILIES: dict[str, Family] = {}
_BACKBONES: dict[str, BackboneConfig] = {}


def register_family(family: Family) -> Family:
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise ValueError(f"backbone family {family.name!r} registered twice")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    _ensure_zoo()
    if name not in _FAMILIES:
        raise ConfigError(f"unknown backbone family {name!r}; known: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def problems(cfg: BackboneConfig) -> list[str]:
    """Every rule a backbone config breaks (empty: valid)."""
    out = []
    if not cfg.name or "-" in cfg.name or ":" in cfg.name:
        out.append(f"name {cfg.name!r} must be non-empty, without '-' or ':'")
    if cfg.family not in _FAMILIES:
        out.append(f"unknown family {cfg.family!r} (known: {', '.join(sorted(_FAMILIES))})")
        return out
    family = _FAMILIES[cfg.family]
    if min(cfg.patch, cfg.stride, cfg.channels) <= 0:
        out.append("patch, stride and channels must be positive")
    if cfg.padding not in PADDINGS:
        out.append(f"padding must be one of {', '.join(PADDINGS)}, got {cfg.padding!r}")
    if not cfg.hf_hub_id and not cfg.url:
        out.append("weights need an hf_hub_id or a url")
    if not cfg.weight_files:
        out.append("weight_files must name the file(s) to look for")
    if family.needs_block and cfg.block is None:
        out.append(f"family {family.name!r} needs a block index")
    if (cfg.padding == "crop518") != (family.whole_set is not None):
        out.append("padding 'crop518' goes with the whole-set (VGGT) families only")
    problem = family.check(cfg) if family.check else None
    return out + ([problem] if problem else [])


def register_backbone(cfg: BackboneConfig) -> BackboneConfig:
    """Add a backbone to the zoo (it becomes a feature of the same name); its rules are checked here."""
    _ensure_families()
    found = problems(cfg)
    if found:
        raise ConfigError(f"backbone {cfg.name!r}: " + "; ".join(found))
    if cfg.name in _BACKBONES and _BACKBONES[cfg.name] != cfg:
        raise ValueError(f"backbone {cfg.name!r} registered twice")
    _BACKBONES[cfg.name] = cfg
    return cfg


def _ensure_families() -> None:
    from feat2gs.features.backbones import clip, dift, extra, radio, timm_models, vggt  # noqa: F401  (register)


def _ensure_zoo() -> None:
    _ensure_families()
    from feat2gs.features.backbones import zoo  # noqa: F401  (register the built-in backbones)


def load_backbone_config(name: str) -> BackboneConfig:
    _ensure_zoo()
    if name not in _BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known backbones: {', '.join(sorted(_BACKBONES))}")
    return _BACKBONES[name]


def backbone_names() -> list[str]:
    _ensure_zoo()
    return sorted(_BACKBONES)


def list_backbone_configs() -> list[BackboneConfig]:
    return [_BACKBONES[n] for n in backbone_names()]
