"""From band-edge and velocity trajectories to the physics of the emission linewidth.

Conventions (DESIGN section 1): the gap fluctuation ``dE(t) = E_g(t) - <E_g>`` over the
production window of ``N`` samples, step ``dt``, is decomposed on the grid
``w_k = 2 pi k / (N dt)``, ``k >= 1``, into a one-sided amplitude spectrum ``F_k``
(a cosine ``A cos(w t)`` on the grid gives ``F = A``). Then

* Huang-Rhys factor per bin (paper Eq. 1): ``S_k = F_k^2 / (4 hbar w_k k_B T_md)``;
* reorganisation energy ``lambda = sum_k S_k hbar w_k = Var(dE) / (2 k_B T_md)`` (Parseval);
* thermal FWHM (paper Eq. 2): ``Gamma(T) = 2 sqrt(2 ln 2) sqrt(2 lambda k_B T)``;
* per spectral region R: ``S_R = sum S_k``, ``lambda_R = sum S_k hbar w_k``,
  ``hbar w_R = lambda_R / S_R``.

Energies are in meV, times in fs, temperatures in K unless a name says otherwise.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from qdphonon.units import BOLTZMANN_meV_per_K, FWHM_PER_SIGMA, HBAR_meV_fs

DEFAULT_REGION_EDGES_meV: tuple[float, ...] = (0.0, 4.5, 12.0, 30.0)
"""Edges of the low (~2 meV), intermediate (~7 meV) and LO (~17 meV) regions."""

DEFAULT_REGION_NAMES: tuple[str, ...] = ("low", "intermediate", "LO")

DEFAULT_TEMPERATURES_K: tuple[float, ...] = (4, 10, 25, 50, 77, 100, 150, 200, 250, 300, 350, 400)
"""Temperatures of the Gamma(T) curve written to linewidth.json."""

REQUIRED_COLUMNS = ("time_fs", "vbm_eV", "cbm_eV")

HARMONIC_ASSUMPTION = (
    "harmonic scaling: the gap-fluctuation variance sampled at md_temperature_K is scaled "
    "linearly in T (classical) or with coth(hbar w / 2 k_B T) per mode (quantum) to reach "
    "temperature_K; anharmonicity and phonon renormalisation between the two temperatures are neglected"
)
GAUSSIAN_ASSUMPTION = "Gaussian line shape (second-order cumulant, short-time / strong-coupling limit), FWHM = 2 sqrt(2 ln 2) sigma"
QUANTUM_ASSUMPTION = (
    "fwhm_quantum_meV: every spectral bin is treated as a harmonic mode with Bose occupation "
    "(coth factor); uncorrelated numerical noise in the band edges (white noise up to the Nyquist "
    "energy) is then counted as high-energy modes and inflates the quantum value more than the classical one"
)
WINDOW_ASSUMPTION = (
    "spectrum: Hann-windowed periodogram rescaled to the unwindowed variance, so region sums resist "
    "spectral leakage while sum_k S_k hbar w_k = Var/(2 k_B T_md) holds exactly"
)

_FALLBACK_MASSES_amu = {"Cs": 132.90545196, "Pb": 207.2, "Br": 79.904, "Ca": 40.078, "Sr": 87.62, "Cl": 35.45, "I": 126.90447}


class ResolutionWarning(UserWarning):
    """A trajectory (or block) is too short to resolve a spectral region."""


# ----------------------------------------------------------------------------- input
@dataclass(frozen=True)
class BandEdgeTrajectory:
    """Band edges of one replica: times in fs, VBM and CBM in eV, plus provenance flags."""

    source: str
    time_fs: np.ndarray
    vbm_eV: np.ndarray
    cbm_eV: np.ndarray
    synthetic: bool = False
    level: str | None = None
    n_scf_unconverged: int = 0
    n_interpolated: int = 0

    @property
    def gap_eV(self) -> np.ndarray:
        """Gap E_CBM - E_VBM at every sample, eV."""
        return self.cbm_eV - self.vbm_eV

    @property
    def n_samples(self) -> int:
        return int(self.time_fs.size)


def _header_comments(path: Path) -> list[str]:
    """The text of every line starting with ``#`` (without the ``#``)."""
    with open(path, encoding="utf-8") as fh:
        return [line.lstrip("#").strip() for line in fh if line.lstrip().startswith("#")]


def _comment_flags(comments: Iterable[str]) -> tuple[bool, str | None]:
    """(synthetic, level) from comment lines such as ``synthetic (mock engine)``, ``level: xtb``."""
    synthetic, level = False, None
    for text in comments:
        low = text.lower()
        if "synthetic" in low:
            synthetic = True
        if low.startswith("level"):
            value = text.split(":", 1)[1] if ":" in text else text.split("=", 1)[-1]
            value = value.strip()
            if value:
                level = value
    return synthetic, level


