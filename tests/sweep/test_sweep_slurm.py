"""A real one-node Slurm cluster on localhost: the sweep through submitit job arrays, and local == slurm.

Installs Debian's slurmctld/slurmd/slurm-client/munge with apt-get when missing (skips, saying why, when that
is impossible); the daemons it starts are stopped by the fixture's finalizer, also when a test fails.
"""

from __future__ import annotations

import json
import time

import pytest

from feat2gs.sweep.plan import job_status, plan
from tests.sweep.slurm_cluster import ensure_slurm, start_cluster
from tests.sweep.test_sweep_local import tiny_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    ok, why, seconds = ensure_slurm()
    print(f"\nslurm: {why} ({seconds:.1f} s)")
    if not ok:
        pytest.skip(f"no Slurm cluster for this test: {why}")
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"), cpus=2)
    except (RuntimeError, OSError) as exc:  # installed but broken: a real failure, not a skip
        pytest.fail(f"could not start the local Slurm cluster: {exc}")
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", str(cluster.conf))
    try:
        yield cluster
    finally:
        mp.undo()
        cluster.stop()


def _make_data(root):
    from feat2gs.data.synthetic import make_scene

    make_scene(root, n_train=3, n_test=2, width=64, height=48)  # byte-identical for the same arguments
    return root


@pytest.fixture(scope="module")
def slurm_sweep(slurm_cluster, tmp_path_factory):
    from feat2gs.sweep.slurm import run_slurm

    tmp = tmp_path_factory.mktemp("slurm_sweep")
    cfg = tiny_sweep(_make_data(tmp / "data"), tmp / "out")
    jobs = plan(cfg)
    t0 = time.perf_counter()
    summary = run_slurm(cfg, jobs)
    print(f"slurm sweep: {time.perf_counter() - t0:.1f} s")
    return cfg, jobs, summary


def test_slurm_sweep(slurm_sweep):
    cfg, jobs, summary = slurm_sweep
    assert summary.ok, (summary.failed, summary.skipped)
    assert len(summary.succeeded) == 6  # 2 step-1 units (phase 1 array) + 4 jobs (phase 2 array)
    assert all(r["slurm_job"] for r in summary.succeeded)
    for job in jobs:
        assert job_status(job) == "done", job.name
        res = json.loads((job.job_dir / "results.json").read_text())["ours_30"]
        assert res["num_views"] == 2 and res["PSNR"] > 5
    assert list((cfg.output_root / "slurm_logs").iterdir())  # submitit folders, one per array


def test_local_and_slurm_give_identical_results(slurm_sweep, tmp_path):
    from feat2gs.sweep.executors import run_local

    _, jobs_slurm, summary = slurm_sweep
    assert summary.ok
    cfg = tiny_sweep(_make_data(tmp_path / "data"), tmp_path / "out")  # own data root: step 1 is recomputed
    jobs = plan(cfg)
    local = run_local(jobs, cfg.lock_dir, cfg.log_dir, slots=2, gpus=[], retries=0, threads=1)  # slurm: 1 cpu/task
    assert local.ok
    for a, b in zip(jobs, jobs_slurm):
        assert a.name == b.name
        ra = json.loads((a.job_dir / "results.json").read_text())
        rb = json.loads((b.job_dir / "results.json").read_text())
        assert ra == rb, a.name
        pa = json.loads((a.job_dir / "per_view.json").read_text())
        pb = json.loads((b.job_dir / "per_view.json").read_text())
        assert pa == pb, a.name
