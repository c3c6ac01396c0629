"""One system end to end: band edges (and velocities) of its replicas -> spectrum, lambda, linewidths,
lineshape, error bars and diagnostics; writes the files of :mod:`qdphonon.analysis.outputs`."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from qdphonon.analysis.convergence import length_needed, running_convergence
from qdphonon.analysis.diagnostics import (check_holes, kinetic_temperature_report, shortest_period_analysed_fs,
                                           stationarity_check)  # fmt: skip
from qdphonon.analysis.edges import flag_regions, lines_across_edges
from qdphonon.analysis.inputs import (BandEdgeTrajectory, check_uniform_time, discard_equilibration, read_band_edges,
                                      read_structure_json)  # fmt: skip
from qdphonon.analysis.lineshape import LINESHAPE_ASSUMPTION, cumulant_lineshape
from qdphonon.analysis.outputs import json_clean, write_analysis
from qdphonon.analysis.records import LinewidthRecord
from qdphonon.analysis.spectral_interval import SPECTRUM_NOTE, spectral_errors
from qdphonon.analysis.spectrum import (DEFAULT_REGION_EDGES_meV, DEFAULT_TEMPERATURES_K, GAUSSIAN_ASSUMPTION,
                                        HARMONIC_ASSUMPTION, MAIN_LOBE_BINS, QUANTUM_ASSUMPTION, WINDOW_ASSUMPTION,
                                        ResolutionWarning,
                                        analyze_gap, in_band, quantum_variance_meV2, reorganization_energy,
                                        reorganization_energy_from_variance, thermal_linewidth_fwhm_meV,
                                        validate_region_edges)  # fmt: skip
from qdphonon.analysis.uncertainty import (BLOCK_NOTE, CONFIDENCE_LEVEL, REPLICA_NOTE, block_errors, mean_region_modes,
                                           mean_spectrum, replica_errors, split_blocks)  # fmt: skip
from qdphonon.analysis.temperature import normalising_temperature
from qdphonon.analysis.vdos import analyze_velocity_file, mean_vdos
from qdphonon.units import FWHM_PER_SIGMA

STATIONARITY_BLOCKS = 8
"""Blocks of the stationarity check (with 8, a stationary mock-like 7 ps run raises a false alarm ~5 % of the time)."""

ABOVE_BAND_WARN_FRACTION = 0.05
"""Warn when more than this fraction of lambda lies above the phonon band (noise, or modes not analysed)."""


def check_run_settings(traj: BandEdgeTrajectory, md_temperature_K: float, rtol: float = 1e-6) -> None:
    """ValueError naming both values when the run's T_md (from the table's sidecar) differs from the one
    the analysis was asked to use; the run's time step must match the table's time grid."""
    run_T = traj.md_temperature_K
    if run_T is not None and abs(float(run_T) - float(md_temperature_K)) > rtol * max(1.0, abs(float(run_T))):
        raise ValueError(f"{traj.source}: the run's MD temperature is {run_T:g} K (sidecar md_temperature_K), "
                         f"but the analysis was given md_temperature_K = {md_temperature_K:g} K")  # fmt: skip
    run_dt = traj.timestep_fs
    if run_dt is not None and traj.time_fs.size > 1:
        ratio = float(np.median(np.diff(traj.time_fs))) / float(run_dt)
        if abs(ratio - round(ratio)) > 1e-3 or round(ratio) < 1:
            raise ValueError(f"{traj.source}: time grid of {ratio * run_dt:g} fs is not a multiple of the run's "
                             f"time step {run_dt:g} fs (sidecar timestep_fs)")  # fmt: skip


def temperature_curve(per, energy, S, temperatures_K, cutoff, resolution_meV, lam) -> list[dict]:
    """Gamma(T): Eq. 2, the band-limited quantum Gaussian and the cumulant line's FWHM at each T
    (``S``: the replica-mean windowed spectrum on ``energy``, the lineshape's, docs/physics.md §4.3)."""
    out = []
    for T in temperatures_K:
        line = cumulant_lineshape(energy, S, float(T), cutoff, resolution_meV=resolution_meV)
        var_q = float(np.mean([quantum_variance_meV2(a.spectrum.energy_meV, a.spectrum.S, T, cutoff) for a in per]))
        out.append({"report_temperature_K": float(T), "fwhm_classical_meV": thermal_linewidth_fwhm_meV(lam, T),
                    "fwhm_quantum_meV": FWHM_PER_SIGMA * math.sqrt(var_q), "fwhm_lineshape_meV": line.fwhm_meV,
                    "gaussian_valid": line.gaussian_valid, "zpl_weight": line.zpl_weight})  # fmt: skip
    return out


def _level(trajs: Sequence[BandEdgeTrajectory], structure: dict, synthetic: bool) -> str | None:
    if synthetic:
        return "mock"
    levels = sorted({t.level for t in trajs if t.level})
    return ",".join(levels) if levels else structure.get("level")


def analyze_system(
    band_edge_csvs: Sequence[str | os.PathLike],
    md_temperature_K: float,
    report_temperature_K: float = 300.0,
    region_edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
    discard_fs: float = 0.0,
    outdir: str | os.PathLike | None = None,
    velocities_npz: Sequence[str | os.PathLike] | None = None,
    structure_json: str | os.PathLike | None = None,
    n_blocks: int = 4,
    temperatures_K: Sequence[float] = DEFAULT_TEMPERATURES_K,
    system: str | None = None,
    band_cutoff_meV: float | None = None,
    temperature_K: float | None = None,
) -> dict:
    """Analyse all replicas of one system; write ``spectral_density.csv``, ``linewidth.json``,
    ``lineshape.csv`` (and ``vdos.csv``) into ``outdir`` (None: write nothing). Returns linewidth.json.

    Each replica is normalised by the temperature of its internal motion when velocities with
    positions are given, else by ``md_temperature_K`` (:mod:`qdphonon.analysis.temperature`).
    Central values: the mean over replicas (``fwhm_meV`` is Eq. 2 of ``lambda_meV``; spectra are
    replica means). Intervals at ``confidence_level`` (``*_interval``; ``*_err`` half their width):
    Student-t over replicas; for one replica, chi^2 from its spectrum's effective degrees of freedom
    (:mod:`qdphonon.analysis.spectral_interval`; block estimates stay under ``blocks``).
    ``band_cutoff_meV`` (default: the last region edge) ends the phonon band of the quantum width
    and the lineshape.
    ``temperature_K`` is an alias of ``report_temperature_K`` kept for older callers.
    """
    T = float(report_temperature_K if temperature_K is None else temperature_K)
    if not band_edge_csvs:
        raise ValueError("no band-edge files given")
    if T < 0:
        raise ValueError(f"report_temperature_K must be >= 0, got {T}")
    edges = validate_region_edges(region_edges_meV)
    cutoff = float(edges[-1] if band_cutoff_meV is None else band_cutoff_meV)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result, arrays = _analyze(band_edge_csvs, float(md_temperature_K), T, edges, cutoff, discard_fs,
                                      velocities_npz, structure_json, n_blocks, temperatures_K, system, outdir)  # fmt: skip
    finally:  # the warnings reach the caller (and linewidth.json) even when the analysis refuses its input
        messages = []
        for w in caught:
            messages.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    result["warnings"] = sorted(set(messages), key=messages.index)
    result = LinewidthRecord(**json_clean(result)).to_json()
    if outdir is not None:
        write_analysis(outdir, result, *arrays)
    return result


def _edge_warning(system: str, crossings: list[dict], flagged: list[str]) -> None:
    for c in crossings:
        warnings.warn(f"{system}: the spectral line at {c['line_meV']:.2f} meV (lambda {c['lambda_line_meV']:.3g} meV in its "
                      f"main lobe) straddles the region edge {c['edge_meV']:g} meV; {c['lambda_across_meV']:.3g} meV of "
                      f"lambda crosses it" + (f" (region(s) {', '.join(flagged)} marked unresolved)" if flagged else ""),
                      ResolutionWarning, stacklevel=4)  # fmt: skip


def _analyze(csvs, T_md, T, edges, cutoff, discard_fs, velocities_npz, structure_json, n_blocks, temperatures_K,
             system, outdir) -> tuple[dict, tuple]:  # fmt: skip
    trajs = [discard_equilibration(read_band_edges(p), discard_fs) for p in csvs]
    holes = []
    for p, tr in zip(csvs, trajs):
        check_run_settings(tr, T_md)
        holes.append(check_holes(p, shortest_period_analysed_fs([cutoff]), start_fs=float(tr.time_fs[0])))
    dts = [check_uniform_time(tr.time_fs, tr.source) for tr in trajs]
    structure = read_structure_json(structure_json)
    if system is None:
        system = structure.get("system") or (Path(outdir).name if outdir is not None else Path(csvs[0]).parent.name)

    synthetic = any(t.synthetic for t in trajs)
    vel = [analyze_velocity_file(p, discard_fs) for p in velocities_npz or []]
    temp = normalising_temperature(len(trajs), T_md, [float(np.mean(v.kinetic_temperature_K)) for v in vel],
                                   bool(vel) and all(v.dos.rigid_motion_removed for v in vel), system)  # fmt: skip
    per = [analyze_gap(tr.gap_eV, dt, T_r, T, edges, band_cutoff_meV=cutoff)
           for tr, dt, T_r in zip(trajs, dts, temp.per_replica_K)]  # fmt: skip
    lobe = MAIN_LOBE_BINS[per[0].spectrum.window]
    for a in per:  # a line straddling an edge leaves the regions it crosses unresolved
        flag_regions(a.regions, lines_across_edges(a.spectrum.energy_meV, a.spectrum.S_window, edges, lobe)[1])

    n_rep = len(per)
    energy, S_mean, S_window_mean = mean_spectrum([a.spectrum for a in per])
    variance = float(np.mean([a.spectrum.variance_meV2 for a in per]))
    lam = float(np.mean([a.lambda_meV for a in per]))
    var_q = float(np.mean([a.variance_quantum_meV2 for a in per]))
    coarsest = max(a.spectrum.resolution_meV for a in per)
    regions = mean_region_modes(per)
    crossings, spill = lines_across_edges(energy, S_window_mean, edges, lobe)
    flag_regions(regions, spill)
    _edge_warning(system, crossings, [r["name"] for r in regions if not r["resolved"] and r["lambda_across_edges_meV"]])
    band = in_band(energy, cutoff)
    lam_band = reorganization_energy(energy[band], S_mean[band])

    blocks_info, spectral_info = None, None
    if n_rep >= 2:
        error_method, errors = "replicas", replica_errors(per, T)
        for key, centre in (("lambda_meV", lam), ("fwhm_meV", thermal_linewidth_fwhm_meV(lam, T)),
                            ("fwhm_quantum_meV", FWHM_PER_SIGMA * math.sqrt(var_q))):
            hw = errors[f"{key}_err"]
            errors[f"{key}_interval"] = [centre - hw, centre + hw] if hw is not None else None
        for reg, reg_err in zip(regions, errors["regions"]):
            hw = reg_err["lambda_meV_err"]
            reg_err["lambda_meV_interval"] = [reg["lambda_meV"] - hw, reg["lambda_meV"] + hw] if hw is not None else None
    else:
        block_err, blocks_info = block_errors(trajs[0].gap_eV, dts[0], temp.per_replica_K[0], T, per[0], n_blocks,
                                              trajs[0].source)  # fmt: skip
        if blocks_info.get("n_blocks"):
            blocks_info.update({"errors": block_err, "note": BLOCK_NOTE})
        error_method = "spectrum"
        errors, spectral_info = spectral_errors(per[0], T, CONFIDENCE_LEVEL)
    for reg, reg_err in zip(regions, errors.pop("regions")):
        reg.update(reg_err if reg["resolved"] else {k: None for k in reg_err})

    unresolved = [r["name"] for r in regions if r["hi_meV"] - r["lo_meV"] < lobe * coarsest * (1 - 1e-12)
                  or not any(r["lo_meV"] <= x < r["hi_meV"] for x in energy)]
    if unresolved:
        warnings.warn(f"{system}: trajectory too short (bin {coarsest:.2f} meV, Hann main lobe {4 * coarsest:.2f} meV) "
                      f"to resolve region(s) {', '.join(unresolved)}; lambda and Gamma come from the variance, "
                      "region values are marked unresolved and get no error bar", ResolutionWarning, stacklevel=3)  # fmt: skip
    above_fraction = (lam - lam_band) / lam if lam > 0 else 0.0
    if above_fraction > ABOVE_BAND_WARN_FRACTION:
        warnings.warn(f"{system}: {100 * above_fraction:.1f} % of lambda lies above the phonon band "
                      f"({cutoff:g} meV); it is kept classically (not coth-amplified) in the quantum width and left out of the lineshape", stacklevel=3)  # fmt: skip
    stationarity = []
    for tr in trajs:
        n_stat = STATIONARITY_BLOCKS if tr.gap_eV.size >= 16 * STATIONARITY_BLOCKS else max(n_blocks, 3)
        var_blocks = [float(np.var(b * 1000.0)) for b in split_blocks(tr.gap_eV, n_stat)]
        stationarity.append({"source": tr.source, **stationarity_check(var_blocks, tr.source)})

    vdos, kinetic = None, {}
    if vel:
        vdos = mean_vdos([v.dos for v in vel])
        synthetic = synthetic or any(v.synthetic for v in vel)
        kinetic = kinetic_temperature_report([v.kinetic_temperature_K for v in vel], T_md, [v.source for v in vel])
        kinetic.update({"vdos_n_dof": vdos.n_dof, "rigid_motion_removed": vdos.rigid_motion_removed,
                        "rigid_kinetic_fraction": vdos.rigid_kinetic_fraction})  # fmt: skip

    line = cumulant_lineshape(energy, S_window_mean, T, cutoff, resolution_meV=coarsest)
    running = running_convergence([tr.gap_eV for tr in trajs], dts, temp.value_K, T, edges, cutoff)
    result = {
        "system": system,
        "route": "md",
        "lambda_meV": lam,
        "lambda_meV_err": errors["lambda_meV_err"],
        "lambda_meV_interval": errors["lambda_meV_interval"],
        "fwhm_meV": thermal_linewidth_fwhm_meV(lam, T),
        "fwhm_meV_err": errors["fwhm_meV_err"],
        "fwhm_meV_interval": errors["fwhm_meV_interval"],
        "fwhm_quantum_meV": FWHM_PER_SIGMA * math.sqrt(var_q),
        "fwhm_quantum_meV_err": errors["fwhm_quantum_meV_err"],
        "fwhm_quantum_meV_interval": errors["fwhm_quantum_meV_interval"],
        "fwhm_lineshape_meV": line.fwhm_meV,
        "report_temperature_K": T,
        "md_temperature_K": T_md,
        **temp.record(),
        "lambda_meV_with_md_temperature": reorganization_energy_from_variance(variance, T_md),
        "confidence_level": CONFIDENCE_LEVEL,
        "error_method": error_method,
        "error_note": {"replicas": REPLICA_NOTE, "spectrum": SPECTRUM_NOTE}[error_method],
        "spectral_interval": spectral_info,
        "gap_mean_eV": float(np.mean([a.gap_mean_eV for a in per])),
        "gap_std_meV": math.sqrt(variance),
        "n_samples": int(sum(a.spectrum.n_samples for a in per)),
        "n_samples_per_replica": [a.spectrum.n_samples for a in per],
        "duration_fs": float(sum(a.spectrum.duration_fs for a in per)),
        "duration_fs_per_replica": [a.spectrum.duration_fs for a in per],
        "dt_fs_per_replica": [a.spectrum.dt_fs for a in per],
        "discard_fs": float(discard_fs),
        "frequency_resolution_meV": coarsest,
        "band_cutoff_meV": cutoff,
        "lambda_band_meV": lam_band,
        "lambda_above_band_meV": lam - lam_band,
        "lambda_above_band_fraction": above_fraction,
        "lambda_above_regions_meV": reorganization_energy(energy[energy >= edges[-1]], S_mean[energy >= edges[-1]]),
        "n_replicas": n_rep,
        "n_blocks": blocks_info.get("n_blocks") if blocks_info else None,
        "blocks": blocks_info,
        "regions": regions,
        "edge_lines": crossings,
        "fwhm_vs_temperature": temperature_curve(per, energy, S_window_mean, temperatures_K, cutoff, coarsest, lam),
        "lineshape": line.summary(),
        "stationarity": stationarity,
        **kinetic,
        "holes": [{"source": tr.source, **h} for tr, h in zip(trajs, holes)],
        "n_scf_unconverged_rows": int(sum(t.n_scf_unconverged for t in trajs)),
        "n_interpolated_steps": int(sum(t.n_interpolated for t in trajs)),
        "convergence": {"running": running, **length_needed(running, [a.lambda_meV for a in per])},
        "window": per[0].spectrum.window,
        "synthetic": bool(synthetic),
        "level": _level(trajs, structure, synthetic),
        "assumptions": [HARMONIC_ASSUMPTION, GAUSSIAN_ASSUMPTION, QUANTUM_ASSUMPTION, WINDOW_ASSUMPTION,
                        LINESHAPE_ASSUMPTION],  # fmt: skip
        "inputs": {"band_edges": [t.source for t in trajs], "velocities": [str(p) for p in velocities_npz or []]},
    }
    for key in ("formula", "n_atoms", "size_octahedra", "edge_nm", "shell_layers", "shell_metal", "counts_by_region"):
        if key in structure:
            result[key] = structure[key]
    return result, (energy, S_mean, S_window_mean, vdos, line)
