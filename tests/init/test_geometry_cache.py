"""Step 1's geometry is computed once per (scene, method, settings) and shared by every feature string."""

from __future__ import annotations

import shutil

import torch
from safetensors.torch import load_file

from feat2gs.config import make_config
from feat2gs.data.layout import SceneLayout
from feat2gs.init import base
from feat2gs.init.step import run_init


def test_a_second_feature_reuses_the_geometry_bit_for_bit(scene_root, tmp_path, monkeypatch, caplog):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = make_config("quick", ["init.image_size=48", "init.feat_dim=8"]).init
    calls = []
    real = base._METHODS["gt"]
    monkeypatch.setitem(base._METHODS, "gt", lambda lay, c, **kw: calls.append(1) or real(lay, c, **kw))
    a = run_init(layout, cfg, "iuvrgb")
    b = run_init(layout, cfg, "noise")
    assert len(calls) == 1, "the init method ran again for another feature string"
    ga, gb = load_file(str(a / "geometry.safetensors")), load_file(str(b / "geometry.safetensors"))
    assert all(torch.equal(ga[k], gb[k]) for k in ga) and (a / "cameras.txt").read_text() == (b / "cameras.txt").read_text()
    [cache] = [p for p in (layout.views_dir / "geometry_cache").iterdir() if p.is_dir()]
    data = cache / "geometry.safetensors"
    data.write_bytes(data.read_bytes()[:100])  # damaged: recomputed, never trusted
    run_init(layout, cfg, "oracle_xyz")
    assert len(calls) == 2 and "damaged output" in caplog.text
    cfg2 = make_config("quick", ["init.image_size=64", "init.feat_dim=8"]).init
    run_init(layout, cfg2, "iuvrgb")  # other settings: other geometry
    assert len(calls) == 3


def test_an_initialiser_without_a_progress_parameter_still_runs(scene_root, tmp_path, monkeypatch):
    """``feat2gs.register_init`` takes ``fn(layout, cfg)`` as documented before step 1 gained progress bars."""
    monkeypatch.setattr(base, "_METHODS", dict(base._METHODS))
    gt = base.get_init("gt")
    seen = []

    @base.register_init("two_args")
    def two_args(layout, cfg):
        seen.append(cfg.method)
        return gt(layout, cfg)

    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    cfg = make_config("quick", ["init.image_size=48", "init.feat_dim=8", "init.method=two_args"]).init
    out = run_init(layout, cfg, "iuvrgb", progress=True)
    assert seen == ["two_args"] and (out / "points3D.ply").is_file()
