"""The mock engine (docs/architecture.md §4): CP2K 2023.1 file formats, the synthetic label, reproducibility,
the harmonic model and its calibration to the reference study's linewidths. No CP2K needed.

The evidence is independent of the mock: real CP2K 2023.1 output of the same input (the fixtures in
tests/data/cp2k-2023.1, made by tests/data/make_fixtures.py) for the file formats -- line by line, column
by column -- and for what the parsers make of a run; Python's own number formatting; the files the mock
wrote, read here with regular expressions, numpy and ase; the input file's text; and physics (finite
differences, energy conservation, Var = 2 lambda k_B T).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index
from qdphonon.cp2k.xmlspec import bundled_xmlspec
from qdphonon import units
from qdphonon.cp2k.readback import render_tree
from qdphonon.run.errors import RunDirMismatchError
from qdphonon.engines.mock import run_mock
from qdphonon.engines.mock_model import mock_atom_oscillators, mock_gap_std_meV, mock_modes, mock_params
from qdphonon.engines.mock_writers import ENER_HEADER, format_fixed, fortran_e, molog_bytes, xyz_frames_bytes
from qdphonon.engines.relax import relax
from qdphonon.parsers.main_output import read_main_output
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec
from archives import extract

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1"
LABEL = "# synthetic (mock engine)"
TARGET_GAP_STD_meV = {(4, 0): 164.0, (6, 0): 126.0, (6, 1): 90.0}
"""Headline FWHM at 300 K of the reference study; the 10 K gap std is FWHM / (2.3548 sqrt(30))."""
K_B_Ha_per_K = 3.166811563e-6
"""Boltzmann's constant in Hartree per K (CODATA 2018), written here."""
K_B_meV_per_K = 8.617333262e-2
AU_VELOCITY_A_per_fs = 0.529177210903 / 0.024188843265857
"""Bohr per atomic time unit in Angstrom per fs (CODATA 2018), written here."""
RUN_FILES = ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog", "seg000.out")


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


def unpack(name: str, dest: Path) -> Path:
    """A real CP2K 2023.1 fixture's run directory (tests/data/README.md)."""
    with tarfile.open(DATA / name / "run.tar.xz") as tar:
        extract(tar, dest)
    return dest


def molog_blocks(path: Path) -> list[dict[int, tuple[float, float]]]:
    """MO blocks of a MOLog, by a plain regular expression: {index: (eV, occupation)} per block."""
    blocks = []
    for line in path.read_text().splitlines():
        if "EIGENVALUES AND OCCUPATION NUMBERS" in line:
            blocks.append({})
        m = re.match(r"\s*MO\|\s+(\d+)\s+\S+\s+(\S+)\s+(\S+)\s*$", line)
        if m:
            blocks[-1][int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    return blocks


def ener_table(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#", ndmin=2)


def xyz_frames(path: Path) -> tuple[list[int], np.ndarray]:
    """(steps, values[frame, atom, 3]) of a CP2K XYZ trajectory, read with ase (comment lines by regex)."""
    import ase.io

    text = path.read_text()
    steps = [int(m) for m in re.findall(r"^ i =\s+(\d+),", text, re.MULTILINE)]
    lines = [ln for ln in text.splitlines(True) if not ln.startswith("#")]
    tmp = path.with_name(path.name + ".unlabelled")
    tmp.write_text("".join(lines))
    values = np.array([a.positions for a in ase.io.read(tmp, index=":", format="xyz")])
    tmp.unlink()
    return steps, values


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([EeDd][-+]?\d+)?,?$")


def shape(line: str) -> tuple:
    """The layout of a line, values aside: each word at its start column, each number by its end column,
    decimals, exponent and trailing comma (CP2K prints right-aligned fixed-width fields)."""
    out = []
    for m in re.finditer(r"\S+", line):
        tok = m.group(0)
        if _NUMBER.match(tok):
            mantissa = re.split(r"[EeDd]", tok.rstrip(","))[0]
            decimals = len(mantissa.split(".")[1]) if "." in mantissa else None
            out.append(("number", m.end(), decimals, bool(re.search(r"[EeDd]", tok)), tok.endswith(",")))
        else:
            out.append(("word", m.start(), tok))
    return tuple(out)


def unlabelled_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln != LABEL]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A 60-step mock run of the n = 1 dot, positions and velocities every step."""
    tmp = tmp_path_factory.mktemp("mock_small")
    xyz, inp = write_case(tmp, 1, steps=60)
    record = run_mock(inp, tmp / "run", xyz)
    return tmp, xyz, inp, record


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """Real CP2K 2023.1 runs and mock runs of the very same inputs (the fixtures' seg000.inp)."""

    def make(name: str) -> tuple[Path, Path]:
        root = tmp_path_factory.mktemp(name)
        real = unpack(name, root / "real")
        run_mock(real / "seg000.inp", root / "mock", real / "structure.xyz")
        return real, root / "mock"

    return {name: make(name) for name in ("xtb_cs4pbbr6_20steps", "xtb_cs20pb8br36_smearing", "pbe_cs4pbbr6_ot")}


# --- CP2K 2023.1's formats ------------------------------------------------------------------------

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


def test_writers_reproduce_real_cp2k_files_byte_for_byte(tmp_path):
    """The values of a real CP2K 2023.1 run, read off its files, written again by the mock's writers: the
    same bytes (trajectories, MOLog blocks, the .ener header, the MD summary numbers)."""
    real = unpack("xtb_cs4pbbr6_20steps", tmp_path / "real")
    for name in ("md-pos-1.xyz", "md-vel-1.xyz"):
        text = (real / name).read_text()
        steps, values = xyz_frames(real / name)
        header = re.findall(r"^ i =\s+\d+, time =\s+(\S+), E =\s+(\S+)$", text, re.MULTILINE)
        symbols = [ln.split()[0] for ln in text.splitlines()[2:13]]
        written = xyz_frames_bytes(symbols, steps, [float(t) for t, _ in header], [float(e) for _, e in header], values)
        assert written.decode() == text, name
    assert ENER_HEADER == (real / "md-1.ener").read_text().splitlines()[0]
    text = (real / "md-mo-1.MOLog").read_text()
    blocks = molog_blocks(real / "md-mo-1.MOLog")
    index = np.array(sorted(blocks[0]))
    energies = np.array([[b[i][0] for i in index] for b in blocks])
    occupations = np.array([[b[i][1] for i in index] for b in blocks])
    n_el = int(round(float(re.search(r"Sum:\s+(\S+)", text).group(1))))
    fermi = np.array([float(x) for x in re.findall(r"E\(Fermi\):\s+\S+ a\.u\.\s+(\S+) eV", text)])
    gap = np.array([float(x) for x in re.findall(r"Band gap:\s+\S+ a\.u\.\s+(\S+) eV", text)])
    written = molog_bytes(index, energies, occupations, n_el, fermi, gap).decode().splitlines()
    original = text.splitlines()
    assert len(written) == len(original)
    for w, o in zip(written, original):  # the a.u. column is recomputed from the rounded eV: last digit may differ
        assert shape(w) == shape(o)
        assert [float(x) for x in w.split()[1:] if _NUMBER.match(x)] == pytest.approx(
            [float(x) for x in o.split()[1:] if _NUMBER.match(x)], abs=1.01e-8)  # fmt: skip
    same = sum(w == o for w, o in zip(written, original))
    assert same >= 0.95 * len(original)
    out = (real / "seg000.out").read_text()
    printed = re.findall(r"^ MD(?:_INI)?\| (?:Potential|Kinetic) energy \[hartree\]\s+(\S+)", out, re.MULTILINE)
    assert len(printed) > 20 and all(fortran_e(float(x)) == x for x in printed)


def _line_shapes_match(mock: Path, real: Path) -> None:
    m, r = unlabelled_lines(mock), unlabelled_lines(real)
    assert len(m) == len(r), (mock.name, len(m), len(r))
    for i, (a, b) in enumerate(zip(m, r)):
        assert shape(a) == shape(b), f"{mock.name} line {i + 1}: {a!r} is not laid out like CP2K's {b!r}"


@pytest.mark.parametrize("name", ["xtb_cs4pbbr6_20steps", "xtb_cs20pb8br36_smearing"])
@pytest.mark.parametrize("file", ["md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog"])
def test_mock_files_are_laid_out_like_real_cp2k_files_of_the_same_input(twins, name, file):
    """Every line of the mock's trajectories, energies and MOLog has the layout of the corresponding
    line of real CP2K 2023.1 output of the same input: same lines, words, column ends and decimals."""
    real, mock = twins[name]
    assert (mock / file).read_text().splitlines()[0] == LABEL
    _line_shapes_match(mock / file, real / file)


MAIN_OUTPUT_KINDS = (
    " GLOBAL| Project name", " GLOBAL| Run type", " MD_PAR| Molecular dynamics protocol", " MD_PAR| Ensemble type", " MD_PAR| Number of time steps",
    " MD_PAR| Time step [fs]", " MD_PAR| Temperature [K]", " Number of electrons:", " Number of occupied orbitals:",
    " Number of molecular orbitals:", " SCF WAVEFUNCTION OPTIMIZATION", "  *** SCF run converged in",
    " ENERGY| Total FORCE_EVAL", " MD_INI| MD initialization", " MD_INI| Potential energy",
    " MD_INI| Kinetic energy", " MD_INI| Temperature", " MD| Step number", " MD| Time [fs]",
    " MD| Conserved quantity", " MD| CPU time per MD step", " MD| Potential energy", " MD| Kinetic energy",
    " MD| Temperature", "                        Smear method:", "                        Electronic temperature",
    "  Fermi energy:", " Fermi Energy [eV]", " HOMO - LUMO gap [eV]",
)  # fmt: skip
"""Line kinds of the mock's main output (all the parsers read and more), by their start."""
KNOWN_LAYOUT_DIFFERENCES = {" HOMO - LUMO gap [eV]": "pbe_cs4pbbr6_ot"}
"""Mock lines laid out unlike CP2K's (each has its own failing test below): kind -> fixture showing it."""


@pytest.mark.parametrize("name", ["xtb_cs4pbbr6_20steps", "xtb_cs20pb8br36_smearing", "pbe_cs4pbbr6_ot"])
def test_mock_main_output_lines_are_laid_out_like_real_cp2k_lines(twins, name):
    real, mock = twins[name]
    r, m = unlabelled_lines(real / "seg000.out"), unlabelled_lines(mock / "seg000.out")
    checked = 0
    for kind in MAIN_OUTPUT_KINDS:
        if kind in KNOWN_LAYOUT_DIFFERENCES:
            continue
        mine = {shape(ln) for ln in m if ln.startswith(kind)}
        cp2k = {shape(ln) for ln in r if ln.startswith(kind)}
        if not mine:
            continue
        checked += 1
        assert cp2k, f"CP2K prints no {kind.strip()!r} line in this run type"
        assert mine <= cp2k, (kind, [ln for ln in m if ln.startswith(kind)][:2], [ln for ln in r if ln.startswith(kind)][:2])
    assert checked >= 15
    # every mock line is of one of these kinds, a blank line, a banner line or an MD summary rule
    other = [ln for ln in m if ln.strip() and not ln.startswith(MAIN_OUTPUT_KINDS)
             and not re.match(r" MD\| [*-]{75}$| MD\|\s+Instantaneous\s+Averages$", ln)]  # fmt: skip
    assert all("PROGRAM" in ln or "CP2K|" in ln for ln in other), other[:5]


@pytest.mark.xfail(strict=True, reason="engines.mock_writers.mock_output_text: the banner line ' **** **** ******  **  "
                   "PROGRAM STARTED AT' starts with one space; CP2K 2023.1 prints two")  # fmt: skip
def test_mock_banner_is_laid_out_like_cp2k_s(twins):
    real, mock = twins["xtb_cs4pbbr6_20steps"]
    started = lambda lines: [shape(ln) for ln in lines if "PROGRAM STARTED AT" in ln]  # noqa: E731
    assert started(unlabelled_lines(mock / "seg000.out")) == started(unlabelled_lines(real / "seg000.out"))


@pytest.mark.xfail(strict=True, reason="engines.mock_writers.mock_output_text writes the OT route's 'HOMO - LUMO gap "
                   "[eV] :' value as %10.6f after ': '; CP2K 2023.1 right-aligns it one column further (its line "
                   "is one character longer)")  # fmt: skip
@pytest.mark.parametrize("kind", sorted(KNOWN_LAYOUT_DIFFERENCES))
def test_mock_main_output_lines_cp2k_lays_out_otherwise(twins, kind):
    real, mock = twins[KNOWN_LAYOUT_DIFFERENCES[kind]]
    mine = {shape(ln) for ln in unlabelled_lines(mock / "seg000.out") if ln.startswith(kind)}
    cp2k = {shape(ln) for ln in unlabelled_lines(real / "seg000.out") if ln.startswith(kind)}
    assert mine and mine <= cp2k


def _quiet_parse(run_dir: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = parse_run_dir(run_dir)
    return result, [re.sub(r"\d+(\.\d+)?", "#", str(w.message).replace(str(run_dir), "RUN")) for w in caught]


LABELS = {"synthetic", "cp2k_version"}
"""What may tell the mock's output from CP2K's: the synthetic flag and the version it names."""


@pytest.mark.parametrize("name", ["xtb_cs4pbbr6_20steps", "xtb_cs20pb8br36_smearing"])
def test_parsers_cannot_tell_the_mock_from_real_cp2k_but_by_the_label(twins, name):
    """The same input through real CP2K and through the mock: the parsers find the same structure (steps,
    times, SCF verdicts, electron counts, smearing, time step, temperature, level, band-edge source,
    warnings, frames) and differ only in the synthetic label and the version string."""
    real, mock = twins[name]
    a, b = read_main_output(real / "seg000.out"), read_main_output(mock / "seg000.out")
    assert (a.synthetic, b.synthetic) == (False, True) and (a.cp2k_version, b.cp2k_version) == ("2023.1", "mock")
    for f in dataclasses.fields(a):
        if f.name not in LABELS | {"path", "evaluations", "level", "run_type_line"}:
            assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert len(a.evaluations) == len(b.evaluations)
    values = {"line_no", "fermi_eV", "gap_eV", "ot_homo_eV", "ot_lumo_eV"}
    if a.smearing_K is not None:  # CP2K counts the fractionally occupied orbitals: a value, not a format
        values.add("n_occupied")
    for ea, eb in zip(a.evaluations, b.evaluations):
        da, db = dataclasses.asdict(ea), dataclasses.asdict(eb)
        assert {k: v for k, v in da.items() if k not in values} == {k: v for k, v in db.items() if k not in values}
        assert {k: da[k] is None for k in values} == {k: db[k] is None for k in values}
    (ra, wa), (rb, wb) = _quiet_parse(real), _quiet_parse(mock)
    assert wa == wb  # the same warnings, numbers aside
    for f in dataclasses.fields(ra):
        va, vb = getattr(ra, f.name), getattr(rb, f.name)
        if f.name in LABELS | {"warnings"} or dataclasses.is_dataclass(va) or isinstance(va, np.ndarray):
            continue
        assert va == vb, f.name
    ea, eb = ra.band_edges, rb.band_edges
    np.testing.assert_array_equal(ea.step, eb.step)
    np.testing.assert_array_equal(ea.time_fs, eb.time_fs)
    np.testing.assert_array_equal(ea.scf_converged, eb.scf_converged)
    assert (ea.homo_index, ea.source) == (eb.homo_index, eb.source)
    for key in ("positions", "velocities", "energies"):
        np.testing.assert_array_equal(getattr(ra, key).step, getattr(rb, key).step)
    assert ra.positions.unit == rb.positions.unit and list(ra.positions.symbols) == list(rb.positions.symbols)


@pytest.mark.xfail(strict=True, reason="engines.mock_writers.mock_output_text prints no 'xTB|' or 'FUNCTIONAL|' line, so "
                   "parsers.main_output.read_main_output finds level None in the mock's output and the level of "
                   "CP2K's ('xtb') in the real one")  # fmt: skip
def test_main_output_level_of_the_mock_is_cp2k_s(twins):
    real, mock = twins["xtb_cs4pbbr6_20steps"]
    assert read_main_output(mock / "seg000.out").level == read_main_output(real / "seg000.out").level


@pytest.mark.xfail(strict=True, reason="engines.mock: for an OT (PBE) input the mock prints the LUMO in the MOLog and "
                   "no MO_CUBES eigenvalue lists in the main output, where CP2K prints the occupied-subspace and "
                   "unoccupied eigenvalues; the parser reads the band edges from the MOLog for the mock and from "
                   "the main output for CP2K")  # fmt: skip
def test_parsers_cannot_tell_the_mock_from_real_cp2k_ot_run(twins):
    real, mock = twins["pbe_cs4pbbr6_ot"]
    (ra, _), (rb, _) = _quiet_parse(real), _quiet_parse(mock)
    assert ra.band_edges.source.replace(str(real), "") == rb.band_edges.source.replace(str(mock), "")
    _line_shapes_match(mock / "md-mo-1.MOLog", real / "md-mo-1.MOLog")


# --- what the mock writes --------------------------------------------------------------------------

def test_every_file_is_labelled_and_holds_every_step(small_run):
    tmp, xyz, inp, record = small_run
    run = tmp / "run"
    for name in RUN_FILES:
        assert (run / name).read_text().splitlines()[0] == LABEL, name
    np.testing.assert_array_equal(ener_table(run / "md-1.ener")[:, 0], np.arange(61))
    np.testing.assert_allclose(ener_table(run / "md-1.ener")[:, 1], 2.0 * np.arange(61))
    for name in ("md-pos-1.xyz", "md-vel-1.xyz"):
        steps, values = xyz_frames(run / name)
        assert steps == list(range(61)) and values.shape == (61, 11, 3)
    blocks = molog_blocks(run / "md-mo-1.MOLog")
    homo = homo_index(read_structure(xyz).symbols, "xtb")
    assert len(blocks) == 61 and all(b[homo][1] == 2.0 and b[homo + 1][1] == 0.0 for b in blocks)
    result = parse_run_dir(run)
    assert result.synthetic and result.cp2k_version == "mock" and not result.warnings
    np.testing.assert_array_equal(result.band_edges.vbm_eV, [b[homo][0] for b in blocks])
    np.testing.assert_array_equal(result.band_edges.cbm_eV, [b[homo + 1][0] for b in blocks])
    assert (run / "seg000.inp").read_bytes() == inp.read_bytes()


def test_run_record_describes_the_input_and_the_files(small_run):
    tmp, xyz, inp, record = small_run
    run = tmp / "run"
    text = inp.read_text()
    number = lambda key: float(re.search(rf"^\s*{key}\s+(\S+)\s*$", text, re.MULTILINE).group(1))  # noqa: E731
    on_disk = json.loads((run / "run.json").read_text())
    assert on_disk["input_sha256"] == hashlib.sha256(inp.read_bytes()).hexdigest()
    assert on_disk["engine"] == "mock" and on_disk["synthetic"] is True and on_disk["cp2k_version"] == "mock"
    assert on_disk["total_steps"] == on_disk["steps_requested"] == number("STEPS") == ener_table(run / "md-1.ener")[-1, 0]
    assert on_disk["level"] == "mock" and on_disk["input_level"] == "xtb" and "METHOD XTB" in text.upper()
    assert on_disk["md_temperature_K"] == number("TEMPERATURE") and on_disk["timestep_fs"] == number("TIMESTEP")
    (seg,) = on_disk["segments"]
    assert (seg["start_step"], seg["end_step"], seg["ended"], seg["exit_status"]) == (0, 60, "completed", 0)
    assert "synthetic" in on_disk["note"]


def test_recorded_mock_parameters_are_the_ones_used(small_run, tmp_path):
    """The record's mock_params reproduce the run byte for byte when given explicitly; the documented
    calibration (docs/architecture.md §4: regions at ~2, ~7, ~17 meV; 93.8 meV for the 2.4 nm dot) is in
    them, and another lambda_ref_meV gives other band edges."""
    tmp, xyz, inp, record = small_run
    params = record["mock_params"]
    assert params["region_energies_meV"] == [2.0, 7.0, 17.0] and params["lambda_ref_meV"] == 93.8
    run_mock(inp, tmp_path / "again", xyz, params)
    for name in RUN_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tmp / "run" / name).read_bytes(), name
    run_mock(inp, tmp_path / "other", xyz, {**params, "lambda_ref_meV": 40.0})
    assert (tmp_path / "other" / "md-mo-1.MOLog").read_bytes() != (tmp / "run" / "md-mo-1.MOLog").read_bytes()


def test_positions_and_velocities_are_a_consistent_harmonic_motion(small_run):
    """Finite differences of the positions are the velocities (bohr/au_time converted with CODATA, not
    qdphonon's constants); atoms oscillate around the input geometry; the conserved quantity is constant."""
    tmp, xyz, inp, record = small_run
    run = tmp / "run"
    _, x = xyz_frames(run / "md-pos-1.xyz")
    _, v_au = xyz_frames(run / "md-vel-1.xyz")
    v = v_au * AU_VELOCITY_A_per_fs
    dt = 2.0
    central = (x[2:] - x[:-2]) / (2 * dt)
    assert np.abs(central - v[1:-1]).max() < 0.02 * np.abs(v).max()
    ideal = read_structure(xyz).positions_A
    assert np.abs(x - ideal[None]).max() < 0.5  # oscillates around the input geometry
    e = ener_table(run / "md-1.ener")  # step, time, kin, T, pot, cons (Hartree)
    np.testing.assert_allclose(e[:, 5], e[0, 5], atol=1e-6 / units.HARTREE_eV)
    np.testing.assert_allclose(e[:, 5], e[:, 2] + e[:, 4], atol=2e-9)
    dof = 3 * 11 - 6
    np.testing.assert_allclose(e[:, 3], 2 * e[:, 2] / (dof * K_B_Ha_per_K), rtol=1e-5)  # Kin. printed to 1e-9 Ha


def test_repeat_runs_are_byte_identical_and_replicas_differ(tmp_path):
    xyz, inp = write_case(tmp_path, 2, steps=40, smearing_K=300.0, seed=11)
    _, inp_b = write_case(tmp_path, 2, steps=40, smearing_K=300.0, seed=12, name="replica")
    run_mock(inp, tmp_path / "a", xyz)
    run_mock(inp, tmp_path / "b", xyz)
    run_mock(inp_b, tmp_path / "c", xyz)
    for name in ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog", "seg000.out", "seg000.inp"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    homo = homo_index(read_structure(xyz).symbols, "xtb")
    a, c = molog_blocks(tmp_path / "a" / "md-mo-1.MOLog"), molog_blocks(tmp_path / "c" / "md-mo-1.MOLog")
    gap = lambda blocks: np.array([b[homo + 1][0] - b[homo][0] for b in blocks])  # noqa: E731
    assert not np.allclose(gap(a), gap(c))
    assert not np.allclose(xyz_frames(tmp_path / "a" / "md-pos-1.xyz")[1], xyz_frames(tmp_path / "c" / "md-pos-1.xyz")[1])
    occupations = np.array([[b[homo][1], b[homo + 1][1]] for b in a])
    assert np.all(occupations[:, 0] > 1.99) and np.all(occupations[:, 1] < 0.01)  # a gap of eV >> k_B 300 K
    assert "Band gap" not in (tmp_path / "a" / "md-mo-1.MOLog").read_text()  # as CP2K with smearing
    out = (tmp_path / "a" / "seg000.out").read_text()
    assert re.search(r"Smear method:\s+FERMI_DIRAC", out) and re.search(r"Electronic temperature \[K\]:\s+300\.0", out)


def test_mock_honours_the_input(tmp_path):
    xyz, inp = write_case(tmp_path, 1, steps=23, every=5, project="qd", level="pbe")
    run_mock(inp, tmp_path / "run", xyz)
    run = tmp_path / "run"
    assert {p.name for p in run.glob("qd-*")} == {"qd-pos-1.xyz", "qd-vel-1.xyz", "qd-1.ener", "qd-mo-1.MOLog"}
    frames = (run / "qd-pos-1.xyz").read_text().splitlines()
    steps = [int(line.split()[2].rstrip(",")) for line in frames if line.startswith(" i =")]
    assert steps == [0, 5, 10, 15, 20]
    np.testing.assert_array_equal(ener_table(run / "qd-1.ener")[:, 0], np.arange(24))
    out = (run / "seg000.out").read_text()
    assert "Fermi Energy [eV]" in out and "HOMO - LUMO gap [eV]" in out  # the OT (pbe) route's lines
    assert re.search(r"GLOBAL\| Project name\s+qd$", out, re.MULTILINE)
    homo = homo_index(read_structure(xyz).symbols, "pbe")
    assert homo == (4 * 9 + 4 + 6 * 7) // 2  # GTH-PBE valence: Cs 9, Pb 4, Br 7
    blocks = molog_blocks(run / "qd-mo-1.MOLog")
    assert (run / "qd-mo-1.MOLog").read_text().startswith(LABEL)
    assert len(blocks) == 24 and all(homo + 1 in b for b in blocks)


@pytest.mark.parametrize("size,shell", sorted(TARGET_GAP_STD_meV))
def test_calibrated_gap_std(tmp_path, size, shell):
    """The headline linewidths of the reference study (docs/physics.md §1) within 15 % after 1 ps of
    equilibration, from the gaps in the MOLog (read here)."""
    xyz, inp = write_case(tmp_path, size, shell, steps=4000, every=400, level="pbe")
    record = run_mock(inp, tmp_path / "run", xyz)
    homo = homo_index(read_structure(xyz).symbols, "pbe")
    blocks = molog_blocks(tmp_path / "run" / "md-mo-1.MOLog")
    vbm = np.array([b[homo][0] for b in blocks])
    gap = np.array([b[homo + 1][0] for b in blocks]) - vbm
    time_fs = 2.0 * np.arange(len(blocks))
    std_meV = 1e3 * gap[time_fs >= 1000.0].std()
    target = TARGET_GAP_STD_meV[(size, shell)] / (2 * np.sqrt(2 * np.log(2)) * np.sqrt(30.0))
    assert std_meV == pytest.approx(target, rel=0.15)
    assert record["mock_model"]["gap_std_meV"] == pytest.approx(target, rel=0.01)
    assert 2.3 < gap.mean() < 2.95 and -5.8 < vbm.mean() < -5.2


def test_model_scaling():
    p = mock_params()
    f4, f6 = 345 / 416, 867 / 1296
    std = lambda f, k, T: mock_gap_std_meV(f, k, T, p)  # noqa: E731
    assert std(f4, 0, 10.0) > std(f6, 0, 10.0) > std(f6, 1, 10.0)
    assert std(f6, 0, 40.0) == pytest.approx(2 * std(f6, 0, 10.0))
    rng = np.random.default_rng(0)
    e, a, _ = mock_modes(rng, [10.0, 5.0, 2.0], 10.0, p)
    kT = K_B_meV_per_K * 10.0
    n = p["modes_per_region"]
    for r, lam in enumerate([10.0, 5.0, 2.0]):
        assert np.sum(a[r * n : (r + 1) * n] ** 2 / 2) == pytest.approx(2 * lam * kT)  # Var = 2 lambda k_B T
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
    kT_eV = K_B_meV_per_K * 1e-2
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
    mtimes = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    again = run_mock(inp, run, xyz)
    assert again["input_sha256"] == hashlib.sha256(inp.read_bytes()).hexdigest()
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == mtimes  # nothing rewritten
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
    """run-aimd --engine mock with lambda_ref_meV 40 instead of the default: the gap variance over the run
    scales with lambda (Var = 2 lambda k_B T_md), read off the two MOLogs."""
    xyz, inp = write_case(tmp_path, 1, steps=200)
    homo = homo_index(read_structure(xyz).symbols, "xtb")

    def gap_var(run: Path) -> float:
        blocks = molog_blocks(run / "md-mo-1.MOLog")
        return float(np.var([b[homo + 1][0] - b[homo][0] for b in blocks]))

    for name, params in (("default", "{}"), ("run", json.dumps({"lambda_ref_meV": 40.0}))):
        res = subprocess.run(["qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(tmp_path / name),
                              "--engine", "mock", "--structure", str(xyz), "--record", str(tmp_path / name / "run.json"),
                              "--mock-params-json", params],
                             capture_output=True, text=True)  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert "mock run complete, 200 MD steps (synthetic)" in res.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["synthetic"] and record["mock_params"]["lambda_ref_meV"] == 40.0
    assert gap_var(tmp_path / "run") / gap_var(tmp_path / "default") == pytest.approx(40.0 / 93.8, rel=0.02)
    bad = subprocess.run(["qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(tmp_path / "r2"), "--engine",
                          "mock", "--structure", str(xyz), "--mock-params-json", '{"nope": 1}'],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode != 0 and "unknown parameter" in bad.stderr and not (tmp_path / "r2" / "run.json").exists()
