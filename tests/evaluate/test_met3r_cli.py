"""``feat2gs met3r IMAGES...`` (the command function, run through typer's CliRunner in a one-command app)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from feat2gs.errors import DatasetError
from feat2gs.evaluate.met3r import load as met3r_load
from feat2gs.evaluate.met3r.cli import met3r_command, read_sequence

from tests.evaluate._met3r_fixture import requires_met3r_fixture, tiny_met3r


def app() -> typer.Typer:
    a = typer.Typer(add_completion=False)
    a.command("met3r")(met3r_command)
    a.command("other")(lambda: None)  # two commands: `met3r` stays a sub-command, as in feat2gs
    return a


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from feat2gs.data.synthetic import make_scene

    root = make_scene(tmp_path_factory.mktemp("met3r_cli"), n_train=3, n_test=2, width=64, height=48, seed=1)
    return root / "images"


@pytest.fixture()
def tiny_loader(monkeypatch):
    """load_met3r -> the fixture's tiny networks (the real loader is exercised by the slow test below)."""
    seen = {}

    def fake(options=None, **kwargs):
        seen.update(kwargs, options=options)
        m = tiny_met3r(img_size=options.img_size)
        m.random_weights = kwargs.get("random_weights", False)
        return m

    monkeypatch.setattr(met3r_load, "load_met3r", fake)
    return seen


@requires_met3r_fixture
def test_folder_of_photos_with_random_weights(photos, tmp_path, tiny_loader):
    out = tmp_path / "res" / "met3r.json"
    r = CliRunner().invoke(app(), ["met3r", str(photos), "--random-weights", "--size", "64", "--backbone", "dust3r",
                                   "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "random_weights: true" in r.output and "MET3R mean over" in r.output
    assert tiny_loader["random_weights"] is True and tiny_loader["options"].backbone == "dust3r"
    data = json.loads(out.read_text())
    assert data["random_weights"] is True and data["n_pairs"] == 4
    assert [p["names"] for p in data["pairs"]][0] == ["view_000.png", "view_001.png"]
    assert out.with_suffix(".png").is_file()


@requires_met3r_fixture
def test_shuffle_and_video_input(photos, tmp_path, tiny_loader):
    from feat2gs.data.images import load_image
    from feat2gs.video.writer import write_mp4

    frames = np.stack([load_image(p) for p in sorted(photos.glob("*.png"))])
    write_mp4(tmp_path / "clip.mp4", frames, fps=5)
    r = CliRunner().invoke(app(), ["met3r", str(tmp_path / "clip.mp4"), "--size", "64", "--shuffle", "0", "-q",
                                   "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["shuffled_seed"] == 0 and data["n_frames"] == 5
    assert [p["names"][0] for p in data["pairs"]] != [f"clip.mp4#{t}" for t in range(4)]
    assert "random_weights: false" in r.output  # the fake loader reports what it was asked for


def test_bad_inputs(tmp_path, photos):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        read_sequence([tmp_path / "empty"])
    with pytest.raises(DatasetError, match="no such image"):
        read_sequence([tmp_path / "missing.png"])
    shutil.copy(photos / "view_000.png", tmp_path / "one.png")
    r = CliRunner().invoke(app(), ["met3r", str(tmp_path / "one.png")])
    assert isinstance(r.exception, DatasetError) and "need at least 2" in str(r.exception)


@pytest.mark.slow
def test_real_loader_with_random_weights(photos, tmp_path):
    """The whole command with the official-size random networks (DUSt3R ViT-L), at 32 px."""
    met3r_load.clear_cache()
    r = CliRunner().invoke(app(), ["met3r", str(photos / "view_000.png"), str(photos / "view_001.png"),
                                   "--random-weights", "--size", "32", "--backbone", "dust3r", "--device", "cpu",
                                   "-q", "--out", str(tmp_path / "r.json")])
    met3r_load.clear_cache()
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["random_weights"] is True and data["weights"] == {"featup": "random", "dino": "random",
                                                                 "dust3r": "random"}
    assert data["n_pairs"] == 1 and data["device"] == "cpu"
