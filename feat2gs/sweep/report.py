"""``report``: turn a results tree into CSV, Markdown/LaTeX tables, plots and a comparison with the paper.

Aggregation as ``paper/``: a per-dataset cell is the mean over that dataset's scenes; the "All" cell is the mean
over all scenes pooled (each scene weighs the same, not each dataset). Tables are made per init method and
preset (``dust3r@protocol``, ``gt@quick``, ...), since those are different experiments. A group missing scenes
is never averaged silently: its cells carry ``*`` and the scene count, and ``missing.md`` lists the absent,
unfinished and unreadable jobs.

Outputs under ``out_dir``::

    jobs.csv                    one row per job (and per ``ours_<it>`` entry), with status
    report.md                   index: counts, tables of each method/preset, links
    tables_<method>@<preset>.md per dataset + all scenes
    latex/<method>@<preset>/<Dataset>.tex, All.tex
    plots/<method>@<preset>/bar_PSNR_<mode>.png, radar_<feature>.png   (all-scene means)
    missing.md                  absent / unfinished / unreadable jobs
    comparison.md, comparison.csv   ours vs the published Table 1 (per dataset) / Table 2 (all scenes)
    instantsplat_<method>@<preset>.md, latex/<...>/instantsplat_<scope>.tex
                                Feat2GS-G per feature vs InstantSplat (combos that ran InstantSplat)
    metrics3d_<method>@<preset>.md, latex/<...>/metrics3d_<scope>.tex
                                Acc/Comp/Dist ×1000 per feature and mode (ranked; initial values unranked)
    pose_<method>@<preset>.md, latex/<...>/pose_<scope>.tex
                                ATE/RPE_trans/RPE_rot per feature and mode (ranked; initial values unranked)
    topsis.md, topsis.csv       TOPSIS score and rank per (dataset or all, mode, feature) — sweep/topsis.py
    calibrated.md, calibrated.csv, calibrated_summary.csv
                                (PSNR − noise) / (oracle_xyz − noise) per scene, and means — sweep/calibration.py

InstantSplat jobs (mode ``instantsplat``) are never a feature of the G/T/A tables, TOPSIS or the calibrated
scores; random-weight and degenerate jobs never enter a ranking, a ranked cell, TOPSIS or a calibrated score.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from feat2gs.errors import Feat2GSError
from feat2gs.io import atomic_save, atomic_write_text, ensure_writable_dir
from feat2gs.resources import resource_path
from feat2gs.sweep.calibration import MIN_MARGIN_DB, CalibratedScore, CalibratedSummary, calibrated_scores, summarise
from feat2gs.sweep.collect import (
    BASELINE_MODE,
    EXTRA_KEYS,
    METRIC_KEYS,
    FILE_KEYS_3D,
    STATUS_DEGENERATE,
    STATUS_OK,
    STATUS_PARTIAL,
    STATUS_UNFINISHED,
    STATUS_UNREADABLE,
    JobRecord,
    collect_jobs,
    display_name,
    feature_sort_key,
    final_records,
    mode_sort_key,
)
from feat2gs.sweep.tables import (
    HIGHER_IS_BETTER,
    METRICS,
    METRICS_3D,
    MET3R_METRICS,
    POSE_METRICS,
    Cell,
    Table,
    base_metric,
    format_value,
)
from feat2gs.sweep.topsis import TopsisEntry, topsis_table

ALL_SCENES = "All"
DEFAULT_PUBLISHED = resource_path("feat2gs_published.csv")
# our dataset folder names -> the published table's dataset names (case-insensitive)
DATASET_ALIASES = {"llff": "LLFF", "dl3dv": "DL3DV", "casual": "Casual", "mipnerf360": "MipNeRF360",
                   "mipnerf_360": "MipNeRF360", "mip360": "MipNeRF360", "mvimgnet": "MVImgNet", "tanks": "Tanks",
                   "tt": "Tanks", "tanksandtemples": "Tanks", "tanks_and_temples": "Tanks"}

# jobs.csv: the 3D metrics are written ×1000 (the paper's unit) and named so: Acc_x1000, Acc_initial_x1000, ...
EXTRA_COLUMNS = {k: f"{k}_x1000" if base_metric(k) in FILE_KEYS_3D else k for k in EXTRA_KEYS}
JOB_COLUMNS = ["dataset", "scene", "n_views", "mode", "method", "feature", "display_name", "preset", "iteration",
               *METRIC_KEYS, *EXTRA_COLUMNS.values(), "num_views", "num_views_scored", "train_seconds",
               "total_seconds", "peak_memory_mb", "n_gaussians", "seed", "random_weights", "status", "steps_done",
               "error", "pose_note", "metrics3d_note", "job_dir"]


@dataclass
class ReportResult:
    out_dir: Path
    n_complete: int
    n_unfinished: int
    n_unreadable: int
    n_absent: int
    files: list[Path] = field(default_factory=list)
    tables: dict[str, dict[str, Table]] = field(default_factory=dict)  # combo tag -> scope -> ranked table
    unranked: dict[str, dict[str, Table]] = field(default_factory=dict)  # the same for random-weight jobs
    n_degenerate: int = 0
    baseline: dict[str, dict[str, Table]] = field(default_factory=dict)  # Feat2GS-G vs InstantSplat
    tables3d: dict[str, dict[str, Table]] = field(default_factory=dict)  # Acc/Comp/Dist ×1000, ranked
    pose: dict[str, dict[str, Table]] = field(default_factory=dict)  # ATE/RPE_trans/RPE_rot, ranked
    topsis: list[TopsisEntry] = field(default_factory=list)
    calibrated: list[CalibratedScore] = field(default_factory=list)  # per scene
    calibrated_summary: list[CalibratedSummary] = field(default_factory=list)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def combo_tag(method: str, preset: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]", "_", f"{method}@{preset}")


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def _expected_scenes(records: list[JobRecord], data_root: str | Path | None) -> dict[str, set[tuple[str, int | None]]]:
    """dataset -> {(scene, n_views)} a complete group must hold: every scene seen in the tree (any status,
    any method) plus, with ``data_root``, every scene of its ``dataset_split.json``."""
    expected: dict[str, set] = defaultdict(set)
    for r in records:
        if r.dataset != "?":
            expected[r.dataset].add((r.scene, r.n_views))
    if data_root is not None:
        path = Path(data_root) / "dataset_split.json"
        try:
            split = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise Feat2GSError(f"cannot read {path}: {exc}") from exc
        for dataset, scenes in split.items():
            if dataset in expected:  # only datasets that were run at all
                for scene, entry in scenes.items():
                    expected[dataset].add((scene, len(entry.get("train", []))))
    return expected


def build_tables(records: list[JobRecord], expected: dict[str, set], masked: bool = False,
                 ranked: bool = True, metrics: tuple[str, ...] | None = None, rank_cells: bool | None = None,
                 note: str | None = None) -> dict[str, dict[str, Table]]:
    """combo tag -> {dataset: Table, "All": Table} of scene means.

    ``ranked=True``: the rankable jobs (scored, trained weights) in ranked tables. ``ranked=False``: the scored
    random-weight jobs, in tables without ranks. Degenerate jobs (nothing measured) are in neither, InstantSplat
    jobs (no feature) neither: see :func:`baseline_tables`. ``metrics``: other metrics than the image ones (3D
    metrics, pose accuracy); then only the jobs and combos with a value of them are tabled. ``rank_cells=False``:
    the rankable jobs' values without ranks (e.g. the initial, step-1 values); ``note`` is added to the titles."""
    explicit = metrics is not None
    metrics = metrics if explicit else (tuple(f"{k}_masked" for k in METRICS) if masked else METRICS)
    finals = [r for r in final_records(records) if not r.baseline and (
        r.rankable if ranked else r.random_weights and r.status in (STATUS_OK, STATUS_PARTIAL))]
    if explicit:
        finals = [r for r in finals if any(r.metrics.get(k) is not None for k in metrics)]
    rank_cells = ranked if rank_cells is None else rank_cells
    note = note if note is not None else ("" if ranked else " — RANDOM WEIGHTS, not ranked")
    return _scene_mean_tables(finals, expected, metrics, rank_cells, note)