def _as_bool(values) -> np.ndarray:
    """Interpret a column of 0/1, True/False, 'true'/'false' strings as booleans."""
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v.strip().lower() in {"1", "true", "t", "yes", "y"})
        else:
            out.append(bool(v) and not (isinstance(v, float) and math.isnan(v)))
    return np.array(out, dtype=bool)


def check_uniform_time(time_fs: np.ndarray, source: str, rtol: float = 1e-3) -> float:
    """Return the time step (fs) of a strictly increasing, uniform grid; else ValueError naming ``source``.

    Uniformity is required because the spectrum uses the FFT grid ``w_k = 2 pi k / (N dt)``;
    a dropped step would silently shift every frequency.
    """
    t = np.asarray(time_fs, dtype=float)
    if t.size < 2:
        raise ValueError(f"{source}: need at least 2 samples, got {t.size}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{source}: time_fs contains NaN or infinite values")
    steps = np.diff(t)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ValueError(f"{source}: time_fs is not strictly increasing (row {i + 1}: {t[i]} -> {t[i + 1]})")
    dt_fs = (t[-1] - t[0]) / (t.size - 1)
    bad = np.abs(steps - dt_fs) > rtol * dt_fs
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"{source}: time_fs is not uniform (step {steps[i]:g} fs at row {i + 1}, mean step {dt_fs:g} fs)"
        )
    return float(dt_fs)


MAX_DROPPED_FRACTION = 0.05
"""Largest fraction of MD steps missing from a band-edge file that is bridged by interpolation."""


def fill_dropped_steps(
    step: np.ndarray, columns: dict[str, np.ndarray], source: str, max_fraction: float = MAX_DROPPED_FRACTION
) -> tuple[dict[str, np.ndarray], int]:
    """Restore a uniform grid where steps were dropped (SCF failures, ``drop_step`` policy).

    The FFT needs a uniform grid, and deleting samples would shift every frequency. Missing
    integer steps between the first and last are filled by linear interpolation of every
    column (time included), and their number is returned so outputs can report it. More
    than ``max_fraction`` missing is refused: interpolation would then shape the spectrum.
    """
    step = np.asarray(step)
    if not np.all(np.isfinite(step)) or np.any(step != np.round(step)):
        raise ValueError(f"{source}: column step must hold integers")
    step = step.astype(np.int64)
    if np.any(np.diff(step) <= 0):
        i = int(np.argmax(np.diff(step) <= 0))
        raise ValueError(f"{source}: step is not strictly increasing (row {i + 1}: {step[i]} -> {step[i + 1]})")
    stride = int(np.gcd.reduce(np.diff(step))) if step.size > 1 else 1
    full = np.arange(step[0], step[-1] + 1, stride)
    n_missing = int(full.size - step.size)
    if n_missing == 0:
        return columns, 0
    if n_missing > max_fraction * full.size:
        raise ValueError(
            f"{source}: {n_missing} of {full.size} MD steps are missing (dropped SCF failures?); "
            f"more than {max_fraction:.0%} cannot be bridged by interpolation"
        )
    warnings.warn(f"{source}: {n_missing} missing MD step(s) filled by linear interpolation", stacklevel=2)
    return {k: np.interp(full, step, v) for k, v in columns.items()}, n_missing


def read_band_edges(path: str | os.PathLike) -> BandEdgeTrajectory:
    """Read and validate a band-edge CSV (DESIGN section 5).

    Required columns ``time_fs,vbm_eV,cbm_eV``; ``#`` lines are comments (``synthetic``
    and ``level: ...`` are picked up). Rows flagged ``scf_converged`` false are kept (the
    CSV is what is analysed) but counted. Missing columns, NaNs, fewer than two rows, and
    non-increasing or non-uniform time raise ValueError naming the file and the problem.
    """
    import pandas as pd

    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{src}: band-edge file not found")
    synthetic, level = _comment_flags(_header_comments(path))
    try:
        df = pd.read_csv(path, comment="#", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{src}: empty file (no header, no rows)") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{src}: not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{src}: missing required column(s) {', '.join(missing)} (have: {', '.join(df.columns)})")
    if len(df) < 2:
        raise ValueError(f"{src}: {len(df)} data row(s); need at least 2 to define a fluctuation spectrum")
    cols = {}
    for name in REQUIRED_COLUMNS:
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            i = int(np.argmax(~np.isfinite(values)))
            raise ValueError(f"{src}: column {name} has NaN/non-numeric value at data row {i + 1}")
        cols[name] = values
    n_interpolated = 0
    if "step" in df.columns:
        step = pd.to_numeric(df["step"], errors="coerce").to_numpy(dtype=float)
        cols, n_interpolated = fill_dropped_steps(step, cols, src)
    check_uniform_time(cols["time_fs"], src)
    n_flagged = 0
    if "scf_converged" in df.columns:
        n_flagged = int(np.sum(~_as_bool(df["scf_converged"].tolist())))
    if "synthetic" in df.columns and np.any(_as_bool(df["synthetic"].tolist())):
        synthetic = True
    return BandEdgeTrajectory(
        source=src,
        time_fs=cols["time_fs"],
        vbm_eV=cols["vbm_eV"],
        cbm_eV=cols["cbm_eV"],
        synthetic=synthetic,
        level=level,
        n_scf_unconverged=n_flagged,
        n_interpolated=n_interpolated,
    )


