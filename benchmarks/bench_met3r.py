"""MET3R throughput: pairs per second at 256 px, split into its stages, on CPU or CUDA.

    python benchmarks/bench_met3r.py                                # CUDA when available, else CPU; 256 px, MASt3R
    python benchmarks/bench_met3r.py --device cpu --frames 5 --threads 2 --json met3r_cpu.json
    python benchmarks/bench_met3r.py --backbone dust3r --batch-size 8 --frames 33

The networks have the official sizes (DINO ViT-S/16 + FeatUp JBU, DUSt3R/MASt3R ViT-L) with random weights unless
real ones are found (timings do not depend on the values). A sequence of ``--frames`` random-walk frames is scored
as consecutive pairs by ``score_sequence`` (each frame's features computed once for its two pairs), after one
untimed warm-up pair; the stage timings are per call on one batch: features of ``batch+1`` frames, pointmaps of
``batch`` pairs, splatting + score of ``batch`` pairs. Peak memory: torch.cuda.max_memory_allocated on CUDA, the
process's peak RSS on CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # feat2gs and benchmarks._common from the checkout

from benchmarks._common import device_name, sync  # noqa: E402
from feat2gs.evaluate.met3r import Met3rOptions, Met3rWeightsError, load_met3r, score_sequence  # noqa: E402
from feat2gs.init.dust3r import CheckpointError  # noqa: E402
from feat2gs.runinfo import peak_memory_mb, resolve_device, versions  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    ap.add_argument("--size", type=int, default=256, help="frame / raster size (official: 256)")
    ap.add_argument("--backbone", choices=["mast3r", "dust3r"], default="mast3r")
    ap.add_argument("--frames", type=int, default=None, help="frames scored (default: 33 on CUDA, 5 on CPU)")
    ap.add_argument("--batch-size", type=int, default=4, help="pairs per pointmap-network batch")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return ap.parse_args()


def frames_walk(n: int, size: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture seen through a window that slides a few pixels per frame (uint8 [n, S, S, 3])."""
    g = torch.Generator().manual_seed(seed)
    big = torch.rand(1, 3, size // 8, size // 4, generator=g)
    big = torch.nn.functional.interpolate(big, (size, 2 * size), mode="bicubic", align_corners=False).clamp(0, 1)
    step = max(1, size // n)
    return np.stack([(big[0, :, :, t * step:t * step + size].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                     for t in range(n)])


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n = args.frames or (33 if device.type == "cuda" else 5)
    options = Met3rOptions(img_size=args.size, backbone=args.backbone)
    try:
        metric = load_met3r(options, device=device)
    except (Met3rWeightsError, CheckpointError):
        metric = load_met3r(options, device=device, random_weights=True)
    frames = frames_walk(n, args.size)
    score_sequence(frames[:2], metric=metric, progress=False)  # warm-up (CUDA context, allocator, kernels)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    b = min(args.batch_size, n - 1)
    x01 = torch.from_numpy(frames[:b + 1]).permute(0, 3, 1, 2).float().div(255).to(device)
    pairs = torch.stack([x01[:-1], x01[1:]], 1) * 2 - 1
    with torch.no_grad():
        t_feat = timed(lambda: metric.features(x01), device)
        hr = metric.features(x01)
        t_pm = timed(lambda: metric.pointmaps(pairs), device)
        preds = metric.pointmaps(pairs)
        t_splat = timed(lambda: metric.score_from_features(hr[:-1], hr[1:], preds), device)
    t_total = timed(lambda: score_sequence(frames, metric=metric, batch_size=args.batch_size, progress=False), device)
    result = {
        "device": device_name(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "size": args.size, "backbone": args.backbone, "frames": n, "pairs": n - 1, "batch_size": args.batch_size,
        "random_weights": metric.random_weights,
        "pairs_per_second": round((n - 1) / t_total, 4),
        "seconds_total": round(t_total, 3),
        "stage_seconds_per_pair": {"features (per frame)": round(t_feat / (b + 1), 4),
                                   "pointmaps": round(t_pm / b, 4), "splat + score": round(t_splat / b, 4)},
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "versions": versions(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
