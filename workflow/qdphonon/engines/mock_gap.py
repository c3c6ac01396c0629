"""The mock's gap as a linear function of the displacements it writes (the region attribution's known
answer, docs/physics.md §6.1): the gap from displacements, and run.json's account of the coupling.
Synthetic: these are the mock's inputs, not findings."""

from __future__ import annotations

from typing import Any

import numpy as np

from qdphonon import units
from qdphonon.engines.mock_model import AtomOscillators


def gap_from_displacements_meV(osc: AtomOscillators, displacements_A: np.ndarray) -> np.ndarray:
    """The mock gap fluctuation (meV) as the linear function of the displacements it is:
    ``sum_R |g_R| ghat_R . u`` for displacements (frames, atoms, 3) from the input geometry."""
    gap = osc.gap
    return np.einsum("fai,rai,r->f", np.asarray(displacements_A), gap.direction, gap.coupling_meV_per_A)


def gap_coupling_record(osc: AtomOscillators, times_fs: np.ndarray, temperature_K: float) -> dict[str, Any] | None:
    """run.json's account of the gap coupling (the attribution's known answer): per atom region the
    coupling |g_R| (meV/Angstrom), the share of each spectral region's modes, the ensemble
    ``lambda_R = sum_s w_sR lambda_s`` and the one realised over all MD steps, ``Cov(g_R . u_R, dE) / 2 k_B T``."""
    gap = osc.gap
    if gap is None:
        return None
    phi = np.outer(np.asarray(times_fs), gap.omega_per_fs) + gap.phase
    parts = (np.cos(phi) @ gap.amplitude_A.T) * gap.coupling_meV_per_A
    parts -= parts.mean(axis=0)
    total = parts.sum(axis=1)
    two_kT = 2.0 * units.BOLTZMANN_meV_per_K * temperature_K
    realised = parts.T @ total / len(total) / two_kT
    return {
        "note": "synthetic (mock engine): the gap is sum_R |g_R| ghat_R . u; these are inputs, not findings",
        "regions": list(gap.regions),
        "coupling_meV_per_A": [round(float(x), 6) for x in gap.coupling_meV_per_A],
        "spectral_region_weights": [[round(float(x), 6) for x in row] for row in gap.weights],
        "lambda_meV": [round(float(x), 6) for x in gap.lambda_meV],
        "lambda_realised_meV": [round(float(x), 6) for x in realised],
    }
