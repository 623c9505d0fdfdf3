"""The demo page in real headless Chromium (Debian's chromium + chromium-driver, driven by selenium): bad
uploads give readable messages and leave the page usable; the example runs through steps 1-3; a screenshot of
the finished page is saved (copied to $FEAT2GS_DEMO_SCREENSHOT when set)."""

from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image

from tests.demo._browser import Page, make_driver, missing_reason, run_example
from tests.demo._demo import write_photo

pytest.importorskip("gradio", reason="gradio is the demo extra: pip install -e '.[demo]'")
_reason = missing_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


@pytest.fixture
def page(demo_server):
    url, _ = demo_server
    driver = make_driver()
    try:
        yield Page(driver, url)
    finally:
        driver.quit()


def test_page_runs_the_example_and_survives_bad_uploads(page, demo_server, tmp_path):
    _, settings = demo_server
    # bad input first: each is one readable message, and the page stays usable
    page.choose_source("upload")
    assert "upload at least 2 photos" in page.expect_error(1, "upload at least 2 photos")
    broken = tmp_path / "holiday.jpg"
    broken.write_text("not a picture")
    page.upload([write_photo(tmp_path / "a.png", seed=1), broken])
    text = page.expect_error(1, "not a readable image")
    assert "holiday.jpg" in text and "Traceback" not in text
    page.tick("random")
    page.choose("feature", "os:system")
    assert "registered features only" in page.expect_error(1, "registered features only")
    page.choose("feature", "iuvrgb")
    page.tick("random", False)
    from feat2gs.demo.pipeline import weights_status

    if weights_status()["dust3r"] is not None:  # no DUSt3R weights here: the page names the fetch command
        page.choose_source("example")
        page.choose("method", "dust3r")
        text = page.expect_error(1, "wget")
        assert "--checkpoint <file or directory>" in text and "tick 'random weights'" in text

    summaries = run_example(page, feature="iuv", mode="A")
    assert "Step 1 done" in summaries["step1"] and "feature iuv:" in summaries["step1"]
    assert page.css("#feature-pca img") and page.css("#points3d canvas")
    assert "mode A" in summaries["step2"] and "Gaussians" in summaries["step2"]
    assert page.css("#loss img") and page.css("#splat3d canvas")
    assert "point_cloud\n.ply" in page.text("ply")  # the page shows stem and extension on two lines
    assert "arc trajectory video with depth and normal videos" in summaries["step3"]
    assert page.css("#video video") and page.css("#video-depth video") and page.css("#video-normal video")
    assert "PSNR" in page.text("metrics") and "status ok" in page.text("metrics")
    assert len(page.css("#test-views img")) >= 6
    assert "\n.zip" in page.text("job-zip")

    shot = page.screenshot(tmp_path / "demo.png")
    with Image.open(shot) as img:
        assert img.size[0] >= 1000 and img.size[1] >= 2000
    if os.environ.get("FEAT2GS_DEMO_SCREENSHOT"):
        shutil.copy(shot, os.environ["FEAT2GS_DEMO_SCREENSHOT"])
    # the run left a normal job folder in the page's session
    job = "output/eval/Synthetic/blocks/3_views/feat2gs-A@quick/gt/iuv"
    assert list(settings.sessions_dir.glob(f"*/{job}/results.json"))
