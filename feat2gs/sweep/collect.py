"""Collect the job folders of a results tree into flat records (complete, unfinished and unreadable alike).

A job folder is ``<root>/eval/<Dataset>/<scene>/<N>_views/feat2gs-<mode>[@<preset>]/<method>/<feature>/``;
it is complete when ``results.json`` exists and reads; ``run.json`` without ``results.json`` is unfinished.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from feat2gs.data.layout import parse_job_folder
from feat2gs.errors import Feat2GSError

METRIC_KEYS = ("PSNR", "SSIM", "LPIPS", "PSNR_masked", "SSIM_masked", "LPIPS_masked")

# our feature names -> the paper's display names (paper/common.py)
DISPLAY_NAMES = {
    "vggt_e": "VGGTenc", "vggt_d": "VGGTdec", "dust3r": "DUSt3R", "mast3r": "MASt3R", "midas_l16": "MiDaS",
    "dinov2_b14": "DINOv2", "dino_b16": "DINO", "sam_base": "SAM", "clip_b16": "CLIP", "radio": "RADIO",
    "mae_b16": "MAE", "dift": "SD", "iuvrgb": "IUVRGB",
}
PAPER_ORDER = list(DISPLAY_NAMES.values())
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
    """Paper order for single features, then concatenations and unknown features by name."""
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
    metrics: dict[str, float | None] = field(default_factory=dict)
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

    @property
    def rankable(self) -> bool:
        """A measurement that may be ranked: finished, scored, from trained (not random) weights."""
        return self.status in (STATUS_OK, STATUS_PARTIAL) and not self.random_weights

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
                          error="not a job folder <Dataset>/<scene>/<N>_views/feat2gs-<mode>/<method>/<feature>"
                                + (f"; {run_err}" if run_err else ""))]
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
    records = []
    for key, values in results.items():
        m_it = re.fullmatch(r"ours_(\d+)", key)
        if not m_it or not isinstance(values, dict):
            continue
        status, reason = _status(values)
        records.append(JobRecord(
            **base, **extra, status=status, error="; ".join(e for e in (errors, reason) if e),
            iteration=int(m_it.group(1)), metrics={k: _num(values.get(k)) for k in METRIC_KEYS},
            num_views=_num(values.get("num_views"), int), num_views_scored=_num(values.get("num_views_scored"), int),
            random_weights=bool(values.get("random_weights", False))))
    if not records:
        return [JobRecord(**base, **extra, status=STATUS_UNREADABLE,
                          error="results.json has no ours_<iteration> entry")]
    return records


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
