"""Experiment configuration: one dataclass per step, composed into ``ExperimentConfig``.

Two presets ship: ``protocol`` (the published Feat2GS settings, for GPUs) and ``quick`` (a small job that
finishes on 2 CPU cores). Both are plain values: ``feat2gs presets`` prints them and ``--set key=value``
overrides any field (e.g. ``--set train.iterations=2000``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from feat2gs.errors import ConfigError


@dataclass
class InitConfig:
    method: str = "gt"  # pointmap source: gt (known cameras + depth), dust3r, mast3r
    image_size: int = 512  # long side of the step-1 working resolution (both sides then floored to /16)
    checkpoint: str | None = None  # dust3r/mast3r weights: .pth file, HF directory or hub id (default: official)
    feature_checkpoints: str | None = None  # weights of feature backbones: "dino_b16=/path/a.pth,clip_b16=/path/b"
    random_weights: bool = False  # run dust3r/mast3r with random weights (pipeline tests only; flagged in outputs)
    batch_size: int = 1  # pairs per network call
    autocast: str | None = None  # CUDA only: bf16 or fp16 (dust3r/mast3r and feature backbones)
    feature_cache: bool = True  # reuse raw backbone grids from <scene>/<N>_views/feature_cache
    device: str = "auto"  # where step-1 networks run (--device sets this and the top-level device)
    align_iterations: int = 300  # dense global alignment
    mast3r_alignment: str = "dense"  # mast3r init: sparse (the reference's sparse global alignment) | dense
    feat_dim: int | None = 256  # PCA dimension; None keeps the raw width; tiny features skip PCA
    pca: str = "exact"  # exact (deterministic, sign-fixed) | lowrank (torch.pca_lowrank, seeded; the reference's)
    vis_feat: bool = True  # write the feature visualisation PNG
    seed: int = 0


@dataclass
class TrainConfig:
    iterations: int = 8000  # total, warm start included (the protocol's --iter 8000)
    warm_iterations: int = 1000  # warm start: regress head outputs onto the initial values
    resolution: int | None = None  # long side of training/test renders; None = original size (width <= 1600)
    sh_degree: int = 3
    white_background: bool = False
    optim_pose: bool = True
    warm_lr_init: float = 1e-2
    warm_lr_final: float = 1e-4
    position_lr_init: float = 1.6e-5  # times the scene extent
    position_lr_final: float = 1.6e-7
    position_lr_max_steps: int = 30000
    feature_lr: float = 2.5e-4  # f_dc
    feature_sh_lr: float = 1.25e-5  # f_rest
    opacity_lr: float = 5e-3
    scaling_lr: float = 5e-4
    rotation_lr: float = 1e-4
    pc_feat_lr: float = 1e-3  # ft modes: learning rate of the per-Gaussian features in the render phase
    pose_lr_init: float = 1e-4
    pose_lr_final: float = 1e-6
    pose_lr_max_steps: int = 1000
    lambda_dssim: float = 0.2
    scale_reg_weight: float = 0.1  # L1(log-scale, initial) for iuv/iuvrgb only
    ft_render_phase: bool = True  # ft modes keep fine-tuning features after the warm start (reference: False)
    seed: int = 0
    log_every: int = 10


@dataclass
class EvalConfig:
    test_pose_iterations: int = 500
    test_pose_lr_t: float = 3e-4
    test_pose_lr_q: float = 1e-4
    perturb_rot_deg: float = 0.0  # gt method: perturb the known test poses before refinement
    perturb_trans: float = 0.0  # ... by this translation (scene units)
    mask_depth_atol: float = 1e-2  # depth-consistency tolerance of the visibility masks
    lpips: bool = True
    seed: int = 0


@dataclass
class VideoConfig:
    trajectory: str = "interpolated"
    n_frames: int | None = None  # None = protocol count int(300/N)*(N-1)
    fps: int = 30
    resolution: int | None = None  # long side; None = training resolution
    white_background: bool = True
    depth_normal: bool = False
    met3r: bool = False  # also score consecutive frame pairs with MET3R (multi-view consistency)


@dataclass
class ExperimentConfig:
    preset: str = "protocol"
    backend: str = "auto"  # renderer: auto | torch | gsplat
    device: str = "auto"  # auto | cpu | cuda[:i]
    init: InitConfig = field(default_factory=InitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    video: VideoConfig = field(default_factory=VideoConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _quick() -> ExperimentConfig:
    return ExperimentConfig(
        preset="quick",
        init=InitConfig(image_size=64),
        train=TrainConfig(iterations=600, warm_iterations=300, resolution=64, pose_lr_max_steps=100),
        eval=EvalConfig(test_pose_iterations=60),
        video=VideoConfig(n_frames=48, resolution=128),
    )


PRESETS = {"protocol": ExperimentConfig, "quick": _quick}


def _coerce(value: str, current: Any, key: str) -> Any:
    """Parse ``value`` as the type of the current setting (numbers, booleans, strings; ``none`` for None)."""
    if value.lower() in {"none", "null"}:
        return None
    if isinstance(current, bool):
        if value.lower() in {"true", "1", "yes"}:
            return True
        if value.lower() in {"false", "0", "no"}:
            return False
        raise ConfigError(f"--set {key}={value}: expected true/false")
    for kind in (int, float):
        if isinstance(current, kind) or (current is None and _parses(kind, value)):
            try:
                return kind(value)
            except ValueError:
                raise ConfigError(f"--set {key}={value}: expected a{'n integer' if kind is int else ' number'}")
    return value


def _parses(kind: type, value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``section.field=value`` strings (``train.iterations=2000``) in place; unknown keys are errors."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        target: Any = cfg
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(target) or not hasattr(target, part):
                raise ConfigError(f"--set {key}: unknown section {part!r}")
            target = getattr(target, part)
        name = parts[-1]
        if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
            valid = ", ".join(f.name for f in dataclasses.fields(target)) if dataclasses.is_dataclass(target) else ""
            raise ConfigError(f"--set {key}: unknown option {name!r}" + (f" (valid: {valid})" if valid else ""))
        setattr(target, name, _coerce(value, getattr(target, name), key))
    return cfg


def make_config(preset: str = "protocol", overrides: list[str] | None = None) -> ExperimentConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return apply_overrides(PRESETS[preset](), overrides or [])


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    cfg = ExperimentConfig(
        preset=data.get("preset", "protocol"),
        backend=data.get("backend", "auto"),
        device=data.get("device", "auto"),
        init=InitConfig(**data.get("init", {})),
        train=TrainConfig(**data.get("train", {})),
        eval=EvalConfig(**data.get("eval", {})),
        video=VideoConfig(**data.get("video", {})),
    )
    return cfg


def parse_feature_checkpoints(text: str | None) -> dict[str, str]:
    """``"name=path,name=path"`` -> {name: path}; an item without '=' is an error naming it."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"init.feature_checkpoints: expected name=path, got {item!r}")
        out[name.strip()] = path.strip()
    return out


def fingerprint(obj: Any) -> str:
    """Stable short hash of a JSON-able object (used to tell whether cached outputs are still valid)."""
    import hashlib

    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
