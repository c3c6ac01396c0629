"""Phonon density of states from the mass-weighted velocity autocorrelation, and the kinetic temperature.

A free dot translates and rotates as a rigid body; that motion is not a phonon. With positions,
every frame's centre-of-mass velocity ``V`` and rigid rotation ``w x (r_i - R)`` with
``w = I^-1 L`` (inertia tensor and angular momentum about the centre of mass, docs/physics.md §4.5)
are subtracted before the autocorrelation, and the DOS is normalised to the ``3N - 6``
vibrational degrees of freedom. Without positions nothing can be removed; the DOS is then
normalised to ``3N`` and says so (``rigid_motion_removed`` false).

Velocities in Angstrom/fs and masses in amu for the kinetic temperature; the DOS itself accepts
any consistent units. Energies in meV.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from qdphonon.analysis.inputs import check_uniform_time, read_velocities_npz
from qdphonon.elements import mass_amu
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

AMU_A2_per_fs2_in_eV = 103.642697
"""1 amu (Angstrom/fs)^2 in eV: m v^2 with m in amu and v in Angstrom/fs, to eV."""

_REGION_ORDER = ("core", "surface", "shell")


@dataclass(frozen=True)
class VibrationalDOS:
    """Phonon DOS on ``energy_meV``; ``sum(total) * d_energy_meV = n_dof``; projections sum to ``total``.

    ``n_dof``: ``3N - 6`` when rigid translation and rotation were removed, else ``3N``;
    ``rigid_kinetic_fraction``: share of the kinetic energy in rigid motion (None if not removed).
    """

    energy_meV: np.ndarray
    total: np.ndarray
    projections: dict[str, np.ndarray] = field(default_factory=dict)
    n_dof: float = 0.0
    rigid_motion_removed: bool = False
    rigid_kinetic_fraction: float | None = None

    @property
    def d_energy_meV(self) -> float:
        return float(self.energy_meV[1] - self.energy_meV[0])


def atomic_masses_amu(symbols: Sequence[str]) -> np.ndarray:
    """Standard atomic masses (amu) of element symbols (:func:`qdphonon.elements.mass_amu`: ASE's IUPAC 2016 table)."""
    return np.array([mass_amu(str(s)) for s in symbols], dtype=float)


def vibrational_dof(n_atoms: int, rigid_removed: bool) -> int:
    """Vibrational degrees of freedom: ``3N - 6`` when rigid motion is removed (a dimer has 1, an atom 0), else ``3N``."""
    if not rigid_removed:
        return 3 * n_atoms
    return {1: 0, 2: 1}.get(n_atoms, 3 * n_atoms - 6)


def remove_rigid_motion(velocities: np.ndarray, positions: np.ndarray, masses: np.ndarray,
                        chunk_frames: int = 512) -> np.ndarray:
    """Velocities (frames, atoms, 3) minus each frame's centre-of-mass velocity and rigid rotation
    ``w x (r - R)``, ``w = I^-1 L`` (pseudo-inverse for collinear frames). The result carries zero
    linear and angular momentum in every frame."""
    v_all = np.asarray(velocities)
    r_all = np.asarray(positions)
    if r_all.shape != v_all.shape:
        raise ValueError(f"positions {r_all.shape} and velocities {v_all.shape} differ in shape")
    m = np.asarray(masses, dtype=float)
    out = np.empty(v_all.shape, dtype=float)
    mt = m.sum()
    for f0 in range(0, v_all.shape[0], chunk_frames):
        v = np.asarray(v_all[f0:f0 + chunk_frames], dtype=float)
        r = np.asarray(r_all[f0:f0 + chunk_frames], dtype=float)
        r = r - np.einsum("a,fak->fk", m, r)[:, None, :] / mt
        v = v - np.einsum("a,fak->fk", m, v)[:, None, :] / mt
        L = np.einsum("a,fak->fk", m, np.cross(r, v))
        r2 = np.einsum("a,fak,fak->f", m, r, r)
        inertia = r2[:, None, None] * np.eye(3) - np.einsum("a,fai,faj->fij", m, r, r)
        omega = np.einsum("fij,fj->fi", np.linalg.pinv(inertia), L)
        out[f0:f0 + chunk_frames] = v - np.cross(omega[:, None, :], r)
    return out


def kinetic_temperature_K(velocities_A_per_fs: np.ndarray, masses_amu: np.ndarray, n_dof: int) -> np.ndarray:
    """Instantaneous kinetic temperature per frame, ``sum m v^2 / (k_B n_dof)``, K."""
    v = np.asarray(velocities_A_per_fs, dtype=float)
    mv2_eV = AMU_A2_per_fs2_in_eV * np.einsum("a,fak,fak->f", np.asarray(masses_amu, dtype=float), v, v)
    return mv2_eV * 1000.0 / (BOLTZMANN_meV_per_K * max(n_dof, 1))


def _ordered_labels(labels: Sequence[str], preferred: Sequence[str] = ()) -> list[str]:
    uniq = set(map(str, labels))
    return [x for x in preferred if x in uniq] + sorted(uniq - set(preferred))


def vibrational_dos(
    velocities: np.ndarray,
    masses: np.ndarray,
    dt_fs: float,
    regions: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    positions: np.ndarray | None = None,
    chunk_bytes: int = 64 * 2**20,
) -> VibrationalDOS:
    """Phonon DOS from the mass-weighted velocity autocorrelation (Wiener-Khinchin), per meV.

    ``g(E) ~ sum_i m_i |FFT[v_i](w)|^2`` with each velocity component zero-padded to at least
    2N frames: the Fourier transform of the linear (not circular) autocorrelation, O(N log N).
    With ``positions`` (same shape as velocities) rigid translation and rotation are removed
    first (:func:`remove_rigid_motion`) and ``sum_k g_k dE = 3N - 6``; without, ``3N``
    (equipartition: every degree of freedom carries the same kinetic energy). Projections on
    regions (``region_<name>``) and elements (``element_<symbol>``) share the one normalisation
    factor and therefore sum to ``total``.
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
    rigid_fraction = None
    if positions is not None:
        v_raw = np.asarray(v, dtype=float)
        v = remove_rigid_motion(v_raw, positions, m)
        ke_raw = float(np.einsum("a,fak,fak->", m, v_raw, v_raw))
        rigid_fraction = 1.0 - float(np.einsum("a,fak,fak->", m, v, v)) / ke_raw if ke_raw > 0 else 0.0
    n_dof = vibrational_dof(n_atoms, positions is not None)
    n_fft = next_fast_len(2 * n_frames)
    n_freq = n_fft // 2 + 1
    weight = np.full(n_freq, 2.0)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    per_atom_power = np.empty((n_freq, n_atoms))
    chunk = max(1, int(chunk_bytes // (16 * n_fft * 3)))
    for a0 in range(0, n_atoms, chunk):
        block = rfft(np.asarray(v[:, a0:a0 + chunk, :], dtype=float), n=n_fft, axis=0)
        per_atom_power[:, a0:a0 + chunk] = (np.abs(block) ** 2).sum(axis=2) * m[a0:a0 + chunk]
    per_atom_power *= weight[:, None]
    energy_meV = 2.0 * math.pi * HBAR_meV_fs * np.arange(n_freq) / (n_fft * dt_fs)
    d_e = energy_meV[1]
    total_raw = per_atom_power.sum(axis=1)
    norm = n_dof / (total_raw.sum() * d_e) if total_raw.sum() > 0 else 0.0
    projections: dict[str, np.ndarray] = {}
    for prefix, labels, preferred in (("region", regions, _REGION_ORDER), ("element", symbols, ())):
        if labels is None:
            continue
        labels = np.asarray([str(x) for x in labels])
        if labels.shape != (n_atoms,):
            raise ValueError(f"{prefix} labels must have one entry per atom ({n_atoms}), got {labels.shape}")
        for name in _ordered_labels(labels, preferred):
            projections[f"{prefix}_{name}"] = per_atom_power[:, labels == name].sum(axis=1) * norm
    return VibrationalDOS(energy_meV, total_raw * norm, projections, float(n_dof), positions is not None, rigid_fraction)


@dataclass(frozen=True)
class VelocityAnalysis:
    """What one velocity file gives: its DOS, kinetic temperatures (K) and provenance."""

    dos: VibrationalDOS
    kinetic_temperature_K: np.ndarray
    synthetic: bool
    source: str


def _positions_of(path) -> np.ndarray | None:
    """The ``positions`` array of a trajectory ``.npz`` (Angstrom), None when absent."""
    with np.load(path, allow_pickle=False) as data:
        return np.asarray(data["positions"]) if "positions" in data.files else None


def analyze_velocity_file(path, discard_fs: float) -> VelocityAnalysis:
    """DOS and kinetic temperature of one ``.npz`` after ``discard_fs`` of equilibration (warns when the
    file has no positions, so rigid motion stays in, or no regions)."""
    traj = read_velocities_npz(path)
    keep = traj.time_fs >= traj.time_fs[0] + discard_fs - 1e-9
    if keep.sum() < 2:
        raise ValueError(f"{traj.source}: fewer than 2 frames left after discarding {discard_fs:g} fs")
    if traj.regions is None:
        warnings.warn(f"{traj.source}: no 'regions' array; VDOS projected on elements only", stacklevel=3)
    positions = _positions_of(path)
    if positions is not None and positions.shape != traj.velocities.shape:
        raise ValueError(f"{traj.source}: positions {positions.shape} and velocities {traj.velocities.shape} differ")
    if positions is None:
        warnings.warn(f"{traj.source}: no 'positions' array; rigid translation and rotation cannot be removed "
                      "(VDOS normalised to 3N, kinetic temperature over 3N)", stacklevel=3)  # fmt: skip
    dt = check_uniform_time(traj.time_fs[keep], traj.source)
    masses = atomic_masses_amu(traj.symbols)
    pos = positions[keep] if positions is not None else None
    dos = vibrational_dos(traj.velocities[keep], masses, dt, regions=traj.regions, symbols=traj.symbols, positions=pos)
    v = remove_rigid_motion(traj.velocities[keep], pos, masses) if pos is not None else traj.velocities[keep]
    t_kin = kinetic_temperature_K(v, masses, vibrational_dof(len(masses), pos is not None))
    return VelocityAnalysis(dos, t_kin, traj.synthetic, traj.source)


def mean_vdos(doses: Sequence[VibrationalDOS]) -> VibrationalDOS:
    """Average of several VDOS, interpolated on the first one's grid, renormalised to its ``n_dof``."""
    ref = doses[0]
    e = ref.energy_meV
    n_dof = ref.n_dof or float(np.sum(ref.total) * ref.d_energy_meV)

    def interp(d: VibrationalDOS, arr: np.ndarray) -> np.ndarray:
        same = d.energy_meV.shape == e.shape and np.allclose(d.energy_meV, e)
        return arr if same else np.interp(e, d.energy_meV, arr, right=0.0)

    total = np.mean([interp(d, d.total) for d in doses], axis=0)
    keys = [k for k in ref.projections if all(k in d.projections for d in doses)]
    proj = {k: np.mean([interp(d, d.projections[k]) for d in doses], axis=0) for k in keys}
    scale = n_dof / (total.sum() * ref.d_energy_meV) if total.sum() > 0 else 1.0
    fractions = [d.rigid_kinetic_fraction for d in doses if d.rigid_kinetic_fraction is not None]
    return VibrationalDOS(e, total * scale, {k: p * scale for k, p in proj.items()}, n_dof,
                          all(d.rigid_motion_removed for d in doses),
                          float(np.mean(fractions)) if fractions else None)  # fmt: skip
