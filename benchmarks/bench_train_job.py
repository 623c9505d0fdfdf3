"""Time a protocol-size training job (step 2) and how many of them one machine runs at once.

    python benchmarks/bench_train_job.py                                  # 3 views at 512x384, 8000 it., 1 job
    python benchmarks/bench_train_job.py --concurrent 1 2 4 --json train.json
    python benchmarks/bench_train_job.py --device cpu --long-side 64 --iterations 50 --mode T --concurrent 1 2

A synthetic scene (feat2gs.data.synthetic.make_scene, 4:3, --views training views, no test views) is written to
--work-dir (default: a temporary folder, removed afterwards; a given folder keeps and reuses the scene and step
1). Step 1 runs once, untimed, with the `gt` init at the image's own size, so there is one Gaussian per pixel
(3 x 512 x 384 = 589,824 by default). Then, for each --concurrent level L, L identical jobs start at once as
separate processes, each running the real `Job.train` of the `protocol` preset (rendering at the original
size) into its own output folder. The warm start is --iterations / 8 (the protocol's 1000 of 8000). Tiny smoke
tests should use --mode T: its geometry is the initial one, so a short warm start does not inflate the splats.

Per job: training iterations/s (the trainer's whole loop; it does not time its warm-start and render phases
separately), the train step's seconds, the process's wall time (Python start and CUDA set-up included) and peak
memory: torch.cuda.max_memory_allocated and max_memory_reserved on CUDA, peak RSS on CPU. Per level: the wall
time until the last job ended and jobs/hour = L / wall.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # feat2gs and benchmarks._common from the checkout

from benchmarks._common import device_name
from feat2gs.config import make_config
from feat2gs.data.layout import SceneLayout
from feat2gs.data.synthetic import make_scene
from feat2gs.init.step import run_init
from feat2gs.runinfo import resolve_device

DATASET = "Synthetic"
PRESET = "protocol"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="auto: CUDA when available")
    ap.add_argument("--backend", choices=["auto", "torch", "gsplat"], default="auto",
                    help="renderer (auto: gsplat on CUDA when installed, else torch)")
    ap.add_argument("--views", type=int, default=3, help="training views")
    ap.add_argument("--long-side", type=int, default=512, help="image width in px (a multiple of 16; 4:3)")
    ap.add_argument("--iterations", type=int, default=8000)
    ap.add_argument("--warm-iterations", type=int, default=None,
                    help="default: iterations // 8. A few hundred are needed for the heads to fit the initial "
                         "geometry; fewer leave oversized splats that make rendering unrepresentatively slow")
    ap.add_argument("--feature", default="oracle_xyz",
                    help="feature string (default oracle_xyz: 256 channels like PCA-ed model features, needs no "
                         "weights, and the heads can fit the initial geometry, so splat sizes stay realistic)")
    ap.add_argument("--mode", default="A", help="probing mode (default A: every parameter from a head, the costliest)")
    ap.add_argument("--concurrent", type=int, nargs="+", default=[1], help="numbers of simultaneous jobs")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads per job (default: torch's)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra setting: section.field=value")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep the scene, step 1 and jobs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    ap.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # internal: run one job
    return ap.parse_args()


def overrides(args: argparse.Namespace) -> list[str]:
    """Protocol preset made to match the generated scene: step 1 at the image's size (one Gaussian per pixel)."""
    warm = args.iterations // 8 if args.warm_iterations is None else args.warm_iterations
    return [f"init.image_size={args.long_side}", "init.vis_feat=false", f"train.iterations={args.iterations}",
            f"train.warm_iterations={warm}", f"device={args.device}", f"backend={args.backend}", *args.sets]


def check_args(args: argparse.Namespace) -> None:
    """Refuse settings that would only fail later inside every worker."""
    if args.long_side % 16 or args.long_side < 32:
        sys.exit(f"--long-side must be a multiple of 16 and at least 32 (step 1 floors both sides to /16), "
                 f"got {args.long_side}")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch (torch.cuda.is_available() is False)")
    if args.backend == "gsplat" and resolve_device(args.device).type != "cuda":
        sys.exit("--backend gsplat needs a CUDA device; use --backend torch (or auto) on CPU")
    if min(args.concurrent) < 1:
        sys.exit("--concurrent levels must be >= 1")


