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
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from feat2gs.io import atomic_write_json
from feat2gs.sweep.plan import InitSpec, JobSpec, init_units
from feat2gs.sweep.worker import task_payload

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
    from feat2gs.init.step import run_init, step1_ready

    _set_threads(threads)
    t0 = time.perf_counter()
    cfg = spec.config(device)
    layout = SceneLayout.open(spec.data_root, spec.dataset, spec.scene)
    before = step1_ready(layout, cfg.init, spec.feature)
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
        console = console or Console(soft_wrap=True, highlight=False)
        console.rule("summary")
        n_jobs = sum(1 for r in self.succeeded if r.get("kind") == "job")
        console.print(Text(f"succeeded: {len(self.succeeded)} ({n_jobs} jobs, {len(self.succeeded) - n_jobs} step-1 "
                           f"units)   failed: {len(self.failed)}   skipped: {len(self.skipped)}   "
                           f"({self.seconds:.0f} s)"))
        for f in self.failed:
            console.print(Text("  FAILED", style="red") + Text(f" {f.name} after {f.attempts} attempt(s): {f.error}"
                                                               + (f"  (log: {f.log})" if f.log else "")))
        for name, reason in self.skipped:
            console.print(Text("  SKIPPED", style="yellow") + Text(f" {name}: {reason}"))


def run_phases(jobs: list[JobSpec], run_phase, summary: SweepSummary, console: Console) -> SweepSummary:
    """Phase 1 (step-1 units), then phase 2 (the jobs whose unit succeeded). ``run_phase(specs) -> ok names``."""
    units = init_units(jobs)
    console.print(Text(f"phase 1: step 1 for {len(units)} unit(s) (scene × method × feature)"))
    ok_units = run_phase(units)
    runnable = []
    for job in jobs:
        if job.init.name in ok_units:
            runnable.append(job)
        else:
            summary.skipped.append((job.name, f"its step 1 ({job.init.name}) failed"))
    console.print(Text(f"phase 2: steps 2-6 for {len(runnable)} job(s)"))
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


