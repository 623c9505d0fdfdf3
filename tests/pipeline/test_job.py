"""End-to-end: one probing job through steps 1–6 on the tiny generated scene."""

import json
import shutil
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import pytest
from plyfile import PlyData

from feat2gs.job import Job
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow

TINY_SETS = ["init.image_size=48", "init.feat_dim=32", "train.resolution=48", "train.iterations=40",
             "train.warm_iterations=20", "eval.test_pose_iterations=3", "video.n_frames=4", "video.resolution=48",
             "eval.lpips=false"]


def tiny_sets(*extra: str) -> list[str]:
    """``--set`` arguments for TINY_SETS, leaving out a setting that ``extra`` names with its own option (``--set``
    is applied last, so it would silently win over e.g. ``--feat-dim``)."""
    named = {"init.feat_dim"} if "--feat-dim" in extra else set()
    return [arg for item in TINY_SETS if item.split("=")[0] not in named for arg in ("--set", item)]


def test_eval_writes_everything_and_skips_when_done(scene_root, tmp_path):
    job = Job.create(scene_root, "Synthetic", "blocks", "iuvrgb", "T", tiny_config(), tmp_path, progress=False)
    ran = job.run_all()
    assert all(ran.values()), ran
    d = job.dir
    assert d.parts[-4:] == ("3_views", "feat2gs-T@quick", "gt", "iuvrgb")
    vertex = PlyData.read(str(job.ply_path))["vertex"]
    assert len(vertex) == 48 * 32 * 3 and "f_rest_44" in [p.name for p in vertex.properties]
    results = json.loads((d / "results.json").read_text())["ours_40"]
    assert results["PSNR"] > 10 and results["SSIM"] > 0 and results["LPIPS"] is None
    per_view = json.loads((d / "per_view.json").read_text())["ours_40"]
    assert set(per_view["PSNR"]) == set(job.layout.test_names)
    for sub in ("renders", "gt", "masks"):
        assert sorted(p.name for p in (job.test_dir / sub).iterdir()) == ["view_001.png", "view_003.png"]
    video = d / "videos" / "blocks_3_view_interpolated.mp4"
    assert len(list(iio.imiter(video))) == 4
    record = json.loads((d / "run.json").read_text())
    assert {"torch", "feat2gs"} <= set(record["versions"]) and record["seed"] == 0
    coverage = record["steps"]["train"]["train_view_coverage"]
    assert set(coverage) == set(job.layout.train_names) and min(coverage.values()) > 0.3
    assert (d / "pose" / "pose_40.npy").is_file() and (d / "config.yaml").is_file()
    assert not any(p.name.endswith(".tmp") or ".tmp." in p.name for p in d.rglob("*"))
    again = job.run_all()
    assert not any(again.values()), again
    job.cfg.video.depth_normal = True
    job.cfg.video.trajectory = "arc"
    assert job.video()
    for suffix in ("", "_depth", "_normal"):
        assert len(list(iio.imiter(d / "videos" / f"blocks_3_view_arc{suffix}.mp4"))) == 4
    assert (d / "pose" / "pose_arc.npy").is_file() and (d / "pose" / "poses_arc.png").is_file()


def test_ft_mode_saves_its_fine_tuned_features(scene_root, tmp_path):
    from safetensors.torch import load_file

    job = Job.create(scene_root, "Synthetic", "blocks", "noise", "Tft", tiny_config(), tmp_path, progress=False)
    job.train()
    feats = load_file(str(job.ply_path.with_name("features.safetensors")))["features"]
    assert feats.shape == (48 * 32 * 3, 32)


def test_same_command_twice_gives_same_metrics(scene_root, tmp_path):
    outs = []
    for k in range(2):
        job = Job.create(scene_root, "Synthetic", "blocks", "noise", "T", tiny_config(), tmp_path / str(k),
                         progress=False)
        job.run_all(video=False)
        outs.append(json.loads((job.dir / "results.json").read_text()))
    assert outs[0] == outs[1]


def _cli(root, out, *extra):
    cmd = [sys.executable, "-m", "feat2gs.cli", "eval", "-d", str(root), "--dataset", "Synthetic", "--scene", "blocks",
           "-o", str(out), "--preset", "quick", "--no-video"]
    return cmd + tiny_sets(*extra) + list(extra)


def test_killed_training_leaves_nothing_final_and_rerun_finishes(scene_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    cmd = _cli(root, tmp_path / "out", "-f", "iuvrgb", "-M", "T", "--set", "train.iterations=400")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = ""
    deadline = time.time() + 120
    while "train T" not in seen and time.time() < deadline:
        seen += proc.stderr.read(1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    job_dir = next((tmp_path / "out").rglob("feat2gs-T@quick")) / "gt" / "iuvrgb"
    assert not (job_dir / "point_cloud").exists()
    record = json.loads((job_dir / "run.json").read_text()) if (job_dir / "run.json").exists() else {"steps": {}}
    assert "train" not in record["steps"]
    done = subprocess.run(_cli(root, tmp_path / "out", "-f", "iuvrgb", "-M", "T", "--set", "train.iterations=400", "-q"),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (job_dir / "results.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["-f", "dinoo", "-M", "G"], "unknown feature 'dinoo'"),
    (["-f", "iuvrgb", "-M", "Q"], "unknown probing mode 'Q'"),
    (["-f", "noise", "-M", "G", "--feat-dim", "300"], "feat-dim 300 is larger than the feature width 256"),
])
def test_cli_reports_bad_input_clearly(scene_root, tmp_path, args, message):
    out = subprocess.run(_cli(scene_root, tmp_path, *args), capture_output=True, text=True)
    assert out.returncode == 2 and message in " ".join(out.stderr.split()), out.stderr
    assert "Traceback" not in out.stderr


def test_unwritable_output_is_reported(scene_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = subprocess.run(_cli(scene_root, blocker / "out", "-f", "iuvrgb", "-M", "T"), capture_output=True, text=True)
    assert out.returncode == 2 and "cannot create output directory" in out.stderr
