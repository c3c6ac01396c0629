"""The shipped real PBE harmonic route (validation/pbe_n1_harmonic/, README there) against its MD twin.

No CP2K runs here: the archive holds the 67 single points (CP2K 2023.1, PBE/DZVP) of Cs4PbBr6 that
config/pbe-n1-harmonic.yaml made, with their analysis and the route comparison against the MD route
of validation/pbe_n1. The tests re-assemble the Hessian and the gap gradient from the CP2K files with
the package, re-make the route comparison from the two archives, and check the result against
identities computed here from the raw CP2K prints alone: λ = ½ gᵀ H⁺ g (no masses, no modes), the
Td symmetry of the coupling, the MD's own gap variance and its oscillation frequency.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from archives import extract

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO / "validation" / "pbe_n1_harmonic" / "pbe_n1_harmonic.tar.xz"
MD_ARCHIVE = REPO / "validation" / "pbe_n1" / "pbe_n1.tar.xz"
SYSTEM = "cspbbr3_1x1x1"
K_B_meV_per_K = 8.617333262e-2
HARTREE_eV = 27.211386245988
BOHR_A = 0.529177210903
PLANCK_meV_fs = 4135.667696
_NUMBERS = re.compile(r"^[-+0-9.Ee ]+$")


def _unpack(archive: Path, out: Path) -> Path:
    with tarfile.open(archive) as tar:
        extract(tar, out)
    return out


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    return _unpack(ARCHIVE, tmp_path_factory.mktemp("pbe_n1_harmonic"))


@pytest.fixture(scope="module")
def md(tmp_path_factory) -> Path:
    return _unpack(MD_ARCHIVE, tmp_path_factory.mktemp("pbe_n1"))


@pytest.fixture(scope="module")
def record(shipped) -> dict:
    return json.loads((shipped / f"analysis_harmonic/{SYSTEM}/linewidth.json").read_text())


def _run(args: list[str], cwd: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "qdphonon", *args], capture_output=True, text=True, cwd=cwd,
                         env={"PYTHONPATH": str(REPO / "workflow"), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr


def _forces_eV_A(directory: Path) -> np.ndarray:
    """CP2K's forces print (Hartree/bohr), read here without the package."""
    rows = [line.split()[3:] for line in (directory / "sp-forces-1_0.xyz").read_text().splitlines()
            if len(line.split()) == 6 and line.split()[0].isdigit()]  # fmt: skip
    return np.array(rows, dtype=float) * HARTREE_eV / BOHR_A


def _gap_eV(directory: Path) -> float:
    """LUMO − HOMO from the last eigenvalue print of the main output (Hartree), read here without the package;
    checked against CP2K's own 'HOMO - LUMO gap' line (6 decimals)."""
    lines = (directory / "sp.out").read_text().splitlines()

    def last_block(title: str) -> np.ndarray:
        start = max(i for i, line in enumerate(lines) if title in line)
        values = []
        for line in lines[start + 2:]:
            text = line.strip()
            if text.startswith("OT|"):
                continue
            if not text or not _NUMBERS.match(text):
                break
            values += [float(v) for v in text.split()]
        return np.array(values) * HARTREE_eV

    gap = last_block("Lowest Eigenvalues of the unoccupied subspace").min() - \
        last_block("Eigenvalues of the occupied subspace").max()
    printed = float([line for line in lines if "HOMO - LUMO gap [eV]" in line][-1].split()[-1])
    assert gap == pytest.approx(printed, abs=1.5e-6), directory
    return float(gap)


