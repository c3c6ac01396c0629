"""Runs that survive anything: one CP2K per run directory (lock), CP2K dies with its engine, and a
run killed at any moment (CP2K start-up, first SCF of a continuation, a torn restart file or
trajectory, the engine writing its state, an EXIT file, a WALLTIME stop in a continuation's first
SCF, a relaxation part-way) continues to the same trajectory as an uninterrupted run.

Kills are driven by watching files (``.ener`` lines, CP2K's ``WAITING`` file, a start-up wrapper's
flag), never by timing; where a moment cannot be hit by watching (a kill during a write), the
state it leaves is made from a real kill's files. Whether CP2K survived is checked independently of
the engine: by ``/proc/*/cwd``. Tests marked ``cp2k`` run Debian's CP2K 2023.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import bundled_xmlspec, installed_xmlspec
from qdphonon.engines.cp2k import run_cp2k
from qdphonon.run.errors import EngineError, RunDirLocked, SCFConvergenceError
from qdphonon.engines.process import Stop, StopReason, run_process
from qdphonon.engines.relax import relax
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.run.layout import LOCK_FILE, STATE_FILE, lock_holder, lock_run_dir, run_files
from qdphonon.engines.recovery import prepare_continuation, prepare_run_dir
from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import read_structure, write_structure
from qdphonon.structures.model import QuantumDotSpec

REPO = Path(__file__).resolve().parents[1]
STEPS = 60
EDGE_TOL_eV = 1e-4
"""Band edges of a resumed run vs the uninterrupted one. The inputs use EPS_SCF 1e-8, so the SCF noise a
continuation brings (its SCF starts from the saved wavefunction) is ~1e-7 eV; 1e-4 eV is the target."""
POSITION_TOL_A = 1e-5
GONE_S = 30.0
"""How long killed processes get to vanish (a bound, not a speed requirement)."""


# ----------------------------------------------------------------------------- helpers
def md_input(tmp: Path, xyz: Path, *, steps: int = STEPS, xmlspec=None, name: str = "md.inp", fmt: str = "dcd") -> Path:
    """The MD input (xTB, EPS_SCF 1e-8, every frame printed, trajectories in ``fmt``)."""
    dot = read_structure(xyz)
    md = MDSettings(steps=steps, trajectory_every_steps=1, trajectory_format=fmt)
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb", md=md, scf=SCFSettings(eps_scf=1e-8))
    inp = tmp / name
    inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, xmlspec or bundled_xmlspec()))
    return inp


def ener_rows(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip() and not line.startswith(b"#") and line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def processes_in(run: Path) -> list[int]:
    """Live (not zombie) processes whose working directory is ``run`` (read from /proc, not from the engine)."""
    target, found = str(run.resolve()), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") != target:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def assert_nothing_left(run: Path) -> None:
    deadline = time.monotonic() + GONE_S
    while processes_in(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_in(run)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes still running in {run}: {left}"


def start_engine(inp: Path, xyz: Path, run: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qdphonon", "run-aimd", "--input", str(inp), "--run-dir", str(run),
                             "--engine", "cp2k", "--structure", str(xyz), *extra], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def wait_until(cond, proc: subprocess.Popen | None = None, timeout_s: float = 300.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"engine ended early ({proc.returncode}): {proc.communicate()}")
        assert time.monotonic() - t0 < timeout_s, "timed out waiting"
        time.sleep(0.002)


def kill_at_rows(inp: Path, xyz: Path, run: Path, rows: int, how: str = "group") -> subprocess.Popen:
    proc = start_engine(inp, xyz, run)
    wait_until(lambda: ener_rows(run / "md-1.ener") >= rows, proc)
    if how == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_nothing_left(run)
    return proc


def segments(run: Path) -> list[dict]:
    return json.loads((run / STATE_FILE).read_text())["segments"]


def dcd_frames(path: Path) -> np.ndarray:
    """Frames of a CP2K DCD file (Fortran records: 3 header records, then per frame a cell record and
    x, y, z records of float32), read with struct and numpy only."""
    data = path.read_bytes()
    records, pos = [], 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        if pos + 8 + n > len(data):
            break
        records.append(data[pos + 4 : pos + 4 + n])
        pos += 8 + n
    n_atoms = struct.unpack("<i", records[2])[0]
    body = records[3:]
    whole = len(body) // 4
    return np.array([[np.frombuffer(body[4 * f + c], dtype="<f4", count=n_atoms) for c in (1, 2, 3)]
                     for f in range(whole)]).transpose(0, 2, 1)  # fmt: skip


def trajectory_steps_ok(run: Path, reference_dir: Path) -> None:
    """Every MD step once in both trajectories (XYZ: by their step numbers; DCD: by frame count and
    values, frame by frame against the uninterrupted run: a lost or repeated frame shifts all later ones)."""
    for key in ("pos", "vel"):
        xyz, dcd = run / f"md-{key}-1.xyz", run / f"md-{key}-1.dcd"
        if xyz.is_file():
            steps = [int(m) for m in re.findall(r"^\s*i\s*=\s*(\d+),", xyz.read_text(), re.M)]
            assert steps == list(range(STEPS + 1)), xyz.name
        else:
            frames, ref = dcd_frames(dcd), dcd_frames(reference_dir / dcd.name)
            assert frames.shape == ref.shape == (STEPS + 1, 11, 3), dcd.name
            scale = np.abs(np.diff(ref, axis=0)).max()  # one step of motion
            assert np.abs(frames - ref).max() < 1e-2 * scale, dcd.name


def assert_same_run(run: Path, reference) -> None:
    """Every MD step once in every file and in the band edges, equal to the uninterrupted run."""
    trajectory_steps_ok(run, Path(reference.run_dir))
    ener = [int(r.split()[0]) for r in (run / "md-1.ener").read_text().splitlines() if r.strip() and r[0] != "#"]
    assert ener == list(range(STEPS + 1))
    heads = [t for t in (run / "md-mo-1.MOLog").read_text().splitlines() if "EIGENVALUES AND OCCUPATION" in t]
    assert sum("AFTER SCF STEP" not in h for h in heads) == STEPS + 1
    result = parse_run_dir(run)
    np.testing.assert_array_equal(result.band_edges.step, np.arange(STEPS + 1))
    assert np.abs(result.band_edges.vbm_eV - reference.band_edges.vbm_eV).max() <= EDGE_TOL_eV
    assert np.abs(result.band_edges.cbm_eV - reference.band_edges.cbm_eV).max() <= EDGE_TOL_eV
    np.testing.assert_array_equal(result.positions.step, np.arange(STEPS + 1))
    assert np.abs(result.positions.values - reference.positions.values).max() <= POSITION_TOL_A


# ----------------------------------------------------------------------------- without CP2K
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from qdphonon.run.layout import lock_run_dir
    run, release = Path(sys.argv[1]), Path(sys.argv[2])
    with lock_run_dir(run, "run-aimd"):
        print("locked", flush=True)
        while not release.exists():
            time.sleep(0.01)
""")


