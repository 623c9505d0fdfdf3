"""Calibrated probe score: where a feature's PSNR lies between the two probe controls of the same scene.

For one scene, mode, init method and preset, with ``noise`` (seeded random per-pixel features: the readout learns
nothing from them) and ``oracle_xyz`` (a Fourier encoding of each pixel's initial 3D point: perfect knowledge of
the geometry the readout must reproduce) run alongside the features::

    calibrated = (PSNR_feature − PSNR_noise) / (PSNR_oracle_xyz − PSNR_noise)

0 = no better than noise, 1 = as good as perfect geometry knowledge; below 0 = worse than noise, above 1 = better
than the oracle (possible: the oracle bounds what the geometry alone gives, and in the T/A modes the texture is
read from the features too). Unlike raw PSNR, which depends on how hard a scene is, the number is comparable across
scenes and datasets; the paper has no such number. The oracle is a geometry bound, so the score speaks most
directly of mode G; in T and A it is still relative to the controls run in that mode.

Undefined (null, with the reason, never a number) when:

* the scene/mode/method/preset has no scored ``noise`` or ``oracle_xyz`` job (absent, unfinished, unreadable,
  degenerate, random weights, or PSNR null);
* the oracle does not beat noise by at least :data:`MIN_MARGIN_DB` (0.5 dB): the denominator would be about the
  PSNR noise between two runs, and dividing by it gives large numbers that mean nothing.

Only scored jobs with trained weights enter (status ok or partial, never random weights or degenerate; partial
jobs are flagged). Per-dataset and all-scene summaries are means over the scenes where the score is defined, with
the count of those scenes and of the scenes the feature was scored on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from feat2gs.sweep.collect import (
    CONTROL_NOISE,
    CONTROL_ORACLE,
    STATUS_PARTIAL,
    JobRecord,
    feature_sort_key,
    final_records,
    mode_sort_key,
)

MIN_MARGIN_DB = 0.5  # the oracle must beat noise by this much (dB) for the score to be defined
CONTROLS = (CONTROL_NOISE, CONTROL_ORACLE)


@dataclass
class CalibratedScore:
    method: str
    preset: str
    dataset: str
    scene: str
    n_views: int | None
    mode: str
    feature: str
    psnr: float
    psnr_noise: float | None
    psnr_oracle: float | None
    score: float | None
    note: str = ""  # why the score is undefined, or "partial" flags
    partial: bool = False


def _usable(r: JobRecord, metric: str) -> bool:
    return r.rankable and not r.baseline and r.metrics.get(metric) is not None


def _control_state(r: JobRecord | None, name: str, metric: str) -> str:
    """Why control ``name`` cannot calibrate ("" when it can)."""
    if r is None:
        return f"no finished {name} job"
    if r.random_weights:
        return f"{name} job has random weights"
    if not r.rankable:
        return f"{name} job is {r.status}"
    if r.metrics.get(metric) is None:
        return f"{name} {metric} is null"
    return ""


def calibrated_scores(records: list[JobRecord], metric: str = "PSNR",
                      min_margin: float = MIN_MARGIN_DB) -> list[CalibratedScore]:
    """One score per scored (scene, mode, feature) job whose method/preset ran at least one control anywhere
    (the controls themselves are the anchors, not scored). ``metric``: ``PSNR`` or ``PSNR_masked``."""
    finals = [r for r in final_records(records) if not r.baseline]
    combos_with_controls = {r.combo for r in finals if r.feature in CONTROLS}
    by_group: dict[tuple, dict[str, JobRecord]] = defaultdict(dict)
    for r in finals:
        by_group[(r.method, r.preset, r.dataset, r.scene, r.n_views, r.mode)][r.feature] = r
    out: list[CalibratedScore] = []
    for (method, preset, dataset, scene, n_views, mode), jobs in by_group.items():
        if (method, preset) not in combos_with_controls:
            continue
        noise, oracle = jobs.get(CONTROL_NOISE), jobs.get(CONTROL_ORACLE)
        problems = [p for p in (_control_state(noise, CONTROL_NOISE, metric),
                                _control_state(oracle, CONTROL_ORACLE, metric)) if p]
        lo = noise.metrics.get(metric) if noise is not None and not problems else None
        hi = oracle.metrics.get(metric) if oracle is not None and not problems else None
        if not problems and hi - lo < min_margin:
            problems.append(f"{CONTROL_ORACLE} beats {CONTROL_NOISE} by {hi - lo:.2f} dB (< {min_margin} dB)")
        partial_controls = [c.feature for c in (noise, oracle) if c is not None and c.status == STATUS_PARTIAL]
        for feature, r in jobs.items():
            if feature in CONTROLS or not _usable(r, metric):
                continue
            value = r.metrics[metric]
            score = None if problems else (value - lo) / (hi - lo)
            partial = r.status == STATUS_PARTIAL or bool(partial_controls and not problems)
            notes = list(problems)
            if not problems and partial:
                notes.append("some test views not scored (" + ", ".join(
                    ([feature] if r.status == STATUS_PARTIAL else []) + partial_controls) + ")")
            out.append(CalibratedScore(method, preset, dataset, scene, n_views, mode, feature, value,
                                       None if noise is None else noise.metrics.get(metric),
                                       None if oracle is None else oracle.metrics.get(metric),
                                       score, "; ".join(notes), partial))
    out.sort(key=lambda c: (c.method, c.preset, c.dataset, c.scene, c.n_views or 0, mode_sort_key(c.mode),
                            feature_sort_key(c.feature)))
    return out


@dataclass
class CalibratedSummary:
    method: str
    preset: str
    scope: str  # a dataset or "All"
    mode: str
    feature: str
    mean: float | None  # over the scenes where the score is defined
    n_defined: int
    n_scenes: int  # scenes where the feature was scored (defined or not)


def summarise(scores: list[CalibratedScore], all_label: str = "All") -> list[CalibratedSummary]:
    """Per (method, preset, dataset or all scenes, mode, feature): the mean of the defined scores, each scene
    weighing the same."""
    groups: dict[tuple, list[CalibratedScore]] = defaultdict(list)
    for c in scores:
        for scope in (c.dataset, all_label):
            groups[(c.method, c.preset, scope, c.mode, c.feature)].append(c)
    out = []
    for (method, preset, scope, mode, feature), grp in groups.items():
        defined = [c.score for c in grp if c.score is not None]
        out.append(CalibratedSummary(method, preset, scope, mode, feature,
                                     sum(defined) / len(defined) if defined else None, len(defined), len(grp)))
    out.sort(key=lambda s: (s.method, s.preset, s.scope == all_label, s.scope, mode_sort_key(s.mode),
                            feature_sort_key(s.feature)))
    return out
