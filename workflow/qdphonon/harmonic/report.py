"""The harmonic route's results in the MD route's files: ``linewidth.json`` (``route: harmonic``),
``spectral_density.csv`` (binned on the MD route's grid), ``spectral_density_modes.csv`` (per mode)
and ``lineshape.csv``; region modes by :func:`qdphonon.analysis.spectrum.region_modes` and the
lineshape by :func:`qdphonon.analysis.lineshape.cumulant_lineshape`, as in the MD route."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from qdphonon import settings
from qdphonon.analysis.lineshape import LINESHAPE_ASSUMPTION, cumulant_lineshape
import json

from qdphonon.analysis.lineshape import write_lineshape
from qdphonon.analysis.outputs import json_clean, spectral_density_frame
from qdphonon.analysis.records import LinewidthRecord
from qdphonon.analysis.spectrum import (DEFAULT_REGION_EDGES_meV, DEFAULT_TEMPERATURES_K, frequency_resolution_meV,
                                        region_modes, validate_region_edges)  # fmt: skip
from qdphonon.harmonic.assemble import HarmonicData
from qdphonon.harmonic.coupling import (ModeCoupling, binned_spectrum, fwhm_classical_meV, fwhm_quantum_meV,
                                        mode_coupling)  # fmt: skip
from qdphonon.harmonic.modes import NormalModes, normal_modes, rigid_fraction
from qdphonon.metadata import write_table
from qdphonon.units import BOLTZMANN_meV_per_K

DEFAULT_GRID_meV = frequency_resolution_meV(
    settings.default("md.steps") * settings.default("md.timestep_fs") - settings.default("md.equilibration_fs"))
"""The default MD run's bin spacing (7 ps of production: 0.59 meV): the grid ``spectral_density.csv`` is binned on."""

HARMONIC_ROUTE_ASSUMPTIONS = [
    "harmonic: normal modes of the Hessian at the relaxed geometry (central differences of forces); "
    "anharmonicity and mode mixing at finite T are neglected",
    "linear coupling: the gap is expanded to first order in the displacements (central differences of the "
    "band edges); second-order (quadratic) coupling, which the MD route includes, is neglected",
    "degenerate band edges: the centroid of the degenerate manifold at the reference geometry is differentiated",
    "quantum widths use exact Bose occupations of every mode; no band cutoff (every mode is a real phonon)",
    LINESHAPE_ASSUMPTION,
]


def main_mode(c: ModeCoupling) -> dict:
    """The mode with the largest lambda_k: its energy, S and lambda (meV)."""
    if c.energy_meV.size == 0:
        return {"energy_meV": None, "S": None, "lambda_meV": None}
    k = int(np.argmax(c.lambda_meV))
    return {"energy_meV": float(c.energy_meV[k]), "S": float(c.S[k]), "lambda_meV": float(c.lambda_meV[k])}