def test_a_second_engine_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    xyz = tmp_path / "s.xyz"
    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), xyz)
    inp = md_input(tmp_path, xyz)
    assert lock_holder(run) is None
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run), str(tmp_path / "release")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    info = lock_holder(run)
    assert info["pid"] == holder.pid and info["host"] == os.uname().nodename and info["engine_alive"] is True
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", info["since"]) and info["purpose"] == "run-aimd"
    with pytest.raises(RunDirLocked, match=rf"in use: run-aimd PID {holder.pid} on .* since .*refusing to start a second CP2K"):
        run_cp2k(inp, run, cp2k_command="no-such-cp2k")  # refused before CP2K is even looked for
    assert not (run / STATE_FILE).exists()
    # waiting: released by the holder while we wait
    (tmp_path / "release").touch()
    with lock_run_dir(run, "run-aimd", wait_s=120) as lock:
        assert lock_holder(run)["pid"] == os.getpid() and lock.killed == []
    holder.wait()
    assert lock_holder(run) is None


def test_a_lock_left_by_a_dead_engine_does_not_block_and_its_leftover_child_is_killed(tmp_path):
    """The engine SIGKILLed while its child (which inherited the lock) lives on: the next engine finds the
    child by its environment marker and the lock file it holds, kills it and takes the lock."""
    run = tmp_path / "run"
    run.mkdir()
    engine = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, time
        from qdphonon.engines.process import cp2k_environment
        from qdphonon.run.layout import lock_run_dir
        with lock_run_dir({str(run)!r}, "run-aimd") as lock:
            child = subprocess.Popen(["sleep", "600"], cwd={str(run)!r}, pass_fds=(lock.fd,),
                                     env=cp2k_environment(run_dir={str(run)!r}), start_new_session=True)
            lock.update(cp2k_pid=child.pid)
            print(child.pid, flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    child = int(engine.stdout.readline())
    engine.kill()
    engine.wait()
    info = lock_holder(run)
    assert info["pid"] == engine.pid and info["engine_alive"] is False and info["cp2k_pid"] == child
    with lock_run_dir(run, "run-aimd") as lock:
        assert [p["pid"] for p in lock.killed] == [child]
    assert processes_in(run) == []


def test_a_process_ignoring_sigterm_gets_sigkill_after_the_grace_period(tmp_path):
    ready = tmp_path / "ignoring-sigterm"
    stubborn = ["sh", "-c", f"trap '' TERM; touch {ready}; exec sleep 600"]
    result = run_process(stubborn, tmp_path, os.environ, watch=lambda: Stop(StopReason.WATCH, "enough") if ready.exists() else None,
                         poll_s=0.05, grace_s=0.3)  # fmt: skip
    assert result.signal == "SIGKILL" and result.escalated and result.stop_reason is StopReason.WATCH
    # a SIGTERM sent to the engine is forwarded, then escalated; the child is gone afterwards
    ready.unlink()
    engine = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from pathlib import Path
        from qdphonon.engines.process import Stop, StopReason, run_process
        r = run_process({stubborn!r}, Path({str(tmp_path)!r}), os.environ, poll_s=0.05, grace_s=0.3)
        print(r.signal, r.escalated, r.stop_reason.value, r.received_signal, flush=True)
    """)], stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    wait_until(ready.exists, engine)
    engine.send_signal(signal.SIGTERM)
    assert engine.stdout.readline().split() == ["SIGKILL", "True", "received_signal", str(int(signal.SIGTERM))]
    engine.wait()
    assert_nothing_left(tmp_path)


@pytest.mark.parametrize("how", ["group", "engine"])
def test_the_child_dies_with_the_engine(tmp_path, how):
    """PR_SET_PDEATHSIG: SIGKILL of the engine (alone, or its process group, which the child is not in)."""
    engine = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from pathlib import Path
        from qdphonon.engines.process import Stop, StopReason, run_process
        run_process(["sleep", "600"], Path({str(tmp_path)!r}), os.environ, on_start=lambda pid: print(pid, flush=True))
    """)], stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    child = int(engine.stdout.readline())
    assert processes_in(tmp_path) == [child]
    os.killpg(engine.pid, signal.SIGKILL) if how == "group" else os.kill(engine.pid, signal.SIGKILL)
    engine.wait()
    assert_nothing_left(tmp_path)


