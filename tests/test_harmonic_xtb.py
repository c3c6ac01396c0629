"""The harmonic route on real CP2K (GFN1-xTB, Cs4PbBr6, 11 atoms): tight relaxation, the symmetry scheme's
9 single points (the reference and phonopy's 8 symmetry-reduced displacements of the Td cut), modes and
coupling, resumption, and the cross-check against the MD route at 10 K on the same level. (The symmetry
scheme against all 66 Cartesian displacements on real PBE data: tests/test_validation_pbe_harmonic.py.)

Cost on this 2-core machine (1 rank): relaxation ~6 s, 9 single points ~10 s idle,
two 2 ps MD replicas of 250 steps at ~0.3 s a step idle (~0.8 s loaded), one after the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.system import analyze_system
from qdphonon.cp2k.inputs import MDSettings, cp2k_input_tree
from qdphonon.cp2k.xmlspec import installed_xmlspec, render_input
from qdphonon.engines.cp2k import run_cp2k
from qdphonon.engines.relax import relax
from qdphonon.harmonic.report import analyze_harmonic_run
from qdphonon.harmonic.runner import OUTPUT, batches, cut_plan, displacement_names, run_single_points
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.parsers.writers import write_band_edges_csv
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec

pytestmark = pytest.mark.cp2k

TIGHT = {"motion": {"geo_opt": {"max_force": 1e-5, "rms_force": 5e-6, "max_dr": 1e-4, "rms_dr": 5e-5}},
         "force_eval": {"dft": {"scf": {"eps_scf": 1e-8}}}}  # fmt: skip
"""GEO_OPT criteria 45x tighter in force than CP2K's defaults (MAX_FORCE 1e-5 Ha/bohr = 5e-4 eV/A)."""

MD_STEPS, MD_DT_fs, MD_DISCARD_fs, MD_SEEDS = 250, 8.0, 400.0, (101, 202)
"""2 ps per replica at 8 fs: the highest mode (17 meV, period 243 fs) gets 30 steps a period."""


@pytest.fixture(scope="module")
def harmonic(tmp_path_factory, cp2k_exe):
    w = tmp_path_factory.mktemp("harmonic_xtb")
    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), w / "ideal.xyz")
    relaxed = relax(w / "ideal.xyz", w / "relax", w / "relaxed.xyz", "xtb", overrides=TIGHT, max_iter=300)
    plan = cut_plan(w / "ideal.xyz", w / "relaxed.xyz", 0.01)
    names = displacement_names(11, 0.01, plan)
    status = {}
    for batch in batches(names, 5):
        status.update(run_single_points(w / "relaxed.xyz", w / "sp", batch, "xtb", plan=plan))
    result = analyze_harmonic_run(w / "relaxed.xyz", w / "sp", w / "out", level="xtb", system="cspbbr3_1x1x1",
                                  displacements="symmetry", cut_xyz=w / "ideal.xyz")  # fmt: skip
    return {"dir": w, "relax": relaxed, "status": status, "result": result, "plan": plan, "names": names}


def test_relaxation_is_tight_and_modes_obey_the_point_group(harmonic):
    r = harmonic["result"]
    assert harmonic["relax"]["converged"]
    assert set(harmonic["status"].values()) == {"ran"} and len(harmonic["status"]) == 9
    assert r["symmetry"]["scheme"] == "symmetry" and r["symmetry"]["symmetrisation_shift_A"] < 1e-3
    assert r["max_residual_force_eV_A"] < 1e-3
    assert r["n_modes"] == 27 and r["n_rigid_modes_removed"] == 6 and r["n_imaginary_modes"] == 0
    assert r["n_scf_unconverged"] == 0 and r["hessian_relative_asymmetry"] < 1e-3
    assert r["gap_gradient_rigid_fraction"] < 1e-6
    # the relaxed dot keeps Td; with non-degenerate edges only totally symmetric (A1) modes couple linearly,
    # and Cs4PbBr6 in Td has exactly two: Cs4 breathing and PbBr6 breathing
    assert r["symmetry"]["point_group"] == "-43m" and r["symmetry"]["n_symmetry_reduced_displacements"] < 66
    assert r["degeneracy"]["n_vbm"] == 1 and r["degeneracy"]["n_cbm"] == 1
    modes = pd.read_csv(harmonic["dir"] / "out" / "spectral_density_modes.csv")
    top2 = np.sort(modes["lambda_meV"].to_numpy())[-2:].sum()
    assert top2 > 0.999 * r["lambda_meV"]
    assert modes["lambda_meV"].sum() == pytest.approx(r["lambda_meV"], rel=1e-6)
    sd = pd.read_csv(harmonic["dir"] / "out" / "spectral_density.csv")
    assert (sd["S"] * sd["energy_meV"]).sum() == pytest.approx(r["lambda_meV"], rel=1e-6)
    lw = json.loads((harmonic["dir"] / "out" / "linewidth.json").read_text())
    assert lw["route"] == "harmonic" and lw["level"] == "xtb" and lw["synthetic"] is False
    assert 1.3 < lw["gap_mean_eV"] < 1.8  # GFN1-xTB's relaxed Cs4PbBr6 gap (docs/physics.md §3)
    pd.read_csv(harmonic["dir"] / "out" / "lineshape.csv")


