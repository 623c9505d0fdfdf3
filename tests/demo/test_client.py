"""End to end through gradio_client against a running demo server (tiny preset): the example scene step 1 -> 2
-> 3 and the files each step returns; uploaded photos with DUSt3R at random weights; bad input as one readable
message; every result a normal job folder that `feat2gs report` reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("gradio", reason="gradio is the demo extra: pip install -e '.[demo]'")
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client comes with the demo extra")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from feat2gs.sweep.collect import collect_jobs  # noqa: E402
from tests.demo._demo import write_photo  # noqa: E402

EXAMPLE = ["example", [], 0, "gt", "iuvrgb", "G", False]  # source, files, holdout, method, feature, mode, random


def _client(url, tmp_path) -> Client:
    return Client(url, verbose=False, download_files=str(tmp_path / "downloads"), analytics_enabled=False)


def _value(output):
    """A plain output, or the value of a component update (gr.Video(value=..., visible=...))."""
    return output.get("value") if isinstance(output, dict) else output


def _session_dirs(settings) -> list[Path]:
    return sorted(p for p in settings.sessions_dir.iterdir() if p.is_dir())


def _report_reads(out_root: Path, tmp_path: Path) -> list:
    """Run `feat2gs report` over an output root; returns the collected job records."""
    from typer.testing import CliRunner

    from feat2gs.cli import app

    result = CliRunner().invoke(app, ["report", str(out_root), str(tmp_path / "report"), "--no-plots"])
    assert result.exit_code == 0, result.output
    return collect_jobs(out_root)


@pytest.mark.slow
def test_example_steps_1_2_3(demo_server, tmp_path):
    url, settings = demo_server
    client = _client(url, tmp_path)

    feat_png, glb, summary1 = client.predict(*EXAMPLE, api_name="/step1")
    assert "Step 1 done" in summary1 and "iuvrgb" in summary1 and "RANDOM" not in summary1
    with Image.open(feat_png) as img:
        assert img.format == "PNG" and min(img.size) > 16
    assert Path(glb).read_bytes()[:4] == b"glTF"

    loss_png, view, ply, summary2 = client.predict(*EXAMPLE, 20, "points", api_name="/step2")
    assert "Step 2 done" in summary2 and "20 iterations" in summary2
    assert Image.open(loss_png).format == "PNG"
    header = Path(ply).read_bytes()[:2000]
    assert header.startswith(b"ply") and b"f_dc_0" in header and b"scale_0" in header and b"rot_0" in header
    assert Path(view).read_bytes()[:4] == b"glTF"  # the light viewer: centres + cameras
    _, splat, _, summary2 = client.predict(*EXAMPLE, 20, "splats", api_name="/step2")
    assert "already done (reused)" in summary2 and Path(splat).read_bytes()[:3] == b"ply"

    video, depth, normal, metrics, gallery, job_zip, summary3 = client.predict(
        *EXAMPLE, 20, "arc", True, api_name="/step3")
    assert "Step 3 done" in summary3 and "arc" in summary3
    for mp4 in (_value(video), _value(depth), _value(normal)):
        data = Path(mp4).read_bytes()
        assert data[4:8] == b"ftyp" and len(data) > 500, mp4
    assert "Test metrics" in metrics and "status **ok**" in metrics and "PSNR" in metrics
    assert len(_value(gallery)) == 6  # 3 held-out views: render + photo each
    assert Path(job_zip).suffix == ".zip"

    # the result is a normal job folder: the same layout as the CLI, read by `feat2gs report`
    (session,) = _session_dirs(settings)
    job = session / "output" / "eval" / "Synthetic" / "blocks" / "3_views" / "feat2gs-G@quick" / "gt" / "iuvrgb"
    for rel in ("point_cloud/iteration_20/point_cloud.ply", "train_log.json", "results.json", "run.json",
                "videos/blocks_3_view_arc.mp4", "videos/blocks_3_view_arc_depth.mp4", "config.yaml"):
        assert (job / rel).is_file(), rel
    results = json.loads((job / "results.json").read_text())["ours_20"]
    assert results["status"] == "ok" and results["random_weights"] is False
    (record,) = _report_reads(session / "output", tmp_path)
    assert (record.feature, record.mode, record.status) == ("iuvrgb", "G", "ok")

    # a second feature and mode in the same session: another job folder next to the first
    _, _, summary = client.predict("example", [], 0, "gt", "iuv", "T", False, api_name="/step1")
    assert "feature **iuv**" in summary
    _, _, _, summary = client.predict("example", [], 0, "gt", "iuv", "T", False, 20, "points", api_name="/step2")
    assert "mode T" in summary and (job.parents[2] / "feat2gs-T@quick" / "gt" / "iuv" / "train_log.json").is_file()


@pytest.mark.slow
def test_uploaded_photos_with_random_dust3r(demo_server, tmp_path):
    """Four photos, every 2nd held out: step 3 (which runs steps 1 and 2 first) with DUSt3R at random weights;
    the random weights are flagged on the page and in the files."""
    url, settings = demo_server
    from feat2gs.data.synthetic import make_scene

    make_scene(tmp_path / "scene", n_train=2, n_test=2, width=64, height=48)
    photos = []
    for i, p in enumerate(sorted((tmp_path / "scene" / "Synthetic" / "blocks" / "images").iterdir())):
        photos.append(shutil.copy(p, tmp_path / f"My Photo #{i}.png"))
    files = [handle_file(p) for p in photos]
    client = _client(url, tmp_path)
    inputs = ["upload", files, 2, "dust3r", "dust3r", "Gft", True]
    video, _, _, metrics, gallery, job_zip, summary = client.predict(*inputs, 20, "interpolated", False,
                                                                     api_name="/step3")
    assert "RANDOM WEIGHTS" in summary and "RANDOM WEIGHTS" in metrics
    assert Path(_value(video)).read_bytes()[4:8] == b"ftyp"
    assert len(_value(gallery)) == 4
    (session,) = [s for s in _session_dirs(settings) if (s / "uploads").is_dir() and any((s / "uploads").iterdir())]
    uploads = next((session / "uploads").iterdir())
    assert sorted(p.name for p in uploads.iterdir()) == [f"My_Photo_{i}.png" for i in range(4)]
    assert all(Path(p).is_file() for p in photos)  # the originals are untouched
    (record,) = [r for r in _report_reads(session / "output", tmp_path) if r.method == "dust3r"]
    assert record.random_weights is True and record.mode == "Gft" and record.feature == "dust3r"


@pytest.mark.slow
def test_bad_input_is_a_readable_message(demo_server, tmp_path):
    url, _ = demo_server
    client = _client(url, tmp_path)
    good = [handle_file(write_photo(tmp_path / f"ok{i}.png", seed=i)) for i in range(2)]
    (tmp_path / "broken.jpg").write_text("this is not a picture")
    cases = [
        (["upload", [], 0, "dust3r", "iuvrgb", "G", True], "upload at least 2 photos"),
        (["upload", good[:1], 0, "dust3r", "iuvrgb", "G", True], "upload at least 2 photos of the scene (got 1)"),
        (["upload", good + [handle_file(tmp_path / "broken.jpg")], 0, "dust3r", "iuvrgb", "G", True],
         "broken.jpg: not a readable image"),
        (["upload", good, 0, "gt", "iuvrgb", "G", False], "only the example scene"),
        (["upload", good, 2, "dust3r", "iuvrgb", "G", True], "leaves 1 for training"),
        (["example", [], 0, "gt", "no_such_model", "G", False], "unknown feature 'no_such_model'"),
        (["example", [], 0, "gt", "os:system", "G", False], "registered features only"),
        (["example", [], 0, "gt", "iuvrgb", "X", False], "X is not in the list of choices"),  # gradio checks dropdowns
    ]
    for inputs, message in cases:
        with pytest.raises(AppError) as err:
            client.predict(*inputs, api_name="/step1")
        assert message in str(err.value), (inputs, str(err.value))
        assert "Traceback" not in str(err.value)
    from feat2gs.demo.pipeline import weights_status

    if weights_status()["dust3r"] is not None:  # no weights here: the page names the fetch command
        with pytest.raises(AppError) as err:
            client.predict("example", [], 0, "dust3r", "iuvrgb", "G", False, api_name="/step1")
        assert "weights" in str(err.value) and "random weights" in str(err.value)
    # and the server still answers
    assert "Step 1 done" in client.predict(*EXAMPLE, api_name="/step1")[2]


@pytest.mark.slow
def test_concurrent_users_are_queued_in_their_own_folders(demo_server, tmp_path):
    url, settings = demo_server
    before = set(_session_dirs(settings))
    jobs = [_client(url, tmp_path / str(i)).submit("example", [], 0, "gt", "iuv", "A", False, api_name="/step1")
            for i in range(2)]
    assert all("Step 1 done" in job.result(timeout=300)[2] for job in jobs)
    new = set(_session_dirs(settings)) - before
    assert len(new) == 2  # one folder per browser session
    for folder in new:
        assert (folder / "data" / "Synthetic" / "blocks" / "3_views").is_dir()
