"""The report reads the files a real (tiny) job writes."""

import csv

import pytest

from feat2gs.job import Job
from feat2gs.sweep import report
from tests.conftest import tiny_config


@pytest.mark.slow
def test_report_on_a_real_job(scene_root, tmp_path):
    job = Job.create(scene_root, "Synthetic", "blocks", "iuvrgb", "G", tiny_config(), tmp_path / "out", progress=False)
    job.run_all(video=False)
    res = report(tmp_path / "out", tmp_path / "rep", data_root=scene_root)
    assert res.n_complete == 1 and res.n_absent == 0
    row = next(csv.DictReader((tmp_path / "rep" / "jobs.csv").open()))
    assert row["status"] == "ok" and row["mode"] == "G" and row["feature"] == "iuvrgb" and row["method"] == "gt"
    assert float(row["PSNR"]) > 0 and float(row["train_seconds"]) > 0 and int(row["n_gaussians"]) > 0
    assert row["LPIPS"] == ""  # eval.lpips=false -> null
    table = next(iter(res.tables.values()))["All"]
    assert table.cell("iuvrgb", "G", "PSNR").n == 1 and table.cell("iuvrgb", "G", "LPIPS") is None
    index = (tmp_path / "rep" / "report.md").read_text()
    assert "1 finished job:" in index and "(1 scene, 1 dataset)" in index  # counts in good English
