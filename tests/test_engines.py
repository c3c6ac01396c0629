"""The CP2K engine: segments, resume after a kill, a signal or a wall-time stop, input-mismatch refusal,
SCF-failure policies, CP2K's own failures, geometry optimisation. Tests marked ``cp2k`` run Debian's
CP2K 2023.1 (GFN1-xTB Cs4PbBr6, ~0.06 s per MD step); in CI a missing cp2k.psmp fails them.

No test depends on the machine's speed. Where a case needs CP2K to be at a given point when something
happens, the test watches CP2K's files and holds CP2K there (SIGSTOP): the wall-time stop is CP2K's own
WALLTIME expiring while CP2K is held after step 5 (or before its first step); the ``fail`` policy's watch
is given a run far longer than it needs, or none at all (poll interval longer than the run), and is also
fed real CP2K outputs line by line. Waits have hang guards only (minutes, not speed expectations).
Expected values come from CP2K's own files, read here with regular expressions and numpy.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index
from qdphonon.cp2k.xmlspec import bundled_xmlspec, installed_xmlspec
from qdphonon.cp2k.continuation import continuation_tree, with_restart_backup, with_walltime
from qdphonon.cp2k.readback import read_md_input, render_tree
from qdphonon.engines.cp2k import _SCFWatch, run_cp2k
from qdphonon.run.errors import CP2KNotFoundError, EXIT_WALLTIME, EngineError, RunDirMismatchError, SCFConvergenceError
from qdphonon.engines.mock import run_mock
from qdphonon.engines.process import Stop, StopReason, cp2k_command_line, cp2k_environment, run_process
from qdphonon.engines.relax import relax, write_labelled_structure
from qdphonon.parsers.energies import read_energies
from qdphonon.parsers.run_dir import RunResult, parse_run_dir
from qdphonon.engines.file_cuts import restart_source
from qdphonon.parsers.record_bounds import restart_step
from qdphonon.run.layout import STATE_FILE, run_files
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1"
STEPS = 60
SCF_TOLERANCE_eV = 2e-4
"""Band edges of a resumed run equal the uninterrupted ones within this: with EPS_SCF 1e-6 the
eigenvalues are converged to ~1e-5 eV, and a continuation starts its SCF from the saved
wavefunction instead of the ASPC extrapolation, a difference the chaotic MD then carries on
(measured: at most 6e-5 eV over 156 steps after a restart)."""
POSITION_TOLERANCE_A = 1e-3
HANG_GUARD_S = 600.0
"""Longest wait for a CP2K event before a test gives up: a guard against a hung process, not a speed
expectation (the events waited for take well under a second here)."""
KILL_WAIT_S = 30.0
"""SLURM's default KillWait: the time between its SIGTERM and its SIGKILL of a job step."""
NOT_CONVERGED = "SCF run NOT converged"
OUTER_FAILED = "outer SCF loop FAILED to converge"
WALLTIME_WORDS = "exceeded requested execution time"
MISSING_KIND = {"force_eval": {"subsys": {"kind": [
    {"_": "Br", "element": "Br", "basis_set": "SZV-MOLOPT-SR-GTH", "potential": "GTH-PBE-q7"}]}}}  # fmt: skip
"""PBE overrides whose KIND list names Br only: CP2K 2023.1 aborts at start-up for Cs."""
MISSING_KIND_ABORT = "No &KIND section was possible to associate to the atomic kind <CS>"


def md_input(tmp: Path, xyz: Path, *, steps: int = STEPS, max_scf: int = 200, smearing_K: float | None = None,
             xmlspec=None, name: str = "md.inp", level: str = "xtb", overrides=None) -> Path:  # fmt: skip
    """The MD input of a structure, written like ``qdphonon cp2k-input`` (2 fs, 10 K)."""
    dot = read_structure(xyz)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level=level, md=MDSettings(steps=steps, trajectory_every_steps=1, trajectory_format="xyz"),
                           scf=SCFSettings(max_scf=max_scf, smearing_K=smearing_K), overrides=overrides)  # fmt: skip
    inp = tmp / name
    inp.write_text(f"! qdphonon MD input, level {level}\n" + render_tree(tree, xmlspec or bundled_xmlspec()))
    return inp


def fixture_text(name: str, member: str) -> str:
    """One file of a real CP2K 2023.1 fixture (tests/data/README.md)."""
    with tarfile.open(DATA / name / "run.tar.xz") as tar:
        return tar.extractfile(member).read().decode()


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


