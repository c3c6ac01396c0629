"""The mock engine's physics: a harmonic model of band-edge and atomic motion, calibrated to the
reference study's headline linewidths (so its agreement with them is built in, not a finding).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from typing import Any, Mapping, Sequence
import numpy as np
from qdphonon import elements, units



AMU_eV_fs2_per_A2 = 103.642697
"""1 amu * (Angstrom/fs)^2 in eV: converts 1/2 m v^2 with m in amu and v in Angstrom/fs to eV."""


BOLTZMANN_Ha_per_K = 3.166811563e-6
"""k_B in Hartree/K."""


def _element_defaults() -> dict[str, Any]:
    """The per-element mock parameters, read from the element table (:mod:`qdphonon.elements`)."""
    return {
        "atom_region_weights": {s: list(e.mock_region_weights) for s, e in elements.ELEMENTS.items()},
        "potential_Ha_per_atom": {s: e.mock_potential_Ha for s, e in elements.ELEMENTS.items()},
    }


MOCK_DEFAULTS: dict[str, Any] = {
    "region_energies_meV": [2.0, 7.0, 17.0],
    "region_widths_meV": [0.5, 1.2, 1.5],
    "modes_per_region": 12,
    "lambda_ref_meV": 93.8,
    "surface_fraction_ref": 0.8293,
    "region_fractions": [0.45, 0.35, 0.20],
    "surface_exponents": [2.90, 2.90, 1.0],
    "shell_factors": [0.326, 0.326, 1.0],
    "vbm_share": 0.4,
    "common_shift_ratio": 0.5,
    "vbm_eV": -5.5,
    "gap_bulk_eV": 2.35,
    "confinement_eV_nm2": 1.8,
    "orbital_spacing_eV": 0.05,
    "calibrate_realised_variance": True,
    "gap_coupling_region_weights": {"core": [0.15, 0.25, 0.6], "surface": [0.75, 0.6, 0.3], "shell": [0.1, 0.15, 0.1]},
    "surface_softening": 0.7,
    "oscillators_per_axis": 2,
    **_element_defaults(),
}
"""Parameters of the mock engine's harmonic model (config ``mock:``; any subset overrides these).

Band edges (a linear coupling to modes in three spectral regions):

* ``region_energies_meV`` / ``region_widths_meV`` (3 floats each): centres and spreads of the
  mode energies of the low (surface), intermediate and LO regions; mode energies are drawn
  from a normal distribution clipped to centre +- 2 widths.
* ``modes_per_region`` (int): modes per region (random phases, thermal amplitudes).
* ``lambda_ref_meV`` (float): total reorganisation energy of a core-only dot whose surface
  fraction is ``surface_fraction_ref`` (float; 0.8293 = the n = 4 cube, 345 of 416 atoms in the
  outer layer). 93.8 meV gives that 2.4 nm dot a gap std of 12.7 meV at 10 K, i.e. the
  reference study's 164 meV at 300 K.
* ``region_fractions`` (3 floats, sum 1): share of ``lambda_ref_meV`` per region.
* ``surface_exponents`` (3 floats): lambda_R scales as (surface fraction / reference)^p_R, so
  smaller dots (more surface) couple more strongly; 2.90 for the surface-dominated low and
  intermediate regions and 1.0 for the LO region give the n = 6 dot 55.4 meV (126 meV at 300 K).
* ``shell_factors`` (3 floats): factor on lambda_R per shell layer; 0.326 on the surface
  regions gives the n = 6, k = 1 core/shell dot 28.3 meV (90 meV at 300 K).
* ``vbm_share`` (float): fraction of a gap fluctuation carried by the VBM (it moves down by
  that share, the CBM up by the rest); ``common_shift_ratio`` (float): std of a shift common
  to both edges (cancels in the gap) relative to the gap std.