def _scene_mean_tables(finals: list[JobRecord], expected: dict[str, set], metrics: tuple[str, ...], ranked: bool,
                       note: str, title: str = "") -> dict[str, dict[str, Table]]:
    combos = sorted({r.combo for r in finals})
    out: dict[str, dict[str, Table]] = {}
    for method, preset in combos:
        mine = [r for r in finals if r.combo == (method, preset)]
        features = sorted({r.feature for r in mine}, key=feature_sort_key)
        modes = sorted({r.mode for r in mine}, key=mode_sort_key)
        datasets = sorted({r.dataset for r in mine})
        done = mine
        tables: dict[str, Table] = {}
        for scope in datasets + [ALL_SCENES]:
            scope_sets = datasets if scope == ALL_SCENES else [scope]
            scenes = {(d, s, n) for d in scope_sets for (s, n) in expected.get(d, set())}
            cells: dict[tuple[str, str, str], Cell] = {}
            for f in features:
                for m in modes:
                    group = [r for r in done if r.feature == f and r.mode == m
                             and (r.dataset, r.scene, r.n_views) in scenes]
                    if not group:
                        continue
                    for k in metrics:
                        vals = [r.metrics.get(k) for r in group]
                        vals = [v for v in vals if v is not None and math.isfinite(v)]
                        cells[(f, m, k)] = Cell(float(np.mean(vals)) if vals else None, len(vals), len(scenes),
                                                any(r.random_weights for r in group),
                                                any(r.status == STATUS_PARTIAL for r in group))
            scope_title = (f"{scope} ({_count(len(scenes), 'scene')})" if scope != ALL_SCENES
                           else f"All scenes ({_count(len(scenes), 'scene')}, {_count(len(scope_sets), 'dataset')})")
            title_ = f"{title}{scope_title}{note}"
            tables[scope] = Table(f"{title_}: {method}, preset {preset}", features, modes, metrics, cells, ranked)
        out[combo_tag(method, preset)] = tables
    return out