def harmonic_result(data: HarmonicData, positions_A: np.ndarray, masses_amu: np.ndarray, *, system: str,
                    level: str | None, report_temperature_K: float = 300.0,
                    region_edges_meV: Sequence[float] = DEFAULT_REGION_EDGES_meV,
                    temperatures_K: Sequence[float] = DEFAULT_TEMPERATURES_K, grid_meV: float = DEFAULT_GRID_meV,
                    synthetic: bool = False, extra: dict | None = None) -> tuple[dict, tuple]:
    """linewidth.json's dict for the harmonic route, and the arrays its files need."""
    edges = validate_region_edges(region_edges_meV)
    modes: NormalModes = normal_modes(data.hessian_eV_A2, positions_A, masses_amu)
    c = mode_coupling(modes, data.gap_gradient_eV_A)
    T = float(report_temperature_K)
    lam = c.total_lambda_meV
    grid, S_bin = binned_spectrum(c, grid_meV)
    line = cumulant_lineshape(c.energy_meV, c.S, T, None, resolution_meV=grid_meV)
    curve = []
    for t in temperatures_K:
        ln = cumulant_lineshape(c.energy_meV, c.S, float(t), None, resolution_meV=grid_meV)
        curve.append({"report_temperature_K": float(t), "fwhm_classical_meV": fwhm_classical_meV(c, t),
                      "fwhm_quantum_meV": fwhm_quantum_meV(c, t), "fwhm_lineshape_meV": ln.fwhm_meV,
                      "gaussian_valid": ln.gaussian_valid, "zpl_weight": ln.zpl_weight})  # fmt: skip
    regions = region_modes(c.energy_meV, c.S, edges)
    warnings = []
    if c.n_imaginary:
        warnings.append(f"{system}: {c.n_imaginary} imaginary mode(s) ({', '.join(f'{e:.2f}' for e in c.imaginary_energy_meV)} "
                        "meV, negative = imaginary): not a minimum; they are left out of lambda (relax more tightly)")
    if line.huang_rhys_thermal > 1.0 and line.fwhm_meV < 0.5 * line.gaussian_fwhm_meV:
        warnings.append(f"{system}: the {T:g} K line is a comb of resolved phonon replicas (discrete modes, homogeneous "
                        f"width {line.homogeneous_fwhm_meV:.2g} meV): fwhm_lineshape_meV ({line.fwhm_meV:.3g} meV) is "
                        f"one replica's width; the envelope's is fwhm_quantum_meV ({fwhm_quantum_meV(c, T):.3g} meV)")
    result = {
        "system": system, "route": "harmonic", "level": "mock" if synthetic else level, "synthetic": bool(synthetic),
        "lambda_meV": lam, "lambda_meV_err": None,
        "fwhm_meV": fwhm_classical_meV(c, T), "fwhm_meV_err": None,
        "fwhm_quantum_meV": fwhm_quantum_meV(c, T), "fwhm_quantum_meV_err": None,
        "fwhm_lineshape_meV": line.fwhm_meV, "report_temperature_K": T, "md_temperature_K": None,
        "error_method": "none", "error_note": "no sampling error; accuracy set by the forces, the step and the relaxation",
        "gap_mean_eV": data.gap_eV, "gap_std_meV": math.sqrt(2.0 * lam * BOLTZMANN_meV_per_K * 10.0),
        "gap_std_note": "classical harmonic gap std at 10 K, sqrt(2 lambda k_B 10 K), for comparison with the MD route",
        "frequency_resolution_meV": grid_meV, "band_cutoff_meV": None, "window": "none",
        "lambda_band_meV": lam, "lambda_above_band_meV": 0.0,
        "lambda_above_regions_meV": float(np.sum(c.lambda_meV[c.energy_meV >= edges[-1]])),
        "regions": regions, "main_mode": main_mode(c), "fwhm_vs_temperature": curve, "lineshape": line.summary(),
        "n_modes": int(c.energy_meV.size), "n_rigid_modes_removed": modes.n_rigid, "n_imaginary_modes": c.n_imaginary,
        "imaginary_mode_energies_meV": c.imaginary_energy_meV.tolist(),
        "lowest_mode_meV": float(c.energy_meV.min()) if c.energy_meV.size else None,
        "highest_mode_meV": float(c.energy_meV.max()) if c.energy_meV.size else None,
        "degeneracy": {"n_vbm": data.degeneracy.n_vbm, "n_cbm": data.degeneracy.n_cbm, "tol_meV": data.degeneracy.tol_meV,
                       "method": "centroid of the degenerate manifold at the reference geometry"},
        "max_residual_force_eV_A": data.max_residual_force_eV_A, "displacement_step_A": data.step_A,
        "hessian_relative_asymmetry": data.hessian_asymmetry,
        "gap_gradient_rigid_fraction": rigid_fraction(data.gap_gradient_eV_A, positions_A, masses_amu),
        "assumptions": HARMONIC_ROUTE_ASSUMPTIONS, "warnings": warnings, **(extra or {}),
    }  # fmt: skip
    return LinewidthRecord(**json_clean(result)).to_json(), (grid, S_bin, c, line)