def ener_steps(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#", ndmin=2)[:, 0].astype(int)


def restart_file_step(path: Path) -> int:
    """STEP_START_VAL of CP2K's last whole restart file, by a plain regular expression: ``path`` when it ends
    with an ``&END`` line after its ``&END FORCE_EVAL``, else its backup ``.bak-1`` (a kill can land while
    CP2K rewrites it, also just after an inner section's ``&END``)."""
    text = path.read_text()
    whole = re.search(r"^\s*&END\s+FORCE_EVAL\s*$", text, re.MULTILINE | re.IGNORECASE) is not None
    if not whole or not text.rstrip().splitlines()[-1].strip().upper().startswith("&END"):
        text = path.with_name(path.name + ".bak-1").read_text()
    return int(re.search(r"^\s*STEP_START_VAL\s+(\d+)\s*$", text, re.MULTILINE).group(1))


def evaluations(out_text: str) -> list[tuple[str, str]]:
    """(marker, the SCF text before it) per MD_INI / 'MD| Step number' marker of a CP2K main output."""
    parts = re.split(r"^( MD_INI\| MD initialization| MD\| Step number\s+\d+)\s*$", out_text, flags=re.MULTILINE)
    return [(parts[i], parts[i - 1]) for i in range(1, len(parts), 2)]


def unconverged_steps(out_text: str, first_step: int = 0) -> list[int]:
    """MD steps whose SCF CP2K itself called not converged (its warning or a failed outer loop)."""
    steps = []
    for marker, scf in evaluations(out_text):
        step = int(marker.split()[-1]) if "Step number" in marker else first_step
        if NOT_CONVERGED in scf or OUTER_FAILED in scf:
            steps.append(step)
    return steps


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
    """The watch's reason stops the child with SIGTERM (a ``sleep 600`` that ran out would exit 0)."""
    calls = []

    def watch():
        calls.append(1)
        return Stop(StopReason.WATCH, "enough") if len(calls) >= 2 else None

    result = run_process(["sleep", "600"], tmp_path, os.environ, watch=watch, poll_s=0.05)
    assert result.signal == "SIGTERM" and result.signal_number == signal.SIGTERM and result.exit_status == 128 + 15
    assert result.stop == Stop(StopReason.WATCH, "enough") and result.received_signal is None
    assert len(calls) == 2  # polled until the watch said stop, then not again


def test_labelled_structure_round_trip(tmp_path, n1_xyz):
    dot = read_structure(n1_xyz)
    out = tmp_path / "r.xyz"
    write_labelled_structure(dot, out, "cp2k-xtb", {"relax_converged": "T"})
    assert out.read_text().splitlines()[1].endswith(" relaxed=cp2k-xtb relax_converged=T")
    back = read_structure(out)
    assert back.regions == dot.regions and back.layers == dot.layers and np.allclose(back.positions_A, dot.positions_A)


# --- the SCF watch on real CP2K outputs, written line by line -------------------------------------

def _first_report(text: str, tmp_path: Path, start_step: int = 0) -> tuple[int | None, str | None]:
    """Write a real main output line by line, calling the ``fail`` policy's watch after every line;
    (index of the line after which it first reported, its message) or (None, None)."""
    out = tmp_path / "seg000.out"
    watch = _SCFWatch(out, start_step)
    with open(out, "w") as fh:
        for i, line in enumerate(text.splitlines(True)):
            fh.write(line)
            fh.flush()
            stop = watch()
            if stop is not None:
                assert stop.reason is StopReason.SCF_NOT_CONVERGED
                return i, stop.note
    return None, None


def _expected_report(text: str, start_step: int = 0) -> tuple[int | None, int | None]:
    """(line index, MD step) of the first MD_INI / step line after an SCF that CP2K called not converged
    and that its WALLTIME did not cut short; (None, None) when there is none."""
    bad = stopped = False
    for i, line in enumerate(text.splitlines()):
        if "SCF WAVEFUNCTION OPTIMIZATION" in line:
            bad = stopped = False
        elif NOT_CONVERGED in line or OUTER_FAILED in line:
            bad = True
        elif "SCF run converged" in line or "outer SCF loop converged" in line:
            bad = False
        elif "SCF run terminated - " + WALLTIME_WORDS in line:
            stopped = True  # cut by the WALLTIME (CP2K still warns 'NOT converged'): not a failure
        elif line.startswith(" MD_INI| MD initialization") or line.startswith(" MD| Step number"):
            if bad and not stopped:
                return i, start_step if "MD_INI" in line else int(line.split()[-1])
            bad = stopped = False
    return None, None


@pytest.mark.parametrize("fixture, segment", [
    ("xtb_cs4pbbr6_scf_unconverged", "seg000.out"),  # inner SCF not converged (MAX_SCF 14)
    ("pbe_cs4pbbr6_outer_scf", "seg000.out"),  # OT outer loop failed; later an inner failure the outer loop rescues
    ("xtb_cs4pbbr6_walltime", "seg000.out"),  # an SCF cut by the WALLTIME: not a failure
    ("xtb_cs4pbbr6_walltime", "seg001.out"),
    ("xtb_cs4pbbr6_20steps", "seg000.out"),  # all converged
])  # fmt: skip
def test_scf_watch_reports_the_first_unconverged_step_as_cp2k_writes_it(tmp_path, fixture, segment):
    text = fixture_text(fixture, segment)
    line, step = _expected_report(text)
    assert (line is None) == (fixture in ("xtb_cs4pbbr6_walltime", "xtb_cs4pbbr6_20steps"))
    got_line, message = _first_report(text, tmp_path)
    assert got_line == line
    if line is not None:
        assert message == f"SCF not converged at MD step {step} (policy fail)"


def test_scf_watch_sees_a_failed_outer_loop_without_cp2k_s_warning(tmp_path):
    """The outer-SCF path alone: the real PBE output with CP2K's 'SCF run NOT converged' warnings taken out
    (as if a CP2K version printed only the outer loop's verdict) is reported at the same line."""
    text = fixture_text("pbe_cs4pbbr6_outer_scf", "seg000.out")
    assert OUTER_FAILED in text and "Leaving inner SCF loop" in text
    lines = text.splitlines(True)
    kept = "".join(ln for ln in lines if NOT_CONVERGED not in ln)
    assert kept.count(OUTER_FAILED) == text.count(OUTER_FAILED) and NOT_CONVERGED not in kept
    line, step = _expected_report(kept)
    assert line is not None and step == 0
    assert _first_report(kept, tmp_path) == (line, "SCF not converged at MD step 0 (policy fail)")


def test_scf_watch_ignores_an_inner_loop_the_outer_loop_rescues(tmp_path):
    """Only the evaluations of the PBE fixture whose inner loop stopped unconverged but whose outer loop
    converged (CP2K prints no warning for them): the watch never reports."""
    text = fixture_text("pbe_cs4pbbr6_outer_scf", "seg000.out")
    head, *scfs = text.split(" SCF WAVEFUNCTION OPTIMIZATION")
    rescued = [s for s in scfs if "Leaving inner SCF loop" in s and "outer SCF loop converged" in s
               and NOT_CONVERGED not in s and OUTER_FAILED not in s]  # fmt: skip
    assert rescued, "the fixture should hold an evaluation rescued by the outer loop"
    step_lines = re.findall(r"^ MD\| Step number\s+\d+\s*$", text, re.MULTILINE)
    body = "".join(" SCF WAVEFUNCTION OPTIMIZATION" + s.split(" MD| Step number")[0].split(" MD_INI|")[0]
                   + f"{step_lines[0]}\n" for s in rescued)  # fmt: skip
    assert _first_report(head + body, tmp_path) == (None, None)


# --- real CP2K ---------------------------------------------------------------------------------------

class Processes:
    """CP2K process groups and engine processes a test started; killed at teardown whatever happened,
    so no CP2K outlives its test."""

    def __init__(self):
        self.groups: list[int] = []
        self.procs: list[subprocess.Popen] = []

    def cleanup(self):
        for pid in self.groups:
            try:  # only a CP2K still running under that id (not a process that got the id since)
                if b"cp2k" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
            except OSError:
                continue
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()


@pytest.fixture
def processes():
    p = Processes()
    yield p
    p.cleanup()


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
            "record": record, "tmp": tmp, "spec": spec, "ideal": n1_xyz}  # fmt: skip