* ``vbm_eV`` (float), ``gap_bulk_eV`` (float), ``confinement_eV_nm2`` (float): mean VBM and mean
  gap ``gap_bulk + confinement / L^2`` with L the edge (nm) of the core (the whole dot without
  a shell): 2.93 eV at 1.8 nm to 2.45 eV at 4.2 nm. ``orbital_spacing_eV`` (float): mean spacing
  of the other printed orbitals below the HOMO and above the LUMO.
* ``calibrate_realised_variance`` (bool): rescale each region's gap modes so that the variance
  realised over the whole trajectory equals ``2 lambda_R k_B T`` exactly. Without it, a few
  periods of the ~2 meV modes in a trajectory of a few ps scatter the gap std by about 13 %
  (one sigma) between replicas, as a real finite MD would.

The gap is a linear function of the written displacements, ``dE_gap(t) = sum_R |g_R| ghat_R . u(t)``:

* ``gap_coupling_region_weights`` (atom region -> 3 floats): share of each spectral region's gap
  modes (low, intermediate, LO) carried by the atoms of that region (normalised over the regions
  with at least 3 atoms in the dot). Each region R gets a random unit pattern ``ghat_R`` over its
  atoms with no net force and no net torque; the atoms move along it by
  ``Q_R(t) = sum_m w_{s(m),R} a_m cos(w_m t + phi_m) / |g_R|`` (the gap modes above, with the
  same amplitudes and phases), and the background oscillators below are projected off every
  ``ghat_R``, so the gap is exactly ``sum_R |g_R| Q_R``. ``|g_R|`` (meV/Angstrom) is set so each
  gap mode holds k_B T of energy (less in dots with fewer than 2 degrees of freedom per mode).
  The known answer of the attribution, ``lambda_R = sum_s w_sR lambda_s``, goes into run.json.

Atoms (independent harmonic oscillators around the input geometry, classical thermal ensemble
at the MD temperature):

* ``atom_region_weights`` (element -> 3 floats; defaults from the element table): probability
  that an oscillator of that element has an energy from the low, intermediate or LO region.
* ``surface_softening`` (float): factor on the oscillator energies of atoms outside the core
  (regions surface and shell): surface atoms are softer.
* ``oscillators_per_axis`` (int): oscillators per atom and Cartesian axis (equal energy share).
* ``potential_Ha_per_atom`` (element -> float; defaults from the element table): constant part
  of the synthetic potential energy.
"""


def mock_params(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`MOCK_DEFAULTS` (element tables as the element table holds them now) with ``overrides``
    applied (nested element tables merged); unknown keys refused."""
    params = copy.deepcopy({**MOCK_DEFAULTS, **_element_defaults()})
    for key, value in (overrides or {}).items():
        if key not in MOCK_DEFAULTS:
            raise ValueError(f"mock: unknown parameter {key!r}; known: {', '.join(sorted(MOCK_DEFAULTS))}")
        if isinstance(MOCK_DEFAULTS[key], dict):
            params[key] = {**params[key], **dict(value)}
        else:
            params[key] = copy.deepcopy(value)
    for key in ("region_energies_meV", "region_widths_meV", "region_fractions", "surface_exponents", "shell_factors"):
        if len(params[key]) != 3:
            raise ValueError(f"mock: {key} needs 3 values (low, intermediate, LO), got {params[key]}")
    return params


def mock_seed(system: str, seed: int) -> int:
    """The mock's random seed from the system name and the replica's CP2K seed (reproducible runs)."""
    return int.from_bytes(hashlib.sha256(f"qdphonon-mock:{system}:{int(seed)}".encode()).digest()[:8], "little")


def surface_fraction(layers: Sequence[int]) -> float:
    """Fraction of atoms in the outermost octahedral layer (layer 0): the dot's surface fraction."""
    layers = np.asarray(layers)
    return float(np.mean(layers == 0))