def baseline_tables(records: list[JobRecord], expected: dict[str, set],
                    masked: bool = False) -> dict[str, dict[str, Table]]:
    """The reference's "Feat2GS-G per feature vs InstantSplat": combo tag -> {dataset: Table, "All": Table}, rows =
    the features in mode G plus one InstantSplat row (ranked together), for the method/presets with scored
    InstantSplat jobs. Rankable jobs only, as every ranked table."""
    metrics = tuple(f"{k}_masked" for k in METRICS) if masked else METRICS
    finals = [r for r in final_records(records) if r.rankable]
    combos = {r.combo for r in finals if r.baseline}
    rows = [dataclasses.replace(r, mode="G") if r.baseline else r for r in finals
            if r.combo in combos and (r.baseline or r.mode == "G")]
    return _scene_mean_tables(rows, expected, metrics, True, "", "Feat2GS-G vs InstantSplat — ")


def absent_jobs(records: list[JobRecord], expected: dict[str, set]) -> list[tuple]:
    """(method, preset, dataset, scene, n_views, mode, feature) of the grid of each method/preset with no job folder.
    The grid is every scene × mode × feature run for that method/preset, plus one InstantSplat job per scene where
    the method/preset ran InstantSplat at all."""
    present = {(r.method, r.preset, r.dataset, r.scene, r.n_views, r.mode, r.feature) for r in records}
    out = []
    for method, preset in sorted({r.combo for r in records if r.dataset != "?"}):
        mine = [r for r in records if r.combo == (method, preset)]
        features = sorted({r.feature for r in mine if not r.baseline}, key=feature_sort_key)
        modes = sorted({r.mode for r in mine if not r.baseline}, key=mode_sort_key)
        grid = [(m, f) for m in modes for f in features]
        grid += [(BASELINE_MODE, BASELINE_MODE)] if any(r.baseline for r in mine) else []
        for dataset in sorted({r.dataset for r in mine}):
            for scene, n in sorted(expected.get(dataset, set()), key=lambda x: (x[0], x[1] or 0)):
                for m, f in grid:
                    key = (method, preset, dataset, scene, n, m, f)
                    if key not in present:
                        out.append(key)
    return out


def _missing_md(records: list[JobRecord], absent: list[tuple]) -> str:
    bad = [r for r in records if r.status in (STATUS_UNFINISHED, STATUS_UNREADABLE, STATUS_DEGENERATE)]
    lines = ["# Missing, unfinished, unreadable and degenerate jobs", "",
             f"{len(absent)} absent, {sum(r.status == STATUS_UNFINISHED for r in bad)} unfinished, "
             f"{sum(r.status == STATUS_UNREADABLE for r in bad)} unreadable, "
             f"{sum(r.status == STATUS_DEGENERATE for r in bad)} degenerate (finished, but nothing could be "
             "measured: never ranked or averaged).", ""]
    if bad:
        lines += ["## Unfinished / unreadable / degenerate job folders", "",
                  "| status | job folder | steps done | note |", "|---|---|---|---|"]
        lines += [f"| {r.status} | `{r.job_dir}` | {', '.join(r.steps_done) or '–'} | {r.error.replace('|', '/')} |"
                  for r in bad]
        lines.append("")
    if absent:
        lines += ["## Absent jobs (no folder; the grid is every scene × mode × feature run for that method/preset, "
                  "plus one InstantSplat job per scene where it ran InstantSplat)",
                  "", "| method@preset | dataset | scene | N | mode | feature |", "|---|---|---|---:|---|---|"]
        lines += [f"| {m}@{p} | {d} | {s} | {'' if n is None else n} | {mo} | {f} |"
                  for m, p, d, s, n, mo, f in absent]
        lines.append("")
    if not bad and not absent:
        lines.append("Every job of the grid is complete and measured.")
    return "\n".join(lines) + "\n"


