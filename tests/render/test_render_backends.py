"""Backend selection and input validation of feat2gs.render.rasterize."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

import feat2gs.render
from feat2gs.errors import ConfigError
from feat2gs.render import RenderSettings, available_backends, rasterize
from feat2gs.render import api


@pytest.fixture
def scene(make_gaussians, make_pinhole):
    g = make_gaussians([[0.0, 0.0, 2.0]], [0.1], [0.5], [[1.0, 0.0, 0.0]], dtype=torch.float32)
    return g, torch.eye(4), make_pinhole(8, 6, 8.0, dtype=torch.float32)


RGB = RenderSettings(sh_degree=None)


def test_unknown_backend_lists_the_valid_ones(scene):
    with pytest.raises(ConfigError, match="unknown render backend 'cuda'") as err:
        rasterize(*scene, 8, 6, RGB, backend="cuda")
    for name in ("'auto'", "'torch'", "'gsplat'"):
        assert name in str(err.value)


def test_gsplat_without_the_package_names_the_install_command(scene, monkeypatch):
    monkeypatch.setattr(api, "has_gsplat", lambda: False)
    with pytest.raises(ConfigError, match=r'pip install "feat2gs\[gpu\]".*gsplat==1\.5\.3'):
        rasterize(*scene, 8, 6, RGB, backend="gsplat")


def test_gsplat_on_cpu_tensors_is_refused(scene, monkeypatch):
    monkeypatch.setattr(api, "has_gsplat", lambda: True)
    with pytest.raises(ConfigError, match=r"needs CUDA tensors.*cpu.*pip install \"feat2gs\[gpu\]\""):
        rasterize(*scene, 8, 6, RGB, backend="gsplat")


def test_auto_uses_torch_for_cpu_tensors_even_with_gsplat(scene, monkeypatch):
    monkeypatch.setattr(api, "has_gsplat", lambda: True)
    calls = []
    monkeypatch.setitem(api.BACKENDS, "torch", lambda *args: calls.append("torch"))
    monkeypatch.setitem(api.BACKENDS, "gsplat", lambda *args: calls.append("gsplat"))
    rasterize(*scene, 8, 6, RGB)
    assert calls == ["torch"]


def test_available_backends_always_include_torch():
    backends = available_backends()
    assert backends[0] == "torch"
    assert ("gsplat" in backends) == (torch.cuda.is_available() and api.has_gsplat())


def test_importing_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(api)
        importlib.reload(feat2gs.render)


@pytest.mark.parametrize(("settings", "message"), [
    (RenderSettings(sh_degree=None, render_mode="D"), "unknown render_mode 'D'"),
    (RenderSettings(sh_degree=4), "sh_degree must be None or in 0..3"),
    (RenderSettings(sh_degree=None, near_plane=0.0), "near_plane"),
])
def test_invalid_settings_raise_config_error(scene, settings, message):
    with pytest.raises(ConfigError, match=message):
        rasterize(*scene, 8, 6, settings)


def test_colors_must_match_sh_degree(scene):
    with pytest.raises(ValueError, match=r"SH coefficients \[1, K >= 4, 3\]"):
        rasterize(*scene, 8, 6, RenderSettings(sh_degree=1))
