"""The mock engine (docs/architecture.md §4): CP2K 2023.1 file formats, the synthetic label, reproducibility,
the harmonic model and its calibration to the reference study's linewidths. No CP2K needed."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index
from qdphonon.cp2k.xmlspec import bundled_xmlspec
from qdphonon import units
from qdphonon.cp2k.readback import render_tree
from qdphonon.engines.errors import RunDirMismatchError
from qdphonon.engines.mock import run_mock
from qdphonon.engines.mock_model import MOCK_DEFAULTS, mock_atom_oscillators, mock_gap_std_meV, mock_modes, mock_params
from qdphonon.engines.mock_writers import ENER_HEADER, format_fixed, fortran_e, molog_bytes, xyz_frames_bytes
from qdphonon.engines.relax import relax
from qdphonon.parsers.energies import read_energies
from qdphonon.parsers.molog import read_molog
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec

# Lines of a real CP2K 2023.1 run (Debian cp2k.psmp, Cs4PbBr6, GFN1-xTB, 2 fs), copied verbatim.
REAL_POS_HEADER = " i =        0, time =        0.000, E =       -26.4603569695"
REAL_POS_ATOM = " Pb        11.0000000000       11.0000000000       11.0000000000"
REAL_VEL_ATOM = " Pb         0.0000100196        0.0000049234       -0.0000027342"
REAL_ENER_HEADER = ("#     Step Nr.          Time[fs]        Kin.[a.u.]          Temp[K]            Pot.[a.u.]"
                    "        Cons Qty[a.u.]        UsedTime[s]")  # fmt: skip
REAL_ENER_ROW = ("         1            2.000000         0.000479245        11.209891651       -26.460416146"
                 "       -26.459929443         0.146761400")  # fmt: skip
REAL_MOLOG_BLOCK = """
 MO| EIGENVALUES AND OCCUPATION NUMBERS
 MO|
 MO|  Index      Eigenvalue [a.u.]        Eigenvalue [eV]             Occupation
 MO|     25            -0.30564325            -8.31697585             2.00000000
 MO|     26            -0.26749911            -7.27902109             0.00000000
 MO| Sum:                                                            50.00000000
 MO| E(Fermi):         -0.30564325 a.u.       -8.31697585 eV
 MO| Band gap:          0.03814414 a.u.        1.03795476 eV

"""
LABEL = "# synthetic (mock engine)"
TARGET_GAP_STD_meV = {(4, 0): 164.0, (6, 0): 126.0, (6, 1): 90.0}
"""Headline FWHM at 300 K of the reference study; the 10 K gap std is FWHM / (2.3548 sqrt(30))."""


def write_case(tmp: Path, size: int, shell: int = 0, *, steps: int = 200, every: int = 1, seed: int = 7,
               level: str = "xtb", smearing_K: float | None = None, project: str | None = None,
               temperature_K: float = 10.0, name: str = "case") -> tuple[Path, Path]:  # fmt: skip
    """A labelled structure and its MD input (validated against the bundled definition)."""
    dot = build_quantum_dot(QuantumDotSpec(size=(size,) * 3, shell_layers=shell))
    xyz = tmp / f"{name}.xyz"
    write_structure(dot, xyz)
    tree = cp2k_input_tree(
        dot.symbols, dot.positions_A, dot.box_A, level=level, project=project,
        md=MDSettings(steps=steps, trajectory_every_steps=every, seed=seed, temperature_K=temperature_K),
        scf=SCFSettings(smearing_K=smearing_K),
    )  # fmt: skip
    inp = tmp / f"{name}.inp"
    inp.write_text(f"! qdphonon MD input, level {level}\n" + render_tree(tree, bundled_xmlspec()))
    return xyz, inp


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A 60-step mock run of the n = 1 dot, positions and velocities every step."""
    tmp = tmp_path_factory.mktemp("mock_small")
    xyz, inp = write_case(tmp, 1, steps=60)
    record = run_mock(inp, tmp / "run", xyz)
    return tmp, xyz, inp, record


