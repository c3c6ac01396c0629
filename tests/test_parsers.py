"""Parsers against real CP2K 2023.1 output (fixtures in tests/data/cp2k-2023.1, see tests/data/README.md).

Reference values are read off the files here with plain regular expressions, numpy and
ase, independently of qdphonon.parsers, and compared exactly unless a tolerance is stated.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from qdphonon.parsers.band_edges import band_edges_from_outputs
from qdphonon.parsers.common import SYNTHETIC_LABEL
from qdphonon.parsers.energies import read_energies
from qdphonon.parsers.main_output import read_main_output
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.parsers.writers import write_band_edges_csv, write_trajectory_npz
from qdphonon.parsers.xyz import dedupe_keep_last, read_positions, read_velocities, read_xyz_trajectory
from qdphonon.engines.file_cuts import truncate_to_complete_records
from qdphonon.run.layout import run_files

FILES = run_files("md", "mo")
from qdphonon.units import AU_VELOCITY_A_per_fs, BOLTZMANN_meV_per_K, HARTREE_eV
from archives import extract

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1"
RESTART_TOL_eV = 1e-4
"""Band edges of a continuation vs the uninterrupted run: the continuation's SCF starts from the
saved wavefunction, so eigenvalues differ within the SCF tolerance (EPS_SCF 1e-6; seen: 4e-5 eV)."""
RESTART_TOL_A = 1e-5
RESTART_TOL_A_per_fs = 1e-6


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="session")
def fixtures_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cp2k-fixtures")


def unpack(name: str, root: Path) -> Path:
    """The fixture's run directory, unpacked once per session (tests copy it before changing it)."""
    dest = root / name
    if not dest.exists():
        archive = DATA / name / "run.tar.xz"
        if not archive.is_file():
            pytest.fail(f"fixture {archive} missing: regenerate with tests/data/make_fixtures.py")
        with tarfile.open(archive) as tar:
            extract(tar, dest)
    return dest


@pytest.fixture
def run(fixtures_root):
    return lambda name: unpack(name, fixtures_root)


@pytest.fixture
def run_copy(fixtures_root, tmp_path):
    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(unpack(name, fixtures_root), dest)
        return dest

    return make


