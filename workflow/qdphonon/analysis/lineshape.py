"""Second-order cumulant lineshape of the exciton from the Huang-Rhys spectrum (docs/physics.md §4.3).

``g(t) = sum_{w_k <= w_c} S_k [coth(hbar w_k / 2 k_B T)(1 - cos w_k t) + i sin w_k t]``;
absorption ``sigma_a(E) ~ Re int_0^inf dt exp(i (E - E_0) t / hbar - g(t) - gamma t / 2 hbar)``
with ``E_0`` the zero-phonon line. (the form ``i (sin w_k t - w_k t)`` in docs/physics.md §4.3: that measures ``E``
from the vertical energy ``E_0 + lambda`` instead; here offsets are from the zero-phonon line.)
The absorption line's first moment lies ``lambda`` above ``E_0``; emission is the mirror image
about ``E_0``, so the Stokes shift ``2 lambda`` is the shift between the *first moments* (mean
energies) of absorption and emission. The *peaks* of a skewed line (few modes, low T) are closer
than that; ``stokes_shift_peak_to_peak_meV`` reports their separation. ``gamma`` is a homogeneous (Lorentzian) width
that the harmonic model does not contain: it gives the zero-phonon line (weight
``exp(-sum S_k coth)``, the Debye-Waller factor) a finite width and damps the recurrences of a discrete spectrum; it is
at least twice the MD bin spacing, so the line is never sharper than the MD resolves.

Each bin's ``S_k`` is spread uniformly over its bin ``hbar w_k +- Delta/2`` (the spectrum is read
as a histogram, not a comb of delta functions): the oscillating part of ``g`` gets the factor
``sinc(Delta t / 2 hbar)``. A comb makes ``g`` periodic in ``2 pi hbar / Delta``, and those
recurrences put a ripple of period ``Delta`` on the line that moves the maximum of a broad line by
up to half a bin; the histogram has none, keeps ``lambda`` and ``sum S coth`` (hence the
zero-phonon weight) exactly, and adds ``Delta^2 / 12`` per phonon to the line's variance.

For ``sum S coth >> 1`` the line is a Gaussian of variance ``sigma_q^2 = sum S (hbar w)^2 coth``,
whose FWHM tends to paper Eq. 2 classically. Where the line is not Gaussian (zero-phonon line,
resolved phonon replicas at low T) its FWHM is read from the line and ``gaussian_valid`` is false.
Energies in meV, times in fs, temperatures in K.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from qdphonon.analysis.spectrum import coth_factor, in_band
from qdphonon.units import FWHM_PER_SIGMA, HBAR_meV_fs

HOMOGENEOUS_FWHM_meV = 1.0
"""Smallest homogeneous (Lorentzian) FWHM given to the line, meV (the model has no lifetime)."""

SMALLEST_WEIGHT = 1e-300
"""Weights below this are written as 0 (no denormals in tables); ``zpl_weight_log10`` keeps the exponent."""

GAUSSIAN_TOLERANCE = 0.05
"""The line counts as Gaussian when its FWHM is within this fraction of ``2 sqrt(2 ln 2) sigma_q``."""

LINESHAPE_ASSUMPTION = (
    "lineshape: second-order cumulant (linear coupling, harmonic bath) over the phonon band, from the Hann-windowed "
    "spectrum (leakage cannot reach the zero-phonon line), each bin read as a histogram bar; a homogeneous "
    "Lorentzian of homogeneous_fwhm_meV (>= 2 MD bins) is added; E_0 = <E_g> - lambda_band: ground-state MD gives "
    "<E_g> as the vertical absorption energy, so trust the width and shape, not the absolute position"
)


@dataclass(frozen=True)
class Lineshape:
    """Emission and absorption lines (per meV, unit area) on ``offset_meV = E - E_0`` at one temperature."""

    offset_meV: np.ndarray
    emission: np.ndarray
    absorption: np.ndarray
    temperature_K: float
    fwhm_meV: float
    emission_peak_offset_meV: float
    zpl_weight: float
    huang_rhys_thermal: float
    stokes_shift_meV: float
    lambda_band_meV: float
    sigma_meV: float
    dephasing_time_fs: float | None
    homogeneous_fwhm_meV: float
    bin_meV: float = 0.0

    @property
    def zpl_weight_log10(self) -> float:
        """``log10`` of the zero-phonon weight, ``-sum S coth / ln 10`` (finite where the weight is written as 0)."""
        return -self.huang_rhys_thermal / math.log(10.0)

    @property
    def stokes_shift_peak_to_peak_meV(self) -> float:
        """Separation of the absorption and emission maxima, meV (``-2 x`` the emission peak offset:
        the lines are mirror images about E_0); smaller than ``2 lambda`` for a skewed line."""
        return -2.0 * self.emission_peak_offset_meV

    @property
    def gaussian_fwhm_meV(self) -> float:
        """FWHM of the Gaussian limit, ``2 sqrt(2 ln 2) sigma_q``, meV."""
        return FWHM_PER_SIGMA * self.sigma_meV

    @property
    def gaussian_valid(self) -> bool:
        """True when the line's FWHM agrees with the Gaussian limit within :data:`GAUSSIAN_TOLERANCE`."""
        g = self.gaussian_fwhm_meV
        return bool(g > 0 and np.isfinite(self.fwhm_meV) and abs(self.fwhm_meV / g - 1) <= GAUSSIAN_TOLERANCE)

    def summary(self) -> dict:
        """The scalar results (JSON-ready), with a sentence saying whether Eq. 2's Gaussian applies."""
        note = ("Gaussian: FWHM agrees with 2 sqrt(2 ln 2) sigma_q" if self.gaussian_valid else
                f"not Gaussian (zero-phonon-line weight {self.zpl_weight:.2g}, thermal S {self.huang_rhys_thermal:.3g}): "
                "the FWHM is read from the line; Eq. 2 does not apply")  # fmt: skip
        return {
            "report_temperature_K": self.temperature_K, "fwhm_lineshape_meV": self.fwhm_meV,
            "fwhm_gaussian_quantum_meV": self.gaussian_fwhm_meV, "gaussian_valid": self.gaussian_valid,
            "emission_peak_offset_meV": self.emission_peak_offset_meV, "zpl_weight": self.zpl_weight,
            "huang_rhys_thermal": self.huang_rhys_thermal, "zpl_weight_log10": self.zpl_weight_log10,
            "stokes_shift_meV": self.stokes_shift_meV, "stokes_shift_peak_to_peak_meV": self.stokes_shift_peak_to_peak_meV,
            "bin_smearing_meV": self.bin_meV,
            "dephasing_time_fs": self.dephasing_time_fs, "homogeneous_fwhm_meV": self.homogeneous_fwhm_meV,
            "note": note,
        }  # fmt: skip


