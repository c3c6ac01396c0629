"""Synthetic single points for the harmonic route (``engine: mock``), written in CP2K 2023.1's formats and
labelled synthetic in every file, so the route's parser, assembly and outputs run without CP2K.

The model is not physics: springs between every pair of atoms closer than ``BOND_CUTOFF_A`` at the
input geometry (rest length = that distance, so the input is the minimum), and band edges linear in
the Pb-Br (B-X) bond lengths, the VBM with a threefold degenerate manifold split by displacements.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qdphonon.units import BOHR_A, HARTREE_eV

BOND_CUTOFF_A = 4.6
SPRING_eV_A2 = {frozenset({"Pb", "Br"}): 2.0, frozenset({"Ca", "Br"}): 2.0, frozenset({"Sr", "Br"}): 2.0}
DEFAULT_SPRING_eV_A2 = 0.5
GAP_SLOPE_eV_A = 0.4
"""d(gap)/d(B-X bond length), eV/A, shared by all B-X bonds (a breathing-mode coupling)."""

LABEL = "# synthetic (mock engine): harmonic-route single point from a spring model; not physics"


class SpringDot:
    """The mock model of one dot (positions A, symbols) at its input geometry."""

    def __init__(self, symbols, positions_A):
        self.symbols = list(symbols)
        r = np.asarray(positions_A, float)
        self.pairs, self.k, self.l0, self.c = [], [], [], []
        for i in range(len(r)):
            for j in range(i + 1, len(r)):
                d = float(np.linalg.norm(r[i] - r[j]))
                if d < BOND_CUTOFF_A:
                    pair = frozenset({self.symbols[i], self.symbols[j]})
                    self.pairs.append((i, j))
                    self.k.append(SPRING_eV_A2.get(pair, DEFAULT_SPRING_eV_A2))
                    self.l0.append(d)
                    self.c.append(GAP_SLOPE_eV_A if "Br" in pair and len(pair & {"Pb", "Ca", "Sr"}) else 0.0)
        self.k, self.l0, self.c = map(np.asarray, (self.k, self.l0, self.c))

    def evaluate(self, positions_A) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Forces (eV/A), energy (eV), occupied levels (highest first), unoccupied levels (lowest first), eV."""
        r = np.asarray(positions_A, float)
        f = np.zeros_like(r)
        stretch = np.zeros(len(self.pairs))
        for p, (i, j) in enumerate(self.pairs):
            v = r[i] - r[j]
            d = np.linalg.norm(v)
            stretch[p] = d - self.l0[p]
            fi = -self.k[p] * stretch[p] * v / d
            f[i] += fi
            f[j] -= fi
        energy = float(0.5 * np.sum(self.k * stretch**2))
        shift = float(np.sum(self.c * stretch))
        split = 0.05 * np.tanh(stretch[: 3].sum() if stretch.size else 0.0)
        vbm = -5.0 - 0.5 * shift
        occupied = np.array([vbm + split, vbm, vbm - split, vbm - 0.6, vbm - 0.9])
        unoccupied = -5.0 + 2.5 + 0.5 * shift + np.array([0.0, 0.4, 0.7])
        return f, energy, np.sort(occupied)[::-1], unoccupied


def write_single_point(directory: Path, model: SpringDot, positions_A, project: str = "sp",
                       output: str = "sp.out") -> None:
    """Write ``output``, ``{project}-forces-1_0.xyz`` and ``{project}-mo-1_0.MOLog`` as CP2K would."""
    f, energy, occ, unocc = model.evaluate(positions_A)
    n_occ = 40
    directory.mkdir(parents=True, exist_ok=True)
    fa = f / (HARTREE_eV / BOHR_A)
    rows = [f"{i + 1:7d} {1:6d}      {s:<2s}   {x:16.10f} {y:16.10f} {z:16.10f}" for i, (s, (x, y, z))
            in enumerate(zip(model.symbols, fa))]
    total = fa.sum(0)
    (directory / f"{project}-forces-1_0.xyz").write_text(
        f"{LABEL}\n\n ATOMIC FORCES in [a.u.]\n\n # Atom   Kind   Element          X                Y                Z\n"
        + "\n".join(rows) + f"\n SUM OF ATOMIC FORCES   {total[0]:16.10f} {total[1]:16.10f} {total[2]:16.10f} "
        f"{np.linalg.norm(total):16.10f}\n")  # fmt: skip
    levels = [(n_occ - i, e, 2.0) for i, e in enumerate(occ)][::-1] + [(n_occ + 1 + i, e, 0.0) for i, e in enumerate(unocc)]
    mo = [f" MO| {i:6d} {e / HARTREE_eV:22.8f} {e:22.8f} {o:22.8f}" for i, e, o in levels]
    (directory / f"{project}-mo-1_0.MOLog").write_text(
        f"{LABEL}\n\n MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|\n"
        " MO|  Index      Eigenvalue [a.u.]        Eigenvalue [eV]             Occupation\n" + "\n".join(mo)
        + f"\n MO| Sum: {2.0 * len(occ):50.8f}\n MO| E(Fermi): {occ[0] / HARTREE_eV:18.8f} a.u. {occ[0]:18.8f} eV\n")
    (directory / output).write_text(
        f"{LABEL}\n Number of electrons:  {2 * n_occ:50d}\n  *** SCF run converged in     1 steps ***\n"
        f" ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:   {energy / HARTREE_eV:30.15f}\n"
        "  **** **** ******  **  PROGRAM ENDED AT                 (mock engine)\n")