def discard_equilibration(traj: BandEdgeTrajectory, discard_fs: float) -> BandEdgeTrajectory:
    """Drop the samples within ``discard_fs`` of the first time (equilibration); keep the rest."""
    if discard_fs < 0:
        raise ValueError(f"{traj.source}: discard_fs must be >= 0, got {discard_fs}")
    keep = traj.time_fs >= traj.time_fs[0] + discard_fs - 1e-9
    if keep.sum() < 2:
        raise ValueError(
            f"{traj.source}: fewer than 2 samples left after discarding {discard_fs:g} fs "
            f"(trajectory spans {traj.time_fs[-1] - traj.time_fs[0]:g} fs)"
        )
    return BandEdgeTrajectory(
        source=traj.source,
        time_fs=traj.time_fs[keep],
        vbm_eV=traj.vbm_eV[keep],
        cbm_eV=traj.cbm_eV[keep],
        synthetic=traj.synthetic,
        level=traj.level,
        n_scf_unconverged=traj.n_scf_unconverged,
        n_interpolated=traj.n_interpolated,
    )


def gap_fluctuation_meV(gap_eV: np.ndarray) -> np.ndarray:
    """``dE = E_g - <E_g>`` in meV (the mean over the analysed window removed)."""
    gap_meV = np.asarray(gap_eV, dtype=float) * 1000.0
    return gap_meV - gap_meV.mean()


# ----------------------------------------------------------------------------- spectrum
@dataclass(frozen=True)
class HuangRhysSpectrum:
    """Huang-Rhys factors ``S`` on the bins ``energy_meV = hbar w_k`` (k >= 1) of one trajectory."""

    energy_meV: np.ndarray
    S: np.ndarray
    md_temperature_K: float
    dt_fs: float
    n_samples: int
    variance_meV2: float
    window: str

    @property
    def S_hw_meV(self) -> np.ndarray:
        """Per-bin contribution ``S_k hbar w_k`` to the reorganisation energy, meV."""
        return self.S * self.energy_meV

    @property
    def duration_fs(self) -> float:
        """``N dt``: the period of the FFT grid, fs."""
        return self.n_samples * self.dt_fs

    @property
    def resolution_meV(self) -> float:
        """Bin spacing ``2 pi hbar / (N dt)``, meV."""
        return frequency_resolution_meV(self.duration_fs)


def frequency_resolution_meV(duration_fs: float) -> float:
    """Energy spacing ``2 pi hbar / duration`` of the FFT grid of a trajectory lasting ``duration_fs``."""
    return 2.0 * math.pi * HBAR_meV_fs / duration_fs


