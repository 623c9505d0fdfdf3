"""``feat2gs demo``: start the gradio app (registered in feat2gs/cli.py as ``app.command("demo")(demo_command)``).

Bad options and a missing gradio raise :class:`feat2gs.errors.Feat2GSError` subclasses (one line each), which the
CLI's ``main`` prints without a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from feat2gs.demo.settings import DEMO_PRESETS, DemoError, DemoSettings, Limits, default_cache_dir

INSTALL_HINT = 'pip install -e ".[demo]"  (from a checkout; or: pip install "feat2gs[demo]")'


def require_gradio():
    """The gradio module, or a DemoError naming the install command."""
    try:
        import gradio
    except ImportError as exc:
        raise DemoError(f"the demo needs gradio, which is not installed ({exc.name or exc}); install the demo "
                        f"extra: {INSTALL_HINT}") from None
    return gradio


def prepare_environment(cache_dir: Path) -> None:
    """Before gradio is imported: no analytics calls (the server may be offline) and gradio's own upload cache
    under the demo's cache dir (unless GRADIO_TEMP_DIR is set)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(cache_dir) / "gradio"))


def default_preset() -> str:
    """protocol on a CUDA machine, quick elsewhere."""
    import torch

    return "protocol" if torch.cuda.is_available() else "quick"


def launch_kwargs(settings: DemoSettings, host: str, port: int | None) -> dict:
    from feat2gs.demo.app import CSS, theme

    return dict(server_name=host, server_port=port, allowed_paths=[str(Path(settings.cache_dir).resolve())],
                max_file_size=f"{settings.limits.max_file_mb:g}mb", show_error=True, ssr_mode=False,
                footer_links=["api", "settings"], theme=theme(), css=CSS, quiet=False)


def build(settings: DemoSettings):
    """Check the settings, clean up old sessions and build the Blocks app (queued)."""
    from feat2gs.demo.app import build_app
    from feat2gs.demo.sessions import cleanup_sessions

    prepare_environment(settings.cache_dir)
    require_gradio()
    settings.limits.check()
    settings.base_config()
    Path(settings.sessions_dir).mkdir(parents=True, exist_ok=True)
    cleanup_sessions(settings.sessions_dir, settings.limits.max_age_hours)
    app = build_app(settings)
    app.queue(default_concurrency_limit=max(1, settings.max_jobs))
    return app


def serve(settings: DemoSettings, host: str, port: int | None, block: bool = True):
    """Build and launch; ``block=False`` returns (app, local url) with the server running in a thread."""
    app = build(settings)
    try:
        _, url, _ = app.launch(prevent_thread_lock=not block, **launch_kwargs(settings, host, port))
    except OSError as exc:  # port taken, address not available
        app.close()
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DemoError(f"cannot serve on {host}:{port or 'default port'}: {first} (choose another --port or "
                        "--host)") from None
    return app, url


def demo_command(
    host: Annotated[str, typer.Option("--host", help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option("--port", help="port (default: 7860, or the next free one)")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="folder for the sessions' uploads, data and job outputs "
                            "(default: $FEAT2GS_DEMO_CACHE or ~/.cache/feat2gs/demo)")] = None,
    random_weights: Annotated[bool, typer.Option(
        "--random-weights", help="tick 'random weights' by default: networks run with RANDOM weights (tests the "
                                 "pipeline without downloads; results are flagged)")] = False,
    preset: Annotated[Optional[str], typer.Option(
        "--preset", help=f"settings preset: {' | '.join(DEMO_PRESETS)} (default: protocol with CUDA, else quick)")
    ] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="override any setting for every run: section.field=value (e.g. init.image_size=256)")] = None,
    max_images: Annotated[int, typer.Option("--max-images", help="most photos per scene")] = Limits.max_images,
    max_file_mb: Annotated[float, typer.Option("--max-file-mb", help="largest photo, MB")] = Limits.max_file_mb,
    max_age_hours: Annotated[float, typer.Option(
        "--max-age-hours", help="delete session folders unused for this long")] = Limits.max_age_hours,
    max_jobs: Annotated[int, typer.Option("--max-jobs", help="steps running at once; other users queue")] = 1,
) -> None:
    """Interactive demo (gradio): photos or the example scene -> step 1 -> 3DGS read-out -> video and metrics."""
    if max_jobs < 1:
        raise DemoError(f"--max-jobs {max_jobs}: expected >= 1")
    settings = DemoSettings(
        cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        preset=preset or default_preset(), random_weights=random_weights, overrides=tuple(set_ or ()),
        limits=Limits(max_images=max_images, max_file_mb=max_file_mb, max_age_hours=max_age_hours).check(),
        max_jobs=max_jobs)
    settings.base_config()  # a bad --preset or --set fails here, before anything starts
    prepare_environment(settings.cache_dir)
    require_gradio()
    from feat2gs import ui

    if random_weights:
        ui.warn("--random-weights: the page runs networks with random weights by default; results are flagged")
    ui.say(str(settings.cache_dir), "demo cache:")
    serve(settings, host, port, block=True)
