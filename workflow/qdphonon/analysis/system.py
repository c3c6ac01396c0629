"""One system end to end: every replica's band edges (and velocities) to spectral_density.csv,
linewidth.json and vdos.csv.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Sequence
import numpy as np
from qdphonon.units import FWHM_PER_SIGMA
from qdphonon.metadata import write_table
from qdphonon.analysis.inputs import BandEdgeTrajectory, check_uniform_time, discard_equilibration, read_band_edges, read_structure_json
from qdphonon.analysis.spectrum import DEFAULT_REGION_EDGES_meV, DEFAULT_TEMPERATURES_K, GAUSSIAN_ASSUMPTION, HARMONIC_ASSUMPTION, QUANTUM_ASSUMPTION, ResolutionWarning, WINDOW_ASSUMPTION, analyze_gap, quantum_variance_meV2, reorganization_energy, reorganization_energy_from_variance, thermal_linewidth_fwhm_meV, validate_region_edges
from qdphonon.analysis.uncertainty import _mean_spectrum, block_analyses, mean_region_modes, standard_errors
from qdphonon.analysis.vdos import VibrationalDOS, _vdos_of_file, mean_vdos


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


def check_run_settings(traj: BandEdgeTrajectory, md_temperature_K: float, rtol: float = 1e-6) -> None:
    """ValueError naming both values when the run's T_md (from the table's sidecar) differs from the one
    the analysis was asked to use; the run's time step must match the table's time grid."""
    run_T = traj.md_temperature_K
    if run_T is not None and abs(float(run_T) - float(md_temperature_K)) > rtol * max(1.0, abs(float(run_T))):
        raise ValueError(f"{traj.source}: the run's MD temperature is {run_T:g} K (sidecar md_temperature_K), "
                         f"but the analysis was given md_temperature_K = {md_temperature_K:g} K")  # fmt: skip
    run_dt = traj.timestep_fs
    if run_dt is not None and traj.time_fs.size > 1:
        grid_dt = float(np.median(np.diff(traj.time_fs)))
        ratio = grid_dt / float(run_dt)
        if abs(ratio - round(ratio)) > 1e-3 or round(ratio) < 1:
            raise ValueError(f"{traj.source}: time grid of {grid_dt:g} fs is not a multiple of the run's "
                             f"time step {run_dt:g} fs (sidecar timestep_fs)")  # fmt: skip


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
    for tr in trajs:
        check_run_settings(tr, md_temperature_K)
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
    """Write spectral_density.csv, linewidth.json and (if given) vdos.csv into ``outdir`` (each table with
    its JSON sidecar); return the paths."""
    import pandas as pd

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {k: result.get(k) for k in ("system", "synthetic", "level", "md_temperature_K", "temperature_K",
                                       "window", "frequency_resolution_meV", "n_replicas")}  # fmt: skip
    written = []
    sd = pd.DataFrame({"energy_meV": energy_meV, "S": S, "S_hw_meV": S * energy_meV})
    written += write_table(sd, out / "spectral_density.csv",
                           {**meta, "units": {"energy_meV": "meV", "S": "1", "S_hw_meV": "meV"}})  # fmt: skip
    path = out / "linewidth.json"
    path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written.append(path)
    if vdos is not None:
        cols = {"energy_meV": vdos.energy_meV, "total": vdos.total, **vdos.projections}
        written += write_table(pd.DataFrame(cols), out / "vdos.csv",
                               {**meta, "units": {"energy_meV": "meV", "total": "1/meV"}})  # fmt: skip
    return written
