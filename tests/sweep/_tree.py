"""Write fake job folders (run.json / results.json) in the output layout, without running anything."""

from __future__ import annotations

import json
from pathlib import Path


def job_dir(out: Path, dataset: str, scene: str, n: int, mode: str, method: str, feature: str,
            preset: str = "protocol") -> Path:
    folder = f"feat2gs-{mode}" if preset == "protocol" else f"feat2gs-{mode}@{preset}"
    return out / "eval" / dataset / scene / f"{n}_views" / folder / method / feature


def write_job(out: Path, dataset: str, scene: str, mode: str, feature: str, psnr: float | None = 20.0,
              ssim: float = 0.7, lpips: float | None = 0.3, method: str = "dust3r", preset: str = "protocol",
              n: int = 3, it: int = 8000, results: bool = True, random_weights: bool = False,
              extra: dict | None = None) -> Path:
    d = job_dir(out, dataset, scene, n, mode, method, feature, preset)
    d.mkdir(parents=True, exist_ok=True)
    run = {"dataset": dataset, "scene": scene, "n_views": n, "mode": mode, "method": method, "feature": feature,
           "preset": preset, "seed": 0,
           "steps": {"train": {"key": "k", "seconds": 12.5, "n_gaussians": 1000, "peak_memory_mb": 512.0},
                     "render": {"key": "k", "seconds": 1.0}}}
    (d / "run.json").write_text(json.dumps(run))
    if results:
        (d / "results.json").write_text(json.dumps({f"ours_{it}": {
            "PSNR": psnr, "SSIM": ssim, "LPIPS": lpips, "PSNR_masked": None if psnr is None else psnr + 1,
            "SSIM_masked": ssim, "LPIPS_masked": lpips, "num_views": 2, "random_weights": random_weights,
            **(extra or {})}}))
    return d