def test_format_fixed_matches_python_formatting():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 30, 20000), rng.normal(0, 1e-4, 20000), [0.0, -0.0, 1e-12, 99999999.5]])
    got = [row.tobytes().decode() for row in format_fixed(x, 20, 10)]
    ref = ["%20.10f" % v for v in x]
    differ = [(g, r) for g, r in zip(got, ref) if g != r]
    assert len(differ) <= len(x) * 1e-3
    for g, r in differ:  # rare rounding ties: one unit in the last place at most
        assert abs(float(g) - float(r)) <= 1.01e-10
    with pytest.raises(ValueError):
        format_fixed(np.array([1e12]), 20, 10)


def test_writers_reproduce_real_cp2k_lines():
    frame = xyz_frames_bytes(["Pb"], [0], [0.0], [-26.4603569695], np.array([[[11.0, 11.0, 11.0]]])).decode()
    assert frame.splitlines() == ["       1", REAL_POS_HEADER, REAL_POS_ATOM]
    vel = xyz_frames_bytes(["Pb"], [0], [0.0], [-26.4603569695],
                                   np.array([[[0.0000100196, 0.0000049234, -0.0000027342]]])).decode()  # fmt: skip
    assert vel.splitlines()[2] == REAL_VEL_ATOM
    assert ENER_HEADER == REAL_ENER_HEADER
    values = (1, 2.0, 0.000479245, 11.209891651, -26.460416146, -26.459929443, 0.1467614)
    row = "%10d%20.6f%20.9f%20.9f%20.9f%20.9f%20.9f" % values
    assert row == REAL_ENER_ROW
    block = molog_bytes(np.array([25, 26]), np.array([[-8.31697585, -7.27902109]]), np.array([[2.0, 0.0]]), 50,
                                np.array([-8.31697585]), np.array([1.03795476])).decode()  # fmt: skip
    assert block == REAL_MOLOG_BLOCK
    assert fortran_e(-26.4604161461) == "-0.264604161461E+02"
    assert fortran_e(0.000427520071344) == "0.427520071344E-03"


def test_every_file_is_labelled_and_parses(small_run):
    tmp, xyz, inp, record = small_run
    run = tmp / "run"
    for name in ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog", "seg000.out"):
        assert (run / name).read_text().splitlines()[0] == LABEL, name
    result = parse_run_dir(run)
    assert result.synthetic and result.cp2k_version == "mock" and not result.warnings
    np.testing.assert_array_equal(result.band_edges.step, np.arange(61))
    np.testing.assert_allclose(result.band_edges.time_fs, 2.0 * np.arange(61))
    assert result.band_edges.homo_index == homo_index(read_structure(xyz).symbols, "xtb")
    assert result.positions.n_frames == 61 and result.energies.step[-1] == 60
    assert (run / "seg000.inp").read_bytes() == inp.read_bytes()


def test_run_record(small_run):
    tmp, xyz, inp, record = small_run
    on_disk = json.loads((tmp / "run" / "run.json").read_text())
    assert on_disk["input_sha256"] == record["input_sha256"] and on_disk["synthetic"] is True
    assert record["engine"] == "mock" and record["synthetic"] is True and record["cp2k_version"] == "mock"
    assert record["input_sha256"] == hashlib.sha256(inp.read_bytes()).hexdigest()
    assert record["total_steps"] == record["steps_requested"] == 60
    assert record["level"] == "mock" and record["input_level"] == "xtb"
    assert record["md_temperature_K"] == 10.0 and record["timestep_fs"] == 2.0
    (seg,) = record["segments"]
    assert (seg["start_step"], seg["end_step"], seg["ended"], seg["exit_status"]) == (0, 60, "completed", 0)
    assert record["mock_params"] == MOCK_DEFAULTS and "synthetic" in record["note"]


