"""Protocol completeness: the InstantSplat baseline, 3D metrics and pose accuracy against known geometry, depth and
normal test renders, and the DTU / baseline scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from feat2gs.job import Job
from feat2gs.sweep import collect_jobs
from tests.conftest import strict_load, tiny_config
from tests.pipeline.test_job import TINY_SETS

pytestmark = pytest.mark.slow
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _job(root, out, feature="iuvrgb", mode="G", **sets) -> Job:
    cfg = tiny_config()
    cfg.instantsplat.iterations = 40
    for name, value in sets.items():
        section, field = name.split("__")
        setattr(getattr(cfg, section), field, value)
    return Job.create(root, "Synthetic", "blocks", feature, mode, cfg, out, progress=False)


def test_known_geometry_gives_3d_metrics_and_pose_errors(scene_root, tmp_path):
    clean = _job(scene_root, tmp_path / "clean")
    clean.run_all(video=False)
    metrics = strict_load(clean.dir / "3d_metrics.json")
    assert set(metrics) == {"ours_40", "initial"}
    assert set(metrics["ours_40"]["threshold_0.0"]) == {"Accuracy", "Acc_med", "Completion", "Comp_med", "Distance",
                                                        "Dist_med"}
    assert metrics["initial"]["threshold_0.0"]["Distance"] < 1e-9  # the initial positions are the known geometry
    pose = strict_load(clean.dir / "results.json")["ours_40"]["pose"]
    assert pose["initial"]["ATE"] < 1e-6 and pose["initial"]["RPE_rot"] < 0.05  # known cameras: near zero
    assert pose["test"]["initial"]["ATE"] < 1e-6
    assert (clean.dir / "pose" / "pose_eval.txt").read_text().startswith("ATE: ")

    noisy = _job(scene_root, tmp_path / "noisy", train__noise_std=30.0)
    noisy.run_all(video=False)
    initial = strict_load(noisy.dir / "3d_metrics.json")["initial"]["threshold_0.0"]
    # noise of std 0.03 per axis: mean distance 0.03 * sqrt(8 / pi) ~ 0.048 (after a Sim(3) that barely moves)
    assert initial["Distance"] == pytest.approx(0.03 * np.sqrt(8 / np.pi), rel=0.15)

    perturbed = _job(scene_root, tmp_path / "perturbed", init__perturb_rot_deg=2.0, eval__perturb_rot_deg=3.0)
    perturbed.run_all(video=False)
    pose = strict_load(perturbed.dir / "results.json")["ours_40"]["pose"]
    assert pose["initial"]["RPE_rot"] > 1.0 and pose["test"]["initial"]["RPE_rot"] > 1.0  # the perturbations show


def test_depth_and_normal_test_renders(scene_root, tmp_path):
    job = _job(scene_root, tmp_path, mode="T", eval__depth_normal=True)
    job.run_all(video=False)
    for name in job.layout.test_names:
        stem = Path(name).stem
        depth = np.load(job.test_dir / "depth" / f"{stem}.npy")
        rgb = np.asarray(Image.open(job.test_dir / "renders" / f"{stem}.png"))
        assert depth.shape == rgb.shape[:2] and depth.dtype == np.float32 and np.isfinite(depth).all()
        assert depth.max() > 0
        for sub in ("depth", "normal"):
            image = np.asarray(Image.open(job.test_dir / sub / f"{stem}.png"))
            assert image.shape == rgb.shape and image.std() > 0


def test_the_instantsplat_baseline(scene_root, tmp_path):
    job = _job(scene_root, tmp_path, feature=None, mode="instantsplat")
    ran = job.run_all(video=False)
    assert ran["train"] and job.dir.parts[-2:] == ("instantsplat@quick", "gt")
    results = strict_load(job.dir / "results.json")["ours_40"]
    assert results["status"] == "ok" and results["PSNR"] > 5
    log = strict_load(job.dir / "train_log.json")
    assert all(entry["phase"] == "render" for entry in log)  # no warm start
    [record] = [r for r in collect_jobs(tmp_path) if r.mode == "instantsplat"]
    assert record.feature == "instantsplat" and record.status == "ok"
    feat2gs = _job(scene_root, tmp_path, feature="iuv", mode="G")
    assert feat2gs.dir != job.dir  # never collides with a feature job


def test_the_new_scripts_run_on_the_example(scene_root, tmp_path):
    for script in ("run_instantsplat_eval_parallel.sh", "run_feat2gs_eval_dtu_parallel.sh", "run_video_render_dtu.sh"):
        assert subprocess.run(["bash", "-n", str(SCRIPTS / script)]).returncode == 0, script
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    sets = " ".join(f"--set {s}" for s in TINY_SETS + ["train.iterations=40", "instantsplat.iterations=30"])
    env = dict(os.environ, DATA_ROOT=str(root), OUTPUT_ROOT=str(tmp_path / "out"), SCENES="Synthetic/blocks",
               GPUS="", CPU_SLOTS="2", PRESET="quick", EXTRA_ARGS=sets, OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", str(SCRIPTS / "run_instantsplat_eval_parallel.sh")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "eval" / "Synthetic" / "blocks" / "3_views" / "instantsplat@quick" / "gt"
            / "results.json").is_file()
    dtu = subprocess.run(["bash", str(SCRIPTS / "run_feat2gs_eval_dtu_parallel.sh")],
                         env=dict(env, FEATURES="iuvrgb", NOISE_STD="10"), capture_output=True, text=True, timeout=600)
    assert dtu.returncode == 0, dtu.stdout + dtu.stderr
    job = tmp_path / "out" / "eval" / "Synthetic" / "blocks" / "3_views" / "feat2gs-G@quick" / "gt" / "iuvrgb"
    assert "noise_std: 10.0" in (job / "config.yaml").read_text()
    assert json.loads((job / "3d_metrics.json").read_text())["initial"]["threshold_0.0"]["Distance"] > 0
    video = subprocess.run(["bash", str(SCRIPTS / "run_video_render_dtu.sh")],
                           env=dict(env, FEATURES="iuvrgb", TRAJECTORIES="interpolated",
                                    EXTRA_ARGS=env["EXTRA_ARGS"] + " --set video.n_frames=4"),
                           capture_output=True, text=True, timeout=600)
    assert video.returncode == 0, video.stdout + video.stderr
    assert list((job / "videos").glob("*.mp4"))


def test_a_trajectory_video_gets_a_met3r_score(scene_root, tmp_path):
    job = _job(scene_root, tmp_path, mode="T", video__met3r=True, video__met3r_random_weights=True, video__n_frames=3)
    job.train()
    assert job.video()
    [result] = (job.dir / "videos").glob("*_met3r.json")
    data = strict_load(result)
    assert data["random_weights"] is True and data["n_pairs"] == 2 and len(data["pairs"]) == 2
    assert result.with_suffix(".png").is_file()
    assert not job.video()  # recorded with the step's outputs: a rerun finds it done