def write_harmonic(outdir: str | Path, result: dict, arrays: tuple) -> list[Path]:
    """Write linewidth.json, spectral_density.csv (binned), spectral_density_modes.csv and lineshape.csv."""
    import pandas as pd

    grid, S_bin, c, line = arrays
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {k: result.get(k) for k in ("system", "synthetic", "level", "route", "report_temperature_K",
                                       "frequency_resolution_meV")}  # fmt: skip
    sd = spectral_density_frame(grid, S_bin, S_bin, "none")
    written = write_table(sd, out / "spectral_density.csv", {**meta, "units": {
        "energy_meV": "meV", "S": "1", "S_hw_meV": "meV", "S_window": "1", "S_hw_smoothed_meV": "meV"},
        "columns_meaning": {
            "energy_meV": "bin energy k * frequency_resolution_meV (the MD route's default grid), k >= 1",
            "S": "harmonic route: sum of lambda_k of the modes in the bin / bin energy (sum S E = lambda)",
            "S_hw_meV": "S * energy_meV (sums to lambda_meV)", "S_window": "= S (no window: modes are exact)",
            "S_hw_smoothed_meV": "S_hw_meV smoothed over 2 bins (display only)"}})  # fmt: skip
    path = out / "linewidth.json"
    path.write_text(json.dumps(json_clean(result), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    written.append(path)
    modes = pd.DataFrame({"energy_meV": c.energy_meV, "S": c.S, "lambda_meV": c.lambda_meV,
                          "d_eV_per_A_sqrt_amu": c.d})  # fmt: skip
    written += write_table(modes, out / "spectral_density_modes.csv", {**meta,
        "units": {"energy_meV": "meV", "S": "1", "lambda_meV": "meV", "d_eV_per_A_sqrt_amu": "eV/(A amu^1/2)"},
        "columns_meaning": {"energy_meV": "hbar w_k of normal mode k", "S": "Huang-Rhys factor d_k^2/(2 hbar w_k^3)",
                            "lambda_meV": "S_k hbar w_k (sums to lambda_meV)",
                            "d_eV_per_A_sqrt_amu": "gap gradient projected on the mass-weighted mode"}})  # fmt: skip
    written += write_lineshape(out / "lineshape.csv", line, result["gap_mean_eV"], result["fwhm_meV"],
                               {k: v for k, v in meta.items() if k != "report_temperature_K"})
    return written


def analyze_harmonic_run(structure_xyz: str | Path, workdir: str | Path, outdir: str | Path | None, *, level: str,
                         system: str | None = None, step_A: float | None = None, displacements: str = "cartesian",
                         cut_xyz: str | Path | None = None, **options) -> dict:
    """Read the single points of ``workdir``, assemble, analyse, write into ``outdir`` (None: nothing); returns
    linewidth.json's dict. ``displacements``: the scheme the single points were run with (``cartesian``, or
    ``symmetry`` with the ideal cut ``cut_xyz`` whose point group planned them); ``options``: those of
    :func:`harmonic_result`."""
    from ase.data import atomic_masses, atomic_numbers

    from qdphonon.harmonic.assemble import assemble
    from qdphonon.harmonic.runner import DEFAULT_STEP_A, collect, cut_plan, reference_positions
    from qdphonon.harmonic.symmetry import assemble_symmetric, symmetry_report
    from qdphonon.structures.io import read_structure

    step = DEFAULT_STEP_A if step_A is None else float(step_A)
    dot = read_structure(structure_xyz)
    tol = {"degeneracy_tol_meV": options.pop("degeneracy_tol_meV")} if "degeneracy_tol_meV" in options else {}
    if displacements == "symmetry":
        if cut_xyz is None:
            raise ValueError("harmonic.displacements symmetry needs the ideal cut its displacements were planned on (--cut)")
        plan = cut_plan(cut_xyz, structure_xyz, step)
        positions, shift_A = reference_positions(structure_xyz, plan)
        reference, results, facts = collect(structure_xyz, workdir, step, plan)
        data, residuals = assemble_symmetric(reference, results, plan, dot.symbols, positions, **tol)
        scheme = {"scheme": "symmetry", "symmetrisation_shift_A": shift_A, **residuals}
    elif displacements == "cartesian":
        positions = np.asarray(dot.positions_A, float)
        reference, results, facts = collect(structure_xyz, workdir, step)
        data = assemble(reference, results, **tol)
        scheme = {"scheme": "cartesian"}
    else:
        raise ValueError(f"harmonic.displacements: {displacements!r} is not cartesian or symmetry")
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in dot.symbols])
    extra = {**facts, "symmetry": {**symmetry_report(dot.symbols, positions, dot.box_A, step), **scheme},
             "structure": str(structure_xyz), "single_points": str(workdir)}  # fmt: skip
    name = system or Path(outdir or workdir).name
    result, arrays = harmonic_result(data, positions, masses, system=name, level=level, extra=extra,
                                     synthetic=facts["synthetic"], **options)  # fmt: skip
    if facts["n_scf_unconverged"]:
        result["warnings"].append(f"{name}: {facts['n_scf_unconverged']} single point(s) with SCF not converged: "
                                  f"{', '.join(facts['unconverged'][:10])}")  # fmt: skip
    if outdir is not None:
        write_harmonic(outdir, result, arrays)
    return result