def prepare_scene(args: argparse.Namespace, work: Path) -> tuple[Path, str, dict]:
    """Write (or reuse) the scene and its step 1; returns (data root, scene name, step-1 manifest)."""
    root, scene = work / "data", f"bench_{args.views}v_{args.long_side}px"
    if not (root / DATASET / scene).is_dir():
        t0 = time.perf_counter()
        make_scene(root, DATASET, scene, n_train=args.views, n_test=0, width=args.long_side,
                   height=args.long_side * 3 // 4 // 16 * 16)
        print(f"scene written in {time.perf_counter() - t0:.1f} s: {root / DATASET / scene}", file=sys.stderr)
    cfg = make_config(PRESET, overrides(args))
    t0 = time.perf_counter()
    step1 = run_init(SceneLayout.open(root, DATASET, scene), cfg.init, args.feature)
    print(f"step 1 ready in {time.perf_counter() - t0:.1f} s: {step1}", file=sys.stderr)
    return root, scene, json.loads((step1 / "manifest.json").read_text())


def run_worker(spec_path: Path) -> None:
    """One job in this process: train, then write its figures (from run.json) to the spec's result file."""
    from feat2gs.job import Job

    spec = json.loads(spec_path.read_text())
    if spec["threads"] is not None:
        torch.set_num_threads(spec["threads"])
    cfg = make_config(PRESET, spec["overrides"])
    job = Job.create(spec["data_root"], DATASET, spec["scene"], spec["feature"], spec["mode"], cfg,
                     spec["out_root"], progress=False)
    job.train(force=True)
    info = job.record()["steps"]["train"]
    device = job.device
    result = {"device": device_name(device), "device_type": device.type, "threads": torch.get_num_threads(),
              "iterations_per_second": info["iterations_per_second"], "train_step_s": info["seconds"],
              "n_gaussians": info["n_gaussians"], "render_size": info["render_size"],
              "peak_mib": info["peak_memory_mb"], "peak_kind": "max_memory_allocated" if device.type == "cuda"
              else "peak RSS"}
    if device.type == "cuda":
        result["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    Path(spec["result"]).write_text(json.dumps(result))


def launch(level: int, args: argparse.Namespace, work: Path, root: Path, scene: str) -> list[dict]:
    """Start ``level`` identical jobs at once and wait for all; returns each job's figures plus its wall time."""
    start = time.perf_counter()
    with contextlib.ExitStack() as logs:
        procs = []
        for i in range(level):
            run_dir = work / "runs" / f"c{level}_{i}"
            run_dir.mkdir(parents=True, exist_ok=True)
            spec = {"data_root": str(root), "scene": scene, "feature": args.feature, "mode": args.mode,
                    "overrides": overrides(args), "threads": args.threads, "out_root": str(run_dir / "out"),
                    "result": str(run_dir / "result.json")}
            (run_dir / "spec.json").write_text(json.dumps(spec))
            log = logs.enter_context(open(run_dir / "log.txt", "w"))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(run_dir / "spec.json")]
            procs.append((run_dir, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        walls = wait_all([proc for _, proc in procs], start)
    results = []
    for (run_dir, proc), wall in zip(procs, walls):
        if proc.returncode != 0:
            tail = (run_dir / "log.txt").read_text()[-3000:]
            sys.exit(f"job {run_dir.name} failed (exit status {proc.returncode}); end of its log:\n{tail}")
        results.append({**json.loads((run_dir / "result.json").read_text()), "process_wall_s": wall})
    return results


def wait_all(procs: list[subprocess.Popen], start: float) -> list[float]:
    """Seconds from ``start`` until each process ended (polled, so each job's own end time is kept)."""
    ends: dict[int, float] = {}
    while len(ends) < len(procs):
        for i, proc in enumerate(procs):
            if i not in ends and proc.poll() is not None:
                ends[i] = time.perf_counter() - start
        time.sleep(0.05)
    return [ends[i] for i in range(len(procs))]


def summarise(level: int, jobs: list[dict]) -> dict:
    wall = max(j["process_wall_s"] for j in jobs)
    return {"concurrent": level, "device": jobs[0]["device"], "wall_s": wall, "jobs_per_hour": 3600 * level / wall,
            "mean_iterations_per_second": sum(j["iterations_per_second"] for j in jobs) / level,
            "max_peak_mib": max(j["peak_mib"] for j in jobs), "jobs": jobs}


def print_level(s: dict) -> None:
    for i, j in enumerate(s["jobs"]):
        reserved = f" / {j['peak_reserved_mib']:.0f} MiB reserved" if "peak_reserved_mib" in j else ""
        print(f"  [{j['device']}] {s['concurrent']} concurrent, job {i + 1}: {j['iterations_per_second']:.2f} it/s, "
              f"train step {j['train_step_s']:.1f} s, process {j['process_wall_s']:.1f} s, "
              f"peak {j['peak_mib']:.0f} MiB ({j['peak_kind']}){reserved}")
    print(f"[{s['device']}] {s['concurrent']} concurrent: all done in {s['wall_s']:.1f} s -> "
          f"{s['jobs_per_hour']:.1f} jobs/hour (mean {s['mean_iterations_per_second']:.2f} it/s per job)")


def run_levels(args: argparse.Namespace, work: Path) -> dict:
    root, scene, manifest = prepare_scene(args, work)
    w, h = manifest["working_size"]
    warm = args.iterations // 8 if args.warm_iterations is None else args.warm_iterations
    print(f"job: {args.views} views of {w}x{h}, {manifest['n_points']} Gaussians, feature {args.feature} "
          f"({manifest['feature_dim']} channels), mode {args.mode}, {args.iterations} iterations ({warm} warm start), "
          f"preset {PRESET}, device {args.device}, backend {args.backend}")
    levels = []
    for level in args.concurrent:
        levels.append(summarise(level, launch(level, args, work, root, scene)))
        print_level(levels[-1])
    return {"views": args.views, "size": [w, h], "gaussians": manifest["n_points"], "feature": args.feature,
            "mode": args.mode, "iterations": args.iterations, "warm_iterations": warm, "backend": args.backend,
            "overrides": overrides(args), "torch": torch.__version__, "levels": levels}


def main() -> None:
    args = parse_args()
    if args.worker is not None:
        run_worker(args.worker)
        return
    check_args(args)
    if args.work_dir is None:
        with tempfile.TemporaryDirectory(prefix="feat2gs-bench-") as tmp:
            report = run_levels(args, Path(tmp))
    else:
        report = run_levels(args, args.work_dir)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
