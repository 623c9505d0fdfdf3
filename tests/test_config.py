import pytest

from feat2gs.config import config_from_dict, fingerprint, make_config
from feat2gs.errors import ConfigError


def test_presets_differ_where_documented():
    protocol, quick = make_config("protocol"), make_config("quick")
    assert (protocol.init.image_size, protocol.train.iterations, protocol.train.warm_iterations) == (512, 8000, 1000)
    assert protocol.eval.test_pose_iterations == 500 and protocol.init.feat_dim == 256
    assert quick.init.image_size == 64 and quick.train.iterations < 1000


def test_overrides_are_typed_and_checked():
    cfg = make_config("quick", ["train.iterations=123", "train.warm_iterations=60", "train.feature_lr=1e-3",
                                "init.feat_dim=none", "train.optim_pose=false"])
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

    cfg = _config("quick", device="cpu")
    assert cfg.device == "cpu" and cfg.init.device == "cpu"
    assert make_config("quick").init.device == "auto"


def test_set_parses_by_the_declared_type():
    cfg = make_config("quick", ["init.checkpoint=2025", "train.resolution=96", "video.n_frames=none"])
    assert cfg.init.checkpoint == "2025"  # Optional[str] stays a string, however numeric the text
    assert cfg.train.resolution == 96 and isinstance(cfg.train.resolution, int)
    assert cfg.video.n_frames is None
    with pytest.raises(ConfigError, match=r"train.resolution=abc: expected an integer"):
        make_config("quick", ["train.resolution=abc"])  # Optional[int] never becomes a string
    with pytest.raises(ConfigError, match=r"train.iterations=1.5: expected an integer"):
        make_config("quick", ["train.iterations=1.5"])
    with pytest.raises(ConfigError, match=r"train.feature_lr=nan: expected a finite number"):
        make_config("quick", ["train.feature_lr=nan"])
    with pytest.raises(ConfigError, match=r"train.optim_pose=maybe: expected true or false"):
        make_config("quick", ["train.optim_pose=maybe"])


@pytest.mark.parametrize("override, message", [
    ("train.iterations=-5", "train.iterations=-5: expected > 0"),
    ("train.iterations=0", "train.iterations=0: expected > 0"),
    ("train.warm_iterations=600", "train.warm_iterations=600: must be < train.iterations=600"),
    ("train.warm_iterations=-1", "train.warm_iterations=-1: expected >= 0"),
    ("train.feature_lr=-1e-3", "train.feature_lr=-0.001: expected >= 0"),
    ("train.resolution=0", "train.resolution=0: expected > 0 or none"),
    ("train.sh_degree=4", "train.sh_degree=4: expected an integer in 0..3"),
    ("train.lambda_dssim=1.5", "train.lambda_dssim=1.5: expected in [0, 1]"),
    ("train.log_every=0", "train.log_every=0: expected > 0"),
    ("init.image_size=8", "init.image_size=8: expected >= 16"),
    ("init.feat_dim=0", "init.feat_dim=0: expected > 0 or none"),
    ("init.batch_size=0", "init.batch_size=0: expected > 0"),
    ("init.pca=svd", "init.pca=svd: expected one of exact, lowrank"),
    ("init.autocast=fp8", "init.autocast=fp8: expected one of none, bf16, fp16"),
    ("init.method=colmap", "init.method=colmap: expected one of dust3r, gt, mast3r"),
    ("init.mast3r_alignment=both", "init.mast3r_alignment=both: expected one of sparse, dense"),
    ("init.feature_checkpoints=dino_b16", "init.feature_checkpoints: expected name=path"),
    ("eval.test_pose_iterations=-1", "eval.test_pose_iterations=-1: expected >= 0"),
    ("eval.mask_depth_atol=0", "eval.mask_depth_atol=0.0: expected > 0"),
    ("eval.min_visible_fraction=0", "eval.min_visible_fraction=0.0: expected in (0, 1]"),
    ("video.trajectory=circle", "video.trajectory=circle: expected one of arc, "),
    ("video.n_frames=1", "video.n_frames=1: expected >= 2 or none"),
    ("video.fps=0", "video.fps=0: expected > 0"),
    ("backend=vulkan", "backend=vulkan: expected one of auto, torch, gsplat"),
    ("device=gpu0", "device=gpu0: expected auto, cpu, cuda"),
])
def test_invalid_settings_name_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        make_config("quick", [override])
    assert message in str(info.value)


def test_config_files_are_typed_and_validated():
    data = make_config("quick").to_dict()
    data["train"]["iterations"] = "600"
    with pytest.raises(ConfigError, match="train.iterations: '600' is not an int"):
        config_from_dict(data)
    data = make_config("quick").to_dict()
    data["train"]["iters"] = 5
    with pytest.raises(ConfigError, match="train: unknown setting"):
        config_from_dict(data)
    data = make_config("quick").to_dict()
    data["eval"]["test_pose_lr_t"] = -1
    with pytest.raises(ConfigError, match="eval.test_pose_lr_t=-1.0: expected >= 0"):
        config_from_dict(data)


