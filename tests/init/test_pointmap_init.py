"""dust3r/mast3r wiring: test-pose registration onto step-1 points, and the whole job on random weights."""

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from feat2gs.config import make_config
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.layout import SceneLayout
from feat2gs.evaluate import test_pose
from feat2gs.geometry import apply_similarity_to_c2w, quat_to_rotmat
from feat2gs.init import pointmap
from feat2gs.init.gt import gt_cameras, load_depth, resize_nearest, unproject
from feat2gs.init.step import run_init
from tests.conftest import strict_load


@pytest.mark.parametrize("focal", ["train", "estimated"])
def test_test_poses_are_registered_with_a_true_similarity(scene_root, tmp_path, monkeypatch, focal):
    """A joint run in a frame scaled by 2.5, rotated and shifted must map back onto the ground-truth test poses.
    The joint run keeps the training focal, or (``eval.test_pose_focal=estimated``, the reference) estimates it."""
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = make_config("quick", ["init.image_size=48"])
    step1 = run_init(layout, cfg.init, "iuvrgb")  # gt geometry = the frame the test poses must land in
    s, R = 2.5, quat_to_rotmat(torch.tensor([0.9, 0.2, -0.3, 0.1], dtype=torch.float64)).numpy()
    t = np.array([0.5, -1.0, 2.0])
    names = list(layout.train_names) + list(layout.test_names)
    cams = [c.resized(48, 32) for c in gt_cameras(layout, names)]
    depths = np.stack([resize_nearest(load_depth(layout, c.name, 64, 48), 48, 32) for c in cams])
    world = np.stack([unproject(d, c) for d, c in zip(depths, cams)])
    fake = SimpleNamespace(
        pts3d=torch.from_numpy(s * world @ R.T + t),
        c2w=torch.from_numpy(np.stack([apply_similarity_to_c2w(c.c2w, s, R, t) for c in cams])),
        # the ground truth puts the principal point at W/2 in our pixel convention, i.e. W/2 - 0.5 in DUSt3R's
        focals=torch.tensor([c.K[0, 0] for c in cams]), pp=torch.tensor([[23.5, 15.5]] * len(cams)),
        depthmaps=torch.from_numpy(s * depths))
    asked = []
    monkeypatch.setattr(pointmap, "network_pointmaps", lambda images, kind, cfg, known_focal=None, **_:
                        asked.append(known_focal) or (fake, None, True))
    cfg.init.method = "dust3r"
    cfg.eval.mask_depth_atol = 0.01 * s  # the same tolerance in ground-truth units
    cfg.eval.test_pose_focal = focal
    cameras, masks = test_pose.network_test_poses(layout, cfg.init, cfg.eval, step1)
    train_focal = read_colmap_model(step1)[0].resized(48, 32).K[0, 0]
    assert asked == [train_focal if focal == "train" else None]
    truth = {c.name: c for c in read_colmap_model(layout.gt_dir)}
    for cam in cameras:
        assert np.allclose(cam.w2c, truth[cam.name].w2c, atol=1e-6), cam.name
        assert (cam.width, cam.height) == (64, 48)
    assert all(m.shape == (48, 64) and m.mean() > 0.5 for m in masks)


