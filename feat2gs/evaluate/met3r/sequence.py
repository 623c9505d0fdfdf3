"""MET3R over an image sequence (a rendered trajectory video, a folder of photos): consecutive pairs (t, t+1).

Each frame's features are computed once and reused by the two pairs it belongs to; pairs go through the pointmap
network ``batch_size`` at a time. Frames are resized to ``img_size`` × ``img_size`` first (the official metric is
used on square 256 px images; ``img_size=None`` keeps the frames' own size, which must then be multiples of 16
with an even number of 16-px rows).

A pair that cannot be scored (empty overlap mask, non-finite pointmaps) is ``null`` with a reason, never NaN,
and is left out of the mean. (The official formula gives 0.0 for an empty mask, which would read as perfect
consistency; the raw value is kept as ``official_score``.)
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from feat2gs.evaluate.met3r.dino import Met3rInputError, check_image_size
from feat2gs.evaluate.met3r.metric import OFFICIAL_COMMIT, Met3r, Met3rOptions

DEFINITION = ("MET3R: 1 - cosine similarity of FeatUp-DINO features of two views splatted into view 1 through "
              "DUSt3R/MASt3R pointmaps, averaged over the overlap mask; lower = more consistent")


def frames_to_tensor(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """[T, H, W, 3] uint8, or float in [0, 1] -> float32 [T, 3, H, W] in [0, 1] (CPU)."""
    if isinstance(frames, (list, tuple)):
        shapes = {tuple(np.shape(f)) for f in frames}
        if len(shapes) > 1:
            raise Met3rInputError(f"all frames must have one size, got {sorted(shapes)}")
        frames = np.stack([np.asarray(f) for f in frames]) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    t = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise Met3rInputError(f"frames must be [T, H, W, 3] RGB, got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.is_floating_point():
        t = t.float()
        if not bool(torch.isfinite(t).all()):
            raise Met3rInputError("frames contain NaN or infinite values")
        lo, hi = (float(t.min()), float(t.max())) if t.numel() else (0.0, 1.0)
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise Met3rInputError(f"float frames must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        t = t.clamp(0, 1)
    else:
        raise Met3rInputError(f"frames must be uint8 or float in [0, 1], got {t.dtype}")
    return t.permute(0, 3, 1, 2).contiguous()


def prepare_frames(x01: torch.Tensor, img_size: int | None) -> torch.Tensor:  # [T, 3, H, W] -> [T, 3, S, S]
    """Resize to img_size × img_size (bilinear, antialiased when shrinking), or check the native size."""
    if img_size is None:
        check_image_size(*x01.shape[-2:])
        return x01
    check_image_size(img_size, img_size)
    if tuple(x01.shape[-2:]) == (img_size, img_size):
        return x01
    return F.interpolate(x01, (img_size, img_size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _pair_record(i: int, j: int, score: float, overlap: float) -> dict[str, Any]:
    rec: dict[str, Any] = {"i": i, "j": j, "score": None, "overlap": overlap if math.isfinite(overlap) else None}
    if overlap == 0.0:
        rec["reason"] = "empty overlap mask: no pixel is hit by both point clouds (official formula gives 0.0)"
        rec["official_score"] = score if math.isfinite(score) else None
    elif not math.isfinite(score):
        rec["reason"] = "non-finite score (degenerate pointmaps or focal estimate)"
    else:
        rec["score"] = score
    return rec


def score_sequence(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray], options: Met3rOptions | None = None, *,
                   metric: Met3r | None = None, device: torch.device | str = "auto", random_weights: bool = False,
                   checkpoint: str | os.PathLike | None = None, featup_checkpoint: str | os.PathLike | None = None,
                   dino_checkpoint: str | os.PathLike | None = None, batch_size: int = 4, progress: bool = True,
                   names: Sequence[str] | None = None) -> dict[str, Any]:
    """MET3R of the consecutive frame pairs (t, t+1) of ``frames`` [T, H, W, 3] (uint8, or float in [0, 1]).

    metric: a loaded :class:`Met3r` (else one is built with :func:`load_met3r` from ``options``, ``device``,
    ``random_weights`` and the checkpoints; the last one is cached). names: optional per-frame names recorded
    with each pair. Returns a strict-JSON-ready dict: ``mean`` (over scored pairs, or None with ``mean_reason``),
    ``pairs`` [{i, j, score|None, overlap, reason?}], ``scores``, ``random_weights``, options, weights, timing.
    """
    from feat2gs.evaluate.met3r.load import load_met3r
    from feat2gs.runinfo import resolve_device

    if batch_size < 1:
        raise Met3rInputError(f"batch_size must be >= 1, got {batch_size}")
    x01 = frames_to_tensor(frames)
    n = x01.shape[0]
    if n < 2:
        raise Met3rInputError(f"MET3R scores pairs of frames: need at least 2 frames, got {n}")
    if names is not None and len(names) != n:
        raise Met3rInputError(f"{len(names)} names for {n} frames")
    if metric is not None and options is not None and options != metric.options:
        raise Met3rInputError(f"options {options} differ from the given metric's {metric.options}")
    if metric is None:
        dev = resolve_device(str(device)) if isinstance(device, str) else torch.device(device)
        metric = load_met3r(options, device=dev, random_weights=random_weights, checkpoint=checkpoint,
                            featup_checkpoint=featup_checkpoint, dino_checkpoint=dino_checkpoint)
    opt = metric.options
    in_size = list(x01.shape[-2:])
    x01 = prepare_frames(x01, opt.img_size)
    dev = metric.device
    start = time.perf_counter()
    scores: list[float] = []
    overlaps: list[float] = []
    cached: tuple[int, torch.Tensor] | None = None  # (frame index, hr features) of the last frame of a chunk
    chunks = list(range(0, n - 1, batch_size))
    for s in tqdm(chunks, desc="met3r pairs", disable=not progress, mininterval=0.5):
        e = min(s + batch_size, n - 1)  # pairs s..e-1 use frames s..e
        frames_01 = x01[s:e + 1].to(dev)
        if cached is not None and cached[0] == s:
            hr = torch.cat([cached[1], metric.features(frames_01[1:])])
        else:
            hr = metric.features(frames_01)
        cached = (e, hr[-1:])
        pm1 = frames_01 * 2 - 1
        pairs = torch.stack([pm1[:-1], pm1[1:]], dim=1)
        out = metric.score_from_features(hr[:-1], hr[1:], metric.pointmaps(pairs))
        scores += out.score.double().cpu().tolist()
        overlaps += out.overlap_mask.double().mean((1, 2)).cpu().tolist()
    seconds = time.perf_counter() - start
    records = [_pair_record(i, i + 1, s, o) for i, (s, o) in enumerate(zip(scores, overlaps))]
    if names is not None:
        for r in records:
            r["names"] = [str(names[r["i"]]), str(names[r["j"]])]
    valid = [r["score"] for r in records if r["score"] is not None]
    result: dict[str, Any] = {
        "metric": "MET3R",
        "definition": DEFINITION,
        "implementation": f"feat2gs.evaluate.met3r (matches {OFFICIAL_COMMIT})",
        "random_weights": metric.random_weights,
        "mean": float(np.mean(valid)) if valid else None,
    }
    if not valid:
        result["mean_reason"] = "no pair could be scored (see pairs[].reason)"
    result.update({
        "median": float(np.median(valid)) if valid else None,
        "min": min(valid) if valid else None,
        "max": max(valid) if valid else None,
        "n_frames": n, "n_pairs": n - 1, "n_scored": len(valid),
        "mean_overlap": float(np.mean(overlaps)),
        "scores": [r["score"] for r in records],
        "pairs": records,
        "options": opt.to_dict(),
        "input_size": in_size, "scored_size": list(x01.shape[-2:]),
        "weights": dict(metric.sources),
        "device": str(dev),
        "seconds": round(seconds, 3),
        "pairs_per_second": round((n - 1) / seconds, 4) if seconds > 0 else None,
    })
    return result


# ------------------------------------------------------------------------------------------------------------------
# outputs

def output_paths(out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {"json": out_dir / f"{stem}_met3r.json", "plot": out_dir / f"{stem}_met3r.png"}


def _strict(obj: Any) -> Any:
    """Non-finite floats -> None (the result should hold none; this keeps the JSON strict regardless)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def write_met3r_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    from feat2gs.io import atomic_write_text

    atomic_write_text(path, json.dumps(_strict(result), indent=2, allow_nan=False) + "\n")
    return Path(path)


