"""The parallel driver (a front end to `feat2gs sweep run`) on CPU slots: it finishes a small sweep, reports
failures, and a killed run leaves no lock behind."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.pipeline.test_job import TINY_SETS

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run_feat2gs_eval_parallel.sh"


def _env(root: Path, out: Path, iterations: int, **extra: str) -> dict[str, str]:
    sets = " ".join(f"--set {s}" for s in TINY_SETS + [f"train.iterations={iterations}"])
    env = dict(os.environ, DATA_ROOT=str(root), OUTPUT_ROOT=str(out), SCENES="Synthetic/blocks",
               FEATURES="iuvrgb noise", MODES="T", GPUS="", CPU_SLOTS="2", PRESET="quick", EXTRA_ARGS=sets,
               OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def test_parallel_sweep_and_summary(scene_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    out = subprocess.run(["bash", str(SCRIPT)], env=_env(root, tmp_path / "out", 40), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "succeeded: 4 (2 jobs, 2 step-1 units)   failed: 0" in out.stdout
    for feature in ("iuvrgb", "noise"):
        job = tmp_path / "out" / "eval" / "Synthetic" / "blocks" / "3_views" / "feat2gs-T@quick" / "gt" / feature
        assert "ours_40" in json.loads((job / "results.json").read_text())
        assert (tmp_path / "out" / "logs" / f"T-Synthetic-blocks-gt-{feature}.log").is_file()


def test_bad_settings_fail_before_anything_runs(scene_root, tmp_path):
    out = subprocess.run(["bash", str(SCRIPT)], env=_env(scene_root, tmp_path / "out", 40, FEATURES="nope"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "unknown feature 'nope'" in " ".join((out.stdout + out.stderr).split())
    assert not (tmp_path / "out" / "eval").exists()


def test_failures_are_summarised_and_bad_input_is_not_retried(scene_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    env = _env(root, tmp_path / "out", 40, FEATURES="noise", RETRIES="1")
    env["EXTRA_ARGS"] += " --set init.feat_dim=100000"  # valid at plan time, fails when step 1 runs
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    text = " ".join(out.stdout.split())
    assert "failed: 1" in text and "FAILED init-Synthetic-blocks-gt-noise after 1 attempt(s)" in text
    assert "not retried" in text


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_starts_no_new_job_and_stops_the_running_ones(scene_root, tmp_path):
    root, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(scene_root, root)
    env = _env(root, out, 3000, FEATURES="iuvrgb noise oracle_xyz", CPU_SLOTS="1")
    proc = subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 180
    seen = []
    for line in proc.stdout:  # the driver's own lines; jobs log to files
        seen.append(line)
        if "phase 2" in line or time.time() > deadline:
            break
    info = out / ".locks" / "cpu_0.info"
    worker = None
    while time.time() < deadline:  # until the first training job holds the slot
        text = info.read_text() if info.is_file() else ""
        if text.startswith("T-") and subprocess.run(["flock", "-n", str(out / ".locks" / "cpu_0.lock"),
                                                     "true"]).returncode == 1:
            worker = int(text.split("(pid ")[1].split(")")[0])
            break
        time.sleep(0.2)
    assert worker is not None, "".join(seen)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)  # to the driver only, as `kill -INT`
    rest = proc.stdout.read()
    code = proc.wait(timeout=120)
    assert code == 130, rest
    assert not _pid_alive(worker), "a job outlived the driver"
    assert time.time() - t0 < 60
    started = sorted(p.name for p in (out / "logs").glob("T-*.log"))
    assert len(started) == 1, f"jobs started after the interrupt: {started}"
    assert "interrupted" in rest and not list((out / "eval").rglob("results.json"))
    rerun = subprocess.run(["bash", str(SCRIPT)], env=dict(env, EXTRA_ARGS=env["EXTRA_ARGS"].replace(
        "train.iterations=3000", "train.iterations=40")), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "failed: 0" in rerun.stdout, rerun.stdout + rerun.stderr
    assert len(list((out / "eval").rglob("results.json"))) == 3


def test_kill_minus_nine_leaves_no_stale_lock(scene_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    env = _env(root, tmp_path / "out", 2000, FEATURES="iuvrgb", CPU_SLOTS="1")
    proc = subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if "phase 2" in line or time.time() > deadline:
            break
    lock = tmp_path / "out" / ".locks" / "cpu_0.lock"
    held = subprocess.run(["flock", "-n", str(lock), "true"])
    while held.returncode == 0 and time.time() < deadline:  # until the training job has taken its slot
        time.sleep(0.5)
        held = subprocess.run(["flock", "-n", str(lock), "true"])
    assert held.returncode == 1, "the running job should hold its slot lock"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    free = subprocess.run(["flock", "-n", str(lock), "true"])
    assert free.returncode == 0, "the slot lock outlived the killed job"
    rerun = subprocess.run(["bash", str(SCRIPT)], env=dict(env, EXTRA_ARGS=env["EXTRA_ARGS"].replace(
        "train.iterations=2000", "train.iterations=40")), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "failed: 0" in rerun.stdout, rerun.stdout + rerun.stderr
