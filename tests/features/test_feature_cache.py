"""The on-disk cache of raw network grids: one extraction per (images, backbone, weights), shared by every feature
string, never reused when the weights, seed or images change, and recomputed when the file is damaged."""

import json
import os
import shutil

import pytest
import torch

from feat2gs.features import FeatureInputs, compose_features, registry
from feat2gs.features import backbones as bb
from feat2gs.features.cache import cache_file
from feat2gs.features.registry import FeatureSpec
from tests.features.conftest import backbone_inputs


@pytest.fixture()
def counted(monkeypatch, tmp_path):
    """A registered 'counted' feature whose identity is a weights file; counts its extractions."""
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"v1")
    calls = []

    def extract(inputs):
        calls.append(1)
        torch.manual_seed(len(weights.read_bytes()))
        return inputs.images[:, ::4, ::4].repeat(1, 1, 1, 4) + torch.rand(1)

    from feat2gs.features.cache import file_identity

    spec = FeatureSpec("counted", 12, 4, "test feature", extract, needs_weights=True,
                       cache_identity=lambda inputs: file_identity(weights) + f"|{inputs.random_weights}")
    registry._ensure_builtin()
    monkeypatch.setitem(registry._REGISTRY, "counted", spec)
    return calls, weights


def test_one_extraction_serves_every_feature_string(counted, tmp_path):
    calls, weights = counted
    inputs = backbone_inputs(16, 24, n=3)
    inputs.cache_dir = tmp_path / "cache"
    single = compose_features("counted", inputs, 4)
    compose_features("counted-iuvrgb", inputs, 4)
    compose_features("iuv-counted", inputs, None)
    assert len(calls) == 1
    files = list((tmp_path / "cache" / "counted").glob("*.safetensors"))
    assert len(files) == 1 and files[0].name.startswith("16x24-")
    assert torch.equal(compose_features("counted", inputs, 4), single)  # cached grid == computed grid
    # no cache dir: always computed
    compose_features("counted", backbone_inputs(16, 24, n=3), 4)
    assert len(calls) == 2
    # other images, other weights (a new file), random weights: new entries
    other = backbone_inputs(16, 24, n=3, seed=1)
    other.cache_dir = inputs.cache_dir
    compose_features("counted", other, 4)
    assert len(calls) == 3
    weights.write_bytes(b"v2-longer")
    compose_features("counted", inputs, 4)
    assert len(calls) == 4
    inputs.random_weights = False
    compose_features("counted", inputs, 4)
    assert len(calls) == 5 and len(list((tmp_path / "cache" / "counted").glob("*.safetensors"))) == 4


def test_damaged_cache_files_are_recomputed_and_replaced(counted, tmp_path):
    calls, weights = counted
    inputs = backbone_inputs(16, 24, n=2)
    inputs.cache_dir = tmp_path / "cache"
    first = compose_features("counted", inputs, None)
    spec = registry.get_feature("counted")
    path = cache_file(inputs.cache_dir, "counted", inputs.images, spec.cache_identity(inputs))
    assert path.is_file()
    path.write_bytes(b"truncated")
    assert torch.equal(compose_features("counted", inputs, None), first)
    assert len(calls) == 2
    assert torch.equal(compose_features("counted", inputs, None), first) and len(calls) == 2  # replaced, reused
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # a flipped bit in the last feature value: same size, still parses, still finite
    path.write_bytes(bytes(data))
    assert torch.equal(compose_features("counted", inputs, None), first) and len(calls) == 3


def test_backbone_cache_identity_follows_weights_and_seed(offline_empty_caches):
    ident = bb.backbone_cache_identity
    inputs = backbone_inputs(32, 32)
    assert "random:0" in ident("dino_b16", inputs)
    inputs.seed = 3
    assert "random:3" in ident("dino_b16", inputs) and "noise seed 3" in ident("dift", inputs)
    assert "noise seed" not in ident("dino_b16", inputs)
    weights = offline_empty_caches / "dino.pth"
    weights.write_bytes(b"x")
    pretrained = FeatureInputs(inputs.images, inputs.points, checkpoints={"dino_b16": str(weights)})
    a = ident("dino_b16", pretrained)
    assert str(weights.resolve()) in a
    os.utime(weights, ns=(1, 1))
    assert ident("dino_b16", pretrained) != a
    with pytest.raises(bb.BackboneWeightsError):  # no weights: the usual error, before any extraction
        ident("dino_b16", FeatureInputs(inputs.images, inputs.points))


def test_step1_reuses_backbone_grids_across_feature_strings(scene_root, tmp_path, offline_empty_caches, monkeypatch):
    from feat2gs.config import make_config
    from feat2gs.data.layout import SceneLayout
    from feat2gs.init.step import run_init

    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    calls = []
    real = bb.run_backbone
    monkeypatch.setattr(bb, "run_backbone", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = make_config("quick", ["init.image_size=48", "init.feat_dim=8", "init.random_weights=true"]).init
    a = run_init(layout, cfg, "dino_b16")
    b = run_init(layout, cfg, "dino_b16-iuvrgb")
    assert len(calls) == 1
    assert json.loads((a / "manifest.json").read_text())["random_weights"] is True
    assert json.loads((b / "manifest.json").read_text())["feature_dim"] == 8
    assert len(list((layout.views_dir / "feature_cache" / "dino_b16").glob("*.safetensors"))) == 1
    off = make_config("quick", ["init.image_size=48", "init.feat_dim=8", "init.random_weights=true",
                                "init.feature_cache=false"]).init
    run_init(layout, off, "dino_b16-iuv")
    assert len(calls) == 2
    bb.clear_model_cache()