def plot_met3r(result: dict[str, Any], path: str | os.PathLike, title: str | None = None) -> Path:
    """PNG of the per-pair scores (unscored pairs marked on the axis) with the mean as a line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from feat2gs.io import atomic_save

    pairs = result["pairs"]
    x = np.arange(len(pairs))
    y = np.array([np.nan if p["score"] is None else p["score"] for p in pairs], dtype=float)
    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(x, y, "-o", ms=2.5, lw=1, color="tab:blue", label="pair (t, t+1)")
    missing = np.isnan(y)
    if missing.any():
        ax.plot(x[missing], np.zeros(int(missing.sum())), "x", color="tab:red", label="not scored")
    if result.get("mean") is not None:
        ax.axhline(result["mean"], color="tab:orange", lw=1, ls="--", label=f"mean {result['mean']:.4f}")
    ax.set_xlabel("frame pair t")
    ax.set_ylabel("MET3R (lower = more consistent)")
    head = title or "MET3R of consecutive frames"
    if result.get("random_weights"):
        head += "  [RANDOM WEIGHTS: meaningless]"
    ax.set_title(head, fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return Path(path)


def write_met3r_outputs(result: dict[str, Any], out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>_met3r.json`` (strict JSON) and ``<out_dir>/<stem>_met3r.png``; returns the paths."""
    paths = output_paths(out_dir, stem)
    write_met3r_json(result, paths["json"])
    plot_met3r(result, paths["plot"], title=f"MET3R: {stem}")
    return paths