def test_archive_is_small_whole_and_says_what_it_is(shipped, record):
    assert ARCHIVE.stat().st_size < 1_000_000
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["engine"] == "cp2k" and manifest["cp2k_version"].startswith("2023")
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((shipped / name).read_bytes()).hexdigest() == digest, name
    assert record["route"] == "harmonic" and record["level"] == "pbe" and record["synthetic"] is False
    assert record["n_single_points"] == 67 and record["n_scf_unconverged"] == 0 and record["warnings"] == []
    relax = json.loads((shipped / f"harmonic/{SYSTEM}/relax/relax.json").read_text())
    assert relax["converged"] and relax["cp2k_version"] == "2023.1" and not relax["synthetic"]
    points = sorted((shipped / f"harmonic/{SYSTEM}/sp").iterdir())
    assert len(points) == 67
    for d in points:
        inp = (d / "sp.inp").read_text().upper()
        assert "DZVP-MOLOPT-SR-GTH" in inp and "PBE" in inp and "ENERGY_FORCE" in inp and "SCF_GUESS RESTART" in inp
        assert "PROGRAM ENDED AT" in (d / "sp.out").read_text()
    banner = (points[0] / "sp.out").read_text()
    assert "PROGRAM STARTED IN ./results/harmonic/" in banner and "PROGRAM STARTED IN /" not in banner


def test_single_points_reassemble_to_the_shipped_result(shipped, record, tmp_path):
    """``qdphonon harmonic-analyze`` (the package's collect → assemble → modes → coupling) on the shipped CP2K files."""
    edges = [r["lo_meV"] for r in record["regions"]] + [record["regions"][-1]["hi_meV"]]
    _run(["harmonic-analyze", "--structure", str(shipped / f"harmonic/{SYSTEM}/relaxed.xyz"),
          "--workdir", str(shipped / f"harmonic/{SYSTEM}/sp"), "--outdir", str(tmp_path), "--system", SYSTEM,
          "--level", "pbe", "--engine", "cp2k", "--step-A", str(record["displacement_step_A"]),
          "--displacements", "cartesian", "--degeneracy-tol-meV", str(record["degeneracy"]["tol_meV"]),
          "--report-temperature-K", str(record["report_temperature_K"]),
          "--region-edges-meV", ",".join(map(str, edges))], REPO)  # fmt: skip
    again = json.loads((tmp_path / "linewidth.json").read_text())
    assert again["lambda_meV"] == pytest.approx(record["lambda_meV"], rel=1e-6)
    for key in ("fwhm_meV", "fwhm_quantum_meV", "fwhm_lineshape_meV", "gap_mean_eV", "max_residual_force_eV_A",
                "hessian_relative_asymmetry", "lowest_mode_meV", "highest_mode_meV"):
        assert again[key] == pytest.approx(record[key], rel=1e-6), key
    assert again["main_mode"]["energy_meV"] == pytest.approx(record["main_mode"]["energy_meV"], rel=1e-6)
    for key in ("n_modes", "n_rigid_modes_removed", "n_imaginary_modes", "degeneracy", "n_single_points"):
        assert again[key] == record[key], key
    for table in ("spectral_density_modes.csv", "spectral_density.csv", "lineshape.csv"):
        new, old = pd.read_csv(tmp_path / table), pd.read_csv(shipped / f"analysis_harmonic/{SYSTEM}/{table}")
        pd.testing.assert_frame_equal(new, old, rtol=1e-6, atol=1e-12)