def parse_quiet(run_dir, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = parse_run_dir(run_dir, **kw)
    return result, [str(w.message) for w in caught]


def ref_molog_blocks(path: Path) -> list[dict[int, tuple[float, float]]]:
    """MD blocks of a MOLog (restart-guess blocks ``AFTER SCF STEP n`` skipped): {index: (eV, occupation)}."""
    blocks, skip = [], False
    for line in path.read_text().splitlines():
        if "EIGENVALUES AND OCCUPATION NUMBERS" in line:
            skip = "AFTER SCF STEP" in line
            if not skip:
                blocks.append({})
            continue
        m = re.match(r"\s*MO\|\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line)
        if m and not skip:
            blocks[-1][int(m.group(1))] = (float(m.group(3)), float(m.group(4)))
    return blocks


def ref_homo(out: Path) -> int:
    return int(re.search(r"Number of electrons:\s+(\d+)", out.read_text()).group(1)) // 2


def ref_chunks(out: Path) -> list[tuple[str, str]]:
    """(marker, text before it) for every MD_INI / 'MD| Step number' marker of a main output."""
    text = out.read_text()
    parts = re.split(r"^( MD_INI\| MD initialization| MD\| Step number\s+\d+)\s*$", text, flags=re.MULTILINE)
    return [(parts[i], parts[i - 1]) for i in range(1, len(parts), 2)]


def ref_ener(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#", ndmin=2)


def ase_frames(path: Path) -> np.ndarray:
    import ase.io

    return np.array([a.positions for a in ase.io.read(path, index=":", format="xyz")])


# ----------------------------------------------------------------------------- (a) uninterrupted xTB
def test_xtb_band_edges_equal_the_molog_rows(run):
    d = run("xtb_cs4pbbr6_20steps")
    result, warned = parse_quiet(d)
    e = result.band_edges
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    homo = ref_homo(d / "seg000.out")
    assert homo == 25 and e.homo_index == homo
    assert len(blocks) == 21
    np.testing.assert_array_equal(e.step, np.arange(21))
    np.testing.assert_array_equal(e.time_fs, ref_ener(d / "md-1.ener")[:, 1])
    np.testing.assert_array_equal(e.vbm_eV, [b[homo][0] for b in blocks])
    np.testing.assert_array_equal(e.cbm_eV, [b[homo + 1][0] for b in blocks])
    np.testing.assert_array_equal(e.homo_occupation, 2.0)
    np.testing.assert_array_equal(e.lumo_occupation, 0.0)
    gaps = [float(x) for x in re.findall(r"Band gap:\s+\S+ a\.u\.\s+(\S+) eV", (d / "md-mo-1.MOLog").read_text())]
    np.testing.assert_allclose(e.gap_eV, gaps, rtol=0, atol=2e-8)
    assert e.scf_converged.all() and result.n_scf_unconverged == 0
    assert result.level == "xtb" and result.cp2k_version == "2023.1" and not result.synthetic
    assert result.smearing_K is None and warned == []


def test_xtb_trajectories_equal_ase_and_units(run):
    d = run("xtb_cs4pbbr6_20steps")
    result, _ = parse_quiet(d)
    pos, vel = result.positions, result.velocities
    np.testing.assert_array_equal(pos.values, ase_frames(d / "md-pos-1.xyz"))
    np.testing.assert_array_equal(vel.values, ase_frames(d / "md-vel-1.xyz") * AU_VELOCITY_A_per_fs)
    assert pos.unit == "A" and vel.unit == "A/fs"
    import ase.io

    assert list(pos.symbols) == ase.io.read(d / "md-pos-1.xyz", index=0).get_chemical_symbols()
    steps = [int(m) for m in re.findall(r"i =\s+(\d+),", (d / "md-pos-1.xyz").read_text())]
    times = [float(m) for m in re.findall(r"time =\s+(\S+),", (d / "md-pos-1.xyz").read_text())]
    np.testing.assert_array_equal(pos.step, steps)
    np.testing.assert_array_equal(pos.time_fs, times)
    # 10 K: velocities of order sqrt(kT/m) ~ 1e-4 A/fs, not bohr/au_time (~5e-6)
    assert 2e-5 < np.sqrt(np.mean(vel.values**2)) < 2e-3


def test_energies_equal_the_ener_file(run):
    d = run("xtb_cs4pbbr6_20steps")
    en = read_energies(d / "md-1.ener")
    ref = ref_ener(d / "md-1.ener")
    np.testing.assert_array_equal(en.step, ref[:, 0].astype(int))
    np.testing.assert_array_equal(en.time_fs, ref[:, 1])
    np.testing.assert_array_equal(en.kinetic_eV, ref[:, 2] * HARTREE_eV)
    np.testing.assert_array_equal(en.temperature_K, ref[:, 3])
    np.testing.assert_array_equal(en.potential_eV, ref[:, 4] * HARTREE_eV)
    np.testing.assert_array_equal(en.conserved_eV, ref[:, 5] * HARTREE_eV)


def test_csv_and_npz_writers(run, tmp_path):
    d = run("xtb_cs4pbbr6_20steps")
    result, _ = parse_quiet(d)
    csv = tmp_path / "be.csv"
    write_band_edges_csv(result, csv)
    assert csv.read_text().splitlines()[0] == "step,time_fs,vbm_eV,cbm_eV,gap_eV,scf_converged"
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["synthetic"] is False and meta["level"] == "xtb" and meta["cp2k_version"] == "2023.1"
    assert meta["md_temperature_K"] == 10.0 and meta["timestep_fs"] == 2.0 and meta["project"] == "md"
    import pandas as pd

    df = pd.read_csv(csv)
    np.testing.assert_allclose(df["vbm_eV"], result.band_edges.vbm_eV, rtol=1e-11, atol=0)
    np.testing.assert_allclose(df["gap_eV"], result.band_edges.gap_eV, rtol=1e-11, atol=0)
    assert all(len(x.split(".")[-1]) <= 12 for x in csv.read_text().splitlines()[1].split(",")[2:5])
    assert df["scf_converged"].all()

    npz = tmp_path / "traj.npz"
    write_trajectory_npz(result, npz, regions=d / "structure.xyz")
    with np.load(npz) as z:
        assert z["velocities"].dtype == np.float32 and z["velocities"].shape == (21, 11, 3)
        np.testing.assert_array_equal(z["velocities"], result.velocities.values.astype(np.float32))
        np.testing.assert_array_equal(z["positions"], result.positions.values.astype(np.float32))
        np.testing.assert_array_equal(z["step"], np.arange(21))
        np.testing.assert_array_equal(z["time_fs"], 2.0 * np.arange(21))
        assert list(z["symbols"]) == list(result.positions.symbols)
        ref_regions = [ln.split()[4] for ln in (d / "structure.xyz").read_text().splitlines()[2:13]]
        assert list(z["regions"]) == ref_regions
        assert not bool(z["synthetic"]) and str(z["level"]) == "xtb"


def test_regions_must_match_the_atoms(run, tmp_path):
    d = run("xtb_cs4pbbr6_20steps")
    result, _ = parse_quiet(d)
    lines = (d / "structure.xyz").read_text().splitlines()
    lines[2], lines[6] = lines[6], lines[2]  # Cs <-> Pb: other atom order
    other = tmp_path / "other.xyz"
    other.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="atoms differ"):
        write_trajectory_npz(result, tmp_path / "t.npz", regions=other)
    with pytest.raises(ValueError, match="region labels"):
        write_trajectory_npz(result, tmp_path / "t.npz", regions=["core"] * 3)


def test_cli_parse_cp2k(run, tmp_path):
    from qdphonon.cli import main

    d = run("xtb_cs4pbbr6_scf_unconverged")
    rc = main(["parse-cp2k", "--run-dir", str(d), "--out", str(tmp_path / "be.csv"),
               "--trajectory-out", str(tmp_path / "t.npz"), "--structure", str(d / "structure.xyz"),
               "--on-scf-failure", "keep_flagged"])  # fmt: skip
    assert rc == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "be.csv", comment="#")
    assert len(df) == 13 and not df["scf_converged"].all()
    assert "regions" in np.load(tmp_path / "t.npz").files
    assert main(["parse-cp2k", "--run-dir", str(d), "--out", str(tmp_path / "x.csv"), "--on-scf-failure", "fail"]) == 1


# ----------------------------------------------------------------------------- (b) kill + EXT_RESTART
def test_restart_every_step_once_and_continuations_copy_kept(run):
    d = run("xtb_cs4pbbr6_restart")
    result, warned = parse_quiet(d)
    e = result.band_edges
    assert result.segments == ["seg000.out", "seg001.out"]
    np.testing.assert_array_equal(e.step, np.arange(21))
    np.testing.assert_array_equal(result.positions.step, np.arange(21))
    np.testing.assert_array_equal(result.velocities.step, np.arange(21))
    np.testing.assert_array_equal(result.energies.step, np.arange(21))
    text = (d / "md-mo-1.MOLog").read_text()
    assert re.search(r"AFTER SCF STEP \d+", text), "fixture should hold a restart-guess block"
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    k = int(re.search(r"MD\| Step number\s+(\d+)", (d / "seg001.out").read_text()).group(1)) - 1  # restart step
    assert len(ref_chunks(d / "seg000.out")) == k + 1  # seg000 dated steps 0..k
    homo = e.homo_index
    # seg000: steps 0..k; seg001 re-evaluates k, then k+1..20; a killed step's extra block may sit between
    seg1 = blocks[len(blocks) - (20 - k + 1) :]
    assert e.vbm_eV[k] == seg1[0][homo][0], "the continuation's copy of the restart step must win"
    np.testing.assert_array_equal(e.vbm_eV[:k], [b[homo][0] for b in blocks[:k]])
    np.testing.assert_array_equal(e.vbm_eV[k:], [b[homo][0] for b in seg1])
    np.testing.assert_array_equal(e.cbm_eV[k:], [b[homo + 1][0] for b in seg1])
    assert any("seg000.out" in w and "cut short" in w for w in warned)


def test_restart_matches_uninterrupted_run(run):
    a, _ = parse_quiet(run("xtb_cs4pbbr6_20steps"))
    b, _ = parse_quiet(run("xtb_cs4pbbr6_restart"))
    np.testing.assert_array_equal(a.band_edges.step, b.band_edges.step)
    np.testing.assert_allclose(b.band_edges.vbm_eV, a.band_edges.vbm_eV, rtol=0, atol=RESTART_TOL_eV)
    np.testing.assert_allclose(b.band_edges.cbm_eV, a.band_edges.cbm_eV, rtol=0, atol=RESTART_TOL_eV)
    np.testing.assert_allclose(b.positions.values, a.positions.values, rtol=0, atol=RESTART_TOL_A)
    np.testing.assert_allclose(b.velocities.values, a.velocities.values, rtol=0, atol=RESTART_TOL_A_per_fs)
    np.testing.assert_array_equal(b.energies.time_fs, a.energies.time_fs)
    np.testing.assert_allclose(b.energies.temperature_K, a.energies.temperature_K, rtol=1e-4)
    # steps before the kill are the same computation: identical
    k = len(ref_chunks(run("xtb_cs4pbbr6_restart") / "seg000.out")) - 1  # restart step
    np.testing.assert_array_equal(b.band_edges.vbm_eV[:k], a.band_edges.vbm_eV[:k])
    np.testing.assert_array_equal(b.positions.values[: k + 1], a.positions.values[: k + 1])


# ----------------------------------------------------------------------------- (c) killed, not resumed
def test_killed_run_drops_partial_records_with_warnings(run, tmp_path):
    d = run("xtb_cs4pbbr6_killed")
    result, warned = parse_quiet(d)
    n_atoms = 11
    for name, traj in (("md-pos-1.xyz", result.positions), ("md-vel-1.xyz", result.velocities)):
        lines = (d / name).read_text().splitlines(True)
        complete = len(lines) // (n_atoms + 2)
        assert len(lines) % (n_atoms + 2) != 0, "fixture should end inside a frame"
        assert traj.n_frames == complete
        whole = tmp_path / name
        whole.write_text("".join(lines[: complete * (n_atoms + 2)]))
        scale = AU_VELOCITY_A_per_fs if "vel" in name else 1.0
        np.testing.assert_array_equal(traj.values, ase_frames(whole) * scale if scale != 1.0 else ase_frames(whole))
        assert any(name in w and "incomplete" in w for w in warned)
    ener_lines = [ln for ln in (d / "md-1.ener").read_text().split("\n") if ln and not ln.startswith("#")]
    assert result.energies.step.size == len(ener_lines) - 1
    assert any("md-1.ener" in w and "incomplete" in w for w in warned)
    chunks = ref_chunks(d / "seg000.out")
    np.testing.assert_array_equal(result.band_edges.step, np.arange(len(chunks)))
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    homo = result.band_edges.homo_index
    np.testing.assert_array_equal(result.band_edges.vbm_eV, [b[homo][0] for b in blocks[: len(chunks)]])
    assert any("run ended during step" in w for w in warned)


def test_truncate_to_complete_records(run_copy):
    d = run_copy("xtb_cs4pbbr6_killed")
    sizes = {f: (d / f).stat().st_size for f in ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog")}
    removed = truncate_to_complete_records(d, FILES)
    assert removed["md-pos-1.xyz"] > 0 and removed["md-vel-1.xyz"] > 0 and removed["md-1.ener"] > 0
    for f, n in removed.items():
        assert (d / f).stat().st_size == sizes[f] - n
    assert len((d / "md-pos-1.xyz").read_text().splitlines()) % 13 == 0
    assert (d / "md-1.ener").read_bytes().endswith(b"\n")
    result, warned = parse_quiet(d)
    assert not any("incomplete" in w for w in warned)
    assert truncate_to_complete_records(d, FILES) == {f: 0 for f in removed}


def test_truncate_cuts_a_partial_mo_block(run_copy):
    d = run_copy("xtb_cs4pbbr6_20steps")
    path = d / "md-mo-1.MOLog"
    whole = path.read_bytes()
    path.write_bytes(whole + b"\n MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|\n MO|     21   -0.3")
    removed = truncate_to_complete_records(d, FILES)
    assert path.read_bytes().rstrip() == whole.rstrip()
    assert removed["md-mo-1.MOLog"] > 0


# ----------------------------------------------------------------------------- (g) WALLTIME stops
WALLTIME_STOP = "SCF run terminated - exceeded requested execution time"
WALLTIME_SEGMENTS = ("seg000.out", "seg001.out", "seg002.out")


def ref_walltime_restart_step(d: Path) -> int:
    """Restart step k of the walltime fixture: the step before seg002's first numbered step."""
    return int(re.search(r"MD\| Step number\s+(\d+)", (d / "seg002.out").read_text()).group(1)) - 1


def test_walltime_fixture_is_what_cp2k_wrote(run):
    """The CP2K 2023.1 behaviour the parser relies on, read off the files: an SCF cut by the WALLTIME prints
    its ENERGY line but writes no MO block, and such SCFs are the only unconverged ones."""
    d = run("xtb_cs4pbbr6_walltime")
    texts = [(d / f).read_text() for f in WALLTIME_SEGMENTS]
    stops = [t.count(WALLTIME_STOP) for t in texts]
    energies = [len(re.findall(r"^ ENERGY\| Total FORCE_EVAL", t, re.MULTILINE)) for t in texts]
    assert stops == [1, 2, 0], "seg000: one SCF stopped; seg001: the restart step's SCF and the next one"
    assert sum(t.count("SCF run NOT converged") for t in texts) == sum(stops)
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    assert len(blocks) == sum(energies) - sum(stops)
    k = ref_walltime_restart_step(d)
    assert len(blocks) == (k + 1) + (20 - k + 1)  # seg000: steps 0..k; seg002: k (again) .. 20
    # seg000 stopped in the SCF after its last step line; seg001 in the SCF before MD_INI and in the next one
    chunks0 = ref_chunks(d / "seg000.out")
    assert [m.split()[-1] for m, _ in chunks0[1:]] == [str(i) for i in range(1, k + 1)]
    assert not any(WALLTIME_STOP in text for _, text in chunks0)
    ((marker, before),) = ref_chunks(d / "seg001.out")
    assert "MD_INI" in marker and WALLTIME_STOP in before


def test_walltime_stopped_scf_is_flagged(run):
    d = run("xtb_cs4pbbr6_walltime")
    for name in WALLTIME_SEGMENTS:
        evals = read_main_output(d / name).evaluations
        text = (d / name).read_text()
        # evaluations in order: the text from one 'SCF WAVEFUNCTION OPTIMIZATION' to the next
        ref = [WALLTIME_STOP in piece for piece in text.split("SCF WAVEFUNCTION OPTIMIZATION")[1:]]
        assert [ev.walltime_stopped for ev in evals] == ref, name
        for ev in evals:
            if ev.walltime_stopped:  # CP2K still prints the energy and 'NOT converged'
                assert ev.force_done and ev.scf_converged is False
    kinds = [(ev.kind, ev.walltime_stopped) for ev in read_main_output(d / "seg001.out").evaluations]
    assert kinds == [("init", True), ("trailing", True)]


def test_walltime_stops_and_continuations_every_step_once(run):
    d = run("xtb_cs4pbbr6_walltime")
    result, warned = parse_quiet(d)
    e = result.band_edges
    k = ref_walltime_restart_step(d)
    assert result.segments == list(WALLTIME_SEGMENTS)
    for steps in (e.step, result.positions.step, result.velocities.step, result.energies.step):
        np.testing.assert_array_equal(steps, np.arange(21))
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    homo = ref_homo(d / "seg000.out")
    assert e.homo_index == homo
    # blocks: seg000 steps 0..k, then seg002 steps k..20 (its copy of step k wins); seg001 wrote none
    expected = blocks[:k] + blocks[k + 1 :]
    np.testing.assert_array_equal(e.vbm_eV, [b[homo][0] for b in expected])
    np.testing.assert_array_equal(e.cbm_eV, [b[homo + 1][0] for b in expected])
    np.testing.assert_array_equal(e.time_fs, ref_ener(d / "md-1.ener")[:, 1])
    assert e.scf_converged.all() and result.n_scf_unconverged == 0 and result.dropped_steps == []
    assert any("seg000.out" in w and "WALLTIME" in w and f"step {k + 1}" in w for w in warned)
    assert any("seg001.out" in w and "WALLTIME" in w and f"step {k}" in w for w in warned)


def test_walltime_run_matches_uninterrupted_run(run):
    a, _ = parse_quiet(run("xtb_cs4pbbr6_20steps"))
    b, _ = parse_quiet(run("xtb_cs4pbbr6_walltime"))
    np.testing.assert_array_equal(a.band_edges.step, b.band_edges.step)
    np.testing.assert_allclose(b.band_edges.vbm_eV, a.band_edges.vbm_eV, rtol=0, atol=RESTART_TOL_eV)
    np.testing.assert_allclose(b.band_edges.cbm_eV, a.band_edges.cbm_eV, rtol=0, atol=RESTART_TOL_eV)
    np.testing.assert_allclose(b.positions.values, a.positions.values, rtol=0, atol=RESTART_TOL_A)
    np.testing.assert_allclose(b.velocities.values, a.velocities.values, rtol=0, atol=RESTART_TOL_A_per_fs)
    np.testing.assert_array_equal(b.energies.time_fs, a.energies.time_fs)


def _as_left_after(d: Path, n_segments: int) -> None:
    """Cut the walltime fixture back to what its first ``n_segments`` segments wrote (the files are only
    appended to): MOLog blocks of seg000 (steps 0..k) and, after seg001, its restart-guess block;
    energies and frames of steps 0..k."""
    k = ref_walltime_restart_step(d)
    for name in WALLTIME_SEGMENTS[n_segments:]:
        (d / name).unlink()
        (d / name.replace(".out", ".inp")).unlink()
    lines = (d / "md-mo-1.MOLog").read_text().splitlines(True)
    headers = [i for i, ln in enumerate(lines) if "EIGENVALUES AND OCCUPATION NUMBERS" in ln]
    (d / "md-mo-1.MOLog").write_text("".join(lines[: headers[k + n_segments]]))
    ener = (d / "md-1.ener").read_text().splitlines(True)
    (d / "md-1.ener").write_text("".join(ln for ln in ener if ln.startswith("#") or int(ln.split()[0]) <= k))
    for name in ("md-pos-1.xyz", "md-vel-1.xyz"):
        frames = (d / name).read_text().splitlines(True)
        (d / name).write_text("".join(frames[: (k + 1) * 13]))


@pytest.mark.parametrize("n_segments", [1, 2])
def test_run_dir_as_a_walltime_stop_left_it(run_copy, n_segments):
    """Parsed between the segments (before the next continuation ran): steps 0..k of seg000."""
    d = run_copy("xtb_cs4pbbr6_walltime")
    k = ref_walltime_restart_step(d)
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")[: k + 1]
    _as_left_after(d, n_segments)
    result, warned = parse_quiet(d)
    e = result.band_edges
    np.testing.assert_array_equal(e.step, np.arange(k + 1))
    np.testing.assert_array_equal(result.energies.step, np.arange(k + 1))
    np.testing.assert_array_equal(e.vbm_eV, [b[e.homo_index][0] for b in blocks])
    np.testing.assert_array_equal(e.cbm_eV, [b[e.homo_index + 1][0] for b in blocks])
    assert e.scf_converged.all() and result.n_scf_unconverged == 0
    last = WALLTIME_SEGMENTS[n_segments - 1]
    assert any(last in w and "run ended during step" in w and "WALLTIME" in w for w in warned)


# ----------------------------------------------------------------------------- (d) SCF not converged
def test_scf_flags_and_policies(run):
    d = run("xtb_cs4pbbr6_scf_unconverged")
    flags = ["SCF run NOT converged" not in text for _, text in ref_chunks(d / "seg000.out")]
    assert 0 < sum(flags) < len(flags), "fixture should mix converged and unconverged steps"
    kept, _ = parse_quiet(d, on_scf_failure="keep_flagged")
    np.testing.assert_array_equal(kept.band_edges.scf_converged, flags)
    assert kept.n_scf_unconverged == flags.count(False)
    dropped, warned = parse_quiet(d, on_scf_failure="drop_step")
    np.testing.assert_array_equal(dropped.band_edges.step, np.flatnonzero(flags))
    assert dropped.dropped_steps == [i for i, ok in enumerate(flags) if not ok]
    assert any("dropped from the band edges" in w for w in warned)
    with pytest.raises(ValueError, match=r"SCF not converged at \d+ step"):
        parse_run_dir(d, on_scf_failure="fail")
    with pytest.raises(ValueError, match="on_scf_failure"):
        parse_run_dir(d, on_scf_failure="ignore")
    # values of flagged steps are still the MOLog's
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    np.testing.assert_array_equal(kept.band_edges.vbm_eV, [b[25][0] for b in blocks])


# ----------------------------------------------------------------------------- (e) PBE / OT route
def test_pbe_ot_band_edges_from_main_output(run):
    d = run("pbe_cs4pbbr6_ot")
    result, warned = parse_quiet(d)
    e = result.band_edges
    text = (d / "seg000.out").read_text()
    occ = re.findall(r"Eigenvalues of the occupied subspace spin\s+1\s*\n\s*-+\n(.*?)\n\s*Fermi Energy", text, re.S)
    unocc = re.findall(r"Lowest Eigenvalues of the unoccupied subspace spin\s+1\s*\n\s*-+\n(?:.*OT\|.*\n)?\s*(\S+)", text)
    fermi = [float(x) for x in re.findall(r"Fermi Energy \[eV\]\s*:\s*(\S+)", text)]
    gap = [float(x) for x in re.findall(r"HOMO - LUMO gap \[eV\]\s*:\s*(\S+)", text)]
    n_steps = len(ref_chunks(d / "seg000.out"))
    assert len(occ) == len(unocc) == len(fermi) == len(gap) == n_steps == e.step.size
    homo = ref_homo(d / "seg000.out")
    assert all(len(o.split()) == homo for o in occ)
    np.testing.assert_array_equal(e.vbm_eV, [float(o.split()[-1]) * HARTREE_eV for o in occ])
    np.testing.assert_array_equal(e.cbm_eV, [float(u) * HARTREE_eV for u in unocc])
    # Fermi Energy and gap are printed with 6 decimals, and the MO_CUBES occupied-subspace eigenvalues
    # differ from the MOLog's SCF eigenvalues by up to ~1e-6 eV (seen: 7e-7 eV; a separate diagonalisation)
    tol_eV = 2e-6
    np.testing.assert_allclose(e.vbm_eV, fermi, rtol=0, atol=tol_eV)
    np.testing.assert_allclose(e.gap_eV, gap, rtol=0, atol=tol_eV)
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    assert all(homo + 1 not in b for b in blocks), "the OT MOLog should lack the LUMO"
    np.testing.assert_allclose(e.vbm_eV, [b[homo][0] for b in blocks], rtol=0, atol=tol_eV)
    assert "MO_CUBES" in e.source and result.level == "pbe" and warned == []


# ----------------------------------------------------------------------------- (f) smearing
def test_smearing_takes_edges_by_index_and_records_occupations(run):
    d = run("xtb_cs20pb8br36_smearing")
    result, warned = parse_quiet(d)
    e = result.band_edges
    homo = ref_homo(d / "seg000.out")
    occupied = {int(x) for x in re.findall(r"Number of occupied orbitals:\s+(\d+)", (d / "seg000.out").read_text())}
    assert homo == 152 and e.homo_index == homo
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    np.testing.assert_array_equal(e.vbm_eV, [b[homo][0] for b in blocks])
    np.testing.assert_array_equal(e.cbm_eV, [b[homo + 1][0] for b in blocks])
    np.testing.assert_array_equal(e.homo_occupation, [b[homo][1] for b in blocks])
    np.testing.assert_array_equal(e.lumo_occupation, [b[homo + 1][1] for b in blocks])
    assert result.smearing_K == 300.0
    assert "Band gap" not in (d / "md-mo-1.MOLog").read_text()
    small = e.gap_eV.min() < 10 * BOLTZMANN_meV_per_K * 300.0 * 1e-3
    assert small == any("k_B T_el" in w for w in warned)
    assert max(occupied) >= homo  # with smearing CP2K counts fractionally occupied orbitals


# ----------------------------------------------------------------------------- synthetic label
def test_synthetic_label_propagates(run_copy, tmp_path):
    d = run_copy("xtb_cs4pbbr6_20steps")
    for f in ("seg000.out", "md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog"):
        (d / f).write_text(SYNTHETIC_LABEL + "\n" + (d / f).read_text())
    result, _ = parse_quiet(d)
    assert result.synthetic and result.positions.synthetic and result.velocities.synthetic and result.energies.synthetic
    assert result.positions.n_frames == 21 and result.band_edges.step.size == 21
    csv = tmp_path / "be.csv"
    write_band_edges_csv(result, csv)
    assert csv.read_text().splitlines()[0] == "step,time_fs,vbm_eV,cbm_eV,gap_eV,scf_converged"
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["synthetic"] is True and meta["level"] == "mock" and "synthetic" in meta["note"]
    from qdphonon.analysis.inputs import read_band_edges

    edges = read_band_edges(csv)
    assert edges.synthetic
    npz = tmp_path / "t.npz"
    write_trajectory_npz(result, npz)
    assert bool(np.load(npz)["synthetic"])


# ----------------------------------------------------------------------------- errors
def test_missing_and_empty_files_are_named(run_copy):
    d = run_copy("xtb_cs4pbbr6_20steps")
    (d / "md-vel-1.xyz").unlink()
    result, _ = parse_quiet(d)
    assert result.velocities is None and result.band_edges.step.size == 21
    with pytest.raises(FileNotFoundError, match="md-vel-1.xyz"):
        write_trajectory_npz(result, d / "t.npz")
    (d / "md-vel-1.xyz").write_text("")
    with pytest.raises(ValueError, match=r"md-vel-1\.xyz.*empty"):
        parse_run_dir(d)
    (d / "md-1.ener").write_text("")
    with pytest.raises(ValueError, match=r"md-1\.ener.*empty"):
        read_energies(d / "md-1.ener")
    (d / "md-mo-1.MOLog").unlink()
    with pytest.raises(FileNotFoundError, match="md-mo-1.MOLog"):
        band_edges_from_outputs([read_main_output(d / "seg000.out")], d / "md-mo-1.MOLog")
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        parse_run_dir(d / "nothing-here")
    (d / "seg000.out").rename(d / "other.out")
    with pytest.raises(FileNotFoundError, match=r"other\.out: this run printed no band edges \(no MOLog, no eigenvalue "
                       r"lists in the main output\); .*: qdphonon reevaluate --run-dir .*xtb_cs4pbbr6_20steps --level xtb"):
        parse_run_dir(d)
    (d / "other.out").write_text("not a CP2K output\n")
    with pytest.raises(FileNotFoundError, match=r"no CP2K main output found"):
        parse_run_dir(d)


def _replace_line(path: Path, line_no: int, new: str) -> None:
    lines = path.read_text().splitlines(True)
    lines[line_no - 1] = new + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    "line_no, new",
    [
        (44, " Br        12.9350000000       1x.9350000000       10.0000000000"),  # fixed width kept
        (45, " Br 12.93 abc 10.0"),  # other width: general parser
        (46, " Br        12.9350000000       10.0000000000"),  # a column missing
    ],
)
def test_corrupt_xyz_line_is_named(run_copy, line_no, new):
    d = run_copy("xtb_cs4pbbr6_20steps")
    _replace_line(d / "md-pos-1.xyz", line_no, new)
    with pytest.raises(ValueError, match=rf"md-pos-1\.xyz: line {line_no}\b"):
        read_positions(d / "md-pos-1.xyz")


def test_corrupt_frame_header_and_mid_file_truncation(run_copy):
    d = run_copy("xtb_cs4pbbr6_20steps")
    _replace_line(d / "md-pos-1.xyz", 14, "      12")
    with pytest.raises(ValueError, match=r"md-pos-1\.xyz: line 14: expected the atom count 11"):
        read_positions(d / "md-pos-1.xyz")
    path = d / "md-vel-1.xyz"
    lines = path.read_text().splitlines(True)
    del lines[30:33]  # a frame cut short, then whole frames appended (a continuation without trimming)
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"md-vel-1\.xyz: line \d+: expected the atom count"):
        read_velocities(path)
    _replace_line(d / "md-vel-1.xyz", 2, " i = x, time = 0.0")
    with pytest.raises(ValueError, match=r"md-vel-1\.xyz: line 2:"):
        read_velocities(path)


