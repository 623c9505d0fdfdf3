import math
import shutil

import pytest
import torch

from feat2gs.errors import TrainingDivergedError
from feat2gs.gaussians import get_mode
from feat2gs.init.step import load_step1, run_init
from feat2gs.data.layout import SceneLayout
from feat2gs.train import train_readout
from feat2gs.train.losses import photometric_loss, ssim
from feat2gs.train.schedules import exp_lr
from feat2gs.train.views import load_views
from tests.conftest import tiny_config


def test_schedule_and_losses():
    assert math.isclose(exp_lr(0, 1e-2, 1e-4, 1000), 1e-2)
    assert math.isclose(exp_lr(500, 1e-2, 1e-4, 1000), 1e-3)
    assert math.isclose(exp_lr(5000, 1e-2, 1e-4, 1000), 1e-4)
    img = torch.rand(20, 30, 3)
    assert torch.isclose(ssim(img, img), torch.tensor(1.0))
    loss, l1 = photometric_loss(img, img, 0.2)
    assert float(loss) < 1e-6 and float(l1) == 0


@pytest.fixture(scope="module")
def training_data(pristine_scene, tmp_path_factory):
    cfg = tiny_config()
    root = tmp_path_factory.mktemp("training_data")
    shutil.copytree(pristine_scene, root, dirs_exist_ok=True)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    step1 = run_init(layout, cfg.init, "oracle_xyz")
    data = load_step1(step1)
    views = load_views(step1, layout.train_images_dir, data["manifest"]["names"], cfg.train.resolution,
                       torch.device("cpu"))
    return cfg, data, views


def _train(training_data, mode="G", **overrides):
    cfg, data, views = training_data
    for key, value in overrides.items():
        setattr(cfg.train, key, value)
    return train_readout(data["points"], data["colors"], data["features"], views, get_mode(mode), False,
                         cfg.train, torch.device("cpu"), progress=False)


def test_training_reduces_loss_and_is_reproducible(training_data):
    a = _train(training_data, mode="T", iterations=100, warm_iterations=40, log_every=1)
    warm = [h["loss"] for h in a.history if h["phase"] == "warm"]
    render = [h["loss"] for h in a.history if h["phase"] == "render"]
    assert warm[-1] < 0.5 * warm[0]
    assert sum(render[-15:]) / 15 < 0.9 * sum(render[:15]) / 15  # averaged: each step sees a random view
    b = _train(training_data, mode="T", iterations=100, warm_iterations=40, log_every=1)
    assert all(torch.equal(a.raw[k], b.raw[k]) for k in a.raw)
    assert a.poses_final.shape == (3, 4, 4) and not (a.poses_final == a.poses_init).all()  # poses were optimised


def test_ft_mode_changes_features_in_render_phase(training_data):
    _, data, _ = training_data
    warm_only = _train(training_data, mode="Tft", iterations=11, warm_iterations=10)  # last iteration never steps
    full = _train(training_data, mode="Tft", iterations=30, warm_iterations=10)
    frozen = _train(training_data, mode="Tft", iterations=30, warm_iterations=10, ft_render_phase=False)
    assert not torch.equal(warm_only.features, data["features"])
    assert not torch.allclose(full.features, warm_only.features)  # render phase keeps fine-tuning
    assert torch.equal(frozen.features, warm_only.features)  # the reference's behaviour: frozen after warm start
    assert _train(training_data, mode="T", iterations=10, warm_iterations=10).features is None


def test_nan_loss_stops_with_iteration(training_data):
    cfg, data, views = training_data
    feats = data["features"].clone()
    feats[0, 0] = float("nan")
    cfg.train.iterations, cfg.train.warm_iterations = 10, 5
    with pytest.raises(TrainingDivergedError, match="at iteration 1 "):
        train_readout(data["points"], data["colors"], feats, views, get_mode("G"), False, cfg.train,
                      torch.device("cpu"), progress=False)


def test_training_reports_how_much_of_each_view_the_gaussians_cover(training_data):
    """Mean alpha of the final Gaussians in every training view: high for a working readout, ~0 when the
    Gaussians are nowhere in view (a failed readout or pose), which the job then reports."""
    cfg, data, views = training_data
    good = _train(training_data, mode="T", iterations=12, warm_iterations=6)
    assert len(good.coverage) == len(views) and min(good.coverage) > 0.3
    centre = torch.as_tensor(views[0].camera.center, dtype=torch.float32)
    behind = centre - 100.0 * torch.as_tensor(views[0].camera.c2w[:3, 2], dtype=torch.float32)  # far behind view 0
    away = data["points"] - data["points"].mean(0) + behind
    lost = train_readout(away, data["colors"], data["features"], views, get_mode("T"), False, cfg.train,
                         torch.device("cpu"), progress=False)
    assert max(lost.coverage) < 0.01