def mock_reorganisation_meV(fraction: float, shell_layers: int, params: Mapping[str, Any]) -> np.ndarray:
    """Reorganisation energy per region (low, intermediate, LO) in meV of a dot with this surface fraction."""
    ratio = fraction / float(params["surface_fraction_ref"])
    lam = float(params["lambda_ref_meV"]) * np.asarray(params["region_fractions"], dtype=float)
    lam = lam * ratio ** np.asarray(params["surface_exponents"], dtype=float)
    return lam * np.asarray(params["shell_factors"], dtype=float) ** int(shell_layers)


def mock_gap_std_meV(fraction: float, shell_layers: int, temperature_K: float, params: Mapping[str, Any]) -> float:
    """Ensemble std of the mock gap (meV): sqrt(2 lambda k_B T) (classical, docs/physics.md §1)."""
    lam = float(mock_reorganisation_meV(fraction, shell_layers, params).sum())
    return float(np.sqrt(2.0 * lam * units.BOLTZMANN_meV_per_K * temperature_K))


def mock_mean_levels_eV(
    size: Sequence[int], shell_layers: int, lattice_A: float, params: Mapping[str, Any]
) -> tuple[float, float]:
    """(mean VBM, mean gap) in eV: a confinement law in the edge of the core, L = (min(size) - 2k) a."""
    edge_nm = max(1, min(size) - 2 * int(shell_layers)) * lattice_A / 10.0
    return float(params["vbm_eV"]), float(params["gap_bulk_eV"]) + float(params["confinement_eV_nm2"]) / edge_nm**2


def mock_modes(
    rng: np.random.Generator, lambdas_meV: Sequence[float], temperature_K: float, params: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energies [meV], amplitudes [meV], phases [rad]) of the modes a band energy couples to.

    Per region, ``modes_per_region`` modes with energies around the region's centre and
    classical thermal amplitudes (exponentially distributed squares), normalised so that
    the region's ensemble variance is exactly ``2 lambda_R k_B T`` (sum of a^2/2); amplitudes
    therefore scale with sqrt(T).
    """
    n = int(params["modes_per_region"])
    kT = units.BOLTZMANN_meV_per_K * temperature_K
    energies, amplitudes = [], []
    for centre, width, lam in zip(params["region_energies_meV"], params["region_widths_meV"], lambdas_meV):
        e = np.clip(rng.normal(centre, width, n), centre - 2 * width, centre + 2 * width)
        w = rng.exponential(1.0, n)
        energies.append(np.maximum(e, 0.1))
        amplitudes.append(np.sqrt(4.0 * lam * kT * w / w.sum()))
    phases = rng.uniform(0.0, 2 * np.pi, 3 * n)
    return np.concatenate(energies), np.concatenate(amplitudes), phases


def mode_signal(times_fs: np.ndarray, energies_meV: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Sum of a cos(omega t + phi) at the given times; omega = E / hbar."""
    omega = np.asarray(energies_meV) / units.HBAR_meV_fs
    return np.cos(np.outer(times_fs, omega) + phases) @ amplitudes


def region_signals(times_fs: np.ndarray, energies_meV: np.ndarray, amplitudes: np.ndarray, phases: np.ndarray,
                   modes_per_region: int) -> np.ndarray:  # fmt: skip
    """The mode signal of each region separately: shape (3, times), in the amplitudes' unit."""
    return np.stack([
        mode_signal(times_fs, energies_meV[sl], amplitudes[sl], phases[sl])
        for sl in (slice(r * modes_per_region, (r + 1) * modes_per_region) for r in range(3))
    ])  # fmt: skip


@dataclasses.dataclass(frozen=True)
class MockBandEdges:
    """Synthetic HOMO/LUMO per MD step (eV) and the model behind them."""

    vbm_eV: np.ndarray
    cbm_eV: np.ndarray
    gap_mean_eV: float
    gap_std_meV: float
    lambdas_meV: np.ndarray
    surface_fraction: float
    gap_modes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    region_scale: np.ndarray | None = None

    def mode_amplitudes_meV(self) -> np.ndarray:
        """Gap amplitude of every gap mode after the realised-variance calibration (meV)."""
        n = len(self.gap_modes[1]) // 3
        return self.gap_modes[1] * np.repeat(self.region_scale, n)


