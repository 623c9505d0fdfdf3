"""Report additions: TOPSIS, calibrated probe scores, Feat2GS-G vs InstantSplat, 3D metrics and pose accuracy."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from feat2gs.sweep import collect_jobs, report
from feat2gs.sweep.calibration import MIN_MARGIN_DB, calibrated_scores
from feat2gs.sweep.topsis import topsis
from tests.sweep._tree import write_job


def _rows(path):
    return list(csv.DictReader(path.open()))


def write_instantsplat(out, dataset, scene, psnr, ssim=0.66, lpips=0.41, method="gt", n=3, preset="protocol"):
    """An InstantSplat job folder as the baseline writes it: no feature level, results at ours_7000."""
    folder = "instantsplat" if preset == "protocol" else f"instantsplat@{preset}"
    d = out / "eval" / dataset / scene / f"{n}_views" / folder / method
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"dataset": dataset, "scene": scene, "n_views": n, "mode": "instantsplat",
                                            "method": method, "feature": "instantsplat", "preset": preset}))
    (d / "results.json").write_text(json.dumps({"ours_7000": {"PSNR": psnr, "SSIM": ssim, "LPIPS": lpips,
                                                              "num_views": 2, "pose": None,
                                                              "pose_note": "no ground-truth poses"}}))
    return d


# TOPSIS ------------------------------------------------------------------------------------------------------
def test_topsis_hand_computed():
    """Columns chosen so the vector norms are round: PSNR (0, 3, 4) / 5, SSIM (.6, .8, 0) / 1, LPIPS (.2, .4, .4) / .6
    -> normalised rows A (0, .6, 1/3), B (.6, .8, 2/3), C (.8, 0, 2/3). Ideal best (.8, .8, 1/3) (LPIPS a cost),
    worst (0, 0, 2/3). Equal weights scale S⁺ and S⁻ alike, so C = S⁻/(S⁺+S⁻) is the same unweighted:
    A: S⁺ = √(.64+.04) = √153/15, S⁻ = √(.36+1/9) = √106/15;  B: S⁺ = √(.04+1/9) = √34/15, S⁻ = √(.36+.64) = 1;
    C: S⁺ = √(.64+1/9) = 13/15, S⁻ = √.64 = 12/15."""
    scores, ranks = topsis([[0.0, 0.6, 0.2], [3.0, 0.8, 0.4], [4.0, 0.0, 0.4]], [True, True, False])
    expected = [math.sqrt(106) / (math.sqrt(153) + math.sqrt(106)), 15 / (15 + math.sqrt(34)), 12 / 25]
    assert scores == pytest.approx(expected, rel=1e-12)  # float64 arithmetic on 3x3 numbers: ~1e-16 relative error
    assert ranks == [3, 1, 2]
    # the reference's rank formula gives the same ranks (no ties here)
    c = np.array(scores)
    assert list(len(c) - np.argsort(np.argsort(c))) == ranks
    # the direction of each column is used: equal PSNR/SSIM, the lower LPIPS wins as a cost, loses as a benefit
    assert topsis([[20.0, 0.7, 0.2], [20.0, 0.7, 0.4]], [True, True, False]) == ([1.0, 0.0], [1, 2])
    assert topsis([[20.0, 0.7, 0.2], [20.0, 0.7, 0.4]], [True, True, True]) == ([0.0, 1.0], [2, 1])


def test_topsis_undefined_and_ties():
    assert topsis([[20.0, 0.7, 0.3]], [True, True, False]) == ([None], [None])  # nothing to compare with
    assert topsis([[20.0, 0.7, 0.3]] * 3, [True, True, False]) == ([None] * 3, [None] * 3)  # all equal: 0/0
    scores, ranks = topsis([[20.0, 0.7, 0.3], [20.0, 0.7, 0.3], [18.0, 0.6, 0.4]], [True, True, False])
    assert scores == [1.0, 1.0, 0.0] and ranks == [1, 1, 3]  # best on every criterion: S⁺ = 0 -> C = 1


def test_topsis_in_the_report_with_null_rules(tmp_path):
    out = tmp_path / "out"
    for scene in ("fern", "trex"):
        write_job(out, "LLFF", scene, "G", "radio", psnr=20.0, ssim=0.75, lpips=0.25)
        write_job(out, "LLFF", scene, "G", "dust3r", psnr=19.0, ssim=0.72, lpips=0.28)
        write_job(out, "LLFF", scene, "G", "iuvrgb", psnr=15.0, ssim=0.62, lpips=0.45)
        write_job(out, "LLFF", scene, "G", "mae_b16", psnr=30.0, ssim=0.95, lpips=0.05, random_weights=True)
        write_job(out, "LLFF", scene, "G", "dino_b16", psnr=None, ssim=None, lpips=None,
                  extra={"status": "degenerate"})
        # T: one feature without LPIPS while the others have it
        write_job(out, "LLFF", scene, "T", "radio", psnr=18.0, ssim=0.70, lpips=0.30)
        write_job(out, "LLFF", scene, "T", "dust3r", psnr=17.0, ssim=0.69, lpips=0.31)
        write_job(out, "LLFF", scene, "T", "iuvrgb", psnr=19.0, ssim=0.71, lpips=None)
        # LPIPS disabled for a whole method/preset
        write_job(out, "LLFF", scene, "G", "radio", psnr=20.0, ssim=0.70, lpips=None, preset="quick")
        write_job(out, "LLFF", scene, "G", "iuvrgb", psnr=16.0, ssim=0.75, lpips=None, preset="quick")
    res = report(out, tmp_path / "rep", published_csv=None, plots=False)
    rows = {(r["combo"], r["scope"], r["mode"], r["feature"]): r for r in _rows(tmp_path / "rep" / "topsis.csv")}
    g = {f: rows[("dust3r@protocol", "LLFF", "G", f)] for f in ("radio", "dust3r", "iuvrgb")}
    expected, ranks = topsis([[20.0, 0.75, 0.25], [19.0, 0.72, 0.28], [15.0, 0.62, 0.45]], [True, True, False])
    assert [float(g[f]["score"]) for f in ("radio", "dust3r", "iuvrgb")] == pytest.approx(expected, abs=1e-6)
    assert [int(g[f]["rank"]) for f in ("radio", "dust3r", "iuvrgb")] == ranks == [1, 2, 3]
    assert g["radio"]["criteria"] == "PSNR/SSIM/LPIPS" and g["radio"]["n_ranked"] == "3"
    # random weights and degenerate jobs never enter (mae_b16 would be best by far)
    assert not any(k[3] in ("mae_b16", "dino_b16") for k in rows)
    # T: iuvrgb lacks LPIPS while the others have it -> not ranked, the other two on three criteria
    t = {f: rows[("dust3r@protocol", "LLFF", "T", f)] for f in ("radio", "dust3r", "iuvrgb")}
    assert t["iuvrgb"]["score"] == "" and t["iuvrgb"]["rank"] == "" and "LPIPS missing" in t["iuvrgb"]["note"]
    assert (t["radio"]["rank"], t["dust3r"]["rank"], t["radio"]["n_ranked"]) == ("1", "2", "2")
    # LPIPS disabled everywhere: PSNR/SSIM with weights 1/2, said so
    q = {f: rows[("dust3r@quick", "All", "G", f)] for f in ("radio", "iuvrgb")}
    expected, _ = topsis([[20.0, 0.70], [16.0, 0.75]], [True, True])
    assert q["radio"]["criteria"] == "PSNR/SSIM"
    assert [float(q[f]["score"]) for f in ("radio", "iuvrgb")] == pytest.approx(expected, abs=1e-6)
    md = (tmp_path / "rep" / "topsis.md").read_text()
    assert "ranked on PSNR/SSIM only (weights 1/2)" in md and "| RADIO | 1.0000 (1) |" in md
    assert res.topsis and all(e.score is None or 0.0 <= e.score <= 1.0 for e in res.topsis)


# calibrated scores ---------------------------------------------------------------------------------------------
def _controls(out, dataset, scene, noise, oracle, mode="G", **kw):
    if noise is not None:
        write_job(out, dataset, scene, mode, "noise", psnr=noise, **kw)
    if oracle is not None:
        write_job(out, dataset, scene, mode, "oracle_xyz", psnr=oracle, **kw)


def test_calibrated_scores_defined_and_undefined(tmp_path):
    out = tmp_path / "out"
    _controls(out, "LLFF", "fern", 15.0, 20.0)
    write_job(out, "LLFF", "fern", "G", "iuvrgb", psnr=17.0)  # (17-15)/(20-15) = 0.4
    write_job(out, "LLFF", "fern", "G", "radio", psnr=21.0)  # (21-15)/5 = 1.2: better than the oracle, not clipped
    _controls(out, "LLFF", "trex", 16.0, 21.0)
    write_job(out, "LLFF", "trex", "G", "iuvrgb", psnr=19.5)  # 3.5/5 = 0.7
    write_job(out, "LLFF", "trex", "G", "radio", psnr=15.0)  # -1/5 = -0.2: worse than noise
    _controls(out, "LLFF", "horns", 16.0, 16.0 + MIN_MARGIN_DB / 2)  # the oracle barely beats noise: undefined
    write_job(out, "LLFF", "horns", "G", "iuvrgb", psnr=16.1)
    _controls(out, "Casual", "plant", 14.0, None)  # no oracle job
    write_job(out, "Casual", "plant", "G", "iuvrgb", psnr=15.0)
    _controls(out, "Casual", "xbox", 14.0, None)
    write_job(out, "Casual", "xbox", "G", "oracle_xyz", psnr=25.0, random_weights=True)  # never a control
    write_job(out, "Casual", "xbox", "G", "iuvrgb", psnr=15.0)
    _controls(out, "Casual", "erhai", 14.0, None)
    write_job(out, "Casual", "erhai", "G", "oracle_xyz", psnr=None, ssim=None, lpips=None,
              extra={"status": "degenerate"})
    write_job(out, "Casual", "erhai", "G", "iuvrgb", psnr=15.0)
    write_job(out, "LLFF", "fern", "G", "dust3r", psnr=30.0, random_weights=True)  # never scored
    write_job(out, "LLFF", "fern", "G", "mast3r", psnr=None, ssim=None, lpips=None, extra={"status": "degenerate"})
    write_job(out, "LLFF", "fern", "G", "radio", psnr=18.0, method="mast3r")  # no controls for mast3r: no rows

    scores = {(c.scene, c.feature): c for c in calibrated_scores(collect_jobs(out))}
    assert scores[("fern", "iuvrgb")].score == pytest.approx(0.4, abs=1e-12)  # exact decimals up to float rounding
    assert scores[("fern", "radio")].score == pytest.approx(1.2, abs=1e-12)
    assert scores[("trex", "iuvrgb")].score == pytest.approx(0.7, abs=1e-12)
    assert scores[("trex", "radio")].score == pytest.approx(-0.2, abs=1e-12)
    assert scores[("horns", "iuvrgb")].score is None and "(< 0.5 dB)" in scores[("horns", "iuvrgb")].note
    assert scores[("plant", "iuvrgb")].score is None and "no finished oracle_xyz job" in scores[("plant", "iuvrgb")].note
    assert "oracle_xyz job has random weights" in scores[("xbox", "iuvrgb")].note
    assert "oracle_xyz job is degenerate" in scores[("erhai", "iuvrgb")].note
    # the controls are the anchors (not scored); random-weight, degenerate and control-less jobs give no row
    assert not {("fern", "noise"), ("fern", "oracle_xyz"), ("fern", "dust3r"), ("fern", "mast3r")} & set(scores)
    assert all(c.method == "dust3r" for c in scores.values())

    res = report(out, tmp_path / "rep", published_csv=None, plots=False)
    rep = tmp_path / "rep"
    summary = {(r["scope"], r["feature"]): r for r in _rows(rep / "calibrated_summary.csv")}
    llff = summary[("LLFF", "iuvrgb")]  # fern 0.4, trex 0.7 defined, horns undefined
    assert float(llff["mean"]) == pytest.approx(0.55, abs=1e-6) and (llff["n_defined"], llff["n_scenes"]) == ("2", "3")
    casual = summary[("Casual", "iuvrgb")]
    assert casual["mean"] == "" and (casual["n_defined"], casual["n_scenes"]) == ("0", "3")  # null, never 0
    assert summary[("All", "iuvrgb")]["n_scenes"] == "6" and float(summary[("All", "iuvrgb")]["mean"]) == \
        pytest.approx(0.55, abs=1e-6)  # each scene weighs the same; undefined scenes do not count
    per_scene = _rows(rep / "calibrated.csv")
    horns = next(r for r in per_scene if r["scene"] == "horns")
    assert horns["calibrated"] == "" and "0.25 dB" in horns["note"] and horns["noise"] == "16.0"
    md = (rep / "calibrated.md").read_text()
    assert "0 = no better than noise, 1 = as good as perfect geometry" in md and "undefined" in md
    assert "| IUVRGB | – (0/3) | 0.550 (2/3) | 0.550 (2/6) |" in md and "LLFF/horns G: oracle_xyz beats noise by 0.25 dB" in md
    assert "Calibrated probe scores" in (rep / "report.md").read_text()
    assert len(res.calibrated) == len(per_scene) == 8


def test_small_control_sweep_has_topsis_and_calibrated_scores(tmp_path):
    """The acceptance sweep: noise, iuvrgb and oracle_xyz on two scenes, modes G and T."""
    out = tmp_path / "out"
    for scene, bonus in (("fern", 0.0), ("trex", 1.0)):
        for mode in ("G", "T"):
            for f, p in (("noise", 15.0), ("iuvrgb", 17.0), ("oracle_xyz", 20.0)):
                write_job(out, "LLFF", scene, mode, f, psnr=p + bonus, ssim=0.5 + p / 100, lpips=0.6 - p / 100,
                          method="gt", preset="quick")
    report(out, tmp_path / "rep", published_csv=None, plots=False)
    rep = tmp_path / "rep"
    index = (rep / "report.md").read_text()
    assert "## TOPSIS" in index and "## Calibrated probe scores" in index
    ranks = {(r["mode"], r["feature"]): r["rank"] for r in _rows(rep / "topsis.csv") if r["scope"] == "All"}
    assert ranks == {(m, f): rk for m in ("G", "T") for f, rk in (("oracle_xyz", "1"), ("iuvrgb", "2"),
                                                                  ("noise", "3"))}
    cal = _rows(rep / "calibrated.csv")
    # (17 + b - (15 + b)) / (20 + b - (15 + b)) = 0.4 on both scenes and modes
    assert len(cal) == 4 and all(float(r["calibrated"]) == pytest.approx(0.4, abs=1e-6) for r in cal)


# InstantSplat, 3D metrics, pose -----------------------------------------------------------------------------
def test_instantsplat_comparison(tmp_path):
    out = tmp_path / "out"
    for scene in ("fern", "trex"):
        write_job(out, "LLFF", scene, "G", "radio", psnr=20.0, ssim=0.75, lpips=0.25, method="gt")
        write_job(out, "LLFF", scene, "G", "iuvrgb", psnr=15.0, ssim=0.62, lpips=0.45, method="gt")
        write_job(out, "LLFF", scene, "T", "radio", psnr=18.0, method="gt")
    write_instantsplat(out, "LLFF", "fern", 18.0)
    write_job(out, "LLFF", "fern", "G", "radio", psnr=19.0, method="dust3r")  # dust3r ran no InstantSplat
    res = report(out, tmp_path / "rep", published_csv=None, plots=False)
    rep = tmp_path / "rep"
    assert set(res.baseline) == {"gt@protocol"}
    t = res.baseline["gt@protocol"]["All"]
    assert t.features == ["radio", "iuvrgb", "instantsplat"] and t.modes == ["G"]
    c = t.cell("instantsplat", "G", "PSNR")
    assert c.mean == 18.0 and (c.n, c.expected) == (1, 2)  # trex has no InstantSplat job: flagged, not hidden
    assert t.ranks[("instantsplat", "G", "PSNR")] == 2 and t.ranks[("radio", "G", "PSNR")] == 1
    md = (rep / "instantsplat_gt@protocol.md").read_text()
    assert "| InstantSplat | 18.00\\* | .6600\\* | .4100\\* |" in md
    tex = (rep / "latex" / "gt@protocol" / "instantsplat_All.tex").read_text()
    assert tex.count("\nInstantSplat & ") == 1 and "\nRADIO & \\cellcolor[rgb]{0.565,0.753,0.376}\\textbf{20.00}" in tex
    # never a feature of the regular tables, never in TOPSIS
    assert "instantsplat" not in res.tables["gt@protocol"]["All"].features
    assert not any(e.feature == "instantsplat" for e in res.topsis)
    jobs = {r["feature"]: r for r in _rows(rep / "jobs.csv") if r["method"] == "gt" and r["scene"] == "fern"
            and r["mode"] in ("instantsplat",)}
    assert jobs["instantsplat"]["display_name"] == "InstantSplat" and jobs["instantsplat"]["iteration"] == "7000"
    assert jobs["instantsplat"]["pose_note"] == "no ground-truth poses" and jobs["instantsplat"]["ATE"] == ""
    missing = (rep / "missing.md").read_text()
    assert "| gt@protocol | LLFF | trex | 3 | instantsplat | instantsplat |" in missing
    assert "| instantsplat | radio |" not in missing and "| G | instantsplat |" not in missing
    # trex's InstantSplat job, T iuvrgb on both scenes (gt grid), trex G radio (dust3r grid)
    assert res.n_absent == 4


def test_3d_metrics_and_pose(tmp_path):
    out = tmp_path / "out"
    for scene, acc in (("scan1", 0.004), ("scan2", 0.006)):
        for f, scale, rw in (("radio", 1.0, False), ("iuvrgb", 2.0, False), ("mae_b16", 0.1, True)):
            pose = {"ATE": 0.01 * scale, "RPE_trans": 0.02 * scale, "RPE_rot": 0.5 * scale,
                    "initial": {"ATE": 0.05, "RPE_trans": 0.06, "RPE_rot": 2.0}}
            d = write_job(out, "DTU", scene, "G", f, method="gt", random_weights=rw, extra={"pose": pose})
            (d / "3d_metrics.json").write_text(json.dumps({
                "ours_8000": {"threshold_0.0": {"Accuracy": acc * scale, "Acc_med": 0.001, "Completion": 0.003 * scale,
                                                "Comp_med": None, "Distance": 0.002 * scale, "Dist_med": 0.001}},
                "initial": {"threshold_0.0": {"Accuracy": 0.01, "Acc_med": 0.005, "Completion": 0.02,
                                              "Comp_med": 0.01, "Distance": 0.015, "Dist_med": 0.007}}}))
    d = write_job(out, "DTU", "scan1", "G", "dust3r", method="gt", extra={"pose": None, "pose_note": "1 view"})
    (d / "3d_metrics.json").write_text("{ truncated")
    write_job(out, "LLFF", "fern", "G", "radio", method="dust3r")  # no 3D metrics, no pose: no such tables
    res = report(out, tmp_path / "rep", published_csv=None, plots=False)
    rep = tmp_path / "rep"
    assert set(res.tables3d) == {"gt@protocol"} and set(res.pose) == {"gt@protocol"}
    t3 = res.tables3d["gt@protocol"]["All"]
    # ×1000 and averaged over the two scans: radio Acc (4 + 6) / 2 = 5, iuvrgb twice that
    assert t3.cell("radio", "G", "Acc").mean == pytest.approx(5.0) and t3.cell("iuvrgb", "G", "Acc").mean == \
        pytest.approx(10.0)
    assert t3.ranks[("radio", "G", "Acc")] == 1 and t3.ranks[("iuvrgb", "G", "Acc")] == 2  # lower is better
    assert "mae_b16" not in t3.features  # random weights are never ranked
    assert "dust3r" not in t3.features  # its 3d_metrics.json does not read: no 3D values, job still ok
    md = (rep / "metrics3d_gt@protocol.md").read_text()
    assert "| RADIO | **5.000** | **3.000** | **2.000** | 1.0 |" in md and "Acc↓" in md and "×1000" in md
    assert "initial (step-1 point cloud), not ranked" in md and "| RADIO | 10.000 | 20.000 | 15.000 |" in md
    assert (rep / "latex" / "gt@protocol" / "metrics3d_All.tex").is_file()
    tp = res.pose["gt@protocol"]["All"]
    assert tp.cell("radio", "G", "RPE_rot").mean == pytest.approx(0.5) and tp.ranks[("radio", "G", "ATE")] == 1
    assert "dust3r" not in tp.features  # pose null: nothing to table
    pmd = (rep / "pose_gt@protocol.md").read_text()
    assert "| RADIO | **0.0100** | **0.0200** | **0.500** | 1.0 |" in pmd and "RPE_rot: degrees" in pmd
    jobs = {(r["scene"], r["feature"]): r for r in _rows(rep / "jobs.csv")}
    radio = jobs[("scan1", "radio")]
    assert float(radio["Acc_x1000"]) == pytest.approx(4.0) and radio["Comp_med_x1000"] == ""  # null stays empty
    assert float(radio["Acc_initial_x1000"]) == pytest.approx(10.0) and float(radio["ATE"]) == 0.01
    assert float(radio["RPE_rot_initial"]) == 2.0 and radio["pose_note"] == ""
    dust = jobs[("scan1", "dust3r")]
    assert dust["status"] == "ok" and "3d_metrics.json" in dust["metrics3d_note"] and dust["Acc_x1000"] == ""
    assert dust["pose_note"] == "1 view" and dust["ATE"] == ""
    assert not (rep / "metrics3d_dust3r@protocol.md").exists() and not (rep / "pose_dust3r@protocol.md").exists()
