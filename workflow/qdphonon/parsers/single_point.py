"""A CP2K single point (``RUN_TYPE ENERGY_FORCE``) as the harmonic route needs it: forces and frontier levels.

Read from one single-point directory (inputs from :func:`qdphonon.cp2k.inputs.cp2k_input_tree`):

* ``{project}-forces-1_0.xyz`` (``FORCE_EVAL/PRINT/FORCES``): ``# ATOMIC FORCES in [a.u.]`` then one
  row per atom ``index kind element Fx Fy Fz`` (Hartree/bohr), closed by ``SUM OF ATOMIC FORCES``;
* ``{project}-mo-1_0.MOLog`` or the main output's ``MO_CUBES`` eigenvalue print (OT): the levels near
  the gap;
* the main output: ``PROGRAM ENDED AT`` (a whole run), SCF convergence, the electron count, the energy.

A single point is complete only when all of it parses; otherwise :class:`SinglePointIncomplete` says
which file and line fell short (the runner then runs it again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qdphonon.parsers.common import _is_synthetic_line
from qdphonon.parsers.molog import read_molog
from qdphonon.units import BOHR_A, HARTREE_eV

HA_PER_BOHR_eV_PER_A = HARTREE_eV / BOHR_A

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"
_RE_FORCE_ROW = re.compile(rf"^\s*(\d+)\s+\d+\s+([A-Za-z]+)\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})\s*$")
_RE_ENERGY = re.compile(rf"ENERGY\|\s+Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+({_FLOAT})")
_RE_NEL = re.compile(r"^\s*Number of electrons:\s+(\d+)\s*$")
_RE_TOTAL_TIME = re.compile(rf"^ CP2K\s+\d+\s+{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}\s+({_FLOAT})\s*$")
"""The timing report's CP2K row: calls, ASD, self time (average, max), total time (average, max): its last column."""


class SinglePointIncomplete(ValueError):
    """A single point whose files do not (yet) hold a whole result."""


@dataclass(frozen=True)
class SinglePointOutput:
    """Forces (N x 3, eV/A), element symbols, occupied levels (eV, highest first), unoccupied levels (eV,
    lowest first), total energy (eV), electron count, SCF converged; ``wall_s`` CP2K's own total time (the
    timing report's maximum over ranks; None when it printed none, as the mock)."""

    symbols: list[str]
    forces_eV_A: np.ndarray
    occupied_eV: np.ndarray
    unoccupied_eV: np.ndarray
    energy_eV: float
    n_electrons: int
    scf_converged: bool
    synthetic: bool = False
    wall_s: float | None = None


def read_forces(path: Path) -> tuple[list[str], np.ndarray]:
    """Symbols and forces (eV/A) of a CP2K forces print; SinglePointIncomplete when cut short."""
    if not path.is_file():
        raise SinglePointIncomplete(f"{path}: no forces file")
    symbols, rows, closed = [], [], False
    for line in path.read_text(errors="replace").splitlines():
        if "SUM OF ATOMIC FORCES" in line:
            closed = True
            break
        m = _RE_FORCE_ROW.match(line)
        if m:
            if int(m.group(1)) != len(rows) + 1:
                raise SinglePointIncomplete(f"{path}: atom {m.group(1)} out of order (expected {len(rows) + 1})")
            symbols.append(m.group(2))
            rows.append([float(m.group(i).replace("D", "E").replace("d", "e")) for i in (3, 4, 5)])
    if not closed or not rows:
        raise SinglePointIncomplete(f"{path}: forces print not complete (no 'SUM OF ATOMIC FORCES' line)")
    return symbols, np.asarray(rows) * HA_PER_BOHR_eV_PER_A


def _ot_levels(lines: list[str]) -> tuple[list[float], list[float]]:
    """The last ``MO_CUBES`` eigenvalue print of a main output: (occupied, unoccupied), eV (CP2K prints
    them in Hartree, the occupied subspace whole, the unoccupied after an ``OT| Eigensolver`` line)."""
    occ: list[float] = []
    unocc: list[float] = []
    mode = None
    for line in lines:
        if "Eigenvalues of the occupied subspace" in line:
            mode, occ = "occ", []
        elif "igenvalues of the unoccupied subspace" in line:
            mode, unocc = "unocc", []
        elif mode is not None:
            s = line.strip()
            if not s or s.startswith("---") or s.startswith("OT|"):
                continue
            try:
                values = [float(v) * HARTREE_eV for v in s.split()]
            except ValueError:
                mode = None
                continue
            (occ if mode == "occ" else unocc).extend(values)
    return occ, unocc


def read_single_point(directory: str | Path, project: str = "sp", output: str = "sp.out") -> SinglePointOutput:
    """The result of one single-point directory; SinglePointIncomplete when any part is missing or cut short,
    ValueError for a whole run that is unusable (SCF not converged is reported, not refused)."""
    d = Path(directory)
    out = d / output
    if not out.is_file():
        raise SinglePointIncomplete(f"{out}: no main output")
    lines = out.read_text(errors="replace").splitlines()
    if not any("PROGRAM ENDED AT" in ln for ln in lines[-40:]):
        raise SinglePointIncomplete(f"{out}: CP2K did not finish (no 'PROGRAM ENDED AT')")
    energies = [m.group(1) for ln in lines if (m := _RE_ENERGY.search(ln))]
    nel = [int(m.group(1)) for ln in lines if (m := _RE_NEL.match(ln))]
    if not energies or not nel:
        raise SinglePointIncomplete(f"{out}: no total energy or electron count printed")
    n_el = nel[-1]
    if n_el % 2:
        raise ValueError(f"{out}: odd electron count {n_el}: closed-shell band edges undefined")
    homo = n_el // 2
    converged = not any("SCF run NOT converged" in ln for ln in lines)
    symbols, forces = read_forces(d / f"{project}-forces-1_0.xyz")
    molog = d / f"{project}-mo-1_0.MOLog"
    occupied: list[float] = []
    unoccupied: list[float] = []
    if molog.is_file():
        blocks, _ = read_molog(molog)
        blocks = [b for b in blocks if b.complete and not b.guess]
        if not blocks:
            raise SinglePointIncomplete(f"{molog}: no complete MO block")
        b = blocks[-1]
        occupied = sorted((float(e) for i, e in zip(b.index, b.energy_eV) if i <= homo), reverse=True)
        unoccupied = sorted(float(e) for i, e in zip(b.index, b.energy_eV) if i > homo)
    if not unoccupied:
        ot_occ, ot_unocc = _ot_levels(lines)
        if not ot_unocc:
            raise SinglePointIncomplete(f"{out}: no unoccupied levels (MOLog or MO_CUBES print)")
        unoccupied = sorted(ot_unocc)
        if not occupied:
            occupied = sorted(ot_occ, reverse=True)
    if not occupied:
        raise SinglePointIncomplete(f"{out}: no occupied levels printed")
    times = [float(m.group(1)) for ln in lines[-400:] if (m := _RE_TOTAL_TIME.match(ln))]
    return SinglePointOutput(symbols, forces, np.asarray(occupied), np.asarray(unoccupied),
                             float(energies[-1]) * HARTREE_eV, n_el, converged,
                             any(_is_synthetic_line(ln) for ln in lines[:5]), times[-1] if times else None)  # fmt: skip
