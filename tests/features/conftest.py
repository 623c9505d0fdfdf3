"""Shared by the backbone tests: small random inputs and weight caches that are empty and offline."""

from __future__ import annotations

import socket

import pytest
import torch

from feat2gs.features import FeatureInputs
from feat2gs.features import backbones as bb


def backbone_inputs(h: int, w: int, n: int = 2, seed: int = 0) -> FeatureInputs:
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, h, w, 3, generator=gen)
    return FeatureInputs(images, torch.zeros_like(images), random_weights=True)


def assert_random_weight_grids(name: str, sizes: list[tuple[int, int]]):
    """The real architecture with random weights on images of several aspect ratios: grid shape (stride, channels),
    finite, image-dependent, deterministic, and the same when run one image at a time. Returns the loaded network."""
    cfg = bb.load_backbone_config(name)
    for h, w in sizes:
        inputs = backbone_inputs(h, w)
        feats = bb.extract_backbone(name, inputs, device="cpu")
        assert feats.shape == (2, round(h / cfg.stride), round(w / cfg.stride), cfg.channels)
        assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
        assert feats.std() > 0 and not torch.allclose(feats[0], feats[1])
        assert torch.equal(feats, bb.extract_backbone(name, inputs, device="cpu"))
    loaded = bb.load_backbone(cfg, random_weights=True, device="cpu")  # the cached network
    assert loaded.random_weights and loaded.origin == "random"
    chunked = bb.run_backbone(loaded, inputs.images, pixel_budget=1)  # one image per pass
    assert torch.allclose(chunked, feats, atol=1e-4)
    return loaded


def assert_missing_weights_explained(hints: dict[str, str], cache_root) -> None:
    """Each backbone without weights raises our error naming the caches looked at and the fetch command."""
    for name, hint in hints.items():
        with pytest.raises(bb.BackboneWeightsError) as info:
            bb.extract_backbone(name, FeatureInputs(torch.rand(1, 32, 32, 3), torch.zeros(1, 32, 32, 3)), device="cpu")
        msg = str(info.value)
        assert f"no pretrained weights for backbone '{name}'" in msg and hint in msg, msg
        assert str(cache_root) in msg
        assert bb.backbone_status(name)[0] is False


@pytest.fixture()
def offline_empty_caches(tmp_path, monkeypatch):
    """Every weight cache points into an empty tmp dir, HF is offline and opening a socket fails the test."""
    for var in ("HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME", "HOME", "FEAT2GS_CHECKPOINTS"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    yield tmp_path
    bb.clear_model_cache()