def assert_same_trajectory(run_dir: Path, reference: RunResult) -> RunResult:
    """Every MD step exactly once, band edges and positions as in the uninterrupted run."""
    result = parse_run_dir(run_dir)
    edges, ref = result.band_edges, reference.band_edges
    np.testing.assert_array_equal(edges.step, np.arange(STEPS + 1))
    np.testing.assert_array_equal(ref.step, edges.step)
    assert np.abs(edges.vbm_eV - ref.vbm_eV).max() <= SCF_TOLERANCE_eV
    assert np.abs(edges.cbm_eV - ref.cbm_eV).max() <= SCF_TOLERANCE_eV
    np.testing.assert_array_equal(ener_steps(run_dir / "md-1.ener"), np.arange(STEPS + 1))
    np.testing.assert_array_equal(result.energies.step, np.arange(STEPS + 1))
    np.testing.assert_array_equal(result.positions.step, np.arange(STEPS + 1))
    assert np.abs(result.positions.values - reference.positions.values).max() <= POSITION_TOLERANCE_A
    return result


def recentred_last_frame(traj: Path, box_A: float) -> np.ndarray:
    """Last frame of a CP2K XYZ trajectory (read with ase), its bounding-box centre moved to the box centre."""
    import ase.io

    pos = ase.io.read(traj, index=-1, format="xyz").positions
    return pos + 0.5 * box_A - 0.5 * (pos.min(axis=0) + pos.max(axis=0))


@pytest.mark.cp2k
def test_a_finished_relaxation_is_not_run_again(relaxed, tmp_path):
    """Called again with the same input (Snakemake after a params change, --forcerun), the relaxation writes
    its outputs anew from its files: no new segment, CP2K's files untouched, the same geometry and summary."""
    relax_dir = relaxed["tmp"] / "relax"
    state_before = json.loads((relax_dir / "relax-state.json").read_text())
    out_mtime = (relax_dir / "relax.out").stat().st_mtime_ns
    again = relax(relaxed["ideal"], relax_dir, tmp_path / "again.xyz", "xtb")
    state_after = json.loads((relax_dir / "relax-state.json").read_text())
    assert state_after["segments"] == state_before["segments"] and (relax_dir / "relax.out").stat().st_mtime_ns == out_mtime
    assert {k: again[k] for k in ("converged", "final_energy_Ha", "iterations", "segments")} == \
        {k: relaxed["summary"][k] for k in ("converged", "final_energy_Ha", "iterations", "segments")}
    np.testing.assert_array_equal(read_structure(tmp_path / "again.xyz").positions_A,
                                  read_structure(relaxed["xyz"]).positions_A)  # fmt: skip