RESTART = (" &GLOBAL\n &END GLOBAL\n &MOTION\n   &MD\n     STEP_START_VAL  {k}\n   &END MD\n &END MOTION\n"
           " &FORCE_EVAL\n &END FORCE_EVAL\n")  # fmt: skip


def test_recovery_records_and_sets_aside_every_leftover(tmp_path):
    """What a kill can leave, made by hand (no CP2K): the engine's half-written state file, a segment
    'running' with no process, an empty output of a second segment, EXIT and WAIT files, a torn restart
    file and wavefunction, records past the restart step and a torn last frame. Recovery trims back to
    the restart step of the backup and records everything; a second recovery changes nothing."""
    run = tmp_path / "run"
    run.mkdir()
    files = run_files("md")
    ener = ["#     Step Nr.          Time[fs]        Kin.[a.u.]          Temp[K]            Pot.[a.u.]        Cons Qty[a.u.]        UsedTime[mins]\n"]
    ener += [f"{s:10d} {2.0 * s:20.6f} {1e-4:20.9f} {10.0:20.9f} {-26.5:20.9f} {-26.5:20.9f} {0.1:20.9f}\n" for s in range(13)]
    (run / "md-1.ener").write_text("".join(ener) + "        13   26.0")
    frame = lambda s: f"   2\n i = {s:8d}, time = {2.0 * s:12.3f}, E = -26.5\n Cs  1.0 2.0 3.0\n Br  4.0 5.0 6.0\n"  # noqa: E731
    (run / "md-pos-1.xyz").write_text("".join(frame(s) for s in range(13)) + "   2\n i =       13, time")
    block = " MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|     25  -0.3  -9.1  2.0\n MO| E(Fermi):  -0.3 a.u.  -9.1 eV\n\n"
    (run / "md-mo-1.MOLog").write_text(block * 13 + " MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|     25  -0.")
    (run / "md-1.restart").write_text(RESTART.format(k=12)[:-30])  # torn while CP2K rewrote it for step 12
    (run / "md-1.restart.bak-1").write_text(RESTART.format(k=11))
    (run / "md-RESTART.wfn").write_bytes(b"w" * 100)  # torn
    (run / "md-RESTART.wfn.bak-1").write_bytes(b"W" * 160)
    (run / "seg000.out").write_text(" CP2K| killed part-way\n")
    (run / "seg001.out").write_text("")
    for name in ("EXIT", "WAIT"):
        (run / name).write_text("")
    (run / ".segments.json.k3j2.tmp").write_text('{"engine": "cp')
    state = {"engine": "cp2k", "steps": 20, "project": "md", "segments": [
        {"index": 0, "output": "seg000.out", "start_step": 0, "ended": "killed", "molog_start": 0},
        {"index": 1, "output": "seg001.out", "start_step": 11, "ended": "running", "started_epoch": time.time(),
         "molog_start": (run / "md-mo-1.MOLog").stat().st_size}]}  # fmt: skip
    prepare_run_dir(run, state, files, "md")
    restart, wfn = prepare_continuation(run, state, files, 11, "md-1.restart.bak-1", "md-RESTART.wfn.bak-1")
    assert (restart, wfn) == ("md-1.restart", "md-RESTART.wfn")
    assert "STEP_START_VAL  11" in (run / "md-1.restart").read_text() and (run / "md-RESTART.wfn").read_bytes() == b"W" * 160
    seg0, seg1 = state["segments"]
    assert seg1["ended"] == "empty" and seg1["set_aside"] == ["set_aside/seg001/seg001.out"]
    assert not (run / "seg001.out").exists() and (run / "set_aside/seg001/seg001.out").stat().st_size == 0
    assert not (run / ".segments.json.k3j2.tmp").exists() and not (run / "EXIT").exists() and not (run / "WAIT").exists()
    aside = run / "set_aside" / "seg000"
    assert (aside / "md-1.restart").read_text() == RESTART.format(k=12)[:-30]
    assert (aside / "md-RESTART.wfn").read_bytes() == b"w" * 100
    # records: steps 0..11 kept (the continuation writes 12, ...), the MOLog's blocks of steps 0..10
    assert [int(r.split()[0]) for r in (run / "md-1.ener").read_text().splitlines()[1:]] == list(range(12))
    assert re.findall(r"i =\s+(\d+),", (run / "md-pos-1.xyz").read_text()) == [str(s) for s in range(12)]
    assert (run / "md-mo-1.MOLog").read_text() + "\n" == block * 11
    assert (aside / "md-1.ener").read_text() == ener[13] + "        13   26.0"
    assert (aside / "md-mo-1.MOLog").read_text() == "\n" + block * 2 + " MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|     25  -0."
    assert seg0["end_step"] == 11 and seg0["molog_blocks"] == 11
    notes = " | ".join(r["note"] for r in state["recoveries"])
    for piece in (".segments.json.k3j2.tmp", "EXIT", "WAIT", "torn md-1.restart replaced by its backup",
                  "torn md-RESTART.wfn replaced by its backup", "md-1.ener:", "md-pos-1.xyz:", "md-mo-1.MOLog:"):  # fmt: skip
        assert piece in notes, piece
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    n_notes = len(state["recoveries"])
    prepare_run_dir(run, state, files, "md")
    assert prepare_continuation(run, state, files, 11, "md-1.restart", "md-RESTART.wfn") == ("md-1.restart", "md-RESTART.wfn")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before and len(state["recoveries"]) == n_notes


# ----------------------------------------------------------------------------- real CP2K
@pytest.fixture(scope="module")
def relaxed(tmp_path_factory, cp2k_exe):
    """Cs4PbBr6 relaxed with CP2K GFN1-xTB, its MD input (EPS_SCF 1e-8, every frame printed) and an
    uninterrupted reference run."""
    tmp = tmp_path_factory.mktemp("recovery")
    ideal = tmp / "ideal.xyz"
    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), ideal)
    summary = relax(ideal, tmp / "relax", tmp / "relaxed.xyz", "xtb")
    spec, _ = installed_xmlspec()
    inp = md_input(tmp, tmp / "relaxed.xyz", xmlspec=spec)
    run_cp2k(inp, tmp / "reference")
    return {"tmp": tmp, "ideal": ideal, "xyz": tmp / "relaxed.xyz", "input": inp, "relax": summary,
            "reference": parse_run_dir(tmp / "reference"), "spec": spec}  # fmt: skip


@pytest.fixture(scope="module")
def relaxed_xyz(relaxed):
    """The same MD with XYZ trajectories, and its uninterrupted run."""
    inp = md_input(relaxed["tmp"], relaxed["xyz"], xmlspec=relaxed["spec"], name="md-xyz.inp", fmt="xyz")
    run_cp2k(inp, relaxed["tmp"] / "reference-xyz")
    return {**relaxed, "input": inp, "reference": parse_run_dir(relaxed["tmp"] / "reference-xyz")}


