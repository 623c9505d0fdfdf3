import json
import shutil

import numpy as np
import pytest
from PIL import Image

from feat2gs.config import InitConfig
from feat2gs.data.builders import (
    _erode,
    build_from_colmap,
    build_from_dtu,
    build_from_folder,
    llff_cameras,
    make_split,
    read_mvsnet_cam,
    read_pfm,
)
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import ConfigError, DatasetError
from feat2gs.init.gt import init_gt


def _pngs(folder, n, size=(20, 16), ext=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"im{i:02d}{ext}")
    return folder


def test_make_split_rules(tmp_path):
    stems = [f"s{i}" for i in range(7)]
    assert make_split(stems, test_every=3) == (["s1", "s2", "s4", "s5"], ["s0", "s3", "s6"])
    assert make_split(stems, test_every=3, test_offset=1)[1] == ["s1", "s4"]
    (tmp_path / "train.txt").write_text("s0.png\n# comment\ns2\n\n")
    assert make_split(stems, train=tmp_path / "train.txt") == (["s0", "s2"], ["s1", "s3", "s4", "s5", "s6"])
    assert make_split(stems, train=["s0"], test=["s1"]) == (["s0"], ["s1"])
    with pytest.raises(DatasetError, match="do not exist: nope"):
        make_split(stems, train=["nope"])
    with pytest.raises(DatasetError, match="both"):
        make_split(stems, train=["s0"], test=["s0"])
    with pytest.raises(ConfigError):
        make_split(stems, test_every=3, train=["s0"])
    with pytest.raises(ConfigError):
        make_split(stems)


def test_folder_builder_layout_merge_and_overwrite(tmp_path):
    src = _pngs(tmp_path / "src", 6)
    root = tmp_path / "data"
    root.mkdir()
    (root / "dataset_split.json").write_text(json.dumps({"Other": {"x": {"train": ["a"], "test": []}}}))
    built = build_from_folder(src, root, "Mine", "sceneA", test_every=3)
    assert built.train == ["im01", "im02", "im04", "im05"] and built.test == ["im00", "im03"]
    layout = SceneLayout.open(root, "Mine", "sceneA")
    assert layout.n_views == 4 and layout.test_names == ("im00.png", "im03.png")
    assert (root / "Mine" / "sceneA" / "images" / "im00.png").read_bytes() == (src / "im00.png").read_bytes()
    build_from_folder(src, root, "Mine", "sceneB", train=["im00", "im05"])
    split = json.loads((root / "dataset_split.json").read_text())
    assert set(split) == {"Other", "Mine"} and set(split["Mine"]) == {"sceneA", "sceneB"}
    assert SceneLayout.open(root, "Mine", "sceneB").n_views == 2
    with pytest.raises(DatasetError, match="already exists"):
        build_from_folder(src, root, "Mine", "sceneA", test_every=2)
    build_from_folder(src, root, "Mine", "sceneA", test_every=2, overwrite=True)
    layout = SceneLayout.open(root, "Mine", "sceneA")
    assert layout.n_views == 3 and not (root / "Mine" / "sceneA" / "4_views").exists()
    assert not [p for p in (root / "Mine").iterdir() if p.name.startswith(".")]  # no temp folders left


def test_folder_builder_validation(tmp_path):
    src = _pngs(tmp_path / "src", 3)
    Image.new("RGB", (10, 10)).save(src / "im09.png")
    with pytest.raises(DatasetError, match="same size"):
        build_from_folder(src, tmp_path / "data", "D", "s", test_every=2)
    (src / "im09.png").unlink()
    Image.new("RGB", (20, 16)).save(src / "im00.jpg")
    with pytest.raises(DatasetError, match="share the stem 'im00'"):
        build_from_folder(src, tmp_path / "data", "D", "s", test_every=2)
    assert not (tmp_path / "data" / "D").exists()
    with pytest.raises(ConfigError):
        build_from_folder(src, tmp_path / "data", "D", "a/b", test_every=2)


def _colmap_source(scene_root, tmp_path):
    src = tmp_path / "colmap_scene"
    shutil.copytree(scene_root / "Synthetic" / "blocks" / "images", src / "images")
    shutil.copytree(scene_root / "Synthetic" / "blocks" / "gt", src / "sparse" / "0")
    return src


