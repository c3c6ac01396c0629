"""phonopy on a finite dot: symmetry, symmetry-reduced displacements, and force constants from our forces.

The dot sits in its cubic non-periodic box; phonopy sees it as a crystal with that cell and a 1x1x1
supercell (the vacuum keeps images apart; the box's own symmetry limits the group to the dot's
operations that map the cube onto itself, which includes the cuboid dots' D4h/Oh subgroups when
they are aligned with the box axes).

What phonopy is used for here:

* the point group and the number of symmetry-reduced displacements (:func:`symmetry_report`): what a
  symmetry-expanded gradient would cost, reported beside the 6N Cartesian displacements we run;
* the force constants from the 6N displacements (:func:`phonopy_force_constants`), a peer-code check of
  our central-difference Hessian (they agree to round-off: ``tests/test_harmonic_phonopy.py``).

The band-edge gradient is not a force constant, and phonopy does not compute it; the route runs all
6N +-step Cartesian displacements so that the gradient comes by plain central differences.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

SYMPREC_A = 1e-3
"""Symmetry tolerance (Angstrom) handed to spglib through phonopy."""


def _phonopy(symbols: Sequence[str], positions_A: np.ndarray, box_A: float, symprec: float = SYMPREC_A):
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    cell = np.eye(3) * float(box_A)
    r = np.asarray(positions_A, float)
    atoms = PhonopyAtoms(symbols=list(symbols), cell=cell, scaled_positions=(r / float(box_A)) % 1.0)
    return Phonopy(atoms, supercell_matrix=np.eye(3, dtype=int), primitive_matrix=None, symprec=symprec,
                   log_level=0)  # fmt: skip


def symmetry_report(symbols: Sequence[str], positions_A: np.ndarray, box_A: float, step_A: float = 0.01,
                    symprec: float = SYMPREC_A) -> dict:
    """Point group (phonopy/spglib), number of symmetry operations and of phonopy's symmetry-reduced
    +-displacements, beside the 6N Cartesian ones the route runs."""
    ph = _phonopy(symbols, positions_A, box_A, symprec)
    ph.generate_displacements(distance=float(step_A), is_plusminus=True)
    sym = ph.symmetry
    return {
        "point_group": sym.pointgroup_symbol,
        "n_symmetry_operations": int(len(sym.symmetry_operations["rotations"])),
        "n_symmetry_reduced_displacements": int(len(ph.displacements)),
        "n_cartesian_displacements": 6 * len(symbols),
        "symprec_A": float(symprec),
    }


def phonopy_force_constants(symbols: Sequence[str], positions_A: np.ndarray, box_A: float,
                            forces_by_displacement: Mapping[tuple[int, int, int], np.ndarray], step_A: float,
                            symprec: float = SYMPREC_A) -> np.ndarray:
    """phonopy's force constants (3N x 3N, eV/A^2 for forces in eV/A) from displacements
    ``(atom, axis, sign) -> forces (N x 3)``, via a type-1 dataset and ``produce_force_constants``."""
    ph = _phonopy(symbols, positions_A, box_A, symprec)
    first_atoms = []
    for (atom, axis, sign), f in sorted(forces_by_displacement.items()):
        u = np.zeros(3)
        u[axis] = sign * float(step_A)
        first_atoms.append({"number": int(atom), "displacement": u, "forces": np.asarray(f, float)})
    ph.dataset = {"natom": len(symbols), "first_atoms": first_atoms}
    ph.produce_force_constants()
    fc = ph.force_constants  # (N, N, 3, 3): d^2 E / du_i,a du_j,b
    n = len(symbols)
    return fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