def one_sided_power_meV2(delta_E_meV: np.ndarray, window: str = "hann") -> np.ndarray:
    """One-sided power ``P_k`` (k = 1 .. N//2) of a zero-mean series, normalised so ``sum P_k = Var``.

    ``window="none"``: the plain periodogram, ``P_k = 2 |X_k|^2 / N^2`` (Nyquist bin once,
    ``|X|^2/N^2``); Parseval makes ``sum P_k`` equal to the variance exactly and ``F_k = sqrt(2 P_k)``
    is DESIGN's amplitude ``(2/N)|X_k|``.

    ``window="hann"`` (default): the same with the series multiplied by a periodic Hann
    window, then rescaled so that ``sum P_k`` is the *unwindowed* variance. Why: a mode whose
    frequency is not on the grid leaks into every bin with sinc^2 tails (~1/k^2) under the
    rectangular window, and ``S_k ~ P_k / w_k`` inflates whatever leaks into the lowest bins,
    so region sums of S depend on where the mode happens to fall and on the trajectory length.
    The Hann window confines a mode to about +-2 bins (side lobes fall as 1/k^6). The
    window-weighted mean is removed before windowing (the windowed series has no DC
    component); removing the plain mean instead leaves, for an off-grid mode, a residue
    ``X_0/4`` in the first bin that the 1/w weight turns into a spurious low-energy S.
    The rescaling to the unwindowed variance (a constant factor for all bins) keeps Parseval,
    and therefore ``lambda = Var/(2 k_B T_md)``, exact; only the distribution over bins
    comes from the windowed spectrum.
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
    spec = np.fft.rfft(xw)[1:]
    power = 2.0 * np.abs(spec) ** 2 / n**2
    if n % 2 == 0:
        power[-1] *= 0.5
    total = power.sum()
    if total > 0 and window != "none":
        power *= variance / total
    return power


def huang_rhys_spectrum(
    delta_E_meV: np.ndarray, dt_fs: float, md_temperature_K: float, window: str = "hann"
) -> HuangRhysSpectrum:
    """Frequency-resolved Huang-Rhys factors (paper Eq. 1) of a gap fluctuation.

    ``S_k = F_k^2 / (4 hbar w_k k_B T_md) = P_k / (2 hbar w_k k_B T_md)`` with ``P_k`` from
    :func:`one_sided_power_meV2` (Hann window + Parseval-preserving rescaling by default; see
    there for why). ``delta_E_meV`` must have zero mean (use :func:`gap_fluctuation_meV`).
    """
    if md_temperature_K <= 0:
        raise ValueError(f"md_temperature_K must be > 0, got {md_temperature_K}")
    x = np.asarray(delta_E_meV, dtype=float)
    n = x.size
    power = one_sided_power_meV2(x, window=window)
    k = np.arange(1, n // 2 + 1)
    energy_meV = 2.0 * math.pi * HBAR_meV_fs * k / (n * dt_fs)
    kT_md = BOLTZMANN_meV_per_K * md_temperature_K
    S = power / (2.0 * energy_meV * kT_md)
    return HuangRhysSpectrum(
        energy_meV=energy_meV,
        S=S,
        md_temperature_K=float(md_temperature_K),
        dt_fs=float(dt_fs),
        n_samples=n,
        variance_meV2=float(np.mean(x * x)),
        window=window,
    )


def reorganization_energy(energy_meV: np.ndarray, S: np.ndarray) -> float:
    """``lambda = sum_k S_k hbar w_k``, meV."""
    return float(np.sum(np.asarray(S) * np.asarray(energy_meV)))


def reorganization_energy_from_variance(variance_meV2: float, md_temperature_K: float) -> float:
    """``lambda = Var(dE) / (2 k_B T_md)``, meV: the classical fluctuation-dissipation link."""
    return float(variance_meV2) / (2.0 * BOLTZMANN_meV_per_K * md_temperature_K)


def thermal_linewidth_fwhm_meV(lambda_meV: float, temperature_K: float) -> float:
    """Classical Gaussian FWHM at T (paper Eq. 2): ``2 sqrt(2 ln 2) sqrt(2 lambda k_B T)``, meV."""
    return FWHM_PER_SIGMA * math.sqrt(max(2.0 * lambda_meV * BOLTZMANN_meV_per_K * temperature_K, 0.0))


def quantum_variance_meV2(energy_meV: np.ndarray, S: np.ndarray, temperature_K: float) -> float:
    """Gap variance at T with quantum occupations: ``sum_k S_k (hbar w_k)^2 coth(hbar w_k / 2 k_B T)``, meV^2.

    Tends to the classical ``2 lambda k_B T`` for ``hbar w << k_B T`` and to the zero-point
    ``sum S_k (hbar w_k)^2`` at T = 0.
    """
    e = np.asarray(energy_meV, dtype=float)
    s = np.asarray(S, dtype=float)
    if temperature_K <= 0:
        return float(np.sum(s * e * e))
    x = e / (2.0 * BOLTZMANN_meV_per_K * temperature_K)
    return float(np.sum(s * e * e / np.tanh(x)))


def quantum_linewidth_fwhm_meV(energy_meV: np.ndarray, S: np.ndarray, temperature_K: float) -> float:
    """Quantum-corrected Gaussian FWHM: ``2 sqrt(2 ln 2) sqrt(Var_q)``, meV (see :func:`quantum_variance_meV2`)."""
    return FWHM_PER_SIGMA * math.sqrt(quantum_variance_meV2(energy_meV, S, temperature_K))


def linewidth_vs_temperature(
    energy_meV: np.ndarray, S: np.ndarray, temperatures_K: Sequence[float]
) -> list[dict]:
    """Gamma(T), classical (Eq. 2) and quantum-corrected, for each temperature (harmonic scaling)."""
    lam = reorganization_energy(energy_meV, S)
    return [
        {
            "temperature_K": float(T),
            "fwhm_classical_meV": thermal_linewidth_fwhm_meV(lam, T),
            "fwhm_quantum_meV": quantum_linewidth_fwhm_meV(energy_meV, S, T),
        }
        for T in temperatures_K
    ]


# ----------------------------------------------------------------------------- regions
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
) -> list[dict]:
    """Effective mode per region ``[lo, hi)``: ``S_R``, ``lambda_R`` (meV) and ``hw_R = lambda_R/S_R`` (meV).

    A region is ``resolved`` when the bin spacing ``resolution_meV`` is not coarser than its
    width; an unresolved region still gets its sums (they are then unreliable). ``hw_meV`` is
    NaN when the region holds no weight.
    """
    edges = validate_region_edges(edges_meV)
    names = list(names) if names is not None else region_names(edges)
    e = np.asarray(energy_meV, dtype=float)
    s = np.asarray(S, dtype=float)
    out = []
    for name, lo, hi in zip(names, edges[:-1], edges[1:]):
        sel = (e >= lo) & (e < hi)
        S_R = float(s[sel].sum())
        lam_R = float((s[sel] * e[sel]).sum())
        out.append(
            {
                "name": name,
                "lo_meV": lo,
                "hi_meV": hi,
                "S": S_R,
                "hw_meV": lam_R / S_R if S_R > 0 else float("nan"),
                "lambda_meV": lam_R,
                "resolved": bool(resolution_meV is None or resolution_meV <= (hi - lo)),
            }
        )
    return out


# ----------------------------------------------------------------------------- one trajectory
@dataclass
class TrajectoryAnalysis:
    """Everything derived from one gap trajectory at one (T_md, T)."""

    spectrum: HuangRhysSpectrum
    gap_mean_eV: float
    lambda_meV: float
    fwhm_meV: float
    fwhm_quantum_meV: float
    variance_quantum_meV2: float
    regions: list[dict]


def analyze_gap(
    gap_eV: np.ndarray,
    dt_fs: float,
    md_temperature_K: float,
    temperature_K: float,
    region_edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
    window: str = "hann",
) -> TrajectoryAnalysis:
    """Spectrum, lambda, classical and quantum FWHM at ``temperature_K`` and region modes of one gap series (eV)."""
    gap_eV = np.asarray(gap_eV, dtype=float)
    dE = gap_fluctuation_meV(gap_eV)
    spec = huang_rhys_spectrum(dE, dt_fs, md_temperature_K, window=window)
    lam = reorganization_energy_from_variance(spec.variance_meV2, md_temperature_K)
    var_q = quantum_variance_meV2(spec.energy_meV, spec.S, temperature_K)
    return TrajectoryAnalysis(
        spectrum=spec,
        gap_mean_eV=float(gap_eV.mean()),
        lambda_meV=lam,
        fwhm_meV=thermal_linewidth_fwhm_meV(lam, temperature_K),
        fwhm_quantum_meV=FWHM_PER_SIGMA * math.sqrt(var_q),
        variance_quantum_meV2=var_q,
        regions=region_modes(spec.energy_meV, spec.S, region_edges_meV, spec.resolution_meV),
    )


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean, ``std(ddof=1)/sqrt(n)``; NaN for fewer than two values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size < 2:
        return float("nan")
    return float(v.std(ddof=1) / math.sqrt(v.size))


def block_analyses(
    gap_eV: np.ndarray,
    dt_fs: float,
    md_temperature_K: float,
    temperature_K: float,
    n_blocks: int = 4,
    region_edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
    source: str = "trajectory",
) -> list[TrajectoryAnalysis]:
    """Analyse ``n_blocks`` contiguous, equal blocks of one trajectory (each with its own mean removed).

    Their spread gives an error bar when there is only one replica. Blocks miss fluctuations
    slower than a block, so their values are biased low for slow modes; they serve for the
    spread, not as the central value. A ResolutionWarning is issued when a block's bin spacing
    is coarser than the lowest region.
    """
    gap_eV = np.asarray(gap_eV, dtype=float)
    n_per = gap_eV.size // n_blocks
    if n_blocks < 2 or n_per < 2:
        return []
    edges = validate_region_edges(region_edges_meV)
    res = frequency_resolution_meV(n_per * dt_fs)
    if res > edges[1] - edges[0]:
        warnings.warn(
            f"{source}: blocks of {n_per * dt_fs:g} fs (resolution {res:.2f} meV) are too short to resolve the "
            f"lowest region [{edges[0]:g}, {edges[1]:g}) meV; block error bars for it are unreliable",
            ResolutionWarning,
            stacklevel=2,
        )
    return [
        analyze_gap(gap_eV[i * n_per : (i + 1) * n_per], dt_fs, md_temperature_K, temperature_K, edges)
        for i in range(n_blocks)
    ]


# ----------------------------------------------------------------------------- VDOS
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


@dataclass(frozen=True)
class VelocityTrajectory:
    """Velocities (frames, atoms, 3), times in fs, per-atom symbols and optional regions."""

    source: str
    velocities: np.ndarray
    time_fs: np.ndarray
    symbols: np.ndarray
    regions: np.ndarray | None
    synthetic: bool = False


def read_velocities_npz(path: str | os.PathLike) -> VelocityTrajectory:
    """Read a velocity ``.npz`` (arrays ``velocities``, ``time_fs``, ``symbols``, optional ``regions``)."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{src}: velocity file not found")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("velocities", "time_fs", "symbols") if k not in data.files]
        if missing:
            raise ValueError(f"{src}: missing array(s) {', '.join(missing)}")
        vel = np.asarray(data["velocities"])
        t = np.asarray(data["time_fs"], dtype=float)
        symbols = np.asarray(data["symbols"]).astype(str)
        regions = np.asarray(data["regions"]).astype(str) if "regions" in data.files else None
        synthetic = bool(np.any(data["synthetic"])) if "synthetic" in data.files else False
    if vel.ndim != 3 or vel.shape[2] != 3:
        raise ValueError(f"{src}: velocities must have shape (frames, atoms, 3), got {vel.shape}")
    if t.shape != (vel.shape[0],):
        raise ValueError(f"{src}: time_fs has {t.size} entries for {vel.shape[0]} frames")
    if symbols.shape != (vel.shape[1],):
        raise ValueError(f"{src}: symbols has {symbols.size} entries for {vel.shape[1]} atoms")
    if regions is not None and regions.shape != (vel.shape[1],):
        raise ValueError(f"{src}: regions has {regions.size} entries for {vel.shape[1]} atoms")
    if not np.all(np.isfinite(vel)):
        raise ValueError(f"{src}: velocities contain NaN or infinite values")
    check_uniform_time(t, src)
    return VelocityTrajectory(src, vel, t, symbols, regions, synthetic)


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


