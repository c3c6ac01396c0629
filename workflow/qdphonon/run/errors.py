"""Named failures of the engines and the exit codes the command line maps them to."""

from __future__ import annotations

from typing import Any

EXIT_WALLTIME = 75
"""Exit status of ``qdphonon run-aimd`` when CP2K stopped on its WALLTIME before STEPS (EX_TEMPFAIL):
the scheduler re-submits the job and the next one continues from the restart file."""


class EngineError(RuntimeError):
    """A run that cannot go on; the message says why and what to do."""


class CP2KNotFoundError(EngineError, FileNotFoundError):
    """The CP2K executable (or the MPI launcher) is not on PATH."""


class RunDirMismatchError(EngineError, ValueError):
    """The run directory holds another run (different input) or files the engine did not write."""


class RunDirLocked(EngineError):
    """Another live engine holds the run directory's lock (:mod:`qdphonon.run.lock`); ``holder``
    is what its lock file says (``pid``, ``host``, ``since``, ``purpose``, ``cp2k_pid``)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None):
        super().__init__(message)
        self.holder = dict(holder or {})


class WalltimeReached(EngineError):
    """CP2K stopped on its WALLTIME before STEPS; the run directory is ready to be continued."""

    exit_status = EXIT_WALLTIME


class SCFConvergenceError(EngineError):
    """An MD step's SCF did not converge and the policy is ``fail``."""


class RunInterrupted(EngineError):
    """The engine received a termination signal and stopped CP2K; the run directory can be continued."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status
