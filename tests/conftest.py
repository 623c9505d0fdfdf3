"""Shared fixtures: a tiny generated scene and fast settings."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

# Subprocesses (CLI runs, pool workers, the parallel script) inherit this: with several workers on a 2-core machine,
# default OpenMP threads spin against each other and run 10-20x slower (README, "Measured").
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

from feat2gs.config import ExperimentConfig, make_config
from feat2gs.data.synthetic import make_scene


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny workloads run faster on one thread, and 2-thread OpenMP spins badly on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fresh_feat2gs_logger():
    """An in-process CLI call configures the ``feat2gs`` logger (own handler, no propagation, maybe errors only);
    undo it so that later tests' ``caplog`` sees every record whatever the test order."""
    yield
    logger = logging.getLogger("feat2gs")
    for handler in [h for h in logger.handlers if getattr(h, "_feat2gs", False)]:
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="session")
def pristine_scene(tmp_path_factory) -> Path:
    """A 3-train / 2-test synthetic scene at 64x48, generated once; never written to (module-scoped fixtures copy it)."""
    root = tmp_path_factory.mktemp("pristine")
    make_scene(root, n_train=3, n_test=2, width=64, height=48, seed=0)
    return root


@pytest.fixture
def scene_root(pristine_scene, tmp_path_factory) -> Path:
    """This test's own copy of the synthetic scene: step 1 writes into the data root, so a shared one would make
    results depend on which tests ran before."""
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(pristine_scene, root, dirs_exist_ok=True)
    return root


def tiny_config(**train) -> ExperimentConfig:
    """Settings for second-scale end-to-end tests (48x32 px working size)."""
    cfg = make_config("quick", [
        "init.image_size=48", "init.feat_dim=32", "train.resolution=48", "train.iterations=40",
        "train.warm_iterations=20", "eval.test_pose_iterations=3", "video.n_frames=4", "video.resolution=48",
        "eval.lpips=false",
    ])
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def strict_load(path: Path):
    """Parse JSON as JavaScript's JSON.parse or jq do: NaN / Infinity are errors."""
    def refuse(token):
        raise ValueError(f"{path}: non-standard JSON constant {token}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)
