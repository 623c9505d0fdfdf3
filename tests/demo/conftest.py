"""Fixtures of the demo tests: photos to upload and a running demo server."""

from __future__ import annotations

import pytest

from tests.demo._demo import free_port, tiny_settings, write_photo


@pytest.fixture
def photos(tmp_path):
    """Three uploadable photos of one size, with awkward names."""
    folder = tmp_path / "incoming"
    return [write_photo(folder / "IMG 0001 (copy).JPG", seed=1, fmt="JPEG"),
            write_photo(folder / "ça va?.png", seed=2),
            write_photo(folder / "..hidden.jpeg", seed=3, fmt="JPEG")]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """A demo server (tiny preset) running in this process; yields (url, settings)."""
    pytest.importorskip("gradio", reason="gradio is the demo extra: pip install -e '.[demo]'")
    from feat2gs.demo.cli import serve

    settings = tiny_settings(tmp_path_factory.mktemp("demo_cache"))
    with pytest.MonkeyPatch.context() as env:  # what `serve` would set, restored afterwards
        env.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        env.setenv("GRADIO_TEMP_DIR", str(settings.cache_dir / "gradio"))
        app, url = serve(settings, "127.0.0.1", free_port(), block=False)
        try:
            yield url, settings
        finally:
            app.close()
