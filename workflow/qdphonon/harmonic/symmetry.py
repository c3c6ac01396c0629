"""phonopy on a finite dot: its point group, symmetry-reduced displacements, and force constants.

The dot sits in its cubic non-periodic box; phonopy sees it as a crystal with that cell and a 1x1x1
supercell (the vacuum keeps images apart; the box's own symmetry limits the group to the dot's
operations that map the cube onto itself, which includes the cuboid dots' subgroups of Oh when they
are aligned with the box axes). The cell is cubic, so phonopy's rotations (lattice basis) are also
the Cartesian ones.

Two displacement schemes (``harmonic.displacements``, docs/physics.md §5.2):

* ``cartesian``: all 6N +-step displacements; Hessian and band-edge gradients by plain central
  differences, no symmetry assumed (:mod:`qdphonon.harmonic.assemble`);
* ``symmetry``: phonopy's symmetry-reduced +-step displacements along the box axes (a subset of the
  Cartesian ones, so their directories are shared); the force constants come from phonopy, and the
  gradient of each band edge from the same displacements expanded by the point group
  (:func:`symmetric_gradient`): a band edge (or the centroid of a degenerate manifold) is the same at
  symmetry-equivalent geometries, so its derivative along a displacement of atom a is its derivative
  along the rotated displacement of the image of a. The relaxed structure is symmetrised onto the
  cut's point group first (:func:`symmetrise`); the shift is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from qdphonon.harmonic.assemble import Displacement

SYMPREC_A = 1e-3
"""Symmetry tolerance (Angstrom) handed to spglib through phonopy."""

SYMMETRISE_TOL_A = 0.01
"""Largest distance (Angstrom) between an atom of the relaxed structure and the image of its partner under
an operation of the cut's point group; beyond it the relaxation broke the symmetry and the symmetry
scheme refuses (use ``harmonic.displacements: cartesian``)."""


class SymmetryBroken(ValueError):
    """The structure does not keep the point group the displacements were planned with."""


@dataclass(frozen=True)
class PointGroupPlan:
    """The point group of a cut and the displacements it needs.

    ``rotations`` (n_ops x 3 x 3, Cartesian) and ``translations_frac`` (n_ops x 3, fractions of the box):
    operation k moves the point x (fractions of the box) to R_k x + t_k (modulo the box);
    ``permutations[k, i]`` is the atom that operation k moves atom i onto; ``displacements``: phonopy's
    symmetry-reduced +-step displacements along the box axes, in the Cartesian scheme's order."""

    point_group: str
    rotations: np.ndarray
    translations_frac: np.ndarray
    permutations: np.ndarray
    displacements: tuple[Displacement, ...]
    box_A: float

    @property
    def n_operations(self) -> int:
        return int(len(self.rotations))


def _cell(symbols: Sequence[str], positions_A: np.ndarray, box_A: float):
    from phonopy.structure.atoms import PhonopyAtoms

    r = np.asarray(positions_A, float)
    return PhonopyAtoms(symbols=list(symbols), cell=np.eye(3) * float(box_A), scaled_positions=(r / float(box_A)) % 1.0)


def _phonopy(symbols: Sequence[str], positions_A: np.ndarray, box_A: float, symprec: float = SYMPREC_A):
    from phonopy import Phonopy

    return Phonopy(_cell(symbols, positions_A, box_A), supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P",
                   symprec=symprec, log_level=0)  # fmt: skip


