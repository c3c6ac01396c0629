"""``qdphonon reevaluate``: band edges along an existing trajectory.

Pure parts (stride from the phonon band, frame selection, refusals) without CP2K; the rest with
Debian's CP2K 2023.1, GFN1-xTB Cs4PbBr6 (11 atoms): two 20-step MDs of the same input and seed, one
printing MOs and one not, are made once; the run without MO printing is re-evaluated and compared
step by step with the run that printed them. Both MDs and the single points use EPS_SCF 1e-9 so
that the comparison tolerance (1e-6 eV) is not the SCF's: a single point whose first SCF starts
from another guess than the MD's converges to the same eigenvalues within ~1e-7 eV.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import bundled_xmlspec
from qdphonon.parsers.source_trajectory import SourceTrajectory, parse_type_map, read_ase_trajectory
from qdphonon.reevaluate import (PLANCK_meV_fs, check_same_plan, default_stride_steps, make_plan, nyquist_meV,
                                 plan_to_json, reftraj_tree, select_frames)  # fmt: skip
from archives import extract
from cp2k_slices import held_cp2k, run_in_slices_until

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1"
STEPS = 20
EPS_SCF = 1e-9
TOL_eV = 1e-6
HANG_GUARD_S = 900.0


def _source(steps=np.arange(0, 21), dt=2.0, temp=10.0) -> SourceTrajectory:
    pos = np.zeros((len(steps), 2, 3))
    pos[:, 1, 0] = 2.5
    return SourceTrajectory(path="src.xyz", sha256="0" * 64, origin="test", symbols=("Cs", "Br"), step=np.asarray(steps),
                            positions_A=pos, cell_A=(20.0, 20.0, 20.0), timestep_fs=dt, md_temperature_K=temp,
                            level=None)  # fmt: skip


# --- pure ----------------------------------------------------------------------------------------

def test_default_stride_samples_twice_the_highest_analysed_frequency():
    # 30 meV (the schema's last region edge): period h/E = 137.86 fs, Nyquist interval 68.93 fs
    assert PLANCK_meV_fs == pytest.approx(4135.667696, rel=1e-9)  # CODATA h in meV fs
    for dt, e_max in [(2.0, 30.0), (0.5, 30.0), (1.0, 17.0), (5.0, 100.0), (2.0, 2000.0)]:
        k = default_stride_steps(dt, e_max)
        assert k >= 1
        assert k * dt <= PLANCK_meV_fs / (2 * e_max) or k == 1
        assert (k + 1) * dt > PLANCK_meV_fs / (2 * e_max)
        assert nyquist_meV(k * dt) >= e_max or k == 1
    assert default_stride_steps(2.0) == 34  # schema default (top edge 30 meV)
    with pytest.raises(ValueError, match="positive"):
        default_stride_steps(0.0)


def test_frames_at_first_plus_k_stride_and_missing_steps_refused():
    src = _source(steps=np.arange(0, 41, 2))  # a file holding every 2nd step
    np.testing.assert_array_equal(src.step[select_frames(src, 4)], [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40])
    np.testing.assert_array_equal(src.step[select_frames(src, 6, first_step=2)], [2, 8, 14, 20, 26, 32, 38])
    with pytest.raises(ValueError, match=r"no frame at MD step\(s\) \[3"):
        select_frames(src, 3)
    with pytest.raises(ValueError, match="positive"):
        select_frames(src, 0)


def test_plan_needs_time_step_and_temperature_and_refuses_contradictions():
    with pytest.raises(ValueError, match="--timestep-fs"):
        make_plan(_source(dt=None), level="xtb", stride_steps=1)
    with pytest.raises(ValueError, match="--md-temperature-K"):
        make_plan(_source(temp=None), level="xtb", stride_steps=1)
    with pytest.raises(ValueError, match="records time step 2, but 1 was given"):
        make_plan(_source(), level="xtb", stride_steps=1, timestep_fs=1.0)
    with pytest.raises(ValueError, match="unknown level"):
        make_plan(_source(), level="b3lyp", stride_steps=1)
    plan, index = make_plan(_source(dt=None), level="xtb", timestep_fs=2.0)
    assert plan.stride_steps == 34 and list(index) == [0]  # 21 frames, stride 34: step 0 only
    plan, _ = make_plan(_source(), level="xtb", stride_steps=5)
    assert plan.source_steps == (0, 5, 10, 15, 20) and plan.effective_timestep_fs == 10.0
    other, _ = make_plan(_source(), level="xtb", stride_steps=4)
    with pytest.raises(ValueError, match="another re-evaluation.*stride_steps"):
        check_same_plan(plan_to_json(plan), other, Path("w/reevaluate.json"))


def test_reftraj_input_is_the_level_recipe_with_the_ensemble_switched():
    plan, _ = make_plan(_source(), level="xtb", stride_steps=5)
    tree = reftraj_tree(plan, ["Cs", "Br"], np.array([[0.0, 0, 0], [2.5, 0, 0]]), first_snapshot=3)
    text = render_tree(tree, bundled_xmlspec())
    assert re.search(r"ENSEMBLE\s+REFTRAJ", text) and re.search(r"FIRST_SNAPSHOT\s+3\b", text)
    assert re.search(r"LAST_SNAPSHOT\s+5\b", text) and re.search(r"STEPS\s+5\b", text)
    assert re.search(r"EVAL_ENERGY_FORCES\s+(T|TRUE|\.TRUE\.)", text, re.I)
    assert "THERMOSTAT" not in text and re.search(r"&MO\s+ON", text) and "MO_INDEX_RANGE" in text
    assert re.search(r"TIMESTEP\s+10", text) and re.search(r"CENTER_COORDINATES\s+(F|FALSE|\.FALSE\.)", text, re.I)


def test_type_map():
    assert parse_type_map("1=Cs,2=Pb,3=Br") == {1: "Cs", 2: "Pb", 3: "Br"}
    with pytest.raises(ValueError, match="TYPE=ELEMENT"):
        parse_type_map("Cs=1")


def test_lammps_dump_with_a_type_map(tmp_path):
    dump = tmp_path / "dump.lammpstrj"
    frames = []
    for step in (0, 10):
        frames.append(f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n"
                      "0 20\n0 21\n0 22\nITEM: ATOMS id type x y z\n"
                      f"1 1 1.0 2.0 3.0\n2 2 {4.0 + step / 10} 5.0 6.0\n")  # fmt: skip
    dump.write_text("".join(frames))
    src = read_ase_trajectory(dump, format="lammps-dump-text", type_map={1: "Cs", 2: "Br"}, frame_every_steps=10,
                              timestep_fs=1.0, md_temperature_K=300.0)  # fmt: skip
    assert src.symbols == ("Cs", "Br") and list(src.step) == [0, 10] and src.cell_A == (20.0, 21.0, 22.0)
    np.testing.assert_allclose(src.positions_A[1, 1], [5.0, 5.0, 6.0])


def test_a_file_without_cell_is_refused(tmp_path):
    xyz = tmp_path / "plain.xyz"
    xyz.write_text("2\n\nCs 0 0 0\nBr 2.5 0 0\n")
    with pytest.raises(ValueError, match="no cell.*--cell-A"):
        read_ase_trajectory(xyz, timestep_fs=1.0)
    assert read_ase_trajectory(xyz, cell_A=[20, 20, 20]).cell_A == (20.0, 20.0, 20.0)


def test_cli_refusals_name_the_file_and_the_reason(tmp_path):
    xyz = tmp_path / "plain.xyz"
    xyz.write_text("2\n\nCs 0 0 0\nBr 2.5 0 0\n")
    cases = [
        (["--trajectory", str(xyz), "--timestep-fs", "1", "--md-temperature-K", "300"], f"{xyz}: the file has no cell"),
        (["--trajectory", str(xyz), "--cell-A", "20,20,20", "--md-temperature-K", "300"], "--timestep-fs"),
        (["--run-dir", str(tmp_path / "nowhere")], "no such run directory"),
    ]
    for extra, message in cases:
        res = subprocess.run(_cli(*extra, "--level", "xtb", "--workdir", str(tmp_path / "w"), "--out",
                                  str(tmp_path / "be.csv")), capture_output=True, text=True)  # fmt: skip
        assert res.returncode == 1 and message in res.stderr, res.stderr
    assert not (tmp_path / "be.csv").exists() and not (tmp_path / "w").exists()


# --- real CP2K -----------------------------------------------------------------------------------

def _md_dir(tmp: Path, name: str, mo: bool) -> Path:
    from qdphonon.cp2k.xmlspec import installed_xmlspec
    from qdphonon.engines.cp2k import run_cp2k
    from qdphonon.structures.io import read_structure

    dot = read_structure(DATA / "structures" / "cspbbr3_1x1x1_xtb_relaxed.xyz")
    md = MDSettings(steps=STEPS, temperature_K=10.0, timestep_fs=2.0, seed=2022, thermostat_timecon_fs=100.0,
                    trajectory_every_steps=1, trajectory_format="xyz")  # fmt: skip
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb", md=md,
                           scf=SCFSettings(eps_scf=EPS_SCF, max_scf=400))  # fmt: skip
    if not mo:
        del tree["force_eval"]["dft"]["print"]
    spec, _ = installed_xmlspec()
    inp = tmp / f"{name}.inp"
    inp.write_text(render_tree(tree, spec))
    run_cp2k(inp, tmp / name, poll_s=0.2)
    return tmp / name


@pytest.fixture(scope="module")
def md_runs(tmp_path_factory, cp2k_exe):
    """The same 20-step MD twice: with MO printing (the reference) and without (the source)."""
    from qdphonon.parsers.run_dir import parse_run_dir

    tmp = tmp_path_factory.mktemp("md")
    printed, silent = _md_dir(tmp, "printed", mo=True), _md_dir(tmp, "silent", mo=False)
    assert not list(silent.glob("*.MOLog"))
    assert (printed / "md-pos-1.xyz").read_bytes() == (silent / "md-pos-1.xyz").read_bytes()  # same dynamics
    return {"tmp": tmp, "printed": parse_run_dir(printed), "silent": silent}


def _cli(*args: str) -> list[str]:
    return ["qdphonon", "reevaluate", *args]


def _table(csv: Path):
    df = pd.read_csv(csv)
    meta = json.loads(csv.with_suffix(".json").read_text())
    return df, meta


def _assert_matches_printed(df: pd.DataFrame, printed, steps: np.ndarray) -> None:
    ref = printed.band_edges
    np.testing.assert_array_equal(df["step"].to_numpy(), steps)
    sel = np.searchsorted(ref.step, steps)
    np.testing.assert_array_equal(ref.step[sel], steps)
    np.testing.assert_allclose(df["time_fs"].to_numpy(), ref.time_fs[sel], atol=1e-9)
    assert np.abs(df["vbm_eV"].to_numpy() - ref.vbm_eV[sel]).max() <= TOL_eV
    assert np.abs(df["cbm_eV"].to_numpy() - ref.cbm_eV[sel]).max() <= TOL_eV
    assert df["scf_converged"].all()


@pytest.mark.cp2k
def test_stride_1_equals_the_run_that_printed_its_band_edges(md_runs, tmp_path):
    out = tmp_path / "be.csv"
    res = subprocess.run(_cli("--run-dir", str(md_runs["silent"]), "--level", "xtb", "--stride-steps", "1",
                              "--eps-scf", str(EPS_SCF), "--workdir", str(tmp_path / "w"), "--out", str(out)),
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    df, meta = _table(out)
    assert list(df.columns) == ["step", "time_fs", "vbm_eV", "cbm_eV", "gap_eV", "scf_converged"]
    _assert_matches_printed(df, md_runs["printed"], np.arange(STEPS + 1))
    np.testing.assert_allclose(df["gap_eV"], df["cbm_eV"] - df["vbm_eV"], atol=2e-8)
    r = meta["reevaluation"]
    assert (r["stride_steps"], r["level"], r["source_timestep_fs"], r["effective_timestep_fs"]) == (1, "xtb", 2.0, 2.0)
    assert r["source_path"] == str((md_runs["silent"] / "md-pos-1.xyz").resolve())
    import hashlib
    assert r["source_sha256"] == hashlib.sha256((md_runs["silent"] / "md-pos-1.xyz").read_bytes()).hexdigest()
    assert meta["md_temperature_K"] == 10.0 and meta["timestep_fs"] == 2.0 and meta["level"] == "xtb"
    assert meta["synthetic"] is False and r["dynamics_level"] == "xtb"
    # the single points saw the source's positions (CP2K's own print of each evaluated frame)
    from qdphonon.parsers.xyz import read_positions
    evaluated = read_positions(tmp_path / "w" / "pass000" / "reeval-pos-1.xyz").values
    source = read_positions(md_runs["silent"] / "md-pos-1.xyz").values
    assert np.abs(evaluated - source).max() <= 1e-9
    rerun = subprocess.run(res.args, capture_output=True, text=True)  # complete: nothing to run, same table
    assert rerun.returncode == 0 and pd.read_csv(out).equals(df)
    assert sorted(p.name for p in (tmp_path / "w").glob("pass*") if p.is_dir()) == ["pass000"]


@pytest.mark.cp2k
def test_stride_k_equals_every_kth_step(md_runs, tmp_path):
    from qdphonon.parsers.source_trajectory import read_cp2k_run
    from qdphonon.reevaluate_run import reevaluate

    out = tmp_path / "be.csv"
    reevaluate(read_cp2k_run(md_runs["silent"]), tmp_path / "w", out, level="xtb", stride_steps=3, first_step=1,
               eps_scf=EPS_SCF, poll_s=0.2)  # fmt: skip
    df, meta = _table(out)
    _assert_matches_printed(df, md_runs["printed"], np.arange(1, STEPS + 1, 3))
    assert meta["reevaluation"]["effective_timestep_fs"] == 6.0 and meta["timestep_fs"] == 6.0
    assert np.allclose(np.diff(df["time_fs"]), 6.0)


def _molog_blocks(path: Path) -> int:
    """MD blocks of a MOLog (not the ``AFTER SCF STEP 0`` block of a restart guess)."""
    try:
        return len(re.findall(rb"EIGENVALUES AND OCCUPATION NUMBERS[ \t]*\r?\n", path.read_bytes()))
    except FileNotFoundError:
        return 0


@pytest.mark.cp2k
def test_a_kill_during_the_reevaluation_resumes_without_a_lost_or_repeated_frame(md_runs, tmp_path):
    """CP2K is killed right after the 4th snapshot's MO block, deterministically: it starts stopped and
    runs in slices while the test watches its MOLog between them (tests/cp2k_slices.py)."""
    work, out = tmp_path / "w", tmp_path / "be.csv"
    held = held_cp2k(tmp_path / "bin")
    args = _cli("--run-dir", str(md_runs["silent"]), "--level", "xtb", "--stride-steps", "2", "--eps-scf", str(EPS_SCF),
                "--workdir", str(work), "--out", str(out))  # fmt: skip
    proc = subprocess.Popen([*args, "--cp2k-command", str(held)], start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    molog = work / "pass000" / "reeval-mo-1.MOLog"
    state = work / "pass000" / "segments.json"

    def cp2k_pid() -> int | None:
        try:
            return json.loads(state.read_text())["segments"][-1].get("pid")
        except (FileNotFoundError, json.JSONDecodeError, IndexError, KeyError):
            return None

    t0 = time.monotonic()
    while cp2k_pid() is None:  # the engine records the process group it started
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() - t0 < HANG_GUARD_S, "hang guard"
        time.sleep(0.01)
    pid = cp2k_pid()
    run_in_slices_until(pid, lambda: _molog_blocks(molog) >= 4, proc, HANG_GUARD_S)
    os.killpg(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode != 0 and "run the same command again" in err and not out.exists()
    done = _molog_blocks(molog)
    assert 4 <= done < 11
    res = subprocess.run(args, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert res.returncode == 0, res.stderr
    state = json.loads((work / "reevaluate.json").read_text())
    first, second = state["passes"]
    # the second pass starts after the last snapshot the first one finished (a snapshot whose MO block
    # was written but whose MD step the kill cut short was in flight: evaluated again, counted once)
    from qdphonon.parsers.run_dir import parse_run_dir
    finished = parse_run_dir(work / "pass000", on_scf_failure="keep_flagged").band_edges.step
    np.testing.assert_array_equal(finished, np.arange(1, second["first_snapshot"]))
    assert first["first_snapshot"] == 1 and second["first_snapshot"] in (done, done + 1)
    assert second["initial_wfn"] is not None
    assert _molog_blocks(work / "pass001" / "reeval-mo-1.MOLog") == 11 - second["first_snapshot"] + 1
    df, _ = _table(out)
    _assert_matches_printed(df, md_runs["printed"], np.arange(0, STEPS + 1, 2))


@pytest.mark.cp2k
def test_a_foreign_format_gives_the_same_band_edges(md_runs, tmp_path):
    """Extended XYZ written by ASE from our own run (cell, no step numbers): frame i = step i."""
    import ase.io

    frames = ase.io.read(md_runs["silent"] / "md-pos-1.xyz", index=":", format="xyz")
    for atoms in frames:
        atoms.cell, atoms.pbc = [25.87, 25.87, 25.87], False
    ext = tmp_path / "foreign.extxyz"
    ase.io.write(ext, frames, format="extxyz")
    out = tmp_path / "be.csv"
    res = subprocess.run(_cli("--trajectory", str(ext), "--level", "xtb", "--stride-steps", "4", "--timestep-fs", "2",
                              "--md-temperature-K", "10", "--eps-scf", str(EPS_SCF), "--workdir", str(tmp_path / "w"),
                              "--out", str(out)), capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stderr
    df, meta = _table(out)
    _assert_matches_printed(df, md_runs["printed"], np.arange(0, STEPS + 1, 4))
    assert meta["reevaluation"]["source_origin"].startswith("ase:") and meta["reevaluation"]["dynamics_level"] is None


# --- CP2K MD directories as sources (real CP2K 2023.1 fixtures, no CP2K run) ----------------------

@pytest.fixture(scope="module")
def dcd_runs(tmp_path_factory):
    import tarfile

    tmp = tmp_path_factory.mktemp("dcd")
    with tarfile.open(DATA / "xtb_cs4pbbr6_dcd_restart" / "run.tar.xz") as tar:
        extract(tar, tmp)
    return tmp


def test_a_dcd_run_continued_after_a_kill_reads_every_step_once(dcd_runs):
    """DCD across a kill and a continuation (our reader) against the uninterrupted XYZ run read by ASE."""
    import ase.io

    from qdphonon.parsers.source_trajectory import read_cp2k_run

    src = read_cp2k_run(dcd_runs / "restart")
    ref = ase.io.read(dcd_runs / "reference_xyz" / "md-pos-1.xyz", index=":", format="xyz")
    np.testing.assert_array_equal(src.step, np.arange(21))
    assert src.symbols == tuple(ref[0].get_chemical_symbols())
    assert np.abs(src.positions_A - np.stack([a.positions for a in ref])).max() < 1e-4  # DCD is float32
    box = float(re.search(r"ABC\s+(\S+)", (dcd_runs / "restart" / "seg000.inp").read_text()).group(1))
    assert src.cell_A == (box, box, box) and src.timestep_fs == 2.0 and src.level == "xtb"
    assert src.md_temperature_K == float(re.search(r"^\s*TEMPERATURE\s+(\S+)", (dcd_runs / "restart" / "seg000.inp")
                                                   .read_text(), re.M).group(1))  # fmt: skip


def test_a_strided_dcd_takes_strides_of_its_frame_spacing(dcd_runs):
    from qdphonon.parsers.source_trajectory import read_cp2k_run

    src = read_cp2k_run(dcd_runs / "restart_overlap")
    np.testing.assert_array_equal(src.step, [0, 3, 6, 9, 12, 15, 18])  # step 9 printed twice, kept once
    np.testing.assert_array_equal(src.step[select_frames(src, 6)], [0, 6, 12, 18])
    with pytest.raises(ValueError, match="multiple of the file's frame spacing"):
        select_frames(src, 2)


def test_a_hand_made_cp2k_directory_and_one_without_positions(dcd_runs, tmp_path):
    """Any input and output names (the input found through the output's 'Input file name' line)."""
    import shutil

    from qdphonon.parsers.source_trajectory import read_cp2k_run

    d = tmp_path / "mine"
    d.mkdir()
    for name in ("md-pos-1.xyz", "md-1.ener"):
        shutil.copy(dcd_runs / "reference_xyz" / name, d / name)
    shutil.copy(dcd_runs / "reference_xyz" / "seg000.inp", d / "qd.inp")
    out = (dcd_runs / "reference_xyz" / "seg000.out").read_text()
    (d / "qd.log").write_text(re.sub(r"(Input file name\s+)seg000.inp", r"\1qd.inp", out))
    (d / "other.inp").write_text("&GLOBAL\n&END GLOBAL\n")
    src = read_cp2k_run(d)
    assert src.n_frames == 21 and src.cell_A[0] > 0 and src.timestep_fs == 2.0
    (d / "md-pos-1.xyz").unlink()
    with pytest.raises(ValueError, match="no positions trajectory"):
        read_cp2k_run(d)


@pytest.mark.cp2k
def test_a_campaign_analyses_an_external_run_beside_its_own(md_runs, tmp_path):
    """config ``external:``: a real CP2K xTB run that printed no band edges, beside a mock system."""
    from workflow_helpers import check_ok, snakemake, write_config

    config = {"systems": [{"size": [1, 1, 1]}], "engine": "mock", "level": "xtb",
              "md": {"steps": 400, "replicas": 1, "equilibration_fs": 100},
              "scf": {"eps_scf": EPS_SCF}, "analysis": {"blocks": 2},
              "external": [{"name": "theirs", "run_dir": str(md_runs["silent"]), "level": "xtb", "stride_steps": 2}]}  # fmt: skip
    write_config(tmp_path, config)
    check_ok(snakemake(tmp_path, "--cores", "1", timeout_s=HANG_GUARD_S), "snakemake")
    results = tmp_path / "results"
    df, meta = _table(results / "band_edges" / "theirs" / "external.csv")
    _assert_matches_printed(df, md_runs["printed"], np.arange(0, STEPS + 1, 2))
    assert meta["synthetic"] is False and meta["reevaluation"]["stride_steps"] == 2
    summary = pd.read_csv(results / "summary.csv")
    assert set(summary["system"]) == {"cspbbr3_1x1x1", "theirs"}
    theirs = json.loads((results / "analysis" / "theirs" / "linewidth.json").read_text())
    assert theirs["synthetic"] is False and theirs["md_temperature_K"] == 10.0
    mine = json.loads((results / "analysis" / "cspbbr3_1x1x1" / "linewidth.json").read_text())
    assert mine["synthetic"] is True
    for stem in ("spectral_densities", "size_dependence"):
        assert (results / "figures" / f"{stem}.png").stat().st_size > 0


def test_the_campaign_settings_record_is_accepted_by_the_command():
    """What external.smk passes as --settings-json (every key reevaluate_settings can write) parses,
    keyed by config key."""
    from qdphonon.cli import apply_settings, build_parser
    from qdphonon.external import CAMPAIGN_KEYS, REEVALUATE_KEYS, reevaluate_settings

    entry = {k: 1 for k in REEVALUATE_KEYS} | {"level": "xtb", "type_map": "1=Cs", "format": "extxyz", "cell_A": [10, 10, 10]}
    config = {"scf": {"on_failure": "drop_step", "eps_scf": 1e-6},
              "cp2k": {"command": "cp2k.psmp", "mpi_launcher": "srun", "walltime_margin_min": 10}}  # fmt: skip
    record = reevaluate_settings(entry, config)
    assert set(record) == {f"external[].{k}" for k in REEVALUATE_KEYS} | set(CAMPAIGN_KEYS)
    ns = apply_settings(build_parser(), ["reevaluate", "--run-dir", "d", "--workdir", "w", "--out", "o.csv",
                                         "--settings-json", json.dumps(record)])  # fmt: skip
    assert ns.scf_on_failure == "drop_step" and ns.mpi_launcher == "srun" and ns.eps_scf == 1e-6
    assert (ns.level, ns.type_map, ns.cell_A, ns.stride_steps, ns.walltime_margin_min) == ("xtb", "1=Cs", [10, 10, 10], 1, 10)
    assert "scf.eps_scf" not in reevaluate_settings(entry, {**config, "scf": {"on_failure": "fail", "eps_scf": None}})
