"""TOPSIS ranking of the features per (dataset, mode), as the reference's ``correlation_dataset_*_topsis.py``.

For one method/preset, one scope (a dataset or all scenes) and one mode, the decision matrix D holds a row per
feature with its scene means of PSNR, SSIM and LPIPS (the cells of the ranked table: trained weights, scored
jobs; random-weight and degenerate jobs never enter). Then, as the reference:

* vector normalisation ``N_ij = D_ij / sqrt(Σ_i D_ij²)`` (a column of zeros stays zero);
* weights 1/3 each; PSNR and SSIM are benefits (ideal best = the column's max), LPIPS a cost (ideal best = min);
  the ideal worst is the reverse;
* ``S⁺_i``, ``S⁻_i`` = Euclidean distances of the weighted row i to the ideal best and worst;
* score ``C_i = S⁻_i / (S⁺_i + S⁻_i)`` in [0, 1] (1 = the ideal best on every criterion);
* rank 1 = the highest score. Ties (equal scores to 12 digits) share the better rank; the reference's
  ``n − argsort(argsort(C))`` breaks them arbitrarily, otherwise the ranks are the same.

Null rules. A feature enters when its PSNR and SSIM means exist. If every entering feature also has an LPIPS mean,
the criteria are PSNR/SSIM/LPIPS with weights 1/3. If none has (LPIPS disabled, ``eval.lpips=false``), TOPSIS runs
on PSNR/SSIM with weights 1/2 each, and the output says so (``criteria``). If only some have, the criteria stay
PSNR/SSIM/LPIPS and the features without LPIPS are not ranked (score null, note "LPIPS missing"). The score is
undefined (null) for every feature when fewer than 2 features enter or when ``S⁺ + S⁻ = 0`` (all features equal on
every criterion): TOPSIS is a comparison and has nothing to compare then. Scores are relative to the features
ranked together: adding or removing a feature changes the others' scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from feat2gs.sweep.tables import HIGHER_IS_BETTER, Table, base_metric


def topsis(matrix: Sequence[Sequence[float]], benefit: Sequence[bool],
           weights: Sequence[float] | None = None) -> tuple[list[float | None], list[int | None]]:
    """Scores ``C_i`` and ranks (1 = best) of the rows of ``matrix`` [n, k]; ``benefit[j]``: higher is better in
    column j. Equal weights by default. Scores and ranks are None when ``n < 2`` or ``S⁺ + S⁻ = 0``."""
    D = np.asarray(matrix, dtype=np.float64)
    n = D.shape[0]
    if D.ndim != 2 or D.shape[1] != len(benefit) or not np.isfinite(D).all():
        raise ValueError(f"topsis: expected a finite [n, {len(benefit)}] matrix, got shape {D.shape}")
    if n < 2:
        return [None] * n, [None] * n
    w = np.full(D.shape[1], 1.0 / D.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    norm = np.sqrt((D ** 2).sum(axis=0))
    V = np.divide(D, norm, out=np.zeros_like(D), where=norm > 0) * w
    ben = np.asarray(benefit, dtype=bool)
    best = np.where(ben, V.max(axis=0), V.min(axis=0))
    worst = np.where(ben, V.min(axis=0), V.max(axis=0))
    s_plus = np.sqrt(((V - best) ** 2).sum(axis=1))
    s_minus = np.sqrt(((V - worst) ** 2).sum(axis=1))
    total = s_plus + s_minus
    scores: list[float | None] = [None if t <= 0 else float(m / t) for m, t in zip(s_minus, total)]
    if any(s is None for s in scores):
        return [None] * n, [None] * n
    rounded = [round(s, 12) for s in scores]
    ranks: list[int | None] = [1 + sum(1 for o in rounded if o > r) for r in rounded]
    return scores, ranks


@dataclass
class TopsisEntry:
    combo: str
    scope: str
    mode: str
    feature: str
    criteria: tuple[str, ...]  # the metrics used
    values: dict[str, float | None]  # scene means of the metrics (the decision-matrix row)
    score: float | None
    rank: int | None
    n_ranked: int  # features ranked together
    n_scenes: int  # scenes behind the feature's PSNR mean
    expected_scenes: int
    note: str = ""


def topsis_table(combo: str, scope: str, table: Table) -> list[TopsisEntry]:
    """TOPSIS per mode over the features of a ranked scene-mean table (see the module's null rules)."""
    if not table.ranked:
        raise ValueError("TOPSIS ranks only ranked tables (trained weights)")
    psnr, ssim, lpips = table.metrics[:3]
    out: list[TopsisEntry] = []
    for mode in table.modes:
        def mean(f: str, k: str) -> float | None:
            c = table.cell(f, mode, k)
            return c.mean if c is not None and math.isfinite(c.mean) else None

        present = [f for f in table.features if any((f, mode, k) in table.cells for k in table.metrics)]
        entering = [f for f in present if mean(f, psnr) is not None and mean(f, ssim) is not None]
        with_lpips = [f for f in entering if mean(f, lpips) is not None]
        if with_lpips or not entering:
            criteria, ranked = (psnr, ssim, lpips), with_lpips
        else:
            criteria, ranked = (psnr, ssim), entering
        scores, ranks = (topsis([[mean(f, k) for k in criteria] for f in ranked],
                                [HIGHER_IS_BETTER[base_metric(k)] for k in criteria]) if ranked else ([], []))
        result = dict(zip(ranked, zip(scores, ranks)))
        for f in present:
            score, rank = result.get(f, (None, None))
            if f not in entering:
                note = f"{base_metric(psnr)}/{base_metric(ssim)} mean missing"
            elif f not in result:
                note = f"{base_metric(lpips)} missing (others ranked on {base_metric(lpips)} too)"
            elif score is None:
                note = ("fewer than 2 features to compare" if len(ranked) < 2
                        else "all features equal on every criterion")
            else:
                note = ""
            cell = table.cells.get((f, mode, psnr))
            out.append(TopsisEntry(combo, scope, mode, f, criteria, {k: mean(f, k) for k in table.metrics},
                                   score, rank, len(ranked), cell.n if cell else 0, cell.expected if cell else 0,
                                   note))
    return out
