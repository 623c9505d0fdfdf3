"""Turn a sweep config into concrete jobs, validating every name and scene before anything runs.

A :class:`JobSpec` is one (dataset, scene, feature string, mode) job; an :class:`InitSpec` is one step-1 unit
(scene × method × feature string) shared by all modes of that feature. Both are small picklable values that
an executor ships to a worker (process pool or Slurm) which calls :func:`feat2gs.sweep.executors.run_spec`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from feat2gs.config import ExperimentConfig, make_config
from feat2gs.data.layout import SceneLayout, job_folder, load_split
from feat2gs.errors import ConfigError, DatasetError, Feat2GSError
from feat2gs.sweep.config import ALL, SweepConfig


@dataclass(frozen=True)
class InitSpec:
    """Step 1 for one (scene, method, feature string)."""

    data_root: str
    dataset: str
    scene: str
    method: str
    feature: str  # canonical feature string
    preset: str
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:  # same as the bash driver's log names
        return f"init-{self.dataset}-{self.scene}-{self.method}-{self.feature}"

    def config(self, device: str | None = None) -> ExperimentConfig:
        extra = [f"init.method={self.method}"] + ([f"device={device}"] if device else [])
        return make_config(self.preset, [*self.overrides, *extra])


@dataclass(frozen=True)
class JobSpec:
    """Steps 1–6 of one (scene, feature string, mode) job."""

    data_root: str
    output_root: str
    dataset: str
    scene: str
    feature: str
    mode: str
    method: str
    preset: str
    overrides: tuple[str, ...]
    n_views: int
    video: bool = True

    @property
    def name(self) -> str:
        return f"{self.mode}-{self.dataset}-{self.scene}-{self.method}-{self.feature}"

    @property
    def init(self) -> InitSpec:
        return InitSpec(self.data_root, self.dataset, self.scene, self.method, self.feature, self.preset,
                        self.overrides)

    def config(self, device: str | None = None) -> ExperimentConfig:
        return self.init.config(device)

    @property
    def job_dir(self) -> Path:
        return job_folder(self.output_root, self.dataset, self.scene, self.n_views, self.mode, self.method,
                          self.feature, self.preset)


def _scenes(cfg: SweepConfig, split: dict, errors: list[Feat2GSError]) -> list[tuple[str, str]]:
    split_file = cfg.data_root / "dataset_split.json"
    out: list[tuple[str, str]] = []
    for dataset, scenes in cfg.datasets.items():
        if dataset not in split:
            errors.append(DatasetError(f"datasets: {dataset!r} is not in {split_file} (has: {', '.join(split)})"))
            continue
        names = list(split[dataset]) if scenes == ALL else scenes
        for scene in names:
            if scene not in split[dataset]:
                errors.append(DatasetError(f"datasets.{dataset}: scene {scene!r} is not in {split_file}[{dataset!r}] "
                                           f"(has: {', '.join(split[dataset])})"))
            else:
                out.append((dataset, scene))
    return out


def validate(cfg: SweepConfig) -> tuple[list[str], list[SceneLayout]]:
    """Check preset, overrides, method, features, modes and every scene (split lists vs. images on disk).

    Returns the canonical feature strings and the opened scenes; raises one :class:`ConfigError` or
    :class:`DatasetError` listing every problem, each naming its config entry.
    """
    from feat2gs.features import parse_feature_string
    from feat2gs.gaussians import get_mode
    from feat2gs.init.base import get_init

    errors: list[Feat2GSError] = []

    def check(entry: str, fn):
        try:
            return fn()
        except Feat2GSError as exc:
            errors.append(type(exc)(f"{entry}: {exc}"))
            return None

    check("preset/overrides", lambda: make_config(cfg.preset, cfg.overrides))
    check(f"method {cfg.method!r}", lambda: get_init(cfg.method))
    features: list[str] = []
    for i, feat in enumerate(cfg.features):
        specs = check(f"features[{i}] {feat!r}", lambda feat=feat: parse_feature_string(feat))
        if specs:
            canon = "-".join(s.name for s in specs)
            if canon in features:
                errors.append(ConfigError(f"features[{i}] {feat!r}: listed twice"))
            else:
                features.append(canon)
    for i, mode in enumerate(cfg.modes):
        check(f"modes[{i}] {mode!r}", lambda mode=mode: get_mode(mode))
    if len(set(cfg.modes)) != len(cfg.modes):
        errors.append(ConfigError(f"modes {cfg.modes}: a mode is listed twice"))

    layouts: list[SceneLayout] = []
    split = check("data_root", lambda: load_split(cfg.data_root))
    if split is not None:
        for dataset, scene in _scenes(cfg, split, errors):
            layout = check(f"datasets.{dataset}.{scene}", lambda d=dataset, s=scene: SceneLayout.open(cfg.data_root, d, s))
            if layout is not None:
                layouts.append(layout)
    if errors:
        kind = DatasetError if all(isinstance(e, DatasetError) for e in errors) else ConfigError
        if len(errors) == 1:
            raise kind(f"{cfg.source}: {errors[0]}")
        raise kind(f"{cfg.source}: {len(errors)} problems:\n" + "\n".join(f"  - {e}" for e in errors))
    return features, layouts


def plan(cfg: SweepConfig) -> list[JobSpec]:
    """All jobs of the sweep, mode-major (the order of the bash driver); validates first. A baseline mode
    (instantsplat) reads no feature: one job per scene."""
    from feat2gs.gaussians import get_mode
    from feat2gs.gaussians.modes import BASELINE_FEATURE

    features, layouts = validate(cfg)
    return [JobSpec(str(cfg.data_root), str(cfg.output_root), lay.dataset, lay.scene, feat, mode, cfg.method,
                    cfg.preset, tuple(cfg.overrides), lay.n_views, cfg.video)
            for mode in cfg.modes for lay in layouts
            for feat in (features if get_mode(mode).needs_feature else [BASELINE_FEATURE])]  # the baseline: 1 a scene


def init_units(jobs: list[JobSpec]) -> list[InitSpec]:
    """The unique step-1 units (scene × method × feature string) of ``jobs``, in first-use order."""
    return list(dict.fromkeys(j.init for j in jobs))


def job_status(spec: JobSpec) -> str:
    """``done`` (results.json written and run.json records metrics — and the video when the sweep makes one),
    ``partial`` (some steps recorded) or ``pending``. A proxy for "Job.run_all would skip everything": it does
    not recompute step keys, so settings changed under the same folder still read as done."""
    run = spec.job_dir / "run.json"
    try:
        steps = json.loads(run.read_text()).get("steps", {}) if run.is_file() else {}
    except (json.JSONDecodeError, OSError):
        steps = {}
    complete = (spec.job_dir / "results.json").is_file() and "metrics" in steps
    if complete and spec.video:
        complete = f"video_{spec.config().video.trajectory}" in steps
    if complete:
        return "done"
    return "partial" if steps else "pending"