# plots ---------------------------------------------------------------------------------------------------
def _save_figure(fig, path: Path) -> None:
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def _plots(table: Table, directory: Path) -> list[Path]:
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    written = []
    psnr = table.metrics[0]
    for mode in table.modes:
        feats = [f for f in table.features if table.cell(f, mode, psnr)]
        if not feats:
            continue
        fig = Figure(figsize=(max(4.0, 0.6 * len(feats) + 1.5), 3.5))
        ax = fig.add_subplot()
        cells = [table.cell(f, mode, psnr) for f in feats]
        bars = ax.bar(range(len(feats)), [c.mean for c in cells], color="#90c060", edgecolor="black", linewidth=0.5)
        for bar, c in zip(bars, cells):
            if c.incomplete:
                bar.set_hatch("//")
                bar.set_facecolor("#fff0d0")
        lo = min(c.mean for c in cells)
        hi = max(c.mean for c in cells)
        pad = max(0.5, 0.1 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(feats)), [display_name(f) for f in feats], rotation=45, ha="right")
        ax.set_ylabel(f"{psnr} (dB) ↑")
        ax.set_title(f"{table.title} — mode {mode}" + (" (hatched: incomplete)" if any(c.incomplete for c in cells)
                                                       else ""), fontsize=8)
        path = directory / f"bar_{psnr}_{mode}.png"
        _save_figure(fig, path)
        written.append(path)
    # radar per feature: axes = the three metrics, one polygon per mode; each (mode, metric) min-max
    # normalised across features to [0.1, 1] with LPIPS reversed (paper/radar_chart.py)
    norm: dict[tuple[str, str, str], float] = {}
    for mode in table.modes:
        for k in table.metrics:
            vals = {f: c.mean for f in table.features if (c := table.cell(f, mode, k))}
            if not vals:
                continue
            lo, hi = min(vals.values()), max(vals.values())
            for f, v in vals.items():
                x = 1.0 if hi == lo else (v - lo) / (hi - lo)
                x = x if HIGHER_IS_BETTER[base_metric(k)] else (1.0 if hi == lo else 1.0 - x)
                norm[(f, mode, k)] = 0.1 + 0.9 * x
    angles = np.linspace(0, 2 * np.pi, len(table.metrics), endpoint=False) + np.pi / 2
    for f in table.features:
        modes = [m for m in table.modes if all((f, m, k) in norm for k in table.metrics)]
        if not modes:
            continue
        fig = Figure(figsize=(3.6, 3.6))
        ax = fig.add_subplot(projection="polar")
        for m in modes:
            vals = [norm[(f, m, k)] for k in table.metrics]
            ax.plot(np.r_[angles, angles[:1]], vals + vals[:1], label=m)
            ax.fill(np.r_[angles, angles[:1]], vals + vals[:1], alpha=0.25)
        ax.set_xticks(angles, [f"{k}{'↑' if HIGHER_IS_BETTER[base_metric(k)] else '↓'}" for k in table.metrics])
        ax.set_ylim(0, 1.0)
        ax.set_yticklabels([])
        ax.set_title(f"{display_name(f)} (normalised across features)", fontsize=8)
        ax.legend(loc="lower right", fontsize=7, bbox_to_anchor=(1.25, -0.1))
        path = directory / f"radar_{re.sub(r'[^A-Za-z0-9_.+-]', '_', f)}.png"
        _save_figure(fig, path)
        written.append(path)
    return written