def mock_band_edges(
    times_fs: np.ndarray, *, size: Sequence[int], shell_layers: int, lattice_A: float, layers: Sequence[int],
    temperature_K: float, seed: int, params: Mapping[str, Any],
) -> MockBandEdges:  # fmt: skip
    """VBM and CBM at every time: mean levels plus linear couplings to modes of the three regions."""
    fraction = surface_fraction(layers)
    lambdas = mock_reorganisation_meV(fraction, shell_layers, params)
    gap_modes = mock_modes(np.random.default_rng([seed, 1]), lambdas, temperature_K, params)
    common_lambdas = lambdas * float(params["common_shift_ratio"]) ** 2
    common_modes = mock_modes(np.random.default_rng([seed, 2]), common_lambdas, temperature_K, params)
    d_gap = region_signals(times_fs, *gap_modes, int(params["modes_per_region"]))
    scale = np.ones(3)
    if params["calibrate_realised_variance"]:
        target = 2.0 * lambdas * units.BOLTZMANN_meV_per_K * temperature_K
        var = d_gap.var(axis=1)
        scale = np.sqrt(np.divide(target, var, out=np.zeros_like(var), where=var > 0))
        d_gap = d_gap * scale[:, None]
    d_gap = d_gap.sum(axis=0) * 1e-3
    common = mode_signal(times_fs, *common_modes) * 1e-3
    vbm0, gap0 = mock_mean_levels_eV(size, shell_layers, lattice_A, params)
    vbm = vbm0 + common - float(params["vbm_share"]) * d_gap
    return MockBandEdges(vbm, vbm + gap0 + d_gap, gap0, mock_gap_std_meV(fraction, shell_layers, temperature_K, params),
                         lambdas, fraction, gap_modes, scale)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AtomOscillators:
    """Independent oscillators per atom and axis: displacement sum_o A cos(omega t + phi).

    amplitude_A, omega_per_fs, phase: shape (atoms, 3, oscillators); mass_amu: (atoms,).
    """

    amplitude_A: np.ndarray
    omega_per_fs: np.ndarray
    phase: np.ndarray
    mass_amu: np.ndarray
    gap: GapPatterns | None = None

    @property
    def energy_eV(self) -> np.ndarray:
        """Energy of every oscillator (constant): 1/2 m omega^2 A^2."""
        m = self.mass_amu[:, None, None]
        return 0.5 * AMU_eV_fs2_per_A2 * m * (self.omega_per_fs * self.amplitude_A) ** 2


@dataclasses.dataclass(frozen=True)
class GapPatterns:
    """The motion the gap couples to: per atom region R (``regions``), a unit pattern ``direction``
    (atoms, 3) moved by ``Q_R(t) = sum_m amplitude_A[R, m] cos(omega_m t + phase_m)``; the gap is
    ``sum_R coupling_meV_per_A[R] Q_R(t)``. ``mu_amu[R] = sum_i m_i |ghat_i|^2``."""

    regions: tuple[str, ...]
    direction: np.ndarray
    amplitude_A: np.ndarray
    omega_per_fs: np.ndarray
    phase: np.ndarray
    mu_amu: np.ndarray
    coupling_meV_per_A: np.ndarray
    weights: np.ndarray
    lambda_meV: np.ndarray

    def energy_eV(self) -> np.ndarray:
        """Energy of every (region, mode) oscillation: 1/2 mu omega^2 B^2 (constant)."""
        return 0.5 * AMU_eV_fs2_per_A2 * self.mu_amu[:, None] * (self.omega_per_fs[None] * self.amplitude_A) ** 2


