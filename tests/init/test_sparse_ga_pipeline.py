"""The sparse alignment in the pipeline: step 1 (``--method mast3r``, ``init.mast3r_alignment=sparse``) with the
pair cache in the scene folder, and step 3's test-pose run with the training focal; the tiny MASt3R stands in for
the full-size network (same code path, seconds instead of minutes)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from feat2gs.config import make_config
from feat2gs.errors import ConfigError
from feat2gs.data.colmap import read_colmap_model
from feat2gs.data.layout import SceneLayout
from feat2gs.init import pointmap
from feat2gs.init.step import run_init

from tests.init._fixtures import FIXTURES as DUST3R_FIXTURES

pytestmark = pytest.mark.skipif(not (DUST3R_FIXTURES / "mast3r_tiny_config.json").is_file(),
                                reason=f"tiny MASt3R config not found in {DUST3R_FIXTURES}")


class _CountingTiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from feat2gs.init.dust3r import Dust3rNet

        from tests.init.test_dust3r_network import tiny_config

        torch.manual_seed(0)
        self.net = Dust3rNet(tiny_config("mast3r")).eval()
        self.cfg, self.calls = self.net.cfg, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.net(*args, **kwargs)

    def encoder_features(self, *args, **kwargs):
        return self.net.encoder_features(*args, **kwargs)


@pytest.fixture()
def tiny_mast3r(monkeypatch):
    """load_dust3r returns the tiny MASt3R, reported as pretrained unless ``model.random`` is set (random weights
    fix the focal, as for DUSt3R)."""
    import feat2gs.init.dust3r as dust3r

    model = _CountingTiny()
    model.random = False

    def fake_load(source=None, kind="dust3r", device="cpu", random_weights=False, **_):
        assert kind == "mast3r"
        return dust3r.LoadedDust3r(model, model.cfg, kind, "tiny", random_weights=model.random)

    monkeypatch.setattr(dust3r, "load_dust3r", fake_load)
    return model


def _config(alignment: str = "sparse"):
    cfg = make_config("quick", ["init.image_size=48", "init.feat_dim=32", "init.method=mast3r",
                                f"init.mast3r_alignment={alignment}", "init.vis_feat=false"])
    return cfg


def test_step1_runs_the_sparse_alignment_and_caches_pairs(scene_root, tmp_path, tiny_mast3r, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = _config()
    calls = []
    real = pointmap.network_pointmaps

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out[0])
        return out

    monkeypatch.setattr(pointmap, "network_pointmaps", spy)
    step1 = run_init(layout, cfg.init, "iuvrgb")
    align = calls[-1]
    assert type(align).__name__ == "SparseAlignResult"
    assert tiny_mast3r.calls == 3 * 2  # 3 unordered pairs, two passes each
    cache = layout.views_dir / "mast3r_cache"
    assert len(list(cache.glob("*.safetensors"))) == 3
    geometry = load_file(str(step1 / "geometry.safetensors"))
    assert torch.equal(geometry["valid"].bool(), align.masks & torch.isfinite(align.pts3d).all(-1))
    assert torch.allclose(geometry["points"], align.pts3d.float())
    cams = read_colmap_model(step1)
    w, h = 48, 32
    for k, cam in enumerate(cams):
        small = cam.resized(w, h)
        assert np.allclose(small.K[0, 0], float(align.focals[k]), rtol=1e-6)
        assert np.allclose(small.K[:2, 2], align.pp[k].numpy() + 0.5, rtol=1e-6)  # optimised pp, pixel centres
        assert np.allclose(small.c2w, align.c2w[k].double().numpy(), atol=1e-5)
    assert not np.allclose(align.pp.numpy(), [w / 2, h / 2])  # stage 2 moved the shared principal point
    # a rerun on the same images: the pairs come from the scene's cache, the network does not run
    images, _ = pointmap.load_network_images(layout.train_paths(), cfg.init.image_size)
    again, _, _ = real(images, "mast3r", cfg.init, cache_dir=cache)
    assert tiny_mast3r.calls == 6
    assert torch.equal(again.pts3d, align.pts3d) and torch.equal(again.c2w, align.c2w)
    # random weights: the focal is fixed (RANDOM_WEIGHTS_FOCAL x long side) and the principal point centred
    tiny_mast3r.random = True
    rand, _, random = real(images, "mast3r", cfg.init)
    assert random and torch.allclose(rand.focals, torch.full((3,), pointmap.RANDOM_WEIGHTS_FOCAL * w))
    assert torch.allclose(rand.pp, torch.tensor([[w / 2, h / 2]] * 3))


def test_dense_alignment_stays_available(scene_root, tmp_path, tiny_mast3r):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = _config("dense")
    cfg.init.align_iterations = 5
    tiny_mast3r.random = True  # the dense MST cannot estimate a focal from random pointmaps
    images, _ = pointmap.load_network_images(layout.train_paths(), cfg.init.image_size)
    align, feats, random = pointmap.network_pointmaps(images, "mast3r", cfg.init)
    assert type(align).__name__ == "AlignResult" and random
    assert not (layout.views_dir / "mast3r_cache").exists()
    cfg.init.mast3r_alignment = "bogus"
    with pytest.raises(ConfigError, match="mast3r_alignment"):
        pointmap.uses_sparse_alignment("mast3r", cfg.init)


def test_test_poses_use_the_sparse_alignment_with_the_training_focal(scene_root, tmp_path, tiny_mast3r):
    from feat2gs.evaluate import test_pose

    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = _config()
    step1 = run_init(layout, cfg.init, "iuvrgb")
    before = tiny_mast3r.calls
    cameras, masks = test_pose.network_test_poses(layout, cfg.init, cfg.eval, step1)
    n_all = layout.n_views + len(layout.test_names)
    n = layout.n_views  # step 1's training pairs come from the scene's cache; only pairs with a test view run
    assert tiny_mast3r.calls - before == n_all * (n_all - 1) - n * (n - 1)
    train_focal = read_colmap_model(step1)[0].K[0, 0]
    assert len(cameras) == len(layout.test_names) == len(masks)
    for cam in cameras:
        assert np.isclose(cam.K[0, 0], train_focal, rtol=1e-5)  # the focal is fixed to the training one
        assert np.isfinite(cam.w2c).all()


def test_estimated_test_focal_keeps_the_alignments_principal_point(scene_root, tmp_path, tiny_mast3r, monkeypatch):
    """eval.test_pose_focal=estimated: the sparse alignment moves the principal point, and the test cameras carry it."""
    from feat2gs.evaluate import test_pose

    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = _config()
    cfg.eval.test_pose_focal = "estimated"
    step1 = run_init(layout, cfg.init, "iuvrgb")
    seen = []
    real = pointmap.network_pointmaps
    monkeypatch.setattr(pointmap, "network_pointmaps", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    cameras, _ = test_pose.network_test_poses(layout, cfg.init, cfg.eval, step1)
    align = seen[-1][0]
    w, h = 48, 32
    assert not np.allclose(align.pp.numpy(), [w / 2, h / 2])
    for k, cam in enumerate(cameras):
        small = cam.resized(w, h)
        assert np.allclose(small.K[:2, 2], align.pp[layout.n_views + k].numpy() + 0.5, rtol=1e-6)


@pytest.mark.parametrize("alignment", ["sparse", "dense"])
def test_step1_progress_bars_follow_the_progress_flag(scene_root, tmp_path, tiny_mast3r, capsys, alignment):
    """`-q` (progress=False) silences the network and alignment bars of step 1; progress=True shows them."""
    cfg = _config(alignment)
    cfg.init.align_iterations = 5
    tiny_mast3r.random = True
    bars = {"sparse": "mast3r pairs", "dense": "dust3r pairs"}[alignment]
    for progress in (False, True):  # a fresh scene each time: nothing is reused from a cache
        root = tmp_path / f"data_{progress}"
        shutil.copytree(scene_root, root)
        run_init(SceneLayout.open(root, "Synthetic", "blocks"), cfg.init, "iuvrgb", progress=progress)
        assert (bars in capsys.readouterr().err) == progress


def test_tsdf_threshold_reaches_the_sparse_read_out(scene_root, tiny_mast3r, monkeypatch):
    """init.mast3r_tsdf_thresh (0 = off, the reference) is what the sparse alignment's read-out is given, and it is
    part of the geometry's key; a negative or infinite value is a setting error."""
    import feat2gs.init.sparse as sparse
    from feat2gs.config import STEP_SETTINGS

    seen = []
    real = sparse.sparse_align
    monkeypatch.setattr(sparse, "sparse_align", lambda pairs, cfg, **kw: seen.append(cfg.tsdf_thresh) or
                        real(pairs, cfg, **kw))
    layout = SceneLayout.open(scene_root, "Synthetic", "blocks")
    images, _ = pointmap.load_network_images(layout.train_paths(), 48)
    for value in ("0", "0.05"):
        cfg = make_config("quick", ["init.image_size=48", "init.method=mast3r", f"init.mast3r_tsdf_thresh={value}"])
        pointmap.network_pointmaps(images, "mast3r", cfg.init)
    assert seen == [0.0, 0.05] and "init.mast3r_tsdf_thresh" in STEP_SETTINGS["geometry"]
    for bad in ("-1", "inf"):
        with pytest.raises(ConfigError, match="mast3r_tsdf_thresh"):
            make_config("quick", [f"init.mast3r_tsdf_thresh={bad}"])