def test_the_symmetry_reduced_subset_gives_the_same_coupling(shipped, record, tmp_path):
    """The symmetry scheme on real PBE data: phonopy's 8 symmetry-reduced displacements of the Td cut are a
    subset of the 66 shipped ones; their force constants (phonopy) and gradients (expanded by the point
    group) give the modes and λ of all 66 to far below the MD route's resolution."""
    from qdphonon.harmonic.report import analyze_harmonic_run
    from qdphonon.structures.build import build_quantum_dot
    from qdphonon.structures.io import write_structure
    from qdphonon.structures.model import QuantumDotSpec

    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), tmp_path / "cut.xyz")
    root = shipped / f"harmonic/{SYSTEM}"
    sym = analyze_harmonic_run(root / "relaxed.xyz", root / "sp", None, level="pbe", displacements="symmetry",
                               cut_xyz=tmp_path / "cut.xyz", step_A=record["displacement_step_A"])  # fmt: skip
    assert sym["n_single_points"] == 9 and sym["symmetry"]["point_group"] == "-43m"
    assert sym["symmetry"]["symmetrisation_shift_A"] < 1e-4
    assert sym["lambda_meV"] == pytest.approx(record["lambda_meV"], rel=1e-3)
    assert sym["fwhm_meV"] == pytest.approx(record["fwhm_meV"], rel=1e-3)
    assert sym["main_mode"]["energy_meV"] == pytest.approx(record["main_mode"]["energy_meV"], rel=1e-4)
    for key in ("lowest_mode_meV", "highest_mode_meV"):
        assert sym[key] == pytest.approx(record[key], rel=1e-3), key
    assert sym["n_imaginary_modes"] == record["n_imaginary_modes"] == 0
    # both routes read the same 8 displacements' central differences; the group expansion is consistent
    assert sym["symmetry"]["cbm_gradient_symmetry_residual_eV_A"] < 1e-3
    assert sym["symmetry"]["vbm_gradient_symmetry_residual_eV_A"] < 1e-3


def test_route_comparison_reproduces_from_the_two_archives(shipped, md, tmp_path):
    out = tmp_path / "route_comparison.csv"
    _run(["compare-routes", "--md", str(md / f"analysis/{SYSTEM}"),
          "--harmonic", str(shipped / f"analysis_harmonic/{SYSTEM}"), "--out", str(out),
          "--figure-dir", str(tmp_path), "--figure-stem", "routes"], REPO)  # fmt: skip
    again, old = pd.read_csv(out), pd.read_csv(shipped / f"analysis_harmonic/{SYSTEM}/route_comparison.csv")
    pd.testing.assert_frame_equal(again, old, rtol=1e-9)
    assert (tmp_path / "routes.png").stat().st_size > 0
    lam = old.set_index("quantity").loc["lambda_meV"]
    assert lam["md_lo"] < lam["harmonic"] < lam["md_hi"]


def test_lambda_is_half_g_hplus_g_from_the_raw_cp2k_prints(shipped, record):
    """Without masses or modes: a linear force g on a harmonic surface H relaxes by λ = ½ gᵀ H⁺ g (H⁺ on the
    3N − 6 non-rigid directions), which is Σ_k d_k²/2ω_k² in any mass weighting. H and g by central
    differences of the forces and of LUMO − HOMO (both non-degenerate in this run), read here."""
    sp = shipped / f"harmonic/{SYSTEM}/sp"
    step = record["displacement_step_A"]
    n = 3 * len(_forces_eV_A(sp / "ref"))
    hessian, gradient = np.zeros((n, n)), np.zeros(n)
    for i in range(n):
        plus, minus = (sp / f"a{i // 3:04d}{'xyz'[i % 3]}{s}" for s in "pm")
        hessian[i] = -(_forces_eV_A(plus) - _forces_eV_A(minus)).ravel() / (2 * step)
        gradient[i] = (_gap_eV(plus) - _gap_eV(minus)) / (2 * step)
    assert record["degeneracy"]["n_vbm"] == record["degeneracy"]["n_cbm"] == 1
    hessian = (hessian + hessian.T) / 2
    curvature, vectors = np.linalg.eigh(hessian)
    rigid = np.argsort(np.abs(curvature))[:6]
    vibrational = np.setdiff1d(np.arange(n), rigid)
    assert n - 6 == 27 == record["n_modes"] and np.all(curvature[vibrational] > 0)
    assert np.max(np.abs(curvature[rigid])) < 0.02 * np.min(curvature[vibrational])
    lam_meV = 0.5e3 * sum((vectors[:, k] @ gradient) ** 2 / curvature[k] for k in vibrational)
    assert lam_meV == pytest.approx(record["lambda_meV"], rel=3e-4)
    assert np.max(np.linalg.norm(_forces_eV_A(sp / "ref"), axis=1)) == pytest.approx(
        record["max_residual_force_eV_A"], rel=1e-6)
    assert _gap_eV(sp / "ref") == pytest.approx(record["gap_mean_eV"], abs=1e-6)


