"""Atomic writers: a file either appears complete under its final name or not at all.

Temporary names carry the writer's host and pid (``.<name>.<host>_<pid>_<rand>.tmp<suffix>``), so a later run
can tell the leftovers of a killed writer from work in progress: :func:`remove_stale_temps` removes those of
dead processes on this host, :func:`remove_all_temps` everything (for folders guarded by a lock). Files and
folders are created with the permissions the umask allows (0644/0755 under umask 022), never private.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from feat2gs.errors import Feat2GSError

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
# .<name>.<host>_<pid>_<rand>.tmp<suffix>  (ours) | .<name>.<8 chars>.tmp<suffix>  (mkstemp, older versions)
# | .<name>.old.<pid>  (a folder being replaced)
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<host>[A-Za-z0-9]+)_(?P<pid>\d+)_[0-9a-f]{8}\.tmp.*"
                   r"|[A-Za-z0-9_]{8}\.tmp.*|old\.(?P<oldpid>\d+))$")


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents); raise a clear error if it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Feat2GSError(f"cannot create output directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise Feat2GSError(f"output directory {path} is not writable")
    return path


def current_umask() -> int:
    """This process's umask (read from /proc where it can be, so the umask is never changed, even briefly)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _honour_umask(path: Path) -> None:
    """Give what a writer created the permissions the umask allows: some writers (safetensors) create private
    0600 files whatever the umask, and a results tree shared by a group must stay readable."""
    mask = current_umask()
    entries = [path, *path.rglob("*")] if path.is_dir() else [path]
    for entry in entries:
        if not entry.is_symlink():
            entry.chmod((0o777 if entry.is_dir() else 0o666) & ~mask)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_HOST}_{os.getpid()}_{secrets.token_hex(4)}.tmp{path.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Remove the temporaries of ``path`` left by dead writers on this host (safe while others write)."""
    path = Path(path)
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or m["name"] != path.name:
            continue
        pid = m["pid"] or m["oldpid"]
        if pid is not None and (m["host"] in (None, _HOST)) and not _pid_alive(int(pid)):
            _remove(entry)


def remove_all_temps(root: str | os.PathLike, names: set[str] | None = None) -> list[Path]:
    """Remove every temporary under ``root`` (recursively), or only those of the entries ``names`` directly in
    ``root``. Only for folders whose writers all hold a lock that the caller holds now."""
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    candidates = root.iterdir() if names is not None else root.rglob(".*")
    for entry in sorted(candidates, key=lambda p: len(p.parts)):
        m = _TEMP.match(entry.name)
        if m and (names is None or m["name"] in names) and entry.exists():
            _remove(entry)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    remove_stale_temps(path)
    tmp_path = _temp_name(path)
    try:
        os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        yield tmp_path
        _honour_umask(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise Feat2GSError(f"could not write {path}: {exc.strerror}") from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def strict_json(obj: Any) -> str:
    """JSON that every parser reads: a NaN or infinity is a bug upstream (it must be ``null`` with a reason)."""
    try:
        return json.dumps(obj, indent=2, allow_nan=False) + "\n"
    except ValueError as exc:
        raise ValueError(f"refusing to write a non-finite number as JSON: {exc}") from exc


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, strict_json(obj))


def atomic_save(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def atomic_save_npy(path: str | os.PathLike, array: Any) -> None:
    import numpy as np

    atomic_save(path, lambda tmp: np.save(tmp, array, allow_pickle=False))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it into place when the block succeeds."""
    path = Path(path)
    ensure_writable_dir(path.parent)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    try:
        os.mkdir(tmp, 0o777)
    except OSError as exc:
        raise Feat2GSError(f"could not create {tmp}: {exc.strerror}") from exc
    try:
        yield tmp
        _honour_umask(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Held:
    """Per-process bookkeeping of held flocks, so that a holder can take the same lock again (re-entrant)."""

    depth: dict[str, int] = {}


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive advisory lock (flock) held for the block; released by the kernel if the process dies.

    Re-entrant within a process: a nested ``file_lock`` on the same path does not wait for itself.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    key = str(path.resolve())
    if _Held.depth.get(key, 0) > 0:
        _Held.depth[key] += 1
        try:
            yield
        finally:
            _Held.depth[key] -= 1
        return
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                break
            except OSError as exc:  # EINTR from a signal handler that did not raise: wait again
                if exc.errno != errno.EINTR:
                    raise
        _Held.depth[key] = 1
        try:
            yield
        finally:
            _Held.depth.pop(key, None)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
