"""Per-scene trajectory settings of the reference, shipped as ``feat2gs/resources/trajectories.csv``.

The reference (fanegg/Feat2GS @0930a18, ``utils/camera_traj_config.py``) tunes the video trajectories per
(dataset, scene): the up axis and its sign, the arc's sweep, the spiral's z-rate and rotations, the
lemniscate's opening and the wander displacement. The shipped table is a verbatim transcription (42 scenes;
one row per scene, an empty cell = the reference gives no value there). Resolution order of each setting::

    explicit setting (--set video.<name>=...)  >  the scene's table cell  >  DEFAULTS

Columns: ``dataset, scene, up, arc_degree, spiral_zrate, spiral_rots, lemniscate_degree, wander_max_disp``;
``up`` is ``[sign, column]`` (up = ``sign · avg_c2w[:3, column]``), read into ``up_sign`` and ``up_axis``.
Datasets and scenes match case-insensitively; the reference calls the casual scenes ``Infer``, so a
``Casual`` dataset is also looked up as ``Infer`` (and ``MVImgNet``/``MVimgNet``, ``Tanks``/``TanksAndTemples``
… are the same dataset).
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feat2gs.errors import ConfigError

# setting -> default (the reference's defaults, used where the table has no row or an empty cell)
DEFAULTS: dict[str, float | int] = {"up_sign": -1, "up_axis": 1, "arc_degree": 180.0, "spiral_zrate": 0.5,
                                    "spiral_rots": 1.0, "lemniscate_degree": 45.0, "wander_max_disp": 48.0}
SETTINGS = tuple(DEFAULTS)
# trajectory -> {builder keyword: setting} (the options of feat2gs.video.trajectories.make_trajectory)
TRAJECTORY_OPTIONS: dict[str, dict[str, str]] = {
    "arc": {"degree": "arc_degree", "up_sign": "up_sign", "up_axis": "up_axis"},
    "lemniscate": {"degree": "lemniscate_degree", "up_sign": "up_sign", "up_axis": "up_axis"},
    "spiral": {"zrate": "spiral_zrate", "rots": "spiral_rots", "up_sign": "up_sign", "up_axis": "up_axis"},
    "wander": {"max_disp": "wander_max_disp"},
    "ellipse": {},
    "interpolated": {},
}
# our dataset folder names (lower case) -> the reference table's (lower case)
DATASET_ALIASES = {"casual": "infer", "mipnerf_360": "mipnerf360", "mip360": "mipnerf360", "tt": "tanks",
                   "tanksandtemples": "tanks", "tanks_and_temples": "tanks", "tanks_temples": "tanks"}
TABLE_COLUMNS = ("dataset", "scene", "up", "arc_degree", "spiral_zrate", "spiral_rots", "lemniscate_degree",
                 "wander_max_disp")


def default_table_path() -> Path:
    from feat2gs.resources import resource_path

    return resource_path("trajectories.csv")


def parse_up(text: str, where: str = "up") -> tuple[int, int]:
    """``"[-1, 1]"`` or ``"-1,1"`` -> (sign, axis) with sign ±1 and axis 0, 1 or 2."""
    m = re.fullmatch(r"\s*\[?\s*([+-]?\d+(?:\.0*)?)\s*,\s*(\d+)\s*\]?\s*", text)
    if not m:
        raise ConfigError(f"{where}: expected [sign, axis] such as [-1, 1], got {text!r}")
    sign, axis = int(float(m.group(1))), int(m.group(2))
    if sign not in (-1, 1) or axis not in (0, 1, 2):
        raise ConfigError(f"{where}: sign must be -1 or 1 and axis 0, 1 or 2, got {text!r}")
    return sign, axis


@functools.lru_cache(maxsize=8)
def load_trajectory_table(path: str | Path | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """(dataset, scene) in lower case -> the settings its row gives (empty cells left out) and, under ``"row"``,
    the row's ``<Dataset>/<scene>`` as spelled in the table."""
    path = Path(path) if path is not None else default_table_path()
    try:
        rows = list(csv.DictReader(path.open(newline="")))
    except OSError as exc:
        raise ConfigError(f"cannot read the trajectory table {path}: {exc.strerror}") from exc
    if not rows or tuple(rows[0]) != TABLE_COLUMNS:
        raise ConfigError(f"{path}: expected the columns {', '.join(TABLE_COLUMNS)}")
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{path.name}:{line}"
        key = (row["dataset"].strip().lower(), row["scene"].strip().lower())
        if key in table:
            raise ConfigError(f"{where}: {row['dataset']}/{row['scene']} appears twice")
        values: dict[str, Any] = {"row": f"{row['dataset'].strip()}/{row['scene'].strip()}"}
        if row["up"].strip():
            values["up_sign"], values["up_axis"] = parse_up(row["up"], where)
        for name in TABLE_COLUMNS[3:]:
            cell = (row[name] or "").strip()
            if not cell:
                continue
            try:
                values[name] = float(cell)
            except ValueError:
                raise ConfigError(f"{where}: {name}={cell!r} is not a number") from None
        table[key] = values
    return table