def test_mode_tables_obey_their_identities_and_td_symmetry(shipped, record):
    """Σ S_k ħω_k = λ in the per-mode and the binned table; Σ λ_k = λ over the regions; the classical gap
    spread at 10 K is √(2λ k_B 10 K). In Td (point group found by phonopy) a non-degenerate gap couples
    linearly only to totally symmetric modes, and Cs4PbBr6 has two (the Cs4 and the PbBr6 breathing), the
    only non-degenerate ones: exactly the two singlets carry λ."""
    lam = record["lambda_meV"]
    modes = pd.read_csv(shipped / f"analysis_harmonic/{SYSTEM}/spectral_density_modes.csv")
    binned = pd.read_csv(shipped / f"analysis_harmonic/{SYSTEM}/spectral_density.csv")
    assert len(modes) == 3 * 11 - 6 and (modes["energy_meV"] > 0).all()
    assert (modes["S"] * modes["energy_meV"]).sum() == pytest.approx(lam, rel=1e-9)
    assert modes["lambda_meV"].sum() == pytest.approx(lam, rel=1e-9)
    assert binned["S_hw_meV"].sum() == pytest.approx(lam, rel=1e-9)
    assert sum(r["lambda_meV"] for r in record["regions"]) == pytest.approx(lam, rel=1e-9)
    assert record["gap_std_meV"] == pytest.approx(math.sqrt(2 * lam * K_B_meV_per_K * 10.0), rel=1e-12)

    assert record["symmetry"]["point_group"] == "-43m"
    energies = modes["energy_meV"].to_numpy()
    degeneracy = np.array([np.sum(np.abs(energies - e) < 0.01) for e in energies])
    assert sorted(set(degeneracy)) == [1, 2, 3]
    singlets = degeneracy == 1
    assert singlets.sum() == 2
    assert modes.loc[singlets, "lambda_meV"].sum() == pytest.approx(lam, rel=1e-6)
    main = modes.loc[modes["lambda_meV"].idxmax()]
    assert main["energy_meV"] == pytest.approx(record["main_mode"]["energy_meV"], rel=1e-9)


def _production_gaps_meV(md: Path, discard_fs: float) -> list[tuple[np.ndarray, float]]:
    """Each MD replica's gap after the equilibration (meV, mean removed) and its time step (fs)."""
    out = []
    for path in sorted((md / f"band_edges/{SYSTEM}").glob("r*.csv")):
        table = pd.read_csv(path)
        kept = table[table["time_fs"] >= table["time_fs"].iloc[0] + discard_fs]
        gap = kept["gap_eV"].to_numpy() * 1e3
        out.append((gap - gap.mean(), float(np.median(np.diff(kept["time_fs"].to_numpy())))))
    return out


def test_harmonic_lambda_lies_in_the_md_interval_computed_from_the_md_band_edges(md, record):
    """λ_r = Var(δE_r)/(2 k_B T_r) per MD replica (T_r its internal temperature), the Student-t 68 % interval of
    their mean (1 degree of freedom: t = tan(π · 0.6827/2)), all from the MD archive's CSVs: the harmonic λ
    (a temperature-free number) lies inside, as linear coupling to harmonic modes predicts."""
    md_record = json.loads((md / f"analysis/{SYSTEM}/linewidth.json").read_text())
    temps = md_record["normalisation_temperature_K_per_replica"]
    lams = [float(np.mean(g ** 2)) / (2 * K_B_meV_per_K * t)
            for (g, _), t in zip(_production_gaps_meV(md, md_record["discard_fs"]), temps)]  # fmt: skip
    assert len(lams) == 2
    mean, sem = float(np.mean(lams)), float(np.std(lams, ddof=1)) / math.sqrt(len(lams))
    half = math.tan(math.pi * 0.6827 / 2) * sem
    assert mean == pytest.approx(md_record["lambda_meV"], rel=1e-2)
    assert mean - half < record["lambda_meV"] < mean + half
    assert record["lambda_meV"] / mean == pytest.approx(1.14, abs=0.01)


