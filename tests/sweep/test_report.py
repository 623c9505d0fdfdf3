import csv
import json

import pytest

from feat2gs.errors import Feat2GSError
from feat2gs.sweep import collect_jobs, display_name, report
from feat2gs.sweep.report import DEFAULT_PUBLISHED, load_published
from feat2gs.sweep.tables import rank_colour
from tests.sweep._tree import job_dir, write_job

FEATURES = {"radio": 19.5, "dust3r": 19.0, "iuvrgb": 15.0}


@pytest.fixture
def tree(tmp_path):
    """LLFF: 2 scenes, Casual: 1 scene; modes G/T; one job unfinished, one unreadable, one absent."""
    out = tmp_path / "out"
    for (dataset, scene) in [("LLFF", "fern"), ("LLFF", "trex"), ("Casual", "plant")]:
        for mode in ("G", "T"):
            for f, psnr in FEATURES.items():
                if (dataset, scene, mode, f) == ("LLFF", "trex", "G", "dust3r"):
                    write_job(out, dataset, scene, mode, f, results=False)  # unfinished
                    continue
                if (dataset, scene, mode, f) == ("Casual", "plant", "T", "iuvrgb"):
                    continue  # absent
                bonus = 1.0 if scene == "trex" else 0.0
                write_job(out, dataset, scene, mode, f, psnr=psnr + bonus, ssim=0.6 + psnr / 100,
                          lpips=0.5 - psnr / 100)
    bad = job_dir(out, "LLFF", "fern", 3, "G", "dust3r", "mae_b16")
    bad.mkdir(parents=True)
    (bad / "run.json").write_text("{ truncated")
    (bad / "results.json").write_text("{ truncated")
    return out


def test_collect_statuses(tree):
    records = collect_jobs(tree)
    status = {(r.scene, r.mode, r.feature): r.status for r in records}
    assert status[("trex", "G", "dust3r")] == "unfinished"
    assert status[("fern", "G", "mae_b16")] == "unreadable"
    assert status[("fern", "G", "radio")] == "ok"
    ok = next(r for r in records if r.status == "ok")
    assert ok.iteration == 8000 and ok.train_seconds == 12.5 and ok.n_gaussians == 1000 and ok.seed == 0
    with pytest.raises(Feat2GSError, match="no results"):
        collect_jobs(tree / "nope")


