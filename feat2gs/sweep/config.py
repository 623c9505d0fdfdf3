"""Sweep configuration: one YAML file describing datasets × scenes × features × modes and where to run them.

```yaml
data_root: example/data          # relative paths are taken from the current directory
output_root: example/output
datasets: {Synthetic: all}       # {Dataset: [scenes] | all}
features: [iuvrgb, noise]        # feature strings; concatenations such as dino_b16-iuvrgb are allowed
modes: [G, T]
method: gt
preset: quick
overrides: [train.iterations=300]   # section.field=value, as `--set`
retries: 1
video: true
slurm: {partition: gpu, time_min: 120, gpus_per_node: 1, cpus_per_task: 8, mem_gb: 32, array_parallelism: 64}
```

Loading only checks the file's shape; :func:`feat2gs.sweep.plan.validate` checks names against the registries and
the dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feat2gs.config import load_yaml
from feat2gs.errors import ConfigError

ALL = "all"


@dataclass
class SlurmConfig:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 120
    gpus_per_node: int = 1  # 0: no GPU requested
    cpus_per_task: int = 8
    mem_gb: float | None = 32
    array_parallelism: int = 64
    additional: dict[str, Any] = field(default_factory=dict)  # extra sbatch options, e.g. {constraint: a100}


@dataclass
class SweepConfig:
    data_root: Path
    output_root: Path
    datasets: dict[str, list[str] | str]
    features: list[str]
    modes: list[str]
    method: str = "dust3r"
    preset: str = "protocol"
    overrides: list[str] = field(default_factory=list)
    retries: int = 1
    video: bool = True
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    source: str = "<dict>"  # where the config came from (for messages)

    @property
    def log_dir(self) -> Path:
        return self.output_root / "logs"

    @property
    def lock_dir(self) -> Path:
        """Slot locks, shared with scripts/run_feat2gs_eval_parallel.sh (its default LOCK_DIR)."""
        return self.output_root / ".locks"

    @property
    def slurm_folder(self) -> Path:
        return self.output_root / "slurm_logs" / "%j"


_REQUIRED = ("data_root", "output_root", "datasets", "features", "modes")
_SLURM_INT = ("time_min", "gpus_per_node", "cpus_per_task", "array_parallelism")


def _path(value: Any, key: str, source: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ConfigError(f"{source}: {key} must be a path, got {value!r}")
    return Path(os.path.expandvars(os.path.expanduser(str(value)))).absolute()


def _str_list(value: Any, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{source}: {key} must be a non-empty list of strings, got {value!r}")
    return [v.strip() for v in value]


def _slurm(data: Any, source: str) -> SlurmConfig:
    if data is None:
        return SlurmConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: slurm must be a mapping, got {data!r}")
    known = SlurmConfig.__dataclass_fields__
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown slurm option(s) {', '.join(unknown)} (valid: {', '.join(known)})")
    out = SlurmConfig(**{k: v for k, v in data.items() if v is not None or k in ("partition", "account", "qos",
                                                                                      "mem_gb")})
    for key in _SLURM_INT:
        value = getattr(out, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value == 0 and key != "gpus_per_node"):
            raise ConfigError(f"{source}: slurm.{key} must be a {'non-negative' if key == 'gpus_per_node' else 'positive'}"
                              f" integer, got {value!r}")
    if out.mem_gb is not None and (not isinstance(out.mem_gb, (int, float)) or isinstance(out.mem_gb, bool)
                                   or out.mem_gb <= 0):
        raise ConfigError(f"{source}: slurm.mem_gb must be a positive number, got {out.mem_gb!r}")
    for key in ("partition", "account", "qos"):
        value = getattr(out, key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{source}: slurm.{key} must be a string, got {value!r}")
    if not isinstance(out.additional, dict):
        raise ConfigError(f"{source}: slurm.additional must be a mapping of sbatch options, got {out.additional!r}")
    return out


def sweep_config_from_dict(data: Any, source: str = "<dict>") -> SweepConfig:
    """Build a :class:`SweepConfig` from parsed YAML; every shape error names the entry."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    known = set(SweepConfig.__dataclass_fields__) - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} (valid: {', '.join(sorted(known))})")
    missing = [k for k in _REQUIRED if data.get(k) in (None, "", [], {})]
    if missing:
        raise ConfigError(f"{source}: missing required key(s) {', '.join(missing)}")

    datasets = data["datasets"]
    if isinstance(datasets, list):  # [LLFF, DTU] -> all scenes of each
        datasets = {d: ALL for d in datasets}
    if not isinstance(datasets, dict):
        raise ConfigError(f"{source}: datasets must map Dataset -> [scenes] or 'all', got {datasets!r}")
    parsed: dict[str, list[str] | str] = {}
    for name, scenes in datasets.items():
        if scenes is None or (isinstance(scenes, str) and scenes.strip().lower() == ALL):
            parsed[str(name)] = ALL
        else:
            parsed[str(name)] = _str_list(scenes, f"datasets.{name}", source)

    modes = _str_list(data["modes"], "modes", source)
    features = _str_list(data["features"], "features", source)
    overrides = data.get("overrides") or []
    if isinstance(overrides, dict):  # {train.iterations: 300} is accepted too
        overrides = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in overrides.items()]
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{source}: overrides must be a list of 'section.field=value' strings, got {overrides!r}")
    for i, item in enumerate(overrides):
        if "=" not in item:
            raise ConfigError(f"{source}: overrides[{i}] {item!r} is not section.field=value")
        if item.split("=", 1)[0].strip() in ("init.method", "preset"):
            raise ConfigError(f"{source}: overrides[{i}] {item!r}: use the top-level 'method'/'preset' keys")
    retries = data.get("retries", 1)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"{source}: retries must be a non-negative integer, got {retries!r}")
    video = data.get("video", True)
    if not isinstance(video, bool):
        raise ConfigError(f"{source}: video must be true or false, got {video!r}")
    for key in ("method", "preset"):
        if key in data and not (isinstance(data[key], str) and data[key]):
            raise ConfigError(f"{source}: {key} must be a name, got {data[key]!r}")
    return SweepConfig(
        data_root=_path(data["data_root"], "data_root", source),
        output_root=_path(data["output_root"], "output_root", source),
        datasets=parsed, features=features, modes=modes,
        method=data.get("method", "dust3r"), preset=data.get("preset", "protocol"),
        overrides=[o.strip() for o in overrides], retries=retries, video=video,
        slurm=_slurm(data.get("slurm"), source), source=source,
    )


def load_sweep_config(path: str | Path) -> SweepConfig:
    """A sweep YAML file, or a shipped example by name (``example``, ``feat2gs_benchmark``)."""
    from feat2gs.resources import resource_path, shipped_sweeps

    path = Path(path)
    if not path.is_file() and str(path) in shipped_sweeps():
        path = resource_path(f"sweeps/{path}.yaml")
    if not path.is_file():
        raise ConfigError(f"sweep config {path} not found (shipped examples: {', '.join(shipped_sweeps())})")
    return sweep_config_from_dict(load_yaml(path), str(path))
