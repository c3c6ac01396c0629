"""One engine, and so one CP2K, per run directory: an exclusive lock held for the engine's life.

Part of the run-directory contract (:mod:`qdphonon.run.layout` re-exports :func:`lock_holder`,
:func:`lock_run_dir` and :data:`LOCK_FILE`).

The lock is ``fcntl.flock(LOCK_EX)`` on ``{run_dir}/engine.lock``, whose content (JSON)
names the holder: ``pid``, ``host``, ``since``, ``purpose`` (``run-aimd``, ``relax``), the
process start time (so a recycled PID is not taken for the holder) and, while CP2K runs,
``cp2k_pid``. The kernel drops a flock when the last descriptor of it closes, so a lock left
by a dead process never blocks. CP2K inherits the descriptor: while any CP2K of the engine
lives, the directory stays locked even if the engine itself is gone.

A second engine on a locked directory:

- holder alive (or on another host): waits up to ``wait_s`` (default 0), then refuses with
  :class:`~qdphonon.run.errors.RunDirLocked` naming the holder's PID, host and start;
- holder dead on this host (only its CP2K keeps the lock): those leftovers are CP2K processes
  whose engine is gone; they are found by the ``QDPHONON_RUN_DIR`` marker in their
  environment, killed (SIGKILL) and waited for, then the lock is taken.

After taking the lock, processes carrying the marker of this directory (MPI ranks that did not
inherit the descriptor) are killed the same way; :attr:`RunDirLock.killed` lists them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator

from qdphonon.run.errors import RunDirLocked
from qdphonon.run.files import LOCK_FILE

MARKER_ENV = "QDPHONON_RUN_DIR"
"""Environment variable naming the run directory in every process the engine starts."""
ORPHAN_WAIT_S = 30.0
"""How long to wait for killed leftovers to vanish before refusing."""


def _start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (/proc/PID/stat field 22), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid: int | None, start_ticks: int | None = None) -> bool:
    """Whether ``pid`` runs (and, when ``start_ticks`` is given, is the process that started then)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_ticks is not None and Path("/proc").is_dir():
        now = _start_ticks(int(pid))
        return now is not None and now == int(start_ticks)
    return True


def marker_value(run_dir: str | os.PathLike) -> str:
    return str(Path(run_dir).resolve())


def _other_processes(matches) -> list[dict[str, Any]]:
    """Live processes (this host, readable by us) other than this one for which ``matches(proc_dir)``
    is true, as ``{"pid", "cmd"}``; processes that vanish or cannot be read are skipped."""
    me = os.getpid()
    proc = Path("/proc")
    found: list[dict[str, Any]] = []
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if not matches(entry):
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
            continue
        found.append({"pid": int(entry.name), "cmd": cmd[:200]})
    return found