def test_report_outputs(tree, tmp_path):
    res = report(tree, tmp_path / "rep", published_csv=DEFAULT_PUBLISHED)
    rep = tmp_path / "rep"
    for name in ("jobs.csv", "missing.md", "report.md", "comparison.md", "comparison.csv",
                 "tables_dust3r@protocol.md", "latex/dust3r@protocol/All.tex", "latex/dust3r@protocol/LLFF.tex",
                 "plots/dust3r@protocol/bar_PSNR_G.png", "plots/dust3r@protocol/radar_radio.png"):
        assert (rep / name).is_file(), name
    assert (rep / "plots/dust3r@protocol/bar_PSNR_G.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(rep.rglob("*.tmp*"))
    rows = list(csv.DictReader((rep / "jobs.csv").open()))
    assert {r["status"] for r in rows} == {"ok", "unfinished", "unreadable"}
    assert len([r for r in rows if r["status"] == "ok"]) == res.n_complete == 3 * 2 * 3 - 2
    assert res.n_unfinished == 1 and res.n_unreadable == 1
    # mae_b16 only exists as an unreadable folder: it is part of the grid, so every other scene/mode is absent
    missing = (rep / "missing.md").read_text()
    assert "Casual | plant | 3 | T | iuvrgb" in missing and "unfinished" in missing and "unreadable" in missing

    all_t = res.tables["dust3r@protocol"]["All"]
    # radio G: 3 scenes, equal weight per scene: (19.5 + 20.5 + 19.5) / 3
    c = all_t.cell("radio", "G", "PSNR")
    assert c.n == c.expected == 3 and c.mean == pytest.approx(59.5 / 3)
    # dust3r G lacks trex: mean over 2 scenes, flagged
    c = all_t.cell("dust3r", "G", "PSNR")
    assert (c.n, c.expected) == (2, 3) and c.incomplete and c.mean == pytest.approx(19.0)
    assert all_t.ranks[("radio", "G", "PSNR")] == 1 and all_t.ranks[("iuvrgb", "G", "PSNR")] == 3
    assert all_t.ranks[("radio", "G", "LPIPS")] == 1  # lower is better
    assert all_t.mean_rank("radio", ["G"]) == 1.0
    md = all_t.to_markdown()
    assert "**19.83**" in md and "19.00\\*" in md and "DUSt3R G: 2/3 scenes" in md
    assert "DUSt3R" in md and "IUVRGB" in md and "| G rank |" in md and "Mean rank" in md
    tex = all_t.to_latex()
    assert "\\cellcolor[rgb]{0.565,0.753,0.376}\\textbf{19.83}" in tex  # rank 1 green, bold
    assert "\\cellcolor[rgb]{1.000,0.816,0.816}" in tex  # worst red
    assert "$^{*}$" in tex and "2/3 scenes" in tex and "\\begin{tabular}" in tex
    assert "{.7950}" in tex and "0.7950" not in tex  # SSIM/LPIPS with the leading 0 stripped, as the paper

    llff = res.tables["dust3r@protocol"]["LLFF"]
    assert llff.cell("radio", "G", "PSNR").mean == pytest.approx(20.0) and llff.cell("radio", "G", "PSNR").expected == 2

    cmp_rows = list(csv.DictReader((rep / "comparison.csv").open()))
    hit = next(r for r in cmp_rows if r["scope"] == "All" and r["display_name"] == "RADIO" and r["mode"] == "G"
               and r["metric"] == "PSNR")
    assert float(hit["published"]) == 19.73 and float(hit["delta"]) == pytest.approx(59.5 / 3 - 19.73, abs=1e-5)
    assert hit["published_table"] == "table2"
    llff_hit = next(r for r in cmp_rows if r["scope"] == "LLFF" and r["display_name"] == "IUVRGB"
                    and r["mode"] == "T" and r["metric"] == "SSIM")
    assert float(llff_hit["published"]) == 0.7303 and llff_hit["published_table"] == "table1"
    casual = next(r for r in cmp_rows if r["scope"] == "Casual" and r["display_name"] == "DUSt3R" and r["mode"] == "G")
    assert casual["complete"] == "True"
    assert "Spearman" in (rep / "comparison.md").read_text()


def test_null_lpips_and_random_weights(tmp_path):
    out = tmp_path / "out"
    write_job(out, "Synthetic", "blocks", "G", "iuvrgb", lpips=None, method="gt", preset="quick",
              random_weights=True)
    write_job(out, "Synthetic", "blocks", "G", "dino_b16-iuvrgb", method="gt", preset="quick")
    write_job(out, "Synthetic", "blocks", "G", "noise", lpips=None, method="gt", preset="quick")
    res = report(out, tmp_path / "rep", published_csv=DEFAULT_PUBLISHED)
    t = res.tables["gt@quick"]["All"]
    assert t.cell("noise", "G", "LPIPS") is None  # null is not averaged as 0
    assert t.cells[("noise", "G", "LPIPS")].n == 0 and t.cell("noise", "G", "PSNR") is not None
    # a random-weight job is never ranked, bolded or averaged into a ranked cell: it has a table of its own
    assert "iuvrgb" not in t.features and "DINO+IUVRGB" in t.to_markdown()
    rand = res.unranked["gt@quick"]["All"]
    assert rand.features == ["iuvrgb"] and not rand.ranks and rand.colour("iuvrgb", "G", "PSNR") is None
    md = rand.to_markdown()
    assert "| IUVRGB | 20.00† | .7000† | – |" in md  # marked, not bold
    assert "| Feature | G PSNR↑ | G SSIM↑ | G LPIPS↓ |" in md  # no rank column
    assert "random weights" in (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "tables_gt@quick_random_weights.md").is_file()
    # masked tables read the *_masked metrics
    res = report(out, tmp_path / "rep2", published_csv=None, masked=True, plots=False)
    assert res.unranked["gt@quick"]["All"].cell("iuvrgb", "G", "PSNR_masked").mean == pytest.approx(21.0)


def test_data_root_adds_expected_scenes(tmp_path):
    out = tmp_path / "out"
    write_job(out, "LLFF", "fern", "G", "radio")
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_split.json").write_text(json.dumps({"LLFF": {
        "fern": {"train": ["a", "b", "c"], "test": ["d"]}, "horns": {"train": ["a", "b", "c"], "test": []}},
        "DTU": {"scan1": {"train": ["a"], "test": []}}}))
    res = report(out, tmp_path / "rep", data_root=data, plots=False)
    c = res.tables["dust3r@protocol"]["LLFF"].cell("radio", "G", "PSNR")
    assert (c.n, c.expected) == (1, 2)
    assert "DTU" not in res.tables["dust3r@protocol"]
    assert "| LLFF | horns |" in (tmp_path / "rep" / "missing.md").read_text()


def test_published_csv_contents():
    pub = load_published(DEFAULT_PUBLISHED)
    assert len(pub) == 13 * 9 * 7
    assert pub[("All", "VGGTenc", "G", "PSNR")] == (19.75, "table2")
    assert pub[("All", "IUVRGB", "T", "SSIM")] == (0.6191, "table2")
    assert pub[("Tanks", "RADIO", "A", "LPIPS")] == (0.4109, "table1")
    assert pub[("MipNeRF360", "VGGTenc", "A", "PSNR")] == (21.17, "table1")
    assert {k[1] for k in pub} == {display_name(f) for f in ("vggt_e", "vggt_d", "dust3r", "mast3r", "midas_l16",
                                                           "dinov2_b14", "dino_b16", "sam_base", "clip_b16",
                                                           "radio", "mae_b16", "dift", "iuvrgb")}


