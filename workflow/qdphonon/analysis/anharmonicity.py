"""Does the harmonic scaling hold? One system run at several MD temperatures: lambda(T_md) =
Var(dE)/(2 k_B T), Gamma(report T) extrapolated from each, the shift of the main spectral bands, and
the deviation from harmonic scaling (a harmonic system with a linear gap gives the same lambda at
every T_md, so Gamma(300 K) from a 10 K run equals Gamma(300 K) from a 300 K run).

Per temperature, lambda is the replica mean of :func:`qdphonon.analysis.spectrum.analyze_gap` (the
main analysis's estimator, each replica normalised by its own temperature). Intervals at
``CONFIDENCE_LEVEL``: Student-t over the replicas of a temperature; for one replica, the chi^2
interval of its spectrum (:mod:`qdphonon.analysis.spectral_interval`). The ratio of two
temperatures' lambda: for one replica each, exact under that chi^2 model (an F interval);
otherwise the relative half-widths combined in quadrature (independent runs). Energies in meV.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from qdphonon.analysis.spectral_interval import spectral_errors
from qdphonon.analysis.spectrum import analyze_gap, region_names, thermal_linewidth_fwhm_meV, validate_region_edges
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL, mean_spectrum, t_half_width

ANHARMONICITY_ASSUMPTION = (
    "harmonic scaling: lambda = Var(dE)/(2 k_B T) is the same at every T_md for harmonic motion and a gap linear "
    "in it; lambda_ratio = lambda(T_md)/lambda(reference) - 1 and fwhm_deviation = sqrt(lambda_ratio) - 1 measure "
    "how far Gamma(report T) extrapolated from the reference run misses the one extrapolated from T_md; classical "
    "MD at each T_md (no zero-point motion), each temperature's runs equilibrated and stationary"
)


def band_centroid_meV(energy_meV: np.ndarray, S: np.ndarray, lo_meV: float, hi_meV: float) -> float | None:
    """``sum S hw . hw / sum S hw`` over lo <= hw < hi: the lambda-weighted centre of a band (None if empty)."""
    sel = (energy_meV >= lo_meV) & (energy_meV < hi_meV)
    w = S[sel] * energy_meV[sel]
    return float(np.sum(w * energy_meV[sel]) / np.sum(w)) if sel.any() and np.sum(w) > 0 else None


def ratio_interval(x: float, iv_x: Sequence[float] | None, dof_x: float | None, y: float,
                   iv_y: Sequence[float] | None, dof_y: float | None, confidence: float = CONFIDENCE_LEVEL,
                   ) -> tuple[float, float] | None:  # fmt: skip
    """Interval of ``x / y`` for independent estimates. With both ``dof`` given (each estimate
    ``truth chi^2_nu / nu``) the ratio over the true ratio is F(nu_x, nu_y)-distributed: exact
    quantiles. Otherwise the intervals' relative half-widths add in quadrature (lower end clipped at
    0). None without both."""
    from scipy.special import fdtri

    r = x / y
    if dof_x and dof_y:
        hi_q, lo_q = fdtri(dof_x, dof_y, 0.5 + confidence / 2.0), fdtri(dof_x, dof_y, 0.5 - confidence / 2.0)
        return float(r / hi_q), float(r / lo_q)
    if iv_x is None or iv_y is None:
        return None
    rel = math.hypot(0.5 * (iv_x[1] - iv_x[0]) / x, 0.5 * (iv_y[1] - iv_y[0]) / y)
    return max(r * (1.0 - rel), 0.0), r * (1.0 + rel)


def _temperature_row(gaps: Sequence[np.ndarray], dt_fs: float, T_md: float, normalising_K: Sequence[float],
                     report_K: float, edges: list[float], cutoff: float | None) -> tuple[dict, dict]:  # fmt: skip
    """One temperature's row and what the ratios need (interval, dof, per-replica band centres)."""
    per = [analyze_gap(g, dt_fs, Tn, report_K, edges, band_cutoff_meV=cutoff) for g, Tn in zip(gaps, normalising_K)]
    lams = [a.lambda_meV for a in per]
    lam = float(np.mean(lams))
    dof = None
    if len(per) >= 2:
        hw = t_half_width(lams)
        iv = None if hw is None else (lam - hw, lam + hw)
        method = "replicas"
    else:
        errors, info = spectral_errors(per[0], report_K, CONFIDENCE_LEVEL)
        iv, dof, method = errors["lambda_meV_interval"], info["dof_lambda"], "spectrum"
    fw = thermal_linewidth_fwhm_meV(lam, report_K)
    fw_iv = [thermal_linewidth_fwhm_meV(max(x, 0.0), report_K) for x in iv] if iv else [None, None]
    row = {"md_temperature_K": float(T_md), "normalisation_temperature_K": float(np.mean(normalising_K)),
           "n_replicas": len(per), "error_method": method, "duration_fs": float(np.mean([a.spectrum.duration_fs for a in per])),
           "gap_mean_eV": float(np.mean([a.gap_mean_eV for a in per])),
           "lambda_meV": lam, "lambda_meV_err": None if iv is None else 0.5 * (iv[1] - iv[0]),
           "lambda_lo_meV": iv[0] if iv else None, "lambda_hi_meV": iv[1] if iv else None,
           "fwhm_report_meV": fw, "fwhm_report_lo_meV": fw_iv[0], "fwhm_report_hi_meV": fw_iv[1]}  # fmt: skip
    energy, _, S_window = mean_spectrum([a.spectrum for a in per])
    centres = {}
    for name, lo, hi in zip(region_names(edges), edges[:-1], edges[1:]):
        row[f"centre_{name}_meV"] = band_centroid_meV(energy, S_window, lo, hi)
        each = [band_centroid_meV(a.spectrum.energy_meV, a.spectrum.S_window, lo, hi) for a in per]
        centres[name] = t_half_width(each) if all(c is not None for c in each) else None
    return row, {"interval": iv, "dof": dof, "centre_err": centres}


