import numpy as np
import pytest
import torch
import torchvision

from feat2gs.config import make_config
from feat2gs.data.layout import SceneLayout
from feat2gs.evaluate.lpips_vgg import load_lpips_vgg
from feat2gs.evaluate.metrics import image_metrics, psnr_masked, psnr_paper, summarise
from feat2gs.evaluate.refine import refine_test_pose
from feat2gs.evaluate.test_pose import load_mask, run_init_test_pose
from feat2gs.geometry.camera import perturb_w2c
from feat2gs.evaluate.visibility import visibility_mask
from feat2gs.render import Gaussians, RenderSettings, rasterize


def test_masks_mark_surfaces_seen_by_training_views(scene_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = make_config("quick")
    out = run_init_test_pose(layout, cfg.init, cfg.eval)
    masks = [load_mask(out, n, 64, 48) for n in layout.test_names]
    for m in masks:  # test views sit between train views: most pixels are visible, occlusion edges are not
        assert 0.7 < float(m.mean()) < 1.0
    assert (out / "masks" / "view_001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mtime = (out / "images.txt").stat().st_mtime_ns
    assert run_init_test_pose(layout, cfg.init, cfg.eval) == out
    assert (out / "images.txt").stat().st_mtime_ns == mtime  # valid outputs are reused, not rewritten


def test_visibility_rejects_out_of_frustum_and_occluded_points():
    K = torch.tensor([[20.0, 0, 10], [0, 20, 10], [0, 0, 1]], dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    depth = torch.full((20, 20), 2.0, dtype=torch.float64)
    shifted = eye.clone()
    shifted[0, 3] = 1.0  # train camera moved right by 1: the left part of the test view is outside it
    mask = visibility_mask(depth, K, eye, depth[None], K[None], shifted[None])
    assert mask[:, -1].all() and not mask[:, 0].any()
    occluder = depth.clone()
    occluder[:, 12:] = 1.0  # train view sees something nearer there
    mask2 = visibility_mask(depth, K, eye, occluder[None], K[None], eye[None])
    assert mask2[:, :11].all() and not mask2[:, 13:].any()


def test_metrics_paper_vs_masked():
    gt = torch.full((10, 10, 3), 0.5)
    render = gt.clone()
    render[:, :5] += 0.1
    mask = torch.ones(10, 10)
    mask[:, :5] = 0
    assert psnr_masked(render, gt, mask) > 150  # the visible half is perfect
    assert psnr_paper(render, gt, mask) > 150  # masked-out errors are multiplied away too
    mask[:, 4] = 1
    assert np.isclose(psnr_masked(render, gt, mask), 20 * np.log10(1 / 0.1) + 10 * np.log10(6 / 1), atol=1e-3)
    assert psnr_paper(render, gt, mask) > psnr_masked(render, gt, mask)  # zeros inflate the paper PSNR


def test_lpips_missing_weights_give_null_and_a_message(tmp_path, monkeypatch):
    monkeypatch.setenv("FEAT2GS_VGG16_WEIGHTS", str(tmp_path / "absent.pth"))
    model, message = load_lpips_vgg(torch.device("cpu"))
    assert model is None and "absent.pth" in message and "IMAGENET1K_V1" in message
    out = image_metrics(torch.rand(16, 16, 3), torch.rand(16, 16, 3), torch.ones(16, 16), model, 0.01).values
    assert out["LPIPS"] is None and out["PSNR"] > 0


def test_lpips_uses_weights_from_disk(tmp_path, monkeypatch):
    path = tmp_path / "vgg16.pth"
    torch.save(torchvision.models.vgg16(weights=None).features.state_dict(), path)
    monkeypatch.setenv("FEAT2GS_VGG16_WEIGHTS", str(path))
    model, message = load_lpips_vgg(torch.device("cpu"))
    assert model is None and "not a torchvision VGG16 checkpoint" in message  # keys lack the features. prefix
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    model, message = load_lpips_vgg(torch.device("cpu"))
    assert message is None
    a, b = torch.rand(32, 32, 3), torch.rand(32, 32, 3)
    same = image_metrics(a, a, torch.ones(32, 32), model, 0.01).values
    diff = image_metrics(a, b, torch.ones(32, 32), model, 0.01).values
    assert same["LPIPS"] == pytest.approx(0, abs=1e-6) and diff["LPIPS"] > 0 and diff["LPIPS_masked"] > 0
    path.write_bytes(b"truncated")
    model, message = load_lpips_vgg(torch.device("cpu"))
    assert model is None and "cannot read" in message


def _scene():
    gen = torch.Generator().manual_seed(0)
    n = 300
    # distinct depths: equal depths would make the compositing order flip under any tiny rotation
    means = torch.cat([torch.rand(n, 2, generator=gen) * 2 - 1, 2.5 + torch.rand(n, 1, generator=gen)], dim=1)
    return Gaussians(means, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), 0.06),
                     torch.full((n,), 0.9), torch.rand(n, 3, generator=gen)), n


def test_refinement_recovers_a_perturbed_pose_and_keeps_the_best():
    gaussians, _ = _scene()
    K = torch.tensor([[40.0, 0, 20], [0, 40, 15], [0, 0, 1]])
    settings = RenderSettings(sh_degree=None)
    true = torch.eye(4)
    gt = rasterize(gaussians, true, K, 40, 30, settings).image.detach()
    start = torch.as_tensor(perturb_w2c(np.eye(4), 1.0, 0.03, np.random.default_rng(0)), dtype=torch.float32)
    mask = torch.ones(30, 40)
    result = refine_test_pose(gaussians, start, K, 40, 30, gt, mask, 60, 3e-3, 1e-3, settings)
    assert result.best_loss < 0.7 * result.initial_loss
    assert (result.viewmat[:3, 3] - true[:3, 3]).norm() < (start[:3, 3] - true[:3, 3]).norm()
    replay = ((gt - rasterize(gaussians, result.viewmat, K, 40, 30, settings).image).abs()).mean()
    assert float(replay) == pytest.approx(result.best_loss, rel=1e-5)  # the kept pose is the one that scored best


def test_views_that_cannot_be_measured_are_null_with_a_reason():
    a, b = torch.rand(24, 32, 3), torch.rand(24, 32, 3)
    empty = image_metrics(a, b, torch.zeros(24, 32), None, 0.01)
    assert all(v is None for k, v in empty.values.items() if k != "mask_fraction") and "0.00% of the view" in empty.reason
    tiny = torch.zeros(24, 32)
    tiny[0, :7] = 1  # 7 of 768 pixels = 0.9 %: below 1 %
    assert image_metrics(a, b, tiny, None, 0.01).values["PSNR"] is None
    assert image_metrics(a, b, tiny, None, 0.005).values["PSNR"] is not None
    same = image_metrics(a, a, torch.ones(24, 32), None, 0.01)
    assert same.values["PSNR"] is None and same.values["SSIM"] == pytest.approx(1.0) and "PSNR" in same.reason
    ok = image_metrics(a, b, torch.ones(24, 32), None, 0.01)
    assert ok.reason is None and ok.values["PSNR"] > 0

    views = {"a.png": ok, "b.png": empty}
    partial = summarise(views)
    assert partial.status == "partial" and partial.num_scored == 1 and partial.means["PSNR"] == ok.values["PSNR"]
    assert set(partial.null_reasons) == {"b.png"} and "b.png" in partial.reason
    degenerate = summarise({"b.png": empty})
    assert degenerate.status == "degenerate" and degenerate.means["PSNR"] is None and "visible" in degenerate.reason
    assert summarise({"a.png": ok}).status == "ok"


def test_refinement_without_a_finite_loss_keeps_the_initial_pose_and_reports_null():
    """A target with NaN pixels (or a render that goes NaN) gives no finite loss: the initial pose is kept and the
    losses are null, never an Infinity that strict JSON refuses."""
    gaussians, _ = _scene()
    K = torch.tensor([[40.0, 0, 20], [0, 40, 15], [0, 0, 1]])
    start = torch.eye(4)
    gt = torch.full((30, 40, 3), float("nan"))
    result = refine_test_pose(gaussians, start, K, 40, 30, gt, torch.ones(30, 40), 5, 3e-3, 1e-3,
                              RenderSettings(sh_degree=None))
    assert result.best_loss is None and result.initial_loss is None
    assert torch.allclose(result.viewmat, start, atol=1e-6)
