"""Run a planned sweep: the job functions and the local slot pool (Slurm lives in :mod:`feat2gs.sweep.slurm`).

Both executors run in two phases, like ``scripts/run_feat2gs_eval_parallel.sh``: step 1 once per
(scene, method, feature string), then steps 2–6 per mode for the units whose step 1 succeeded. Jobs are
idempotent (``Job.run_all`` skips finished steps), so a failed job is simply run again, up to ``retries``
more times, and rerunning a sweep finishes what was left.

The local pool uses the bash driver's slots — an ``flock`` on ``<output_root>/.locks/<slot>.lock``
(``gpu<i>_<k>`` or ``cpu_<k>``), skipped while ``<slot>.stop`` exists — so both can share a machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from feat2gs.sweep.plan import InitSpec, JobSpec, init_units

Spec = InitSpec | JobSpec


# -- job functions (run in the worker: a pool process or a Slurm task) -----------------------------------------
def _set_threads(threads: int | None) -> None:
    import torch

    if threads is None:
        env = os.environ.get("FEAT2GS_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK")
        threads = int(env) if env and env.isdigit() else None
    if threads:
        torch.set_num_threads(max(1, threads))


def run_init_unit(spec: InitSpec, device: str | None = None, threads: int | None = None) -> dict:
    """Step 1 of one (scene, method, feature string); a no-op when a valid copy exists."""
    from feat2gs.data.layout import SceneLayout
    from feat2gs.init.step import run_init, step1_key, step1_valid

    _set_threads(threads)
    t0 = time.perf_counter()
    cfg = spec.config(device)
    layout = SceneLayout.open(spec.data_root, spec.dataset, spec.scene)
    out = layout.step1_dir(cfg.init.method, spec.feature, cfg.init.image_size)
    before = step1_valid(out, step1_key(layout, cfg.init, spec.feature))
    out = run_init(layout, cfg.init, spec.feature)
    return {"name": spec.name, "kind": "init", "ok": True, "ran": {"init": not before}, "dir": str(out),
            "seconds": round(time.perf_counter() - t0, 2), "host": socket.gethostname()}


def run_job(spec: JobSpec, device: str | None = None, threads: int | None = None) -> dict:
    """Steps 1–6 of one job (``Job.run_all``: finished steps are skipped); returns its results.json."""
    import json

    from feat2gs.job import Job

    _set_threads(threads)
    t0 = time.perf_counter()
    job = Job.create(spec.data_root, spec.dataset, spec.scene, spec.feature, spec.mode, spec.config(device),
                     spec.output_root, progress=False)
    ran = job.run_all(video=spec.video)
    results = json.loads((job.dir / "results.json").read_text())
    return {"name": spec.name, "kind": "job", "ok": True, "ran": ran, "dir": str(job.dir), "results": results,
            "seconds": round(time.perf_counter() - t0, 2), "host": socket.gethostname()}


def run_spec(spec: Spec, device: str | None = None, threads: int | None = None) -> dict:
    if isinstance(spec, InitSpec):
        return run_init_unit(spec, device, threads)
    return run_job(spec, device, threads)


# -- summary -----------------------------------------------------------------------------------------------------
@dataclass
class Failure:
    name: str
    error: str
    attempts: int
    log: str | None = None


@dataclass
class SweepSummary:
    succeeded: list[dict] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (job name, reason)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        console.rule("summary")
        n_jobs = sum(1 for r in self.succeeded if r.get("kind") == "job")
        console.print(f"succeeded: {len(self.succeeded)} ({n_jobs} jobs, {len(self.succeeded) - n_jobs} step-1 units)"
                      f"   failed: {len(self.failed)}   skipped: {len(self.skipped)}   ({self.seconds:.0f} s)")
        for f in self.failed:
            console.print(f"  [red]FAILED[/red] {f.name} after {f.attempts} attempt(s): {f.error}"
                          + (f"  (log: {f.log})" if f.log else ""))
        for name, reason in self.skipped:
            console.print(f"  [yellow]SKIPPED[/yellow] {name}: {reason}")


def _short_error(text: str, limit: int = 300) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    return last if len(last) <= limit else last[:limit] + "…"


def run_phases(jobs: list[JobSpec], run_phase, summary: SweepSummary, console: Console) -> SweepSummary:
    """Phase 1 (step-1 units), then phase 2 (the jobs whose unit succeeded). ``run_phase(specs) -> ok names``."""
    units = init_units(jobs)
    console.print(f"phase 1: step 1 for {len(units)} unit(s) (scene × method × feature)")
    ok_units = run_phase(units)
    runnable = []
    for job in jobs:
        if job.init.name in ok_units:
            runnable.append(job)
        else:
            summary.skipped.append((job.name, f"its step 1 ({job.init.name}) failed"))
    console.print(f"phase 2: steps 2-6 for {len(runnable)} job(s)")
    run_phase(runnable)
    return summary


# -- local pool ---------------------------------------------------------------------------------------------------
def visible_gpus() -> list[int]:
    """GPU indices usable here: ``CUDA_VISIBLE_DEVICES`` if set, else what torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().isdigit()]
    try:
        import torch

        return list(range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - no usable CUDA
        return []


def slot_names(n_slots: int, gpus: list[int]) -> list[str]:
    """``n_slots`` slots, spread over ``gpus`` (``gpu<i>_<k>``: job k on GPU i), or ``cpu_<k>`` without GPUs."""
    if gpus:
        return [f"gpu{gpus[k % len(gpus)]}_{k // len(gpus)}" for k in range(n_slots)]
    return [f"cpu_{k}" for k in range(n_slots)]


@contextlib.contextmanager
def hold_slot(lock_dir: Path, slots: list[str], info: str, poll_s: float = 1.0) -> Iterator[str]:
    """Wait for a free slot (non-blocking flock on ``<slot>.lock``, skipping ``<slot>.stop``) and hold it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in slots:
            if (lock_dir / f"{slot}.stop").exists():
                continue
            handle = open(lock_dir / f"{slot}.lock", "a")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            try:
                (lock_dir / f"{slot}.info").write_text(f"{info} (pid {os.getpid()}) since {time.ctime()}\n")
                yield slot
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_s)


@contextlib.contextmanager
def _redirect_output(log: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (fd level, so child libraries too) to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _local_worker(spec: Spec, lock_dir: str, log_dir: str, slots: list[str], threads: int | None,
                  attempt: int) -> dict:
    """Pool task: take a slot, pin the GPU, run the spec with its output in ``<log_dir>/<name>.log``."""
    log = Path(log_dir) / f"{spec.name}.log"
    try:
        with hold_slot(Path(lock_dir), slots, spec.name) as slot:
            device = "cpu"
            if slot.startswith("gpu"):
                os.environ["CUDA_VISIBLE_DEVICES"] = slot[3:].split("_")[0]  # fresh process per GPU task
                device = "cuda"
            with _redirect_output(log):
                print(f"[{time.strftime('%H:%M:%S')}] {spec.name} attempt {attempt} on {slot}", flush=True)
                try:
                    result = run_spec(spec, device, threads)
                except BaseException:
                    tb = traceback.format_exc()
                    print(tb, flush=True)
                    return {"name": spec.name, "ok": False, "error": _short_error(tb), "log": str(log)}
            return {**result, "slot": slot, "log": str(log)}
    except BaseException:  # noqa: BLE001 - report, never lose the summary
        return {"name": spec.name, "ok": False, "error": _short_error(traceback.format_exc()), "log": str(log)}


class _Pool:
    """A spawn-based process pool that is rebuilt if a worker dies (OOM kill, segfault)."""

    def __init__(self, n: int, fresh_process: bool):
        import multiprocessing

        self.n, self.fresh = n, fresh_process
        self.ctx = multiprocessing.get_context("spawn")
        self.pool = self._make()

    def _make(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.n, mp_context=self.ctx, max_tasks_per_child=1 if self.fresh else None)

    def submit(self, *args) -> Future:
        try:
            return self.pool.submit(*args)
        except (BrokenProcessPool, RuntimeError):
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._make()
            return self.pool.submit(*args)

    def shutdown(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


def run_local(jobs: list[JobSpec], lock_dir: Path, log_dir: Path, *, slots: int = 1, gpus: list[int] | None = None,
              retries: int = 1, threads: int | None = None, console: Console | None = None) -> SweepSummary:
    """Run ``jobs`` on ``slots`` local slots (GPU slots when ``gpus``/visible GPUs exist, else CPU slots).

    ``threads``: torch threads per job (default: CPU cores // slots on CPU slots, torch's default on GPU).
    """
    console = console or Console()
    if slots < 1:
        from feat2gs.errors import ConfigError

        raise ConfigError(f"--slots must be >= 1, got {slots}")
    gpus = visible_gpus() if gpus is None else gpus
    names = slot_names(slots, gpus)
    if threads is None and not gpus:
        threads = max(1, len(os.sched_getaffinity(0)) // slots)
    summary = SweepSummary()
    t0 = time.perf_counter()
    console.print(f"slots: {' '.join(names)}  (locks: {lock_dir}, logs: {log_dir})")
    pool = _Pool(slots, fresh_process=bool(gpus))

    def phase(specs: list[Spec]) -> set[str]:
        ok: set[str] = set()
        attempts = {s.name: 0 for s in specs}

        def submit(spec: Spec) -> Future:
            attempts[spec.name] += 1
            return pool.submit(_local_worker, spec, str(lock_dir), str(log_dir), names, threads, attempts[spec.name])

        pending = {submit(s): s for s in specs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                spec = pending.pop(fut)
                try:
                    res = fut.result()
                except BaseException as exc:  # noqa: BLE001 - a dead worker
                    res = {"name": spec.name, "ok": False, "error": f"worker died: {exc!r}",
                           "log": str(log_dir / f"{spec.name}.log")}
                n = attempts[spec.name]
                if res.get("ok"):
                    ok.add(spec.name)
                    res["attempts"] = n
                    summary.succeeded.append(res)
                    console.print(f"[{time.strftime('%H:%M:%S')}] [green]done[/green] {spec.name} ({res['seconds']} s)")
                elif n <= retries:
                    console.print(f"[{time.strftime('%H:%M:%S')}] [yellow]failed, retrying[/yellow] {spec.name} "
                                  f"({n}/{retries + 1}): {res['error']}")
                    pending[submit(spec)] = spec
                else:
                    console.print(f"[{time.strftime('%H:%M:%S')}] [red]FAILED[/red] {spec.name}: {res['error']}")
                    summary.failed.append(Failure(spec.name, res["error"], n, res.get("log")))
        return ok

    try:
        run_phases(jobs, phase, summary, console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: stopping the pool (slots are released as workers exit)")
        pool.shutdown(cancel=True)
        summary.seconds = time.perf_counter() - t0
        summary.print(console)
        raise
    pool.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary
