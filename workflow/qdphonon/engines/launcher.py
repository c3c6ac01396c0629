"""Which MPI launcher starts CP2K: decided by the engine from a config setting and the environment,
never by a profile block that a ``--set-resources`` on the command line can replace.

``auto`` (the default) is ``srun`` inside a SLURM allocation (``SLURM_JOB_ID`` set) and ``mpirun``
elsewhere; ``srun`` and ``mpirun`` force one. ``srun`` must be able to start OpenMPI ranks: a site
whose ``MpiDefault`` is not ``pmix`` exports ``SLURM_MPI_TYPE=pmix`` (srun reads it).
"""

from __future__ import annotations

import os
from typing import Mapping

LAUNCHERS = ("auto", "mpirun", "srun")


def resolve_launcher(setting: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The launcher executable for ``setting`` (one of :data:`LAUNCHERS`) in ``environ``."""
    environ = os.environ if environ is None else environ
    setting = setting or "auto"
    if setting not in LAUNCHERS:
        raise ValueError(f"cp2k.mpi_launcher: {setting!r} is not one of {', '.join(LAUNCHERS)}")
    if setting != "auto":
        return setting
    return "srun" if environ.get("SLURM_JOB_ID") else "mpirun"
