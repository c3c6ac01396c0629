"""Error bars that mean what they say: Student-t intervals over replicas, guarded block estimates.

Replicas (different initial velocities) are independent samples of the ensemble: the mean of
``n`` replicas +- ``t_{n-1} * SE`` is a Student-t interval at :data:`CONFIDENCE_LEVEL`. With a
global thermostat at 10 K every mode's energy is set by the initial velocities and hardly
changes during a run, so only replicas see the ensemble spread; recommend >= 5 for real runs.

Blocks of one trajectory estimate only the noise of that trajectory's time average, and only
when each block spans at least :data:`BLOCK_PERIODS` periods of the slowest significant mode
of the quantity (shorter blocks are correlated and each removes its own mean, which biases
and shrinks their spread). Otherwise the estimate is None, never 0.0.

Every ``*_err`` is the half-width of the stated interval, in the quantity's unit.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np

from qdphonon.analysis.spectrum import (FWHM_PER_SIGMA, HuangRhysSpectrum, ResolutionWarning, TrajectoryAnalysis,
                                        analyze_gap, period_fs, slow_mode_energy_meV, thermal_linewidth_fwhm_meV)  # fmt: skip

CONFIDENCE_LEVEL = 0.6827
"""Two-sided confidence level of every reported interval (the one-sigma level of a Gaussian)."""

BLOCK_PERIODS = 2.0
"""A block must span this many periods of the slowest significant mode of a quantity."""

PLATEAU_GROWTH = 1.2
"""Blocking plateau: doubling the block length may raise the block SE by at most this factor."""

BLOCK_NOTE = ("blocks: the noise of this trajectory's time average, not the ensemble spread (with a global "
              "thermostat the mode energies are set by the initial velocities); use replicas for that")  # fmt: skip
REPLICA_NOTE = "replicas: mean +- Student-t interval over independent replicas (different initial velocities)"


def t_factor(n: int, confidence: float = CONFIDENCE_LEVEL) -> float:
    """Student-t quantile ``t_{(1+c)/2, n-1}`` multiplying the standard error of a mean of ``n`` values."""
    from scipy.special import stdtrit  # light import (scipy.stats takes seconds)

    return float(stdtrit(n - 1, 0.5 + confidence / 2.0)) if n >= 2 else math.nan


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean, ``std(ddof=1)/sqrt(n)``; NaN for fewer than two values."""
    v = _finite(values)
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size >= 2 else float("nan")


def t_half_width(values: Sequence[float | None], confidence: float = CONFIDENCE_LEVEL) -> float | None:
    """Half-width ``t_{n-1} * SE`` of the Student-t interval of the mean; None for fewer than two values."""
    v = _finite(values)
    if v.size < 2 or v.size < len(values):
        return None
    return t_factor(v.size, confidence) * float(v.std(ddof=1)) / math.sqrt(v.size)


def sqrt_propagated(mean: float, half_width: float | None, scale: float) -> float | None:
    """Half-width of ``scale * sqrt(x)`` when ``x = mean +- half_width`` (interval mapped, then halved)."""
    if half_width is None or mean is None or not np.isfinite(half_width):
        return None
    hi = scale * math.sqrt(max(mean + half_width, 0.0))
    lo = scale * math.sqrt(max(mean - half_width, 0.0))
    return 0.5 * (hi - lo)


