"""The local executor: 2 CPU slots, tiny settings, idempotent reruns, retries and the failure summary."""

from __future__ import annotations

import fcntl
import json

import pytest

from feat2gs.sweep.config import sweep_config_from_dict
from feat2gs.sweep.executors import run_local, slot_names
from feat2gs.sweep.plan import job_status, plan

TINY = ["init.image_size=48", "train.resolution=48", "train.iterations=30", "train.warm_iterations=15",
        "eval.test_pose_iterations=2", "video.n_frames=4", "video.resolution=48", "eval.lpips=false"]


def tiny_sweep(data_root, out, **kw):
    base = {"data_root": str(data_root), "output_root": str(out), "datasets": {"Synthetic": ["blocks"]},
            "features": ["iuvrgb", "noise"], "modes": ["G", "T"], "method": "gt", "preset": "quick",
            "overrides": TINY, "retries": 1,
            "slurm": {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1, "time_min": 10, "array_parallelism": 2}}
    return sweep_config_from_dict({**base, **kw})


def test_slot_names():
    assert slot_names(2, []) == ["cpu_0", "cpu_1"]
    assert slot_names(3, [0, 1]) == ["gpu0_0", "gpu1_0", "gpu0_1"]  # the bash driver's gpu<i>_<k>


@pytest.mark.slow
def test_local_pool_two_slots(tmp_path):
    from feat2gs.data.synthetic import make_scene

    make_scene(tmp_path / "data", n_train=3, n_test=2, width=64, height=48)
    cfg = tiny_sweep(tmp_path / "data", tmp_path / "out")
    jobs = plan(cfg)
    summary = run_local(jobs, cfg.lock_dir, cfg.log_dir, slots=2, gpus=[], retries=cfg.retries, threads=1)
    assert summary.ok and not summary.failed, summary
    assert len(summary.succeeded) == 6  # 2 step-1 units + 4 jobs
    slots = {r["slot"] for r in summary.succeeded}
    assert slots <= {"cpu_0", "cpu_1"}
    for job in jobs:
        assert job_status(job) == "done"
        res = json.loads((job.job_dir / "results.json").read_text())["ours_30"]
        assert res["num_views"] == 2 and res["PSNR"] > 5
        assert (cfg.log_dir / f"{job.name}.log").is_file()
    assert sorted(p.name for p in cfg.lock_dir.glob("*.lock")) == ["cpu_0.lock", "cpu_1.lock"]

    # rerun: everything is skipped; a slot held by someone else (the bash driver) is not used
    with open(cfg.lock_dir / "cpu_0.lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        again = run_local(jobs, cfg.lock_dir, cfg.log_dir, slots=2, gpus=[], retries=0, threads=1)
    assert again.ok
    assert {r["slot"] for r in again.succeeded} == {"cpu_1"}
    assert not any(any(r["ran"].values()) for r in again.succeeded)


@pytest.mark.slow
def test_deterministic_failures_are_reported_not_retried(tmp_path):
    from feat2gs.data.synthetic import make_scene

    make_scene(tmp_path / "data", n_train=3, n_test=2, width=64, height=48)
    # noise is PCA'd to feat_dim: 100000 > 256 channels fails at run time (step 1), after validation
    cfg = tiny_sweep(tmp_path / "data", tmp_path / "out", features=["noise"], modes=["G"],
                     overrides=[*TINY, "init.feat_dim=100000"], retries=1)
    summary = run_local(plan(cfg), cfg.lock_dir, cfg.log_dir, slots=2, gpus=[], retries=cfg.retries, threads=1)
    assert not summary.ok and not summary.succeeded
    [fail] = summary.failed
    assert fail.name == "init-Synthetic-blocks-gt-noise" and fail.attempts == 1  # a Feat2GSError fails again
    assert "larger than the feature width" in fail.error
    assert summary.skipped == [("G-Synthetic-blocks-gt-noise", "its step 1 (init-Synthetic-blocks-gt-noise) failed")]
    assert (cfg.log_dir / "init-Synthetic-blocks-gt-noise.log").read_text().count("attempt") == 1


@pytest.mark.slow
def test_a_killed_worker_is_retried(tmp_path):
    """A worker that dies (the OOM killer's SIGKILL) is a transient failure: the job runs again and finishes."""
    import os
    import re
    import signal
    import threading
    import time

    from feat2gs.data.synthetic import make_scene

    make_scene(tmp_path / "data", n_train=3, n_test=2, width=64, height=48)
    cfg = tiny_sweep(tmp_path / "data", tmp_path / "out", features=["iuvrgb"], modes=["G"], retries=1)
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            for info in cfg.lock_dir.glob("*.info"):
                m = re.search(r"\(pid (\d+)\)", info.read_text())
                if m:
                    os.kill(int(m.group(1)), signal.SIGKILL)
                    killed.append(int(m.group(1)))
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    summary = run_local(plan(cfg), cfg.lock_dir, cfg.log_dir, slots=1, gpus=[], retries=1, threads=1)
    killer.join()
    assert killed, "the test never saw a running worker"
    assert summary.ok, summary
    first = summary.succeeded[0]
    assert first["name"] == "init-Synthetic-blocks-gt-iuvrgb" and first["attempts"] == 2