def _g_of_t(t_fs: np.ndarray, e: np.ndarray, s: np.ndarray, coth: np.ndarray, bin_meV: float = 0.0) -> np.ndarray:
    """Line-broadening function g(t) (complex), summed bin by bin to keep memory at O(len(t)).

    ``bin_meV > 0``: each bin's S spread uniformly over its width (factor ``sinc(Delta t / 2 hbar)``
    on the oscillating part). On a uniform energy grid ``exp(i w_k t)`` is advanced from bin to
    bin by one complex multiplication (no trigonometric call per bin and time)."""
    t = np.asarray(t_fs, dtype=float)
    acc_cos = np.zeros(t.shape, dtype=complex)
    acc_sin = np.zeros(t.shape, dtype=complex)
    d = np.diff(e)
    if e.size > 1 and np.allclose(d, d[0], rtol=1e-9, atol=0.0):
        z = np.exp(1j * (e[0] / HBAR_meV_fs) * t)
        step = np.exp(1j * (d[0] / HBAR_meV_fs) * t)
        for k in range(e.size):
            if k:
                z *= step
            acc_cos += (s[k] * coth[k]) * z
            acc_sin += s[k] * z
    else:
        for ek, sk, ck in zip(e, s, coth):
            z = np.exp(1j * (ek / HBAR_meV_fs) * t)
            acc_cos += (sk * ck) * z
            acc_sin += sk * z
    smear = np.sinc(bin_meV * t / (2.0 * math.pi * HBAR_meV_fs)) if bin_meV > 0 else 1.0
    return (float(np.sum(s * coth)) - smear * acc_cos.real) + 1j * smear * acc_sin.imag


def peak_offset(x: np.ndarray, y: np.ndarray) -> float:
    """Position of the global maximum, refined by the parabola through it and its neighbours."""
    i = int(np.argmax(y))
    if 0 < i < y.size - 1:
        den = y[i - 1] - 2.0 * y[i] + y[i + 1]
        if den < 0:
            return float(x[i] + 0.5 * (y[i - 1] - y[i + 1]) / den * (x[i + 1] - x[i]))
    return float(x[i])


