import json
import shutil

import numpy as np
import pytest
from PIL import Image

from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.images import check_same_size, load_image, resize_to, working_size
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import DatasetError


def _copy(scene_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    return root


def test_open_valid_scene(scene_root):
    layout = SceneLayout.open(scene_root, "Synthetic", "blocks")
    assert layout.n_views == 3 and len(layout.test_names) == 2
    assert all(p.is_file() for p in layout.train_paths() + layout.test_paths())
    assert layout.step1_dir("gt", "iuvrgb", 512).parts[-3:] == ("0", "gt", "iuvrgb")
    assert layout.step1_dir("gt", "iuvrgb", 64).parts[-2] == "gt@64px"
    assert len(read_colmap_model(layout.gt_dir)) == 5


def test_missing_split_and_scene(tmp_path, scene_root):
    with pytest.raises(DatasetError, match="dataset_split.json"):
        SceneLayout.open(tmp_path, "Synthetic", "blocks")
    with pytest.raises(DatasetError, match="scene 'nope'"):
        SceneLayout.open(scene_root, "Synthetic", "nope")
    root = _copy(scene_root, tmp_path)
    shutil.rmtree(root / "Synthetic" / "blocks")
    with pytest.raises(DatasetError, match="missing scene folder"):
        SceneLayout.open(root, "Synthetic", "blocks")


def test_train_list_must_match_views_folder(tmp_path, scene_root):
    root = _copy(scene_root, tmp_path)
    split = json.loads((root / "dataset_split.json").read_text())
    split["Synthetic"]["blocks"]["train"] = split["Synthetic"]["blocks"]["train"][:2] + split["Synthetic"]["blocks"]["test"][:1]
    (root / "dataset_split.json").write_text(json.dumps(split))
    with pytest.raises(DatasetError, match="train list"):
        SceneLayout.open(root, "Synthetic", "blocks")


def test_bad_images_are_named(tmp_path, scene_root):
    root = _copy(scene_root, tmp_path)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    empty = layout.train_paths()[0]
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match=f"{empty.name}.*empty"):
        load_image(empty)
    broken = layout.train_paths()[1]
    broken.write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=f"cannot read image .*{broken.name}"):
        load_image(broken)
    other = layout.test_paths()[0]
    Image.new("RGB", (40, 30)).save(other)
    with pytest.raises(DatasetError, match="same size"):
        check_same_size([layout.test_paths()[1], other])


def test_protocol_resize():
    assert working_size(640, 480, 512) == (512, 384)
    assert working_size(1000, 563, 512) == (512, 288)
    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    out = resize_to(img, 64, 48)
    assert out.shape == (48, 64, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    with pytest.raises(DatasetError, match="too small"):
        working_size(20, 10, 16)
