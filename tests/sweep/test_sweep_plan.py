"""Sweep config loading, plan validation (before anything runs), job status and the `sweep plan` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feat2gs.errors import ConfigError, DatasetError
from feat2gs.sweep.config import load_sweep_config, sweep_config_from_dict
from feat2gs.sweep.plan import init_units, job_status, plan
from feat2gs.sweep.sweep_commands import sweep_app



def _cfg(data_root: Path, out: Path, **kw) -> dict:
    base = {"data_root": str(data_root), "output_root": str(out), "datasets": {"Synthetic": "all"},
            "features": ["iuvrgb", "noise"], "modes": ["G", "T"], "method": "gt", "preset": "quick"}
    return {**base, **kw}


def test_shipped_configs_load():
    ex = load_sweep_config("example")  # shipped configs are found by name
    assert ex.method == "gt" and ex.modes == ["G", "T"] and ex.datasets == {"Synthetic": "all"}
    bench = load_sweep_config("feat2gs_benchmark")
    assert len(bench.datasets) == 6 and all(len(s) == 5 for s in bench.datasets.values())
    assert len(bench.features) == 13 and len(set(bench.features)) == 13
    assert bench.modes == ["G", "T", "A"] and bench.method == "dust3r" and bench.preset == "protocol"
    assert bench.retries == 1 and bench.slurm.gpus_per_node == 1


def test_plan_matrix_and_units(scene_root, tmp_path):
    cfg = sweep_config_from_dict(_cfg(scene_root, tmp_path, features=["iuvrgb", "noise", "noise-iuvrgb"]))
    jobs = plan(cfg)
    assert len(jobs) == 6 and [j.mode for j in jobs] == ["G"] * 3 + ["T"] * 3
    assert {j.feature for j in jobs} == {"iuvrgb", "noise", "noise-iuvrgb"}
    units = init_units(jobs)
    assert [u.name for u in units] == ["init-Synthetic-blocks-gt-iuvrgb", "init-Synthetic-blocks-gt-noise",
                                       "init-Synthetic-blocks-gt-noise-iuvrgb"]
    assert jobs[0].job_dir == tmp_path / "eval/Synthetic/blocks/3_views/feat2gs-G@quick/gt/iuvrgb"
    assert jobs[0].name == "G-Synthetic-blocks-gt-iuvrgb"  # the bash driver's log name


@pytest.mark.parametrize("change, kind, words", [
    ({"features": ["iuvrgb", "nosuchfeat"]}, ConfigError, ["features[1] 'nosuchfeat'", "unknown feature"]),
    ({"features": ["iuvrgb-nosuch"]}, ConfigError, ["features[0] 'iuvrgb-nosuch'"]),
    ({"modes": ["G", "X"]}, ConfigError, ["modes[1] 'X'", "unknown probing mode"]),
    ({"preset": "fast"}, ConfigError, ["unknown preset 'fast'"]),
    ({"overrides": ["train.nope=1"]}, ConfigError, ["unknown option 'nope'"]),
    ({"method": "colmap"}, ConfigError, ["method 'colmap'", "unknown init method"]),
    ({"datasets": {"Synthetic": ["blocks", "ghost"]}}, DatasetError, ["datasets.Synthetic", "scene 'ghost'"]),
    ({"datasets": {"LLFF": "all"}}, DatasetError, ["datasets: 'LLFF'"]),
])
def test_plan_rejects_bad_entries(scene_root, tmp_path, change, kind, words):
    cfg = sweep_config_from_dict(_cfg(scene_root, tmp_path, **change), "sweep.yaml")
    with pytest.raises(kind) as err:
        plan(cfg)
    msg = str(err.value)
    assert msg.startswith("sweep.yaml")
    for w in words:
        assert w in msg, msg
    assert not (tmp_path / "eval").exists()  # nothing ran


def test_plan_lists_every_problem(scene_root, tmp_path):
    cfg = sweep_config_from_dict(_cfg(scene_root, tmp_path, features=["bad1"], modes=["Q"]))
    with pytest.raises(ConfigError, match="2 problems") as err:
        plan(cfg)
    assert "bad1" in str(err.value) and "'Q'" in str(err.value)


def test_plan_rejects_missing_images(scene_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(scene_root, data)
    split = json.loads((data / "dataset_split.json").read_text())
    test_stem = split["Synthetic"]["blocks"]["test"][0]
    next((data / "Synthetic/blocks/images").glob(f"{test_stem}.*")).unlink()
    cfg = sweep_config_from_dict(_cfg(data, tmp_path / "out"))
    with pytest.raises(DatasetError, match=f"datasets.Synthetic.blocks: .*lacks images listed in the split: {test_stem}"):
        plan(cfg)
    # a split whose train list disagrees with <N>_views/images
    split["Synthetic"]["blocks"]["train"] = split["Synthetic"]["blocks"]["train"][:2]
    (data / "dataset_split.json").write_text(json.dumps(split))
    with pytest.raises(DatasetError, match="datasets.Synthetic.blocks"):
        plan(cfg)


@pytest.mark.parametrize("data, words", [
    ({"features": ["iuvrgb"], "modes": ["G"], "datasets": {"D": "all"}}, "missing required key(s) data_root"),
    ({"data_root": "d", "output_root": "o", "datasets": {"D": "all"}, "features": ["a"], "modes": ["G"],
      "gpus": 2}, "unknown key(s) gpus"),
    ({"data_root": "d", "output_root": "o", "datasets": {"D": "all"}, "features": ["a"], "modes": ["G"],
      "retries": -1}, "retries must be"),
    ({"data_root": "d", "output_root": "o", "datasets": {"D": "all"}, "features": ["a"], "modes": ["G"],
      "slurm": {"gpus": 1}}, "unknown slurm option(s) gpus"),
    ({"data_root": "d", "output_root": "o", "datasets": {"D": "all"}, "features": ["a"], "modes": ["G"],
      "slurm": {"time_min": 0}}, "slurm.time_min"),
    ({"data_root": "d", "output_root": "o", "datasets": {"D": "all"}, "features": ["a"], "modes": ["G"],
      "overrides": ["init.method=gt"]}, "top-level 'method'"),
])
def test_config_shape_errors(data, words):
    with pytest.raises(ConfigError) as err:
        sweep_config_from_dict(data, "c.yaml")
    assert words in str(err.value)


def test_job_status(scene_root, tmp_path):
    job = plan(sweep_config_from_dict(_cfg(scene_root, tmp_path, features=["iuvrgb"], modes=["G"])))[0]
    assert job_status(job) == "pending"
    job.job_dir.mkdir(parents=True)
    (job.job_dir / "run.json").write_text(json.dumps({"steps": {"train": {"key": "a"}}}))
    assert job_status(job) == "partial"
    (job.job_dir / "results.json").write_text("{}")
    (job.job_dir / "run.json").write_text(json.dumps({"steps": {"train": {}, "metrics": {}}}))
    assert job_status(job) == "partial"  # the video is still missing
    (job.job_dir / "run.json").write_text(json.dumps({"steps": {"train": {}, "metrics": {}, "video_interpolated": {}}}))
    assert job_status(job) == "done"


def test_sweep_plan_command(scene_root, tmp_path):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_cfg(scene_root, tmp_path / "out")))
    res = CliRunner().invoke(sweep_app, ["plan", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "iuvrgb" in res.output and "noise" in res.output and "step-1 unit(s)" in res.output
    assert "jobs: 4 (4 pending); step-1 units: 2 (0 done)" in res.output
    path.write_text(yaml.safe_dump(_cfg(scene_root, tmp_path / "out", modes=["Z"])))
    res = CliRunner().invoke(sweep_app, ["plan", str(path)])
    assert isinstance(res.exception, ConfigError) and "modes[0] 'Z'" in str(res.exception)


def test_slurm_without_sbatch_fails_before_submitting(scene_root, tmp_path, monkeypatch):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_cfg(scene_root, tmp_path / "out")))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    res = CliRunner().invoke(sweep_app, ["run", str(path), "--executor", "slurm"])
    assert isinstance(res.exception, ConfigError), res.output
    assert "`sbatch` was not found" in str(res.exception) and "nothing was submitted" in str(res.exception)
    assert not (tmp_path / "out").exists()


def test_slurm_parameters():
    from feat2gs.sweep.config import SlurmConfig
    from feat2gs.sweep.slurm import slurm_parameters

    p = slurm_parameters(SlurmConfig(partition="gpu", account="acc", qos="high", time_min=90, gpus_per_node=2,
                                     cpus_per_task=4, mem_gb=16, array_parallelism=8, additional={"constraint": "a100"}))
    assert p == {"name": "feat2gs-sweep", "timeout_min": 90, "cpus_per_task": 4, "nodes": 1, "tasks_per_node": 1,
                 "slurm_array_parallelism": 8, "gpus_per_node": 2, "mem_gb": 16, "slurm_partition": "gpu",
                 "slurm_account": "acc", "slurm_qos": "high", "slurm_additional_parameters": {"constraint": "a100"}}
    assert "gpus_per_node" not in slurm_parameters(SlurmConfig(gpus_per_node=0))


def test_slurm_task_is_requeued_with_the_same_spec(scene_root, tmp_path):
    import submitit

    from feat2gs.sweep.slurm import SweepTask

    job = plan(sweep_config_from_dict(_cfg(scene_root, tmp_path, features=["iuvrgb"], modes=["G"])))[0]
    task = SweepTask()
    assert isinstance(task, submitit.helpers.Checkpointable)
    delayed = task.checkpoint(job)  # what submitit resubmits on preemption / timeout
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is task and delayed.args == (job,)


def test_the_parallel_scripts_sweep_file_works_from_any_directory(scene_root, tmp_path, monkeypatch):
    from feat2gs.sweep.env_config import main as write_sweep

    monkeypatch.chdir(scene_root.parent)
    monkeypatch.setattr("sys.argv", ["env_config", str(tmp_path / "sweep.yaml")])
    for key, value in {"DATA_ROOT": scene_root.name, "OUTPUT_ROOT": "out", "SCENES": "Synthetic/blocks",
                       "FEATURES": "iuvrgb", "MODES": "G", "PRESET": "quick", "METHOD": "gt"}.items():
        monkeypatch.setenv(key, value)  # relative paths, as a user types them
    write_sweep()
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    cfg = load_sweep_config(tmp_path / "sweep.yaml")
    assert cfg.data_root == scene_root and cfg.output_root == scene_root.parent / "out"
    assert len(plan(cfg)) == 1
