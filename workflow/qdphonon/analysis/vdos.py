"""Vibrational density of states from the mass-weighted velocity autocorrelation, projected on regions and elements."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence
import numpy as np
from qdphonon.units import HBAR_meV_fs
from qdphonon.analysis.inputs import check_uniform_time, read_velocities_npz


_FALLBACK_MASSES_amu = {"Cs": 132.90545196, "Pb": 207.2, "Br": 79.904, "Ca": 40.078, "Sr": 87.62, "Cl": 35.45, "I": 126.90447}


@dataclass(frozen=True)
class VibrationalDOS:
    """Phonon DOS on ``energy_meV``; ``sum(total) * d_energy_meV = 3N``; projections sum to ``total``."""

    energy_meV: np.ndarray
    total: np.ndarray
    projections: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def d_energy_meV(self) -> float:
        return float(self.energy_meV[1] - self.energy_meV[0])


def atomic_masses_amu(symbols: Sequence[str]) -> np.ndarray:
    """Standard atomic masses (amu) of element symbols, from ASE when available."""
    try:
        from ase.data import atomic_masses, atomic_numbers

        return np.array([atomic_masses[atomic_numbers[str(s)]] for s in symbols], dtype=float)
    except ImportError:  # pragma: no cover - ase is a dependency
        return np.array([_FALLBACK_MASSES_amu[str(s)] for s in symbols], dtype=float)


_REGION_ORDER = ("core", "surface", "shell")


def _ordered_labels(labels: Sequence[str], preferred: Sequence[str] = ()) -> list[str]:
    uniq = set(map(str, labels))
    return [x for x in preferred if x in uniq] + sorted(uniq - set(preferred))


def vibrational_dos(
    velocities: np.ndarray,
    masses: np.ndarray,
    dt_fs: float,
    regions: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    chunk_bytes: int = 64 * 2**20,
) -> VibrationalDOS:
    """Phonon DOS from the mass-weighted velocity autocorrelation (Wiener-Khinchin), meV.

    ``g(E) ~ sum_i m_i |FFT[v_i](w)|^2`` with each velocity component zero-padded to at least
    2N frames, which is the Fourier transform of the (linear, not circular) mass-weighted
    autocorrelation ``sum_i m_i <v_i(0).v_i(t)>`` -- O(N log N) per atom, no loop over lags.
    Normalised with one global factor so that ``sum_k g_k dE = 3 N_atoms`` (equipartition: each
    degree of freedom carries the same kinetic energy); projections on regions
    (``region_<name>``) and elements (``element_<symbol>``) use the same factor and therefore
    each sum to ``total``. Velocities in any consistent unit; masses in any unit.
    """
    from scipy.fft import next_fast_len, rfft

    v = np.asarray(velocities)
    if v.ndim != 3 or v.shape[2] != 3:
        raise ValueError(f"velocities must have shape (frames, atoms, 3), got {v.shape}")
    n_frames, n_atoms, _ = v.shape
    if n_frames < 2:
        raise ValueError(f"velocities need at least 2 frames, got {n_frames}")
    m = np.asarray(masses, dtype=float)
    if m.shape != (n_atoms,):
        raise ValueError(f"masses must have shape ({n_atoms},), got {m.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("velocities contain NaN or infinite values")
    n_fft = next_fast_len(2 * n_frames)
    n_freq = n_fft // 2 + 1
    weight = np.full(n_freq, 2.0)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    per_atom_power = np.empty((n_freq, n_atoms))
    chunk = max(1, int(chunk_bytes // (16 * n_fft * 3)))
    for a0 in range(0, n_atoms, chunk):
        block = rfft(np.asarray(v[:, a0 : a0 + chunk, :], dtype=float), n=n_fft, axis=0)
        per_atom_power[:, a0 : a0 + chunk] = (np.abs(block) ** 2).sum(axis=2) * m[a0 : a0 + chunk]
    per_atom_power *= weight[:, None]
    energy_meV = 2.0 * math.pi * HBAR_meV_fs * np.arange(n_freq) / (n_fft * dt_fs)
    d_e = energy_meV[1]
    total_raw = per_atom_power.sum(axis=1)
    norm = 3.0 * n_atoms / (total_raw.sum() * d_e) if total_raw.sum() > 0 else 0.0
    projections: dict[str, np.ndarray] = {}
    for prefix, labels, preferred in (("region", regions, _REGION_ORDER), ("element", symbols, ())):
        if labels is None:
            continue
        labels = np.asarray([str(x) for x in labels])
        if labels.shape != (n_atoms,):
            raise ValueError(f"{prefix} labels must have one entry per atom ({n_atoms}), got {labels.shape}")
        for name in _ordered_labels(labels, preferred):
            projections[f"{prefix}_{name}"] = per_atom_power[:, labels == name].sum(axis=1) * norm
    return VibrationalDOS(energy_meV=energy_meV, total=total_raw * norm, projections=projections)


def _vdos_of_file(path, discard_fs: float) -> tuple[VibrationalDOS, bool]:
    traj = read_velocities_npz(path)
    keep = traj.time_fs >= traj.time_fs[0] + discard_fs - 1e-9
    if keep.sum() < 2:
        raise ValueError(f"{traj.source}: fewer than 2 frames left after discarding {discard_fs:g} fs")
    if traj.regions is None:
        warnings.warn(f"{traj.source}: no 'regions' array; VDOS projected on elements only", stacklevel=3)
    dt = check_uniform_time(traj.time_fs[keep], traj.source)
    dos = vibrational_dos(
        traj.velocities[keep], atomic_masses_amu(traj.symbols), dt, regions=traj.regions, symbols=traj.symbols
    )
    return dos, traj.synthetic


def mean_vdos(doses: Sequence[VibrationalDOS]) -> VibrationalDOS:
    """Average of several VDOS, interpolated on the first one's grid, renormalised to 3N."""
    ref = doses[0]
    e = ref.energy_meV
    n_dof = float(np.sum(ref.total) * ref.d_energy_meV)

    def interp(d: VibrationalDOS, arr: np.ndarray) -> np.ndarray:
        return arr if d.energy_meV.shape == e.shape and np.allclose(d.energy_meV, e) else np.interp(e, d.energy_meV, arr, right=0.0)

    total = np.mean([interp(d, d.total) for d in doses], axis=0)
    keys = [k for k in ref.projections if all(k in d.projections for d in doses)]
    proj = {k: np.mean([interp(d, d.projections[k]) for d in doses], axis=0) for k in keys}
    scale = n_dof / (total.sum() * ref.d_energy_meV) if total.sum() > 0 else 1.0
    return VibrationalDOS(e, total * scale, {k: p * scale for k, p in proj.items()})