@pytest.mark.cp2k
def test_relax_and_uninterrupted_run(relaxed):
    summary, xyz = relaxed["summary"], relaxed["xyz"]
    relax_dir = relaxed["tmp"] / "relax"
    relax_out = (relax_dir / "relax.out").read_text()
    assert "GEOMETRY OPTIMIZATION COMPLETED" in relax_out and summary["converged"] is True
    assert summary["cp2k_version"] == re.search(r"CP2K version (\S+)", relax_out).group(1) == "2023.1"
    last_comment = (relax_dir / "relax-pos-1.xyz").read_text().splitlines()[-12]
    assert summary["final_energy_Ha"] == float(re.search(r"E =\s*(\S+)", last_comment).group(1))
    ideal, done = read_structure(relaxed["ideal"]), read_structure(xyz)
    np.testing.assert_allclose(done.positions_A, recentred_last_frame(relax_dir / "relax-pos-1.xyz", ideal.box_A),
                               atol=1e-8)  # fmt: skip
    assert summary["max_displacement_A"] == pytest.approx(np.abs(done.positions_A - ideal.positions_A).max())
    header = xyz.read_text().splitlines()[1]
    assert "relaxed=cp2k-xtb" in header and "relax_converged=T" in header
    assert done.regions == ideal.regions == ["surface"] * 11
    record = relaxed["record"]
    assert record["engine"] == "cp2k" and record["cp2k_version"] == "2023.1" and record["synthetic"] is False
    assert record["total_steps"] == STEPS and record["level"] == "xtb" and record["scf_unconverged_steps"] == []
    assert record["input_sha256"] == hashlib.sha256(relaxed["input"].read_bytes()).hexdigest()
    (seg,) = record["segments"]
    ref_dir = relaxed["tmp"] / "reference"
    assert (seg["start_step"], seg["end_step"], seg["ended"], seg["exit_status"]) == (0, STEPS, "completed", 0)
    assert restart_file_step(ref_dir / "md-1.restart") == STEPS and ener_steps(ref_dir / "md-1.ener")[-1] == STEPS
    assert "PROGRAM ENDED AT" in (ref_dir / "seg000.out").read_text()
    assert re.search(r"^\s*BACKUP_COPIES\s+1\s*$", (ref_dir / "seg000.inp").read_text(), re.MULTILINE)
    assert (ref_dir / "md-1.restart.bak-1").is_file()  # what BACKUP_COPIES 1 makes CP2K write
    assert "cp2k.psmp -i seg000.inp -o seg000.out" in record["command"] and seg["wall_s"] > 0
    result = relaxed["reference"]
    np.testing.assert_array_equal(result.band_edges.step, np.arange(STEPS + 1))
    assert not result.synthetic and result.energies.temperature_K.max() < 40  # relaxed: no heating burst
    mtime = (ref_dir / "md-1.ener").stat().st_mtime_ns
    assert run_cp2k(relaxed["input"], ref_dir) == record  # complete: nothing to do
    assert (ref_dir / "md-1.ener").stat().st_mtime_ns == mtime