def test_corrupt_ener_and_molog_lines_are_named(run_copy):
    d = run_copy("xtb_cs4pbbr6_20steps")
    _replace_line(d / "md-1.ener", 5, "         3            6.000000         0.00043 oops")
    with pytest.raises(ValueError, match=r"md-1\.ener: line 5\b"):
        read_energies(d / "md-1.ener")
    _replace_line(d / "md-1.ener", 5, "         3            6.000000         0.00043 1.0 2.0 3.0 x.0")
    with pytest.raises(ValueError, match=r"md-1\.ener: line 5: bad number"):
        read_energies(d / "md-1.ener")
    _replace_line(d / "md-mo-1.MOLog", 7, " MO|     25            -0.33      -9.1x    2.00000000")
    with pytest.raises(ValueError, match=r"md-mo-1\.MOLog: line 7\b"):
        parse_run_dir(d)


def test_molog_that_does_not_fit_the_steps_is_refused(run_copy):
    d = run_copy("xtb_cs4pbbr6_20steps")
    text = (d / "md-mo-1.MOLog").read_text()
    first = text.index(" MO| EIGENVALUES", 10)
    (d / "md-mo-1.MOLog").write_text(text[first:])  # one block missing
    with pytest.raises(ValueError, match=r"20 MO blocks do not fit the 21 dated"):
        parse_run_dir(d)


