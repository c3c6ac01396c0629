"""Starting CP2K (MPI launcher, environment) and waiting for it while forwarding signals."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence
from qdphonon.engines.errors import CP2KNotFoundError


CP2K_INSTALL_HINT = (
    "install CP2K: 'apt-get install cp2k openmpi-bin' (Debian/Ubuntu) or 'conda install -c conda-forge cp2k'"
)


def find_cp2k(cp2k_command: str = "cp2k.psmp") -> str:
    """Absolute path of the CP2K executable; :class:`CP2KNotFoundError` with install hints when missing."""
    exe = shutil.which(cp2k_command)
    if exe is None:
        raise CP2KNotFoundError(
            f"engine 'cp2k': CP2K executable {cp2k_command!r} not found on PATH; {CP2K_INSTALL_HINT}, "
            "or use --engine mock for synthetic output"
        )
    return exe


def cp2k_command_line(
    exe: str, input_name: str, output_name: str, *, mpi: str | None = None, tasks: int = 1
) -> list[str]:
    """``{mpi} -n {tasks} cp2k -i IN -o OUT`` for several MPI tasks, else a single rank ``cp2k -i IN -o OUT``."""
    cmd = [exe, "-i", input_name, "-o", output_name]
    if int(tasks) > 1:
        if not mpi:
            raise ValueError(f"{tasks} MPI tasks need an MPI launcher (--mpi mpirun or srun)")
        launcher = shutil.which(mpi)
        if launcher is None:
            raise CP2KNotFoundError(f"engine 'cp2k': MPI launcher {mpi!r} not found on PATH; {CP2K_INSTALL_HINT}")
        cmd = [launcher, "-n", str(int(tasks))] + cmd
    return cmd


def cp2k_environment(threads: int = 1, mpi: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a CP2K process: ``OMP_NUM_THREADS`` threads per rank, one BLAS thread, and
    OpenMPI's root permission when running as root (containers, CI)."""
    env = dict(os.environ if base is None else base)
    env["OMP_NUM_THREADS"] = str(int(threads))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


@dataclasses.dataclass
class ProcessResult:
    """How a CP2K process ended: exit status (shell style, 128+N for signal N), signal name, wall seconds."""

    exit_status: int
    signal: str | None
    wall_s: float
    stopped_by_us: str | None = None


def run_process(
    cmd: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    watch: Callable[[], str | None] | None = None,
    poll_s: float = 2.0,
    on_start: Callable[[int], None] | None = None,
) -> ProcessResult:
    """Run ``cmd`` in its own process group, forwarding SIGTERM/SIGINT/SIGHUP to the group.

    ``watch`` is called every ``poll_s`` seconds; a non-None return is a reason to stop the
    process (SIGTERM to the group). ``on_start`` receives the process id.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), start_new_session=True)
    if on_start is not None:
        on_start(proc.pid)
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        _signal_group(proc.pid, signal.SIGTERM)

    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {}
    for sig in forwarded:
        try:
            previous[sig] = signal.signal(sig, forward)
        except ValueError:  # not the main thread
            pass
    stopped = None
    try:
        while True:
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                if watch is not None and stopped is None:
                    stopped = watch()
                    if stopped is not None:
                        _signal_group(proc.pid, signal.SIGTERM)
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rc = proc.returncode
    sig_name = signal.Signals(-rc).name if rc < 0 else None
    if received and stopped is None:
        stopped = f"received {signal.Signals(received[0]).name}"
    return ProcessResult(128 - rc if rc < 0 else rc, sig_name, time.monotonic() - t0, stopped)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
