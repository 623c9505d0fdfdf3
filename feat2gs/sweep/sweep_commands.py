"""Typer command functions for ``feat2gs sweep plan`` and ``feat2gs sweep run``.

Register in feat2gs/cli.py::

    from feat2gs.sweep.sweep_commands import sweep_app
    app.add_typer(sweep_app, name="sweep")

Bad configs raise :class:`feat2gs.errors.Feat2GSError` subclasses, which the CLI's ``main`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from feat2gs.ui import Quiet, Verbose, configure_logging
from rich.table import Table

ConfigPath = Annotated[Path, typer.Argument(
    help="sweep config YAML, or the name of a shipped one (example, feat2gs_benchmark)")]


def sweep_plan_command(
    config: ConfigPath,
    units: Annotated[bool, typer.Option("--units/--no-units", help="also list the step-1 units")] = True,
    verbose: Verbose = 0, quiet: Quiet = False,
) -> None:
    """Validate a sweep config and print its job matrix with the status of each job."""
    configure_logging(verbose, quiet)
    from feat2gs.data.layout import SceneLayout
    from feat2gs.init.step import step1_ready
    from feat2gs.sweep.config import load_sweep_config
    from feat2gs.sweep.plan import init_units, job_status, plan

    cfg = load_sweep_config(config)
    jobs = plan(cfg)
    console = Console(soft_wrap=True, highlight=False)
    colours = {"done": "green", "partial": "yellow", "pending": "white"}
    table = Table("#", "mode", "dataset", "scene", "N", "method", "feature", "status",
                  title=f"{config}: {len(jobs)} job(s), preset {cfg.preset}, output {cfg.output_root}")
    counts: dict[str, int] = {}
    for i, job in enumerate(jobs, 1):
        status = job_status(job)
        counts[status] = counts.get(status, 0) + 1
        table.add_row(str(i), job.mode, job.dataset, job.scene, str(job.n_views), job.method, job.feature,
                      f"[{colours[status]}]{status}[/{colours[status]}]")
    console.print(table)
    step1 = init_units(jobs)
    n_valid = 0
    if units:
        utable = Table("#", "dataset", "scene", "method", "feature", "step 1", title=f"{len(step1)} step-1 unit(s)")
    for i, unit in enumerate(step1, 1):
        init_cfg = unit.config().init
        layout = SceneLayout.open(unit.data_root, unit.dataset, unit.scene)
        valid = step1_ready(layout, init_cfg, unit.feature)
        n_valid += valid
        if units:
            utable.add_row(str(i), unit.dataset, unit.scene, unit.method, unit.feature,
                           "[green]done[/green]" if valid else "pending")
    if units:
        console.print(utable)
    console.print(f"jobs: {len(jobs)} ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); "
                  f"step-1 units: {len(step1)} ({n_valid} done)")


def sweep_run_command(
    config: ConfigPath,
    executor: Annotated[str, typer.Option("--executor", "-e", help="local (process pool on slots) | slurm")] = "local",
    slots: Annotated[int, typer.Option("--slots", help="local: parallel jobs (spread over the GPUs if any)")] = 1,
    gpus: Annotated[Optional[str], typer.Option(
        "--gpus", help="local: GPU ids, e.g. 0,1 (default: all visible; 'none' = CPU slots)")] = None,
    retries: Annotated[Optional[int], typer.Option("--retries", help="reruns of a failed job (default: config's)")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="local: torch threads per job")] = None,
    verbose: Verbose = 0, quiet: Quiet = False,
) -> None:
    """Run every job of a sweep config: step 1 per (scene, method, feature) first, then the modes."""
    configure_logging(verbose, quiet)
    from feat2gs.errors import ConfigError
    from feat2gs.sweep.config import load_sweep_config
    from feat2gs.sweep.plan import job_status, plan

    if executor not in ("local", "slurm"):
        raise ConfigError(f"--executor must be local or slurm, got {executor!r}")
    cfg = load_sweep_config(config)
    if retries is not None:
        if retries < 0:
            raise ConfigError(f"--retries must be >= 0, got {retries}")
        cfg.retries = retries
    jobs = plan(cfg)  # validates everything before anything runs
    console = Console(soft_wrap=True, highlight=False)
    n_done = sum(job_status(j) == "done" for j in jobs)
    console.print(f"{len(jobs)} job(s) ({n_done} already done), executor {executor}, retries {cfg.retries}")
    if executor == "slurm":
        from feat2gs.sweep.slurm import require_sbatch, run_slurm

        require_sbatch()
        summary = run_slurm(cfg, jobs, console=console)
    else:
        from feat2gs.sweep.executors import run_local

        gpu_ids = None
        if gpus is not None:
            try:
                gpu_ids = [] if gpus.strip().lower() in ("", "none", "cpu") else [int(g) for g in gpus.split(",")]
            except ValueError:
                raise ConfigError(f"--gpus expects ids like 0,1 or 'none', got {gpus!r}") from None
        summary = run_local(jobs, cfg.lock_dir, cfg.log_dir, slots=slots, gpus=gpu_ids, retries=cfg.retries,
                            threads=threads, console=console)
    summary.print(console)
    if not summary.ok:
        raise typer.Exit(1)


sweep_app = typer.Typer(no_args_is_help=True, help="Plan and run sweeps of datasets × scenes × features × modes.")
sweep_app.command("plan")(sweep_plan_command)
sweep_app.command("run")(sweep_run_command)
