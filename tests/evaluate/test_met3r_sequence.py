"""MET3R over frame sequences: consecutive pairs, feature reuse, unscorable pairs, strict outputs, and the
property the video step relies on: a sequence in order scores better (lower) than the same frames shuffled."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from feat2gs.evaluate.met3r import Met3rInputError, score_sequence, write_met3r_outputs
from feat2gs.evaluate.met3r.load import make_random_pointmaps_usable

from tests.evaluate._met3r_fixture import requires_met3r_fixture, tiny_met3r

pytestmark = requires_met3r_fixture


@pytest.fixture(scope="module")
def path_frames(tmp_path_factory) -> np.ndarray:
    """12 views of the generated example scene in path order (neighbours are close viewpoints), 64x48 uint8."""
    from feat2gs.data.images import load_image
    from feat2gs.data.synthetic import make_scene

    root = make_scene(tmp_path_factory.mktemp("met3r_scene"), n_train=6, n_test=6, width=64, height=48, seed=0)
    return np.stack([load_image(p) for p in sorted((root / "images").glob("*.png"))])


def symmetric_tiny(img_size: int | None = 64):
    """Tiny fixture networks, pointmap network made as load_met3r makes random ones (symmetric, depth-shifted)."""
    m = tiny_met3r(img_size=img_size, depth_bias=0.0)
    make_random_pointmaps_usable(m.pointmap_net)
    return m


def test_ordered_sequence_scores_better_than_shuffled(path_frames):
    metric = symmetric_tiny()
    ordered = score_sequence(path_frames, metric=metric, progress=False)
    assert ordered["n_pairs"] == 11 and ordered["n_scored"] >= 9 and ordered["mean"] is not None
    for seed in (0, 1):
        perm = np.random.default_rng(seed).permutation(len(path_frames))
        shuffled = score_sequence(path_frames[perm], metric=metric, progress=False)
        assert shuffled["mean"] > 1.2 * ordered["mean"], (ordered["mean"], shuffled["mean"])


def test_identical_frames_are_consistent(path_frames):
    metric = symmetric_tiny()
    res = score_sequence(np.stack([path_frames[0]] * 3), metric=metric, progress=False)
    assert res["n_scored"] == 2 and max(res["scores"]) < 1e-4


def test_feature_reuse_matches_pairwise_scores(path_frames):
    """Each frame's features are computed once for its two pairs: same scores as the pairs run one by one."""
    metric = tiny_met3r(img_size=64)
    frames = path_frames[:5]
    res = score_sequence(frames, metric=metric, batch_size=2, progress=False)
    x = torch.nn.functional.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, (64, 64),
                                        mode="bilinear", align_corners=False, antialias=True)
    for t in range(4):
        one = metric(torch.stack([x[t], x[t + 1]])[None] * 2 - 1).score.item()
        # DUSt3R batches of 2 vs 1 pair round differently (~1e-6 of the points), moving α near the radius
        assert res["scores"][t] == pytest.approx(one, abs=1e-4)


def test_unscorable_pairs_are_null_with_a_reason(tmp_path, path_frames):
    metric = tiny_met3r(img_size=64, depth_bias=0.0)  # unshifted tiny DUSt3R: almost nothing in front
    res = score_sequence(path_frames[:3], metric=metric, progress=False)
    assert res["random_weights"] is True
    for pair in res["pairs"]:
        if pair["score"] is None:
            assert pair["reason"].startswith("empty overlap mask") and pair["official_score"] == 0.0
    if res["n_scored"] == 0:
        assert res["mean"] is None and "mean_reason" in res
    paths = write_met3r_outputs(res, tmp_path, "clip")
    text = paths["json"].read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["random_weights"] is True and len(data["pairs"]) == 2
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_outputs_are_strict_json_and_a_plot(tmp_path, path_frames):
    res = score_sequence(path_frames[:4], metric=symmetric_tiny(), progress=False, names=["a", "b", "c", "d"])
    res["scores"][0] = float("nan")  # a stray NaN is written as null, never NaN
    paths = write_met3r_outputs(res, tmp_path / "videos", "scene_3_view_interpolated")
    assert paths["json"].name == "scene_3_view_interpolated_met3r.json"
    data = json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["scores"][0] is None
    assert data["pairs"][1]["names"] == ["b", "c"]
    assert math.isfinite(data["mean"]) and data["options"]["backbone"] == "dust3r"
    assert {"mean", "scores", "pairs", "random_weights", "n_pairs", "n_scored", "weights"} <= set(data)
    assert paths["plot"].stat().st_size > 1000


def test_bad_frames_are_refused(path_frames):
    metric = tiny_met3r(img_size=64)
    with pytest.raises(Met3rInputError, match="at least 2 frames"):
        score_sequence(path_frames[:1], metric=metric, progress=False)
    with pytest.raises(Met3rInputError, match=r"\[0, 1\]"):
        score_sequence(path_frames[:2].astype(np.float32), metric=metric, progress=False)  # 0..255 floats
    with pytest.raises(Met3rInputError, match="T, H, W, 3"):
        score_sequence(path_frames[:2, ..., 0], metric=metric, progress=False)
    native = tiny_met3r(img_size=None)  # keep the frames' size: 48 rows = 3 patch rows (odd) is refused
    with pytest.raises(Met3rInputError, match="patch rows"):
        score_sequence(path_frames[:2], metric=native, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_matches_cpu(path_frames):
    cpu = score_sequence(path_frames[:4], metric=symmetric_tiny(), progress=False)
    gpu_metric = symmetric_tiny().to("cuda")
    gpu = score_sequence(path_frames[:4], metric=gpu_metric, progress=False)
    assert gpu["device"].startswith("cuda")
    assert np.allclose(cpu["scores"], gpu["scores"], atol=1e-3)