def zero_force_pattern(rng: np.random.Generator, positions_A: np.ndarray) -> np.ndarray:
    """A random unit vector over these atoms (n, 3) with no net force (sum = 0) and no net torque."""
    r = positions_A - positions_A.mean(axis=0)
    T = np.array([np.tile(a, len(r)) for a in np.eye(3)] + [np.cross(a, r).ravel() for a in np.eye(3)]).T
    Q, _ = np.linalg.qr(T)
    v = rng.normal(size=T.shape[0])
    v -= Q @ (Q.T @ v)
    return (v / np.linalg.norm(v)).reshape(-1, 3)


def mock_gap_patterns(edges: MockBandEdges, positions_A: np.ndarray, regions: Sequence[str], masses_amu: np.ndarray,
                      temperature_K: float, seed: int, params: Mapping[str, Any]) -> GapPatterns:  # fmt: skip
    """The gap modes of ``edges`` as displacements along one zero-force pattern per atom region (see
    ``gap_coupling_region_weights`` in :data:`MOCK_DEFAULTS`)."""
    labels = np.asarray(regions)
    present = [r for r in dict.fromkeys(labels.tolist()) if np.sum(labels == r) >= 3]
    table = params["gap_coupling_region_weights"]
    missing = [r for r in present if r not in table]
    if missing:
        raise ValueError(f"mock: gap_coupling_region_weights has no entry for region(s) {missing}")
    w = np.array([np.asarray(table[r], dtype=float) for r in present])
    if w.shape[1:] != (3,) or np.any(w < 0) or np.any(w.sum(axis=0) <= 0):
        raise ValueError(f"mock: gap_coupling_region_weights needs 3 non-negative weights per region, "
                         f"some positive in every spectral region, for the dot's regions {present}")  # fmt: skip
    w = w / w.sum(axis=0)
    energies, _, phases = edges.gap_modes
    n_per = len(energies) // 3
    amp = edges.mode_amplitudes_meV()
    band = np.repeat(np.arange(3), n_per)
    omega = np.asarray(energies) / units.HBAR_meV_fs
    kT_eV = units.BOLTZMANN_meV_per_K * temperature_K * 1e-3
    kT_mode = kT_eV * min(1.0, (3 * len(labels) - 6) / (2.0 * len(energies)))
    rng = np.random.default_rng([seed, 5])
    directions, B, mu, g = [], [], [], []
    for i, r in enumerate(present):
        d = np.zeros((len(labels), 3))
        d[labels == r] = zero_force_pattern(rng, np.asarray(positions_A)[labels == r])
        part = w[i, band] * amp
        m_r = float(np.sum(masses_amu[:, None] * d**2))
        target = kT_mode * float(np.sum(w[i, band]))
        g_r = math.sqrt(0.5 * AMU_eV_fs2_per_A2 * m_r * np.sum((omega * part) ** 2) / target) if target > 0 else 0.0
        directions.append(d)
        B.append(part / g_r if g_r > 0 else np.zeros_like(part))
        mu.append(m_r)
        g.append(g_r)
    lam = w @ np.asarray(edges.lambdas_meV)
    return GapPatterns(tuple(present), np.array(directions), np.array(B), omega, np.asarray(phases), np.array(mu),
                       np.array(g), w, lam)  # fmt: skip


