"""``demo_command``: options reach the settings, bad options and a missing gradio are one clear message."""

from __future__ import annotations

import sys

import pytest
import typer
from typer.testing import CliRunner

from feat2gs.demo import cli as demo_cli
from feat2gs.demo.settings import DemoError
from feat2gs.errors import ConfigError, Feat2GSError


@pytest.fixture(autouse=True)
def _gradio_env(monkeypatch, tmp_path):
    """demo_command sets these with setdefault; set them here so they are restored after each test."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def _app():
    app = typer.Typer()
    app.command()(demo_cli.demo_command)
    return app


def test_options_reach_the_server(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(demo_cli, "require_gradio", lambda: None)  # runs without the demo extra too
    monkeypatch.setattr(demo_cli, "serve", lambda settings, host, port, block=True: seen.update(
        settings=settings, host=host, port=port, block=block))
    result = CliRunner().invoke(_app(), ["--host", "0.0.0.0", "--port", "7999", "--cache-dir", str(tmp_path),
                                         "--random-weights", "--preset", "protocol", "--set", "init.image_size=64",
                                         "--max-images", "5", "--max-age-hours", "2", "--max-jobs", "2"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (seen["host"], seen["port"], seen["block"]) == ("0.0.0.0", 7999, True)
    assert (s.cache_dir, s.preset, s.random_weights) == (tmp_path, "protocol", True)
    assert s.overrides == ("init.image_size=64",)
    assert (s.limits.max_images, s.limits.max_age_hours, s.max_jobs) == (5, 2.0, 2)


def test_default_preset_is_quick_without_cuda(monkeypatch, tmp_path):
    import torch

    seen = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(demo_cli, "require_gradio", lambda: None)
    monkeypatch.setattr(demo_cli, "serve", lambda settings, host, port, block=True: seen.update(settings=settings))
    result = CliRunner().invoke(_app(), ["--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["settings"].preset == "quick" and seen["settings"].random_weights is False


@pytest.mark.parametrize("args, error, message", [
    (["--preset", "fast"], DemoError, "--preset fast"),
    (["--set", "train.iterations=-1"], ConfigError, "train.iterations"),
    (["--max-images", "1"], DemoError, "max_images"),
    (["--max-jobs", "0"], DemoError, "--max-jobs"),
])
def test_bad_options_fail_before_serving(tmp_path, args, error, message):
    result = CliRunner().invoke(_app(), ["--cache-dir", str(tmp_path)] + args)
    assert isinstance(result.exception, error) and message in str(result.exception)
    assert "\n" not in str(result.exception)


def test_missing_gradio_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(Feat2GSError, match=r'pip install -e "\.\[demo\]"'):
        demo_cli.require_gradio()
    result = CliRunner().invoke(_app(), ["--cache-dir", str(tmp_path)])
    assert isinstance(result.exception, DemoError) and "[demo]" in str(result.exception)


def test_a_taken_port_is_one_clear_message(tmp_path):
    pytest.importorskip("gradio", reason="gradio is the demo extra: pip install -e '.[demo]'")
    import socket

    from tests.demo._demo import tiny_settings

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match=f"cannot serve on 127.0.0.1:{port}"):
            demo_cli.serve(tiny_settings(tmp_path), "127.0.0.1", port, block=False)
