"""How long CP2K may run: the job's configured runtime, and inside a SLURM job the time its
allocation has left, whichever ends first, less the margin kept for the engine's own end.

Inside a SLURM job the allocation's end is what counts: Snakemake's job step may retry a failed
attempt in the same allocation, and such an attempt has only the time that is left, not the
configured runtime again. The end comes from ``SLURM_JOB_END_TIME`` (Unix seconds, set in the
job's environment by recent SLURM versions), else from ``squeue -h -j $SLURM_JOB_ID -o %e``
(the end time in the cluster's local time, ``2026-12-07T03:22:10``).
"""

from __future__ import annotations

import datetime
import os
import subprocess
from typing import Callable, Mapping


def allocation_end_epoch(env: Mapping[str, str] | None = None,
                         run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> float | None:  # fmt: skip
    """Unix time at which the SLURM allocation this process runs in ends; None outside SLURM, or
    when SLURM does not say (``squeue`` missing, failing, or printing ``N/A``/``UNLIMITED``)."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    end = (env.get("SLURM_JOB_END_TIME") or "").strip()
    if end.isdigit() and int(end) > 0:
        return float(end)
    try:
        res = run(["squeue", "-h", "-j", job, "-o", "%e"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    try:
        return datetime.datetime.fromisoformat(res.stdout.strip()).timestamp()
    except ValueError:
        return None


def cp2k_walltime_s(runtime_min: float | None, margin_min: float, *, elapsed_s: float,
                    allocation_end: float | None, now_epoch: float) -> float | None:  # fmt: skip
    """Seconds CP2K's ``GLOBAL/WALLTIME`` may allow: the smaller of what the configured
    ``runtime_min`` leaves after ``elapsed_s`` (the engine's own start) and what the allocation
    leaves at ``now_epoch``, less ``margin_min``; None when neither limits the run."""
    limits = []
    if runtime_min is not None:
        limits.append(float(runtime_min) * 60.0 - float(elapsed_s))
    if allocation_end is not None:
        limits.append(float(allocation_end) - float(now_epoch))
    if not limits:
        return None
    return min(limits) - float(margin_min) * 60.0
