import numpy as np
import pytest
import torch
from plyfile import PlyData

from feat2gs.errors import ConfigError
from feat2gs.gaussians import (FeatureReadout, activate, get_mode, initial_params, read_gaussian_ply,
                               write_gaussian_ply)
from feat2gs.gaussians.initial import SH_C0


@pytest.fixture()
def init():
    gen = torch.Generator().manual_seed(0)
    return initial_params(torch.rand(50, 3, generator=gen), torch.rand(50, 3, generator=gen), sh_degree=3)


def test_initial_values_follow_the_protocol(init):
    assert torch.allclose(init["opacity"], torch.full((50, 1), float(np.log(0.1 / 0.9))))
    assert torch.equal(init["rotation"][:, 0], torch.ones(50)) and init["f_rest"].shape == (50, 45)
    assert torch.allclose(init["scaling"][:, 0], init["scaling"][:, 2])
    pts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [10, 10, 10]])
    cols = torch.full((5, 3), 0.5)
    p = initial_params(torch.as_tensor(pts), cols, sh_degree=0)
    assert p["f_rest"].shape == (5, 0) and torch.allclose(p["f_dc"], torch.zeros(5, 3))
    assert np.isclose(float(p["scaling"][0, 0]), np.log(np.sqrt((1 + 4 + 9) / 3)), atol=1e-6)
    assert np.isclose(SH_C0 * 1.0 + 0.5, 0.5 + 0.28209479177387814)


@pytest.mark.parametrize("name", ["G", "T", "A", "Gft", "Tft", "Aft"])
def test_modes_split_heads_and_free_tensors(init, name):
    mode = get_mode(name)
    readout = FeatureReadout(torch.randn(50, 8), init, mode)
    assert set(readout.heads) == set(mode.heads) and set(readout.free) == set(mode.free)
    assert isinstance(readout.features, torch.nn.Parameter) == name.endswith("ft")
    raw = readout()
    assert {k: v.shape for k, v in raw.items()} == {k: init[k].shape for k in init}
    for key in mode.free:
        assert torch.equal(raw[key], init[key])
    head = readout.heads[mode.heads[0]]
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Linear"] and head[0].out_features == 8


def test_ft_modes_pass_gradients_to_features(init):
    readout = FeatureReadout(torch.randn(50, 8), init, get_mode("Tft"))
    readout()["f_rest"].sum().backward()
    assert readout.features.grad is not None and readout.features.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="unknown probing mode"):
        get_mode("X")


def test_ply_round_trip_in_standard_layout(tmp_path, init):
    raw = {k: v + torch.randn_like(v) * 0.1 for k, v in init.items()}
    path = tmp_path / "point_cloud.ply"
    write_gaussian_ply(path, raw)
    names = [p.name for p in PlyData.read(str(path))["vertex"].properties]
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]
    assert names[54:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    vertex = PlyData.read(str(path))["vertex"]
    assert np.allclose(vertex["f_rest_1"], raw["f_rest"].reshape(50, 15, 3)[:, 1, 0].numpy())  # channel-major
    back = read_gaussian_ply(path)
    for key in raw:
        assert torch.allclose(back[key], raw[key]), key
    g = activate(back)
    assert g.colors.shape == (50, 16, 3) and torch.all(g.scales > 0) and torch.all((g.opacities > 0) & (g.opacities < 1))


def test_ft_detach_rest_stops_the_f_rest_gradient_into_the_features():
    from feat2gs.gaussians import FeatureReadout, get_mode, initial_params

    torch.manual_seed(0)
    points, colors = torch.rand(20, 3), torch.rand(20, 3)
    init = initial_params(points, colors, 3)
    for detach, expect_zero in ((False, False), (True, True)):
        readout = FeatureReadout(torch.rand(20, 8), init, get_mode("Aft"), detach_rest=detach)
        readout()["f_rest"].sum().backward()
        assert (readout.features.grad is None or readout.features.grad.abs().max() == 0) == expect_zero
        readout.zero_grad()
        readout()["f_dc"].sum().backward()  # every other head still trains the features
        assert readout.features.grad.abs().max() > 0