@pytest.mark.cp2k
@pytest.mark.parametrize("how", ["group", "engine"])
def test_sigkill_of_the_engine_leaves_no_cp2k_and_a_resume_completes(relaxed, tmp_path, how):
    run = tmp_path / "run"
    kill_at_rows(relaxed["input"], relaxed["xyz"], run, 20, how)  # asserts no process is left in run/
    assert lock_holder(run) is None
    assert segments(run)[-1]["ended"] == "running"  # the engine had no chance to record anything
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["killed", "completed"]
    assert_same_run(run, relaxed["reference"])


@pytest.mark.cp2k
def test_an_engine_killed_after_cp2k_finished_records_the_run_without_rerunning(relaxed, tmp_path):
    """Killed between CP2K's end and the engine's last state write: segments.json still says 'running'
    and run.json is missing; the next call sees CP2K's finished output and only writes the record."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(relaxed["tmp"] / "reference", run)
    (run / "run.json").unlink()
    state = json.loads((run / STATE_FILE).read_text())
    state.pop("complete")
    state["segments"][-1].update(ended="running", exit_status=None, end_step=None)
    (run / STATE_FILE).write_text(json.dumps(state))
    written = lambda: {p.name: p.stat().st_mtime_ns for p in run.iterdir() if re.match(r"seg\d|md-", p.name)}  # noqa: E731
    before = written()
    record = run_cp2k(relaxed["input"], run)
    (seg,) = record["segments"]
    assert seg["ended"] == "completed" and seg["end_step"] == STEPS and "after CP2K finished" in seg["note"]
    assert written() == before  # CP2K did not run again
    assert_same_run(run, relaxed["reference"])


@pytest.mark.cp2k
def test_a_second_engine_is_refused_while_cp2k_runs(relaxed, tmp_path):
    """CP2K is held (SIGSTOP) once step 2 is written, so it is still running, however slowly the second
    engine starts (the whole run takes CP2K a few seconds)."""
    run = tmp_path / "run"
    proc = start_engine(relaxed["input"], relaxed["xyz"], run)
    wait_until(lambda: ener_rows(run / "md-1.ener") >= 3, proc)
    info = lock_holder(run)
    os.killpg(info["cp2k_pid"], signal.SIGSTOP)
    assert info["pid"] == proc.pid and info["cp2k_pid"] == segments(run)[-1]["pid"] and info["engine_alive"]
    with pytest.raises(RunDirLocked, match=rf"PID {proc.pid} .*CP2K PID {info['cp2k_pid']}"):
        run_cp2k(relaxed["input"], run)
    second = subprocess.run([sys.executable, "-m", "qdphonon", "run-aimd", "--input", str(relaxed["input"]), "--run-dir",
                             str(run), "--engine", "cp2k", "--structure", str(relaxed["xyz"])], capture_output=True, text=True)  # fmt: skip
    assert second.returncode == 1 and f"PID {proc.pid}" in second.stderr
    assert len(segments(run)) == 1 and len([p for p in processes_in(run)]) >= 1
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_nothing_left(run)


PARK_IN_FIRST_SCF = """#!/bin/sh
# CP2K started with a WAIT file in its directory: it parks at its first check, in the first SCF
case " $* " in *" -i "*) touch WAIT;; esac
exec cp2k.psmp "$@"
"""


def wrapper(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


SLOW_START = """#!/bin/sh
# CP2K start-up frozen: the main output exists but is empty (what a kill during CP2K's start-up leaves)
case " $* " in *" -i "*) ;; *) exec cp2k.psmp "$@";; esac
prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
: > "$out"
touch "$SLOW_START_FLAG"
while :; do sleep 0.05; done
"""


@pytest.mark.cp2k
def test_a_kill_during_cp2k_start_up_leaves_an_empty_output_that_is_set_aside(relaxed, tmp_path):
    run = tmp_path / "run"
    kill_at_rows(relaxed["input"], relaxed["xyz"], run, 20)
    slow = wrapper(tmp_path, "cp2k-slow-start", SLOW_START)
    flag = tmp_path / "cp2k-started"
    proc = start_engine(relaxed["input"], relaxed["xyz"], run, "--cp2k-command", str(slow),
                        env={**os.environ, "SLOW_START_FLAG": str(flag)})  # fmt: skip
    wait_until(flag.exists, proc)
    assert (run / "seg001.out").stat().st_size == 0
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_nothing_left(run)
    record = run_cp2k(relaxed["input"], run)
    ended = [s["ended"] for s in record["segments"]]
    assert ended == ["killed", "empty", "completed"], ended
    assert (run / "set_aside" / "seg001" / "seg001.out").stat().st_size == 0 and not (run / "seg001.out").exists()
    assert record["segments"][2]["start_step"] == record["segments"][0]["end_step"]
    assert_same_run(run, relaxed["reference"])
    result = parse_run_dir(run)
    assert result.segments == ["seg000.out", "seg002.out"] and result.layout.set_aside == [run / "set_aside/seg001/seg001.out"]


@pytest.mark.cp2k
def test_a_kill_during_the_first_scf_of_a_continuation(relaxed, tmp_path):
    """CP2K's WAIT file (made by a wrapper as CP2K starts) parks it at its first check, in the first SCF of
    the continuation; the kill lands there."""
    run = tmp_path / "run"
    kill_at_rows(relaxed["input"], relaxed["xyz"], run, 20)
    park = wrapper(tmp_path, "cp2k-park", PARK_IN_FIRST_SCF)
    proc = start_engine(relaxed["input"], relaxed["xyz"], run, "--cp2k-command", str(park))
    # CP2K makes WAITING, then writes its message and parks until WAIT goes: wait for both
    wait_until(lambda: (run / "WAITING").exists()
               and "waiting till the file WAIT" in (run / "seg001.out").read_text(), proc)  # fmt: skip
    out = (run / "seg001.out").read_text()
    assert "SCF WAVEFUNCTION OPTIMIZATION" in out and "MD_INI|" not in out and "waiting till the file WAIT" in out
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_nothing_left(run)
    record = run_cp2k(relaxed["input"], run)
    seg = record["segments"]
    assert [s["ended"] for s in seg] == ["killed", "killed", "completed"]
    assert seg[0]["end_step"] == seg[1]["start_step"] == seg[1]["end_step"] == seg[2]["start_step"]
    assert segments(run)[1]["molog_blocks"] == 0 and not (run / "WAIT").exists() and not (run / "WAITING").exists()
    notes = " | ".join(r["note"] for r in json.loads((run / STATE_FILE).read_text())["recoveries"])
    assert "stop file WAIT" in notes and "stop file WAITING" in notes
    assert_same_run(run, relaxed["reference"])


@pytest.mark.cp2k
@pytest.mark.parametrize("fmt", ["dcd", "xyz"])
def test_torn_restart_file_trajectory_energy_and_engine_state(request, tmp_path, fmt):
    """A real kill, then the tears a kill during those writes leaves: md-1.restart cut in the middle (its
    backup holds the step before), the last frame of both trajectories and the last energy line cut, and
    a half-written temporary segments.json."""
    relaxed = request.getfixturevalue("relaxed" if fmt == "dcd" else "relaxed_xyz")
    run = tmp_path / "run"
    kill_at_rows(relaxed["input"], relaxed["xyz"], run, 25)
    restart = run / "md-1.restart"
    k_backup = int(re.search(r"STEP_START_VAL\s+(\d+)", (run / "md-1.restart.bak-1").read_text()).group(1))
    torn = restart.read_bytes()[: restart.stat().st_size // 2]
    restart.write_bytes(torn)
    for name in (f"md-pos-1.{fmt}", f"md-vel-1.{fmt}", "md-1.ener"):
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) - 40])
    (run / ".segments.json.x7f3.tmp").write_text('{"engine": "cp2k", "segm')
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["killed", "completed"]
    assert record["segments"][1]["start_step"] == k_backup and record["segments"][1]["restart_file"] == "md-1.restart"
    assert (run / "set_aside" / "seg000" / "md-1.restart").read_bytes() == torn
    assert not (run / ".segments.json.x7f3.tmp").exists()
    notes = " | ".join(r["note"] for r in json.loads((run / STATE_FILE).read_text())["recoveries"])
    assert "torn md-1.restart replaced by its backup" in notes and ".segments.json.x7f3.tmp" in notes
    assert_same_run(run, relaxed["reference"])


@pytest.mark.cp2k
def test_an_exit_file_stop_is_recorded_parsed_and_continued(relaxed, tmp_path):
    """CP2K checks for EXIT at its first check and then every 20 s of its run time: CP2K is frozen (SIGSTOP)
    while the file is made and for 21 s, so the check falls due in the next SCF whatever the machine's speed."""
    run = tmp_path / "run"
    proc = start_engine(relaxed["input"], relaxed["xyz"], run)
    wait_until(lambda: ener_rows(run / "md-1.ener") >= 10, proc)
    cp2k = segments(run)[-1]["pid"]
    os.killpg(cp2k, signal.SIGSTOP)
    (run / "EXIT").touch()
    time.sleep(21)
    os.killpg(cp2k, signal.SIGCONT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75 and "EXIT file" in err, err
    (seg,) = segments(run)
    assert seg["ended"] == "external_exit" and seg["end_step"] < STEPS
    out = (run / "seg000.out").read_text()
    assert "SCF run terminated by external request" in out and "MD run terminated by external request" in out
    with pytest.warns(UserWarning, match=r"seg000\.out: line \d+: run ended during step \d+ \(an EXIT file stopped its SCF"):
        stopped = parse_run_dir(run)
    np.testing.assert_array_equal(stopped.band_edges.step, np.arange(seg["end_step"] + 1))
    assert np.abs(stopped.band_edges.vbm_eV - relaxed["reference"].band_edges.vbm_eV[: seg["end_step"] + 1]).max() <= 1e-9
    record = run_cp2k(relaxed["input"], run)
    assert [s["ended"] for s in record["segments"]] == ["external_exit", "completed"]
    assert_same_run(run, relaxed["reference"])


@pytest.mark.cp2k
def test_a_walltime_stop_in_the_first_scf_of_a_continuation_is_not_an_scf_failure(relaxed, tmp_path, monkeypatch):
    """Policy fail: CP2K's WALLTIME (1 s) stops the continuation's first SCF (CP2K is parked there by the
    WAIT file until more than 1 s of its run time has passed). CP2K prints 'SCF run NOT converged' and still
    dates that evaluation with MD_INI; the engine must not call it an SCF failure."""
    import qdphonon.engines.cp2k as engine

    run = tmp_path / "run"
    kill_at_rows(relaxed["input"], relaxed["xyz"], run, 20)
    real = engine.with_walltime
    monkeypatch.setattr(engine, "with_walltime", lambda tree, s: real(tree, 1))
    park = wrapper(tmp_path, "cp2k-park", PARK_IN_FIRST_SCF)

    engine_returned = threading.Event()

    def release() -> None:
        while not (run / "WAITING").exists():
            if engine_returned.is_set():  # CP2K never parked: the assertions below say why
                return
            time.sleep(0.01)
        time.sleep(1.5)  # more than the 1 s WALLTIME, counted from CP2K's start
        (run / "WAIT").unlink()

    helper = threading.Thread(target=release, daemon=True)
    helper.start()
    try:
        with pytest.raises(EngineError, match="WALLTIME") as err:
            run_cp2k(relaxed["input"], run, cp2k_command=str(park), runtime_min=60, on_scf_failure="fail", poll_s=0.2)
    finally:
        engine_returned.set()
        helper.join(timeout=60)
    assert not isinstance(err.value, SCFConvergenceError)
    seg = segments(run)[-1]
    assert seg["ended"] == "walltime" and seg["end_step"] == seg["start_step"] and seg["stop_reason"] is None
    out = (run / "seg001.out").read_text()
    first_scf = out[out.index("SCF WAVEFUNCTION OPTIMIZATION") :]
    assert "SCF run terminated - exceeded requested execution time" in first_scf[: first_scf.index("MD_INI|")]
    monkeypatch.undo()
    record = run_cp2k(relaxed["input"], run, on_scf_failure="fail")
    assert record["scf_unconverged_steps"] == [] and [s["ended"] for s in record["segments"]] == ["killed", "walltime", "completed"]
    assert_same_run(run, relaxed["reference"])


@pytest.mark.cp2k
def test_a_relaxation_killed_part_way_continues_from_its_last_geometry_and_wavefunction(relaxed, tmp_path):
    import ase.io

    work = tmp_path / "relax"
    proc = subprocess.Popen([sys.executable, "-m", "qdphonon", "relax", "--structure", str(relaxed["ideal"]), "--engine",
                             "cp2k", "--level", "xtb", "--workdir", str(work), "--out", str(tmp_path / "r.xyz")],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def frames() -> int:
        try:
            return len(ase.io.read(work / "relax-pos-1.xyz", index=":", format="xyz"))
        except Exception:
            return 0

    wait_until(lambda: frames() >= 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert_nothing_left(work)
    whole = ase.io.read(work / "relax-pos-1.xyz", index=":", format="xyz")
    last = whole[-1]
    e_last = float(re.findall(r"E =\s+(\S+)", (work / "relax-pos-1.xyz").read_text())[len(whole) - 1])
    summary = relax(relaxed["ideal"], work, tmp_path / "r.xyz", "xtb")
    assert summary["segments"] == 2 and summary["converged"]
    cont = (work / "relax_c1.inp").read_text()
    assert re.search(r"SCF_GUESS\s+RESTART", cont, re.I) and re.search(r"WFN_RESTART_FILE_NAME\s+relax-RESTART\.wfn", cont)
    coords = np.array([[float(x) for x in ln.split()[1:4]]
                       for ln in re.search(r"&COORD\n(.*?)&END COORD", cont, re.S).group(1).strip().splitlines()])  # fmt: skip
    np.testing.assert_allclose(coords, last.positions, atol=1e-8)
    first_energy = float(re.search(r"ENERGY\| Total FORCE_EVAL \( QS \) energy \[a\.u\.\]:\s+(\S+)",
                                   (work / "relax_c1.out").read_text()).group(1))  # fmt: skip
    assert abs(first_energy - e_last) < 1e-6  # it started where the killed one stopped, not over
    state = json.loads((work / "relax-state.json").read_text())
    assert [s["ended"] for s in state["segments"]] == ["killed", "completed"]
    assert state["segments"][1]["iterations_before"] >= 2
    # BFGS restarts without its Hessian, so where the continuation ends depends on where the kill fell
    # (machine speed); a relaxation started on purpose from the same frame reaches the same minimum:
    from_frame = tmp_path / "from_frame.xyz"
    write_structure(dataclasses.replace(read_structure(relaxed["ideal"]), positions_A=last.positions), from_frame)
    fresh = relax(from_frame, tmp_path / "fresh", tmp_path / "fresh.xyz", "xtb")
    assert fresh["converged"]
    np.testing.assert_allclose(read_structure(tmp_path / "r.xyz").positions_A,
                               read_structure(tmp_path / "fresh.xyz").positions_A, atol=1e-3)  # fmt: skip
    steps = [float(e) for e in re.findall(r"E =\s+(\S+)", (work / "relax_c1-pos-1.xyz").read_text())]
    assert min(steps) == pytest.approx(fresh["final_energy_Ha"], abs=1e-6) and min(steps) <= e_last
    assert read_structure(tmp_path / "r.xyz").regions == read_structure(relaxed["ideal"]).regions
    assert lock_holder(work) is None and (work / LOCK_FILE).exists()


@pytest.mark.cp2k
def test_soak_short(tmp_path, cp2k_exe):
    """bench/soak_kills.py --short: 4 random SIGKILLs of the engine's group and 4 of every process, each
    followed by a resume; 0 orphans, 0 lost or duplicated steps, band edges equal to 1e-4 eV. A fixed seed:
    the same kill targets and delays on every run (where in CP2K's work a delay lands still depends on the
    machine's speed, which is what the soak's targets must not)."""
    summary = tmp_path / "soak.json"
    res = subprocess.run([sys.executable, str(REPO / "bench" / "soak_kills.py"), "--short", "--seed", "2022",
                          "--workdir", str(tmp_path / "soak"), "--json", str(summary)],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    data = json.loads(summary.read_text())
    assert data["meta"]["seed"] == 2022
    assert data["targets_met"] and [m["mode"] for m in data["modes"]] == ["group", "all"]
    for m in data["modes"]:
        assert m["kills"] == 4 and m["orphans"] == 0 and m["lost_steps"] == 0 and m["duplicated_steps"] == 0
        assert m["max_band_edge_diff_eV"] <= 1e-4 and m["completed"]
