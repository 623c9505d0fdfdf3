"""Data shipped inside the package (found through ``importlib.resources``, so a wheel install has it too):
the published Feat2GS tables (``feat2gs_published.csv``, source in ``README.md`` here) and example sweep configs
(``sweeps/<name>.yaml``, usable by name: ``feat2gs sweep plan example``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(name: str) -> Path:
    """Path of a shipped file, e.g. ``feat2gs_published.csv`` or ``sweeps/example.yaml``."""
    return Path(str(resources.files(__name__).joinpath(name)))


def shipped_sweeps() -> list[str]:
    """Names of the example sweep configs (``feat2gs sweep plan <name>``)."""
    return sorted(p.name[:-5] for p in resources.files(__name__).joinpath("sweeps").iterdir()
                  if p.name.endswith(".yaml"))