def symmetry_report(symbols: Sequence[str], positions_A: np.ndarray, box_A: float, step_A: float = 0.01,
                    symprec: float = SYMPREC_A) -> dict:
    """Point group (phonopy/spglib), number of symmetry operations and of the symmetry-reduced
    +-displacements (:func:`reduced_displacements`), beside the 6N Cartesian ones."""
    displacements, symmetry = reduced_displacements(symbols, positions_A, box_A, step_A, symprec)
    return {
        "point_group": symmetry.pointgroup_symbol,
        "n_symmetry_operations": int(len(symmetry.symmetry_operations["rotations"])),
        "n_symmetry_reduced_displacements": len(displacements),
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


def _images_frac(frac: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    return frac @ np.asarray(rotation, float).T + translation


def _wrapped(diff_frac: np.ndarray) -> np.ndarray:
    return diff_frac - np.round(diff_frac)


def atom_permutations(positions_A: np.ndarray, box_A: float, rotations: np.ndarray, translations_frac: np.ndarray,
                      tol_A: float) -> np.ndarray:
    """``perm[k, i]``: the atom nearest to the image of atom i under operation k (SymmetryBroken when that
    image is farther than ``tol_A`` from every atom, or two atoms map onto one)."""
    from scipy.spatial import cKDTree

    frac = (np.asarray(positions_A, float) / float(box_A)) % 1.0
    tree = cKDTree(frac, boxsize=1.0)
    perms = np.empty((len(rotations), len(frac)), dtype=int)
    for k, (rot, t) in enumerate(zip(rotations, translations_frac)):
        dist, perms[k] = tree.query(_images_frac(frac, rot, t) % 1.0)
        worst = int(np.argmax(dist))
        if dist[worst] * float(box_A) > tol_A:
            raise SymmetryBroken(f"operation {k} of the point group maps atom {worst} {dist[worst] * box_A:.3g} A away "
                                 f"from atom {perms[k, worst]}, its nearest (tolerance {tol_A} A)")  # fmt: skip
        if len(set(perms[k].tolist())) != len(frac):
            raise SymmetryBroken(f"operation {k} of the point group maps two atoms onto one (tolerance {tol_A} A)")
    return perms


def reduced_displacements(symbols: Sequence[str], positions_A: np.ndarray, box_A: float, step_A: float,
                          symprec: float = SYMPREC_A):
    """phonopy's symmetry-reduced +-``step_A`` displacements along the box axes (``is_diagonal=False``), in the
    Cartesian scheme's order, and phonopy's ``Symmetry`` of the structure."""
    from phonopy.harmonic.displacement import generate_systematic_displacements
    from phonopy.structure.symmetry import Symmetry

    cell = _cell(symbols, positions_A, box_A)
    symmetry = Symmetry(cell, symprec=symprec)
    dataset = generate_systematic_displacements(cell, symmetry, distance=float(step_A), is_plusminus=True,
                                                is_diagonal=False)  # fmt: skip
    displacements = []
    for first in dataset["first_atoms"]:
        atom, u = first["number"], np.asarray(first["displacement"], float)
        axis = int(np.argmax(np.abs(u)))
        if np.count_nonzero(np.abs(u) > 1e-9 * float(step_A)) != 1 or abs(abs(u[axis]) - step_A) > 1e-9:
            raise ValueError(f"phonopy proposed a displacement {u} A of atom {int(atom)} not along a box axis")
        displacements.append(Displacement(int(atom), axis, 1 if u[axis] > 0 else -1, float(step_A)))
    return sorted(displacements, key=lambda d: (d.atom, d.axis, -d.sign)), symmetry


def point_group_plan(symbols: Sequence[str], positions_A: np.ndarray, box_A: float, step_A: float,
                     symprec: float = SYMPREC_A) -> PointGroupPlan:
    """The point group of ``positions_A`` (phonopy/spglib at ``symprec``), its atom permutations and
    :func:`reduced_displacements`."""
    displacements, symmetry = reduced_displacements(symbols, positions_A, box_A, step_A, symprec)
    ops = symmetry.symmetry_operations
    rotations = np.asarray(ops["rotations"], int)
    translations = np.asarray(ops["translations"], float)
    perms = atom_permutations(positions_A, box_A, rotations, translations, tol_A=max(10 * symprec, 1e-3))
    return PointGroupPlan(symmetry.pointgroup_symbol, rotations, translations, perms, tuple(displacements),
                          float(box_A))  # fmt: skip


def symmetrise(positions_A: np.ndarray, plan: PointGroupPlan, tol_A: float = SYMMETRISE_TOL_A) -> tuple[np.ndarray, float]:
    """Positions averaged over the plan's point group (the group average: exactly symmetric) and the largest
    shift that made (Angstrom). SymmetryBroken when an atom is farther than ``tol_A`` from the image of its
    partner: the structure has lost the point group."""
    atom_permutations(positions_A, plan.box_A, plan.rotations, plan.translations_frac, tol_A)
    frac = np.asarray(positions_A, float) / plan.box_A
    shift = np.zeros_like(frac)
    for rot, t, perm in zip(plan.rotations, plan.translations_frac, plan.permutations):
        shift[perm] += _wrapped(_images_frac(frac, rot, t) - frac[perm])
    shift_A = shift / plan.n_operations * plan.box_A
    return np.asarray(positions_A, float) + shift_A, float(np.max(np.linalg.norm(shift_A, axis=1)))


def symmetric_gradient(plan: PointGroupPlan, derivatives: Mapping[tuple[int, int], float], n_atoms: int
                       ) -> tuple[np.ndarray, float]:
    """The gradient (N x 3) of a function the point group leaves invariant, from its derivatives
    ``(atom, axis) -> dE/dx`` along the reduced displacements: every derivative is also the derivative along
    the rotated axis at the image atom; each atom's three components by least squares over those images.

    Returns the gradient and the largest least-squares residual (same unit as the derivatives): zero up to
    round-off when the function is invariant. ValueError when an atom's images do not span three
    directions (the displacement set does not determine the gradient)."""
    rows: list[list[np.ndarray]] = [[] for _ in range(n_atoms)]
    values: list[list[float]] = [[] for _ in range(n_atoms)]
    for (atom, axis), value in derivatives.items():
        for rot, perm in zip(plan.rotations, plan.permutations):
            rows[perm[atom]].append(np.asarray(rot, float)[:, axis])
            values[perm[atom]].append(float(value))
    grad = np.zeros((n_atoms, 3))
    residual = 0.0
    for b in range(n_atoms):
        a = np.array(rows[b]).reshape(-1, 3)
        if np.linalg.matrix_rank(a) < 3:
            raise ValueError(f"atom {b}: the symmetry images of the displacements span {np.linalg.matrix_rank(a)} "
                             "of 3 directions; the gradient is not determined")  # fmt: skip
        grad[b] = np.linalg.lstsq(a, np.array(values[b]), rcond=None)[0]
        residual = max(residual, float(np.max(np.abs(a @ grad[b] - np.array(values[b])))))
    return grad, residual


def assemble_symmetric(reference, results: Mapping[Displacement, object], plan: PointGroupPlan,
                       symbols: Sequence[str], positions_A: np.ndarray, degeneracy_tol_meV: float | None = None):
    """The harmonic route's inputs from the symmetry-reduced single points (``symmetry`` scheme).

    ``reference``/``results``: :class:`~qdphonon.harmonic.assemble.SinglePoint` of the symmetrised
    reference ``positions_A`` and of each of ``plan.displacements``. Force constants: phonopy's, from the
    forces minus the reference's residual forces; gradients: :func:`symmetric_gradient` of the central
    differences. Returns the :class:`~qdphonon.harmonic.assemble.HarmonicData` and facts for the report
    (the gradients' symmetry residuals, eV/A)."""
    from qdphonon.harmonic.assemble import DEGENERACY_TOL_meV, HarmonicData, frontier_degeneracy

    missing = [d.name for d in plan.displacements if d not in results]
    if missing:
        raise ValueError(f"displacement {missing[0]} has no single point ({len(missing)} missing)")
    step = plan.displacements[0].step_A
    deg = frontier_degeneracy(reference, DEGENERACY_TOL_meV if degeneracy_tol_meV is None else degeneracy_tol_meV)
    f0 = np.asarray(reference.forces_eV_A, float)
    n_atoms = len(symbols)
    for d in plan.displacements:
        if np.shape(results[d].forces_eV_A) != (n_atoms, 3):
            raise ValueError(f"displacement {d.name}: forces of shape {np.shape(results[d].forces_eV_A)}, "
                             f"expected ({n_atoms}, 3)")  # fmt: skip
    forces = {(d.atom, d.axis, d.sign): np.asarray(results[d].forces_eV_A, float) - f0 for d in plan.displacements}
    h = phonopy_force_constants(symbols, positions_A, plan.box_A, forces, step)
    asymmetry = float(np.max(np.abs(h - h.T))) / (float(np.max(np.abs(h))) or 1.0)
    by_key = {(d.atom, d.axis, d.sign): results[d] for d in plan.displacements}
    grads, residuals = [], {}
    for edge, level in (("vbm", deg.vbm_eV), ("cbm", deg.cbm_eV)):
        derivatives = {}
        for d in plan.displacements:
            if d.sign > 0:
                minus = by_key.get((d.atom, d.axis, -1))
                if minus is None:
                    raise ValueError(f"displacement {d.name} has no -{d.step_A} A partner: the gradient needs both")
                derivatives[(d.atom, d.axis)] = (level(results[d]) - level(minus)) / (2.0 * step)
        g, residuals[f"{edge}_gradient_symmetry_residual_eV_A"] = symmetric_gradient(plan, derivatives, n_atoms)
        grads.append(g.ravel())
    data = HarmonicData(hessian_eV_A2=0.5 * (h + h.T), vbm_gradient_eV_A=grads[0], cbm_gradient_eV_A=grads[1],
                        residual_forces_eV_A=f0, degeneracy=deg, hessian_asymmetry=asymmetry, step_A=step,
                        gap_eV=deg.cbm_eV(reference) - deg.vbm_eV(reference))  # fmt: skip
    return data, residuals