def _start_cli(inp: Path, xyz: Path, run: Path, processes: Processes, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(["qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(run), "--engine", "cp2k",
                             "--structure", str(xyz), *extra], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    processes.procs.append(proc)
    return proc


def _wait_for(condition, proc: subprocess.Popen | None, what: str) -> None:
    """Poll until ``condition()``; fail when the engine exits first (or after the hang guard)."""
    t0 = time.monotonic()
    while not condition():
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the engine exited ({proc.returncode}) before {what}: {err[-3000:]}")
        if time.monotonic() - t0 > HANG_GUARD_S:
            pytest.fail(f"hang guard: no {what} after {HANG_GUARD_S:.0f} s")
        time.sleep(0.005)


def _finish(proc: subprocess.Popen) -> str:
    try:
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang guard: the engine did not exit within {HANG_GUARD_S:.0f} s")
    return err


def _state(run: Path) -> dict:
    return json.loads((run / STATE_FILE).read_text())


def _cp2k_pid(run: Path, processes: Processes, proc: subprocess.Popen) -> int:
    """CP2K's process id (= its process group) once the engine has recorded it."""

    def recorded() -> bool:
        try:
            return "pid" in _state(run)["segments"][-1]
        except (FileNotFoundError, IndexError, json.JSONDecodeError):
            return False

    _wait_for(recorded, proc, "CP2K's pid in segments.json")
    pid = _state(run)["segments"][-1]["pid"]
    processes.groups.append(pid)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _walltime_s(inp: Path) -> float:
    """CP2K's GLOBAL/WALLTIME of an input (HH:MM:SS or seconds), read with a regular expression."""
    value = re.search(r"^\s*WALLTIME\s+(\S+)\s*$", inp.read_text(), re.MULTILINE).group(1)
    parts = [float(x) for x in value.split(":")]
    return sum(p * 60.0**i for i, p in enumerate(reversed(parts)))


def _cp2k_started_epoch(out: Path) -> float:
    """CP2K's own start time (its ``PROGRAM STARTED AT`` line, local time), from which WALLTIME counts."""
    stamp = re.search(r"PROGRAM STARTED AT\s+(\S+ \S+)", out.read_text()).group(1)
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def _hold_past_walltime(run: Path, pid: int) -> None:
    """Stop CP2K's process group (SIGSTOP) until its WALLTIME has certainly passed, then continue it
    (SIGCONT): CP2K finds the time exceeded at its next check, as on a machine that is slow just then."""
    os.killpg(pid, signal.SIGSTOP)
    seg = _state(run)["segments"][-1]
    walltime = _walltime_s(run / seg["input"])
    deadline = max(_cp2k_started_epoch(run / seg["output"]), seg["started_epoch"]) + walltime + 2.0
    time.sleep(max(0.0, deadline - time.time()))
    os.killpg(pid, signal.SIGCONT)


@pytest.mark.cp2k
def test_resume_after_cp2k_is_killed(relaxed, tmp_path, processes):
    """SIGKILL to CP2K's process group part-way; the engine records it and a second call continues."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run, processes)
    pid = _cp2k_pid(run, processes, proc)
    _wait_for(lambda: ener_rows(run / "md-1.ener") >= 21, proc, "MD step 20")
    os.killpg(pid, signal.SIGKILL)
    err = _finish(proc)
    assert proc.returncode == 128 + 9 and "run again to continue" in err
    killed_at = restart_file_step(run / "md-1.restart")
    assert 19 <= killed_at < STEPS and "PROGRAM ENDED AT" not in (run / "seg000.out").read_text()
    record = run_cp2k(relaxed["input"], run)
    (killed, resumed) = record["segments"]
    assert killed["ended"] == "killed" and killed["signal"] == "SIGKILL" and killed["end_step"] == killed_at
    assert resumed["start_step"] == killed_at and resumed["end_step"] == STEPS and resumed["ended"] == "completed"
    assert "&EXT_RESTART" in (run / "seg001.inp").read_text() and record["total_steps"] == STEPS
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
def test_resume_after_the_whole_job_is_killed(relaxed, tmp_path, processes):
    """SIGKILL to the engine and to CP2K (a scheduler killing the job): the next call reconciles and continues."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run, processes)
    pid = _cp2k_pid(run, processes, proc)
    _wait_for(lambda: ener_rows(run / "md-1.ener") >= 26, proc, "MD step 25")
    os.killpg(proc.pid, signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)
    _finish(proc)
    assert _state(run)["segments"][-1]["ended"] == "running"
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["killed", "completed"]
    assert "engine process gone" in record["segments"][0]["note"]
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_to_the_engine_is_forwarded_to_cp2k_and_the_run_resumes(relaxed, tmp_path, processes, sig):
    """SIGTERM (what SLURM sends first), SIGINT (Ctrl-C) and SIGHUP (a closed terminal) to the engine reach
    CP2K as SIGTERM; the engine exits with 128 + the signal it received and the run continues afterwards."""
    run = tmp_path / "run"
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run, processes)
    pid = _cp2k_pid(run, processes, proc)
    _wait_for(lambda: ener_rows(run / "md-1.ener") >= 21, proc, "MD step 20")
    proc.send_signal(sig)
    err = _finish(proc)
    assert proc.returncode == 128 + sig, err
    assert not _alive(pid) and "PROGRAM ENDED AT" not in (run / "seg000.out").read_text()
    seg = _state(run)["segments"][-1]
    assert seg["ended"] == "killed" and seg["note"] == f"received {sig.name}" and seg["signal"] == "SIGTERM"
    assert seg["end_step"] == restart_file_step(run / "md-1.restart") < STEPS
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["killed", "completed"]
    assert_same_trajectory(run, relaxed["reference"])


@pytest.mark.cp2k
def test_cp2k_that_ignores_sigterm_is_killed(relaxed, tmp_path, processes, cp2k_exe):
    """Real CP2K started through a wrapper that ignores SIGTERM (inherited across exec): after SIGTERM
    to the engine, the engine must escalate to SIGKILL and exit with 143 within SLURM's default KillWait
    (30 s; after it SLURM kills the engine itself, which then records nothing)."""
    stub = tmp_path / "cp2k-ignoring-sigterm"
    stub.write_text(f"#!/bin/sh\ntrap '' TERM\nexec {cp2k_exe} \"$@\"\n")
    stub.chmod(0o755)
    inp = md_input(tmp_path, relaxed["xyz"], steps=20000, xmlspec=relaxed["spec"])  # ~20 min: never ends by itself here
    run = tmp_path / "run"
    proc = _start_cli(inp, relaxed["xyz"], run, processes, "--cp2k-command", str(stub))
    pid = _cp2k_pid(run, processes, proc)
    _wait_for(lambda: ener_rows(run / "md-1.ener") >= 4, proc, "MD step 3")
    proc.send_signal(signal.SIGTERM)
    time.sleep(2.0)
    assert _alive(pid), "the wrapper should make CP2K ignore SIGTERM"
    try:
        proc.communicate(timeout=KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the engine did not escalate to SIGKILL within {KILL_WAIT_S:.0f} s of forwarding SIGTERM")
    assert proc.returncode == 128 + 15 and not _alive(pid)
    seg = _state(run)["segments"][-1]
    assert seg["signal"] == "SIGKILL" and seg["note"] == "received SIGTERM" and seg["ended"] == "killed"
    assert "PROGRAM ENDED AT" not in (run / "seg000.out").read_text()


@pytest.mark.cp2k
def test_walltime_stop_and_continuation(relaxed, tmp_path, processes):
    """CP2K's WALLTIME from --runtime-min minus the margin: a clean stop, exit status 75, then a continuation.
    WALLTIME 30 s less the engine's own start (5 MD steps of this dot take CP2K about 1 s; the 30 s
    leave room for a heavily loaded machine); CP2K is held (SIGSTOP) once step 5 is written until its
    WALLTIME is past, so it stops after at least 5 steps and before 60. The WALLTIME is checked
    against the time the engine had used, not against a range of seconds."""
    run = tmp_path / "run"
    t_called = time.time()
    proc = _start_cli(relaxed["input"], relaxed["xyz"], run, processes, "--runtime-min", "0.5",
                      "--walltime-margin-min", "0")  # fmt: skip
    pid = _cp2k_pid(run, processes, proc)
    _wait_for(lambda: ener_rows(run / "md-1.ener") >= 6, proc, "MD step 5")
    _hold_past_walltime(run, pid)
    err = _finish(proc)
    assert proc.returncode == EXIT_WALLTIME, err
    seg0 = _state(run)["segments"][0]
    walltime = _walltime_s(run / "seg000.inp")
    assert walltime == pytest.approx(seg0["walltime_s"], abs=1.0) and seg0["allocation_end_epoch"] is None
    assert 30 - (seg0["started_epoch"] - t_called) - 1 <= walltime <= 30  # 0.5 min less the engine's start
    out0 = (run / "seg000.out").read_text()
    assert f"MD run terminated - {WALLTIME_WORDS}" in out0 and "PROGRAM ENDED AT" in out0
    stopped_at = restart_file_step(run / "md-1.restart")
    assert 5 <= stopped_at < STEPS and ener_steps(run / "md-1.ener")[-1] == stopped_at
    seg0 = _state(run)["segments"][0]
    assert (seg0["ended"], seg0["exit_status"], seg0["end_step"]) == ("walltime", 0, stopped_at)
    assert "WALLTIME" in err and "run again" in err
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["walltime", "completed"]
    assert record["segments"][1]["start_step"] == stopped_at
    assert "WALLTIME" not in (run / "seg001.inp").read_text()  # no runtime given: no WALLTIME
    energies = read_energies(run / "md-1.ener")
    np.testing.assert_array_equal(energies.step, np.arange(STEPS + 1))
    np.testing.assert_allclose(energies.potential_eV, relaxed["reference"].energies.potential_eV, atol=1e-3)
    assert_same_trajectory(run, relaxed["reference"])


@pytest.fixture(scope="module")
def n2_structure() -> Path:
    """The GFN1-xTB-relaxed Cs20Pb8Br36 of the fixtures: its first MD step takes CP2K ~20 s here."""
    return DATA / "structures" / "cspbbr3_2x2x2_xtb_relaxed.xyz"


@pytest.mark.cp2k
def test_walltime_before_the_first_step_is_an_error(tmp_path, processes, cp2k_exe, n2_structure):
    """--runtime-min 10.25 with the 10 min margin leaves CP2K a WALLTIME of at most 15 s (less the engine's own
    start, which takes several seconds on a loaded machine); CP2K is held from its start
    until that has passed, so it stops before any MD step: not a continuable stop but an error that says
    to give the job more time. (CHECK_ATOMIC_CHARGES off: an SCF stopped after its first iteration leaves
    xTB's atomic charges out of range, and CP2K 2023.1 would ABORT instead of stopping cleanly.)"""
    spec, _ = installed_xmlspec()
    inp = md_input(tmp_path, n2_structure, steps=3, smearing_K=300.0, xmlspec=spec,
                   overrides={"force_eval": {"dft": {"qs": {"xtb": {"check_atomic_charges": False}}}}})  # fmt: skip
    run = tmp_path / "run"
    t_called = time.time()
    proc = _start_cli(inp, n2_structure, run, processes, "--runtime-min", "10.25", "--walltime-margin-min", "10")
    pid = _cp2k_pid(run, processes, proc)
    _wait_for(lambda: "PROGRAM STARTED AT" in ((run / "seg000.out").read_text() if (run / "seg000.out").is_file()
                                               else ""), proc, "CP2K's start")  # fmt: skip
    _hold_past_walltime(run, pid)
    err = _finish(proc)
    assert proc.returncode == 1, err
    assert "before it finished an MD step" in err and "more time" in err
    started = _state(run)["segments"][0]["started_epoch"]
    assert 15 - (started - t_called) - 1 <= _walltime_s(run / "seg000.inp") <= 15  # 10.25 - 10 min - the engine's start
    out = (run / "seg000.out").read_text()
    assert WALLTIME_WORDS in out and "MD| Step number" not in out
    seg = _state(run)["segments"][0]
    assert seg["ended"] == "walltime" and seg["end_step"] in (None, 0)
    assert not (run / "run.json").exists()


@pytest.mark.cp2k
def test_runtime_shorter_than_the_margin_is_refused_before_cp2k_starts(tmp_path, relaxed):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=r"runtime 5(\.0)? min minus the margin 10(\.0)? min leaves no time"):
        run_cp2k(relaxed["input"], run, runtime_min=5, walltime_margin_min=10)
    assert not list(run.glob("seg[0-9]*")) and not (run / "md-1.ener").exists()
    res = subprocess.run(["qdphonon", "run-aimd", "--input", str(relaxed["input"]), "--run-dir", str(run),
                          "--engine", "cp2k", "--structure", str(relaxed["xyz"]), "--runtime-min", "10",
                          "--walltime-margin-min", "10"], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 1 and "leaves no time for CP2K" in res.stderr
    assert not list(run.glob("seg[0-9]*"))


@pytest.mark.cp2k
def test_fail_policy_stops_cp2k_at_the_first_unconverged_step(tmp_path, relaxed):
    """MAX_SCF 20 leaves step 0 (MOPAC guess, ~32 iterations) unconverged; CP2K 2023.1 only warns and goes on.
    The run asks for 2000 steps (~2 min), so CP2K is still running when the watch (every 0.2 s) sees step 0:
    the engine stops CP2K there and writes no record."""
    inp = md_input(tmp_path, relaxed["xyz"], steps=2000, max_scf=20, xmlspec=relaxed["spec"])
    run = tmp_path / "run"
    with pytest.raises(SCFConvergenceError) as err:
        run_cp2k(inp, run, on_scf_failure="fail", poll_s=0.2)
    out = (run / "seg000.out").read_text()
    first_bad = unconverged_steps(out)[0]
    assert str(err.value).startswith(f"SCF not converged at MD step {first_bad} (policy fail)")
    assert "PROGRAM ENDED AT" not in out and ener_steps(run / "md-1.ener")[-1] < 2000
    seg = _state(run)["segments"][0]
    assert seg["ended"] == "failed" and seg["note"] == f"SCF not converged at MD step {first_bad} (policy fail)"
    assert seg["signal"] == "SIGTERM" and not (run / "run.json").exists()


@pytest.mark.cp2k
def test_fail_policy_after_cp2k_finished(tmp_path, relaxed):
    """The watch never runs (its first poll would come after an hour, CP2K needs a second): the check after
    the run refuses the completed run, naming every unconverged step."""
    inp = md_input(tmp_path, relaxed["xyz"], steps=12, max_scf=14, xmlspec=relaxed["spec"])
    run = tmp_path / "run"
    with pytest.raises(SCFConvergenceError) as err:
        run_cp2k(inp, run, on_scf_failure="fail", poll_s=3600)
    bad = unconverged_steps((run / "seg000.out").read_text())
    assert 0 < len(bad) < 13
    assert f"SCF not converged at MD step(s) {bad} (policy fail)" in str(err.value)
    assert _state(run)["segments"][0]["ended"] == "completed" and not (run / "run.json").exists()


@pytest.mark.cp2k
@pytest.mark.parametrize("policy", ["drop_step", "keep_flagged"])
def test_drop_step_and_keep_flagged_complete_and_record_the_unconverged_steps(tmp_path, relaxed, policy):
    """MAX_SCF 14 over 12 steps: some SCFs converge, some do not (CP2K warns and goes on). Both policies
    complete and record the steps CP2K called unconverged; the parser applies the policy."""
    inp = md_input(tmp_path, relaxed["xyz"], steps=12, max_scf=14, xmlspec=relaxed["spec"])
    run = tmp_path / "run"
    record = run_cp2k(inp, run, on_scf_failure=policy)
    out = (run / "seg000.out").read_text()
    bad = unconverged_steps(out)
    assert 0 < len(bad) < 13, "the input should mix converged and unconverged steps"
    assert record["scf_unconverged_steps"] == bad and record["on_scf_failure"] == policy
    assert record["segments"][0]["ended"] == "completed"
    assert json.loads((run / "run.json").read_text())["scf_unconverged_steps"] == bad
    result = parse_run_dir(run, on_scf_failure=policy)
    edges = result.band_edges
    if policy == "keep_flagged":
        np.testing.assert_array_equal(edges.step, np.arange(13))
        np.testing.assert_array_equal(edges.scf_converged, [s not in bad for s in range(13)])
    else:
        np.testing.assert_array_equal(edges.step, [s for s in range(13) if s not in bad])
        assert result.dropped_steps == bad


@pytest.mark.cp2k
def test_fail_policy_stops_at_a_failed_outer_scf(tmp_path, cp2k_exe):
    """Cheap PBE (the pbe_cs4pbbr6_outer_scf fixture's input: OT inner loop of 3 steps, outer loop of 2
    iterations) with 30 steps instead of 3 (~3 min): the outer loop of step 0 fails and the watch stops
    CP2K there."""
    text = fixture_text("pbe_cs4pbbr6_outer_scf", "seg000.inp")
    text, n = re.subn(r"(?m)^(\s*STEPS\s+)3\s*$", r"\g<1>30", text)
    assert n == 1
    (tmp_path / "md.inp").write_text(text)
    run = tmp_path / "run"
    with pytest.raises(SCFConvergenceError, match=r"^SCF not converged at MD step 0 \(policy fail\)"):
        run_cp2k(tmp_path / "md.inp", run, on_scf_failure="fail", poll_s=0.5)
    out = (run / "seg000.out").read_text()
    (marker, first_scf), *_ = evaluations(out)
    assert "MD_INI" in marker and OUTER_FAILED in first_scf
    assert "PROGRAM ENDED AT" not in out and _state(run)["segments"][0]["ended"] == "failed"


@pytest.mark.cp2k
@pytest.mark.parametrize("case", ["missing_kind", "xtb_charges"])
def test_cp2k_abort_is_reported_with_cp2k_s_message(tmp_path, relaxed, case):
    """CP2K ending with its ABORT box: at start-up (a PBE input whose KIND list lacks Cs) or during the MD
    (GFN1-xTB with MAX_SCF 1: step 0 unconverged, then the next SCF's atomic charges leave xTB's range).
    The engine fails naming CP2K's exit status and message; nothing is recorded as complete."""
    if case == "missing_kind":
        inp = md_input(tmp_path, relaxed["xyz"], steps=3, level="pbe", overrides=MISSING_KIND, xmlspec=relaxed["spec"])
        phrase = MISSING_KIND_ABORT
    else:
        inp = md_input(tmp_path, relaxed["xyz"], steps=20, max_scf=1, xmlspec=relaxed["spec"])
        phrase = "xTB Charges"
    run = tmp_path / "run"
    with pytest.raises(EngineError) as err:
        run_cp2k(inp, run)
    out = (run / "seg000.out").read_text()
    box = re.search(r"\[ABORT\].*?\n\s*\*{20,}\s*\n", out, re.DOTALL)
    assert box is not None and phrase in " ".join(ln.strip(" *") for ln in box.group(0).splitlines())
    seg = _state(run)["segments"][0]
    assert seg["ended"] == "failed" and seg["exit_status"] not in (0, None) and seg["signal"] is None
    message = str(err.value)
    assert "CP2K failed in segment seg000.inp" in message and f"exit status {seg['exit_status']}" in message
    assert phrase in message and not (run / "run.json").exists()
    if case == "xtb_charges":
        assert evaluations(out)[0][0].strip() == "MD_INI| MD initialization" and "MD| Step number" not in out


@pytest.mark.cp2k
def test_cp2k_ending_cleanly_before_steps_without_a_walltime_stop_is_an_error(tmp_path, relaxed):
    """MD/MAX_STEPS 4 with STEPS 10: CP2K ends normally (exit 0, PROGRAM ENDED) after step 3, with no
    WALLTIME or EXIT-file stop; the engine does not take that as done, nor as continuable."""
    inp = md_input(tmp_path, relaxed["xyz"], steps=10, overrides={"motion": {"md": {"max_steps": 4}}},
                   xmlspec=relaxed["spec"])  # fmt: skip
    run = tmp_path / "run"
    with pytest.raises(EngineError) as err:
        run_cp2k(inp, run)
    out = (run / "seg000.out").read_text()
    last = int(re.findall(r"^ MD\| Step number\s+(\d+)\s*$", out, re.MULTILINE)[-1])
    assert last < 10 and "PROGRAM ENDED AT" in out and WALLTIME_WORDS not in out and "external request" not in out
    assert f"CP2K ended cleanly at MD step {last} of 10 without a wall-time stop" in str(err.value)
    seg = _state(run)["segments"][0]
    assert (seg["ended"], seg["exit_status"], seg["end_step"]) == ("failed", 0, restart_file_step(run / "md-1.restart"))
    assert not (run / "run.json").exists()


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
    n_el = int(re.search(r"Number of electrons:\s+(\d+)", out).group(1))
    assert n_el == 2 * homo_index(dot.symbols, "xtb") and "Number of occupied orbitals:" in out
    result = parse_run_dir(tmp_path / "run")
    edges = result.band_edges
    np.testing.assert_array_equal(edges.step, [0, 1, 2])
    assert edges.homo_index == n_el // 2 and result.smearing_K == 300.0
    blocks = (tmp_path / "run" / "md-mo-1.MOLog").read_text().split("EIGENVALUES AND OCCUPATION NUMBERS")[1:]
    homo = n_el // 2
    for block, vbm, cbm in zip(blocks, edges.vbm_eV, edges.cbm_eV, strict=True):
        rows = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"MO\|\s+(\d+)\s+\S+\s+(\S+)\s+\S+", block)}
        assert (rows[homo], rows[homo + 1]) == (vbm, cbm)
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


