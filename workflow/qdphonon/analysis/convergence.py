"""Convergence with trajectory length: running lambda, Gamma and S_R, and the production length (or
number of replicas) needed for a target precision on Gamma.

Gamma ~ sqrt(lambda), so +-5 % on Gamma is +-10 % on lambda. The spread of lambda at each
length comes from the replicas (Student-t half-width of their mean); with one replica from the
Gaussian-process estimate ``Var(sum P_k) = sum P_k^2`` of its periodogram (each bin an
independent exponential variable, the thermal spread of that mode's energy). How that spread
falls with length is measured, not assumed: with a global thermostat the mode energies are set
by the initial velocities and a longer run does not reduce it, only more replicas do.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from qdphonon.analysis.spectrum import analyze_gap, thermal_linewidth_fwhm_meV
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL, replicas_needed, t_factor
from qdphonon.units import BOLTZMANN_meV_per_K

RUNNING_FRACTIONS: tuple[float, ...] = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
"""Fractions of each replica's production window at which the running values are evaluated."""

TARGET_FWHM_RELATIVE = 0.05
"""Target half-width (at CONFIDENCE_LEVEL) of Gamma, relative: +-5 %."""

def gaussian_process_relative_sd(power_meV2: np.ndarray) -> float:
    """Relative standard deviation of ``Var = sum P_k`` for a stationary Gaussian process whose
    periodogram is ``power_meV2``: ``sqrt(sum P_k^2 / 2) / sum P_k`` (``E[P^2] = 2 <P>^2``)."""
    p = np.asarray(power_meV2, dtype=float)
    total = p.sum()
    return float(math.sqrt(0.5 * np.sum(p * p)) / total) if total > 0 else math.nan


def _rel_half_width_lambda(lams: Sequence[float], single_power: np.ndarray | None) -> float | None:
    lam = np.asarray(lams, dtype=float)
    if lam.size >= 2 and lam.mean() > 0:
        return t_factor(lam.size) * float(lam.std(ddof=1)) / math.sqrt(lam.size) / float(lam.mean())
    if single_power is not None:
        r = gaussian_process_relative_sd(single_power)
        return r if np.isfinite(r) else None
    return None


def running_convergence(gaps_eV: Sequence[np.ndarray], dts_fs: Sequence[float], md_temperature_K: float,
                        report_temperature_K: float, region_edges_meV: Sequence[float], band_cutoff_meV: float,
                        fractions: Sequence[float] = RUNNING_FRACTIONS) -> list[dict]:
    """Running values vs production length (each replica cut to its first fraction, replicas averaged).

    Each point: ``length_fs`` (per replica), ``lambda_meV``, ``fwhm_meV`` (Eq. 2), ``fwhm_quantum_meV``,
    ``S_<region>`` (None where unresolved at that length) and ``fwhm_rel_half_width`` (half of
    lambda's relative half-width, from replicas or the Gaussian-process estimate).
    """
    out = []
    for f in fractions:
        parts = [(g[: max(int(round(f * len(g))), 4)], dt) for g, dt in zip(gaps_eV, dts_fs)]
        an = [analyze_gap(g, dt, md_temperature_K, report_temperature_K, region_edges_meV,
                          band_cutoff_meV=band_cutoff_meV) for g, dt in parts]  # fmt: skip
        lams = [a.lambda_meV for a in an]
        lam = float(np.mean(lams))
        power = None
        if len(an) == 1:
            sp = an[0].spectrum
            power = 2.0 * sp.S * sp.energy_meV * (BOLTZMANN_meV_per_K * md_temperature_K)
        rel = _rel_half_width_lambda(lams, power)
        point = {
            "length_fs": float(np.mean([len(g) * dt for g, dt in parts])),
            "lambda_meV": lam,
            "fwhm_meV": thermal_linewidth_fwhm_meV(lam, report_temperature_K),
            "fwhm_quantum_meV": float(np.mean([a.fwhm_quantum_meV for a in an])),
            "fwhm_rel_half_width": 0.5 * rel if rel is not None else None,
        }
        for i, reg in enumerate(an[0].regions):
            ok = all(a.regions[i]["resolved"] for a in an)
            point[f"S_{reg['name']}"] = float(np.mean([a.regions[i]["S"] for a in an])) if ok else None
        out.append(point)
    return out


def length_needed(points: Sequence[dict], lambdas_per_replica: Sequence[float],
                  target: float = TARGET_FWHM_RELATIVE) -> dict:
    """Production length per replica (fs) and number of replicas needed for ``+-target`` on Gamma.

    The running spread is fitted as ``r(L)^2 = r_inf^2 + c / L``: a part that falls with length
    (incomplete periods, finite-lifetime modes) and a floor ``r_inf`` that no run length removes
    (with a global thermostat the mode energies are fixed per replica). A longer run is
    recommended only when the floor is below the target: ``L = c / (target^2 - r_inf^2)``.
    ``replicas_needed`` assumes the present replica spread persists (None for one replica).
    ``length_exponent``: slope of log r vs log L, for information (-0.5 for an ergodic run).
    """
    pts = [p for p in points if p.get("fwhm_rel_half_width") is not None and p["fwhm_rel_half_width"] > 0]
    last = points[-1] if points else {}
    r = last.get("fwhm_rel_half_width")
    out = {"target_fwhm_rel_half_width": target, "confidence_level": CONFIDENCE_LEVEL, "fwhm_rel_half_width": r,
           "length_exponent": None, "spread_floor_rel": None, "production_length_needed_fs": None,
           "replicas_needed": None}  # fmt: skip
    if len(lambdas_per_replica) >= 2:
        out["replicas_needed"] = replicas_needed(lambdas_per_replica, 2.0 * target)
    if r is None or len(pts) < 3:
        out["note"] = "no spread estimate" if r is None else "too few running points"
        return out
    L = np.array([p["length_fs"] for p in pts])
    rr = np.array([p["fwhm_rel_half_width"] for p in pts])
    out["length_exponent"] = float(np.polyfit(np.log(L), np.log(rr), 1)[0])
    c, floor2 = np.polyfit(1.0 / L, rr**2, 1)
    c, floor2 = max(float(c), 0.0), max(float(floor2), 0.0)
    out["spread_floor_rel"] = math.sqrt(floor2)
    if r <= target:
        out["production_length_needed_fs"] = float(last["length_fs"])
        out["note"] = "target met at the present length"
    elif floor2 < target**2 and c > 0:
        out["production_length_needed_fs"] = float(c / (target**2 - floor2))
        out["note"] = ("from the fitted fall of the spread with length (r^2 = floor^2 + c/L); this assumes it keeps "
                       "falling (ergodic dynamics). Under a global thermostat the mode energies are fixed per replica "
                       "and only more replicas help: see replicas_needed")  # fmt: skip
    else:
        out["note"] = ("the spread does not fall below the target with length (mode energies set by the initial "
                       "velocities); add replicas rather than length")  # fmt: skip
    return out
