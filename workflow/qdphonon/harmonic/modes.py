"""Harmonic normal modes of a finite cluster from finite-displacement forces (docs/physics.md §5).

Units: positions Angstrom, forces eV/Angstrom, masses amu, energies eV; mode energies hbar w in meV.
The Hessian is assembled by central differences (``H_ij = -(F_j(+d_i) - F_j(-d_i)) / 2d``) and
symmetrised; the six rigid motions of the free cluster (three for a single atom, five for a linear
one) are removed exactly by diagonalising the mass-weighted Hessian in the orthogonal complement of
the translations and infinitesimal rotations about the centre of mass (Eckart frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qdphonon.units import HBAR_meV_fs

EV_J = 1.602176634e-19
AMU_KG = 1.66053906660e-27
ANGSTROM_M = 1e-10

SQRT_EV_PER_AMU_A2_rad_per_fs = math.sqrt(EV_J / (AMU_KG * ANGSTROM_M**2)) * 1e-15
"""sqrt(eV / (amu Angstrom^2)) in rad/fs: the angular frequency of a mass-weighted Hessian eigenvalue of 1."""

HBAR_OMEGA_meV_PER_SQRT_EIGENVALUE = HBAR_meV_fs * SQRT_EV_PER_AMU_A2_rad_per_fs
"""hbar w in meV for a mass-weighted Hessian eigenvalue of 1 eV/(amu Angstrom^2) (64.65 meV)."""

RIGID_SINGULAR_TOL = 1e-8
"""Relative singular value below which a rigid-motion vector is dependent (linear molecules: 5 rigid modes)."""


@dataclass(frozen=True)
class NormalModes:
    """Vibrational modes of a cluster: ``omega2`` (eV/(amu A^2), mass-weighted Hessian eigenvalues) and
    ``vectors`` (3N x n_modes, orthonormal mass-weighted eigenvectors e_k, orthogonal to the rigid motions)."""

    omega2: np.ndarray
    vectors: np.ndarray
    masses_amu: np.ndarray
    n_rigid: int

    @property
    def energy_meV(self) -> np.ndarray:
        """hbar w_k in meV; negative for an imaginary mode (w^2 < 0: not a minimum)."""
        return np.sign(self.omega2) * np.sqrt(np.abs(self.omega2)) * HBAR_OMEGA_meV_PER_SQRT_EIGENVALUE

    @property
    def imaginary(self) -> np.ndarray:
        return self.omega2 < 0


def central_difference_hessian(forces_plus: np.ndarray, forces_minus: np.ndarray, step_A: float) -> np.ndarray:
    """Symmetrised Hessian (eV/A^2, 3N x 3N) from forces after displacing coordinate i by +step and -step.

    ``forces_plus[i]`` / ``forces_minus[i]``: the 3N force components (eV/A, flattened atom-major)
    with coordinate i (atom i // 3, axis i % 3) displaced by ``+step_A`` / ``-step_A``.
    """
    fp, fm = np.asarray(forces_plus, float), np.asarray(forces_minus, float)
    n = fp.shape[0]
    if fp.shape != (n, n) or fm.shape != (n, n):
        raise ValueError(f"forces must be (3N, 3N) arrays, got {fp.shape} and {fm.shape}")
    if step_A <= 0:
        raise ValueError(f"displacement step must be > 0, got {step_A}")
    h = -(fp - fm) / (2.0 * step_A)
    return 0.5 * (h + h.T)


def hessian_asymmetry(forces_plus: np.ndarray, forces_minus: np.ndarray, step_A: float) -> float:
    """``max|H - H^T| / max|H|`` of the unsymmetrised central-difference Hessian: a force-noise diagnostic."""
    h = -(np.asarray(forces_plus, float) - np.asarray(forces_minus, float)) / (2.0 * step_A)
    scale = float(np.max(np.abs(h))) or 1.0
    return float(np.max(np.abs(h - h.T))) / scale


def central_difference_gradient(values_plus: np.ndarray, values_minus: np.ndarray, step_A: float) -> np.ndarray:
    """Gradient (units/A, length 3N) of a scalar from its values at +step and -step of each coordinate."""
    return (np.asarray(values_plus, float) - np.asarray(values_minus, float)) / (2.0 * step_A)


def rigid_basis(positions_A: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """Orthonormal mass-weighted basis (3N x n_rigid) of translations and rotations about the centre of mass."""
    r = np.asarray(positions_A, float)
    m = np.asarray(masses_amu, float)
    n = r.shape[0]
    sq = np.sqrt(m)
    rc = r - (m[:, None] * r).sum(0) / m.sum()
    vecs = []
    for a in range(3):
        t = np.zeros((n, 3))
        t[:, a] = sq
        vecs.append(t.ravel())
    for a in range(3):
        axis = np.zeros(3)
        axis[a] = 1.0
        vecs.append((np.cross(axis, rc) * sq[:, None]).ravel())
    u, s, _ = np.linalg.svd(np.array(vecs).T, full_matrices=False)
    keep = s > RIGID_SINGULAR_TOL * s[0]
    return u[:, keep]


def internal_basis(rigid: np.ndarray) -> np.ndarray:
    """Orthonormal basis (3N x (3N - n_rigid)) of the complement of ``rigid``."""
    n = rigid.shape[0]
    q, _ = np.linalg.qr(np.hstack([rigid, np.eye(n)]))
    return q[:, rigid.shape[1]:n]


def mass_weight(hessian: np.ndarray, masses_amu: np.ndarray) -> np.ndarray:
    """``M^-1/2 H M^-1/2`` (eV/(amu A^2))."""
    w = 1.0 / np.sqrt(np.repeat(np.asarray(masses_amu, float), 3))
    return hessian * w[:, None] * w[None, :]


def normal_modes(hessian_eV_A2: np.ndarray, positions_A: np.ndarray, masses_amu: np.ndarray) -> NormalModes:
    """Vibrational modes of the mass-weighted Hessian with the rigid motions projected out exactly
    (diagonalised in their orthogonal complement, so exactly 3N - 6 modes for a non-linear cluster)."""
    m = np.asarray(masses_amu, float)
    h = np.asarray(hessian_eV_A2, float)
    if h.shape != (3 * m.size, 3 * m.size):
        raise ValueError(f"Hessian of shape {h.shape} for {m.size} atoms")
    rigid = rigid_basis(positions_A, m)
    q = internal_basis(rigid)
    hm = mass_weight(0.5 * (h + h.T), m)
    w2, u = np.linalg.eigh(q.T @ hm @ q)
    return NormalModes(omega2=w2, vectors=q @ u, masses_amu=m, n_rigid=rigid.shape[1])


def rigid_fraction(gradient: np.ndarray, positions_A: np.ndarray, masses_amu: np.ndarray) -> float:
    """Fraction of ``|M^-1/2 g|^2`` along rigid motions: 0 for an exact gradient of an invariant scalar
    (the gap does not change under translation or rotation); a finite-difference noise diagnostic."""
    gm = np.asarray(gradient, float) / np.sqrt(np.repeat(np.asarray(masses_amu, float), 3))
    total = float(gm @ gm)
    if total == 0:
        return 0.0
    proj = rigid_basis(positions_A, masses_amu).T @ gm
    return float(proj @ proj) / total