def test_colmap_builder(scene_root, tmp_path):
    src = _colmap_source(scene_root, tmp_path)
    original = {c.name: c for c in read_colmap_model(src / "sparse" / "0")}
    (tmp_path / "test.txt").write_text("\n".join(sorted(original)[1:3]) + "\n")
    built = build_from_colmap(src, tmp_path / "data", "Col", "blocks", test=tmp_path / "test.txt")
    layout = SceneLayout.open(tmp_path / "data", "Col", "blocks")
    assert layout.n_views == 3 and len(layout.test_names) == 2 and built.size == (64, 48)
    gt = {c.name: c for c in read_colmap_model(layout.gt_dir)}
    assert set(gt) == set(original)
    for name, cam in gt.items():
        np.testing.assert_allclose(cam.w2c, original[name].w2c, atol=1e-9)
        np.testing.assert_allclose(cam.K, original[name].K, atol=1e-9)

    # downscaled images (LLFF images_2): intrinsics follow
    for p in (src / "images").iterdir():
        Image.open(p).resize((32, 24)).save(src / "images" / p.name)
    build_from_colmap(src, tmp_path / "data", "Col", "small", test_every=2)
    small = read_colmap_model(tmp_path / "data" / "Col" / "small" / "gt")
    assert small[0].width == 32 and small[0].K[0, 0] == pytest.approx(original[small[0].name].K[0, 0] / 2)


def test_colmap_builder_binary_and_missing(scene_root, tmp_path):
    src = _colmap_source(scene_root, tmp_path)
    for name in ("cameras", "images"):
        (src / "sparse" / "0" / f"{name}.txt").rename(src / "sparse" / "0" / f"{name}.bin")
    with pytest.raises(DatasetError, match="cannot read the COLMAP model"):  # text renamed .bin: not a binary model
        build_from_colmap(src, tmp_path / "data", "Col", "b", test_every=2)
    shutil.rmtree(src / "sparse")
    with pytest.raises(DatasetError, match="neither sparse/0 nor poses_bounds"):
        build_from_colmap(src, tmp_path / "data", "Col", "b", test_every=2)


def test_llff_poses_bounds(scene_root, tmp_path):
    src = _colmap_source(scene_root, tmp_path)
    cams = read_colmap_model(src / "sparse" / "0")
    shutil.rmtree(src / "sparse")
    rows = []
    for c in cams:  # OpenCV c2w -> LLFF (down, right, back) columns + [h, w, f]
        c2w = c.c2w
        m = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3], [c.height, c.width, c.K[0, 0]]], axis=1)
        rows.append(np.r_[m.ravel(), 0.1, 10.0])
    np.save(src / "poses_bounds.npy", np.array(rows))
    build_from_colmap(src, tmp_path / "data", "LLFF", "blocks", test_every=2)
    gt = {c.name: c for c in read_colmap_model(tmp_path / "data" / "LLFF" / "blocks" / "gt")}
    for c in cams:
        np.testing.assert_allclose(gt[c.name].w2c, c.w2c, atol=1e-9)
        assert gt[c.name].K[0, 2] == pytest.approx(c.width / 2)
    with pytest.raises(DatasetError, match="17"):
        llff_cameras(np.zeros((2, 15)), ["a", "b"], 4, 4)


def _write_pfm(path, depth):
    with open(path, "wb") as fh:
        fh.write(f"Pf\n{depth.shape[1]} {depth.shape[0]}\n-1.0\n".encode())
        np.flipud(depth).astype("<f4").tofile(fh)


def _dtu_source(scene_root, tmp_path, mm=1000.0, masked=None):
    """The synthetic scene in MVSNet format, in 'millimetres'."""
    scene = scene_root / "Synthetic" / "blocks"
    src = tmp_path / "dtu_scan1"
    shutil.copytree(scene / "images", src / "images")
    (src / "cams").mkdir()
    (src / "depths").mkdir()
    (src / "binary_masks").mkdir()
    for i, cam in enumerate(read_colmap_model(scene / "gt")):
        stem = cam.name.rsplit(".", 1)[0]
        w2c = cam.w2c.copy()
        w2c[:3, 3] *= mm
        text = "extrinsic\n" + "\n".join(" ".join(f"{v:.10f}" for v in r) for r in w2c)
        text += "\n\nintrinsic\n" + "\n".join(" ".join(f"{v:.10f}" for v in r) for r in cam.K) + "\n\n425 2.5\n"
        (src / "cams" / f"{stem}_cam.txt").write_text(text)
        depth = np.load(scene / "depths" / f"{stem}.npy") * mm
        if i == 0:
            depth[0, 0] = np.nan
            _write_pfm(src / "depths" / f"{stem}.pfm", depth)
        else:
            np.save(src / "depths" / f"{stem}.npy", depth)
        mask = np.full(depth.shape, 255, np.uint8)
        if cam.name == masked:
            mask[:, :20] = 0
        Image.fromarray(mask).save(src / "binary_masks" / f"{stem}.png")
    return src