def test_md_gap_oscillates_at_the_harmonic_coupled_modes(shipped, md):
    """Each 1 ps MD replica is one sustained oscillation of the gap: the peak of its Hann-windowed
    periodogram (computed here) lies within one MD bin (h / 1 ps = 4.1 meV) of one of the two modes that carry
    the harmonic λ (r0: the PbBr6 breathing, 12.97 meV; r1: the Cs4 breathing, 9.21 meV), and those two
    modes fall in the MD spectrum's two strongest bins."""
    md_record = json.loads((md / f"analysis/{SYSTEM}/linewidth.json").read_text())
    modes = pd.read_csv(shipped / f"analysis_harmonic/{SYSTEM}/spectral_density_modes.csv")
    coupled = np.sort(modes.loc[modes["lambda_meV"] > 0.01 * modes["lambda_meV"].sum(), "energy_meV"].to_numpy())
    assert len(coupled) == 2
    bin_meV = md_record["frequency_resolution_meV"]
    peaks = []
    for gap, dt_fs in _production_gaps_meV(md, md_record["discard_fs"]):
        n = len(gap)
        power = np.abs(np.fft.rfft(gap * np.hanning(n), 16 * n)) ** 2
        energy = np.fft.rfftfreq(16 * n, dt_fs) * PLANCK_meV_fs
        peaks.append(float(energy[1:][np.argmax(power[1:])]))
        assert np.min(np.abs(coupled - peaks[-1])) < bin_meV
    assert sorted(coupled[np.argmin(np.abs(coupled - p))] for p in peaks) == list(coupled)
    spectrum = pd.read_csv(md / f"analysis/{SYSTEM}/spectral_density.csv")
    strongest = spectrum.nlargest(2, "S_hw_meV")["energy_meV"].to_numpy()
    for e in coupled:
        assert np.min(np.abs(strongest - e)) <= bin_meV / 2


def test_pack_replaces_the_campaign_directory_in_cp2k_banners(tmp_path):
    """validation/pack.py on a hand-made campaign: CP2K wraps its run directory over indented lines at 80
    columns; the packed output names it relative to the campaign, wrapped again at the same width."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pack", REPO / "validation" / "pack.py")
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    campaign = tmp_path / ("a-long-campaign-directory-name-" * 2).rstrip("-")
    where = f"{campaign}/results/harmonic/{SYSTEM}/sp/ref"
    head = "  **** **  *******  **  PROGRAM STARTED IN "
    wrapped = [head + where[:37]] + [" " * len(head) + where[k:k + 37] for k in range(37, len(where), 37)]
    text = "\n".join(["x", *wrapped, "", f"cwd {campaign}/results", "y"])
    out = pack.portable_text(text, campaign)
    assert str(campaign) not in out and str(tmp_path) not in out
    lines = out.split("\n")
    assert lines[1] == head + f"./results/harmonic/{SYSTEM}/sp/ref"[:37] and max(map(len, lines)) <= 80
    rejoined = "".join(line.strip() for line in lines[2:lines.index("")])
    assert (lines[1][len(head):] + rejoined) == f"./results/harmonic/{SYSTEM}/sp/ref"
    assert lines[-2:] == ["cwd ./results", "y"] and lines[0] == "x"


def test_every_shipped_table_opens_in_pandas(shipped):
    tables = sorted(shipped.rglob("*.csv"))
    assert len(tables) >= 5
    for path in tables:
        assert len(pd.read_csv(path)) > 0, path