@dataclass(frozen=True)
class TrajectorySettings:
    """The settings of one scene, each with where it came from (``setting``, ``table`` or ``default``)."""

    dataset: str | None
    scene: str | None
    values: dict[str, float | int]
    sources: dict[str, str]
    table_row: str | None = None  # "<Dataset>/<scene>" of the table row used (as spelled in the table)

    def for_trajectory(self, trajectory: str) -> dict[str, float | int]:
        """Keyword options of ``make_trajectory(trajectory, ...)``."""
        if trajectory not in TRAJECTORY_OPTIONS:
            raise ConfigError(f"unknown trajectory {trajectory!r}; valid: {', '.join(TRAJECTORY_OPTIONS)}")
        return {kw: self.values[name] for kw, name in TRAJECTORY_OPTIONS[trajectory].items()}

    def to_dict(self, trajectory: str | None = None) -> dict[str, Any]:
        """JSON-able record (what step 6 writes beside the trajectory)."""
        out: dict[str, Any] = {"dataset": self.dataset, "scene": self.scene, "table_row": self.table_row,
                               "settings": dict(self.values), "sources": dict(self.sources)}
        if trajectory is not None:
            names = set(TRAJECTORY_OPTIONS.get(trajectory, {}).values())
            out["trajectory"] = trajectory
            out["params"] = self.for_trajectory(trajectory)
            out["sources"] = {k: v for k, v in self.sources.items() if k in names}
        return out


def _table_row(table: Mapping, dataset: str, scene: str) -> tuple[str, str] | None:
    d, s = dataset.strip().lower(), scene.strip().lower()
    for candidate in dict.fromkeys((d, DATASET_ALIASES.get(d, d), d.replace("_", ""))):
        if (candidate, s) in table:
            return candidate, s
    return None


def _override_value(overrides: Any, name: str) -> Any:
    if overrides is None:
        return None
    if isinstance(overrides, Mapping):
        return overrides.get(name)
    return getattr(overrides, name, None)


def scene_trajectory_settings(dataset: str | None, scene: str | None, overrides: Any = None,
                              table_path: str | Path | None = None) -> TrajectorySettings:
    """All trajectory settings of ``dataset``/``scene``: explicit ``overrides`` (a ``VideoConfig`` or a mapping;
    ``None`` values mean "not set"), else the shipped table's cell, else :data:`DEFAULTS`. Without a dataset
    and scene only overrides and defaults apply."""
    table = load_trajectory_table(str(table_path) if table_path is not None else None)
    key = _table_row(table, dataset, scene) if dataset is not None and scene is not None else None
    row = table[key] if key is not None else {}
    values: dict[str, float | int] = {}
    sources: dict[str, str] = {}
    for name, default in DEFAULTS.items():
        explicit = _override_value(overrides, name)
        if explicit is not None:
            values[name], sources[name] = explicit, "setting"
        elif name in row:
            values[name], sources[name] = row[name], "table"
        else:
            values[name], sources[name] = default, "default"
        values[name] = int(values[name]) if name in ("up_sign", "up_axis") else float(values[name])
    if values["up_sign"] not in (-1, 1) or values["up_axis"] not in (0, 1, 2):
        raise ConfigError(f"video.up_sign={values['up_sign']}, video.up_axis={values['up_axis']}: "
                          "expected a sign of -1 or 1 and an axis of 0, 1 or 2")
    return TrajectorySettings(dataset, scene, values, sources, row.get("row"))


def trajectory_params(dataset: str | None, scene: str | None, trajectory: str, overrides: Any = None,
                      table_path: str | Path | None = None) -> dict[str, float | int]:
    """Keyword options of ``make_trajectory(trajectory, ...)`` for a scene (see :func:`scene_trajectory_settings`),
    e.g. ``{"degree": 330.0, "up_sign": -1, "up_axis": 1}`` for an arc of Tanks/Ignatius."""
    return scene_trajectory_settings(dataset, scene, overrides, table_path).for_trajectory(trajectory)
