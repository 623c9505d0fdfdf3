"""Trustworthy results: nothing unmeasured is reported as a number, nothing damaged is trusted, every JSON is
strict, files honour the umask, leftovers of killed steps are removed."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import pytest

from feat2gs.job import Job
from tests.conftest import strict_load, tiny_config

pytestmark = pytest.mark.slow


def _job(root: Path, out: Path, **evals) -> Job:
    cfg = tiny_config()
    for key, value in evals.items():
        setattr(cfg.eval, key, value)
    return Job.create(root, "Synthetic", "blocks", "iuvrgb", "Tft", cfg, out, progress=False)


@pytest.fixture(scope="module")
def finished(pristine_scene, tmp_path_factory) -> tuple[Path, Path]:
    """(data root, output root) of one finished job with a video (copied by tests that damage it)."""
    base = tmp_path_factory.mktemp("finished")
    root, out = base / "data", base / "out"
    shutil.copytree(pristine_scene, root)
    _job(root, out).run_all()
    return root, out


def _copy(finished, tmp_path) -> tuple[Path, Path]:
    root, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(finished[0], root)
    shutil.copytree(finished[1], out)
    return root, out


def test_every_json_of_a_finished_job_is_strict(finished):
    root, out = finished
    files = list(out.rglob("*.json")) + list(root.rglob("*.json"))
    names = {p.name for p in files}
    assert {"results.json", "per_view.json", "run.json", "train_log.json", "cameras.json", "manifest.json",
            "test_poses.json", "dataset_split.json"} <= names
    for path in files:
        strict_load(path)


def test_empty_visibility_is_null_with_a_reason_never_a_sentinel(scene_root, tmp_path, caplog):
    # a depth tolerance no pixel meets: every test mask is empty, as when a test pose goes wrong
    job = _job(scene_root, tmp_path, mask_depth_atol=1e-9)
    with caplog.at_level(logging.WARNING, logger="feat2gs"):
        job.run_all(video=False)
    results = strict_load(job.dir / "results.json")[f"ours_{job.iteration}"]
    assert results["status"] == "degenerate" and "visible" in results["status_reason"]
    for key in ("PSNR", "SSIM", "LPIPS", "PSNR_masked", "SSIM_masked", "LPIPS_masked"):
        assert results[key] is None, key
    assert results["num_views_scored"] == 0 and set(results["null_reasons"]) == set(job.layout.test_names)
    per_view = strict_load(job.dir / "per_view.json")[f"ours_{job.iteration}"]
    assert all(v is None for v in per_view["PSNR"].values()) and set(per_view["null_reasons"]) == set(per_view["PSNR"])
    assert "its metrics are null" in caplog.text


def test_partly_visible_views_give_partial_status(finished, tmp_path):
    root, out = _copy(finished, tmp_path)
    job = _job(root, out)
    manifest = strict_load(job.test_pose_dir() / "manifest.json")
    fractions = sorted(manifest["visible_fraction"].values())
    assert fractions[0] < fractions[-1], "the scene's test views should differ in visibility"
    job.cfg.eval.min_visible_fraction = (fractions[0] + fractions[-1]) / 2
    assert job.metrics()
    results = strict_load(job.dir / "results.json")[f"ours_{job.iteration}"]
    assert results["status"] == "partial" and results["num_views_scored"] == 1 and results["PSNR"] is not None
    per_view = strict_load(job.dir / "per_view.json")[f"ours_{job.iteration}"]
    assert results["PSNR"] == pytest.approx(next(v for v in per_view["PSNR"].values() if v is not None))


def _step1_features(job: Job) -> Path:
    return job.step1 / "features.safetensors"


DAMAGE = {
    "ply": lambda job: job.ply_path,
    "safetensors": _step1_features,
    "ft_features": lambda job: job.ply_path.with_name("features.safetensors"),
    "png": lambda job: job.test_dir / "renders" / f"{Path(job.layout.test_names[0]).stem}.png",
    "mask_png": lambda job: job.test_pose_dir() / "masks" / f"{Path(job.layout.test_names[0]).stem}.png",
    "npy": lambda job: job.dir / "pose" / f"pose_{job.iteration}.npy",
    "json": lambda job: job.dir / "results.json",
    "run_json": lambda job: job.dir / "run.json",
    "mp4": lambda job: next((job.dir / "videos").glob("*.mp4")),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_output_is_recomputed_to_the_undamaged_result(finished, tmp_path, kind, caplog):
    root, out = _copy(finished, tmp_path)
    job = _job(root, out)
    target = DAMAGE[kind](job)
    kept = [job.dir / "results.json", job.dir / "per_view.json", job.ply_path]
    before = {p: p.read_bytes() for p in kept + ([] if kind == "run_json" else [target])}  # run.json holds timings
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # truncated
    again = _job(root, out)  # a new process would start here
    with caplog.at_level(logging.WARNING, logger="feat2gs"):
        again.run_all()
    assert "damaged output" in caplog.text and target.name in caplog.text
    for path, content in before.items():  # the damaged file is recomputed and everything equals the original
        assert path.read_bytes() == content, f"{path.name} differs after recomputing the damaged {target.name}"
    assert not any(_job(root, out).run_all().values()), "a second rerun should find everything valid"


def test_same_size_corruption_is_caught_by_the_digest(finished, tmp_path, caplog):
    root, out = _copy(finished, tmp_path)
    job = _job(root, out)
    data = bytearray(job.ply_path.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit deep in the last Gaussian: same size, still parses
    job.ply_path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="feat2gs"):
        assert _job(root, out).train()
    assert "digest mismatch" in caplog.text


def test_leftovers_of_killed_steps_are_removed(finished, tmp_path):
    root, out = _copy(finished, tmp_path)
    job = _job(root, out)
    killed_dir = job.test_dir.parent / f".{job.test_dir.name}.k3j9x0ab.tmp"  # mkdtemp name of older versions
    (killed_dir / "renders").mkdir(parents=True)
    killed_file = job.ply_path.with_name(".point_cloud.ply.host_999999_0a1b2c3d.tmp.ply")
    killed_file.write_bytes(b"partial")
    step1_tmp = job.step1.parent / f".{job.step1.name}.host_999999_0a1b2c3d.tmp"
    step1_tmp.mkdir()
    _job(root, out).run_all()
    assert not killed_dir.exists() and not killed_file.exists() and not step1_tmp.exists()


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_written_files_honour_the_umask(scene_root, tmp_path, umask, file_mode, dir_mode):
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    old = os.umask(umask)
    try:
        job = _job(root, tmp_path / "out")
        job.run_all(video=False)
        from feat2gs.data.builders import build_from_folder

        build_from_folder(root / "Synthetic" / "blocks" / "images", root, "Copy", "blocks", test_every=2)
    finally:
        os.umask(old)
    written = [p for p in list((tmp_path / "out").rglob("*")) + list(job.step1.rglob("*"))
               + list(job.test_pose_dir().rglob("*")) + list((root / "Copy").rglob("*")) + [root / "dataset_split.json"]]
    assert len(written) > 20
    for p in written:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (dir_mode if p.is_dir() else file_mode), f"{p} has mode {oct(mode)}"
