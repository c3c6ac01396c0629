"""Huang-Rhys spectrum of one gap trajectory (paper Eq. 1), reorganisation energy, linewidths, regions.

Two spectra of the same trajectory are kept, for two different jobs:

* ``S`` -- paper Eq. 1 exactly: the rectangular (unwindowed) periodogram,
  ``S_k = F_k^2 / (4 hbar w_k k_B T_md)`` with ``F_k = (2/N)|sum_n dE_n exp(-i w_k t_n)|``.
  ``spectral_density.csv`` reports it per bin; the band-limited quantum width and the weight above
  the band use it (their per-bin weights, ``P x coth x``, are smooth in w, so leakage hardly moves
  them, and the split at the band edge stays an exact partition of the variance).
* ``S_window`` -- a Hann-windowed periodogram rescaled to the same total variance, for region
  sums and the lineshape: the rectangular window leaks a strong off-grid mode into every bin with
  1/k^2 tails, and ``S ~ P/w`` (region sums) and ``S coth ~ P/w^2`` (the zero-phonon weight)
  inflate what lands in the lowest bins. Its price: a mode occupies the Hann main lobe (4 bins),
  so a region counts as ``resolved`` only when it is at least that wide (:data:`MAIN_LOBE_BINS`).

Both obey Parseval exactly: ``sum_k S_k hbar w_k = Var(dE) / (2 k_B T_md)`` (docs/physics.md §1).
Energies in meV, times in fs, temperatures in K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qdphonon import settings
from qdphonon.units import BOLTZMANN_meV_per_K, FWHM_PER_SIGMA, HBAR_meV_fs

DEFAULT_REGION_EDGES_meV: tuple[float, ...] = tuple(settings.default("analysis.region_edges_meV"))
"""Edges of the low (~2 meV), intermediate (~7 meV) and LO (~17 meV) regions (the schema's default)."""

DEFAULT_REGION_NAMES: tuple[str, ...] = ("low", "intermediate", "LO")

DEFAULT_TEMPERATURES_K: tuple[float, ...] = tuple(settings.default("analysis.temperatures_K"))
"""Temperatures of the Gamma(T) curve written to linewidth.json (the schema's default)."""

MAIN_LOBE_BINS = {"hann": 4, "none": 2}
"""Full width of the window's main lobe in bins: the narrowest region a window resolves."""

HARMONIC_ASSUMPTION = (
    "harmonic scaling: the gap-fluctuation variance sampled at md_temperature_K is scaled "
    "linearly in T (classical) or with coth(hbar w / 2 k_B T) per mode (quantum) to reach "
    "report_temperature_K; anharmonicity and phonon renormalisation between the two temperatures are neglected"
)

GAUSSIAN_ASSUMPTION = (
    "fwhm_meV and fwhm_quantum_meV assume a Gaussian line (second-order cumulant, many phonons: "
    "sum S coth >> 1), FWHM = 2 sqrt(2 ln 2) sigma; the cumulant lineshape (fwhm_lineshape_meV) says "
    "where that fails (gaussian_valid false: zero-phonon line or resolved replicas)"
)

QUANTUM_ASSUMPTION = (
    "quantum corrections (coth) apply only inside the phonon band hbar w <= band_cutoff_meV; the weight above it "
    "(numerical noise, not phonons; lambda_above_band_meV) is kept classically in fwhm_quantum_meV (linear in T, "
    "as in Eq. 2, never amplified) and left out of the lineshape"
)

WINDOW_ASSUMPTION = (
    "spectral_density.csv column S is paper Eq. 1 (rectangular periodogram), also used for the quantum width and "
    "the weight above the band; region sums and the lineshape use the Hann-windowed spectrum S_window rescaled "
    "to the same variance (leakage guard); a region is resolved only when it spans the Hann main lobe (4 bins) "
    "and no line straddling its edges moves more than 10 % of its lambda"
)


class ResolutionWarning(UserWarning):
    """A trajectory (or block) is too short to resolve a spectral region."""


def gap_fluctuation_meV(gap_eV: np.ndarray) -> np.ndarray:
    """``dE = E_g - <E_g>`` in meV (the mean over the analysed window removed)."""
    gap_meV = np.asarray(gap_eV, dtype=float) * 1000.0
    return gap_meV - gap_meV.mean()


def frequency_resolution_meV(duration_fs: float) -> float:
    """Energy spacing ``2 pi hbar / duration`` of the FFT grid of a trajectory lasting ``duration_fs``."""
    return 2.0 * math.pi * HBAR_meV_fs / duration_fs


def period_fs(energy_meV: float) -> float:
    """Period ``2 pi hbar / E`` (fs) of a mode of energy ``E`` (meV); inf for E <= 0."""
    return 2.0 * math.pi * HBAR_meV_fs / energy_meV if energy_meV > 0 else math.inf


@dataclass(frozen=True)
class HuangRhysSpectrum:
    """Huang-Rhys factors on the bins ``energy_meV = hbar w_k`` (k >= 1) of one trajectory.

    ``S``: paper Eq. 1 (rectangular); ``S_window``: the ``window`` estimate used for region
    sums and the lineshape (equal to ``S`` for ``window='none'``). ``md_temperature_K`` is the
    temperature the spectrum is normalised by (the run's internal temperature when measured).
    """

    energy_meV: np.ndarray
    S: np.ndarray
    S_window: np.ndarray
    md_temperature_K: float
    dt_fs: float
    n_samples: int
    variance_meV2: float
    window: str

    @property
    def S_hw_meV(self) -> np.ndarray:
        """Per-bin contribution ``S_k hbar w_k`` (Eq. 1) to the reorganisation energy, meV."""
        return self.S * self.energy_meV

    @property
    def duration_fs(self) -> float:
        """``N dt``: the period of the FFT grid, fs."""
        return self.n_samples * self.dt_fs

    @property
    def resolution_meV(self) -> float:
        """Bin spacing ``2 pi hbar / (N dt)``, meV."""
        return frequency_resolution_meV(self.duration_fs)

    @property
    def main_lobe_meV(self) -> float:
        """Full width of the window's main lobe, meV: the narrowest resolvable region."""
        return MAIN_LOBE_BINS[self.window] * self.resolution_meV


def one_sided_power_meV2(delta_E_meV: np.ndarray, window: str = "hann") -> np.ndarray:
    """One-sided power ``P_k`` (k = 1 .. N//2) of a zero-mean series, normalised so ``sum P_k = Var``.

    ``window="none"``: the plain periodogram, ``P_k = 2 |X_k|^2 / N^2`` (Nyquist bin once,
    ``|X|^2/N^2``); Parseval makes ``sum P_k`` equal to the variance exactly and ``F_k = sqrt(2 P_k)``
    is the amplitude ``(2/N)|X_k|`` of docs/physics.md §1.

    ``window="hann"``: the series multiplied by a periodic Hann window (its window-weighted
    mean removed first, so no DC residue reaches the first bin), then rescaled by one constant
    so that ``sum P_k`` is the *unwindowed* variance. A mode then occupies about +-2 bins (side
    lobes fall as 1/k^6 instead of 1/k^2), so region sums do not depend on where an off-grid
    mode falls; only the distribution over bins comes from the windowed spectrum.
    """
    x = np.asarray(delta_E_meV, dtype=float)
    n = x.size
    variance = float(np.mean((x - x.mean()) ** 2))
    if window == "hann":
        w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        xw = (x - np.sum(w * x) / np.sum(w)) * w
    elif window == "none":
        xw = x - x.mean()
    else:
        raise ValueError(f"unknown window {window!r} (use 'hann' or 'none')")
    power = 2.0 * np.abs(np.fft.rfft(xw)[1:]) ** 2 / n**2
    if n % 2 == 0:
        power[-1] *= 0.5
    total = power.sum()
    if total > 0 and window != "none":
        power *= variance / total
    return power


def huang_rhys_spectrum(
    delta_E_meV: np.ndarray, dt_fs: float, md_temperature_K: float, window: str = "hann"
) -> HuangRhysSpectrum:
    """Frequency-resolved Huang-Rhys factors of a zero-mean gap fluctuation (meV) sampled every ``dt_fs``.

    ``S_k = P_k / (2 hbar w_k k_B T_md)`` with ``P_k`` the rectangular periodogram (paper Eq. 1)
    and, for ``S_window``, the ``window`` periodogram of :func:`one_sided_power_meV2`.
    """
    if md_temperature_K <= 0:
        raise ValueError(f"md_temperature_K must be > 0, got {md_temperature_K}")
    x = np.asarray(delta_E_meV, dtype=float)
    n = x.size
    energy_meV = 2.0 * math.pi * HBAR_meV_fs * np.arange(1, n // 2 + 1) / (n * dt_fs)
    denom = 2.0 * energy_meV * BOLTZMANN_meV_per_K * md_temperature_K
    S = one_sided_power_meV2(x, window="none") / denom
    S_window = S if window == "none" else one_sided_power_meV2(x, window=window) / denom
    return HuangRhysSpectrum(energy_meV, S, S_window, float(md_temperature_K), float(dt_fs), n,
                             float(np.mean((x - x.mean()) ** 2)), window)  # fmt: skip


def reorganization_energy(energy_meV: np.ndarray, S: np.ndarray) -> float:
    """``lambda = sum_k S_k hbar w_k``, meV."""
    return float(np.sum(np.asarray(S) * np.asarray(energy_meV)))


def reorganization_energy_from_variance(variance_meV2: float, md_temperature_K: float) -> float:
    """``lambda = Var(dE) / (2 k_B T_md)``, meV: the classical fluctuation-dissipation link."""
    return float(variance_meV2) / (2.0 * BOLTZMANN_meV_per_K * md_temperature_K)


def thermal_linewidth_fwhm_meV(lambda_meV: float, temperature_K: float) -> float:
    """Classical Gaussian FWHM at T (paper Eq. 2): ``2 sqrt(2 ln 2) sqrt(2 lambda k_B T)``, meV."""
    return FWHM_PER_SIGMA * math.sqrt(max(2.0 * lambda_meV * BOLTZMANN_meV_per_K * temperature_K, 0.0))


def coth_factor(energy_meV: np.ndarray, temperature_K: float) -> np.ndarray:
    """``coth(hbar w / 2 k_B T)`` (``2 n_B + 1``); 1 at T = 0."""
    e = np.asarray(energy_meV, dtype=float)
    if temperature_K <= 0:
        return np.ones_like(e)
    return 1.0 / np.tanh(e / (2.0 * BOLTZMANN_meV_per_K * temperature_K))


def in_band(energy_meV: np.ndarray, cutoff_meV: float | None) -> np.ndarray:
    """Mask of the phonon band ``hbar w <= cutoff_meV`` (everything for None)."""
    e = np.asarray(energy_meV, dtype=float)
    return np.ones(e.shape, bool) if cutoff_meV is None else e <= cutoff_meV * (1 + 1e-12)


def quantum_variance_meV2(
    energy_meV: np.ndarray, S: np.ndarray, temperature_K: float, cutoff_meV: float | None = None
) -> float:
    """Gap variance at T with Bose occupations inside the phonon band, meV^2:
    ``sum_{w_k <= w_c} S_k (hbar w_k)^2 coth(hbar w_k / 2 k_B T) + 2 k_B T sum_{w_k > w_c} S_k hbar w_k``.

    The quantum factor is applied only up to ``cutoff_meV`` (None: every bin): white noise
    fills every bin up to Nyquist, and coth would turn it into zero-point motion of fictitious
    high-energy modes. The weight above the band is kept classically, as Eq. 2 keeps it (scaled
    linearly in T, not amplified), so the result tends to ``2 lambda k_B T`` for
    ``hbar w_c << k_B T`` and to the in-band zero-point ``sum S (hbar w)^2`` at T = 0.
    """
    e, s = np.asarray(energy_meV, dtype=float), np.asarray(S, dtype=float)
    band = in_band(e, cutoff_meV)
    inside = float(np.sum(s[band] * e[band] ** 2 * coth_factor(e[band], temperature_K)))
    above = 2.0 * BOLTZMANN_meV_per_K * max(temperature_K, 0.0) * float(np.sum(s[~band] * e[~band]))
    return inside + above


def quantum_linewidth_fwhm_meV(
    energy_meV: np.ndarray, S: np.ndarray, temperature_K: float, cutoff_meV: float | None = None
) -> float:
    """Quantum-corrected Gaussian FWHM ``2 sqrt(2 ln 2) sqrt(Var_q)``, meV (:func:`quantum_variance_meV2`)."""
    return FWHM_PER_SIGMA * math.sqrt(quantum_variance_meV2(energy_meV, S, temperature_K, cutoff_meV))


def region_names(edges_meV: Sequence[float]) -> list[str]:
    """``low, intermediate, LO`` for three regions, else ``R1, R2, ...``."""
    n = len(edges_meV) - 1
    return list(DEFAULT_REGION_NAMES) if n == 3 else [f"R{i + 1}" for i in range(n)]


def validate_region_edges(edges_meV: Sequence[float]) -> list[float]:
    """Edges as floats, at least two, strictly increasing and >= 0; else ValueError."""
    edges = [float(e) for e in edges_meV]
    if len(edges) < 2:
        raise ValueError(f"region edges need at least two values, got {edges}")
    if any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0:
        raise ValueError(f"region edges must be >= 0 and strictly increasing, got {edges}")
    return edges


def region_modes(
    energy_meV: np.ndarray,
    S: np.ndarray,
    edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
    resolution_meV: float | None = None,
    names: Sequence[str] | None = None,
    main_lobe_bins: int = 1,
) -> list[dict]:
    """Effective mode per region ``[lo, hi)``: ``S_R``, ``lambda_R`` (meV) and ``hw_R = lambda_R/S_R`` (meV).

    ``resolved``: the region holds a bin and is at least ``main_lobe_bins * resolution_meV``
    wide (a window smears a mode over its main lobe, so a narrower region cannot hold its
    modes). A region with no bin at all has ``S``, ``lambda_meV`` and ``hw_meV`` None (not 0:
    nothing was measured); ``hw_meV`` is None when the region holds no weight.
    """
    edges = validate_region_edges(edges_meV)
    names = list(names) if names is not None else region_names(edges)
    e, s = np.asarray(energy_meV, dtype=float), np.asarray(S, dtype=float)
    out = []
    for name, lo, hi in zip(names, edges[:-1], edges[1:]):
        sel = (e >= lo) & (e < hi)
        has_bins = bool(sel.any())
        S_R = float(s[sel].sum()) if has_bins else None
        lam_R = float((s[sel] * e[sel]).sum()) if has_bins else None
        wide = resolution_meV is None or main_lobe_bins * resolution_meV <= (hi - lo) * (1 + 1e-12)
        out.append({
            "name": name, "lo_meV": lo, "hi_meV": hi, "S": S_R,
            "hw_meV": lam_R / S_R if S_R else None, "lambda_meV": lam_R,
            "resolved": bool(has_bins and wide),
        })  # fmt: skip
    return out


def slow_mode_energy_meV(energy_meV: np.ndarray, weight: np.ndarray, lo_meV: float = 0.0,
                         hi_meV: float = math.inf, quantile: float = 0.1) -> float:
    """Energy (meV) below which ``quantile`` of ``weight`` in ``[lo, hi)`` lies: the region's slowest
    significant mode, whose period a block must span twice. 0 when the region holds no weight."""
    e, w = np.asarray(energy_meV, dtype=float), np.clip(np.asarray(weight, dtype=float), 0, None)
    sel = (e >= lo_meV) & (e < hi_meV)
    if not sel.any() or w[sel].sum() <= 0:
        return 0.0
    cum = np.cumsum(w[sel]) / w[sel].sum()
    return float(max(e[sel][int(np.searchsorted(cum, quantile))], lo_meV))


@dataclass
class TrajectoryAnalysis:
    """Everything derived from one gap trajectory at one (T_md, report T)."""

    spectrum: HuangRhysSpectrum
    gap_mean_eV: float
    lambda_meV: float
    fwhm_meV: float
    fwhm_quantum_meV: float
    variance_quantum_meV2: float
    band_cutoff_meV: float
    lambda_band_meV: float
    regions: list[dict]

    @property
    def lambda_above_band_meV(self) -> float:
        """Reorganisation energy in bins above the phonon band (noise, not phonons), meV."""
        return self.lambda_meV - self.lambda_band_meV


def analyze_gap(
    gap_eV: np.ndarray,
    dt_fs: float,
    md_temperature_K: float,
    temperature_K: float,
    region_edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
    window: str = "hann",
    band_cutoff_meV: float | None = None,
) -> TrajectoryAnalysis:
    """Spectrum, lambda, classical and band-limited quantum FWHM at ``temperature_K`` and region modes.

    ``gap_eV``: gap at every sample (eV); ``band_cutoff_meV``: end of the phonon band (default:
    the last region edge, docs/physics.md §4.1).
    """
    gap_eV = np.asarray(gap_eV, dtype=float)
    edges = validate_region_edges(region_edges_meV)
    cutoff = float(edges[-1] if band_cutoff_meV is None else band_cutoff_meV)
    spec = huang_rhys_spectrum(gap_fluctuation_meV(gap_eV), dt_fs, md_temperature_K, window=window)
    lam = reorganization_energy_from_variance(spec.variance_meV2, md_temperature_K)
    var_q = quantum_variance_meV2(spec.energy_meV, spec.S, temperature_K, cutoff)
    band = in_band(spec.energy_meV, cutoff)
    return TrajectoryAnalysis(
        spectrum=spec,
        gap_mean_eV=float(gap_eV.mean()),
        lambda_meV=lam,
        fwhm_meV=thermal_linewidth_fwhm_meV(lam, temperature_K),
        fwhm_quantum_meV=FWHM_PER_SIGMA * math.sqrt(var_q),
        variance_quantum_meV2=var_q,
        band_cutoff_meV=cutoff,
        lambda_band_meV=reorganization_energy(spec.energy_meV[band], spec.S[band]),
        regions=region_modes(spec.energy_meV, spec.S_window, edges, spec.resolution_meV,
                             main_lobe_bins=MAIN_LOBE_BINS[window]),  # fmt: skip
    )
