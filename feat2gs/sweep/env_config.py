"""Build a sweep config from the environment of ``scripts/run_feat2gs_eval_parallel.sh`` and write it as YAML.

    python -m feat2gs.sweep.env_config OUT.yaml

Reads DATA_ROOT, OUTPUT_ROOT (written as absolute paths), SCENES ("Dataset/scene ..."; empty = every scene of dataset_split.json),
FEATURES, MODES, METHOD, PRESET, RENDER_TRAJ, RETRIES and EXTRA_ARGS (``--set section.field=value`` items).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import yaml

from feat2gs.errors import ConfigError, Feat2GSError
from feat2gs.io import atomic_write_text


def _overrides(extra: str) -> list[str]:
    tokens = shlex.split(extra)
    out = []
    while tokens:
        flag = tokens.pop(0)
        if flag == "--set" and tokens:
            out.append(tokens.pop(0))
        elif flag.startswith("--set="):
            out.append(flag.split("=", 1)[1])
        else:
            raise ConfigError(f"EXTRA_ARGS may only hold '--set section.field=value' items, got {flag!r}")
    return out


def config_from_env(env: dict[str, str]) -> dict:
    datasets: dict[str, list[str] | str] = {}
    scenes = env.get("SCENES", "").split()
    if scenes:
        for entry in scenes:
            if "/" not in entry:
                raise ConfigError(f"SCENES entries are Dataset/scene, got {entry!r}")
            dataset, scene = entry.split("/", 1)
            datasets.setdefault(dataset, []).append(scene)
    else:
        from feat2gs.data.layout import load_split

        datasets = {name: "all" for name in load_split(env.get("DATA_ROOT", "example/data"))}
    overrides = _overrides(env.get("EXTRA_ARGS", ""))
    if env.get("RENDER_TRAJ"):
        overrides.append(f"video.trajectory={env['RENDER_TRAJ']}")
    return {  # absolute paths: the written file means the same from any working directory
        "data_root": str(Path(env.get("DATA_ROOT", "example/data")).absolute()),
        "output_root": str(Path(env.get("OUTPUT_ROOT", "example/output")).absolute()),
        "datasets": datasets,
        "features": env.get("FEATURES", "iuvrgb noise oracle_xyz").split(),
        "modes": env.get("MODES", "G T").split(),
        "method": env.get("METHOD", "gt"),
        "preset": env.get("PRESET", "quick"),
        "overrides": overrides,
        "retries": int(env.get("RETRIES", "1")),
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m feat2gs.sweep.env_config OUT.yaml")
    try:
        atomic_write_text(Path(sys.argv[1]), yaml.safe_dump(config_from_env(dict(os.environ)), sort_keys=False))
    except Feat2GSError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
