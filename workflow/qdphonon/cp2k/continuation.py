"""Continuation inputs: ``EXT_RESTART`` from CP2K's restart file, the saved wavefunction, the
remaining steps, CENTER_COORDINATES off; CP2K's own WALLTIME; a restart-file backup.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping
from qdphonon.cp2k.inputs import walltime_hms
from qdphonon.cp2k.readback import _sec


def continuation_tree(
    tree: Mapping[str, Any],
    *,
    restart_file: str,
    wfn_file: str | None,
    remaining_steps: int,
) -> dict[str, Any]:
    """The tree of a continuation: ``EXT_RESTART`` (positions, velocities, thermostat, counters,
    random-number state), the SCF started from the saved wavefunction, ``STEPS`` set to the
    steps still to run (CP2K counts ``STEPS`` from the restored step), and
    ``CENTER_COORDINATES`` off (the restored positions are already in the box; centring them
    again shifts the whole trajectory at the restart)."""
    out = copy.deepcopy(dict(tree))
    out["+ext_restart"] = {
        "restart_file_name": restart_file,
        "restart_counters": True,
        "restart_pos": True,
        "restart_vel": True,
        "restart_thermostat": True,
        "restart_randomg": True,
    }
    force_eval = _sec(out, "force_eval")
    if wfn_file is not None and force_eval is not None:
        dft = force_eval.setdefault("+dft", {})
        dft["wfn_restart_file_name"] = wfn_file
        dft.setdefault("+scf", {})["scf_guess"] = "restart"
    out["+motion"]["+md"]["steps"] = int(remaining_steps)
    centre = _sec(force_eval, "subsys", "topology", "center_coordinates")
    if centre is not None:
        centre["_"] = False
    return out


def with_initial_wfn(tree: Mapping[str, Any], wfn_file: str | None) -> dict[str, Any]:
    """The tree of a fresh MD whose first SCF starts from ``wfn_file`` (``SCF_GUESS RESTART``),
    the wavefunction the relaxation converged at (nearly) the same geometry: the first step then
    needs a few SCF iterations instead of dozens from the atomic guess. ``None``: unchanged."""
    out = copy.deepcopy(dict(tree))
    force_eval = _sec(out, "force_eval")
    if wfn_file is not None and force_eval is not None:
        dft = force_eval.setdefault("+dft", {})
        dft["wfn_restart_file_name"] = wfn_file
        dft.setdefault("+scf", {})["scf_guess"] = "restart"
    return out


def with_walltime(tree: Mapping[str, Any], walltime_s: float | None) -> dict[str, Any]:
    """The tree with ``GLOBAL/WALLTIME`` set (HH:MM:SS) so CP2K stops cleanly before the job does."""
    out = copy.deepcopy(dict(tree))
    if walltime_s is not None:
        out.setdefault("+global", {})["walltime"] = walltime_hms(walltime_s)
    return out


def with_restart_backup(tree: Mapping[str, Any]) -> dict[str, Any]:
    """The tree with one backup of CP2K's restart file (``md-1.restart.bak-1``), the fall-back when a
    kill hits while the restart file is being written."""
    out = copy.deepcopy(dict(tree))
    restart = _sec(out, "motion", "print", "restart")
    if restart is not None:
        restart["backup_copies"] = max(1, int(restart.get("backup_copies", 1)))
    return out
