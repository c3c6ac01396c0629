"""What the workflow needs to plan the harmonic route at parse time (stdlib at import: the Snakefile imports it;
the symmetry count imports the structure builder and phonopy when it is asked for)."""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Mapping

HARMONIC_DIR = "harmonic"
"""``results/harmonic/{system}/``: the route's work (``relax/``, ``relaxed.xyz``, ``sp/``, ``batches/``)."""
ANALYSIS_DIR = "analysis_harmonic"
"""``results/analysis_harmonic/{system}/``: the route's ``linewidth.json`` and tables."""


def batch_record(results: str, system: str, batch: int) -> str:
    """Path of batch ``batch``'s completion record (the rule's output)."""
    return f"{results}/{HARMONIC_DIR}/{system}/batches/b{int(batch)}.json"


TIGHT_RELAX_OVERRIDES = {"motion": {"geo_opt": {"max_force": 1e-5, "rms_force": 5e-6, "max_dr": 1e-4, "rms_dr": 5e-5}}}
"""GEO_OPT criteria of the relaxation before the single points: 45x tighter in force than CP2K's defaults
(MAX_FORCE 1e-5 Ha/bohr = 5e-4 eV/A); the residual forces are reported with the results."""


def n_batches(n_displacements: int, per_job: int) -> int:
    """Jobs of the single points: the reference alone, then the displacements ``per_job`` at a time."""
    return 1 + math.ceil(int(n_displacements) / max(1, int(per_job)))


@functools.lru_cache(maxsize=None)
def _symmetry_count(size: tuple, shell_layers: int, shell_metal: str, lattice_A: float, vacuum_A: float,
                    step_A: float) -> int:
    from qdphonon.harmonic.symmetry import reduced_displacements
    from qdphonon.structures.build import build_quantum_dot
    from qdphonon.structures.model import QuantumDotSpec

    dot = build_quantum_dot(QuantumDotSpec(tuple(size), shell_layers, shell_metal, lattice_A, vacuum_A))
    return len(reduced_displacements(dot.symbols, dot.positions_A, dot.box_A, step_A)[0])


def n_displacements(config: Mapping[str, Any], system) -> int:
    """Displaced single points of ``system``'s harmonic route: 6N (``cartesian``), or the number phonopy's
    symmetry reduction of the ideal cut gives (``symmetry``; builds the cut, imports phonopy)."""
    h = config["harmonic"]
    if h["displacements"] == "cartesian":
        return 6 * int(system.n_atoms)
    s = config["structure"]
    return _symmetry_count(tuple(system.size), int(system.shell_layers), str(system.shell_metal),
                           float(s["lattice_A"]), float(s["vacuum_A"]), float(h["step_A"]))  # fmt: skip


def tight_relax_overrides(user: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's ``cp2k.overrides`` with the tight GEO_OPT criteria merged over them (the criteria win)."""
    def merge(a: dict, b: Mapping) -> dict:
        for k, v in b.items():
            a[k] = merge(a.get(k) if isinstance(a.get(k), dict) else {}, v) if isinstance(v, Mapping) else v
        return a

    return merge(copy.deepcopy(dict(user or {})), TIGHT_RELAX_OVERRIDES)