# ----------------------------------------------------------------------------- system level
def _mean_spectrum(spectra: Sequence[HuangRhysSpectrum]) -> tuple[np.ndarray, np.ndarray]:
    """Mean S over replicas on the coarsest replica grid (S summed into its bins, then averaged).

    Identical grids average bin by bin; otherwise each replica's S_k is added to the bin of
    the coarsest grid its energy falls in, which keeps sum S and, to within a bin, lambda.
    """
    ref = max(spectra, key=lambda s: s.resolution_meV)
    e = ref.energy_meV
    half = ref.resolution_meV / 2.0
    edges = np.concatenate([[e[0] - half], e + half])
    rows = []
    for sp in spectra:
        if sp.energy_meV.shape == e.shape and np.allclose(sp.energy_meV, e):
            rows.append(sp.S)
        else:
            rows.append(np.histogram(sp.energy_meV, bins=edges, weights=sp.S)[0])
    return e, np.mean(rows, axis=0)


def mean_region_modes(analyses: Sequence[TrajectoryAnalysis]) -> list[dict]:
    """Region modes averaged over replicas: mean ``S_R`` and ``lambda_R``, ``hw_R`` = their ratio.

    A region counts as resolved only if it is resolved in every replica.
    """
    out = []
    for i, ref in enumerate(analyses[0].regions):
        S_R = float(np.mean([a.regions[i]["S"] for a in analyses]))
        lam_R = float(np.mean([a.regions[i]["lambda_meV"] for a in analyses]))
        out.append(
            {
                **{k: ref[k] for k in ("name", "lo_meV", "hi_meV")},
                "S": S_R,
                "hw_meV": lam_R / S_R if S_R > 0 else float("nan"),
                "lambda_meV": lam_R,
                "resolved": all(a.regions[i]["resolved"] for a in analyses),
            }
        )
    return out


