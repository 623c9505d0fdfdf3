"""COLMAP models as COLMAP writes them (text and binary, via pycolmap), the `known` builder (images + cameras +
depth), complete decoding of every image at build time and explicit alpha handling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pycolmap
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from feat2gs.data.builders import build_from_folder, build_from_known
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.layout import SceneLayout
from feat2gs.errors import DatasetError
from feat2gs.init.gt import gt_cameras, load_depth


def _pycolmap_model(folder, model="PINHOLE", params=(50.0, 51.0, 32.0, 24.0), n_points=60, seed=0):
    """A reconstruction written by pycolmap: 3 registered images with every point observed (long POINTS2D lines),
    one of them with no observation at all (an empty POINTS2D line)."""
    rng = np.random.default_rng(seed)
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model=model, width=64, height=48, params=list(params), camera_id=1))
    ids = [rec.add_point3D(p, pycolmap.Track(), np.zeros(3, np.uint8)) for p in rng.normal(size=(n_points, 3)) + 5]
    poses = {}
    for i in range(3):
        w2c = np.eye(4)
        w2c[:3, :3] = Rotation.from_rotvec(rng.normal(size=3) * 0.2).as_matrix()
        w2c[:3, 3] = rng.normal(size=3)
        observed = i < 2
        keypoints = rng.uniform(0, 48, size=(n_points if observed else 0, 2))
        image = pycolmap.Image(name=f"view_{i:03d}.png", keypoints=keypoints, camera_id=1, image_id=i + 1)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(w2c[:3]))
        if observed:
            for k, pid in enumerate(ids):
                rec.add_observation(pid, pycolmap.TrackElement(i + 1, k))
        poses[image.name] = w2c
    (folder / "txt").mkdir(parents=True)
    (folder / "bin").mkdir()
    rec.write_text(str(folder / "txt"))
    rec.write_binary(str(folder / "bin"))
    return poses


@pytest.mark.parametrize("kind", ["txt", "bin"])
def test_models_written_by_colmap_read_back_exactly(tmp_path, kind):
    poses = _pycolmap_model(tmp_path)
    text = (tmp_path / "txt" / "images.txt").read_text()
    assert max(len(line.split()) for line in text.splitlines()) >= 3 * 60  # POINTS2D lines with many observations
    cams = read_colmap_model(tmp_path / kind)
    assert [c.name for c in cams] == sorted(poses)
    for cam in cams:
        np.testing.assert_allclose(cam.w2c, poses[cam.name], atol=1e-9)
        np.testing.assert_allclose(cam.K, [[50, 0, 32], [0, 51, 24], [0, 0, 1]])
        assert (cam.width, cam.height) == (64, 48)


def test_distorted_cameras_name_the_undistorter_and_zero_distortion_is_pinhole(tmp_path):
    _pycolmap_model(tmp_path / "radial", "SIMPLE_RADIAL", (50.0, 32.0, 24.0, 0.0))
    assert read_colmap_model(tmp_path / "radial" / "bin")[0].K[1, 1] == 50.0  # k = 0 exactly: a pinhole camera
    _pycolmap_model(tmp_path / "opencv", "OPENCV", (50.0, 51.0, 32.0, 24.0, 0.1, 0.0, 0.0, 0.0))
    for kind in ("txt", "bin"):
        with pytest.raises(DatasetError, match="colmap image_undistorter"):
            read_colmap_model(tmp_path / "opencv" / kind)
    _pycolmap_model(tmp_path / "fisheye", "OPENCV_FISHEYE", (50.0, 51.0, 32.0, 24.0, 0.0, 0.0, 0.0, 0.0))
    with pytest.raises(DatasetError, match="OPENCV_FISHEYE is not supported"):
        read_colmap_model(tmp_path / "fisheye" / "txt")


def test_malformed_image_lines_are_named_with_their_line(tmp_path):
    _pycolmap_model(tmp_path)
    images = tmp_path / "txt" / "images.txt"
    lines = images.read_text().splitlines()
    first = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    lines[first] = lines[first].replace(" 1 view_000.png", " x view_000.png")
    images.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"images.txt:{first + 1}: expected IMAGE_ID"):
        read_colmap_model(tmp_path / "txt")
    (tmp_path / "bin" / "images.bin").write_bytes(b"\x01\x02")
    with pytest.raises(DatasetError, match="cannot read the COLMAP model"):
        read_colmap_model(tmp_path / "bin")


def _known_source(scene_root, tmp_path):
    """images/ + cameras + depths of the generated scene, as a user would have them."""
    layout = SceneLayout.open(scene_root, "Synthetic", "blocks")
    src = tmp_path / "capture"
    shutil.copytree(layout.images_dir, src / "images")
    (src / "depth").mkdir()
    for name in layout.train_names + layout.test_names:
        np.save(src / "depth" / f"{name.rsplit('.', 1)[0]}.npy", 2.0 * np.load(layout.depth_path(name)))
    return layout, src


@pytest.mark.parametrize("cameras", ["colmap", "json"])
def test_known_builder_makes_a_gt_scene(scene_root, tmp_path, cameras):
    layout, src = _known_source(scene_root, tmp_path)
    truth = {c.name: c for c in gt_cameras(layout, list(layout.train_names + layout.test_names))}
    if cameras == "colmap":
        where = layout.gt_dir
    else:
        where = src / "cameras.json"
        where.write_text(json.dumps({n: {"K": c.K.tolist(), "c2w": c.c2w[:3].tolist()} for n, c in truth.items()}))
    build_from_known(src, tmp_path / "data", "Known", "blocks", cameras=where, depths=src / "depth",
                     depth_scale=0.5, train=[n.rsplit(".", 1)[0] for n in layout.train_names])
    built = SceneLayout.open(tmp_path / "data", "Known", "blocks")
    assert built.train_names == layout.train_names and built.test_names == layout.test_names
    for cam in gt_cameras(built, list(built.train_names + built.test_names)):
        np.testing.assert_allclose(cam.w2c, truth[cam.name].w2c, atol=1e-9)
        np.testing.assert_allclose(cam.K, truth[cam.name].K, atol=1e-9)
        w, h = cam.width, cam.height
        np.testing.assert_allclose(load_depth(built, cam.name, w, h), load_depth(layout, cam.name, w, h))


def test_known_builder_rejects_inconsistent_input(scene_root, tmp_path):
    layout, src = _known_source(scene_root, tmp_path)
    stem = layout.train_names[0].rsplit(".", 1)[0]
    kw = dict(cameras=layout.gt_dir, depths=src / "depth", test_every=2)
    np.save(src / "depth" / f"{stem}.npy", np.zeros((48, 64), np.float32))
    with pytest.raises(DatasetError, match=f"{stem}.npy has no valid pixel"):
        build_from_known(src, tmp_path / "data", "K", "s", **kw)
    np.save(src / "depth" / f"{stem}.npy", np.ones((24, 32), np.float32))
    with pytest.raises(DatasetError, match=f"{stem}.npy is 32x24, the images are 64x48"):
        build_from_known(src, tmp_path / "data", "K", "s", **kw)
    (src / "depth" / f"{stem}.npy").unlink()
    with pytest.raises(DatasetError, match=f"missing depth map .*{stem}.npy"):
        build_from_known(src, tmp_path / "data", "K", "s", **kw)
    bad = src / "cams.json"
    bad.write_text(json.dumps({stem: {"K": [[50, 0, 32], [0, 50, 24], [0, 0, 1]], "c2w": np.full((3, 4), 2.0).tolist()}}))
    with pytest.raises(DatasetError, match="c2w: its 3x3 part is not a rotation"):
        build_from_known(src, tmp_path / "data", "K", "s", **{**kw, "cameras": bad})
    assert not (tmp_path / "data" / "K").exists()


def test_truncated_images_are_named_at_build_time(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(src / f"im{i}.jpg", quality=95)
    data = (src / "im2.jpg").read_bytes()
    (src / "im2.jpg").write_bytes(data[: len(data) // 2])  # the header still reads: only decoding finds it
    with pytest.raises(DatasetError, match="im2.jpg"):
        build_from_folder(src, tmp_path / "data", "D", "s", test_every=2)
    assert not (tmp_path / "data" / "D").exists()


def test_transparent_images_are_refused_or_composited(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255  # left half opaque red, right half fully transparent
    for i in range(3):
        Image.fromarray(rgba).save(src / f"im{i}.png")
    with pytest.raises(DatasetError, match=r"im\d.png has transparent pixels \(50.0% of it\).*--alpha white"):
        build_from_folder(src, tmp_path / "data", "D", "s", test_every=2)
    build_from_folder(src, tmp_path / "data", "D", "white", test_every=2, alpha="white")
    out = np.asarray(Image.open(tmp_path / "data" / "D" / "white" / "images" / "im0.png"))
    assert out.shape == (8, 8, 3) and (out[:, :4] == [200, 0, 0]).all() and (out[:, 4:] == 255).all()
    opaque = rgba.copy()
    opaque[..., 3] = 255  # an alpha channel that is fully opaque drops nothing: accepted as it is
    for i in range(3):
        Image.fromarray(opaque).save(src / f"im{i}.png")
    build_from_folder(src, tmp_path / "data", "D", "opaque", test_every=2)
