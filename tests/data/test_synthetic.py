"""The procedural example scene: layout, split file, determinism, overwrite protection and multi-view consistency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.synthetic import make_scene
from feat2gs.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return make_scene(root, n_train=3, n_test=3, width=128, height=96, seed=0)


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _image(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample img [H, W, ...] at continuous pixel-index coordinates (x, y) (pixel centres at integers)."""
    x0 = np.clip(np.floor(x).astype(int), 0, img.shape[1] - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, img.shape[0] - 2)
    fx, fy = x - x0, y - y0
    if img.ndim == 3:
        fx, fy = fx[:, None], fy[:, None]
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _reproject(src, dst, depth_src, depth_dst):
    """Pixels of ``src`` lifted with their depth and projected into ``dst``.

    Returns (source pixel mask [H, W], continuous pixel-index coordinates in dst, inverse-depth check passed)."""
    H, W = depth_src.shape
    v, u = np.mgrid[0:H, 0:W]
    pix = np.stack([u + 0.5, v + 0.5, np.ones_like(u, dtype=float)], axis=-1).reshape(-1, 3)
    z = depth_src.reshape(-1).astype(np.float64)
    X_cam = (pix @ np.linalg.inv(src.K).T) * z[:, None]
    X_world = X_cam @ src.c2w[:3, :3].T + src.c2w[:3, 3]
    Y = X_world @ dst.w2c[:3, :3].T + dst.w2c[:3, 3]
    uv = Y @ dst.K.T
    x, y = uv[:, 0] / uv[:, 2] - 0.5, uv[:, 1] / uv[:, 2] - 0.5
    inside = (z > 0) & (Y[:, 2] > 0) & (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    x, y, zp = x[inside], y[inside], Y[inside, 2]
    inv_dst = np.where(depth_dst > 0, 1.0 / np.maximum(depth_dst, 1e-9), 0.0)
    inv_lookup = _bilinear(inv_dst, x, y)  # inverse depth is affine in the image for planes: exact there
    consistent = np.abs(inv_lookup * zp - 1.0) < 0.01
    return inside.reshape(H, W), x, y, consistent


def test_layout_and_split_agree(scene: Path):
    root = scene.parent.parent
    assert scene == root / "Synthetic" / "blocks"
    split = json.loads((root / "dataset_split.json").read_text())
    train, test = split["Synthetic"]["blocks"]["train"], split["Synthetic"]["blocks"]["test"]
    assert len(train) == 3 and len(test) == 3 and train == sorted(train) and test == sorted(test)
    stems = sorted(p.stem for p in (scene / "images").glob("*.png"))
    assert stems == sorted(train + test) == [f"view_{i:03d}" for i in range(6)]
    # test views are interpolations: strictly inside the range of train views along the path
    assert stems[0] in train and stems[-1] in train
    assert sorted(p.name for p in (scene / "3_views" / "images").iterdir()) == [f"{s}.png" for s in train]
    for s in train:
        assert (scene / "3_views" / "images" / f"{s}.png").read_bytes() == (scene / "images" / f"{s}.png").read_bytes()
    cams = read_colmap_model(scene / "gt")
    assert [c.name for c in cams] == [f"{s}.png" for s in stems]
    for c in cams:
        assert (c.width, c.height) == (128, 96)
        assert c.K[0, 0] == pytest.approx(0.9 * 128) and c.K[1, 1] == pytest.approx(0.9 * 128)
        assert (c.K[0, 2], c.K[1, 2]) == (64.0, 48.0)
    # cameras ordered along a gentle arc, all looking towards the scene
    centres = np.array([c.center for c in cams])
    assert np.all(np.diff(centres[:, 0]) > 0)
    forward = np.array([c.c2w[:3, 2] for c in cams])
    angles = np.degrees(np.arccos(np.clip(forward @ forward[len(cams) // 2], -1, 1)))
    assert angles.max() < 25
    for s in stems:
        depth = np.load(scene / "depths" / f"{s}.npy")
        img = _image(scene / "images" / f"{s}.png")
        assert depth.dtype == np.float32 and depth.shape == (96, 128) and img.shape == (96, 128, 3)
        assert (depth > 0).all()  # closed scene: every pixel hits a surface
        assert 1.5 < depth.min() and depth.max() < 8.0
        # textured: plenty of high-frequency detail and several colours
        assert np.abs(np.diff(img, axis=1)).mean() > 0.015
        assert len(np.unique((img * 7).round().reshape(-1, 3), axis=0)) > 20
    assert not list(root.rglob("*.tmp*"))


@pytest.mark.parametrize("n_train,n_test", [(2, 3), (4, 2), (5, 1), (3, 0)])
def test_split_interleaves(tmp_path: Path, n_train: int, n_test: int):
    scene = make_scene(tmp_path, n_train=n_train, n_test=n_test, width=16, height=12)
    split = json.loads((tmp_path / "dataset_split.json").read_text())["Synthetic"]["blocks"]
    assert len(split["train"]) == n_train and len(split["test"]) == n_test
    order = sorted(split["train"] + split["test"])
    positions = [order.index(s) for s in split["test"]]
    train_positions = [order.index(s) for s in split["train"]]
    assert all(min(train_positions) < p < max(train_positions) for p in positions)
    assert len(list((scene / f"{n_train}_views" / "images").iterdir())) == n_train
    assert len(read_colmap_model(scene / "gt")) == n_train + n_test


def test_determinism(tmp_path: Path):
    kw = dict(n_train=2, n_test=1, width=48, height=36)
    a = make_scene(tmp_path / "a", seed=3, **kw)
    b = make_scene(tmp_path / "b", seed=3, **kw)
    c = make_scene(tmp_path / "c", seed=4, **kw)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    assert (tmp_path / "a" / "dataset_split.json").read_bytes() == (tmp_path / "b" / "dataset_split.json").read_bytes()
    assert set(fa) == set(fc)
    assert all(fa[k] != fc[k] for k in fa if k.startswith("images/"))


def _check_consistency(scene: Path, i: str, j: str):
    cams = {Path(c.name).stem: c for c in read_colmap_model(scene / "gt")}
    di, dj = np.load(scene / "depths" / f"{i}.npy"), np.load(scene / "depths" / f"{j}.npy")
    inside, x, y, consistent = _reproject(cams[i], cams[j], di, dj)
    img_i, img_j = _image(scene / "images" / f"{i}.png"), _image(scene / "images" / f"{j}.png")
    colour_i = img_i[inside][consistent]
    colour_j = _bilinear(img_j, x[consistent], y[consistent])
    err = np.abs(colour_i - colour_j).mean(axis=1)
    return inside.mean(), consistent.mean(), err


@pytest.mark.parametrize("pair", [("view_000", "view_001"), ("view_002", "view_003"), ("view_000", "view_005"),
                                  ("view_005", "view_002")])
def test_multiview_consistency(scene: Path, pair):
    visible, consistent, err = _check_consistency(scene, *pair)
    assert visible > 0.6
    assert consistent > 0.8  # the rest: occlusions and depth edges
    assert np.median(err) < 0.03
    assert np.mean(err < 0.1) > 0.85


def test_consistency_check_detects_wrong_camera(tmp_path: Path, scene: Path):
    broken = tmp_path / "broken"
    (broken / "gt").mkdir(parents=True)
    (broken / "gt" / "cameras.txt").write_text((scene / "gt" / "cameras.txt").read_text())
    lines = (scene / "gt" / "images.txt").read_text().splitlines()
    data = [k for k, ln in enumerate(lines) if ln and not ln.startswith("#")]
    # give view_005 the pose of view_003
    tok3, tok5 = lines[data[3]].split(), lines[data[5]].split()
    lines[data[5]] = " ".join(tok3[:8] + tok5[8:])
    (broken / "gt" / "images.txt").write_text("\n".join(lines) + "\n")
    for sub in ("images", "depths"):
        (broken / sub).symlink_to(scene / sub)
    _, consistent, err = _check_consistency(broken, "view_000", "view_005")
    assert consistent < 0.5 or np.median(err) > 0.05


def test_overwrite_protection(tmp_path: Path):
    kw = dict(n_train=2, n_test=1, width=24, height=18)
    scene = make_scene(tmp_path, **kw)
    stamp = scene / "images" / "view_000.png"
    before = stamp.read_bytes()
    with pytest.raises(DatasetError, match=str(scene)):
        make_scene(tmp_path, seed=1, **kw)
    assert stamp.read_bytes() == before
    (scene / "stale.txt").write_text("old")
    make_scene(tmp_path, seed=1, overwrite=True, n_train=3, n_test=0, width=24, height=18)
    assert not (scene / "stale.txt").exists() and not (scene / "2_views").exists()
    assert (scene / "3_views" / "images").is_dir() and stamp.read_bytes() != before
    split = json.loads((tmp_path / "dataset_split.json").read_text())
    assert split["Synthetic"]["blocks"] == {"train": ["view_000", "view_001", "view_002"], "test": []}


def test_split_merge_keeps_other_entries(tmp_path: Path):
    existing = {"LLFF": {"fern": {"train": ["a", "b"], "test": ["c"]}},
                "Synthetic": {"other": {"train": ["x"], "test": []}}}
    (tmp_path / "dataset_split.json").write_text(json.dumps(existing))
    make_scene(tmp_path, n_train=2, n_test=1, width=16, height=12)
    make_scene(tmp_path, dataset="Toy", scene="balls", n_train=2, n_test=0, width=16, height=12, seed=5)
    text = (tmp_path / "dataset_split.json").read_text()
    split = json.loads(text)
    assert split["LLFF"] == existing["LLFF"]
    assert split["Synthetic"]["other"] == existing["Synthetic"]["other"]
    assert split["Synthetic"]["blocks"] == {"train": ["view_000", "view_002"], "test": ["view_001"]}
    assert split["Toy"]["balls"] == {"train": ["view_000", "view_001"], "test": []}
    assert text.startswith('{\n  "')  # indent 2
    assert (tmp_path / "Toy" / "balls" / "images" / "view_001.png").is_file()


def test_broken_split_file_and_bad_options(tmp_path: Path):
    (tmp_path / "dataset_split.json").write_text("{not json")
    with pytest.raises(DatasetError, match="dataset_split.json"):
        make_scene(tmp_path, width=16, height=12)
    assert not (tmp_path / "Synthetic").exists()
    with pytest.raises(ConfigError):
        make_scene(tmp_path / "x", n_train=1, n_test=2)
    with pytest.raises(ConfigError):
        make_scene(tmp_path / "x", scene="../escape")
