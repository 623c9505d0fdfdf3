"""One sweep task in its own process: ``python -m feat2gs.sweep.worker TASK.json RESULT.json``.

The local executor starts one such process per task (a fresh process: GPU pinning and memory are per task,
and a stop signal reaches exactly the running work). The task file holds the spec, the slot pool and the log
path; the process takes a free slot (flock), pins its GPU, runs the spec with its output in the log and writes
the result file. SIGINT and SIGTERM interrupt it like Ctrl+C: atomic writers remove their temporaries and
completed steps are kept. If the driver dies, the worker is sent SIGTERM (Linux parent-death signal).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from feat2gs.errors import Feat2GSError
from feat2gs.io import atomic_write_json
from feat2gs.sweep.plan import InitSpec, JobSpec

Spec = InitSpec | JobSpec
INTERRUPTED = 130


def task_payload(spec: Spec, lock_dir: Path, log: Path, slots: list[str], threads: int | None, attempt: int) -> dict:
    kind = "init" if isinstance(spec, InitSpec) else "job"
    return {"kind": kind, "spec": asdict(spec), "lock_dir": str(lock_dir), "log": str(log), "slots": slots,
            "threads": threads, "attempt": attempt}


def _spec(payload: dict) -> Spec:
    cls = InitSpec if payload["kind"] == "init" else JobSpec
    fields = dict(payload["spec"])
    fields["overrides"] = tuple(fields["overrides"])
    return cls(**fields)


def short_error(text: str, limit: int = 300) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    return last if len(last) <= limit else last[:limit] + "…"


def _die_with_parent() -> None:
    """Ask the kernel to send SIGTERM when the driver dies (Linux prctl PR_SET_PDEATHSIG); best effort."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
        except OSError:
            pass


def _interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


def run_task(payload: dict) -> dict:
    """Take a slot, run the spec, return the result (``ok``, and for failures ``error`` and ``transient``)."""
    from feat2gs.sweep.executors import _redirect_output, hold_slot, run_spec

    spec = _spec(payload)
    log = Path(payload["log"])
    with hold_slot(Path(payload["lock_dir"]), payload["slots"], spec.name) as slot:
        device = "cpu"
        if slot.startswith("gpu"):
            os.environ["CUDA_VISIBLE_DEVICES"] = slot[3:].split("_")[0]  # before torch is imported
            device = "cuda"
        with _redirect_output(log):
            print(f"[{time.strftime('%H:%M:%S')}] {spec.name} attempt {payload['attempt']} on {slot}", flush=True)
            try:
                result = run_spec(spec, device, payload["threads"])
            except Feat2GSError as exc:  # bad input or settings: the same on every attempt
                print(traceback.format_exc(), flush=True)
                return {"name": spec.name, "ok": False, "error": str(exc).splitlines()[0], "transient": False,
                        "slot": slot, "log": str(log)}
            except Exception:  # noqa: BLE001 - anything else (CUDA OOM, I/O, a bug) may pass on a retry
                tb = traceback.format_exc()
                print(tb, flush=True)
                return {"name": spec.name, "ok": False, "error": short_error(tb), "transient": True, "slot": slot,
                        "log": str(log)}
    return {**result, "slot": slot, "log": str(log)}


def main(argv: list[str] | None = None) -> int:
    task_file, result_file = (argv or sys.argv[1:])[:2]
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    _die_with_parent()
    try:
        result = run_task(json.loads(Path(task_file).read_text()))
    except KeyboardInterrupt:
        return INTERRUPTED
    atomic_write_json(result_file, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