def standard_errors(samples: Sequence[TrajectoryAnalysis], n_regions: int) -> dict:
    """Standard errors of lambda, classical and quantum FWHM and region S / lambda over replicas or blocks.

    NaN everywhere when there are fewer than two samples.
    """
    def se(get):
        return standard_error([get(a) for a in samples])

    return {
        "lambda_meV_err": se(lambda a: a.lambda_meV),
        "fwhm_meV_err": se(lambda a: a.fwhm_meV),
        "fwhm_quantum_meV_err": se(lambda a: a.fwhm_quantum_meV),
        "regions": [
            {"S_err": se(lambda a: a.regions[i]["S"]), "lambda_meV_err": se(lambda a: a.regions[i]["lambda_meV"])}
            for i in range(n_regions)
        ],
    }


def _finite_or_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _json_clean(obj):
    if isinstance(obj, dict):
        return {k: _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.floating,)):
        obj = float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return _finite_or_none(obj)


def read_structure_json(path: str | os.PathLike | None) -> dict:
    """The structure sidecar as a dict; ``{}`` for None; tolerant of missing keys."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: structure JSON not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def analyze_system(
    band_edge_csvs: Sequence[str | os.PathLike],
    md_temperature_K: float,
    temperature_K: float,
    region_edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
    discard_fs: float = 0.0,
    outdir: str | os.PathLike | None = None,
    velocities_npz: Sequence[str | os.PathLike] | None = None,
    structure_json: str | os.PathLike | None = None,
    n_blocks: int = 4,
    temperatures_K: Sequence[float] = DEFAULT_TEMPERATURES_K,
    system: str | None = None,
) -> dict:
    """Analyse all replicas of one system; write ``spectral_density.csv``, ``linewidth.json`` (and ``vdos.csv``).

    Central values: with several replicas, the mean over replicas (lambda from the mean
    variance, so ``fwhm_meV`` is Eq. 2 of ``lambda_meV``; the spectrum is the replica mean);
    errors are standard errors across replicas (``error_method='replicas'``). With one
    replica, central values from the whole trajectory and errors from ``n_blocks`` blocks
    (``error_method='blocks'``). Regions whose width is finer than the bin spacing are
    reported with ``resolved: false`` and a ResolutionWarning. ``outdir=None`` writes nothing.
    Returns the content of linewidth.json.
    """
    if not band_edge_csvs:
        raise ValueError("no band-edge files given")
    if temperature_K < 0:
        raise ValueError(f"temperature_K must be >= 0, got {temperature_K}")
    edges = validate_region_edges(region_edges_meV)
    trajs = [discard_equilibration(read_band_edges(p), discard_fs) for p in band_edge_csvs]
    per = []
    for tr in trajs:
        dt = check_uniform_time(tr.time_fs, tr.source)
        per.append(analyze_gap(tr.gap_eV, dt, md_temperature_K, temperature_K, edges))
    structure = read_structure_json(structure_json)
    if system is None:
        system = structure.get("system") or (Path(outdir).name if outdir is not None else Path(band_edge_csvs[0]).parent.name)

    n_rep = len(per)
    energy, S_mean = _mean_spectrum([a.spectrum for a in per])
    variance = float(np.mean([a.spectrum.variance_meV2 for a in per]))
    lam = reorganization_energy_from_variance(variance, md_temperature_K)
    var_q = float(np.mean([a.variance_quantum_meV2 for a in per]))
    min_res = max(a.spectrum.resolution_meV for a in per)
    regions = mean_region_modes(per)

    if n_rep >= 2:
        error_method, samples = "replicas", per
    else:
        src = trajs[0].source
        dt = check_uniform_time(trajs[0].time_fs, src)
        samples = block_analyses(trajs[0].gap_eV, dt, md_temperature_K, temperature_K, n_blocks, edges, src)
        error_method = "blocks" if samples else "none"
    errors = standard_errors(samples, len(regions))
    for reg, reg_err in zip(regions, errors.pop("regions")):
        reg.update(reg_err)

    unresolved = [r["name"] for r in regions if not r["resolved"]]
    if unresolved:
        warnings.warn(
            f"{system}: trajectory too short (resolution {min_res:.2f} meV) to resolve region(s) "
            f"{', '.join(unresolved)}; lambda and Gamma come from the variance, region values are marked unresolved",
            ResolutionWarning,
            stacklevel=2,
        )

    synthetic = any(t.synthetic for t in trajs)
    vdos = None
    if velocities_npz:
        results = [_vdos_of_file(p, discard_fs) for p in velocities_npz]
        vdos = mean_vdos([d for d, _ in results])
        synthetic = synthetic or any(s for _, s in results)
    levels = sorted({t.level for t in trajs if t.level})
    level = structure.get("level") if not levels else ",".join(levels)

    vs_T = [
        {
            "temperature_K": float(T),
            "fwhm_classical_meV": thermal_linewidth_fwhm_meV(lam, T),
            "fwhm_quantum_meV": FWHM_PER_SIGMA
            * math.sqrt(np.mean([quantum_variance_meV2(a.spectrum.energy_meV, a.spectrum.S, T) for a in per])),
        }
        for T in temperatures_K
    ]
    result = {
        "system": system,
        "lambda_meV": lam,
        "lambda_meV_err": errors["lambda_meV_err"],
        "fwhm_meV": thermal_linewidth_fwhm_meV(lam, temperature_K),
        "fwhm_meV_err": errors["fwhm_meV_err"],
        "fwhm_quantum_meV": FWHM_PER_SIGMA * math.sqrt(var_q),
        "fwhm_quantum_meV_err": errors["fwhm_quantum_meV_err"],
        "temperature_K": float(temperature_K),
        "md_temperature_K": float(md_temperature_K),
        "gap_mean_eV": float(np.mean([a.gap_mean_eV for a in per])),
        "gap_std_meV": math.sqrt(variance),
        "n_samples": int(sum(a.spectrum.n_samples for a in per)),
        "n_samples_per_replica": [a.spectrum.n_samples for a in per],
        "duration_fs": float(sum(a.spectrum.duration_fs for a in per)),
        "duration_fs_per_replica": [a.spectrum.duration_fs for a in per],
        "dt_fs_per_replica": [a.spectrum.dt_fs for a in per],
        "discard_fs": float(discard_fs),
        "frequency_resolution_meV": min_res,
        "lambda_above_regions_meV": reorganization_energy(energy[energy >= edges[-1]], S_mean[energy >= edges[-1]]),
        "n_replicas": n_rep,
        "n_blocks": n_blocks if error_method == "blocks" else None,
        "error_method": error_method,
        "n_scf_unconverged_rows": int(sum(t.n_scf_unconverged for t in trajs)),
        "n_interpolated_steps": int(sum(t.n_interpolated for t in trajs)),
        "regions": regions,
        "fwhm_vs_temperature": vs_T,
        "window": per[0].spectrum.window,
        "synthetic": bool(synthetic),
        "level": level,
        "assumptions": [HARMONIC_ASSUMPTION, GAUSSIAN_ASSUMPTION, QUANTUM_ASSUMPTION, WINDOW_ASSUMPTION],
        "inputs": {"band_edges": [t.source for t in trajs], "velocities": [str(p) for p in velocities_npz or []]},
    }
    for key in ("formula", "n_atoms", "size_octahedra", "edge_nm", "shell_layers", "shell_metal", "counts_by_region"):
        if key in structure:
            result[key] = structure[key]
    result = _json_clean(result)
    if outdir is not None:
        write_analysis(outdir, result, energy, S_mean, vdos)
    return result


def write_analysis(outdir, result: dict, energy_meV: np.ndarray, S: np.ndarray, vdos: VibrationalDOS | None) -> list[Path]:
    """Write spectral_density.csv, linewidth.json and (if given) vdos.csv into ``outdir``; return the paths."""
    import pandas as pd

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    header = "# synthetic (mock engine)\n" if result.get("synthetic") else ""
    written = []
    sd = pd.DataFrame({"energy_meV": energy_meV, "S": S, "S_hw_meV": S * energy_meV})
    path = out / "spectral_density.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(header)
        sd.to_csv(fh, index=False, float_format="%.10g")
    written.append(path)
    path = out / "linewidth.json"
    path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written.append(path)
    if vdos is not None:
        cols = {"energy_meV": vdos.energy_meV, "total": vdos.total, **vdos.projections}
        path = out / "vdos.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(header)
            pd.DataFrame(cols).to_csv(fh, index=False, float_format="%.8g")
        written.append(path)
    return written


# ----------------------------------------------------------------------------- campaign summary
def _size_triplet(structure: dict) -> list:
    size = structure.get("size_octahedra") or structure.get("size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        return [int(x) for x in size]
    return [None, None, None]


def summary_row(linewidth: dict, structure: dict | None = None) -> dict:
    """One summary.csv row from a linewidth.json dict and the system's structure sidecar."""
    st = dict(structure or {})
    for key in ("formula", "n_atoms", "size_octahedra", "edge_nm", "shell_layers", "shell_metal"):
        st.setdefault(key, linewidth.get(key))
    nx, ny, nz = _size_triplet(st)
    counts = st.get("counts_by_region") or linewidth.get("counts_by_region") or {}
    row = {
        "system": linewidth.get("system") or st.get("system"),
        "nx": nx,
        "ny": ny,
        "nz": nz,
        "edge_nm": st.get("edge_nm"),
        "formula": st.get("formula"),
        "shell_layers": st.get("shell_layers") if st.get("shell_layers") is not None else 0,
        "shell_metal": st.get("shell_metal") if st.get("shell_layers") else None,
        "n_atoms": st.get("n_atoms"),
        "n_core": counts.get("core") if isinstance(counts, dict) else None,
        "n_surface": counts.get("surface") if isinstance(counts, dict) else None,
        "n_shell": counts.get("shell") if isinstance(counts, dict) else None,
        "gap_mean_eV": linewidth.get("gap_mean_eV"),
        "gap_std_meV": linewidth.get("gap_std_meV"),
        "lambda_meV": linewidth.get("lambda_meV"),
        "lambda_meV_err": linewidth.get("lambda_meV_err"),
        "temperature_K": linewidth.get("temperature_K"),
        "fwhm_meV": linewidth.get("fwhm_meV"),
        "fwhm_meV_err": linewidth.get("fwhm_meV_err"),
        "fwhm_quantum_meV": linewidth.get("fwhm_quantum_meV"),
        "n_replicas": linewidth.get("n_replicas"),
        "error_method": linewidth.get("error_method"),
        "duration_fs": linewidth.get("duration_fs"),
    }
    for reg in linewidth.get("regions", []):
        name = reg.get("name")
        row[f"S_{name}"] = reg.get("S")
        row[f"S_{name}_err"] = reg.get("S_err")
        row[f"hw_{name}_meV"] = reg.get("hw_meV")
        row[f"lambda_{name}_meV"] = reg.get("lambda_meV")
        row[f"resolved_{name}"] = reg.get("resolved")
    row["synthetic"] = bool(linewidth.get("synthetic", False))
    row["level"] = linewidth.get("level")
    return row


def write_summary(
    linewidth_jsons: Sequence[str | os.PathLike],
    structure_jsons: Sequence[str | os.PathLike] | None,
    out_csv: str | os.PathLike,
) -> Path:
    """Campaign ``summary.csv``: one row per linewidth.json, joined to structure sidecars by system name.

    A linewidth file's system is its ``system`` key (else its directory name); a structure's
    is its ``system`` key (else its file stem). Missing structures leave blank columns.
    """
    import pandas as pd

    structures: dict[str, dict] = {}
    for p in structure_jsons or []:
        st = read_structure_json(p)
        structures[st.get("system") or Path(p).stem] = st
    rows = []
    for p in linewidth_jsons:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: linewidth JSON not found")
        try:
            lw = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not valid JSON ({exc})") from None
        lw.setdefault("system", p.parent.name)
        rows.append(summary_row(lw, structures.get(lw["system"])))
    if not rows:
        raise ValueError("no linewidth files given")
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False, float_format="%.8g")
    return out