def run_dir_processes(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Live processes (this host, readable by us) whose environment carries the marker of ``run_dir``."""
    needle = f"{MARKER_ENV}={marker_value(run_dir)}".encode() + b"\0"
    return _other_processes(lambda entry: needle in (entry / "environ").read_bytes() + b"\0")


def lock_file_openers(path: Path) -> list[dict[str, Any]]:
    """Live processes (this host, readable by us) other than this one with ``path`` open."""
    target = str(path.resolve())
    return _other_processes(lambda entry: any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()))


def kill_run_dir_processes(run_dir: str | os.PathLike, wait_s: float = ORPHAN_WAIT_S,
                           also: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """SIGKILL every process carrying ``run_dir``'s marker (and those in ``also``) and wait until
    they are gone; returns the ones killed."""
    killed = run_dir_processes(run_dir)
    killed += [p for p in also if p["pid"] not in {k["pid"] for k in killed}]
    for p in killed:
        try:
            os.kill(p["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + wait_s
    while any(process_alive(p["pid"]) and _start_ticks(p["pid"]) is not None and not _zombie(p["pid"])
              for p in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    return killed


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return True


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        info = json.loads(text) if text.strip() else {}
    except (FileNotFoundError, ValueError, OSError):
        info = {}
    return info if isinstance(info, dict) else {}


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who holds ``run_dir``'s lock: ``pid``, ``host``, ``since``, ``purpose``, ``cp2k_pid`` and
    ``engine_alive`` (None when the holder is on another host); None when nobody holds it.

    Never blocks and never takes the lock for longer than the test itself.
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
    finally:
        os.close(fd)
    info = _read_holder(path)
    out = {k: info.get(k) for k in ("pid", "host", "since", "purpose", "cp2k_pid")}
    if info.get("host") == socket.gethostname():
        out["engine_alive"] = process_alive(info.get("pid"), info.get("start_ticks"))
    else:
        out["engine_alive"] = None
    return out


class RunDirLock:
    """A held lock: ``fd`` (pass it to CP2K so it inherits the lock), ``info`` (what the file says),
    ``killed`` (leftover processes killed to take it)."""

    def __init__(self, path: Path, fd: int, info: dict[str, Any], killed: list[dict[str, Any]]):
        self.path, self.fd, self.info, self.killed = path, fd, info, killed

    def update(self, **fields: Any) -> None:
        """Rewrite the holder record with ``fields`` added (None removes a field)."""
        for k, v in fields.items():
            if v is None:
                self.info.pop(k, None)
            else:
                self.info[k] = v
        _write_holder(self.fd, self.info)


def _write_holder(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info, sort_keys=True) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


def _refusal(run_dir: Path, info: dict[str, Any], waited: float | None) -> RunDirLocked:
    pid, host, since = info.get("pid"), info.get("host"), info.get("since")
    what = info.get("purpose") or "an engine"
    cp2k = f", CP2K PID {info['cp2k_pid']}" if info.get("cp2k_pid") else ""
    waited_txt = f" (waited {waited:.0f} s)" if waited else ""
    return RunDirLocked(
        f"{run_dir} is in use: {what} PID {pid} on {host} since {since}{cp2k} holds {run_dir / LOCK_FILE}"
        f"{waited_txt}; refusing to start a second CP2K in it (wait for that process or stop it)",
        info,
    )


@contextlib.contextmanager
def lock_run_dir(run_dir: str | os.PathLike, purpose: str, *, wait_s: float = 0.0) -> Iterator[RunDirLock]:
    """Hold ``run_dir``'s exclusive lock for the ``with`` block (the directory must exist).

    Raises :class:`~qdphonon.run.errors.RunDirLocked` when a live engine holds it for
    longer than ``wait_s`` seconds. See the module docstring for leftovers of a dead engine.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    killed: list[dict[str, Any]] = []
    try:
        t0 = time.monotonic()
        while not _try_lock(fd):
            info = _read_holder(path)
            local = info.get("host") == socket.gethostname()
            if local and info.get("pid") and not process_alive(info.get("pid"), info.get("start_ticks")):
                # the engine is gone and only its CP2K keeps the descriptor open (not an engine waiting
                # for the lock like us: those have the file open too, but neither the marker nor that pid)
                cp2k = [p for p in lock_file_openers(path) if p["pid"] == info.get("cp2k_pid")]
                killed += kill_run_dir_processes(run_dir, also=cp2k)
                deadline = time.monotonic() + ORPHAN_WAIT_S
                while not _try_lock(fd):
                    if time.monotonic() > deadline:
                        raise _refusal(run_dir, info, time.monotonic() - t0)
                    time.sleep(0.05)
                break
            if time.monotonic() - t0 >= wait_s:
                raise _refusal(run_dir, info, time.monotonic() - t0 if wait_s > 0 else None)
            time.sleep(min(0.5, max(0.01, wait_s / 20)))
        killed += kill_run_dir_processes(run_dir)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "purpose": purpose, "start_ticks": _start_ticks(os.getpid())}  # fmt: skip
        _write_holder(fd, info)
        lock = RunDirLock(path, fd, info, killed)
        try:
            yield lock
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # drops the flock (unless a live CP2K still holds an inherited copy)
