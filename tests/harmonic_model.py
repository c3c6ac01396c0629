"""A model cluster with a known Hessian and band edges linear in the bond lengths (tests of the harmonic route).

Pair springs ``V = sum_ij k_ij (|r_ij| - r0_ij)^2 / 2`` at their rest lengths (a minimum, invariant under
translation and rotation) with the analytic Hessian ``sum k_ij u u^T`` blocks; band edges
``VBM = -sum c_ij (|r_ij| - r0_ij) +- |sum s_ij (|r_ij| - r0_ij)|`` (a doubly degenerate VBM, split
linearly by displacements, centroid linear) and ``CBM = sum b_ij (|r_ij| - r0_ij)`` (non-degenerate).
"""

from __future__ import annotations

import numpy as np

from qdphonon.harmonic.assemble import SinglePoint

MASSES_amu = np.array([207.2, 79.904, 132.905, 79.904, 79.904])
POSITIONS_A = np.array([[0.0, 0.0, 0.0], [2.9, 0.2, -0.1], [-0.3, 3.1, 0.4], [0.2, -0.4, 3.0], [-2.2, -1.9, -1.6]])


class SpringModel:
    def __init__(self, positions_A=POSITIONS_A, masses_amu=MASSES_amu, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.r0 = np.asarray(positions_A, float)
        self.m = np.asarray(masses_amu, float)
        n = len(self.m)
        self.pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        self.k = rng.uniform(1.0, 4.0, len(self.pairs))  # eV/A^2
        self.len0 = np.array([np.linalg.norm(self.r0[i] - self.r0[j]) for i, j in self.pairs])
        self.c = rng.normal(0.0, 0.05, len(self.pairs))  # eV/A
        self.s = rng.normal(0.0, 0.05, len(self.pairs))
        self.b = rng.normal(0.0, 0.05, len(self.pairs))

    def stretch(self, r: np.ndarray) -> np.ndarray:
        """|r_ij| - r0_ij for every pair; r may carry leading batch axes (..., N, 3)."""
        i, j = np.array(self.pairs).T
        return np.linalg.norm(r[..., i, :] - r[..., j, :], axis=-1) - self.len0

    def energy_eV(self, r: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum(self.k * self.stretch(r) ** 2, axis=-1)

    def forces_eV_A(self, r: np.ndarray) -> np.ndarray:
        f = np.zeros_like(r)
        for (i, j), k, l0 in zip(self.pairs, self.k, self.len0):
            v = r[i] - r[j]
            d = np.linalg.norm(v)
            fi = -k * (d - l0) * v / d
            f[i] += fi
            f[j] -= fi
        return f

    def hessian_eV_A2(self) -> np.ndarray:
        n = len(self.m)
        h = np.zeros((3 * n, 3 * n))
        for (i, j), k in zip(self.pairs, self.k):
            u = (self.r0[i] - self.r0[j]) / np.linalg.norm(self.r0[i] - self.r0[j])
            blk = k * np.outer(u, u)
            for a, b, sgn in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
                h[3 * a:3 * a + 3, 3 * b:3 * b + 3] += sgn * blk
        return h

    def bond_jacobian(self) -> np.ndarray:
        """d|r_ij| / dR at the reference (pairs x 3N)."""
        n = len(self.m)
        jac = np.zeros((len(self.pairs), 3 * n))
        for p, (i, j) in enumerate(self.pairs):
            u = (self.r0[i] - self.r0[j]) / np.linalg.norm(self.r0[i] - self.r0[j])
            jac[p, 3 * i:3 * i + 3] = u
            jac[p, 3 * j:3 * j + 3] = -u
        return jac

    def gap_gradient_eV_A(self) -> np.ndarray:
        """Exact gradient of CBM - (VBM centroid)."""
        return self.bond_jacobian().T @ (self.b + self.c)

    def vbm_centroid_eV(self, r):
        return -np.sum(self.c * self.stretch(r), axis=-1)

    def gap_eV(self, r):
        """CBM minus the VBM centroid (the smooth gap), eV."""
        return 3.0 + np.sum(self.b * self.stretch(r), axis=-1) - self.vbm_centroid_eV(r)

    def single_point(self, r: np.ndarray) -> SinglePoint:
        x = self.stretch(r)
        centre, split = -np.sum(self.c * x), abs(np.sum(self.s * x))
        occupied = np.array([centre + split, centre - split, centre - 0.8, centre - 1.1])
        unoccupied = np.array([3.0 + np.sum(self.b * x), 3.6, 3.9])
        return SinglePoint(self.forces_eV_A(r), occupied, unoccupied, float(self.energy_eV(r)))
