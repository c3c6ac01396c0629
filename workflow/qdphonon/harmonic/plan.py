"""What the workflow needs to plan the harmonic route at parse time (stdlib only: the Snakefile imports it)."""

from __future__ import annotations

import copy
import math
from typing import Any, Mapping

TIGHT_RELAX_OVERRIDES = {"motion": {"geo_opt": {"max_force": 1e-5, "rms_force": 5e-6, "max_dr": 1e-4, "rms_dr": 5e-5}}}
"""GEO_OPT criteria of the relaxation before the single points: 45x tighter in force than CP2K's defaults
(MAX_FORCE 1e-5 Ha/bohr = 5e-4 eV/A); the residual forces are reported with the results."""


def n_batches(n_atoms: int, per_job: int) -> int:
    """Jobs of the single points: the reference alone, then the 6N displacements ``per_job`` at a time."""
    return 1 + math.ceil(6 * int(n_atoms) / max(1, int(per_job)))


def tight_relax_overrides(user: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's ``cp2k.overrides`` with the tight GEO_OPT criteria merged over them (the criteria win)."""
    def merge(a: dict, b: Mapping) -> dict:
        for k, v in b.items():
            a[k] = merge(a.get(k) if isinstance(a.get(k), dict) else {}, v) if isinstance(v, Mapping) else v
        return a

    return merge(copy.deepcopy(dict(user or {})), TIGHT_RELAX_OVERRIDES)
