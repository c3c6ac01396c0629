#!/usr/bin/env python3
"""Soak test: random SIGKILLs of a real CP2K xTB MD run through ``qdphonon run-aimd``, each followed by a resume.

Setup (in ``--workdir``, default a new temporary directory): ``qdphonon build --size 1 1 1``
(Cs4PbBr6, 11 atoms), ``qdphonon relax`` (GFN1-xTB, as the workflow does), ``qdphonon
cp2k-input --level xtb --steps S --trajectory-every-steps 1 --trajectory-format dcd --eps-scf 1e-8``
(``--trajectory-format xyz`` for XYZ), and an
uninterrupted reference run. Then two soaks of the same input, each in its own run directory:

``group``
    N times: start ``qdphonon run-aimd --engine cp2k`` in its own session, SIGKILL the engine's
    process group at a random moment (what a ``kill -9`` of Snakemake's job or the OOM killer
    does); CP2K is not in that group, so it must die with the engine.
``all``
    N times: SIGKILL the engine and every process whose working directory is the run directory
    at once (what SLURM's cgroup kill does).

The moments are drawn from: a random time in the first 1.5 s after the start (Python start-up,
lock, recovery, CP2K start-up), the appearance of the new segment's input, of its output, of
its first SCF, and k new lines in the ``.ener`` file plus up to 80 ms (inside an MD step:
SCF, MO print, trajectory, energy or restart write). After each kill the script waits up to
30 s for processes in the run directory to vanish (by ``/proc/*/cwd``); any left then is an
orphan (counted, then killed so the soak can go on). After the N kills, one more resume runs the
MD to its end, and ``qdphonon parse-cp2k`` parses it.

Checks, independent of qdphonon's parsers where they can be: every MD step 0..S exactly once
in ``.ener`` and both trajectories (XYZ: step numbers read with regular expressions; DCD: every
frame read with struct/numpy and matched to the reference frame it equals) and in the band-edge CSV; MD
blocks in the MOLog (restart-guess blocks excluded) = S + 1; the largest band-edge and
position difference against the reference run. EPS_SCF 1e-8 puts the SCF noise a continuation
brings (its SCF starts from the saved wavefunction, not the extrapolation) well below the
1e-4 eV target (with 1e-6 it is ~5e-5 eV).

    python bench/soak_kills.py                 # 20 + 20 kills, 400 steps
    python bench/soak_kills.py --short         # 4 + 4 kills, 120 steps (tests/test_engine_recovery.py::test_soak_short)

Run it with the machine's CP2K lock: ``flock /tmp/qdphonon-cp2k.lock python bench/soak_kills.py``.
Exit status 0 when every target is met (0 orphans, 0 lost or duplicated steps, band edges equal
to 1e-4 eV), else 1. ``--json FILE`` writes the summary as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAND_EDGE_TARGET_eV = 1e-4
ORPHAN_WAIT_S = 30.0


def qd(*args: str, cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qdphonon", *args], cwd=cwd, check=check, text=True,
                          capture_output=True, **kw)  # fmt: skip


def engine_command(work: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "qdphonon", "run-aimd", "--input", str(work / "md.inp"), "--run-dir", str(run),
            "--engine", "cp2k", "--structure", str(work / "relaxed.xyz")]  # fmt: skip


def setup(work: Path, steps: int, eps_scf: float, fmt: str) -> None:
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "relaxed.xyz").is_file():
        qd("build", "--size", "1", "1", "1", "--out", "ideal.xyz", cwd=work)
        qd("relax", "--structure", "ideal.xyz", "--engine", "cp2k", "--level", "xtb", "--workdir", "relax",
           "--out", "relaxed.xyz", cwd=work)  # fmt: skip
    qd("cp2k-input", "--structure", "relaxed.xyz", "--level", "xtb", "--steps", str(steps),
       "--trajectory-every-steps", "1", "--trajectory-format", fmt, "--eps-scf", f"{eps_scf:g}", "--out", "md.inp",
       cwd=work)  # fmt: skip


def ener_rows(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip() and not line.lstrip().startswith(b"#") and line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def _state(path: Path) -> str:
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
        return "X"


def processes_in(run: Path) -> list[int]:
    """Live (not zombie) processes whose working directory is ``run``."""
    target = str(run.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == target and _state(entry / "stat") not in ("Z", "X"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def segment_count(run: Path) -> int:
    try:
        return len(json.loads((run / "segments.json").read_text())["segments"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


KINDS = ["time", "input", "output", "scf", "steps"]
SHORT_ROTATION = {"group": ["steps", "scf", "steps", "output"], "all": ["steps", "time", "steps", "input"]}
"""--short: a fixed order of kill moments (random parameters) so that 4 kills cover mid-step and start-up."""


def choose_trigger(rng: random.Random, steps_left: int, kills_left: int, kind: str | None = None) -> tuple:
    kind = kind or rng.choices(KINDS, weights=[2, 1, 1, 2, 6])[0]
    if kind == "time":
        return ("time", round(rng.uniform(0.0, 1.5), 3))
    if kind == "steps":
        share = max(1, steps_left // (kills_left + 1))
        return ("steps", max(1, min(rng.randint(1, 2 * share - 1), steps_left - kills_left - 2)),
                round(rng.uniform(0.0, 0.08), 3))  # fmt: skip
    return (kind,)


def _new_segment_files(run: Path, suffix: str, since: float) -> list[Path]:
    """Segment files (``seg*.inp``/``seg*.out``) written by the engine started at ``since`` (epoch)."""
    found = []
    for p in run.glob(f"seg*{suffix}") if run.is_dir() else []:
        try:
            if p.stat().st_mtime >= since:
                found.append(p)
        except FileNotFoundError:
            pass
    return found


def wait_for_trigger(trigger: tuple, proc: subprocess.Popen, run: Path, t0: float, started_epoch: float) -> bool:
    """Poll until the trigger fires (True) or the engine exits (False)."""
    base = ener_rows(run / "md-1.ener")
    while proc.poll() is None:
        kind = trigger[0]
        if kind == "time" and time.monotonic() - t0 >= trigger[1]:
            return True
        if kind == "input" and _new_segment_files(run, ".inp", started_epoch):
            return True
        if kind == "output" and _new_segment_files(run, ".out", started_epoch):
            return True
        if kind == "scf":
            for out in _new_segment_files(run, ".out", started_epoch):
                with open(out, "rb") as fh:
                    if b"SCF WAVEFUNCTION OPTIMIZATION" in fh.read():
                        return True
        if kind == "steps" and ener_rows(run / "md-1.ener") >= base + trigger[1]:
            time.sleep(trigger[2])
            return proc.poll() is None
        time.sleep(0.001)
    return False


def kill(mode: str, proc: subprocess.Popen, run: Path) -> list[int]:
    """SIGKILL the engine's process group (``group``) or the engine and every process in the run
    directory (``all``); returns the pids that had the run directory as working directory."""
    inside = processes_in(run)
    if mode == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        for pid in {proc.pid, *inside}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait()
    return inside


def reap_orphans(run: Path) -> list[int]:
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while processes_in(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = processes_in(run)
    for pid in orphans:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return orphans


def soak(mode: str, work: Path, kills: int, steps: int, rng: random.Random, log, rotation: list[str] | None = None) -> dict:
    run = work / f"run-{mode}"
    events, orphans, resumes_failed = [], [], []
    done = 0
    while done < kills:
        t0, started_epoch = time.monotonic(), time.time() - 0.01
        kind = rotation[done % len(rotation)] if rotation else None
        trigger = choose_trigger(rng, steps - ener_rows(run / "md-1.ener"), kills - done, kind)
        proc = subprocess.Popen(engine_command(work, run), start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        fired = wait_for_trigger(trigger, proc, run, t0, started_epoch)
        if not fired:
            err = proc.communicate()[1]
            if proc.returncode == 0:
                log(f"  {mode}: run finished before kill {done + 1} ({trigger})")
                break
            resumes_failed.append({"exit_status": proc.returncode, "stderr": err[-2000:]})
            log(f"  {mode}: resume failed with exit status {proc.returncode}: {err.strip().splitlines()[-1:]}")
            if len(resumes_failed) > 3:
                break
            continue
        rows = ener_rows(run / "md-1.ener")
        inside = kill(mode, proc, run)
        left = reap_orphans(run)
        orphans += left
        done += 1
        events.append({"trigger": list(trigger), "ener_rows": rows, "cp2k_running": bool(inside), "orphans": left})
        log(f"  {mode} kill {done:2d}: {trigger}, .ener rows {rows}, processes in run dir {len(inside)}, orphans {len(left)}")
    proc = subprocess.run(engine_command(work, run), capture_output=True, text=True)
    final_ok = proc.returncode == 0
    if not final_ok:
        resumes_failed.append({"exit_status": proc.returncode, "stderr": proc.stderr[-2000:]})
        log(f"  {mode}: final resume failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
    return {"mode": mode, "run": run, "kills": done, "events": events, "orphans": orphans,
            "failed_resumes": resumes_failed, "final_ok": final_ok}  # fmt: skip


# --- checks, independent of qdphonon's parsers ----------------------------------------------------

_XYZ_STEP = re.compile(r"^\s*i\s*=\s*(\d+)\s*,", re.M)


def dcd_frames(path: Path):
    """Frames of a CP2K DCD file (Fortran records: 3 header records, then per frame a cell record and
    x, y, z records of float32), read with struct and numpy only."""
    import struct

    import numpy as np

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
    return np.array([[np.frombuffer(body[4 * f + c], dtype="<f4", count=n_atoms) for c in (1, 2, 3)]
                     for f in range(len(body) // 4)]).transpose(0, 2, 1)  # fmt: skip


def raw_steps(run: Path, ref: Path) -> dict[str, list[int]]:
    """MD steps of every record of the energy file and the trajectories. XYZ frames carry their step;
    DCD frames do not: each is matched to the reference frame it equals (within 1 % of one step of
    motion), so a lost or repeated frame shows as a missing or repeated step."""
    import numpy as np

    out = {}
    ener = [line.split() for line in (run / "md-1.ener").read_text().splitlines()]
    out["md-1.ener"] = [int(r[0]) for r in ener if r and not r[0].startswith("#")]
    for key in ("pos", "vel"):
        xyz, dcd = run / f"md-{key}-1.xyz", run / f"md-{key}-1.dcd"
        if xyz.is_file():
            out[xyz.name] = [int(m) for m in _XYZ_STEP.findall(xyz.read_text())]
            continue
        frames, reference = dcd_frames(dcd), dcd_frames(ref / dcd.name)
        tol = 1e-2 * float(np.abs(np.diff(reference, axis=0)).max())
        steps = []
        for f in frames:
            d = np.abs(reference - f).max(axis=(1, 2))
            steps.append(int(np.argmin(d)) if d.min() <= tol else -1)
        out[dcd.name] = steps
    return out


def molog_md_blocks(run: Path) -> int:
    heads = [line for line in (run / "md-mo-1.MOLog").read_text().splitlines() if "EIGENVALUES AND OCCUPATION" in line]
    return sum("AFTER SCF STEP" not in h for h in heads)


def check(result: dict, work: Path, steps: int) -> dict:
    import numpy as np
    import pandas as pd

    run = result["run"]
    expected = list(range(steps + 1))
    lost, dup = {}, {}
    if result["final_ok"]:
        qd("parse-cp2k", "--run-dir", str(run), "--out", str(work / f"{run.name}.csv"), cwd=work)
        files = raw_steps(run, work / "ref")
        be = pd.read_csv(work / f"{run.name}.csv")
        ref = pd.read_csv(work / "ref.csv")
        files["band edges (CSV)"] = be["step"].astype(int).tolist()
        for name, st in files.items():
            count = collections.Counter(st)
            lost[name] = len(set(expected) - set(count))
            dup[name] = sum(c - 1 for c in count.values()) + sum(1 for s in count if s not in set(expected))
        n_blocks = molog_md_blocks(run)
        lost["md-mo-1.MOLog"], dup["md-mo-1.MOLog"] = max(0, steps + 1 - n_blocks), max(0, n_blocks - steps - 1)
        same = len(be) == len(ref) and (be["step"].to_numpy() == ref["step"].to_numpy()).all()
        de = max(np.abs(be["vbm_eV"] - ref["vbm_eV"]).max(), np.abs(be["cbm_eV"] - ref["cbm_eV"]).max()) if same else float("inf")
        if (run / "md-pos-1.xyz").is_file():
            pos, pos_ref = _positions(run / "md-pos-1.xyz"), _positions(work / "ref" / "md-pos-1.xyz")
        else:
            pos, pos_ref = dcd_frames(run / "md-pos-1.dcd"), dcd_frames(work / "ref" / "md-pos-1.dcd")
        dx = float(np.abs(pos - pos_ref).max()) if pos.shape == pos_ref.shape else float("inf")
    else:
        de = dx = float("inf")
        n_blocks = None
    state = json.loads((run / "segments.json").read_text())
    ended = collections.Counter(s["ended"] for s in state["segments"])
    ended.update(f"discarded {s['ended']}" for s in state.get("discarded_segments", []))
    return {
        "mode": result["mode"], "kills": result["kills"],
        "segments": len(state["segments"]) + len(state.get("discarded_segments", [])),
        "segment_ends": dict(ended), "recoveries": len(state.get("recoveries", [])),
        "steps": steps, "orphans": len(result["orphans"]), "failed_resumes": len(result["failed_resumes"]),
        "lost_steps": sum(lost.values()) if lost else None, "duplicated_steps": sum(dup.values()) if dup else None,
        "lost_by_file": lost, "duplicated_by_file": dup, "molog_md_blocks": n_blocks,
        "max_band_edge_diff_eV": de, "max_position_diff_A": dx, "completed": result["final_ok"],
        "triggers": dict(collections.Counter(e["trigger"][0] for e in result["events"])),
        "torn_restart_files": sum("torn md-1.restart" in r["note"] for r in state.get("recoveries", [])),
        "torn_wavefunctions": sum("torn md-RESTART.wfn" in r["note"] for r in state.get("recoveries", [])),
        "records_cut": sum("bytes" in r["note"] for r in state.get("recoveries", [])),
        "discarded_fresh_starts": len(state.get("discarded_segments", [])),
    }  # fmt: skip


def _positions(path: Path):
    import numpy as np

    lines = path.read_text().splitlines()
    n = int(lines[0])
    frames = [lines[i + 2 : i + 2 + n] for i in range(0, len(lines), n + 2)]
    return np.array([[[float(x) for x in row.split()[1:4]] for row in f] for f in frames])


def summary_lines(rows: list[dict], meta: dict) -> list[str]:
    out = [f"soak_kills: {meta['date']}, CP2K {meta['cp2k']}, Cs4PbBr6 GFN1-xTB, {meta['steps']} steps, "
           f"{meta['trajectory_format'].upper()} trajectories, EPS_SCF {meta['eps_scf']:g}, seed {meta['seed']}, "
           f"{meta['wall_s']:.0f} s"]  # fmt: skip
    out.append(f"{'mode':<6} {'kills':>5} {'segments':>8} {'orphans':>7} {'steps':>5} {'lost':>4} {'dup':>4} "
               f"{'max |dE| eV':>11} {'max |dx| A':>10}  segment ends / kill moments")  # fmt: skip
    for r in rows:
        out.append(f"{r['mode']:<6} {r['kills']:>5} {r['segments']:>8} {r['orphans']:>7} {r['steps']:>5} "
                   f"{r['lost_steps']!s:>4} {r['duplicated_steps']!s:>4} {r['max_band_edge_diff_eV']:>11.2e} "
                   f"{r['max_position_diff_A']:>10.1e}  {r['segment_ends']} / {r['triggers']}")  # fmt: skip
    for r in rows:
        out.append(f"{r['mode']}: recoveries {r['recoveries']} (records cut {r['records_cut']}, torn restart files "
                   f"{r['torn_restart_files']}, torn wavefunctions {r['torn_wavefunctions']}), failed resumes "
                   f"{r['failed_resumes']}")  # fmt: skip
    return out


def targets_met(rows: list[dict], kills: int) -> bool:
    return all(
        r["completed"] and r["kills"] == kills and r["orphans"] == 0 and r["lost_steps"] == 0 and r["duplicated_steps"] == 0
        and r["failed_resumes"] == 0 and r["max_band_edge_diff_eV"] <= BAND_EDGE_TARGET_eV
        for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per mode (default 20)")
    ap.add_argument("--steps", type=int, default=400, help="MD steps (default 400)")
    ap.add_argument("--short", action="store_true", help="4 kills per mode, 120 steps")
    ap.add_argument("--modes", default="group,all", help="comma-separated: group, all")
    ap.add_argument("--eps-scf", type=float, default=1e-8)
    ap.add_argument("--trajectory-format", default="dcd", choices=["dcd", "xyz"], help="default dcd (the workflow's)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", default=None, help="default: a new temporary directory (kept)")
    ap.add_argument("--json", default=None, help="write the summary as JSON here")
    args = ap.parse_args(argv)
    if args.short:
        args.kills, args.steps = 4, 120
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="qdphonon-soak-"))
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    log(f"soak_kills: work directory {work}, seed {seed}")
    setup(work, args.steps, args.eps_scf, args.trajectory_format)
    if not (work / "ref" / "run.json").is_file():
        subprocess.run(engine_command(work, work / "ref"), check=True, capture_output=True, text=True)
    qd("parse-cp2k", "--run-dir", str(work / "ref"), "--out", str(work / "ref.csv"), cwd=work)
    rows = []
    for mode in args.modes.split(","):
        log(f"soak_kills: mode {mode}, {args.kills} kills")
        rotation = SHORT_ROTATION.get(mode) if args.short else None
        rows.append(check(soak(mode, work, args.kills, args.steps, rng, log, rotation), work, args.steps))
    version = subprocess.run(["cp2k.psmp", "--version"], capture_output=True, text=True).stdout
    m = re.search(r"CP2K version (\S+)", version)
    meta = {"date": time.strftime("%Y-%m-%d"), "cp2k": m.group(1) if m else "?", "steps": args.steps,
            "trajectory_format": args.trajectory_format,
            "eps_scf": args.eps_scf, "seed": seed, "wall_s": time.monotonic() - t0, "workdir": str(work)}  # fmt: skip
    lines = summary_lines(rows, meta)
    ok = targets_met(rows, args.kills)
    lines.append(f"targets (0 orphans, 0 lost or duplicated steps, band edges to {BAND_EDGE_TARGET_eV:g} eV): "
                 + ("met" if ok else "NOT met"))  # fmt: skip
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "modes": rows, "targets_met": ok}, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