def test_positions_and_velocities_are_a_consistent_harmonic_motion(small_run):
    tmp, xyz, inp, record = small_run
    result = parse_run_dir(tmp / "run")
    x, v = result.positions.values, result.velocities.values  # Angstrom, Angstrom/fs
    dt = 2.0
    central = (x[2:] - x[:-2]) / (2 * dt)
    assert np.abs(central - v[1:-1]).max() < 0.02 * np.abs(v).max()
    ideal = read_structure(xyz).positions_A
    assert np.abs(x - ideal[None]).max() < 0.5  # oscillates around the input geometry
    e = result.energies
    np.testing.assert_allclose(e.conserved_eV, e.conserved_eV[0], atol=1e-6)  # energy conserved


def test_repeat_runs_are_byte_identical_and_replicas_differ(tmp_path):
    xyz, inp = write_case(tmp_path, 2, steps=40, smearing_K=300.0, seed=11)
    _, inp_b = write_case(tmp_path, 2, steps=40, smearing_K=300.0, seed=12, name="replica")
    run_mock(inp, tmp_path / "a", xyz)
    run_mock(inp, tmp_path / "b", xyz)
    run_mock(inp_b, tmp_path / "c", xyz)
    for name in ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog", "seg000.out", "seg000.inp"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    a, c = parse_run_dir(tmp_path / "a"), parse_run_dir(tmp_path / "c")
    assert not np.allclose(a.band_edges.gap_eV, c.band_edges.gap_eV)
    assert not np.allclose(a.positions.values, c.positions.values)
    assert a.smearing_K == 300.0 and np.all(a.band_edges.homo_occupation > 1.99)
    assert "Band gap" not in (tmp_path / "a" / "md-mo-1.MOLog").read_text()  # as CP2K with smearing


def test_mock_honours_the_input(tmp_path):
    xyz, inp = write_case(tmp_path, 1, steps=23, every=5, project="qd", level="pbe")
    run_mock(inp, tmp_path / "run", xyz)
    run = tmp_path / "run"
    assert {p.name for p in run.glob("qd-*")} == {"qd-pos-1.xyz", "qd-vel-1.xyz", "qd-1.ener", "qd-mo-1.MOLog"}
    frames = (run / "qd-pos-1.xyz").read_text().splitlines()
    steps = [int(line.split()[2].rstrip(",")) for line in frames if line.startswith(" i =")]
    assert steps == [0, 5, 10, 15, 20]
    ener = read_energies(run / "qd-1.ener")
    np.testing.assert_array_equal(ener.step, np.arange(24))
    out = (run / "seg000.out").read_text()
    assert "Fermi Energy [eV]" in out and "HOMO - LUMO gap [eV]" in out  # the OT (pbe) route's lines
    homo = homo_index(read_structure(xyz).symbols, "pbe")
    blocks, synthetic = read_molog(run / "qd-mo-1.MOLog")
    assert synthetic and len(blocks) == 24 and blocks[0].orbital(homo + 1) is not None


@pytest.mark.parametrize("size,shell", sorted(TARGET_GAP_STD_meV))
def test_calibrated_gap_std(tmp_path, size, shell):
    """The headline linewidths of the reference study (docs/physics.md §1) within 15 % after 1 ps of equilibration."""
    xyz, inp = write_case(tmp_path, size, shell, steps=4000, every=400, level="pbe")
    record = run_mock(inp, tmp_path / "run", xyz)
    edges = parse_run_dir(tmp_path / "run").band_edges
    std_meV = 1e3 * edges.gap_eV[edges.time_fs >= 1000.0].std()
    target = TARGET_GAP_STD_meV[(size, shell)] / (units.FWHM_PER_SIGMA * np.sqrt(30.0))
    assert std_meV == pytest.approx(target, rel=0.15)
    assert record["mock_model"]["gap_std_meV"] == pytest.approx(target, rel=0.01)
    assert 2.3 < edges.gap_eV.mean() < 2.95 and -5.8 < edges.vbm_eV.mean() < -5.2


