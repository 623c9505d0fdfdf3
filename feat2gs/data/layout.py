"""The dataset layout of the published benchmark and the output layout of a probing job.

Dataset::

    <root>/dataset_split.json                 {Dataset: {scene: {train: [stems], test: [stems]}}}
    <root>/<Dataset>/<scene>/images/          all views
    <root>/<Dataset>/<scene>/<N>_views/images/  the N train views
    <root>/<Dataset>/<scene>/gt/{cameras,images}.txt, depths/<stem>.npy   (optional, for --method gt)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from feat2gs.data.images import IMAGE_EXTENSIONS
from feat2gs.errors import DatasetError
from feat2gs.gaussians.modes import BASELINE_MODE as BASELINE

PROTOCOL_IMAGE_SIZE = 512
SPLIT_FILE = "dataset_split.json"


def load_split(root: str | Path) -> dict:
    path = Path(root) / SPLIT_FILE
    if not path.is_file():
        raise DatasetError(f"missing split file {path} (expected {{Dataset: {{scene: {{train: [...], test: [...]}}}}}})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc


def read_split_for_update(root: str | Path) -> dict:
    """The split file's content ({} when absent), checked to be writable back: raises if it is broken."""
    path = Path(root) / SPLIT_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"split file {path} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DatasetError(f"split file {path} must map dataset -> scene -> {{'train': [...], 'test': [...]}}")
    return data


def merge_split(root: str | Path, dataset: str, scene: str, train: list[str], test: list[str]) -> None:
    """Add or replace one scene's entry in ``<root>/dataset_split.json``, keeping every other entry."""
    from feat2gs.io import atomic_write_json, file_lock

    root = Path(root)
    with file_lock(root / f".{SPLIT_FILE}.lock"):
        split = read_split_for_update(root)
        split.setdefault(dataset, {})[scene] = {"train": sorted(train), "test": sorted(test)}
        atomic_write_json(root / SPLIT_FILE, split)


def job_folder(out_root: str | Path, dataset: str, scene: str, n_views: int, mode: str, method: str, feature: str,
               preset: str) -> Path:
    """``<out>/eval/<Dataset>/<scene>/<N>_views/feat2gs-<mode>[@<preset>]/<method>/<feature>/`` (``@<preset>`` for
    every preset but ``protocol``, so quick runs never overwrite protocol results); the InstantSplat baseline, which
    reads no feature, in ``.../instantsplat[@<preset>]/<method>/`` as the reference. The one place a job's folder is
    made; :func:`parse_job_folder` reads it back."""
    suffix = "" if preset == "protocol" else f"@{preset}"
    views = Path(out_root) / "eval" / dataset / scene / f"{n_views}_views"
    if mode == BASELINE:
        return views / f"{BASELINE}{suffix}" / method
    return views / f"feat2gs-{mode}{suffix}" / method / feature


def parse_job_folder(parts: tuple[str, ...]) -> dict | None:
    """The path parts under ``<out>/eval`` of a job folder -> its identity, or None when it is not one."""
    if len(parts) == 5:  # the baseline: no feature level
        dataset, scene, views, folder, method = parts
        m_folder = re.fullmatch(rf"({BASELINE})(?:@(.+))?", folder)
        feature = BASELINE
    elif len(parts) == 6:
        dataset, scene, views, folder, method, feature = parts
        m_folder = re.fullmatch(r"feat2gs-([^@]+)(?:@(.+))?", folder)
    else:
        return None
    m_views = re.fullmatch(r"(\d+)_views", views)
    if not m_views or not m_folder:
        return None
    return {"dataset": dataset, "scene": scene, "n_views": int(m_views.group(1)), "mode": m_folder.group(1),
            "preset": m_folder.group(2) or "protocol", "method": method, "feature": feature}


def _index_images(directory: Path) -> dict[str, str]:
    """stem -> file name for the image files of a directory."""
    if not directory.is_dir():
        raise DatasetError(f"missing image folder {directory}")
    index: dict[str, str] = {}
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix in IMAGE_EXTENSIONS:
            index[p.stem] = p.name
    return index


@dataclass(frozen=True)
class SceneLayout:
    """Validated paths and view lists of one scene."""

    root: Path
    dataset: str
    scene: str
    train_names: tuple[str, ...]  # file names, sorted
    test_names: tuple[str, ...]

    @classmethod
    def open(cls, root: str | Path, dataset: str, scene: str) -> "SceneLayout":
        root = Path(root)
        split = load_split(root)
        if dataset not in split:
            raise DatasetError(f"dataset {dataset!r} not in {root / 'dataset_split.json'} (has: {', '.join(split)})")
        if scene not in split[dataset]:
            raise DatasetError(
                f"scene {scene!r} not in {root / 'dataset_split.json'}[{dataset!r}] (has: {', '.join(split[dataset])})"
            )
        entry = split[dataset][scene]
        train, test = sorted(entry.get("train", [])), sorted(entry.get("test", []))
        if not train:
            raise DatasetError(f"{root / 'dataset_split.json'}: {dataset}/{scene} has an empty train list")
        scene_dir = root / dataset / scene
        if not scene_dir.is_dir():
            raise DatasetError(f"missing scene folder {scene_dir}")
        all_images = _index_images(scene_dir / "images")
        missing = [s for s in train + test if s not in all_images]
        if missing:
            raise DatasetError(f"{scene_dir / 'images'} lacks images listed in the split: {', '.join(missing[:5])}")
        views_dir = scene_dir / f"{len(train)}_views" / "images"
        train_images = _index_images(views_dir)
        if sorted(train_images) != train:
            raise DatasetError(
                f"{views_dir} holds {sorted(train_images)} but the split's train list is {train} "
                f"(N={len(train)}); rebuild the dataset or fix dataset_split.json"
            )
        return cls(root, dataset, scene, tuple(all_images[s] for s in train), tuple(all_images[s] for s in test))

    @property
    def n_views(self) -> int:
        return len(self.train_names)

    @property
    def scene_dir(self) -> Path:
        return self.root / self.dataset / self.scene

    @property
    def images_dir(self) -> Path:
        return self.scene_dir / "images"

    @property
    def views_dir(self) -> Path:
        return self.scene_dir / f"{self.n_views}_views"

    @property
    def train_images_dir(self) -> Path:
        return self.views_dir / "images"

    def train_paths(self) -> list[Path]:
        return [self.train_images_dir / n for n in self.train_names]

    def test_paths(self) -> list[Path]:
        return [self.images_dir / n for n in self.test_names]

    @property
    def gt_dir(self) -> Path:
        return self.scene_dir / "gt"

    def depth_path(self, name: str) -> Path:
        return self.scene_dir / "depths" / f"{Path(name).stem}.npy"

    @staticmethod
    def method_folder(method: str, image_size: int) -> str:
        """``dust3r`` at the protocol size (published layout); ``dust3r@64px`` for other working sizes."""
        return method if image_size == PROTOCOL_IMAGE_SIZE else f"{method}@{image_size}px"

    def step1_dir(self, method: str, feat_string: str, image_size: int) -> Path:
        return self.views_dir / "sparse" / "0" / self.method_folder(method, image_size) / feat_string

    def test_view_dir(self, method: str, image_size: int) -> Path:
        return self.views_dir / "test_view" / "sparse" / "0" / self.method_folder(method, image_size)

    def job_dir(self, out_root: str | Path, mode: str, method: str, feat_string: str, preset: str) -> Path:
        return job_folder(out_root, self.dataset, self.scene, self.n_views, mode, method, feat_string, preset)
