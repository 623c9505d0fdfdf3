"""Run a planned sweep on Slurm with submitit job arrays (``map_array``), phase 1 then phase 2.

Each array task calls :class:`SweepTask`, a ``submitit.helpers.Checkpointable``: on preemption or timeout
submitit requeues the same call, and since jobs are idempotent the rerun continues from the last finished
step. Logs go to ``<output_root>/slurm_logs/<job id>/``; outputs use the same layout as the local executor.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import submitit
from rich.console import Console
from rich.text import Text

from feat2gs.errors import ConfigError, Feat2GSError
from feat2gs.sweep.config import SlurmConfig, SweepConfig
from feat2gs.sweep.executors import Failure, Spec, SweepSummary, _line, run_phases, run_spec
from feat2gs.sweep.worker import short_error
from feat2gs.sweep.plan import JobSpec


class SweepTask(submitit.helpers.Checkpointable):
    """The Slurm job function: run one spec (step-1 unit or job); requeued as-is on preemption/timeout."""

    def __call__(self, spec: Spec) -> dict:
        try:
            return run_spec(spec)  # device auto; torch threads = SLURM_CPUS_PER_TASK
        except Feat2GSError as exc:  # bad input or settings: reported, not retried (other errors are raised)
            return {"name": spec.name, "ok": False, "transient": False, "error": str(exc).splitlines()[0]}


def require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm: `sbatch` was not found on PATH, so there is no Slurm cluster to submit "
                          "to; nothing was submitted (use --executor local, or run on a Slurm login node)")


def slurm_parameters(s: SlurmConfig, name: str = "feat2gs-sweep") -> dict[str, Any]:
    """AutoExecutor.update_parameters arguments for a :class:`SlurmConfig`."""
    params: dict[str, Any] = {"name": name, "timeout_min": s.time_min, "cpus_per_task": s.cpus_per_task,
                              "nodes": 1, "tasks_per_node": 1, "slurm_array_parallelism": s.array_parallelism}
    if s.gpus_per_node:
        params["gpus_per_node"] = s.gpus_per_node
    if s.mem_gb:
        params["mem_gb"] = s.mem_gb
    for key in ("partition", "account", "qos"):
        if getattr(s, key):
            params[f"slurm_{key}"] = getattr(s, key)
    if s.additional:
        params["slurm_additional_parameters"] = dict(s.additional)
    return params


def make_executor(cfg: SweepConfig) -> submitit.AutoExecutor:
    require_sbatch()
    executor = submitit.AutoExecutor(folder=str(cfg.slurm_folder), cluster="slurm")
    executor.update_parameters(**slurm_parameters(cfg.slurm))
    return executor


def run_slurm(cfg: SweepConfig, jobs: list[JobSpec], *, retries: int | None = None,
              console: Console | None = None, executor: submitit.AutoExecutor | None = None) -> SweepSummary:
    """Submit phase 1 as one job array, wait, then phase 2; failed tasks are resubmitted (as a new array) up to
    ``retries`` times. Blocks until every task has finished."""
    console = console or Console(soft_wrap=True, highlight=False)
    retries = cfg.retries if retries is None else retries
    executor = executor or make_executor(cfg)
    summary = SweepSummary()
    t0 = time.perf_counter()

    def phase(specs: list[Spec]) -> set[str]:
        ok: set[str] = set()
        todo, attempt = list(specs), 0
        while todo:
            attempt += 1
            handles = executor.map_array(SweepTask(), todo)
            if handles:
                console.print(Text(f"submitted array {handles[0].job_id.split('_')[0]} ({len(handles)} task(s), "
                                   f"attempt {attempt}); logs in {cfg.output_root / 'slurm_logs'}"))
            failed = []
            for spec, handle in zip(todo, handles):
                try:
                    res = handle.result()
                except Exception as exc:  # noqa: BLE001 - FailedJobError, UncompletedJobError, ...: maybe transient
                    res = {"ok": False, "transient": True, "error": short_error(str(exc))}
                if res.get("ok"):
                    res.update(attempts=attempt, slurm_job=handle.job_id, log=str(handle.paths.stdout))
                    ok.add(spec.name)
                    summary.succeeded.append(res)
                    _line(console, "done", "green", f"{spec.name} (job {handle.job_id}, {res['seconds']} s)")
                    continue
                _line(console, "failed", "red", f"{spec.name} (job {handle.job_id}): {res['error']}")
                if res["transient"] and attempt <= retries:
                    failed.append(spec)
                else:
                    summary.failed.append(Failure(spec.name, res["error"], attempt, str(handle.paths.stderr)))
            todo = failed
        return ok

    run_phases(jobs, phase, summary, console)
    summary.seconds = time.perf_counter() - t0
    return summary
