import pytest

from feat2gs.config import config_from_dict, fingerprint, make_config
from feat2gs.errors import ConfigError


def test_presets_differ_where_documented():
    protocol, quick = make_config("protocol"), make_config("quick")
    assert (protocol.init.image_size, protocol.train.iterations, protocol.train.warm_iterations) == (512, 8000, 1000)
    assert protocol.eval.test_pose_iterations == 500 and protocol.init.feat_dim == 256
    assert quick.init.image_size == 64 and quick.train.iterations < 1000


def test_overrides_are_typed_and_checked():
    cfg = make_config("quick", ["train.iterations=123", "train.feature_lr=1e-3", "init.feat_dim=none",
                                "train.optim_pose=false"])
    assert cfg.train.iterations == 123 and cfg.train.feature_lr == 1e-3
    assert cfg.init.feat_dim is None and cfg.train.optim_pose is False
    with pytest.raises(ConfigError, match="unknown option 'iters'"):
        make_config("quick", ["train.iters=3"])
    with pytest.raises(ConfigError, match="unknown section"):
        make_config("quick", ["nope.x=3"])
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("fast")


def test_config_round_trip_and_fingerprint():
    cfg = make_config("quick", ["train.seed=7"])
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    assert fingerprint(cfg.to_dict()) == fingerprint(again.to_dict())
    assert fingerprint(cfg.to_dict()) != fingerprint(make_config("quick").to_dict())


def test_device_option_reaches_step1_networks():
    from feat2gs.cli import _config

    cfg = _config("quick", None, None, None, "cpu", None, None, False, None)
    assert cfg.device == "cpu" and cfg.init.device == "cpu"
    assert make_config("quick").init.device == "auto"