def test_truncated_colours_are_part_of_the_step1_key_and_floor(scene_root):
    import torch

    from feat2gs.data.layout import SceneLayout
    from feat2gs.init.step import step1_key, to_uint8

    x = torch.tensor([0.0, 0.5 / 255, 1.6 / 255, 1.0])
    assert to_uint8(x).tolist() == [0, 0, 2, 255] and to_uint8(x, truncate=True).tolist() == [0, 0, 1, 255]
    layout = SceneLayout.open(scene_root, "Synthetic", "blocks")
    a, b = make_config("quick"), make_config("quick", ["init.truncate_colors=true"])
    assert step1_key(layout, a.init, "iuvrgb") != step1_key(layout, b.init, "iuvrgb")


def _other_value(cfg, name):
    """A valid value different from the current one, for every kind of setting."""
    from feat2gs.config import get_setting

    value = get_setting(cfg, name)
    choices = {"init.method": ["dust3r"], "init.pca": ["lowrank"], "init.autocast": ["bf16"],
               "init.mast3r_alignment": ["sparse", "dense"], "eval.test_pose_focal": ["estimated"],
               "video.trajectory": ["arc"], "backend": ["torch"], "device": ["cpu"], "init.device": ["cpu"],
               "init.checkpoint": ["some.pth"], "init.feature_checkpoints": ["dino_b16=a.pth"]}
    if name in choices:
        candidates = choices[name]
    elif isinstance(value, bool):
        candidates = [not value]
    elif isinstance(value, int) or value is None:
        candidates = [(value or 0) + 2, (value or 0) - 1]
    else:
        candidates = [value + 0.125, value / 2]
    for candidate in candidates:
        if candidate == value:
            continue
        try:
            make_config("quick", [f"{name}={candidate}"])
        except ConfigError:
            continue
        return candidate
    raise AssertionError(f"no other valid value for {name}={value!r}")


def test_every_setting_is_read_by_declared_steps_or_declared_unread():
    import dataclasses

    from feat2gs.config import NOT_READ, STEP_SETTINGS, ExperimentConfig, step_settings

    cfg = make_config("quick")
    names = [f.name for f in dataclasses.fields(ExperimentConfig) if not dataclasses.is_dataclass(getattr(cfg, f.name))]
    for section in ("init", "train", "eval", "video", "instantsplat"):
        names += [f"{section}.{f.name}" for f in dataclasses.fields(getattr(cfg, section))]
    base = {step: step_settings(cfg, step) for step in STEP_SETTINGS}
    for name in names:
        changed = make_config("quick", [f"{name}={_other_value(cfg, name)}"] if name != "preset" else [])
        if name == "preset":
            changed.preset = "x"
        readers = {step for step in STEP_SETTINGS if step_settings(changed, step) != base[step]}
        assert readers or name in NOT_READ, f"{name} is read by no step: declare it in STEP_SETTINGS or NOT_READ"
        assert not (readers and name in NOT_READ), f"{name} is declared unread but changes {readers}"


def test_changing_a_setting_reruns_exactly_the_steps_that_read_it(scene_root, tmp_path):
    from feat2gs.job import Job
    from tests.conftest import tiny_config

    changes: dict = {}

    def run(**change):
        changes.update(change)  # each run keeps the earlier changes: only the new one differs
        cfg = tiny_config()
        for name, value in changes.items():
            section, field = name.split(".")
            setattr(getattr(cfg, section), field, value)
        return Job.create(scene_root, "Synthetic", "blocks", "iuvrgb", "T", cfg, tmp_path, progress=False).run_all()

    run()
    assert run(**{"eval.test_pose_lr_t": 1e-3}) == {"init": False, "train": False, "render": True, "metrics": True,
                                                    "video": False}
    assert run(**{"video.fps": 12}) == {"init": False, "train": False, "render": False, "metrics": False,
                                       "video": True}
    assert run(**{"eval.min_visible_fraction": 0.02}) == {"init": False, "train": False, "render": False,
                                                          "metrics": True, "video": False}
    assert run(**{"train.lambda_dssim": 0.3}) == {"init": False, "train": True, "render": True, "metrics": True,
                                                  "video": True}


def test_a_runs_config_yaml_reproduces_it(scene_root, tmp_path):
    from feat2gs.cli import _config
    from feat2gs.config import load_config
    from feat2gs.job import Job
    from tests.conftest import tiny_config

    cfg = tiny_config(seed=3)
    job = Job.create(scene_root, "Synthetic", "blocks", "iuvrgb", "T", cfg, tmp_path, progress=False)
    job.train()
    again = load_config(job.dir / "config.yaml")
    assert again == cfg
    assert Job.create(scene_root, "Synthetic", "blocks", "iuvrgb", "T", again, tmp_path, progress=False).train() is False
    on_top = _config(config=job.dir / "config.yaml", set_=["train.iterations=50"])
    assert on_top.train.iterations == 50 and on_top.train.seed == 3 and on_top.preset == cfg.preset