# ----------------------------------------------------------------------------- reader details
def _write_xyz(path: Path, frames: list[tuple[int, np.ndarray]], symbols: list[str], fmt: str) -> None:
    with open(path, "w") as fh:
        for step, xyz in frames:
            fh.write(f"{len(symbols)}\n i = {step}, time = {2.0 * step:.3f}, E = -1.0\n")
            for s, (x, y, z) in zip(symbols, xyz):
                fh.write(f"{s} {fmt % x} {fmt % y} {fmt % z}\n")


@pytest.mark.parametrize("fmt", ["%.6f", "%.10e", "%20.10f"])
def test_reader_equals_ase_for_any_layout_and_keeps_continuations_copy(tmp_path, fmt):
    rng = np.random.default_rng(1)
    symbols = ["Cs", "Pb", "Br", "Br", "Ca"]
    frames = [(s, rng.normal(0, 20, (5, 3))) for s in (0, 1, 2, 3, 2, 3, 4)]  # 2, 3 repeated by a restart
    path = tmp_path / "t.xyz"
    _write_xyz(path, frames, symbols, fmt)
    symbols_read, step, time_fs, values, synthetic = read_xyz_trajectory(path, chunk_bytes=1)
    np.testing.assert_array_equal(values, ase_frames(path))
    np.testing.assert_array_equal(step, [0, 1, 2, 3, 2, 3, 4])
    traj = read_positions(path)
    np.testing.assert_array_equal(traj.step, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(traj.values, ase_frames(path)[[0, 1, 4, 5, 6]])
    assert list(traj.symbols) == symbols and not synthetic


def test_fixed_width_parser_is_bit_exact_on_hard_numbers(tmp_path):
    values = np.array([0.0, -0.0000000001, 9999.9999999999, -1234.5678901234, 0.1, 1e-10, 12.8718641973])
    xyz = np.resize(values, (len(values), 3))
    path = tmp_path / "hard.xyz"
    _write_xyz(path, [(0, xyz), (1, -xyz)], ["Cs"] * len(values), "%20.10f")
    _, _, _, parsed, _ = read_xyz_trajectory(path)
    np.testing.assert_array_equal(parsed, ase_frames(path))
    assert not np.signbit(parsed[0, 0, 0]) or parsed[0, 0, 0] == 0.0


def test_dedupe_keep_last():
    np.testing.assert_array_equal(dedupe_keep_last(np.array([0, 1, 2, 1, 2, 3])), [0, 3, 4, 5])
    np.testing.assert_array_equal(dedupe_keep_last(np.array([5, 6])), [0, 1])


def test_minimal_main_output_of_the_mock_engine(run_copy):
    """The smallest main output the parser accepts (documented in qdphonon.parsers): electron count,
    time step, and per step an SCF verdict and a marker."""
    d = run_copy("xtb_cs4pbbr6_20steps")
    ener = ref_ener(d / "md-1.ener")
    lines = [SYNTHETIC_LABEL, " Number of electrons:   50", " MD_PAR| Time step [fs]   2.000000"]
    for step, time_fs in zip(ener[:, 0].astype(int), ener[:, 1]):
        lines.append("  *** SCF run converged in     5 steps ***")
        lines += [" MD_INI| MD initialization"] if step == 0 else [
            f" MD| Step number {step:>60d}", f" MD| Time [fs] {time_fs:>62.6f}"]  # fmt: skip
    (d / "seg000.out").write_text("\n".join(lines) + "\n")
    result, _ = parse_quiet(d)
    blocks = ref_molog_blocks(d / "md-mo-1.MOLog")
    np.testing.assert_array_equal(result.band_edges.step, ener[:, 0])
    np.testing.assert_array_equal(result.band_edges.time_fs, ener[:, 1])
    np.testing.assert_array_equal(result.band_edges.vbm_eV, [b[25][0] for b in blocks])
    assert result.synthetic and result.cp2k_version is None