# comparison with the paper ----------------------------------------------------------------------------------
def load_published(path: str | Path) -> dict[tuple[str, str, str, str], tuple[float, str]]:
    """(dataset or "All", display name, mode, metric) -> (value, table) from the published-numbers CSV."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.open(newline="")))
    except OSError as exc:
        raise Feat2GSError(f"cannot read published numbers {path}: {exc.strerror}") from exc
    need = {"table", "dataset", "feature", "mode", "metric", "value"}
    if not rows or not need <= set(rows[0]):
        raise Feat2GSError(f"{path}: expected columns {', '.join(sorted(need))}")
    out = {}
    for row in rows:
        try:
            out[(row["dataset"], row["feature"], row["mode"], row["metric"])] = (float(row["value"]), row["table"])
        except ValueError as exc:
            raise Feat2GSError(f"{path}: bad value {row['value']!r}") from exc
    return out


def _published_dataset(dataset: str) -> str:
    return ALL_SCENES if dataset == ALL_SCENES else DATASET_ALIASES.get(dataset.lower(), dataset)


def compare(tables: dict[str, dict[str, Table]], published: dict) -> list[dict]:
    rows = []
    for tag, scopes in tables.items():
        for scope, table in scopes.items():
            pub_ds = _published_dataset(scope)
            for f in table.features:
                for m in table.modes:
                    for k in table.metrics:
                        c = table.cell(f, m, k)
                        hit = published.get((pub_ds, display_name(f), m, base_metric(k)))
                        if c is None or hit is None:
                            continue
                        rows.append({"combo": tag, "scope": scope, "published_table": hit[1], "feature": f,
                                     "display_name": display_name(f), "mode": m, "metric": k,
                                     "ours": round(c.mean, 6), "published": hit[0],
                                     "delta": round(c.mean - hit[0], 6), "n_scenes": c.n,
                                     "expected_scenes": c.expected, "complete": not c.incomplete})
    return rows


def _spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = (np.argsort(np.argsort(x)).astype(float) for x in (a, b))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _comparison_md(rows: list[dict], published_path: Path) -> str:
    lines = ["# Comparison with the published numbers", "",
             f"Published: `{published_path.name}` (assets/Feat2GS_Benchmark.pdf, fanegg/Feat2GS @0930a18); "
             "per-dataset scopes compare with Table 1, all scenes with Table 2. Δ = ours − published. "
             "`*` = our group lacks scenes (mean over the scenes present).", ""]
    if not rows:
        return "\n".join(lines + ["No (feature, mode, metric) of ours has a published value."]) + "\n"
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["combo"], r["scope"])].append(r)
    for (tag, scope), grp in groups.items():
        lines += [f"## {scope} — {tag} (vs {grp[0]['published_table']})", "",
                  "| Feature | Mode | Metric | ours | published | Δ | scenes |", "|---|---|---|---:|---:|---:|---:|"]
        for r in grp:
            k = r["metric"]
            mark = "" if r["complete"] else "\\*"
            delta = f"{r['delta']:+.{2 if base_metric(k) == 'PSNR' else 4}f}"
            lines.append(f"| {r['display_name']} | {r['mode']} | {k} | {format_value(r['ours'], k, False)}{mark} | "
                         f"{format_value(r['published'], k, False)} | {delta} | "
                         f"{r['n_scenes']}/{r['expected_scenes']} |")
        summary = []
        for m in sorted({r["mode"] for r in grp}, key=mode_sort_key):
            for k in sorted({r["metric"] for r in grp}, key=lambda x: METRICS.index(base_metric(x))):
                sel = [r for r in grp if r["mode"] == m and r["metric"] == k]
                rho = _spearman([r["ours"] for r in sel], [r["published"] for r in sel])
                mean_abs = float(np.mean([abs(r["delta"]) for r in sel]))
                summary.append(f"| {m} | {k} | {len(sel)} | {format_value(mean_abs, k, False)} | "
                               f"{'–' if rho is None else f'{rho:.2f}'} |")
        lines += ["", "| Mode | Metric | features | mean abs Δ | Spearman ρ (feature ranking) |",
                  "|---|---|---:|---:|---:|", *summary, ""]
    return "\n".join(lines) + "\n"


# InstantSplat, 3D metrics, pose, TOPSIS, calibrated scores ---------------------------------------------------
def _scope_file(scope: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", scope)


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


TOPSIS_COLUMNS = ["combo", "scope", "mode", "feature", "display_name", "criteria", "PSNR", "SSIM", "LPIPS", "score",
                  "rank", "n_ranked", "n_scenes", "expected_scenes", "note"]
CALIBRATED_COLUMNS = ["combo", "method", "preset", "dataset", "scene", "n_views", "mode", "feature", "display_name",
                      "metric", "value", "noise", "oracle_xyz", "calibrated", "partial", "note"]
SUMMARY_COLUMNS = ["combo", "method", "preset", "scope", "mode", "feature", "display_name", "metric", "mean",
                   "n_defined", "n_scenes"]

CALIBRATION_TEXT = f"""\
The calibrated probe score places a feature between the two probe controls run on the same scene, mode, init
method and preset: `(PSNR − PSNR_noise) / (PSNR_oracle_xyz − PSNR_noise)`. `noise` (random per-pixel features)
carries no information, `oracle_xyz` (a Fourier encoding of each pixel's initial 3D point) is perfect knowledge of
the geometry the readout must reproduce. So **0 = no better than noise, 1 = as good as perfect geometry
knowledge**; below 0 is worse than noise, above 1 better than the oracle (the oracle bounds geometry, so the score
speaks most directly of mode G; in T/A it stays relative to the controls of that mode). Unlike raw PSNR, which
depends on how hard a scene is, it is comparable across scenes and datasets (the paper has no such number).

It is **undefined** (empty, with the reason in `calibrated.csv`) when the scene/mode lacks a scored `noise` or
`oracle_xyz` job (absent, unfinished, degenerate, random weights or PSNR null), or when the oracle beats noise by
less than {MIN_MARGIN_DB} dB (the denominator would be run-to-run noise and the ratio meaningless). Random-weight
and degenerate jobs are never scored. Dataset and all-scene values are means over the scenes where the score is
defined (each scene weighs the same), shown as `mean (defined/scored scenes)`; per-scene values are in
[calibrated.csv](calibrated.csv), these means in [calibrated_summary.csv](calibrated_summary.csv).
"""

TOPSIS_TEXT = """\
TOPSIS as the reference (§10.2): per method/preset, scope and mode, the decision matrix holds each feature's scene
means of PSNR, SSIM, LPIPS (the ranked table's cells: trained weights only); vector normalisation, weights 1/3,
PSNR/SSIM benefits and LPIPS a cost; score C = S⁻/(S⁺+S⁻) with S⁺/S⁻ the distances to the ideal best/worst, rank
1 = best (ties share the better rank). Without any LPIPS mean (LPIPS disabled) it ranks on PSNR/SSIM with weights
1/2 (column `criteria`); features lacking only LPIPS while others have it are not ranked. With fewer than 2
features, or all equal, the score is undefined (–). Scores compare the features ranked together only. Cells:
`score (rank)`; `*` = the feature's group lacks scenes. All rows in [topsis.csv](topsis.csv).
"""


def _topsis_md(entries: list[TopsisEntry]) -> str:
    lines = ["# TOPSIS ranking of the features", "", TOPSIS_TEXT]
    by_combo: dict[str, list[TopsisEntry]] = defaultdict(list)
    for e in entries:
        by_combo[e.combo].append(e)
    for combo, grp in by_combo.items():
        columns = list(dict.fromkeys((e.scope, e.mode) for e in grp))
        features = sorted({e.feature for e in grp}, key=feature_sort_key)
        cell = {(e.feature, e.scope, e.mode): e for e in grp}
        lines += [f"## {combo}", "", "| Feature | " + " | ".join(f"{sc} {m}" for sc, m in columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for f in features:
            row = [display_name(f)]
            for sc, m in columns:
                e = cell.get((f, sc, m))
                row.append("" if e is None else "–" if e.score is None else
                           f"{e.score:.4f} ({e.rank})" + ("\\*" if e.n_scenes < e.expected_scenes else ""))
            lines.append("| " + " | ".join(row) + " |")
        notes = sorted({f"{sc} {m}: ranked on {'/'.join(e.criteria)} only (weights 1/{len(e.criteria)})"
                        for e in grp for sc, m in [(e.scope, e.mode)] if len(e.criteria) == 2})
        notes += [f"{e.scope} {e.mode} {display_name(e.feature)}: {e.note}" for e in grp if e.note]
        lines += ([""] + [f"- {n}" for n in notes] if notes else []) + [""]
    return "\n".join(lines) + "\n"


def _calibrated_md(summary: list[CalibratedSummary], scores: list[CalibratedScore], metric: str) -> str:
    lines = ["# Calibrated probe scores", "", CALIBRATION_TEXT.replace("PSNR", metric) if metric != "PSNR"
             else CALIBRATION_TEXT]
    by_combo: dict[tuple[str, str], list[CalibratedSummary]] = defaultdict(list)
    for s_ in summary:
        by_combo[(s_.method, s_.preset)].append(s_)
    for (method, preset), grp in by_combo.items():
        lines += [f"## {combo_tag(method, preset)}", ""]
        for mode in sorted({s_.mode for s_ in grp}, key=mode_sort_key):
            sel = [s_ for s_ in grp if s_.mode == mode]
            scopes = list(dict.fromkeys(s_.scope for s_ in sel))
            cell = {(s_.feature, s_.scope): s_ for s_ in sel}
            lines += [f"Mode {mode}:", "", "| Feature | " + " | ".join(scopes) + " |", "|---|" + "---:|" * len(scopes)]
            for f in sorted({s_.feature for s_ in sel}, key=feature_sort_key):
                row = [display_name(f)]
                for sc in scopes:
                    c = cell.get((f, sc))
                    row.append("" if c is None else f"{_fmt(c.mean, 3)} ({c.n_defined}/{c.n_scenes})")
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        undefined = sorted({(c.dataset, c.scene, c.mode, c.note) for c in scores
                            if (c.method, c.preset) == (method, preset) and c.score is None})
        if undefined:
            lines += ["Undefined:", ""] + [f"- {d}/{sc} {m}: {note}" for d, sc, m, note in undefined] + [""]
    if not summary:
        lines.append("No scored feature job shares a scene and mode with the controls.")
    return "\n".join(lines) + "\n"


def _extra_sections(records: list[JobRecord], expected: dict[str, set], tables: dict[str, dict[str, Table]],
                    masked: bool, out: Path, write) -> dict:
    """The InstantSplat comparison, 3D-metric and pose tables, TOPSIS and calibrated scores (files, index lines)."""
    index: list[str] = []
    baseline = baseline_tables(records, expected, masked)
    for tag, scopes in baseline.items():
        write(out / f"instantsplat_{tag}.md", "\n".join(
            [f"# {tag}: Feat2GS-G per feature vs InstantSplat", "",
             "Mode-G features and the InstantSplat baseline (same init method and preset), ranked together.", ""]
            + [t.to_markdown() for t in scopes.values()]))
        for scope, t in scopes.items():
            write(out / "latex" / tag / f"instantsplat_{_scope_file(scope)}.tex", t.to_latex())
        index += [f"## {tag}: Feat2GS-G vs InstantSplat", "",
                  f"All scopes: [instantsplat_{tag}.md](instantsplat_{tag}.md), LaTeX "
                  f"`latex/{tag}/instantsplat_*.tex`.", "", scopes[ALL_SCENES].to_markdown()]

    kinds = (("metrics3d", "3D metrics", METRICS_3D, " — 3D metrics ×1000 (scene units), lower is better",
              "initial (step-1 point cloud)"),
             ("pose", "Pose accuracy", POSE_METRICS, " — pose accuracy (ATE, RPE_trans: ground-truth scene units; "
              "RPE_rot: degrees), lower is better", "initial (step-1 poses)"),
             ("met3r", "MET3R", MET3R_METRICS, " — MET3R of the trajectory videos (multi-view consistency of "
              "consecutive frames), lower is better", None))
    made: dict[str, dict[str, dict[str, Table]]] = {}
    for stem, label, metrics, note, initial_label in kinds:
        ranked = build_tables(records, expected, metrics=metrics, note=note)
        initial = {} if initial_label is None else build_tables(
            records, expected, metrics=tuple(f"{k}_initial" for k in metrics), rank_cells=False,
            note=f" — {initial_label}, not ranked")
        made[stem] = ranked
        for tag in sorted(set(ranked) | set(initial)):
            scopes = ranked.get(tag, {})
            md = [f"# {tag}: {label}", ""] + [t.to_markdown() for t in scopes.values()]
            md += [t.to_markdown() for t in initial.get(tag, {}).values()]
            write(out / f"{stem}_{tag}.md", "\n".join(md))
            for scope, t in scopes.items():
                write(out / "latex" / tag / f"{stem}_{_scope_file(scope)}.tex", t.to_latex())
            index += [f"## {tag}: {label}", "", f"All scopes and the initial values: [{stem}_{tag}.md]({stem}_{tag}.md)"
                      + (f", LaTeX `latex/{tag}/{stem}_*.tex`" if scopes else "") + ".", ""]
            index += [scopes[ALL_SCENES].to_markdown()] if scopes else []

    entries = [e for tag, scopes in tables.items() for scope, t in scopes.items() for e in topsis_table(tag, scope, t)]
    if entries:
        write(out / "topsis.csv", _csv_text(TOPSIS_COLUMNS, [[
            e.combo, e.scope, e.mode, e.feature, display_name(e.feature), "/".join(e.criteria),
            *(_round(e.values.get(k)) for k in (tables[e.combo][e.scope].metrics)), _round(e.score), e.rank,
            e.n_ranked, e.n_scenes, e.expected_scenes, e.note] for e in entries]))
        write(out / "topsis.md", _topsis_md(entries))
        index += ["## TOPSIS", "", "Features ranked per dataset and mode on PSNR/SSIM/LPIPS together (the reference's "
                  "TOPSIS): [topsis.md](topsis.md), [topsis.csv](topsis.csv).", ""]

    metric = "PSNR_masked" if masked else "PSNR"
    scores = calibrated_scores(records, metric)
    summary = summarise(scores, ALL_SCENES)
    if scores:
        write(out / "calibrated.csv", _csv_text(CALIBRATED_COLUMNS, [[
            combo_tag(c.method, c.preset), c.method, c.preset, c.dataset, c.scene, c.n_views, c.mode, c.feature,
            display_name(c.feature), metric, c.psnr, c.psnr_noise, c.psnr_oracle, _round(c.score), c.partial, c.note]
            for c in scores]))
        write(out / "calibrated_summary.csv", _csv_text(SUMMARY_COLUMNS, [[
            combo_tag(s_.method, s_.preset), s_.method, s_.preset, s_.scope, s_.mode, s_.feature,
            display_name(s_.feature), metric, _round(s_.mean), s_.n_defined, s_.n_scenes] for s_ in summary]))
        write(out / "calibrated.md", _calibrated_md(summary, scores, metric))
        n_def = sum(c.score is not None for c in scores)
        index += ["## Calibrated probe scores", "",
                  f"`({metric} − noise) / (oracle_xyz − noise)` per scene, mode and feature: 0 = no better than the "
                  "noise control, 1 = as good as perfect geometry knowledge; comparable across scenes and datasets. "
                  f"Defined for {n_def} of {len(scores)} scored jobs (see [calibrated.md](calibrated.md) for what it "
                  "means and when it is undefined).", ""]
    return {"index": index, "baseline": baseline, "tables3d": made["metrics3d"], "pose": made["pose"],
            "topsis": entries, "calibrated": scores, "calibrated_summary": summary}


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


# entry point ------------------------------------------------------------------------------------------------
def report(results_root: str | Path, out_dir: str | Path, published_csv: str | Path | None = None,
           data_root: str | Path | None = None, masked: bool = False, plots: bool = True) -> ReportResult:
    """Write the benchmark report of ``<results_root>/eval`` into ``out_dir``.

    ``published_csv``: the published numbers to compare with (default: the shipped ``feat2gs_published.csv``,
    see ``feat2gs/resources/README.md``). ``data_root``: also expect every scene of its
    ``dataset_split.json`` (for the datasets that were run). ``masked``: tables of the ``*_masked`` metrics
    instead of the paper's.
    """
    records = collect_jobs(results_root)
    out = ensure_writable_dir(out_dir)
    expected = _expected_scenes(records, data_root)
    tables = build_tables(records, expected, masked)
    unranked = build_tables(records, expected, masked, ranked=False)
    absent = absent_jobs(records, expected)
    finals = final_records(records)
    degenerate = [r for r in finals if r.status == STATUS_DEGENERATE]
    n_random = sum(1 for r in finals if r.random_weights and r.status != STATUS_DEGENERATE)
    files: list[Path] = []

    def write(path: Path, text: str) -> None:
        atomic_write_text(path, text)
        files.append(path)

    rows = []
    for r in sorted(records, key=lambda r: (r.dataset, r.scene, r.method, r.preset, mode_sort_key(r.mode),
                                             feature_sort_key(r.feature), r.iteration or 0)):
        rows.append([r.dataset, r.scene, r.n_views, r.mode, r.method, r.feature, display_name(r.feature), r.preset,
                     r.iteration, *(r.metrics.get(k) for k in METRIC_KEYS), *(r.metrics.get(k) for k in EXTRA_KEYS),
                     r.num_views, r.num_views_scored, r.train_seconds,
                     r.total_seconds, r.peak_memory_mb, r.n_gaussians, r.seed, r.random_weights, r.status,
                     " ".join(r.steps_done), r.error, r.pose_note, r.metrics3d_note, r.job_dir])
    write(out / "jobs.csv", _csv_text(JOB_COLUMNS, rows))
    write(out / "missing.md", _missing_md(records, absent))

    n_ranked = sum(r.rankable for r in finals)
    index = ["# Feat2GS benchmark report", "",
             f"Results: `{Path(results_root)}`. {_count(len(finals), 'finished job')}: {n_ranked} ranked, "
             f"{n_random} with random weights (not ranked), {len(degenerate)} degenerate (nothing measured, not ranked); "
             f"{sum(r.status == STATUS_UNFINISHED for r in records)} unfinished, "
             f"{sum(r.status == STATUS_UNREADABLE for r in records)} unreadable, {len(absent)} absent "
             "(see [missing.md](missing.md)); every job in [jobs.csv](jobs.csv).", "",
             "Cells are means over scenes (all scenes: each scene weighs the same). Ranks per column, best in bold; "
             "`*` marks a group that lacks scenes, `‡` one where some test views could not be scored.", ""]
    for tag, scopes in tables.items():
        md = [f"# {tag}", ""] + [t.to_markdown() for t in scopes.values()]
        write(out / f"tables_{tag}.md", "\n".join(md))
        for scope, t in scopes.items():
            write(out / "latex" / tag / f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', scope)}.tex", t.to_latex())
        index += [f"## {tag}", "", f"Tables: [tables_{tag}.md](tables_{tag}.md), LaTeX: `latex/{tag}/`"
                  + (f", plots: `plots/{tag}/`" if plots else ""), "", scopes[ALL_SCENES].to_markdown()]
        if plots:
            files += _plots(scopes[ALL_SCENES], out / "plots" / tag)

    if unranked or degenerate:
        index += ["## Not ranked", ""]
    for tag, scopes in unranked.items():
        md = [f"# {tag}: random weights (not ranked)", ""] + [t.to_markdown() for t in scopes.values()]
        write(out / f"tables_{tag}_random_weights.md", "\n".join(md))
        index += [f"**{tag}: random weights** — these numbers test the pipeline and mean nothing about the models; "
                  f"all scopes in [tables_{tag}_random_weights.md](tables_{tag}_random_weights.md).", "",
                  scopes[ALL_SCENES].to_markdown()]
    if degenerate:
        index += [f"**Degenerate jobs** ({len(degenerate)}): finished, but no test view could be scored (see "
                  "[missing.md](missing.md)):", ""]
        index += [f"- `{r.job_dir}`: {r.error}" for r in degenerate] + [""]

    extra = _extra_sections(records, expected, tables, masked, out, write)
    index += extra.pop("index")

    pub_path = Path(published_csv) if published_csv is not None else DEFAULT_PUBLISHED
    if published_csv is not None or pub_path.is_file():
        cmp_rows = compare(tables, load_published(pub_path))
        header = ["combo", "scope", "published_table", "feature", "display_name", "mode", "metric", "ours",
                  "published", "delta", "n_scenes", "expected_scenes", "complete"]
        write(out / "comparison.csv", _csv_text(header, [[r[h] for h in header] for r in cmp_rows]))
        write(out / "comparison.md", _comparison_md(cmp_rows, pub_path))
        index += ["See [comparison.md](comparison.md) for the published numbers.", ""]
    write(out / "report.md", "\n".join(index) + "\n")
    return ReportResult(out, len(finals), sum(r.status == STATUS_UNFINISHED for r in records),
                        sum(r.status == STATUS_UNREADABLE for r in records), len(absent), files, tables, unranked,
                        len(degenerate), **extra)
