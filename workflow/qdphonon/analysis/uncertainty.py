"""Error bars: standard errors across replicas, and block estimates of a single trajectory."""

from __future__ import annotations

import math
import warnings
from typing import Sequence
import numpy as np
from qdphonon.analysis.spectrum import DEFAULT_REGION_EDGES_meV, HuangRhysSpectrum, ResolutionWarning, TrajectoryAnalysis, analyze_gap, frequency_resolution_meV, validate_region_edges


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
