"""Server-wide settings of the demo, upload limits, and the per-run experiment config built from the page's inputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from feat2gs.config import ExperimentConfig, make_config
from feat2gs.errors import Feat2GSError

DEMO_PRESETS = ("quick", "protocol")


class DemoError(Feat2GSError):
    """A problem with what the user gave the demo (uploads, choices); the message is shown on the page."""


def default_cache_dir() -> Path:
    """``$FEAT2GS_DEMO_CACHE``, else ``$XDG_CACHE_HOME/feat2gs/demo`` (``~/.cache/feat2gs/demo``)."""
    if os.environ.get("FEAT2GS_DEMO_CACHE"):
        return Path(os.environ["FEAT2GS_DEMO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "feat2gs" / "demo"


@dataclass(frozen=True)
class Limits:
    """What one browser session may upload and run, and how long its folder is kept."""

    min_images: int = 2
    max_images: int = 16  # DUSt3R/MASt3R run every ordered pair: N(N-1) network calls
    max_file_mb: float = 25.0
    max_total_mb: float = 200.0
    max_megapixels: float = 40.0  # per image, checked from the header before decoding
    max_iterations: int = 30000
    max_age_hours: float = 24.0  # session folders unused for longer are deleted

    def check(self) -> "Limits":
        if self.min_images < 2:
            raise DemoError(f"min_images={self.min_images}: expected >= 2 (step 1 needs two views)")
        if self.max_images < self.min_images:
            raise DemoError(f"max_images={self.max_images}: expected >= min_images={self.min_images}")
        for name in ("max_file_mb", "max_total_mb", "max_megapixels", "max_age_hours"):
            if not getattr(self, name) > 0:
                raise DemoError(f"{name}={getattr(self, name)}: expected > 0")
        if self.max_iterations < 2:
            raise DemoError(f"max_iterations={self.max_iterations}: expected >= 2")
        return self


@dataclass(frozen=True)
class DemoSettings:
    """How the server runs jobs: cache dir, preset, random weights by default, extra ``--set`` overrides."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    preset: str = "quick"
    random_weights: bool = False  # default of the page's "random weights" box (flagged wherever it is used)
    overrides: tuple[str, ...] = ()  # section.field=value applied to every run, before the page's choices
    limits: Limits = field(default_factory=Limits)
    max_jobs: int = 1  # steps running at once (all sessions together); other requests wait in the queue

    def base_config(self) -> ExperimentConfig:
        """The preset with the server's overrides (validated: a bad ``--set`` fails when the server starts)."""
        if self.preset not in DEMO_PRESETS:
            raise DemoError(f"--preset {self.preset}: expected one of {', '.join(DEMO_PRESETS)}")
        return make_config(self.preset, list(self.overrides))

    @property
    def sessions_dir(self) -> Path:
        return Path(self.cache_dir) / "sessions"


@dataclass(frozen=True)
class RunChoices:
    """What the page asks for one run."""

    method: str
    feature: str
    mode: str
    iterations: int | None = None  # None: the preset's
    trajectory: str | None = None
    depth_normal: bool = False
    random_weights: bool = False


def run_config(settings: DemoSettings, choices: RunChoices) -> tuple[ExperimentConfig, list[str]]:
    """The validated config of one run and notes for the page (e.g. a shortened warm start).

    The iteration count includes the warm start (as ``train.iterations``); when it is not larger than the
    preset's warm start, the warm start becomes half of it so that some photometric training remains.
    """
    base = settings.base_config()
    overrides = list(settings.overrides) + [f"init.method={choices.method}"]
    notes: list[str] = []
    if choices.iterations is not None:
        iterations = int(choices.iterations)
        if not 2 <= iterations <= settings.limits.max_iterations:
            raise DemoError(f"iterations {iterations}: expected 2 to {settings.limits.max_iterations}")
        overrides.append(f"train.iterations={iterations}")
        if base.train.warm_iterations >= iterations:
            warm = iterations // 2
            overrides.append(f"train.warm_iterations={warm}")
            notes.append(f"warm start shortened to {warm} of {iterations} iterations "
                         f"(the preset's is {base.train.warm_iterations})")
    if choices.trajectory:
        overrides.append(f"video.trajectory={choices.trajectory}")
    if choices.depth_normal:
        overrides.append("video.depth_normal=true")
    if choices.random_weights:
        overrides.append("init.random_weights=true")
    return make_config(settings.preset, overrides), notes
