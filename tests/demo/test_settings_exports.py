"""Per-run config from the page's choices; the GLB of points + cameras; the loss curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from feat2gs.demo.settings import DemoError, DemoSettings, Limits, RunChoices, run_config
from feat2gs.errors import ConfigError


def test_run_config_applies_choices_and_flags_random(tmp_path):
    settings = DemoSettings(cache_dir=tmp_path, preset="quick", overrides=("init.image_size=32",))
    cfg, notes = run_config(settings, RunChoices("dust3r", "dust3r", "G", iterations=900, trajectory="arc",
                                                 depth_normal=True, random_weights=True))
    assert (cfg.preset, cfg.init.method, cfg.init.image_size, cfg.train.iterations) == ("quick", "dust3r", 32, 900)
    assert cfg.train.warm_iterations == 300 and notes == []
    assert cfg.video.trajectory == "arc" and cfg.video.depth_normal and cfg.init.random_weights


def test_short_runs_shorten_the_warm_start(tmp_path):
    cfg, notes = run_config(DemoSettings(cache_dir=tmp_path, preset="quick"), RunChoices("gt", "iuvrgb", "A", 100))
    assert (cfg.train.iterations, cfg.train.warm_iterations) == (100, 50)
    assert "warm start shortened to 50" in notes[0]


@pytest.mark.parametrize("iterations", [1, 10**6])
def test_iterations_out_of_range(tmp_path, iterations):
    with pytest.raises(DemoError, match="iterations"):
        run_config(DemoSettings(cache_dir=tmp_path), RunChoices("gt", "iuvrgb", "G", iterations))


def test_bad_server_settings(tmp_path):
    with pytest.raises(DemoError, match="--preset"):
        DemoSettings(cache_dir=tmp_path, preset="fast").base_config()
    with pytest.raises(ConfigError, match="train.iterations"):
        DemoSettings(cache_dir=tmp_path, overrides=("train.iterations=zero",)).base_config()
    with pytest.raises(DemoError, match="max_images"):
        Limits(max_images=1).check()


def test_glb_holds_points_and_one_frustum_per_camera(scene_root, tmp_path):
    trimesh = pytest.importorskip("trimesh", reason="trimesh is part of the demo extra")
    from feat2gs.config import make_config
    from feat2gs.data.layout import SceneLayout
    from feat2gs.demo.exports import points_and_cameras_glb, read_points
    from feat2gs.init.step import run_init

    cfg = make_config("quick", ["init.image_size=32"])
    step1 = run_init(SceneLayout.open(scene_root, "Synthetic", "blocks"), cfg.init, "iuvrgb")
    glb = points_and_cameras_glb(step1, tmp_path / "v" / "scene.glb", max_points=500)
    assert glb.read_bytes()[:4] == b"glTF"
    scene = trimesh.load(glb, force="scene")
    clouds = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    meshes = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh)]
    xyz, _ = read_points(step1 / "points3D.ply")
    assert len(clouds) == 1 and len(clouds[0].vertices) == min(500, len(xyz))
    assert len(meshes) == 3  # the three training cameras
    # glTF is y-up: the points' y is flipped relative to our OpenCV frame
    assert np.isclose(clouds[0].vertices[:, 1].mean(), -xyz[:, 1].mean(), atol=0.2)


def test_loss_curve_png(tmp_path):
    from feat2gs.demo.exports import loss_curve_png

    log = [{"iteration": i, "phase": "warm" if i <= 10 else "render", "loss": 1.0 / i, "l1": 0.0 if i <= 10 else 0.5}
           for i in range(1, 21)]
    (tmp_path / "train_log.json").write_text(json.dumps(log))
    png = loss_curve_png(tmp_path / "train_log.json", tmp_path / "out" / "loss.png", "iuvrgb · G")
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 600
