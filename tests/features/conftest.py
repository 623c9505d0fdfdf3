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