def fwhm_of_line(x: np.ndarray, y: np.ndarray) -> float:
    """Full width at half maximum around the global maximum, by linear interpolation; NaN if not found."""
    i = int(np.argmax(y))
    half = 0.5 * y[i]
    left = np.nonzero(y[:i] < half)[0]
    right = np.nonzero(y[i:] < half)[0]
    if left.size == 0 or right.size == 0:
        return math.nan
    a, b = left[-1], i + right[0]
    xl = x[a] + (half - y[a]) * (x[a + 1] - x[a]) / (y[a + 1] - y[a])
    xr = x[b - 1] + (half - y[b - 1]) * (x[b] - x[b - 1]) / (y[b] - y[b - 1])
    return float(xr - xl)


def dephasing_time_fs(e: np.ndarray, s: np.ndarray, coth: np.ndarray, t_max_fs: float) -> float | None:
    """First time (fs) at which ``|exp(-g(t))| = exp(-Re g)`` falls to 1/e; None when it never does
    before ``t_max_fs`` (weak coupling: the zero-phonon line keeps the coherence)."""
    if 2.0 * float(np.sum(s * coth)) < 1.0 or e.size == 0:
        return None
    dt = min(2 * math.pi * HBAR_meV_fs / float(e.max()) / 40.0,
             HBAR_meV_fs / math.sqrt(max(float(np.sum(s * coth * e * e)), 1e-30)) / 20.0)  # fmt: skip
    t0 = 0.0
    while t0 < t_max_fs:
        t = t0 + dt * np.arange(1, 4097)
        re_g = _g_of_t(t, e, s, coth).real
        hit = np.nonzero(re_g >= 1.0)[0]
        if hit.size:
            j = int(hit[0])
            prev_t, prev_g = (t[j - 1], re_g[j - 1]) if j else (t0, float(_g_of_t(np.array([t0]), e, s, coth).real[0]))
            return float(prev_t + (1.0 - prev_g) * (t[j] - prev_t) / (re_g[j] - prev_g))
        t0 = float(t[-1])
    return None