def test_model_scaling():
    p = mock_params()
    f4, f6 = 345 / 416, 867 / 1296
    std = lambda f, k, T: mock_gap_std_meV(f, k, T, p)  # noqa: E731
    assert std(f4, 0, 10.0) > std(f6, 0, 10.0) > std(f6, 1, 10.0)
    assert std(f6, 0, 40.0) == pytest.approx(2 * std(f6, 0, 10.0))
    rng = np.random.default_rng(0)
    e, a, _ = mock_modes(rng, [10.0, 5.0, 2.0], 10.0, p)
    kT = units.BOLTZMANN_meV_per_K * 10.0
    n = p["modes_per_region"]
    for r, lam in enumerate([10.0, 5.0, 2.0]):
        assert np.sum(a[r * n : (r + 1) * n] ** 2 / 2) == pytest.approx(2 * lam * kT)
        centre, width = p["region_energies_meV"][r], p["region_widths_meV"][r]
        assert np.all(np.abs(e[r * n : (r + 1) * n] - centre) <= 2 * width + 1e-12)


def test_surface_atoms_are_softer(tmp_path):
    dot = build_quantum_dot(QuantumDotSpec(size=(4, 4, 4)))
    osc = mock_atom_oscillators(dot.symbols, dot.regions, 10.0, 1, mock_params())
    regions = np.array(dot.regions)
    mean_energy = lambda mask: (osc.omega_per_fs[mask] * units.HBAR_meV_fs).mean()  # noqa: E731
    for el in ("Cs", "Pb", "Br"):
        el_mask = np.array(dot.symbols) == el
        assert mean_energy(el_mask & (regions == "surface")) < mean_energy(el_mask & (regions == "core"))
    kT_eV = units.BOLTZMANN_meV_per_K * 1e-2
    assert osc.energy_eV.sum() / (3 * len(dot.symbols)) == pytest.approx(kT_eV, rel=0.1)  # equipartition


def test_params_validation():
    assert mock_params({"lambda_ref_meV": 50.0})["lambda_ref_meV"] == 50.0
    assert mock_params({"atom_region_weights": {"Cs": [1, 0, 0]}})["atom_region_weights"]["Pb"]
    with pytest.raises(ValueError, match="unknown parameter"):
        mock_params({"lamda": 1.0})
    with pytest.raises(ValueError, match="3 values"):
        mock_params({"region_fractions": [1.0]})


def test_complete_run_is_not_redone_and_other_input_refused(small_run, tmp_path):
    tmp, xyz, inp, record = small_run
    run = tmp / "run"
    mtime = (run / "md-pos-1.xyz").stat().st_mtime_ns
    assert run_mock(inp, run, xyz) == json.loads((run / "run.json").read_text())
    assert (run / "md-pos-1.xyz").stat().st_mtime_ns == mtime
    _, other = write_case(tmp_path, 1, steps=61)
    with pytest.raises(RunDirMismatchError, match="another input"):
        run_mock(other, run, xyz)


def test_mock_relax_passes_the_structure_through(tmp_path):
    xyz, _ = write_case(tmp_path, 2, steps=3)
    out = tmp_path / "relaxed.xyz"
    summary = relax(xyz, tmp_path / "relax", out, "xtb", engine="mock")
    assert summary["synthetic"] and not summary["relaxed"]
    assert 'relaxed="none (mock engine)"' in out.read_text().splitlines()[1]
    a, b = read_structure(xyz), read_structure(out)
    assert a.regions == b.regions and a.layers == b.layers and np.array_equal(a.positions_A, b.positions_A)


def test_cli_run_aimd_mock(tmp_path):
    xyz, inp = write_case(tmp_path, 1, steps=10)
    params = json.dumps({"lambda_ref_meV": 40.0})
    res = subprocess.run(["qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(tmp_path / "run"),
                          "--engine", "mock", "--structure", str(xyz), "--record", str(tmp_path / "run" / "run.json"),
                          "--tasks", "1", "--mock-params-json", params],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["synthetic"] and record["mock_params"]["lambda_ref_meV"] == 40.0
    bad = subprocess.run(["qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(tmp_path / "r2"), "--engine",
                          "mock", "--structure", str(xyz), "--mock-params-json", '{"nope": 1}'],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "unknown parameter" in bad.stderr
