"""Installed from a wheel (not the checkout): the zoo, the shipped sweeps and the published tables are package
data; the Python API's five-line example runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_install_has_the_zoo_and_the_published_tables(tmp_path):
    wheels, source = tmp_path / "wheels", tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(  # a build writes build/ into its source folder
        ".git", "build", "*.egg-info", "example", "outputs", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(source)], check=True, capture_output=True)
    [wheel] = wheels.glob("feat2gs-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))

    def feat2gs(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "feat2gs.cli", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True)

    where = subprocess.run([sys.executable, "-c", "import feat2gs; print(feat2gs.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the wheel, not the checkout
    listed = feat2gs("features", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"dino_b16", "dinov2_b14", "vggt_d", "radio", "dift", "iuvrgb", "noise"} <= names
    zoo = feat2gs("backbones", "--json")
    assert zoo.returncode == 0 and len(json.loads(zoo.stdout)) >= 21
    plan = feat2gs("sweep", "plan", "example")  # shipped sweep by name: validated against example/data (absent)
    assert plan.returncode == 2 and "example/data" in plan.stderr and "Traceback" not in plan.stderr
    out = elsewhere / "out" / "eval" / "LLFF" / "fern" / "3_views" / "feat2gs-G" / "dust3r" / "radio"
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"ours_8000": {"PSNR": 19.0, "SSIM": 0.6, "LPIPS": 0.3,
                                                                "status": "ok"}}))
    rep = feat2gs("report", "out", "rep", "--no-plots")
    assert rep.returncode == 0, rep.stderr
    assert "RADIO" in (elsewhere / "rep" / "comparison.md").read_text()  # the shipped published tables were found


def test_the_readme_python_example_runs(scene_root, tmp_path):
    """The README's five-line Python example (with the example data root swapped for the test scene)."""
    readme = (REPO / "README.md").read_text()
    [block] = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:] if "feat2gs.Job" in b.split("```", 1)[0]]
    assert len(block.strip().splitlines()) <= 6
    code = block.replace('"example/data"', repr(str(scene_root))).replace('"example/output"', repr(str(tmp_path)))
    code = code.replace('"quick"', '"quick", ["init.image_size=48", "train.resolution=48", "train.iterations=30", '
                                   '"train.warm_iterations=15", "eval.test_pose_iterations=2", "eval.lpips=false", '
                                   '"video.n_frames=4", "video.resolution=48"]')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert results["ours_30"]["status"] == "ok"