@pytest.mark.slow
def test_dust3r_job_runs_end_to_end_on_random_weights(scene_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    cmd = [sys.executable, "-m", "feat2gs.cli", "eval", "-d", str(root), "--dataset", "Synthetic", "--scene", "blocks",
           "-f", "dust3r-iuvrgb", "-M", "G", "-o", str(tmp_path / "out"), "--preset", "quick", "--method", "dust3r",
           "--random-weights", "-q", "--no-video"]
    for item in ["init.image_size=48", "init.feat_dim=32", "train.resolution=48", "train.iterations=30",
                 "train.warm_iterations=20", "eval.test_pose_iterations=2", "eval.lpips=false",
                 "init.align_iterations=30"]:
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RANDOM" in done.stderr
    job = tmp_path / "out" / "eval" / "Synthetic" / "blocks" / "3_views" / "feat2gs-G@quick" / "dust3r" / "dust3r-iuvrgb"
    results = strict_load(job / "results.json")["ours_30"]
    assert results["random_weights"] is True and results["status"] in ("ok", "partial", "degenerate")
    # random pointmaps usually register the test views nowhere: null metrics, never a "perfect" sentinel
    assert (results["PSNR"] is None) == (results["status"] == "degenerate") and results["PSNR"] != 200.0
    from feat2gs.sweep import report

    rep = report(tmp_path / "out", tmp_path / "rep", plots=False)
    assert not rep.tables, "a random-weight job must never be ranked"
    step1 = root / "Synthetic" / "blocks" / "3_views" / "sparse" / "0" / "dust3r@48px" / "dust3r-iuvrgb"
    manifest = json.loads((step1 / "manifest.json").read_text())
    assert manifest["random_weights"] is True and manifest["feature_dim"] == 32
    assert len(read_colmap_model(step1)) == 3


def test_network_init_needs_two_images_of_one_size(scene_root, tmp_path):
    from PIL import Image

    from feat2gs.errors import DatasetError

    layout = SceneLayout.open(scene_root, "Synthetic", "blocks")
    with pytest.raises(DatasetError, match="at least 2 images"):
        pointmap.load_network_images(layout.train_paths()[:1], 64)
    odd = tmp_path / "odd.png"
    Image.new("RGB", (40, 30)).save(odd)
    with pytest.raises(DatasetError, match="same size"):
        pointmap.load_network_images([layout.train_paths()[0], odd], 64)


@pytest.mark.parametrize("method", ["dust3r", "mast3r"])
@pytest.mark.parametrize("reference", [False, True])
def test_intrinsics_ours_or_the_references(scene_root, tmp_path, monkeypatch, reference, method):
    """Ours: the network's principal point (DUSt3R's (W/2, H/2), or the sparse alignment's optimised one) in its
    integer-pixel convention, i.e. +0.5 at the working size, scaled to the original per axis. The reference
    (init.reference_intrinsics): the image centre W0/2, and fx = fy = focal · (W0/2) / cx."""
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = make_config("quick", ["init.image_size=48", f"init.method={method}",
                                f"init.reference_intrinsics={str(reference).lower()}"])
    n, w, h = layout.n_views, 48, 32
    pp = (w / 2, h / 2) if method == "dust3r" else (20.0, 17.0)  # mast3r: the sparse alignment moved it
    fake = SimpleNamespace(c2w=torch.eye(4).repeat(n, 1, 1), focals=torch.full((n,), 50.0),
                           pp=torch.tensor([pp] * n), pts3d=torch.rand(n, h, w, 3) + torch.tensor([0.0, 0.0, 2.0]),
                           conf_clean=torch.ones(n, h, w))
    monkeypatch.setattr(pointmap, "network_pointmaps",
                        lambda images, kind, cfg, known_focal=None, **_: (fake, torch.zeros(n, 2, 3, 8), True))
    cams = read_colmap_model(run_init(layout, cfg.init, "iuvrgb"))
    w0, h0 = cams[0].width, cams[0].height
    assert (w0 / w) != pytest.approx(h0 / h, rel=1e-3)  # the working size changes the aspect: fy tells them apart
    if reference:
        f = 50.0 * (w0 / 2) / pp[0]
        expected = (w0 / 2, h0 / 2, f, f)
    else:
        expected = ((pp[0] + 0.5) * w0 / w, (pp[1] + 0.5) * h0 / h, 50.0 * w0 / w, 50.0 * h0 / h)
    K = cams[0].K
    assert (K[0, 2], K[1, 2], K[0, 0], K[1, 1]) == pytest.approx(expected)