def mean_spectrum(spectra: Sequence[HuangRhysSpectrum]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy, mean S, mean S_window) over replicas on the coarsest replica grid.

    Identical grids average bin by bin; otherwise each replica's S_k is added to the bin of
    the coarsest grid its energy falls in, which keeps sum S and, to within a bin, lambda.
    """
    ref = max(spectra, key=lambda s: s.resolution_meV)
    e = ref.energy_meV
    half = ref.resolution_meV / 2.0
    edges = np.concatenate([[e[0] - half], e + half])
    rows, rows_w = [], []
    for sp in spectra:
        same = sp.energy_meV.shape == e.shape and np.allclose(sp.energy_meV, e)
        for arr, out in ((sp.S, rows), (sp.S_window, rows_w)):
            out.append(arr if same else np.histogram(sp.energy_meV, bins=edges, weights=arr)[0])
    return e, np.mean(rows, axis=0), np.mean(rows_w, axis=0)


def mean_region_modes(analyses: Sequence[TrajectoryAnalysis]) -> list[dict]:
    """Region modes averaged over replicas: mean ``S_R`` and ``lambda_R``, ``hw_R`` = their ratio.

    A region counts as resolved only if it is resolved in every replica; it is None where a
    replica had no bin in it.
    """
    out = []
    for i, ref in enumerate(analyses[0].regions):
        vals = [(a.regions[i]["S"], a.regions[i]["lambda_meV"]) for a in analyses]
        measured = all(s is not None for s, _ in vals)
        S_R = float(np.mean([s for s, _ in vals])) if measured else None
        lam_R = float(np.mean([x for _, x in vals])) if measured else None
        out.append({
            **{k: ref[k] for k in ("name", "lo_meV", "hi_meV")},
            "S": S_R, "hw_meV": lam_R / S_R if S_R else None, "lambda_meV": lam_R,
            "resolved": all(a.regions[i]["resolved"] for a in analyses),
        })  # fmt: skip
    return out


def interval_errors(samples: Sequence[TrajectoryAnalysis], report_temperature_K: float,
                    usable: Callable[[str], bool] = lambda name: True,
                    confidence: float = CONFIDENCE_LEVEL) -> dict:
    """Student-t half-widths over ``samples`` (replicas or blocks) of lambda, Gamma (Eq. 2), the
    band-limited quantum Gamma and every region's S_R and lambda_R.

    Gamma's interval is lambda's mapped through Eq. 2 (``Gamma ~ sqrt(lambda)``), so it covers
    the true Gamma exactly when lambda's covers the true lambda; likewise Gamma_q through
    ``sigma_q^2``. ``usable(name)`` (names ``lambda``, ``quantum``, ``region:<i>``) may veto a
    quantity (blocks too short): it then gets None. Unresolved regions get None.
    """
    lam = [a.lambda_meV for a in samples]
    var_q = [a.variance_quantum_meV2 for a in samples]
    lam_hw = t_half_width(lam, confidence) if usable("lambda") else None
    q_hw = t_half_width(var_q, confidence) if usable("quantum") else None
    lam_scale = thermal_linewidth_fwhm_meV(1.0, report_temperature_K)
    out = {
        "lambda_meV_err": lam_hw,
        "fwhm_meV_err": sqrt_propagated(float(np.mean(lam)), lam_hw, lam_scale),
        "fwhm_quantum_meV_err": sqrt_propagated(float(np.mean(var_q)), q_hw, FWHM_PER_SIGMA),
        "regions": [],
    }
    for i in range(len(samples[0].regions)):
        ok = usable(f"region:{i}") and all(a.regions[i]["resolved"] for a in samples)
        out["regions"].append({
            "S_err": t_half_width([a.regions[i]["S"] for a in samples], confidence) if ok else None,
            "lambda_meV_err": t_half_width([a.regions[i]["lambda_meV"] for a in samples], confidence) if ok else None,
        })  # fmt: skip
    return out


def replica_errors(analyses: Sequence[TrajectoryAnalysis], report_temperature_K: float,
                   confidence: float = CONFIDENCE_LEVEL) -> dict:
    """:func:`interval_errors` over independent replicas (None everywhere for one replica)."""
    return interval_errors(analyses, report_temperature_K, confidence=confidence)


def required_block_lengths_fs(full: TrajectoryAnalysis) -> dict[str, float]:
    """Shortest block (fs) per quantity: :data:`BLOCK_PERIODS` periods of its slowest significant mode.

    lambda and Gamma: the energy below which 10 % of lambda lies (whole spectrum); the quantum
    Gamma: the same within the phonon band (both from the Eq. 1 spectrum); a region: below which
    10 % of its windowed S lies. inf when the quantity holds no weight.
    """
    sp = full.spectrum
    lam_w = sp.S * sp.energy_meV
    out = {
        "lambda": BLOCK_PERIODS * period_fs(slow_mode_energy_meV(sp.energy_meV, lam_w)),
        "quantum": BLOCK_PERIODS * period_fs(slow_mode_energy_meV(sp.energy_meV, lam_w, hi_meV=full.band_cutoff_meV * (1 + 1e-12))),
    }
    for i, reg in enumerate(full.regions):
        e_slow = slow_mode_energy_meV(sp.energy_meV, sp.S_window, reg["lo_meV"], reg["hi_meV"])
        out[f"region:{i}"] = BLOCK_PERIODS * period_fs(e_slow)
    return out


def split_blocks(gap_eV: np.ndarray, n_blocks: int) -> list[np.ndarray]:
    """``n_blocks`` contiguous equal blocks (the remainder at the end dropped)."""
    n_per = len(gap_eV) // n_blocks
    return [gap_eV[i * n_per:(i + 1) * n_per] for i in range(n_blocks)] if n_blocks >= 2 and n_per >= 2 else []


def block_errors(
    gap_eV: np.ndarray, dt_fs: float, md_temperature_K: float, report_temperature_K: float,
    full: TrajectoryAnalysis, n_blocks: int = 4, source: str = "trajectory",
    confidence: float = CONFIDENCE_LEVEL,
) -> tuple[dict, dict]:
    """(errors, info) from ``n_blocks`` blocks of one trajectory whose whole analysis is ``full``.

    A quantity gets an error only when the block length is at least its
    :func:`required_block_lengths_fs` (else None and a ResolutionWarning naming it); regions
    must also be resolved within a block. ``info``: block length, required lengths, which
    quantities were refused, the blocking-plateau check of lambda (SE with blocks of half the
    length must not be smaller by more than :data:`PLATEAU_GROWTH`; None when the half-length
    blocks are themselves too short) and the per-block gap variances.
    """
    gap_eV = np.asarray(gap_eV, dtype=float)
    blocks = split_blocks(gap_eV, n_blocks)
    edges = [r["lo_meV"] for r in full.regions] + [full.regions[-1]["hi_meV"]]
    if not blocks:
        return interval_errors([full], report_temperature_K), {"n_blocks": None}

    def analyse(parts):
        return [analyze_gap(b, dt_fs, md_temperature_K, report_temperature_K, edges, full.spectrum.window,
                            full.band_cutoff_meV) for b in parts]  # fmt: skip

    samples = analyse(blocks)
    block_fs = len(blocks[0]) * dt_fs
    need = required_block_lengths_fs(full)
    refused = sorted(k for k, v in need.items() if v > block_fs)
    errors = interval_errors(samples, report_temperature_K, usable=lambda k: k not in refused, confidence=confidence)
    names = {"lambda": "lambda and Gamma", "quantum": "Gamma_quantum"}
    names.update({f"region:{i}": f"region {r['name']}" for i, r in enumerate(full.regions)})
    if refused:
        slowest = max(need[k] for k in refused)
        warnings.warn(
            f"{source}: blocks of {block_fs:g} fs are shorter than {BLOCK_PERIODS:g} periods of the slowest mode of "
            f"{', '.join(names[k] for k in refused)} (up to {slowest:.0f} fs needed); their block errors are null",
            ResolutionWarning, stacklevel=2,
        )  # fmt: skip
    plateau, se_ratio = None, None
    half = split_blocks(gap_eV, 2 * n_blocks)
    if "lambda" not in refused and half and len(half[0]) * dt_fs >= need["lambda"]:
        se_n = standard_error([a.lambda_meV for a in samples])
        se_2n = standard_error([a.lambda_meV for a in analyse(half)])
        se_ratio = se_n / se_2n if se_2n > 0 else None
        plateau = bool(se_ratio is None or se_ratio <= PLATEAU_GROWTH)
        if not plateau:
            warnings.warn(f"{source}: no blocking plateau for lambda (block SE grows by {se_ratio:.2f}x when "
                          f"blocks double to {block_fs:g} fs); its block error is likely too small", stacklevel=2)  # fmt: skip
    info = {
        "n_blocks": len(blocks),
        "block_length_fs": block_fs,
        "required_block_length_fs": {names[k]: v for k, v in need.items()},
        "refused": [names[k] for k in refused],
        "plateau_lambda": plateau,
        "plateau_se_ratio": se_ratio,
        "block_variances_meV2": [a.spectrum.variance_meV2 for a in samples],
    }
    return errors, info


def replicas_needed(values: Sequence[float], target_rel_half_width: float,
                    confidence: float = CONFIDENCE_LEVEL, n_max: int = 1000) -> int | None:
    """Smallest number of replicas whose Student-t half-width of the mean would be within
    ``target_rel_half_width`` of the mean, assuming the present spread (sample SD) persists."""
    v = _finite(values)
    if v.size < 2 or v.mean() == 0:
        return None
    rel_sd = float(v.std(ddof=1) / abs(v.mean()))
    for n in range(2, n_max + 1):
        if t_factor(n, confidence) * rel_sd / math.sqrt(n) <= target_rel_half_width:
            return n
    return None

