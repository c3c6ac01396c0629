"""Does the harmonic scaling hold? One system run at several MD temperatures: lambda(T_md) =
Var(dE)/(2 k_B T_md), Gamma(300 K) extrapolated from each, the shift of the main spectral bands, and
the deviation from harmonic scaling (a harmonic system gives the same lambda at every T_md).

Intervals are Student-t over the replicas of each temperature (``CONFIDENCE_LEVEL``); the
deviation's interval combines the two temperatures' (independent) errors. Energies in meV.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from qdphonon.analysis.spectrum import gap_fluctuation_meV, huang_rhys_spectrum, thermal_linewidth_fwhm_meV
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL
from qdphonon.units import BOLTZMANN_meV_per_K


def _mean_halfwidth(values: Sequence[float]) -> tuple[float, float | None]:
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), None
    t = stats.t.ppf(0.5 + CONFIDENCE_LEVEL / 2, x.size - 1)
    return float(x.mean()), float(t * x.std(ddof=1) / math.sqrt(x.size))


def band_centroid_meV(energy_meV: np.ndarray, S: np.ndarray, lo_meV: float, hi_meV: float) -> float | None:
    """``sum S hw . hw / sum S hw`` over lo <= hw < hi: the lambda-weighted centre of a band (None if empty)."""
    sel = (energy_meV >= lo_meV) & (energy_meV < hi_meV)
    w = S[sel] * energy_meV[sel]
    return float(np.sum(w * energy_meV[sel]) / np.sum(w)) if sel.any() and np.sum(w) > 0 else None


def anharmonicity_table(gaps_by_T: Mapping[float, Sequence[np.ndarray]], dt_fs: float,
                        region_edges_meV: Sequence[float], report_temperature_K: float = 300.0) -> pd.DataFrame:  # fmt: skip
    """One row per T_md: ``lambda_meV`` (+ ``_err``), ``fwhm_report_meV`` (+ ``_err``: Eq. 2 at the report
    temperature from this T_md's lambda), ``lambda_ratio`` = lambda(T) / lambda(T_lowest) (1 if harmonic)
    with ``lambda_ratio_err``, and ``centre_<k>_meV``: the lambda-weighted centre of band k (edges
    ``region_edges_meV``) of the replica-mean Hann spectrum. ``gaps_by_T``: T_md -> replica gap series (eV)."""
    if len(gaps_by_T) < 2:
        raise ValueError(f"anharmonicity needs at least two MD temperatures, got {sorted(gaps_by_T)}")
    rows = []
    for T in sorted(gaps_by_T):
        if T <= 0:
            raise ValueError(f"MD temperature must be > 0 K, got {T}")
        lams, spectra = [], []
        for gap in gaps_by_T[T]:
            dE = gap_fluctuation_meV(gap)
            lams.append(float(np.mean(dE**2)) / (2 * BOLTZMANN_meV_per_K * T))
            spectra.append(huang_rhys_spectrum(dE, dt_fs, T))
        lam, lam_err = _mean_halfwidth(lams)
        fw = thermal_linewidth_fwhm_meV(lam, report_temperature_K)
        row = {"md_temperature_K": float(T), "n_replicas": len(lams), "lambda_meV": lam, "lambda_meV_err": lam_err,
               "fwhm_report_meV": fw, "fwhm_report_meV_err": None if lam_err is None else fw * lam_err / (2 * lam)}  # fmt: skip
        n = min(s.S_window.size for s in spectra)
        S = np.mean([s.S_window[:n] for s in spectra], axis=0)
        e = spectra[0].energy_meV[:n]
        for k, (lo, hi) in enumerate(zip(region_edges_meV[:-1], region_edges_meV[1:])):
            row[f"centre_{k}_meV"] = band_centroid_meV(e, S, lo, hi)
        rows.append(row)
    ref = rows[0]
    for row in rows:
        ratio = row["lambda_meV"] / ref["lambda_meV"]
        row["lambda_ratio"] = ratio
        if row["lambda_meV_err"] is None or ref["lambda_meV_err"] is None:
            row["lambda_ratio_err"] = None
        elif row is ref:
            row["lambda_ratio_err"] = 0.0
        else:
            rel = math.hypot(row["lambda_meV_err"] / row["lambda_meV"], ref["lambda_meV_err"] / ref["lambda_meV"])
            row["lambda_ratio_err"] = ratio * rel
    return pd.DataFrame(rows)
