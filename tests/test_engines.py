"""The CP2K engine: segments, resume after a kill or a wall-time stop, input-mismatch refusal,
SCF-failure policy, geometry optimisation. Tests marked ``cp2k`` run Debian's CP2K 2023.1
(GFN1-xTB Cs4PbBr6, ~0.06 s per MD step); in CI a missing cp2k.psmp fails them."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index
from qdphonon.cp2k.xmlspec import bundled_xmlspec, installed_xmlspec
from qdphonon.cp2k.continuation import continuation_tree, with_restart_backup, with_walltime
from qdphonon.cp2k.readback import read_md_input, render_tree
from qdphonon.engines.cp2k import run_cp2k
from qdphonon.engines.errors import CP2KNotFoundError, EXIT_WALLTIME, EngineError, RunDirMismatchError, SCFConvergenceError
from qdphonon.engines.mock import run_mock
from qdphonon.engines.process import cp2k_command_line, cp2k_environment, run_process
from qdphonon.engines.relax import relax, write_labelled_structure
from qdphonon.parsers.energies import read_energies
from qdphonon.parsers.run_dir import RunResult, parse_run_dir
from qdphonon.rundir import STATE_FILE, restart_source, restart_step, run_files
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec

STEPS = 60
SCF_TOLERANCE_eV = 2e-4
"""Band edges of a resumed run equal the uninterrupted ones within this: with EPS_SCF 1e-6 the
eigenvalues are converged to ~1e-5 eV, and a continuation starts its SCF from the saved
wavefunction instead of the ASPC extrapolation, a difference the chaotic MD then carries on
(measured: at most 6e-5 eV over 156 steps after a restart)."""
POSITION_TOLERANCE_A = 1e-3


def md_input(tmp: Path, xyz: Path, *, steps: int = STEPS, max_scf: int = 200, smearing_K: float | None = None,
             xmlspec=None, name: str = "md.inp") -> Path:  # fmt: skip
    """The MD input of a structure, written like ``qdphonon cp2k-input`` (xTB, 2 fs, 10 K)."""
    dot = read_structure(xyz)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb", md=MDSettings(steps=steps),
                              scf=SCFSettings(max_scf=max_scf, smearing_K=smearing_K))  # fmt: skip
    inp = tmp / name
    inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, xmlspec or bundled_xmlspec()))
    return inp


@pytest.fixture(scope="module")
def n1_xyz(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("n1")
    xyz = tmp / "s.xyz"
    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), xyz)
    return xyz


@pytest.fixture
def n1_input(tmp_path, n1_xyz) -> Path:
    return md_input(tmp_path, n1_xyz)


def ener_rows(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    except FileNotFoundError:
        return 0


# --- without CP2K --------------------------------------------------------------------------------

def test_missing_cp2k_is_a_clear_error(tmp_path, n1_xyz, n1_input):
    with pytest.raises(CP2KNotFoundError) as err:
        run_cp2k(n1_input, tmp_path / "run", cp2k_command="no-such-cp2k")
    message = str(err.value)
    assert "engine 'cp2k'" in message and "no-such-cp2k" in message
    assert "apt-get install cp2k openmpi-bin" in message and "conda-forge" in message
    with pytest.raises(CP2KNotFoundError):
        relax(n1_xyz, tmp_path / "relax", tmp_path / "r.xyz", "xtb", cp2k_command="no-such-cp2k")
    res = subprocess.run(["qdphonon", "run-aimd", "--input", str(n1_input), "--run-dir", str(tmp_path / "run"),
                          "--engine", "cp2k", "--structure", str(n1_xyz), "--cp2k-command", "no-such-cp2k"],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 1 and "apt-get install cp2k" in res.stderr


def test_complete_run_is_not_rerun(tmp_path, n1_input):
    run = tmp_path / "run"
    run.mkdir()
    sha = hashlib.sha256(n1_input.read_bytes()).hexdigest()
    record = {"engine": "cp2k", "input_sha256": sha, "total_steps": STEPS}
    (run / "run.json").write_text(json.dumps(record))
    assert run_cp2k(n1_input, run, cp2k_command="no-such-cp2k") == record  # CP2K not even looked for
    (run / "run.json").write_text(json.dumps({**record, "input_sha256": "0" * 64}))
    with pytest.raises(RunDirMismatchError, match="another input"):
        run_cp2k(n1_input, run, cp2k_command="no-such-cp2k")


def test_input_mismatch_is_refused(tmp_path, n1_xyz, n1_input):
    run = tmp_path / "run"
    run.mkdir()
    (run / STATE_FILE).write_text(json.dumps({"engine": "cp2k", "input_sha256": "f" * 64, "segments": []}))
    with pytest.raises(RunDirMismatchError, match="refusing to mix runs"):
        run_cp2k(n1_input, run)
    other = tmp_path / "other"
    other.mkdir()
    (other / "md-1.ener").write_text("# foreign\n")
    with pytest.raises(RunDirMismatchError, match="not a run of this engine"):
        run_cp2k(n1_input, other)
    run_mock(n1_input, tmp_path / "mock", n1_xyz)
    with pytest.raises(RunDirMismatchError, match="complete mock run"):
        run_cp2k(n1_input, tmp_path / "mock")
    with pytest.raises(RunDirMismatchError, match="holds a mock run"):
        run_cp2k(n1_input, tmp_path / "mock", record_path=tmp_path / "elsewhere.json")


def test_continuation_input(tmp_path, n1_input):
    md = read_md_input(n1_input)
    assert (md.steps, md.timestep_fs, md.temperature_K, md.seed, md.level) == (STEPS, 2.0, 10.0, 2022, "xtb")
    assert (md.positions_every, md.velocities_every, md.mo_every, md.project) == (1, 1, 1, "md")
    assert md.center_coordinates and md.mo_index_range is not None and len(md.symbols) == 11
    tree = continuation_tree(md.tree, restart_file="md-1.restart", wfn_file="md-RESTART.wfn", remaining_steps=40)
    tree = with_restart_backup(with_walltime(tree, 3000))
    text = render_tree(tree, bundled_xmlspec())
    for piece in ("&EXT_RESTART", "RESTART_FILE_NAME md-1.restart", "RESTART_COUNTERS .TRUE.", "SCF_GUESS restart",
                  "WFN_RESTART_FILE_NAME md-RESTART.wfn", "STEPS 40", "WALLTIME 00:50:00", "BACKUP_COPIES 1",
                  "&CENTER_COORDINATES .FALSE."):  # fmt: skip
        assert piece.lower() in text.lower(), piece
    again = tmp_path / "seg.inp"
    again.write_text(text)
    assert read_md_input(again).steps == 40 and not read_md_input(again).center_coordinates


def test_restart_files(tmp_path):
    files = run_files("md")
    whole = (" &GLOBAL\n &END GLOBAL\n &MOTION\n   &MD\n     STEP_START_VAL  42\n   &END MD\n &END MOTION\n"
             " &FORCE_EVAL\n &END FORCE_EVAL\n")  # fmt: skip
    (tmp_path / "md-1.restart").write_text(whole[:-30])  # cut short by a kill
    (tmp_path / "md-1.restart.bak-1").write_text(whole.replace("42", "41"))
    assert restart_step(tmp_path / "md-1.restart") is None
    assert restart_step(tmp_path / "md-1.restart.bak-1") == 41
    (tmp_path / "md-RESTART.wfn").write_bytes(b"x" * 10)
    (tmp_path / "md-RESTART.wfn.bak-1").write_bytes(b"x" * 20)
    assert restart_source(tmp_path, files) == ("md-1.restart.bak-1", 41, "md-RESTART.wfn.bak-1")
    (tmp_path / "md-1.restart").write_text(whole + " &EXT_RESTART\n &END EXT_RESTART\n")
    (tmp_path / "md-RESTART.wfn").write_bytes(b"x" * 20)
    assert restart_source(tmp_path, files) == ("md-1.restart", 42, "md-RESTART.wfn")


def test_launch_command_and_environment():
    assert cp2k_command_line("/bin/cp2k", "a.inp", "a.out") == ["/bin/cp2k", "-i", "a.inp", "-o", "a.out"]
    assert cp2k_command_line("/bin/cp2k", "a.inp", "a.out", mpi="mpirun", tasks=1)[0] == "/bin/cp2k"
    cmd = cp2k_command_line("/bin/cp2k", "a.inp", "a.out", mpi="sh", tasks=4)
    assert Path(cmd[0]).name == "sh" and cmd[1:3] == ["-n", "4"] and cmd[3] == "/bin/cp2k"
    with pytest.raises(ValueError, match="MPI launcher"):
        cp2k_command_line("/bin/cp2k", "a.inp", "a.out", tasks=2)
    with pytest.raises(CP2KNotFoundError):
        cp2k_command_line("/bin/cp2k", "a.inp", "a.out", mpi="no-such-mpirun", tasks=2)
    env = cp2k_environment(threads=3, base={"PATH": "/usr/bin"})
    assert env["OMP_NUM_THREADS"] == "3" and env["OPENBLAS_NUM_THREADS"] == "1"
    if os.geteuid() == 0:
        assert env["OMPI_ALLOW_RUN_AS_ROOT"] == "1"


def test_run_process_stops_on_watch(tmp_path):
    result = run_process(["sleep", "30"], tmp_path, os.environ, watch=lambda: "enough", poll_s=0.1)
    assert result.signal == "SIGTERM" and result.exit_status == 128 + 15 and result.stopped_by_us == "enough"
    assert result.wall_s < 10


def test_labelled_structure_round_trip(tmp_path, n1_xyz):
    dot = read_structure(n1_xyz)
    out = tmp_path / "r.xyz"
    write_labelled_structure(dot, out, "cp2k-xtb", {"relax_converged": "T"})
    assert out.read_text().splitlines()[1].endswith(" relaxed=cp2k-xtb relax_converged=T")
    back = read_structure(out)
    assert back.regions == dot.regions and back.layers == dot.layers and np.allclose(back.positions_A, dot.positions_A)


# --- real CP2K ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def relaxed(tmp_path_factory, n1_xyz, cp2k_exe):
    """Cs4PbBr6 relaxed with CP2K GFN1-xTB (1-2 s), its MD input and an uninterrupted reference run."""
    tmp = tmp_path_factory.mktemp("relaxed")
    out = tmp / "relaxed.xyz"
    summary = relax(n1_xyz, tmp / "relax", out, "xtb")
    spec, _ = installed_xmlspec()
    inp = md_input(tmp, out, xmlspec=spec)
    record = run_cp2k(inp, tmp / "reference")
    return {"summary": summary, "xyz": out, "input": inp, "reference": parse_run_dir(tmp / "reference"),
            "record": record, "tmp": tmp}  # fmt: skip


def assert_same_trajectory(run_dir: Path, reference: RunResult) -> RunResult:
    """Every MD step exactly once, band edges and positions as in the uninterrupted run."""
    result = parse_run_dir(run_dir)
    edges, ref = result.band_edges, reference.band_edges
    np.testing.assert_array_equal(edges.step, np.arange(STEPS + 1))
    np.testing.assert_array_equal(ref.step, edges.step)
    assert np.abs(edges.vbm_eV - ref.vbm_eV).max() <= SCF_TOLERANCE_eV
    assert np.abs(edges.cbm_eV - ref.cbm_eV).max() <= SCF_TOLERANCE_eV
    np.testing.assert_array_equal(result.energies.step, np.arange(STEPS + 1))
    np.testing.assert_array_equal(result.positions.step, np.arange(STEPS + 1))
    assert np.abs(result.positions.values - reference.positions.values).max() <= POSITION_TOLERANCE_A
    return result


@pytest.mark.cp2k
def test_relax_and_uninterrupted_run(relaxed):
    summary, xyz = relaxed["summary"], relaxed["xyz"]
    assert summary["converged"] and summary["cp2k_version"] == "2023.1" and summary["max_displacement_A"] > 0.01
    header = xyz.read_text().splitlines()[1]
    assert "relaxed=cp2k-xtb" in header and "relax_converged=T" in header
    assert read_structure(xyz).regions == ["surface"] * 11
    record = relaxed["record"]
    assert record["engine"] == "cp2k" and record["cp2k_version"] == "2023.1" and record["synthetic"] is False
    assert record["total_steps"] == STEPS and record["level"] == "xtb" and record["scf_unconverged_steps"] == []
    assert record["input_sha256"] == hashlib.sha256(relaxed["input"].read_bytes()).hexdigest()
    (seg,) = record["segments"]
    assert (seg["start_step"], seg["end_step"], seg["ended"], seg["exit_status"]) == (0, STEPS, "completed", 0)
    assert "cp2k.psmp -i seg000.inp -o seg000.out" in record["command"] and seg["wall_s"] > 0
    result = relaxed["reference"]
    np.testing.assert_array_equal(result.band_edges.step, np.arange(STEPS + 1))
    assert not result.synthetic and result.energies.temperature_K.max() < 40  # relaxed: no heating burst
    mtime = (relaxed["tmp"] / "reference" / "md-1.ener").stat().st_mtime_ns
    assert run_cp2k(relaxed["input"], relaxed["tmp"] / "reference") == record  # complete: nothing to do
    assert (relaxed["tmp"] / "reference" / "md-1.ener").stat().st_mtime_ns == mtime


def _start_cli(inp: Path, xyz: Path, run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(run), "--engine", "cp2k",
                             "--structure", str(xyz), *extra], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for_steps(run: Path, n: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    t0 = time.monotonic()
    while ener_rows(run / "md-1.ener") < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout_s
        time.sleep(0.02)


def _cp2k_pid(run: Path) -> int:
    return json.loads((run / STATE_FILE).read_text())["segments"][-1]["pid"]


@pytest.mark.cp2k
def test_resume_after_cp2k_is_killed(relaxed, tmp_path):
    """SIGKILL to CP2K's process group part-way; the engine records it and a second call continues."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run)
    _wait_for_steps(run, 20, proc)
    os.killpg(_cp2k_pid(run), signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + 9 and "run again to continue" in err
    record = run_cp2k(relaxed["input"], run)
    (killed, resumed) = record["segments"]
    assert killed["ended"] == "killed" and killed["signal"] == "SIGKILL" and 15 <= killed["end_step"] < STEPS
    assert resumed["start_step"] == killed["end_step"] and resumed["end_step"] == STEPS and resumed["ended"] == "completed"
    assert "&EXT_RESTART" in (run / "seg001.inp").read_text() and record["total_steps"] == STEPS
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
def test_resume_after_the_whole_job_is_killed(relaxed, tmp_path):
    """SIGKILL to the engine and to CP2K (a scheduler killing the job): the next call reconciles and continues."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run)
    _wait_for_steps(run, 25, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    os.killpg(_cp2k_pid(run), signal.SIGKILL)
    proc.communicate(timeout=60)
    assert json.loads((run / STATE_FILE).read_text())["segments"][-1]["ended"] == "running"
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["killed", "completed"]
    assert "engine process gone" in record["segments"][0]["note"]
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
def test_resume_after_sigterm(relaxed, tmp_path):
    """SIGTERM to the engine (what SLURM sends first) is forwarded to CP2K; exit status 143."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run)
    _wait_for_steps(run, 20, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + 15, err
    seg = json.loads((run / STATE_FILE).read_text())["segments"][-1]
    assert seg["ended"] == "killed" and seg["note"] == "received SIGTERM"
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["killed", "completed"]
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
def test_walltime_stop_and_continuation(relaxed, tmp_path):
    """CP2K's WALLTIME from --runtime-min minus the margin: a clean stop, exit status 75, then a continuation."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run, "--runtime-min", "0.04", "--walltime-margin-min", "0")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_WALLTIME, err
    assert "WALLTIME" in (run / "seg000.inp").read_text()
    record = run_cp2k(relaxed["input"], run)
    ended = [s["ended"] for s in record["segments"]]
    assert ended[-1] == "completed" and set(ended[:-1]) == {"walltime"}
    energies = read_energies(run / "md-1.ener")
    np.testing.assert_array_equal(energies.step, np.arange(STEPS + 1))
    np.testing.assert_allclose(energies.potential_eV, relaxed["reference"].energies.potential_eV, atol=1e-3)
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
@pytest.mark.parametrize("policy", ["fail", "drop_step"])
def test_scf_failure_policy(tmp_path, relaxed, policy):
    """MAX_SCF 20 leaves step 0 (MOPAC guess, ~32 iterations) unconverged; CP2K 2023.1 only warns and
    goes on. ``fail`` stops the run without a record; ``drop_step`` completes and records the step."""
    spec, _ = installed_xmlspec()
    inp = md_input(tmp_path, relaxed["xyz"], steps=10, max_scf=20, xmlspec=spec)
    if policy == "fail":
        with pytest.raises(SCFConvergenceError, match="SCF not converged at MD step 0"):
            run_cp2k(inp, tmp_path / "run", on_scf_failure="fail", poll_s=0.2)
        assert not (tmp_path / "run" / "run.json").exists()
    else:
        record = run_cp2k(inp, tmp_path / "run", on_scf_failure="drop_step")
        assert record["scf_unconverged_steps"] == [0] and record["on_scf_failure"] == "drop_step"
        assert record["segments"][0]["ended"] == "completed"


@pytest.mark.cp2k
def test_n2_cube_xtb_input_runs_and_parses(tmp_path, cp2k_exe):
    """The generated xTB input of the n = 2 cube (explicit 300 K smearing) runs a few MD steps in CP2K and
    prints what the parser needs: electron count, occupied orbitals, one MO block per step with the LUMO."""
    dot = build_quantum_dot(QuantumDotSpec(size=(2, 2, 2)))
    xyz = tmp_path / "s2.xyz"
    write_structure(dot, xyz)
    spec, _ = installed_xmlspec()
    inp = md_input(tmp_path, xyz, steps=2, smearing_K=300.0, xmlspec=spec)
    record = run_cp2k(inp, tmp_path / "run", threads=2)
    assert record["total_steps"] == 2 and record["smearing_K"] == 300.0
    out = (tmp_path / "run" / "seg000.out").read_text()
    assert "Number of occupied orbitals:" in out and "Number of electrons:" in out
    result = parse_run_dir(tmp_path / "run")
    edges = result.band_edges
    np.testing.assert_array_equal(edges.step, [0, 1, 2])
    assert edges.homo_index == homo_index(dot.symbols, "xtb") and result.smearing_K == 300.0
    assert np.all(edges.gap_eV > 0) and result.level == "xtb" and result.cp2k_version == "2023.1"


@pytest.mark.cp2k
def test_run_killed_before_its_first_restart_file_starts_afresh(relaxed, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    sha = hashlib.sha256(relaxed["input"].read_bytes()).hexdigest()
    state = {"engine": "cp2k", "input_sha256": sha, "steps": STEPS, "project": "md", "discarded_segments": [],
             "segments": [{"index": 0, "input": "seg000.inp", "output": "seg000.out", "start_step": 0,
                           "ended": "running", "started_epoch": time.time()}]}  # fmt: skip
    (run / STATE_FILE).write_text(json.dumps(state))
    reference_ener = (relaxed["tmp"] / "reference" / "md-1.ener").read_text().splitlines()
    (run / "seg000.out").write_text("killed during its first steps\n")
    (run / "md-1.ener").write_text("\n".join(reference_ener[:7]) + "\n")  # steps 0-5, no restart file
    with pytest.raises(EngineError, match="no readable restart file"):
        run_cp2k(relaxed["input"], run)
    (run / "md-1.ener").write_text("\n".join(reference_ener[:2]) + "\n")  # step 0 only: start afresh
    record = run_cp2k(relaxed["input"], run)
    assert record["discarded_segments"] == 1 and [s["ended"] for s in record["segments"]] == ["completed"]
    assert_same_trajectory(run, relaxed["reference"])