def anharmonicity_table(gaps_by_T: Mapping[float, Sequence[np.ndarray]], dt_fs: float | Mapping[float, float],
                        region_edges_meV: Sequence[float], report_temperature_K: float = 300.0, *,
                        normalising_K_by_T: Mapping[float, Sequence[float]] | None = None,
                        reference_K: float | None = None, band_cutoff_meV: float | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per T_md (ascending).

    ``gaps_by_T``: T_md (K) -> replica gap series (eV); ``dt_fs``: their sampling step (one value, or
    one per T_md); ``normalising_K_by_T``: T_md -> each replica's normalising temperature (default:
    T_md; :mod:`qdphonon.analysis.temperature`); ``reference_K``: the run whose harmonic extrapolation
    is tested (default: the lowest T_md).

    Columns: ``md_temperature_K``, ``normalisation_temperature_K``, ``n_replicas``, ``error_method``,
    ``duration_fs``, ``gap_mean_eV`` (a mean gap moving with T_md is the mark of a gap not linear in the
    displacements), ``lambda_meV`` (+ ``_err`` half-width, ``lambda_lo_meV``/``lambda_hi_meV``),
    ``fwhm_report_meV`` (Eq. 2 at the report temperature from this T_md's lambda, + lo/hi),
    ``lambda_ratio`` = lambda(T_md)/lambda(reference) (1 if harmonic; + ``_lo``/``_hi``/``_err``),
    ``fwhm_deviation`` = sqrt(lambda_ratio) - 1 (+ lo/hi), and per spectral region
    ``centre_<region>_meV`` (lambda-weighted centre of the replica-mean Hann spectrum),
    ``shift_<region>_meV`` (its change from the reference) with ``shift_<region>_meV_err``
    (Student-t over replicas; blank for one replica).
    """
    temps = sorted(float(T) for T in gaps_by_T)
    if len(temps) < 2:
        raise ValueError(f"anharmonicity needs at least two MD temperatures, got {temps}")
    if temps[0] <= 0:
        raise ValueError(f"MD temperature must be > 0 K, got {temps[0]}")
    ref_K = temps[0] if reference_K is None else float(reference_K)
    if not any(math.isclose(ref_K, T, rel_tol=1e-9) for T in temps):
        raise ValueError(f"reference temperature {ref_K:g} K is not one of the MD temperatures {temps}")
    edges = validate_region_edges(region_edges_meV)
    by_T = {float(T): v for T, v in gaps_by_T.items()}
    norm = {float(T): v for T, v in (normalising_K_by_T or {}).items()}
    dts = {float(T): v for T, v in dt_fs.items()} if isinstance(dt_fs, Mapping) else {T: float(dt_fs) for T in temps}
    rows, extra = [], []
    for T in temps:
        if not by_T[T]:
            raise ValueError(f"no gap series at T_md = {T:g} K")
        row, ex = _temperature_row(by_T[T], dts[T], T, norm.get(T) or [T] * len(by_T[T]), float(report_temperature_K),
                                   edges, band_cutoff_meV)  # fmt: skip
        rows.append(row)
        extra.append(ex)
    i_ref = next(i for i, T in enumerate(temps) if math.isclose(ref_K, T, rel_tol=1e-9))
    ref, ref_ex = rows[i_ref], extra[i_ref]
    for row, ex in zip(rows, extra):
        ratio = row["lambda_meV"] / ref["lambda_meV"]
        iv = (1.0, 1.0) if row is ref else ratio_interval(row["lambda_meV"], ex["interval"], ex["dof"],
                                                           ref["lambda_meV"], ref_ex["interval"], ref_ex["dof"])  # fmt: skip
        row.update({"lambda_ratio": ratio, "lambda_ratio_lo": iv[0] if iv else None,
                    "lambda_ratio_hi": iv[1] if iv else None, "lambda_ratio_err": 0.5 * (iv[1] - iv[0]) if iv else None,
                    "fwhm_deviation": math.sqrt(ratio) - 1.0,
                    "fwhm_deviation_lo": math.sqrt(max(iv[0], 0.0)) - 1.0 if iv else None,
                    "fwhm_deviation_hi": math.sqrt(iv[1]) - 1.0 if iv else None})  # fmt: skip
        for name in region_names(edges):
            c, c_ref = row[f"centre_{name}_meV"], ref[f"centre_{name}_meV"]
            row[f"shift_{name}_meV"] = None if c is None or c_ref is None else c - c_ref
            e, e_ref = ex["centre_err"][name], ref_ex["centre_err"][name]
            row[f"shift_{name}_meV_err"] = (0.0 if row is ref else math.hypot(e, e_ref)) \
                if e is not None and e_ref is not None else None  # fmt: skip
    return pd.DataFrame(rows)


def headline(table: pd.DataFrame, report_temperature_K: float, reference_K: float) -> dict:
    """Summary columns: the row whose T_md is closest to the report temperature (not the reference)
    against the reference: ``anharmonic_reference_K``, ``anharmonic_md_temperature_K``,
    ``anharmonic_lambda_ratio`` and ``anharmonic_fwhm_deviation`` with ``_lo``/``_hi``."""
    others = table[~np.isclose(table["md_temperature_K"], reference_K)]
    if others.empty:
        return {}
    row = others.iloc[int(np.argmin(np.abs(others["md_temperature_K"].to_numpy() - report_temperature_K)))]
    out = {"anharmonic_reference_K": float(reference_K), "anharmonic_md_temperature_K": float(row["md_temperature_K"])}
    for key in ("lambda_ratio", "fwhm_deviation"):
        for suffix in ("", "_lo", "_hi"):
            value = row.get(key + suffix)
            out[f"anharmonic_{key}{suffix}"] = None if value is None or pd.isna(value) else float(value)
    return out