def test_single_points_resume_after_a_cut_short_one(harmonic):
    """A cut-short output (a kill) makes only that displacement run again; the others are done."""
    w, names = harmonic["dir"], harmonic["names"]
    cut = names[-1]
    out = w / "sp" / cut / OUTPUT
    text = out.read_text()
    out.write_text(text[: len(text) // 2])
    status = run_single_points(w / "relaxed.xyz", w / "sp", names, "xtb", plan=harmonic["plan"])
    assert status.pop(cut) == "ran" and set(status.values()) == {"done"}
    again = analyze_harmonic_run(w / "relaxed.xyz", w / "sp", None, level="xtb", system="cspbbr3_1x1x1",
                                 displacements="symmetry", cut_xyz=w / "ideal.xyz")  # fmt: skip
    assert again["lambda_meV"] == pytest.approx(harmonic["result"]["lambda_meV"], rel=1e-6)


def _md_replica(structure: Path, run_dir: Path, seed: int) -> Path:
    dot = read_structure(structure)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb", run_type="MD",
                           md=MDSettings(temperature_K=10.0, timestep_fs=MD_DT_fs, steps=MD_STEPS, seed=seed,
                                         trajectory_every_steps=20))  # fmt: skip
    inp = run_dir.with_suffix(".inp")
    run_dir.mkdir(parents=True)
    inp.write_text(render_input(tree, installed_xmlspec()[0]))
    run_cp2k(inp, run_dir)
    csv = run_dir.with_suffix(".csv")
    write_band_edges_csv(parse_run_dir(run_dir), csv)
    return csv


def test_harmonic_route_agrees_with_the_md_route_at_10_K(harmonic):
    """Two 2 ps xTB MD replicas at 10 K from the same relaxed structure (0.4 ps discarded each).
    Measured with four replicas (2026-12-07, loaded machine): harmonic lambda 18.41 meV, main mode 8.08 meV
    (Cs4 / PbBr6 breathing, A1); MD 15.6 +- 12.6 meV (68 %), strongest bin 7.72 meV (bins of 2.57 meV).
    The MD interval of two 2 ps replicas is wide (single replicas gave 9.7 to 18.6 meV): this check
    catches a normalisation error (a factor 2 or more), not a 10 % disagreement.

    lambda: the harmonic value must lie within twice the MD route's 68 % half-width (Student t over the
    replicas; a global thermostat keeps each replica's mode energies near their initial draw, so only
    replicas sample the ensemble): runs this short have no better interval, and 2x keeps the check from
    depending on the seeds' luck. Main mode: 1.6 ps of production give 2.6 meV bins, so the MD's
    strongest bin must be within one bin of the harmonic main mode."""
    w = harmonic["dir"]
    csvs = [_md_replica(w / "relaxed.xyz", w / "md" / f"r{i}", s) for i, s in enumerate(MD_SEEDS)]
    md = analyze_system(csvs, 10.0, discard_fs=MD_DISCARD_fs, outdir=w / "md_out", system="cspbbr3_1x1x1")
    h = harmonic["result"]
    print(f"harmonic lambda {h['lambda_meV']:.3f} meV, main mode {h['main_mode']['energy_meV']:.3f} meV; "
          f"MD lambda {md['lambda_meV']:.3f} +- {md['lambda_meV_err']:.3f} meV (68 %)")
    assert md["n_replicas"] == 2 and md["lambda_meV_err"] is not None
    assert abs(h["lambda_meV"] - md["lambda_meV"]) <= 2.0 * md["lambda_meV_err"]
    sd = pd.read_csv(w / "md_out" / "spectral_density.csv")
    strongest = float(sd["energy_meV"][np.argmax(sd["S_hw_meV"].to_numpy())])
    print(f"MD strongest bin {strongest:.3f} meV (bin {md['frequency_resolution_meV']:.3f} meV)")
    assert abs(strongest - h["main_mode"]["energy_meV"]) <= md["frequency_resolution_meV"] * (1 + 1e-9)
