"""Linear exciton-phonon coupling of harmonic modes: Huang-Rhys factors, lambda, Gamma(T) (docs/physics.md §5).

With mass-weighted normal coordinates q_k (V = 1/2 sum w_k^2 q_k^2) and a gap linear in them,
``dE = sum_k d_k q_k`` with ``d_k = g . M^-1/2 e_k`` (g = dE_gap/dR, eV/A):

* ``lambda_k = d_k^2 / (2 w_k^2)`` (eV; w_k^2 the mass-weighted Hessian eigenvalue, eV/(amu A^2)),
* ``S_k = lambda_k / hbar w_k``, ``lambda = sum_k lambda_k``,
* classical ``Var(dE) = sum_k d_k^2 k_B T / w_k^2 = 2 lambda k_B T`` at any T: the MD route's
  normalisation (``lambda = Var / 2 k_B T_md``, docs/physics.md §1.3), so the two routes measure
  the same lambda where the harmonic, linear picture holds;
* quantum ``Var_q(T) = sum_k S_k (hbar w_k)^2 coth(hbar w_k / 2 k_B T)`` (exact Bose occupations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qdphonon.analysis.spectrum import coth_factor
from qdphonon.harmonic.modes import NormalModes
from qdphonon.units import BOLTZMANN_meV_per_K, FWHM_PER_SIGMA


@dataclass(frozen=True)
class ModeCoupling:
    """Per vibrational (real-frequency) mode: ``energy_meV`` (hbar w_k), ``d`` (eV/(A amu^1/2)),
    ``lambda_meV`` and ``S``; ``n_imaginary`` modes with w^2 < 0 are left out (listed in
    ``imaginary_energy_meV`` as negative numbers)."""

    energy_meV: np.ndarray
    d: np.ndarray
    lambda_meV: np.ndarray
    S: np.ndarray
    imaginary_energy_meV: np.ndarray

    @property
    def total_lambda_meV(self) -> float:
        return float(np.sum(self.lambda_meV))

    @property
    def n_imaginary(self) -> int:
        return int(self.imaginary_energy_meV.size)


def mode_coupling(modes: NormalModes, gap_gradient_eV_A: np.ndarray) -> ModeCoupling:
    """Project the gap gradient (eV/A, length 3N) on the mass-weighted modes; S_k, lambda_k per real mode."""
    g = np.asarray(gap_gradient_eV_A, float)
    if g.shape != (modes.vectors.shape[0],):
        raise ValueError(f"gradient of shape {g.shape} for {modes.vectors.shape[0]} coordinates")
    gm = g / np.sqrt(np.repeat(modes.masses_amu, 3))
    d = modes.vectors.T @ gm
    real = modes.omega2 > 0
    e = modes.energy_meV
    lam = np.zeros_like(d)
    lam[real] = 1000.0 * d[real] ** 2 / (2.0 * modes.omega2[real])
    S = np.zeros_like(d)
    S[real] = lam[real] / e[real]
    return ModeCoupling(energy_meV=e[real], d=d[real], lambda_meV=lam[real], S=S[real],
                        imaginary_energy_meV=e[~real])  # fmt: skip


def classical_variance_meV2(coupling: ModeCoupling, temperature_K: float) -> float:
    """``2 lambda k_B T`` (meV^2): the gap variance of the classical harmonic ensemble."""
    return 2.0 * coupling.total_lambda_meV * BOLTZMANN_meV_per_K * float(temperature_K)


def quantum_variance_meV2(coupling: ModeCoupling, temperature_K: float) -> float:
    """``sum_k S_k (hbar w_k)^2 coth(hbar w_k / 2 k_B T)`` (meV^2), every mode with its own occupation."""
    e = coupling.energy_meV
    return float(np.sum(coupling.S * e**2 * coth_factor(e, temperature_K)))


def fwhm_classical_meV(coupling: ModeCoupling, temperature_K: float) -> float:
    """Eq. 2: ``2 sqrt(2 ln 2) sqrt(2 lambda k_B T)``, meV."""
    return FWHM_PER_SIGMA * math.sqrt(classical_variance_meV2(coupling, temperature_K))


def fwhm_quantum_meV(coupling: ModeCoupling, temperature_K: float) -> float:
    """Gaussian FWHM from the quantum variance, meV."""
    return FWHM_PER_SIGMA * math.sqrt(quantum_variance_meV2(coupling, temperature_K))


def binned_spectrum(coupling: ModeCoupling, resolution_meV: float, max_energy_meV: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The per-mode spectrum on the MD route's grid ``E_k = k * resolution_meV`` (k >= 1).

    Each mode's ``lambda_k`` goes to the nearest bin (bin k spans ``[(k - 1/2), (k + 1/2)) * resolution``,
    bin 1 also takes everything below); the bin's ``S = lambda_bin / E_k``. So ``sum S_bin E_k = lambda``
    exactly and each region's lambda is kept up to half a bin at its edges. Returns (energy_meV, S).
    """
    if resolution_meV <= 0:
        raise ValueError(f"resolution must be > 0 meV, got {resolution_meV}")
    e = coupling.energy_meV
    top = float(max_energy_meV) if max_energy_meV is not None else float(e.max() if e.size else resolution_meV)
    n_bins = max(1, int(math.floor(max(top, e.max() if e.size else 0.0) / resolution_meV + 0.5)))
    grid = resolution_meV * np.arange(1, n_bins + 1)
    k = np.clip(np.floor(e / resolution_meV + 0.5).astype(int), 1, n_bins) - 1
    lam_bin = np.bincount(k, weights=coupling.lambda_meV, minlength=n_bins)
    return grid, lam_bin / grid
