import typer
from typer.testing import CliRunner

from feat2gs.sweep.cli_commands import build_dataset_command, report_command
from tests.sweep._tree import write_job


def _app():
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("build-dataset")(build_dataset_command)
    return app


def test_commands_run(tmp_path, scene_root):
    write_job(tmp_path / "out", "LLFF", "fern", "G", "radio")
    runner = CliRunner()
    res = runner.invoke(_app(), ["report", str(tmp_path / "out"), str(tmp_path / "rep"), "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "1 complete" in res.output and (tmp_path / "rep" / "comparison.md").is_file()
    res = runner.invoke(_app(), ["build-dataset", "folder", str(scene_root / "Synthetic" / "blocks" / "images"),
                                 "-d", str(tmp_path / "data"), "--dataset", "D", "--scene", "s", "--test-every", "2"])
    assert res.exit_code == 0, res.output
    assert "2 train / 3 test views, 64x48" in res.output