def mock_atom_oscillators(
    symbols: Sequence[str], regions: Sequence[str], temperature_K: float, seed: int, params: Mapping[str, Any],
    edges: MockBandEdges | None = None, positions_A: np.ndarray | None = None,
) -> AtomOscillators:
    """Thermal oscillators of every atom: energies from the element's region weights (softer outside
    the core), classical amplitudes with <E> = k_B T per oscillator set of an axis. With ``edges``
    and ``positions_A``, also the gap's patterns (:func:`mock_gap_patterns`); the background then
    holds the thermal energy the patterns do not, so the total stays 3N k_B T on average."""
    rng = np.random.default_rng([seed, 3])
    n_osc = int(params["oscillators_per_axis"])
    n = len(symbols)
    centres = np.asarray(params["region_energies_meV"], dtype=float)
    widths = np.asarray(params["region_widths_meV"], dtype=float)
    weights = params["atom_region_weights"]
    missing = sorted(set(symbols) - set(weights))
    if missing:
        raise ValueError(f"mock: no atom_region_weights for element(s) {missing}")
    probs = np.array([np.asarray(weights[s], dtype=float) / np.sum(weights[s]) for s in symbols])
    u = rng.uniform(size=(n, 3, n_osc))
    region = (u[..., None] > np.cumsum(probs, axis=1)[:, None, None, :]).sum(axis=-1).clip(0, 2)
    z = np.clip(rng.normal(size=(n, 3, n_osc)), -2.0, 2.0)
    energy_meV = np.maximum(centres[region] + widths[region] * z, 0.2)
    soft = np.array([r != "core" for r in regions])
    energy_meV = energy_meV * np.where(soft, float(params["surface_softening"]), 1.0)[:, None, None]
    omega = energy_meV / units.HBAR_meV_fs
    mass = np.array([elements.mass_amu(s) for s in symbols])
    kT_eV = units.BOLTZMANN_meV_per_K * temperature_K * 1e-3
    mean_sq = 2.0 * kT_eV / (n_osc * AMU_eV_fs2_per_A2 * mass[:, None, None] * omega**2)
    amplitude = np.sqrt(mean_sq * rng.exponential(1.0, size=(n, 3, n_osc)))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 3, n_osc))
    if edges is None or positions_A is None or edges.gap_modes is None:
        return AtomOscillators(amplitude, omega, phase, mass)
    gap = mock_gap_patterns(edges, positions_A, regions, mass, temperature_K, seed, params)
    held = float(gap.energy_eV().sum()) / (3 * n * kT_eV) if kT_eV > 0 else 0.0
    return AtomOscillators(amplitude * math.sqrt(max(0.0, 1.0 - held)), omega, phase, mass, gap)


def oscillator_motion(osc: AtomOscillators, times_fs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Displacements [Angstrom] and velocities [Angstrom/fs], shape (times, atoms, 3)."""
    theta = osc.omega_per_fs[None] * np.asarray(times_fs)[:, None, None, None] + osc.phase[None]
    disp = (osc.amplitude_A[None] * np.cos(theta)).sum(axis=-1)
    vel = -(osc.amplitude_A[None] * osc.omega_per_fs[None] * np.sin(theta)).sum(axis=-1)
    gap = osc.gap
    if gap is None:
        return disp, vel
    d = gap.direction
    disp -= np.einsum("fr,rbj->fbj", np.einsum("fai,rai->fr", disp, d), d)
    vel -= np.einsum("fr,rbj->fbj", np.einsum("fai,rai->fr", vel, d), d)
    phi = np.outer(np.asarray(times_fs), gap.omega_per_fs) + gap.phase
    q = np.cos(phi) @ gap.amplitude_A.T
    qdot = -np.sin(phi) @ (gap.amplitude_A * gap.omega_per_fs).T
    return disp + np.einsum("fr,rai->fai", q, d), vel + np.einsum("fr,rai->fai", qdot, d)


def oscillator_energies_eV(osc: AtomOscillators, times_fs: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(kinetic, harmonic potential) energy in eV at every time, summed over all oscillators."""
    e = osc.energy_eV.ravel()
    w2 = 2.0 * osc.omega_per_fs.ravel()
    p2 = 2.0 * osc.phase.ravel()
    if osc.gap is not None:
        e = np.concatenate([e, osc.gap.energy_eV().ravel()])
        w2 = np.concatenate([w2, np.tile(2.0 * osc.gap.omega_per_fs, len(osc.gap.regions))])
        p2 = np.concatenate([p2, np.tile(2.0 * osc.gap.phase, len(osc.gap.regions))])
    s = np.empty(len(times_fs))
    for i in range(0, len(times_fs), chunk):
        t = np.asarray(times_fs[i : i + chunk])
        s[i : i + chunk] = np.cos(np.outer(t, w2) + p2) @ e
    total = e.sum()
    return 0.5 * (total - s), 0.5 * (total + s)