def test_mvsnet_cam_and_pfm(tmp_path):
    cam = tmp_path / "00000000_cam.txt"
    cam.write_text("extrinsic\n1 0 0 10\n0 1 0 20\n0 0 1 30\n0 0 0 1\n\nintrinsic\n2892.33 0 823.2\n0 2883.18 619.07\n"
                   "0 0 1\n\n425.0 2.5 192 903.5\n")
    w2c, K, params = read_mvsnet_cam(cam)
    assert w2c[1, 3] == 20 and K[0, 0] == 2892.33 and params == [425.0, 2.5, 192.0, 903.5]
    cam.write_text("extrinsic\n1 0 0")
    with pytest.raises(DatasetError, match="cannot parse"):
        read_mvsnet_cam(cam)
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    _write_pfm(tmp_path / "d.pfm", depth)
    np.testing.assert_array_equal(read_pfm(tmp_path / "d.pfm"), depth)


def test_erosion_matches_cv2():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    mask = rng.random((40, 50)) > 0.2
    mask[5:30, 10:45] = True
    ours = _erode(mask, 10)
    ref = cv2.erode(mask.astype(np.uint8), np.ones((10, 10), np.uint8), iterations=1).astype(bool)
    np.testing.assert_array_equal(ours, ref)


def test_dtu_builder_and_gt_init(scene_root, tmp_path):
    layout0 = SceneLayout.open(scene_root, "Synthetic", "blocks")
    masked = layout0.train_names[1]
    src = _dtu_source(scene_root, tmp_path, masked=masked)
    root = tmp_path / "data"
    train = [n.rsplit(".", 1)[0] for n in layout0.train_names]
    build_from_dtu(src, root, "DTU", "scan1", train=train)
    layout = SceneLayout.open(root, "DTU", "scan1")
    assert layout.train_names == layout0.train_names and layout.test_names == layout0.test_names
    # cameras back in metres
    ours = {c.name: c for c in read_colmap_model(layout.gt_dir)}
    for c in read_colmap_model(layout0.gt_dir):
        np.testing.assert_allclose(ours[c.name].w2c, c.w2c, atol=1e-6)
    # depths: scaled, NaN -> 0, masked columns (eroded by 10x10 -> 5 more) zeroed
    stems = sorted(ours)
    d0 = np.load(layout.depth_path(stems[0]))
    assert d0[0, 0] == 0 and d0.dtype == np.float32
    np.testing.assert_allclose(d0[1:, 1:], np.load(layout0.depth_path(stems[0]))[1:, 1:], rtol=1e-5)
    d1 = np.load(layout.depth_path(masked))
    assert (d1[:, :25] == 0).all() and (d1[:, 25:] > 0).all()
    img1 = np.asarray(Image.open(layout.images_dir / masked))
    assert (img1[:, :25] == 0).all()  # images masked by the valid depth, as the protocol
    # --method gt on the built scene gives the same points as on the source scene (where depth is valid)
    cfg = InitConfig(image_size=64)
    res, ref = init_gt(layout, cfg), init_gt(layout0, cfg)
    assert res.points.shape == ref.points.shape and bool(res.valid.any())
    both = res.valid & ref.valid
    np.testing.assert_allclose(res.points[both].numpy(), ref.points[both].numpy(), atol=1e-4)
    assert not bool(res.valid[1][:, :25].any())
    # scale=1 keeps millimetres
    build_from_dtu(src, root, "DTU", "scan1_mm", train=train, scale=1.0, mask_images=False)
    other = next(s for s in stems[1:] if s != masked)  # no NaN, full mask
    d_mm = np.load(root / "DTU" / "scan1_mm" / "depths" / f"{other.rsplit('.', 1)[0]}.npy")
    np.testing.assert_allclose(d_mm, np.load(layout0.depth_path(other)) * 1000, rtol=1e-5)


def test_dtu_builder_missing_files(scene_root, tmp_path):
    src = _dtu_source(scene_root, tmp_path)
    stem = sorted(p.stem for p in (src / "images").iterdir())[0]
    (src / "depths" / f"{stem}.pfm").unlink()
    with pytest.raises(DatasetError, match="missing depth map"):
        build_from_dtu(src, tmp_path / "data", "DTU", "scan1", test_every=2)
    assert not (tmp_path / "data" / "DTU").exists()
