"""Your own model in one line: ``-f module:function`` (or a class), entry-point plugins, cache keys on the code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from feat2gs.errors import ConfigError
from feat2gs.features import FeatureInputs, compose_features, get_feature, parse_feature_string
from feat2gs.features import custom
from feat2gs.features.cache import cached_extract
from tests.pipeline.test_job import TINY_SETS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    """The worked example as a user's own file, in a folder outside the checkout."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(EXAMPLES / "custom_backbone.py", folder / "my_model.py")
    monkeypatch.syspath_prepend(str(folder))
    yield folder / "my_model.py"
    sys.modules.pop("my_model", None)
    custom.callable_feature.cache_clear()


def _inputs(h=48, w=64, n=3):
    images = torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(0))
    return FeatureInputs(images, torch.zeros_like(images))


def test_a_function_is_a_feature_with_inferred_stride(user_module):
    [spec] = parse_feature_string("my_model:extract")
    assert spec.name == "my_model:extract" and spec.kind == "custom" and spec.code_identity
    grid = spec.extract(_inputs())
    assert grid.shape == (3, 6, 8, 32)  # stride 8 inferred from the shapes
    out = compose_features("my_model:extract-iuvrgb", _inputs(), 16)
    assert out.shape == (3, 48, 64, 16) and torch.isfinite(out).all()
    again = compose_features("my_model:extract-iuvrgb", _inputs(), 16)
    assert torch.equal(out, again)


def test_a_class_with_its_own_normalisation_and_batch_limit(user_module):
    spec = get_feature("my_model:PatchColour")
    assert "mean colour" in spec.description
    grid = spec.extract(_inputs(n=5))  # max_batch = 2: three forward passes
    assert grid.shape == (5, 12, 16, 19)
    colour = torch.nn.functional.avg_pool2d(_inputs(n=5).images.permute(0, 3, 1, 2) * 2 - 1, 4)
    assert torch.allclose(grid[..., :3], colour.permute(0, 2, 3, 1), atol=1e-6)  # normalised by mean/std 0.5


def test_the_cache_keys_on_the_models_code(user_module, tmp_path):
    inputs = _inputs()
    spec = get_feature("my_model:extract")
    first = spec.cache_identity(inputs)
    calls = []
    cached_extract(tmp_path / "cache", spec.name, inputs.images, first, lambda: calls.append(1) or spec.extract(inputs))
    cached_extract(tmp_path / "cache", spec.name, inputs.images, first, lambda: calls.append(1) or spec.extract(inputs))
    assert calls == [1]  # the second call reads the cache
    user_module.write_text(user_module.read_text() + "\n# edited\n")
    custom.callable_feature.cache_clear()
    assert get_feature("my_model:extract").cache_identity(inputs) != first  # an edited model is recomputed


def test_bad_models_and_names_give_one_clear_error(user_module):
    (user_module.parent / "bad_model.py").write_text(
        "import torch\n\ndef flat(x):\n    return x.mean((2, 3))\n\nnot_callable = 3\n")
    with pytest.raises(ConfigError, match=r"returned \(3, 3\) for images .* expected a tensor \[B, C, h, w\]"):
        get_feature("bad_model:flat").extract(_inputs())
    with pytest.raises(ConfigError, match="is not callable"):
        get_feature("bad_model:not_callable")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        get_feature("bad_model:nope")
    with pytest.raises(ConfigError, match="no module 'no_such_module_xyz'"):
        get_feature("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match="a model is named module:attribute"):
        get_feature("bad model:f")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["G", "T"])
def test_probe_your_own_model_from_the_command_line(scene_root, tmp_path, mode):
    """A model file outside the checkout, probed with -f file_module:function from its folder (feat2gs script)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(EXAMPLES / "custom_backbone.py", folder / "my_model.py")
    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    sets = [a for item in TINY_SETS for a in ("--set", item)]
    cmd = [shutil.which("feat2gs") or "feat2gs", "eval", "-d", str(root), "--dataset", "Synthetic", "--scene",
           "blocks", "-f", "my_model:extract", "-M", mode, "-o", str(tmp_path / "out"), "--preset", "quick",
           "--no-video", "-q", "--set", "train.iterations=40", *sets]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    job = tmp_path / "out" / "eval" / "Synthetic" / "blocks" / "3_views" / f"feat2gs-{mode}@quick" / "gt" / "my_model:extract"
    results = json.loads((job / "results.json").read_text())["ours_40"]
    assert results["status"] == "ok" and results["PSNR"] > 5
    manifest = next((root / "Synthetic" / "blocks" / "3_views" / "sparse" / "0").rglob("manifest.json"))
    assert json.loads(manifest.read_text())["features"][0]["name"] == "my_model:extract"


@pytest.mark.slow
def test_an_installed_plugin_adds_a_listed_feature(tmp_path):
    target, source = tmp_path / "site", tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "feat2gs_example_plugin", source)  # a build leaves build/ in the source folder
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(source)], check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-m", "feat2gs.cli", "features", "--json"], env=env, capture_output=True,
                         text=True, check=True)
    listed = {row["name"]: row for row in json.loads(out.stdout)}
    assert listed["tiny_cnn"]["kind"] == "plugin" and "example plugin" in listed["tiny_cnn"]["description"]
    code = ("import torch; from feat2gs.features import FeatureInputs, compose_features; "
            "x = torch.rand(2, 32, 48, 3); print(tuple(compose_features('tiny_cnn', FeatureInputs(x, x), 8).shape))")
    shape = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert shape.strip() == "(2, 32, 48, 8)"
