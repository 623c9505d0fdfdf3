"""Collect the job folders of a results tree into flat records (complete, unfinished and unreadable alike).

A job folder is ``<root>/eval/<Dataset>/<scene>/<N>_views/feat2gs-<mode>[@<preset>]/<method>/<feature>/`` (the
InstantSplat baseline: ``.../<N>_views/instantsplat[@<preset>]/<method>/``, mode and feature ``instantsplat``);
it is complete when ``results.json`` exists and reads; ``run.json`` without ``results.json`` is unfinished.
Besides the image metrics a record carries, when the job wrote them, the pose accuracy of ``results.json``
(``ours_<it>.pose``) and the 3D metrics of ``3d_metrics.json`` (×1000), both with their step-1 (initial) values.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from feat2gs.data.layout import parse_job_folder
from feat2gs.gaussians.modes import BASELINE_MODE
from feat2gs.errors import Feat2GSError

METRIC_KEYS = ("PSNR", "SSIM", "LPIPS", "PSNR_masked", "SSIM_masked", "LPIPS_masked")
# 3D metrics (<job>/3d_metrics.json, jobs with known geometry): our name -> the file's key. Read ×1000 (the paper's
# unit, scene units × 1000); the step-1 point cloud's values as <name>_initial.
FILE_KEYS_3D = {"Acc": "Accuracy", "Acc_med": "Acc_med", "Comp": "Completion", "Comp_med": "Comp_med",
                "Dist": "Distance", "Dist_med": "Dist_med"}
SCALE_3D = 1000.0
THRESHOLD_3D = "threshold_0.0"
# pose accuracy (results.json ours_<it>.pose): ATE/RPE_trans in ground-truth scene units, RPE_rot in degrees
POSE_KEYS = ("ATE", "RPE_trans", "RPE_rot")
EXTRA_KEYS = (*FILE_KEYS_3D, *(f"{k}_initial" for k in FILE_KEYS_3D),
              *POSE_KEYS, *(f"{k}_initial" for k in POSE_KEYS), "MET3R")
CONTROL_NOISE, CONTROL_ORACLE = "noise", "oracle_xyz"  # the probe controls (lower and upper bound)

# our feature names -> the paper's display names (paper/common.py)
DISPLAY_NAMES = {
    "vggt_e": "VGGTenc", "vggt_d": "VGGTdec", "dust3r": "DUSt3R", "mast3r": "MASt3R", "midas_l16": "MiDaS",
    "dinov2_b14": "DINOv2", "dino_b16": "DINO", "sam_base": "SAM", "clip_b16": "CLIP", "radio": "RADIO",
    "mae_b16": "MAE", "dift": "SD", "iuvrgb": "IUVRGB",
}
PAPER_ORDER = list(DISPLAY_NAMES.values())
DISPLAY_NAMES[BASELINE_MODE] = "InstantSplat"
MODE_ORDER = ("G", "T", "A", "Gft", "Tft", "Aft")
MODE_NAMES = {"G": "Geometry", "T": "Texture", "A": "All", "Gft": "Geometry (ft)", "Tft": "Texture (ft)",
              "Aft": "All (ft)"}

STATUS_OK = "ok"  # every test view scored
STATUS_PARTIAL = "partial"  # results.json says some test views could not be scored (means over the others)
STATUS_DEGENERATE = "degenerate"  # results.json says no test view could be scored: nothing measured
STATUS_UNFINISHED = "unfinished"  # run.json without results.json
STATUS_UNREADABLE = "unreadable"  # a JSON file that does not parse, or a path that is not a job folder
COMPLETE = (STATUS_OK, STATUS_PARTIAL, STATUS_DEGENERATE)  # the job finished; its results.json reads
LEGACY_MIN_VISIBLE = 0.01  # the default eval.min_visible_fraction, applied to results written without a status


def display_name(feature: str) -> str:
    """``radio`` -> ``RADIO``; a concatenation ``radio-mae_b16`` -> ``RADIO+MAE``; unknown names stay as they are."""
    return "+".join(DISPLAY_NAMES.get(part, part) for part in feature.split("-"))


def feature_sort_key(feature: str) -> tuple:
    """Paper order for single features, then concatenations and unknown features by name, InstantSplat last."""
    if feature == BASELINE_MODE:
        return (len(PAPER_ORDER) + 1, "")
    name = display_name(feature)
    return (PAPER_ORDER.index(name), "") if name in PAPER_ORDER else (len(PAPER_ORDER), name.lower())


def mode_sort_key(mode: str) -> tuple:
    return (MODE_ORDER.index(mode), "") if mode in MODE_ORDER else (len(MODE_ORDER), mode)


@dataclass
class JobRecord:
    dataset: str
    scene: str
    n_views: int | None
    mode: str
    method: str
    feature: str
    preset: str
    job_dir: str  # relative to the results root
    status: str
    iteration: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)  # METRIC_KEYS, plus EXTRA_KEYS when present
    num_views: int | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    peak_memory_mb: float | None = None
    n_gaussians: int | None = None
    seed: int | None = None
    random_weights: bool | None = None
    num_views_scored: int | None = None
    steps_done: tuple[str, ...] = ()
    error: str = ""  # why the job is not ok (unreadable file, degenerate or partial results)
    pose_note: str = ""  # why results.json has no pose accuracy (its "pose_note")
    metrics3d_note: str = ""  # why 3d_metrics.json could not be read (absent is not noted)

    @property
    def rankable(self) -> bool:
        """A measurement that may be ranked: finished, scored, from trained (not random) weights."""
        return self.status in (STATUS_OK, STATUS_PARTIAL) and not self.random_weights

    @property
    def baseline(self) -> bool:
        """An InstantSplat job (no feature): compared with the features, never one of them."""
        return self.mode == BASELINE_MODE

    @property
    def combo(self) -> tuple[str, str]:
        return (self.method, self.preset)

    @property
    def scene_key(self) -> tuple[str, str]:
        return (self.dataset, self.scene)


def eval_root_of(results_root: str | Path) -> Path:
    """``<root>/eval`` (or ``<root>`` itself when it is the ``eval`` folder)."""
    root = Path(results_root)
    if (root / "eval").is_dir():
        return root / "eval"
    if root.name == "eval" and root.is_dir():
        return root
    raise Feat2GSError(f"no results under {root}: expected {root / 'eval'}/<Dataset>/<scene>/<N>_views/...")


def _read_json(path: Path) -> tuple[dict | None, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name}: {exc}"
    if not isinstance(data, dict):
        return None, f"{path.name}: expected a JSON object"
    return data, ""


def _num(value, kind=float):
    """A finite number or None (a NaN/inf written by an older version is not a measurement)."""
    try:
        number = None if value is None else kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is None or math.isfinite(number) else None


def _read_job(job_dir: Path, rel: tuple[str, ...]) -> list[JobRecord]:
    run, run_err = _read_json(job_dir / "run.json") if (job_dir / "run.json").is_file() else (None, "")
    results, res_err = (_read_json(job_dir / "results.json") if (job_dir / "results.json").is_file()
                        else (None, ""))
    ident = parse_job_folder(rel) or {}
    if run:
        for key in ("dataset", "scene", "n_views", "mode", "method", "feature", "preset"):
            if run.get(key) is not None:
                ident[key] = run[key]
    rel_str = "/".join(rel)
    if not all(k in ident for k in ("dataset", "scene", "mode", "method", "feature")):
        return [JobRecord("?", "?", None, "?", "?", "?", "?", rel_str, STATUS_UNREADABLE,
                          error="not a job folder <Dataset>/<scene>/<N>_views/feat2gs-<mode>/<method>/<feature> "
                                "(or .../instantsplat/<method>)" + (f"; {run_err}" if run_err else ""))]
    base = dict(dataset=str(ident["dataset"]), scene=str(ident["scene"]), n_views=_num(ident.get("n_views"), int),
                mode=str(ident["mode"]), method=str(ident["method"]), feature=str(ident["feature"]),
                preset=str(ident.get("preset", "protocol")), job_dir=rel_str)
    steps = (run or {}).get("steps", {}) if isinstance((run or {}).get("steps", {}), dict) else {}
    train = steps.get("train", {}) if isinstance(steps.get("train"), dict) else {}
    seconds = [s.get("seconds") for s in steps.values() if isinstance(s, dict) and s.get("seconds") is not None]
    extra = dict(train_seconds=_num(train.get("seconds")), peak_memory_mb=_num(train.get("peak_memory_mb")),
                 n_gaussians=_num(train.get("n_gaussians"), int), seed=_num((run or {}).get("seed"), int),
                 total_seconds=round(sum(_num(s) or 0.0 for s in seconds), 3) if seconds else None,
                 steps_done=tuple(steps))
    errors = "; ".join(e for e in (run_err, res_err) if e)
    if res_err:
        return [JobRecord(**base, **extra, status=STATUS_UNREADABLE, error=errors)]
    if results is None:
        return [JobRecord(**base, **extra, status=STATUS_UNFINISHED, error=errors or "no results.json")]
    metrics3d, note3d = (_read_json(job_dir / "3d_metrics.json") if (job_dir / "3d_metrics.json").is_file()
                         else (None, ""))
    met3r = _met3r_mean(job_dir)
    records = []
    for key, values in results.items():
        m_it = re.fullmatch(r"ours_(\d+)", key)
        if not m_it or not isinstance(values, dict):
            continue
        status, reason = _status(values)
        metrics = {k: _num(values.get(k)) for k in METRIC_KEYS}
        pose, pose_note = _pose_values(values)
        metrics.update(pose)
        if metrics3d is not None:
            found, note3d = _metrics3d_values(metrics3d, key)
            metrics.update(found)
        metrics["MET3R"] = met3r
        records.append(JobRecord(
            **base, **extra, status=status, error="; ".join(e for e in (errors, reason) if e),
            iteration=int(m_it.group(1)), metrics=metrics,
            num_views=_num(values.get("num_views"), int), num_views_scored=_num(values.get("num_views_scored"), int),
            random_weights=bool(values.get("random_weights", False)), pose_note=pose_note, metrics3d_note=note3d))
    if not records:
        return [JobRecord(**base, **extra, status=STATUS_UNREADABLE,
                          error="results.json has no ours_<iteration> entry")]
    return records


def _met3r_mean(job_dir: Path) -> float | None:
    """MET3R of the job's trajectory videos (the mean over its trajectories' pair means); None without one, or when
    the score came from random-weight networks (never a measurement to rank)."""
    means = []
    for path in sorted((job_dir / "videos").glob("*_met3r.json")):
        data, _ = _read_json(path)
        if data and not data.get("random_weights") and _num(data.get("mean")) is not None:
            means.append(_num(data.get("mean")))
    return float(sum(means) / len(means)) if means else None


def _pose_values(values: dict) -> tuple[dict[str, float | None], str]:
    """ATE/RPE_trans/RPE_rot (and ``*_initial``) of one ``ours_<it>`` entry; ({}, note) without pose accuracy."""
    pose = values.get("pose")
    note = str(values.get("pose_note") or "")
    if not isinstance(pose, dict):
        return {}, note
    initial = pose.get("initial") if isinstance(pose.get("initial"), dict) else {}
    out = {k: _num(pose.get(k)) for k in POSE_KEYS}
    out.update({f"{k}_initial": _num(initial.get(k)) for k in POSE_KEYS})
    return out, note


def _metrics3d_values(data: dict, key: str) -> tuple[dict[str, float | None], str]:
    """The 3D metrics (×1000) of entry ``key`` (``ours_<it>``) and of ``initial`` at threshold 0 of
    ``3d_metrics.json``; a missing entry is noted, not an error (the image metrics stand on their own)."""
    out: dict[str, float | None] = {}
    notes = []
    for entry, suffix in ((key, ""), ("initial", "_initial")):
        block = data.get(entry)
        block = block.get(THRESHOLD_3D) if isinstance(block, dict) else None
        if not isinstance(block, dict):
            notes.append(f"3d_metrics.json has no {entry}.{THRESHOLD_3D}")
            continue
        for name, file_key in FILE_KEYS_3D.items():
            value = _num(block.get(file_key))
            out[name + suffix] = None if value is None else round(value * SCALE_3D, 10)  # no 12.344999…
    return out, "; ".join(notes)


def _status(values: dict) -> tuple[str, str]:
    """(status, reason) of one ``ours_<it>`` entry. Entries written before statuses existed are judged from their
    visible fraction: versions before 0.2 scored a view with an empty mask as PSNR 200 / SSIM 1."""
    status = values.get("status")
    if status is None:
        fraction = _num(values.get("mask_fraction"))
        if fraction is not None and fraction < LEGACY_MIN_VISIBLE:
            return STATUS_DEGENERATE, (f"written by an older feat2gs with a mean visible fraction of {fraction:.2%}: "
                                       "not measurable; rerun `feat2gs metrics`")
        return STATUS_OK, ""
    if status not in COMPLETE:
        return STATUS_UNREADABLE, f"results.json: unknown status {status!r}"
    return status, str(values.get("status_reason") or "")


def collect_jobs(results_root: str | Path) -> list[JobRecord]:
    """Every job folder under ``<results_root>/eval`` as records (one per ``ours_<it>`` entry of a complete job)."""
    eval_root = eval_root_of(results_root)
    dirs = {p.parent for name in ("results.json", "run.json") for p in eval_root.rglob(name)}
    records: list[JobRecord] = []
    for job_dir in sorted(dirs):
        records.extend(_read_job(job_dir, job_dir.relative_to(eval_root).parts))
    return records


def final_records(records: list[JobRecord]) -> list[JobRecord]:
    """Complete records (ok, partial or degenerate) at each job's highest iteration (the one the tables use)."""
    best: dict[str, JobRecord] = {}
    for r in records:
        if r.status in COMPLETE and (r.job_dir not in best or r.iteration > best[r.job_dir].iteration):
            best[r.job_dir] = r
    return list(best.values())
