"""A corpus of bad inputs through the command line: each gives exit code 2 and one literal line naming the file or
option (no traceback), and nothing written before is changed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from feat2gs.cli import main
from feat2gs.job import Job
from tests.conftest import tiny_config
from tests.pipeline.test_job import tiny_sets


@pytest.fixture(scope="module")
def world(pristine_scene, tmp_path_factory) -> dict[str, Path]:
    """A data root with a finished job, plus bad sources for the dataset builders."""
    base = tmp_path_factory.mktemp("bad")
    root, out = base / "data", base / "out"
    shutil.copytree(pristine_scene, root)
    Job.create(root, "Synthetic", "blocks", "iuvrgb", "T", tiny_config(), out, progress=False).run_all(video=False)
    rng = np.random.default_rng(0)
    trunc = base / "truncated"
    trunc.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(trunc / f"im{i}.jpg")
    data = (trunc / "im1.jpg").read_bytes()
    (trunc / "im1.jpg").write_bytes(data[: len(data) // 2])
    alpha = base / "alpha"
    alpha.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(alpha / f"im{i}.png")
    distorted = base / "distorted"
    shutil.copytree(root / "Synthetic" / "blocks" / "images", distorted / "images")
    (distorted / "sparse" / "0").mkdir(parents=True)
    shutil.copy(root / "Synthetic" / "blocks" / "gt" / "images.txt", distorted / "sparse" / "0")
    (distorted / "sparse" / "0" / "cameras.txt").write_text("".join(
        f"{i} OPENCV 64 48 50 50 32 24 0.1 0 0 0\n" for i in range(1, 10)))
    (base / "bad.yaml").write_text("features: [iuvrgb, noise\nmodes: G\n")
    (base / "split_bad").mkdir()
    (base / "split_bad" / "dataset_split.json").write_text("{ not json")
    (base / "file").write_text("x")
    return {"root": root, "out": out, "base": base, "trunc": trunc, "alpha": alpha, "distorted": distorted}


def _snapshot(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def _eval(w, *extra: str) -> list[str]:
    args = ["eval", "-d", str(w["root"]), "--dataset", "Synthetic", "--scene", "blocks", "-o", str(w["out"]),
            "--preset", "quick", "--no-video", "-q"]
    return args + tiny_sets(*extra) + list(extra)


CASES = {
    "unknown feature": (lambda w: _eval(w, "-f", "dinoo", "-M", "G"), "unknown feature 'dinoo'"),
    "unknown mode": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "Q"), "unknown probing mode 'Q'"),
    "unknown preset": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "G", "--preset", "fast"), "unknown preset 'fast'"),
    "negative iterations": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "--set", "train.iterations=-5"),
                            "train.iterations=-5: expected > 0"),
    "warm start too long": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "--set", "train.warm_iterations=600",
                                            "--set", "train.iterations=600"), "train.warm_iterations=600: must be <"),
    "typed --set": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "--set", "train.resolution=abc"),
                    "--set train.resolution=abc: expected an integer"),
    "unknown setting": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "--set", "train.iters=3"),
                        "unknown option 'iters'"),
    "unknown trajectory": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "--set", "video.trajectory=circle"),
                           "video.trajectory=circle: expected one of"),
    "feature checkpoint": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "--feature-checkpoint", "dino_b16"),
                           "init.feature_checkpoints: expected name=path, got 'dino_b16'"),
    "feat-dim too large": (lambda w: _eval(w, "-f", "noise", "-M", "G", "--feat-dim", "300"),
                           "feat-dim 300 is larger than the feature width 256"),
    "missing split": (lambda w: ["eval", "-d", str(w["base"] / "[run1]root"), "--dataset", "S", "--scene", "s", "-f",
                                 "iuvrgb", "-M", "G", "-o", str(w["out"])], "[run1]root/dataset_split.json"),
    "broken split": (lambda w: ["init", "-d", str(w["base"] / "split_bad"), "--dataset", "S", "--scene", "s", "-f",
                                "iuvrgb"], "dataset_split.json is not valid JSON"),
    "unknown scene": (lambda w: ["init", "-d", str(w["root"]), "--dataset", "Synthetic", "--scene", "nope", "-f",
                                 "iuvrgb"], "scene 'nope' not in"),
    "unwritable output": (lambda w: _eval(w, "-f", "iuvrgb", "-M", "T", "-o", str(w["base"] / "file" / "out")),
                          "cannot create output directory"),
    "missing option": (lambda w: ["eval", "-d", str(w["root"])], "Missing option '--dataset'"),
    "unknown option": (lambda w: ["eval", "--bogus"], "No such option: --bogus"),
    "malformed sweep yaml": (lambda w: ["sweep", "plan", str(w["base"] / "bad.yaml")], "bad.yaml:2:6: not valid YAML: expected ',' or ']'"),
    "missing sweep yaml": (lambda w: ["sweep", "plan", str(w["base"] / "none.yaml")], "none.yaml not found"),
    "truncated image": (lambda w: ["build-dataset", "folder", str(w["trunc"]), "-d", str(w["root"]), "--dataset",
                                   "New", "--scene", "t", "--test-every", "2"], "im1.jpg"),
    "transparent image": (lambda w: ["build-dataset", "folder", str(w["alpha"]), "-d", str(w["root"]), "--dataset",
                                     "New", "--scene", "a", "--test-every", "2"], "--alpha white"),
    "bad alpha option": (lambda w: ["build-dataset", "folder", str(w["alpha"]), "-d", str(w["root"]), "--dataset",
                                    "New", "--scene", "a", "--test-every", "2", "--alpha", "pink"],
                         "--alpha pink: expected one of white, black"),
    "distorted colmap": (lambda w: ["build-dataset", "colmap", str(w["distorted"]), "-d", str(w["root"]),
                                    "--dataset", "New", "--scene", "d", "--test-every", "2"], "colmap image_undistorter"),
    "unknown dataset kind": (lambda w: ["build-dataset", "zip", str(w["trunc"]), "-d", str(w["root"]), "--dataset",
                                        "New", "--scene", "z"], "unknown dataset kind 'zip'"),
    "known without cameras": (lambda w: ["build-dataset", "known", str(w["distorted"]), "-d", str(w["root"]),
                                         "--dataset", "New", "--scene", "k", "--test-every", "2"], "needs --cameras"),
    "overwrite refused": (lambda w: ["build-dataset", "folder", str(w["root"] / "Synthetic" / "blocks" / "images"),
                                     "-d", str(w["root"]), "--dataset", "Synthetic", "--scene", "blocks",
                                     "--test-every", "2"], "already exists"),
    "report without results": (lambda w: ["report", str(w["base"] / "nothing"), str(w["base"] / "rep")],
                               "no results under"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_literal_line_and_exit_2(world, case, capsys):
    before = _snapshot(world["root"], world["out"])
    args, message = CASES[case]
    with pytest.raises(SystemExit) as exit_info:
        main(args(world))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], err
    assert _snapshot(world["root"], world["out"]) == before, "a bad input changed what was already written"


def test_messages_reach_the_terminal_literally(tmp_path):
    """Brackets are not eaten as markup and a long path is not wrapped, in a real process."""
    root = tmp_path / ("[run1]" + "x" * 120)
    out = subprocess.run([sys.executable, "-m", "feat2gs.cli", "init", "-d", str(root), "--dataset", "D", "--scene",
                          "s", "-f", "iuvrgb"], capture_output=True, text=True, env={"COLUMNS": "80", "PATH": ""})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == f"error: missing split file {root / 'dataset_split.json'} (expected {{Dataset: {{scene: " \
                         "{train: [...], test: [...]}}})\n"
    bad = tmp_path / "sweep.yaml"
    bad.write_text("features: [iuvrgb, noise\nmodes: [G]\n")
    out = subprocess.run([sys.executable, "-m", "feat2gs.cli", "sweep", "plan", str(bad)], capture_output=True,
                         text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "expected ',' or ']'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "sweep.yaml:2:6: not valid YAML" in out.stderr
