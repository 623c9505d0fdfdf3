"""MET3R: multi-view consistency of image pairs, matched to the official metric (mohammadasim98/met3r@3259e41).

Pip-only: FeatUp's ``dino16`` featurizer and JBU upsampler (:mod:`.dino`, :mod:`.jbu`, weights in
:mod:`.weights`), our DUSt3R/MASt3R for the pointmaps, and our own point splatting (:mod:`.splat`) in place of
PyTorch3D. Conformance with the official code: ``tests/evaluate/test_met3r_conformance.py``.

    from feat2gs.evaluate.met3r import load_met3r, score_sequence, write_met3r_outputs
    metric = load_met3r(Met3rOptions(backbone="dust3r"), device="cuda")      # or random_weights=True
    out = metric(images)                      # [B, 2, 3, H, W] in [-1, 1] -> Met3rOutput(score [B], ...)
    result = score_sequence(frames, metric=metric)                            # consecutive pairs of [T, H, W, 3]
    write_met3r_outputs(result, "videos", "scene_3_view_interpolated")
"""

from feat2gs.evaluate.met3r.dino import Met3rInputError
from feat2gs.evaluate.met3r.load import clear_cache, load_met3r
from feat2gs.evaluate.met3r.metric import Met3r, Met3rOptions, Met3rOutput
from feat2gs.evaluate.met3r.sequence import output_paths, plot_met3r, score_sequence, write_met3r_outputs
from feat2gs.evaluate.met3r.weights import Met3rWeightsError

__all__ = [
    "Met3r", "Met3rInputError", "Met3rOptions", "Met3rOutput", "Met3rWeightsError", "clear_cache", "load_met3r",
    "output_paths", "plot_met3r", "score_sequence", "write_met3r_outputs",
]