def cumulant_lineshape(
    energy_meV: np.ndarray, S: np.ndarray, temperature_K: float, cutoff_meV: float | None = None,
    homogeneous_fwhm_meV: float | None = None, resolution_meV: float | None = None, max_points: int = 2**17,
    bin_meV: float | None = None,
) -> Lineshape:
    """Emission line at ``temperature_K`` from Huang-Rhys factors ``S`` on ``energy_meV`` (band ``<= cutoff_meV``).

    ``homogeneous_fwhm_meV``: Lorentzian FWHM (default: ``max(HOMOGENEOUS_FWHM_meV, 2 * resolution_meV)``,
    the resolution defaulting to the spacing of ``energy_meV``). The line is the FFT of
    ``exp(-g(t) - gamma t/2 hbar)`` on a grid fine enough for the Lorentzian (spacing gamma/10)
    and wide enough for ``lambda + 10 sigma_q``; returned lines have unit area (per meV).
    ``bin_meV``: width over which each bin's S is spread (module docstring); default: the grid
    spacing when ``energy_meV`` is an FFT grid (uniform, starting at one spacing), else 0 (a comb).
    """
    e_all, s_all = np.asarray(energy_meV, dtype=float), np.asarray(S, dtype=float)
    band = in_band(e_all, cutoff_meV) & (e_all > 0)
    e, s = e_all[band], np.clip(s_all[band], 0.0, None)
    if resolution_meV is None:
        resolution_meV = float(np.min(np.diff(e_all))) if e_all.size > 1 else HOMOGENEOUS_FWHM_meV
    gamma = float(homogeneous_fwhm_meV if homogeneous_fwhm_meV is not None
                  else max(HOMOGENEOUS_FWHM_meV, 2.0 * resolution_meV))  # fmt: skip
    if bin_meV is None:
        d = np.diff(e_all)
        fft_grid = e_all.size > 1 and np.allclose(d, d[0], rtol=1e-9) and abs(e_all[0] - d[0]) <= 1e-9 * d[0]
        bin_meV = float(d[0]) if fft_grid else 0.0
    coth = coth_factor(e, temperature_K)
    lam = float(np.sum(s * e))
    sigma = math.sqrt(float(np.sum(s * e * e * coth)))
    S_T = float(np.sum(s * coth))
    half_span = max(lam + 10.0 * sigma + 25.0 * gamma, 50.0)
    # the zero-phonon line (width gamma) needs gamma/10; once it has no weight, gamma/4 resolves the replicas
    de = min(gamma / (10.0 if S_T < 8.0 else 4.0), max(sigma, gamma) / 40.0)
    n = 1 << int(math.ceil(math.log2(2.0 * half_span / de)))
    n = min(n, max_points)
    de = 2.0 * half_span / n
    dt = 2.0 * math.pi * HBAR_meV_fs / (n * de)
    t = dt * np.arange(n)
    f = np.exp(-_g_of_t(t, e, s, coth, bin_meV) - 0.5 * gamma * t / HBAR_meV_fs)
    f[0] *= 0.5  # trapezoid weight of the t = 0 end of the one-sided integral
    spec = np.fft.fftshift(n * np.fft.ifft(f)).real * dt  # sum_n f_n exp(+i eps t_n / hbar)
    offset = (np.arange(n) - n // 2) * de
    absorption = np.clip(spec, 0.0, None)
    absorption /= absorption.sum() * de
    emission = np.interp(-offset, offset, absorption)
    emission /= emission.sum() * de
    return Lineshape(
        offset_meV=offset, emission=emission, absorption=absorption, temperature_K=float(temperature_K),
        fwhm_meV=fwhm_of_line(offset, emission), emission_peak_offset_meV=peak_offset(offset, emission),
        zpl_weight=vanishing_as_zero(math.exp(-S_T)), huang_rhys_thermal=S_T, stokes_shift_meV=2.0 * lam, lambda_band_meV=lam,
        sigma_meV=sigma, dephasing_time_fs=dephasing_time_fs(e, s, coth, 0.5 * 2 * math.pi * HBAR_meV_fs / resolution_meV),
        homogeneous_fwhm_meV=gamma, bin_meV=float(bin_meV),
    )  # fmt: skip


def vanishing_as_zero(weight: float) -> float:
    """``weight``, or 0.0 when below :data:`SMALLEST_WEIGHT` (never a denormal)."""
    return float(weight) if abs(weight) >= SMALLEST_WEIGHT else 0.0


def gaussian_line(offset_meV: np.ndarray, centre_meV: float, fwhm_meV: float) -> np.ndarray:
    """Unit-area Gaussian of the given FWHM on ``offset_meV`` (per meV)."""
    sig = fwhm_meV / FWHM_PER_SIGMA
    if sig <= 0:
        return np.zeros_like(offset_meV, dtype=float)
    return np.exp(-0.5 * ((offset_meV - centre_meV) / sig) ** 2) / (sig * math.sqrt(2 * math.pi))


def lineshape_table(line: Lineshape, gap_mean_eV: float, eq2_fwhm_meV: float, max_rows: int = 4001,
                    floor: float = 1e-5):
    """The line as a DataFrame: ``energy_offset_meV`` (E - E_0), ``photon_energy_eV``, ``emission_per_meV``,
    ``absorption_per_meV`` and ``emission_eq2_per_meV`` (paper Eq. 2's Gaussian, centred at -lambda,
    for comparison). Rows where every line is below ``floor`` of its maximum are dropped; at most
    ``max_rows`` rows (uniform stride). ``E_0 = <E_g> - lambda_band``."""
    import pandas as pd

    x = line.offset_meV
    eq2 = gaussian_line(x, -line.lambda_band_meV, eq2_fwhm_meV)
    keep = np.zeros(x.shape, bool)
    for y in (line.emission, line.absorption, eq2):
        if y.max() > 0:
            keep |= y >= floor * y.max()
    idx = np.nonzero(keep)[0]
    idx = np.arange(idx[0], idx[-1] + 1)
    idx = idx[:: max(1, int(math.ceil(idx.size / max_rows)))]
    e0_eV = gap_mean_eV - line.lambda_band_meV / 1000.0
    return pd.DataFrame({
        "energy_offset_meV": x[idx], "photon_energy_eV": e0_eV + x[idx] / 1000.0,
        "emission_per_meV": line.emission[idx], "absorption_per_meV": line.absorption[idx],
        "emission_eq2_per_meV": eq2[idx],
    })  # fmt: skip


def write_lineshape(path: str | os.PathLike, line: Lineshape, gap_mean_eV: float, eq2_fwhm_meV: float,
                    metadata: Mapping) -> list[Path]:
    """Write ``lineshape.csv`` (:func:`lineshape_table`) and its JSON sidecar through ``metadata.write_table``."""
    from qdphonon.metadata import write_table

    summary = line.summary()
    summary["gaussian_note"] = summary.pop("note")  # the sidecar's "note" is write_table's (synthetic data)
    meta = {**dict(metadata), **summary,
            "zero_phonon_line_eV": gap_mean_eV - line.lambda_band_meV / 1000.0, "assumption": LINESHAPE_ASSUMPTION,
            "units": {"energy_offset_meV": "meV", "photon_energy_eV": "eV", "emission_per_meV": "1/meV",
                      "absorption_per_meV": "1/meV", "emission_eq2_per_meV": "1/meV"}}  # fmt: skip
    return write_table(lineshape_table(line, gap_mean_eV, eq2_fwhm_meV), path, meta)