# --- geometry optimisation that fails or does not converge ------------------------------------------

@pytest.mark.cp2k
def test_relaxation_that_does_not_converge_keeps_the_last_geometry(tmp_path, n1_xyz, cp2k_exe, capsys):
    """GEO_OPT with MAX_ITER 1 from the ideal cut: CP2K stops without 'GEOMETRY OPTIMIZATION COMPLETED';
    the engine warns, labels the structure relax_converged=F and keeps CP2K's last frame (recentred)."""
    out_xyz = tmp_path / "r.xyz"
    summary = relax(n1_xyz, tmp_path / "relax", out_xyz, "xtb", max_iter=1)
    relax_out = (tmp_path / "relax" / "relax.out").read_text()
    assert "GEOMETRY OPTIMIZATION COMPLETED" not in relax_out and "PROGRAM ENDED AT" in relax_out
    assert re.search(r"^\s*MAX_ITER\s+1\s*$", (tmp_path / "relax" / "relax.inp").read_text(), re.MULTILINE)
    assert summary["converged"] is False and summary["relaxed"] is True
    assert "not converged in 1 steps" in capsys.readouterr().err
    assert "relax_converged=F" in out_xyz.read_text().splitlines()[1]
    ideal, done = read_structure(n1_xyz), read_structure(out_xyz)
    np.testing.assert_allclose(done.positions_A, recentred_last_frame(tmp_path / "relax" / "relax-pos-1.xyz",
                                                                      ideal.box_A), atol=1e-8)  # fmt: skip
    assert done.regions == ideal.regions and np.abs(done.positions_A - ideal.positions_A).max() > 1e-3
    assert json.loads((tmp_path / "relax" / "relax.json").read_text())["converged"] is False


@pytest.mark.cp2k
def test_relaxation_that_fails_names_cp2k_s_abort(tmp_path, n1_xyz, cp2k_exe):
    out_xyz = tmp_path / "r.xyz"
    with pytest.raises(EngineError) as err:
        relax(n1_xyz, tmp_path / "relax", out_xyz, "pbe", overrides=MISSING_KIND)
    assert "[ABORT]" in (tmp_path / "relax" / "relax.out").read_text()
    assert "geometry optimisation failed (exit status" in str(err.value) and MISSING_KIND_ABORT in str(err.value)
    assert not out_xyz.exists() and not (tmp_path / "relax" / "relax.json").exists()