def test_rank_colour_endpoints():
    assert rank_colour(0.0) == pytest.approx((0x90 / 255, 0xC0 / 255, 0x60 / 255))
    assert rank_colour(0.5) == pytest.approx((1.0, 0xF0 / 255, 0xD0 / 255))
    assert rank_colour(1.0) == pytest.approx((1.0, 0xD0 / 255, 0xD0 / 255))


def test_degenerate_partial_and_legacy_sentinel_jobs(tmp_path):
    out = tmp_path / "out"
    write_job(out, "LLFF", "fern", "G", "radio", psnr=19.0, extra={"status": "ok"})
    write_job(out, "LLFF", "fern", "G", "noise", psnr=18.0, extra={
        "status": "partial", "num_views_scored": 1, "status_reason": "1 of 2 test views not scored"})
    write_job(out, "LLFF", "fern", "G", "dust3r", psnr=None, ssim=None, lpips=None, extra={
        "status": "degenerate", "status_reason": "no test view could be scored (only 0.00% visible)"})
    # written by an older version: an empty mask scored as PSNR 200 / SSIM 1 (must never be ranked best)
    write_job(out, "LLFF", "fern", "G", "iuvrgb", psnr=200.0, ssim=1.0, extra={"mask_fraction": 0.0})
    res = report(out, tmp_path / "rep", published_csv=None, plots=False)
    t = res.tables["dust3r@protocol"]["All"]
    assert t.features == ["radio", "noise"]  # paper order; degenerate and sentinel jobs are not in the table
    assert t.ranks[("radio", "G", "PSNR")] == 1 and t.cell("noise", "G", "PSNR").partial
    md = t.to_markdown()
    assert "18.00‡" in md and "some test views not scored" in md and "200" not in md
    assert res.n_degenerate == 2 and "dust3r" not in str(res.unranked)
    rows = {r["feature"]: r for r in csv.DictReader((tmp_path / "rep" / "jobs.csv").open())}
    assert (rows["dust3r"]["status"], rows["iuvrgb"]["status"], rows["noise"]["status"]) == (
        "degenerate", "degenerate", "partial")
    assert "older feat2gs" in rows["iuvrgb"]["error"] and rows["noise"]["num_views_scored"] == "1"
    missing = (tmp_path / "rep" / "missing.md").read_text()
    assert "2 degenerate" in missing and "| degenerate | `LLFF/fern/3_views/feat2gs-G/dust3r/dust3r` |" in missing
    assert "Degenerate jobs** (2)" in (tmp_path / "rep" / "report.md").read_text()


def test_legacy_nan_values_are_not_measurements(tmp_path):
    out = tmp_path / "out"
    d = write_job(out, "LLFF", "fern", "G", "radio")
    (d / "results.json").write_text('{"ours_8000": {"PSNR": 21.0, "SSIM": 0.7, "LPIPS": null, '
                                    '"PSNR_masked": NaN, "SSIM_masked": Infinity, "LPIPS_masked": null}}')
    rec = next(r for r in collect_jobs(out) if r.feature == "radio")
    assert rec.metrics["PSNR"] == 21.0 and rec.metrics["PSNR_masked"] is None and rec.metrics["SSIM_masked"] is None


def test_met3r_of_trajectory_videos_is_tabled_and_random_weight_scores_are_not(tmp_path):
    out = tmp_path / "out"
    for feature, score, random in (("radio", 0.12, False), ("dust3r", 0.30, False), ("iuvrgb", 0.01, True)):
        d = write_job(out, "LLFF", "fern", "G", feature)
        (d / "videos").mkdir()
        (d / "videos" / "fern_3_view_arc_met3r.json").write_text(json.dumps(
            {"mean": score, "n_pairs": 10, "n_scored": 10, "random_weights": random}))
    report(out, tmp_path / "rep", published_csv=None, plots=False)
    rows = {r["feature"]: r for r in csv.DictReader((tmp_path / "rep" / "jobs.csv").open())}
    assert rows["radio"]["MET3R"] == "0.12" and rows["iuvrgb"]["MET3R"] == ""  # a random-weight score is no value
    md = (tmp_path / "rep" / "met3r_dust3r@protocol.md").read_text()
    assert "| RADIO | **0.1200** | 1.0 |" in md and "| DUSt3R | 0.3000 | 2.0 |" in md  # lower is better
    assert "MET3R" in (tmp_path / "rep" / "report.md").read_text()
