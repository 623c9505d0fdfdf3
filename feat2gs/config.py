"""Experiment configuration: one dataclass per step, composed into ``ExperimentConfig``.

Two presets ship: ``protocol`` (the published Feat2GS settings, for GPUs) and ``quick`` (a small job that
finishes on 2 CPU cores). Both are plain values: ``feat2gs presets`` prints them and ``--set key=value``
overrides any field (e.g. ``--set train.iterations=2000``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
    backbone_max_pixels: int = 4 * 512 * 512  # padded input pixels per feature-network pass (the memory cap)
    device: str = "auto"  # where step-1 networks run (--device sets this and the top-level device)
    align_iterations: int = 300  # dense global alignment
    mast3r_alignment: str = "sparse"  # mast3r init: sparse (the reference's sparse global alignment) | dense
    mast3r_tsdf_thresh: float = 0.0  # sparse alignment: TSDF refinement of the read-out depths (0: off, as Feat2GS)
    feat_dim: int | None = 256  # PCA dimension; None keeps the raw width; tiny features skip PCA
    pca: str = "exact"  # exact (deterministic, sign-fixed) | lowrank (torch.pca_lowrank, seeded; the reference's)
    vis_feat: bool = True  # write the feature visualisation PNG
    truncate_colors: bool = False  # 8-bit point colours truncated as the reference (default: rounded)
    reference_intrinsics: bool = False  # dust3r/mast3r cameras as the reference writes them (see README)
    perturb_rot_deg: float = 0.0  # gt method: perturb the training cameras (not the points) by this rotation ...
    perturb_trans: float = 0.0  # ... and this translation (scene units): a test of the joint pose optimisation
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
    ft_detach_rest: bool = False  # ft modes: the f_rest head reads detached features (reference: True)
    noise_std: float = 0.0  # seeded Gaussian noise on the initial positions, std noise_std/1000 (DTU protocol: 10)
    seed: int = 0
    log_every: int = 10


@dataclass
class InstantSplatConfig:
    """The InstantSplat baseline (``-M instantsplat``): every Gaussian parameter free, no warm start, its own
    learning rates (3DGS defaults); pose learning rates, SH degree, loss, resolution and seed come from ``train``."""

    iterations: int = 7000
    position_lr_init: float = 1.6e-4  # times the scene extent
    position_lr_final: float = 1.6e-6
    position_lr_max_steps: int = 30000
    feature_lr: float = 2.5e-3  # f_dc
    feature_sh_lr: float = 1.25e-4  # f_rest
    opacity_lr: float = 0.05
    scaling_lr: float = 5e-3
    rotation_lr: float = 1e-3


@dataclass
class EvalConfig:
    test_pose_iterations: int = 500
    test_pose_lr_t: float = 3e-4
    test_pose_lr_q: float = 1e-4
    perturb_rot_deg: float = 0.0  # gt method: perturb the known test poses before refinement
    perturb_trans: float = 0.0  # ... by this translation (scene units)
    mask_depth_atol: float = 1e-2  # depth-consistency tolerance of the visibility masks
    min_visible_fraction: float = 0.01  # a test view with less of its mask visible is not scored (metrics null)
    test_pose_focal: str = "train"  # dust3r/mast3r step 3: train (joint run keeps the training focal) | estimated
    depth_normal: bool = False  # step 4 also writes test/ours_<it>/{depth,normal}/ (PNG) and raw depth (.npy)
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
    spiral_reference_radii: bool = False  # spiral radii from avg_c2w·c2w centres, as the reference (see README)
    met3r: bool = False  # also score consecutive frame pairs with MET3R (multi-view consistency)
    met3r_random_weights: bool = False  # MET3R's networks with random weights (pipeline tests; flagged)
    # per-scene trajectory settings: None = the scene's row of resources/trajectories.csv, else the defaults
    up_sign: int | None = None  # up = up_sign * avg_c2w[:3, up_axis] (default -1)
    up_axis: int | None = None  # 0, 1 or 2 (default 1: up = -y of the average camera)
    arc_degree: float | None = None  # arc sweep (default 180)
    spiral_zrate: float | None = None  # default 0.5
    spiral_rots: float | None = None  # default 1
    lemniscate_degree: float | None = None  # default 45
    wander_max_disp: float | None = None  # pixels (default 48)
    square: bool = False  # the reference's square frame: side max(W, H), focal kept in pixels


@dataclass
class ExperimentConfig:
    preset: str = "protocol"
    backend: str = "auto"  # renderer: auto | torch | gsplat
    device: str = "auto"  # auto | cpu | cuda[:i]
    init: InitConfig = field(default_factory=InitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    instantsplat: InstantSplatConfig = field(default_factory=InstantSplatConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# the settings sections (init, train, eval, video, instantsplat) by name: the one list, read off ExperimentConfig
SECTIONS: dict[str, type] = {name: kind for name, kind in typing.get_type_hints(ExperimentConfig).items()
                             if dataclasses.is_dataclass(kind)}


def _quick() -> ExperimentConfig:
    return ExperimentConfig(
        preset="quick",
        init=InitConfig(image_size=64),
        train=TrainConfig(iterations=600, warm_iterations=300, resolution=64, pose_lr_max_steps=100),
        instantsplat=InstantSplatConfig(iterations=525),  # 7/8 of the quick Feat2GS job, as 7000/8000
        eval=EvalConfig(test_pose_iterations=60),
        video=VideoConfig(n_frames=48, resolution=128),
    )


PRESETS = {"protocol": ExperimentConfig, "quick": _quick}


# -- parsing --------------------------------------------------------------------------------------------------
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_as(kind: Any, value: str, key: str) -> Any:
    """Parse the text ``value`` of ``--set key=value`` as the declared type ``kind`` of the setting."""
    args = typing.get_args(kind)
    if type(None) in args:  # Optional[X]
        if value.strip().lower() in {"none", "null"}:
            return None
        (kind,) = [a for a in args if a is not type(None)]
    if kind is bool:
        if value.lower() in {"true", "1", "yes", "on"}:
            return True
        if value.lower() in {"false", "0", "no", "off"}:
            return False
        raise ConfigError(f"--set {key}={value}: expected true or false")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"--set {key}={value}: expected an integer") from None
    if kind is float:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--set {key}={value}: expected a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"--set {key}={value}: expected a finite number")
        return number
    return value


def _check_type(kind: Any, value: Any, key: str) -> Any:
    """A value read from a file (YAML/JSON) must already have the declared type (ints are accepted as floats)."""
    args = typing.get_args(kind)
    if type(None) in args:
        if value is None:
            return None
        (kind,) = [a for a in args if a is not type(None)]
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
          isinstance(value, str) if kind is str else True)
    if not ok:
        raise ConfigError(f"{key}: {value!r} is not a{'n' if kind is int else ''} {getattr(kind, '__name__', kind)}")
    return float(value) if kind is float else value


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``section.field=value`` strings (``train.iterations=2000``) in place, each parsed as the type its
    field declares; unknown keys are errors. Call :func:`validate` afterwards."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        target: Any = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(target) or part not in {f.name for f in dataclasses.fields(target)}:
                raise ConfigError(f"--set {key}: unknown section {part!r}")
            target = getattr(target, part)
        name = parts[-1]
        if not dataclasses.is_dataclass(target) or name not in {f.name for f in dataclasses.fields(target)}:
            valid = ", ".join(f.name for f in dataclasses.fields(target)) if dataclasses.is_dataclass(target) else ""
            raise ConfigError(f"--set {key}: unknown option {name!r}" + (f" (valid: {valid})" if valid else ""))
        kind = _field_types(type(target))[name]
        if dataclasses.is_dataclass(kind):
            raise ConfigError(f"--set {key}: {name!r} is a section; set one of its fields ({key}.<field>=...)")
        setattr(target, name, _parse_as(kind, value, key))
    return cfg


# -- validation -------------------------------------------------------------------------------------------------
def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def _optional(rule: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or rule(v)


def _one_of(*choices: Any) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), "one of " + ", ".join("none" if c is None else str(c) for c in choices)


def _device_name(v: Any) -> bool:
    if v == "auto":
        return True
    import torch

    try:
        torch.device(v)
    except (RuntimeError, TypeError):
        return False
    return True


POSITIVE = (_positive, "> 0")
NON_NEGATIVE = (_non_negative, ">= 0")
OPTIONAL_POSITIVE = (_optional(_positive), "> 0 or none")
DEVICE = (_device_name, "auto, cpu, cuda, cuda:<index>, ... (a torch device)")
FRACTION = (lambda v: 0 <= v <= 1, "in [0, 1]")

# field -> (rule, what is allowed); enumerations whose values live elsewhere are checked in ``validate``
RULES: dict[type, dict[str, tuple[Callable[[Any], bool], str]]] = {
    InitConfig: {
        "image_size": ((lambda v: v >= 16), ">= 16 (the working size is floored to multiples of 16)"),
        "batch_size": POSITIVE, "align_iterations": NON_NEGATIVE, "feat_dim": OPTIONAL_POSITIVE,
        "backbone_max_pixels": POSITIVE,
        "pca": _one_of("exact", "lowrank"), "autocast": _one_of(None, "bf16", "fp16"), "device": DEVICE,
        "mast3r_alignment": _one_of("sparse", "dense"), "seed": NON_NEGATIVE,
        "mast3r_tsdf_thresh": ((lambda v: math.isfinite(v) and v >= 0), "a finite number >= 0 (0: off)"),
        "perturb_rot_deg": NON_NEGATIVE, "perturb_trans": NON_NEGATIVE,
    },
    TrainConfig: {
        "iterations": POSITIVE, "warm_iterations": NON_NEGATIVE, "resolution": OPTIONAL_POSITIVE,
        **{name: NON_NEGATIVE for name in ("warm_lr_init", "warm_lr_final", "position_lr_init", "position_lr_final",
                                           "feature_lr", "feature_sh_lr", "opacity_lr", "scaling_lr", "rotation_lr",
                                           "pc_feat_lr", "pose_lr_init", "pose_lr_final", "scale_reg_weight")},
        "position_lr_max_steps": POSITIVE, "pose_lr_max_steps": POSITIVE, "lambda_dssim": FRACTION,
        "seed": NON_NEGATIVE, "log_every": POSITIVE, "noise_std": NON_NEGATIVE,
    },
    InstantSplatConfig: {
        "iterations": POSITIVE, "position_lr_max_steps": POSITIVE,
        **{name: NON_NEGATIVE for name in ("position_lr_init", "position_lr_final", "feature_lr", "feature_sh_lr",
                                           "opacity_lr", "scaling_lr", "rotation_lr")},
    },
    EvalConfig: {
        "test_pose_iterations": NON_NEGATIVE, "test_pose_lr_t": NON_NEGATIVE, "test_pose_lr_q": NON_NEGATIVE,
        "perturb_rot_deg": NON_NEGATIVE, "perturb_trans": NON_NEGATIVE, "mask_depth_atol": POSITIVE,
        "min_visible_fraction": ((lambda v: 0 < v <= 1), "in (0, 1]"), "seed": NON_NEGATIVE,
        "test_pose_focal": _one_of("train", "estimated"),
    },
    VideoConfig: {"n_frames": ((lambda v: v is None or v >= 2), ">= 2 or none"), "fps": POSITIVE,
                  "resolution": OPTIONAL_POSITIVE, "up_sign": _one_of(None, -1, 1), "up_axis": _one_of(None, 0, 1, 2),
                  "arc_degree": OPTIONAL_POSITIVE, "spiral_zrate": (_optional(_non_negative), ">= 0 or none"),
                  "spiral_rots": OPTIONAL_POSITIVE, "wander_max_disp": OPTIONAL_POSITIVE,
                  "lemniscate_degree": ((lambda v: v is None or 0 < v < 180), "in (0, 180) or none")},
    ExperimentConfig: {"backend": _one_of("auto", "torch", "gsplat"), "device": DEVICE},
}


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={'none' if value is None else value}: expected {allowed}")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check every setting where it is defined: types, ranges, enumerations and the rules that tie fields
    together. The first problem is raised as a :class:`ConfigError` naming the key, the value and what is allowed."""
    from feat2gs.render.sh import MAX_SH_DEGREE
    from feat2gs.video.trajectories import TRAJECTORIES

    sections = {"": cfg, **{f"{name}.": getattr(cfg, name) for name in SECTIONS}}
    for prefix, section in sections.items():
        types = _field_types(type(section))
        for f in dataclasses.fields(section):
            if dataclasses.is_dataclass(types[f.name]):
                continue
            value = _check_type(types[f.name], getattr(section, f.name), prefix + f.name)
            setattr(section, f.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                raise _fail(prefix + f.name, value, "a finite number")
            rule = RULES.get(type(section), {}).get(f.name)
            if rule is not None and not rule[0](value):
                raise _fail(prefix + f.name, value, rule[1])
    t = cfg.train
    if t.warm_iterations >= t.iterations:
        raise ConfigError(f"train.warm_iterations={t.warm_iterations}: must be < train.iterations={t.iterations} "
                          "(the warm start is part of the total)")
    if not 0 <= t.sh_degree <= MAX_SH_DEGREE:
        raise _fail("train.sh_degree", t.sh_degree, f"an integer in 0..{MAX_SH_DEGREE}")
    if cfg.video.trajectory not in TRAJECTORIES:
        raise _fail("video.trajectory", cfg.video.trajectory, "one of " + ", ".join(TRAJECTORIES))
    parse_feature_checkpoints(cfg.init.feature_checkpoints)
    from feat2gs.init.base import available_inits

    if cfg.init.method not in available_inits():
        raise _fail("init.method", cfg.init.method, "one of " + ", ".join(available_inits()))
    return cfg


def make_config(preset: str = "protocol", overrides: list[str] | None = None) -> ExperimentConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return validate(apply_overrides(PRESETS[preset](), overrides or []))


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    """The inverse of ``ExperimentConfig.to_dict`` (e.g. a job's config.yaml), validated; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of settings, got {type(data).__name__}")
    top = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(data) - top)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} (valid: {', '.join(sorted(top))})")
    sections = {}
    for name, cls in SECTIONS.items():
        values = data.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping of settings, got {values!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ConfigError(f"{name}: unknown setting(s) {', '.join(bad)} (valid: {', '.join(sorted(known))})")
        sections[name] = cls(**values)
    cfg = ExperimentConfig(**{k: v for k, v in data.items() if k not in sections}, **sections)
    return validate(cfg)


def load_yaml(path: Path) -> Any:
    """A YAML file's content; a missing file or a syntax error is one ConfigError line naming the file, the line and
    the column (PyYAML's own messages span several lines)."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}{context}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc


def parse_feature_checkpoints(text: str | None) -> dict[str, str]:
    """``"name=path,name=path"`` -> {name: path}; an item without '=' is an error naming it."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"init.feature_checkpoints: expected name=path, got {item!r}")
        out[name.strip()] = path.strip()
    return out


# -- what each step reads --------------------------------------------------------------------------------------
# A step's skip key is the fingerprint of the settings it reads (plus its inputs' bytes), so changing a setting
# reruns exactly the steps that read it. Every setting is listed here or in NOT_READ (a test checks it), so a
# setting added later cannot be forgotten by the keys and silently reuse stale outputs.
STEP_SETTINGS: dict[str, tuple[str, ...]] = {
    "geometry": ("init.method", "init.image_size", "init.checkpoint", "init.random_weights", "init.autocast",
                 "init.align_iterations", "init.mast3r_alignment", "init.mast3r_tsdf_thresh", "init.perturb_rot_deg",
                 "init.perturb_trans", "init.reference_intrinsics"),  # step 1's geometry, shared by all features
    "features": ("init.feature_checkpoints", "init.feat_dim", "init.pca", "init.seed", "init.truncate_colors",
                 "init.vis_feat"),  # step 1's features (plus the geometry)
    "test_pose": ("eval.perturb_rot_deg", "eval.perturb_trans", "eval.mask_depth_atol", "eval.seed",
                  "eval.test_pose_focal"),  # step 3 (plus the geometry)
    "train": ("train.*", "backend"),
    "train_instantsplat": ("instantsplat.*", "train.resolution", "train.sh_degree", "train.white_background",
                           "train.optim_pose", "train.pose_lr_init", "train.pose_lr_final", "train.pose_lr_max_steps",
                           "train.lambda_dssim", "train.noise_std", "train.seed", "train.log_every", "backend"),
    "render": ("eval.test_pose_iterations", "eval.test_pose_lr_t", "eval.test_pose_lr_q", "eval.depth_normal",
               "train.resolution", "train.white_background", "backend"),
    "metrics": ("eval.lpips", "eval.min_visible_fraction"),
    "video": ("video.*", "backend"),
}
# settings that change no output (where or how fast things run, folder names)
NOT_READ = ("preset", "device", "init.device", "init.batch_size", "init.feature_cache", "init.backbone_max_pixels")


def _setting_names(cfg: ExperimentConfig, pattern: str) -> list[str]:
    if not pattern.endswith(".*"):
        return [pattern]
    section = pattern[:-2]
    return [f"{section}.{f.name}" for f in dataclasses.fields(getattr(cfg, section))]


def get_setting(cfg: Any, name: str) -> Any:
    """A setting by dotted name from the whole config, or from the section it belongs to."""
    section = {kind: name for name, kind in SECTIONS.items()}.get(type(cfg))
    parts = name.split(".")
    if section is not None:
        if parts[0] != section:
            raise KeyError(f"{name} is not a setting of the {section} section")
        parts = parts[1:]
    target: Any = cfg
    for part in parts:
        target = getattr(target, part)
    return target


def step_settings(cfg: Any, step: str) -> dict[str, Any]:
    """The settings ``step`` reads, by dotted name (what its key is made of); ``cfg`` is the whole config or, for
    steps that read one section only, that section."""
    full = cfg if isinstance(cfg, ExperimentConfig) else ExperimentConfig()
    return {name: get_setting(cfg, name) for pattern in STEP_SETTINGS[step] for name in _setting_names(full, pattern)}


def load_config(path: str | Path) -> ExperimentConfig:
    """A run's ``config.yaml`` (as ``feat2gs eval`` writes it) -> the validated settings, to reproduce the run."""
    return config_from_dict(load_yaml(Path(path)))


def fingerprint(obj: Any) -> str:
    """Stable short hash of a JSON-able object (used to tell whether cached outputs are still valid)."""
    import hashlib

    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
