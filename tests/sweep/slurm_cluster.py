"""A throw-away one-node Slurm cluster on localhost for tests (Debian's slurmctld/slurmd 22.05 + munge).

    python tests/sweep/slurm_cluster.py DIR     # start one by hand; prints `export SLURM_CONF=...`, Ctrl+C stops it

Used by tests/sweep/test_sweep_slurm.py: :func:`ensure_slurm` installs the packages with apt-get when they are
missing, :func:`start_cluster` writes the config under a temporary directory and starts munged (unless one
answers already), slurmctld and slurmd; :meth:`Cluster.stop` cancels leftover jobs and stops only the
daemons it started. Settings that work without cgroups: proctrack/linuxproc, task/none, no cgroup.conf,
accounting off (submitit then warns that ``sacct`` is unavailable; results still come back).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["slurmctld", "slurmd", "sbatch", "sinfo", "munged"]


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None)


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if _which(b) is None]


def ensure_slurm(timeout_s: float = 600) -> tuple[bool, str, float]:
    """Install Slurm + munge with apt-get if missing. Returns (ok, reason, seconds spent installing)."""
    if not missing_binaries():
        return True, "already installed", 0.0
    if shutil.which("apt-get") is None:
        return False, f"Slurm is missing ({', '.join(missing_binaries())}) and apt-get is unavailable", 0.0
    if os.geteuid() != 0:
        return False, "Slurm is missing and installing it with apt-get needs root", 0.0
    t0 = time.perf_counter()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired:
            return False, f"`{' '.join(cmd)}` timed out after {timeout_s:.0f} s (no network?)", time.perf_counter() - t0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return False, f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {' | '.join(tail)}", time.perf_counter() - t0
    if missing_binaries():
        return False, f"apt-get install ran but {', '.join(missing_binaries())} are still missing", time.perf_counter() - t0
    return True, "installed with apt-get", time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 1024


def _munge_works() -> bool:
    if not shutil.which("munge") or not shutil.which("unmunge"):
        return False
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=False)
        if cred.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=10,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Cluster:
    root: Path
    conf: Path
    host: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def logs(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            p = self.root / "log" / name
            if p.is_file():
                out.append(f"--- {name} (tail) ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)

    def stop(self) -> None:
        """scancel every job, then stop the daemons this object started (by pid)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--user", os.environ.get("USER", "root")], env=self.env, capture_output=True,
                           timeout=30, check=False)
            subprocess.run(["scancel", "-u", str(os.getuid())], env=self.env, capture_output=True, timeout=30,
                           check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _conf_text(root: Path, host: str, cpus: int, mem_mb: int) -> str:
    return f"""\
ClusterName=feat2gstest
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=sched_min_interval=0
MinJobAge=300
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def start_cluster(root: str | Path, cpus: int = 2, timeout_s: float = 60) -> Cluster:
    """Write the config under ``root`` and start munged (if needed), slurmctld and slurmd; wait for ``idle``."""
    root = Path(root).absolute()
    for sub in ("state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    conf = root / "slurm.conf"
    conf.write_text(_conf_text(root, host, cpus, int(_mem_mb() * 0.9)))
    cluster = Cluster(root, conf, host)
    try:
        if not _munge_works():
            key = Path("/etc/munge/munge.key")
            if not key.is_file():
                subprocess.run([_which("mungekey") or "mungekey", "--create"], check=True, capture_output=True)
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            cluster.procs["munged"] = subprocess.Popen(
                [_which("munged"), "--foreground", "--force"], stdout=open(root / "log" / "munged.log", "w"),
                stderr=subprocess.STDOUT)
            deadline = time.time() + 15
            while not _munge_works():
                if time.time() > deadline or cluster.procs["munged"].poll() is not None:
                    raise RuntimeError("munged did not start")
                time.sleep(0.2)
        for name, args in (("slurmctld", ["-D", "-c", "-i", "-f", str(conf)]), ("slurmd", ["-D", "-f", str(conf)])):
            cluster.procs[name] = subprocess.Popen([_which(name), *args], env=cluster.env,
                                                   stdout=open(root / "log" / f"{name}.out", "w"),
                                                   stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout_s
        state = ""
        while time.time() < deadline:
            for name, proc in cluster.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}")
            res = subprocess.run(["sinfo", "-h", "-o", "%T"], env=cluster.env, capture_output=True, text=True,
                                 check=False)
            state = res.stdout.strip()
            if state == "idle":
                return cluster
            if state.startswith(("drain", "down")):
                subprocess.run(["scontrol", "update", f"nodename={host}", "state=resume"], env=cluster.env,
                               capture_output=True, check=False)
            time.sleep(0.5)
        raise RuntimeError(f"node not idle after {timeout_s:.0f} s (sinfo: {state!r})")
    except BaseException as exc:
        logs = cluster.logs()
        cluster.stop()
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}\n{logs}") from exc
        raise


if __name__ == "__main__":
    ok, why, secs = ensure_slurm()
    if not ok:
        sys.exit(f"cannot set up Slurm: {why}")
    c = start_cluster(sys.argv[1] if len(sys.argv) > 1 else "/tmp/feat2gs-slurm")
    print(f"cluster up ({why}, {secs:.0f} s install); export SLURM_CONF={c.conf}   (Ctrl+C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        c.stop()
