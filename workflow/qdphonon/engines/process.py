"""Starting CP2K (MPI launcher, environment) and waiting for it while forwarding signals; CP2K dies
with the engine (``PR_SET_PDEATHSIG``), however the engine dies."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence
from qdphonon.run.errors import CP2KNotFoundError


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


def cp2k_environment(threads: int = 1, mpi: str | None = None, base: Mapping[str, str] | None = None,
                     run_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Environment of a CP2K process: ``OMP_NUM_THREADS`` threads per rank, one BLAS thread,
    OpenMPI's root permission when running as root (containers, CI), unbuffered Fortran I/O and,
    with ``run_dir``, the marker naming the run directory.

    ``GFORTRAN_UNBUFFERED_ALL=y``: CP2K's main output reaches the disk line by line, in program
    order with the trajectory, energy and restart files (buffered, a SIGKILL was seen to lose the
    main output's last MD step while the restart file already had it; no measurable cost for
    xTB). The marker (:data:`qdphonon.run.lock.MARKER_ENV`) lets the next engine find CP2K
    processes a dead engine left behind, MPI ranks included.
    """
    env = dict(os.environ if base is None else base)
    env["OMP_NUM_THREADS"] = str(int(threads))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("GFORTRAN_UNBUFFERED_ALL", "y")
    if run_dir is not None:
        from qdphonon.run.lock import MARKER_ENV, marker_value

        env[MARKER_ENV] = marker_value(run_dir)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


class StopReason(enum.Enum):
    """Why the engine stopped a CP2K process (values are what ``segments.json`` records)."""

    RECEIVED_SIGNAL = "received_signal"
    """The engine got SIGTERM/SIGINT/SIGHUP (a job cancelled, a user's Ctrl-C) and forwarded it."""
    SCF_NOT_CONVERGED = "scf_not_converged"
    """The SCF watch saw a finished MD step whose SCF did not converge (policy ``fail``)."""
    WATCH = "watch"
    """Another watch asked to stop."""


@dataclasses.dataclass(frozen=True)
class Stop:
    """A watch's request to stop the process: the reason, and a note for people (never parsed)."""

    reason: StopReason
    note: str


@dataclasses.dataclass
class ProcessResult:
    """How a CP2K process ended: exit status (shell style, 128+N for signal N), the number of the
    signal that ended it (None when it exited), wall seconds; ``stop`` says why we stopped it
    (None: it ended by itself), ``received_signal`` the signal the engine got (with
    ``StopReason.RECEIVED_SIGNAL``), ``escalated`` that SIGTERM was not enough (SIGKILL)."""

    exit_status: int
    signal_number: int | None
    wall_s: float
    stop: Stop | None = None
    received_signal: int | None = None
    escalated: bool = False

    @property
    def signal(self) -> str | None:
        """The name of the signal that ended the process (``SIGTERM``), for records and messages."""
        return None if self.signal_number is None else signal.Signals(self.signal_number).name

    @property
    def stop_reason(self) -> StopReason | None:
        return None if self.stop is None else self.stop.reason


PR_SET_PDEATHSIG = 1
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 10.0
"""Seconds CP2K gets to end after SIGTERM before SIGKILL (SLURM's KillWait is 30 s by default)."""


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get ``sig`` when the engine dies (Linux ``PR_SET_PDEATHSIG``),
    or None where prctl is unavailable. A child whose parent died before the call kills itself."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def run_process(
    cmd: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    watch: Callable[[], Stop | None] | None = None,
    poll_s: float = 2.0,
    on_start: Callable[[int], None] | None = None,
    grace_s: float = GRACE_S,
    pass_fds: Sequence[int] = (),
    death_signal: int = signal.SIGKILL,
) -> ProcessResult:
    """Run ``cmd`` in its own process group and session; it dies with this process.

    Dying with us: the child gets ``death_signal`` when this process dies, however it dies
    (``PR_SET_PDEATHSIG``; SIGKILL for CP2K itself, SIGTERM for an MPI launcher, which then
    takes its ranks down). SIGTERM, SIGINT and SIGHUP sent to us are forwarded to the child's
    group as SIGTERM; when it has not ended ``grace_s`` seconds later (or a second signal
    comes) the group gets SIGKILL. ``watch`` is called every ``poll_s`` seconds; a returned
    :class:`Stop` stops the process the same way. ``on_start`` receives the process id;
    ``pass_fds`` are inherited by the child (the run directory's lock).
    """
    t0 = time.monotonic()
    received: list[int] = []
    proc: subprocess.Popen | None = None
    term_at: list[float] = []

    def stop(hard: bool = False) -> None:
        if proc is None:
            return
        if hard:
            _signal_group(proc.pid, signal.SIGKILL)
        elif not term_at:
            term_at.append(time.monotonic())
            _signal_group(proc.pid, signal.SIGTERM)

    def forward(signum, _frame):
        received.append(signum)
        stop(hard=len(received) > 1)

    previous = {}
    for sig in FORWARDED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, forward)
        except ValueError:  # not the main thread
            pass
    stopped = None
    escalated = False
    try:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), start_new_session=True,
                                preexec_fn=_die_with_parent(death_signal), pass_fds=tuple(pass_fds))  # fmt: skip
        if received:
            stop(hard=len(received) > 1)
        if on_start is not None:
            on_start(proc.pid)
        while True:
            timeout = poll_s
            if term_at:
                timeout = max(0.01, min(poll_s, term_at[0] + grace_s - time.monotonic()))
            try:
                proc.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                if term_at and time.monotonic() >= term_at[0] + grace_s and not escalated:
                    escalated = True
                    stop(hard=True)
                if watch is not None and stopped is None:
                    stopped = watch()
                    if stopped is not None:
                        stop()
    except BaseException:
        if proc is not None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    rc = proc.returncode
    if received and stopped is None:
        stopped = Stop(StopReason.RECEIVED_SIGNAL, f"received {signal.Signals(received[0]).name}")
    return ProcessResult(128 - rc if rc < 0 else rc, -rc if rc < 0 else None, time.monotonic() - t0, stopped,
                         received[0] if received else None, escalated)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
