import pytest
import torch
from PIL import Image

from feat2gs.errors import ConfigError
from feat2gs.features import FeatureInputs, compose_features, parse_feature_string, pca_project
from feat2gs.features.visualize import save_feature_visualisation


@pytest.fixture()
def inputs():
    gen = torch.Generator().manual_seed(0)
    return FeatureInputs(torch.rand(2, 16, 24, 3, generator=gen), torch.rand(2, 16, 24, 3, generator=gen) + 2, seed=3)


def test_iuv_and_iuvrgb_values(inputs):
    f = compose_features("iuv", inputs, 256)
    assert f.shape == (2, 16, 24, 3)
    assert torch.allclose(f[1, :, :, 0], torch.ones(16, 24)) and torch.allclose(f[0, :, :, 0], torch.zeros(16, 24))
    assert f[0, 0, 0, 1] == 0 and f[0, 0, -1, 1] == 1 and f[0, -1, 0, 2] == 1
    g = compose_features("iuvrgb", inputs, 256)
    assert torch.allclose(g[..., 3:], inputs.images * 2 - 1)


def test_controls_are_seeded(inputs):
    a = compose_features("noise", inputs, 32)
    b = compose_features("noise", inputs, 32)
    assert torch.equal(a, b) and a.shape == (2, 16, 24, 32)
    other = FeatureInputs(inputs.images, inputs.points, seed=4)
    assert not torch.equal(a, compose_features("noise", other, 32))
    oracle = compose_features("oracle_xyz", inputs, None)
    assert oracle.shape[-1] == 256 and oracle.abs().max() <= 1.0 + 1e-6


def test_oracle_encodes_geometry(inputs):
    """Pixels with equal 3D points get equal oracle features, whatever their colour."""
    pts = inputs.points.clone()
    pts[1, 3, 4] = pts[0, 5, 6]
    enc = compose_features("oracle_xyz", FeatureInputs(torch.rand_like(inputs.images), pts), None)
    assert torch.allclose(enc[1, 3, 4], enc[0, 5, 6])


def test_exact_pca_is_deterministic_and_ordered():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(500, 6, generator=gen) * torch.tensor([5.0, 3, 2, 1, 0.5, 0.1])
    y = pca_project(x, 3)
    assert torch.equal(y, pca_project(x.clone(), 3))
    var = y.var(0)
    assert var[0] > var[1] > var[2]
    assert torch.allclose(var, torch.tensor([25.0, 9, 4]), rtol=0.2)
    low = pca_project(x, 3, method="lowrank", seed=5)
    assert torch.equal(low, pca_project(x, 3, method="lowrank", seed=5))
    assert torch.allclose(low.abs().var(0), y.abs().var(0), rtol=1e-3)


def test_bad_names_and_dims(inputs):
    with pytest.raises(ConfigError, match="unknown feature 'dinoo'"):
        parse_feature_string("dinoo")
    with pytest.raises(ConfigError, match="feat-dim 300 is larger than the feature width 256"):
        compose_features("noise", inputs, 300)
    with pytest.raises(ConfigError, match="repeats"):
        parse_feature_string("iuv-iuv")


def test_concatenation(inputs):
    f = compose_features("noise-oracle_xyz-iuvrgb", inputs, 16)
    assert f.shape == (2, 16, 24, 16) and torch.isfinite(f).all()
    assert [s.name for s in parse_feature_string("noise-iuvrgb")] == ["noise", "iuvrgb"]


def test_visualisation_png(tmp_path, inputs):
    path = tmp_path / "vis.png"
    save_feature_visualisation(path, inputs.images, compose_features("noise", inputs, 16))
    with Image.open(path) as img:
        assert img.width >= 4 * 256 and img.height == img.width // 4 * 2 * 16 // 24
    assert list(tmp_path.iterdir()) == [path]
