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


def assert_missing_weights_explained(hints: dict[str, str], cache_root) -> None:
    """Each backbone without weights raises our error naming the caches looked at and the fetch command."""
    for name, hint in hints.items():
        with pytest.raises(bb.BackboneWeightsError) as info:
            bb.extract_backbone(name, FeatureInputs(torch.rand(1, 32, 32, 3), torch.zeros(1, 32, 32, 3)), device="cpu")
        msg = str(info.value)
        assert f"no pretrained weights for backbone '{name}'" in msg and hint in msg, msg
        assert str(cache_root) in msg
        assert bb.backbone_status(name)[:2] == (True, False)


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
