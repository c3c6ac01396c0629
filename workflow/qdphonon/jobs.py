"""How many times a CP2K job may be resubmitted: enough wall-time segments for the longest planned
trajectory at its cost estimate, with a floor for crashes and a cap so nothing retries forever.

A job that reaches its wall time stops CP2K cleanly (exit 75) and Snakemake's ``retries``
resubmits it; each attempt continues from the restart file. The engine itself refuses to go on
when segments stop making progress, so the cap is a backstop, not the only guard. Light: the
Snakefile imports this at parse time.
"""

from __future__ import annotations

import math

MIN_RETRIES = 5
"""Attempts allowed even when one job should suffice (crashes, node failures, pre-emption)."""
MAX_RETRIES = 200
"""Cap: a campaign needing more segments than this should ask for longer jobs."""


def segments_needed(estimated_hours: float, runtime_min: float, margin_min: float) -> int:
    """Wall-time segments for a run of ``estimated_hours`` in jobs of ``runtime_min`` minutes,
    of which ``margin_min`` are kept free for CP2K's clean stop."""
    usable = float(runtime_min) - float(margin_min)
    if usable <= 0:
        raise ValueError(f"runtime {runtime_min} min leaves no time after the {margin_min} min wall-time margin")
    return max(1, math.ceil(60.0 * float(estimated_hours) / usable))


def job_retries(estimated_hours: float, runtime_min: float, margin_min: float,
                minimum: int = MIN_RETRIES, cap: int = MAX_RETRIES) -> int:
    """Snakemake ``retries`` for a CP2K job: segments needed (x1.5 for a pessimistic estimate) + 2, at
    least ``minimum``, at most ``cap``."""
    needed = segments_needed(1.5 * estimated_hours, runtime_min, margin_min)
    return int(min(cap, max(minimum, needed + 2)))