class _StopRequested(Exception):
    """SIGINT or SIGTERM reached the driver."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class _Running:
    spec: Spec
    proc: subprocess.Popen
    result_file: Path
    attempt: int


class _TaskProcesses:
    """At most ``n`` worker processes (``python -m feat2gs.sweep.worker``), one per task.

    Stopping is explicit: :meth:`stop` sends each running worker SIGTERM (a worker treats it as Ctrl+C: its
    atomic writes are rolled back, completed steps kept), waits ``grace_s`` and kills what is left, so no job
    outlives the driver and none starts after a stop.
    """

    def __init__(self, n: int, task_dir: Path, grace_s: float = 30.0):
        self.n, self.task_dir, self.grace_s = n, task_dir, grace_s
        self.running: list[_Running] = []
        task_dir.mkdir(parents=True, exist_ok=True)

    def start(self, spec: Spec, payload: dict, attempt: int) -> None:
        stem = f"{spec.name}.{os.getpid()}.{attempt}"
        task_file, result_file = self.task_dir / f"{stem}.task.json", self.task_dir / f"{stem}.result.json"
        result_file.unlink(missing_ok=True)
        atomic_write_json(task_file, payload)
        proc = subprocess.Popen([sys.executable, "-m", "feat2gs.sweep.worker", str(task_file), str(result_file)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.running.append(_Running(spec, proc, result_file, attempt))

    def finished(self) -> list[tuple[_Running, dict]]:
        """Reap finished workers: (task, result); a worker that died without a result gives a transient failure."""
        done = []
        for task in [t for t in self.running if t.proc.poll() is not None]:
            self.running.remove(task)
            try:
                result = json.loads(task.result_file.read_text())
            except (OSError, json.JSONDecodeError):
                code = task.proc.returncode
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                result = {"name": task.spec.name, "ok": False, "transient": True,
                          "error": f"worker died without a result ({how}; out of memory?)"}
            for f in (task.result_file, task.result_file.with_name(task.result_file.name.replace(".result.", ".task."))):
                f.unlink(missing_ok=True)
            done.append((task, result))
        return done

    def stop(self) -> None:
        for task in self.running:
            if task.proc.poll() is None:
                task.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for task in self.running:
            try:
                task.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                task.proc.kill()
                task.proc.wait()
        self.running = []


def _raise_stop(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _StopRequested(signum)


def _line(console: Console, label: str, style: str, message: str) -> None:
    console.print(Text(f"[{time.strftime('%H:%M:%S')}] ") + Text(label, style=style) + Text(f" {message}"))


def run_local(jobs: list[JobSpec], lock_dir: Path, log_dir: Path, *, slots: int = 1, gpus: list[int] | None = None,
              retries: int = 1, threads: int | None = None, console: Console | None = None,
              grace_s: float = 30.0) -> SweepSummary:
    """Run ``jobs`` on ``slots`` local slots (GPU slots when ``gpus``/visible GPUs exist, else CPU slots).

    ``threads``: torch threads per job (default: CPU cores // slots on CPU slots, torch's default on GPU).
    Failures are retried up to ``retries`` times when they may be transient (a crash, a killed worker, CUDA
    out of memory); a :class:`~feat2gs.errors.Feat2GSError` (bad input or settings) is not retried. On SIGINT
    or SIGTERM no further job starts, running workers are stopped (``grace_s`` to finish their cleanup, then
    killed), the summary is printed and :class:`KeyboardInterrupt` is raised.
    """
    console = console or Console(soft_wrap=True, highlight=False)
    if slots < 1:
        from feat2gs.errors import ConfigError

        raise ConfigError(f"--slots must be >= 1, got {slots}")
    gpus = visible_gpus() if gpus is None else gpus
    names = slot_names(slots, gpus)
    if threads is None and not gpus:
        threads = max(1, len(os.sched_getaffinity(0)) // slots)
    summary = SweepSummary()
    t0 = time.perf_counter()
    console.print(Text(f"slots: {' '.join(names)}  (locks: {lock_dir}, logs: {log_dir})"))
    workers = _TaskProcesses(slots, log_dir / ".tasks", grace_s)

    def phase(specs: list[Spec]) -> set[str]:
        ok: set[str] = set()
        queue = [(s, 1) for s in specs]
        while queue or workers.running:
            while queue and len(workers.running) < slots:
                spec, attempt = queue.pop(0)
                workers.start(spec, task_payload(spec, lock_dir, log_dir / f"{spec.name}.log", names, threads,
                                                 attempt), attempt)
            time.sleep(0.2)
            for task, res in workers.finished():
                spec, n = task.spec, task.attempt
                if res.get("ok"):
                    ok.add(spec.name)
                    res["attempts"] = n
                    summary.succeeded.append(res)
                    _line(console, "done", "green", f"{spec.name} ({res['seconds']} s)")
                elif res.get("transient", True) and n <= retries:
                    _line(console, "failed, retrying", "yellow", f"{spec.name} ({n}/{retries + 1}): {res['error']}")
                    queue.append((spec, n + 1))
                else:
                    why = "" if res.get("transient", True) else " (not retried: the same input fails again)"
                    _line(console, "FAILED", "red", f"{spec.name}: {res['error']}{why}")
                    summary.failed.append(Failure(spec.name, res["error"], n, res.get("log")))
        return ok

    handlers = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_phases(jobs, phase, summary, console)
    except _StopRequested as stop:
        for sig in handlers:  # a second Ctrl+C during the shutdown must not abandon the workers
            signal.signal(sig, signal.SIG_IGN)
        _line(console, "interrupted", "yellow", f"({stop}): no new job starts; stopping {len(workers.running)} "
              "running job(s)")
        workers.stop()
        summary.seconds = time.perf_counter() - t0
        summary.print(console)
        raise KeyboardInterrupt from None
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    summary.seconds = time.perf_counter() - t0
    return summary
