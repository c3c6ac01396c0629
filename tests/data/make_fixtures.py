#!/usr/bin/env python
"""Regenerate the CP2K 2023.1 parser fixtures under tests/data/cp2k-2023.1/ (see tests/data/README.md).

Runs real CP2K (Debian ``cp2k.psmp``, one MPI rank, one thread) in a work directory and
packs each run directory into ``<name>/run.tar.xz`` (the segment inputs and main outputs,
the trajectories, energies and MOLog, and the structure the MD started from), plus a
``fixture.json`` that records how it was made. Total cost on 2 cores: about 8 minutes
(the 64-atom relaxation ~4 min, the PBE run ~2 min); ``--only NAME`` remakes one fixture,
``--reuse-structures`` skips the relaxations by using the relaxed structures kept in
``cp2k-2023.1/structures/``.

Usage: python tests/data/make_fixtures.py [--work DIR] [--only NAME ...] [--reuse-structures]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "cp2k-2023.1"
STRUCTURES = OUT / "structures"
RUN_FILES = ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog")
CHEAP_PBE = {
    "force_eval": {
        "dft": {"mgrid": {"cutoff": 150}},
        "subsys": {
            "cell": {"abc": [14.0, 14.0, 14.0]},
            "kind": [
                {"_": el, "element": el, "basis_set": "SZV-MOLOPT-SR-GTH", "potential": pot}
                for el, pot in (("Br", "GTH-PBE-q7"), ("Cs", "GTH-PBE-q9"), ("Pb", "GTH-PBE-q4"))
            ],
        },
    }
}
"""Cheap PBE (docs/physics.md §3): SZV-MOLOPT-SR-GTH, 150 Ry, 14 Angstrom box: ~20 s per MD step for Cs4PbBr6 here."""


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return e


def sh(cmd: list[str], cwd: Path, log: list[str]) -> None:
    """Run a command, record it (relative to the run directory) and fail loudly."""
    log.append(shlex.join(cmd))
    print(f"[{cwd.name}] $ {shlex.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, env=env(), check=True)


def cp2k(inp: str, out: str, cwd: Path, log: list[str]) -> None:
    sh(["cp2k.psmp", "-i", inp, "-o", out], cwd, log)


def cp2k_killed(inp: str, out: str, cwd: Path, log: list[str], after_ener_lines: int, delay_s: float) -> dict:
    """Start CP2K and SIGKILL it ``delay_s`` after ``md-1.ener`` has ``after_ener_lines`` lines."""
    cmd = ["cp2k.psmp", "-i", inp, "-o", out]
    log.append(f"{shlex.join(cmd)}  # SIGKILL {delay_s} s after md-1.ener has {after_ener_lines} lines")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env())
    ener = cwd / "md-1.ener"
    while proc.poll() is None:
        n = ener.read_text().count("\n") if ener.exists() else 0
        if n >= after_ener_lines:
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    rc = proc.wait()
    if rc != -signal.SIGKILL:
        raise RuntimeError(f"{cwd}: CP2K was not killed (exit status {rc}); the run was too fast for the poll")
    return {"killed_after_ener_lines": after_ener_lines, "delay_s": delay_s, "exit_status": rc}


def qd(*args: str, cwd: Path, log: list[str]) -> None:
    sh(["qdphonon", *args], cwd, log)


def relaxed_structure(work: Path, size: int, smearing_K: float | None, reuse: bool) -> Path:
    """Build the ``size``^3 dot, relax it with GFN1-xTB (GEO_OPT) and keep the labelled relaxed XYZ."""
    from qdphonon.engines.relax import relax

    name = f"cspbbr3_{size}x{size}x{size}_xtb_relaxed.xyz"
    kept = STRUCTURES / name
    if reuse and kept.is_file():
        return kept
    d = work / f"relax_{size}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    log: list[str] = []
    qd("build", "--size", str(size), str(size), str(size), "--out", "ideal.xyz", cwd=d, log=log)
    summary = relax(d / "ideal.xyz", d / "relax", d / name, "xtb", smearing_K=smearing_K)
    STRUCTURES.mkdir(parents=True, exist_ok=True)
    shutil.copy(d / name, kept)
    (STRUCTURES / (name[:-4] + ".json")).write_text(
        json.dumps({"commands": log + [f"qdphonon.engines.relax(ideal.xyz, relax, {name}, 'xtb', smearing_K={smearing_K})"],
                    "relax": summary}, indent=2, sort_keys=True) + "\n"  # fmt: skip
    )
    return kept


def continuation_input(structure: Path, restart_step: int, total_steps: int, dst: Path) -> str:
    """seg001.inp: the seg000 input as EXT_RESTART continuation (positions, velocities, thermostat,
    counters; SCF from md-RESTART.wfn), STEPS = the remaining steps, CENTER_COORDINATES off."""
    from qdphonon.cp2k.continuation import continuation_tree
    from qdphonon.cp2k.inputs import MDSettings, cp2k_input_tree
    from qdphonon.cp2k.xmlspec import installed_xmlspec, parse_input_text, render_input
    from qdphonon.structures.io import read_structure

    dot = read_structure(structure)
    spec, _ = installed_xmlspec("cp2k.psmp")
    first = render_input(
        cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                                   md=MDSettings(steps=total_steps)), spec)  # fmt: skip
    tree = continuation_tree(parse_input_text(first, spec), restart_file="md-1.restart",
                                     wfn_file="md-RESTART.wfn", remaining_steps=total_steps - restart_step)
    spec, desc = installed_xmlspec("cp2k.psmp")
    text = f"! qdphonon MD input, level xtb; continuation from MD step {restart_step}; validated against {desc}\n"
    dst.write_text(text + render_input(tree, spec))
    return f"continuation_input({structure.name}, restart_step={restart_step}, total_steps={total_steps})  # make_fixtures.py"


def restart_step(run: Path) -> int:
    import re

    m = re.search(r"^\s*STEP_START_VAL\s+(\d+)", (run / "md-1.restart").read_text(), re.MULTILINE)
    return int(m.group(1)) if m else 0


def cut_last_record(path: Path, keep_fraction_of_last_line: float = 0.5, drop_lines: int = 0) -> int:
    """Cut a file inside its last record: drop ``drop_lines`` whole lines, then half of the line before.
    Returns the bytes removed (simulates a kill during a write, which a real SIGKILL seldom hits)."""
    data = path.read_bytes()
    lines = data.split(b"\n")[:-1]
    keep = lines[: len(lines) - drop_lines]
    last = keep.pop()
    cut = b"\n".join(keep) + b"\n" + last[: int(len(last) * keep_fraction_of_last_line)]
    path.write_bytes(cut)
    return len(data) - len(cut)


def pack(name: str, run: Path, structure: Path, meta: dict) -> None:
    """Write OUT/name/run.tar.xz (deterministic member order and metadata) and fixture.json."""
    dest = OUT / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    members = sorted(p.name for p in run.iterdir() if p.name.startswith("seg") and p.suffix in (".inp", ".out"))
    members += [f for f in RUN_FILES if (run / f).exists()]
    shutil.copy(structure, run / "structure.xyz")
    members.append("structure.xyz")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            data = (run / m).read_bytes()
            info = tarfile.TarInfo(m)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    import lzma

    (dest / "run.tar.xz").write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    meta = {"name": name, "files": members, "cp2k": cp2k_version(), **meta}
    (dest / "fixture.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {(dest / 'run.tar.xz').stat().st_size} bytes", file=sys.stderr)


def cp2k_version() -> str:
    from qdphonon.cp2k.xmlspec import cp2k_version as v

    return f"CP2K {v('cp2k.psmp')} (Debian cp2k.psmp, 1 MPI rank, OMP_NUM_THREADS=1)"


def fresh(work: Path, name: str, structure: Path) -> Path:
    run = work / name
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copy(structure, run / "structure.xyz")
    return run


def make_xtb_20steps(work: Path, s1: Path) -> None:
    run, log = fresh(work, "xtb_cs4pbbr6_20steps", s1), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", "20", "--out", "seg000.inp", cwd=run, log=log)
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s1, {"commands": log, "what": "GFN1-xTB NVT MD of relaxed Cs4PbBr6, 20 steps of 2 fs, seed 2022, uninterrupted"})


def make_xtb_restart(work: Path, s1: Path) -> None:
    from qdphonon.rundir import truncate_to_complete_records

    run, log = fresh(work, "xtb_cs4pbbr6_restart", s1), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", "20", "--out", "seg000.inp", cwd=run, log=log)
    kill = cp2k_killed("seg000.inp", "seg000.out", run, log, after_ener_lines=11, delay_s=0.02)
    k = restart_step(run)
    trimmed = truncate_to_complete_records(run)
    log.append(f"qdphonon.rundir.truncate_to_complete_records('.')  # removed bytes: {trimmed}")
    log.append(continuation_input(run / "structure.xyz", k, 20, run / "seg001.inp"))
    cp2k("seg001.inp", "seg001.out", run, log)
    pack(run.name, run, s1, {
        "commands": log, "kill": kill, "restart_step": k, "trimmed_bytes": trimmed,
        "what": "same input as xtb_cs4pbbr6_20steps; seg000 SIGKILLed part-way, seg001 continues with EXT_RESTART "
                "(wfn restart, CENTER_COORDINATES off) to step 20; compare with xtb_cs4pbbr6_20steps",
    })  # fmt: skip


def make_xtb_killed(work: Path, s1: Path) -> None:
    run, log = fresh(work, "xtb_cs4pbbr6_killed", s1), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", "20", "--out", "seg000.inp", cwd=run, log=log)
    kill = cp2k_killed("seg000.inp", "seg000.out", run, log, after_ener_lines=14, delay_s=0.03)
    cuts = {
        "md-pos-1.xyz": cut_last_record(run / "md-pos-1.xyz", 0.5, drop_lines=3),
        "md-vel-1.xyz": cut_last_record(run / "md-vel-1.xyz", 0.5, drop_lines=5),
        "md-1.ener": cut_last_record(run / "md-1.ener", 0.5),
    }
    log.append(f"cut_last_record(...)  # make_fixtures.py; bytes removed: {cuts}")
    pack(run.name, run, s1, {
        "commands": log, "kill": kill, "cut_bytes": cuts,
        "what": "same input as xtb_cs4pbbr6_20steps, SIGKILLed and not resumed; then the last frame of the "
                "positions and velocities and the last line of md-1.ener were cut in the middle "
                "(a kill during a write; a real SIGKILL left whole records)",
    })  # fmt: skip


def make_xtb_scf_unconverged(work: Path, s1: Path) -> None:
    run, log = fresh(work, "xtb_cs4pbbr6_scf_unconverged", s1), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", "12", "--max-scf", "14",
       "--out", "seg000.inp", cwd=run, log=log)  # fmt: skip
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s1, {"commands": log, "what": "MAX_SCF 14: some MD steps' SCF not converged (CP2K 2023.1 warns and goes on)"})


def make_pbe_ot(work: Path, s1: Path) -> None:
    run, log = fresh(work, "pbe_cs4pbbr6_ot", s1), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "pbe", "--steps", "4",
       "--overrides-json", json.dumps(CHEAP_PBE, separators=(",", ":")), "--out", "seg000.inp", cwd=run, log=log)  # fmt: skip
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s1, {
        "commands": log,
        "what": "cheap PBE (SZV-MOLOPT-SR-GTH, 150 Ry, 14 A box), OT with MO_CUBES band edges, 4 steps from the "
                "xTB-relaxed geometry (a parser fixture, not physics)",
    })  # fmt: skip


def make_xtb_n2_smearing(work: Path, s2: Path) -> None:
    run, log = fresh(work, "xtb_cs20pb8br36_smearing", s2), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", "4", "--smearing-K", "300",
       "--out", "seg000.inp", cwd=run, log=log)  # fmt: skip
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s2, {"commands": log, "what": "GFN1-xTB Cs20Pb8Br36 with Fermi-Dirac smearing at 300 K, 4 steps"})


SCF_WALLTIME_STOP = "SCF run terminated - exceeded requested execution time"


def _walltime_segment(tree: dict, walltime_s: float | None, header: str, dst: Path) -> None:
    """Write a segment input: ``tree`` with ``GLOBAL/WALLTIME`` in (fractional) seconds, validated against the installed CP2K."""
    import copy

    from qdphonon.cp2k.readback import render_tree
    from qdphonon.cp2k.xmlspec import installed_xmlspec

    tree = copy.deepcopy(tree)
    if walltime_s is not None:
        tree.setdefault("+global", {})["walltime"] = f"{walltime_s:.3f}"
        header += f"; GLOBAL/WALLTIME {walltime_s:.3f} s (make_fixtures.py)"
    spec, desc = installed_xmlspec("cp2k.psmp")
    dst.write_text(render_tree(tree, spec, header=f"{header}; validated against {desc}\n"))


def make_xtb_walltime(work: Path, s1: Path) -> None:
    """seg000 stopped by WALLTIME in the middle of an SCF (retried with another WALLTIME until it is, at a step
    in 2..17); seg001 continues from the restart file with WALLTIME 0.01 s, so the SCF of the re-evaluated
    restart step is stopped too (after it CP2K prints MD_INI, starts the next step's SCF and stops that one
    as well); seg002 continues again from the same restart file to step 20."""
    import re

    from qdphonon.cp2k.continuation import continuation_tree
    from qdphonon.cp2k.readback import read_md_input
    from qdphonon.rundir import truncate_to_complete_records

    run, log = fresh(work, "xtb_cs4pbbr6_walltime", s1), []
    qd("cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", "20", "--out", "md.inp", cwd=run, log=log)
    md = read_md_input(run / "md.inp")
    header0 = (run / "md.inp").read_text().splitlines()[0].split("; validated against")[0]
    walltime, attempts = 0.6, []
    for _ in range(15):
        for p in run.iterdir():
            if p.name not in ("md.inp", "structure.xyz"):
                p.unlink()
        _walltime_segment(md.tree, walltime, header0, run / "seg000.inp")
        tries: list[str] = []
        cp2k("seg000.inp", "seg000.out", run, tries)
        text = (run / "seg000.out").read_text()
        k = restart_step(run) if (run / "md-1.restart").is_file() else None
        stopped = "run terminated - exceeded requested execution time" in text
        mid_scf = SCF_WALLTIME_STOP in text
        attempts.append({"walltime_s": round(walltime, 3), "restart_step": k, "walltime_stop": stopped, "mid_scf": mid_scf})
        if mid_scf and k is not None and 2 <= k <= 17:
            break
        if not stopped or (k is not None and k > 17):
            walltime *= 0.75  # finished or stopped too late: less time
        elif k is None or k < 2:
            walltime *= 1.3
        else:
            walltime += 0.011  # stopped between two SCFs: move the stop
    else:
        raise RuntimeError(f"{run}: no WALLTIME stop in the middle of an SCF at a step in 2..17: {attempts}")
    log.append(f"# seg000.inp = md.inp with GLOBAL/WALLTIME {walltime:.3f} s (attempts: {attempts})")
    log += tries
    trimmed = truncate_to_complete_records(run)  # what the engine does before a continuation
    log.append(f"qdphonon.rundir.truncate_to_complete_records('.')  # removed bytes: {trimmed}")
    for i, wt in ((1, 0.01), (2, None)):
        tree = continuation_tree(md.tree, restart_file="md-1.restart", wfn_file="md-RESTART.wfn",
                                         remaining_steps=20 - k)  # fmt: skip
        header = f"! qdphonon segment {i:03d} of md.inp, level xtb: continues from MD step {k} (md-1.restart)"
        _walltime_segment(tree, wt, header, run / f"seg{i:03d}.inp")
        log.append(f"continuation_tree(md.inp tree, restart_file='md-1.restart', wfn_file='md-RESTART.wfn', "
                   f"remaining_steps={20 - k}) + WALLTIME {wt} -> seg{i:03d}.inp  # make_fixtures.py")  # fmt: skip
        cp2k(f"seg{i:03d}.inp", f"seg{i:03d}.out", run, log)
        if restart_step(run) != (k if i == 1 else 20):
            raise RuntimeError(f"{run}: seg{i:03d} left md-1.restart at step {restart_step(run)}")
    seg1 = (run / "seg001.out").read_text()
    m = re.search(re.escape(SCF_WALLTIME_STOP) + r".*?MD_INI\| MD initialization", seg1, re.S)
    if m is None or "MD| Step number" in seg1:
        raise RuntimeError(f"{run}: seg001 did not stop in the SCF of its restart step")
    pack(run.name, run, s1, {
        "commands": log, "restart_step": k, "walltime_attempts": attempts, "trimmed_bytes": trimmed,
        "what": "same input as xtb_cs4pbbr6_20steps; seg000 stopped by GLOBAL/WALLTIME in the middle of the SCF "
                "after step k (no MO block for it), seg001 (EXT_RESTART from step k, WALLTIME 0.01 s) stopped "
                "in the SCF of the re-evaluated restart step and of step k+1, seg002 continues from step k to 20; "
                "compare with xtb_cs4pbbr6_20steps",
    })  # fmt: skip


FIXTURES = {
    "xtb_cs4pbbr6_20steps": (make_xtb_20steps, 1),
    "xtb_cs4pbbr6_restart": (make_xtb_restart, 1),
    "xtb_cs4pbbr6_killed": (make_xtb_killed, 1),
    "xtb_cs4pbbr6_scf_unconverged": (make_xtb_scf_unconverged, 1),
    "pbe_cs4pbbr6_ot": (make_pbe_ot, 1),
    "xtb_cs20pb8br36_smearing": (make_xtb_n2_smearing, 2),
    "xtb_cs4pbbr6_walltime": (make_xtb_walltime, 1),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/qdphonon-fixtures", help="scratch directory for the CP2K runs")
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES), help="remake only these fixtures")
    ap.add_argument("--reuse-structures", action="store_true", help="use the relaxed structures kept in cp2k-2023.1/structures")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(FIXTURES)
    sizes = sorted({FIXTURES[n][1] for n in names})
    structures = {s: relaxed_structure(work, s, 300.0 if s == 2 else None, args.reuse_structures) for s in sizes}
    for n in names:
        make, size = FIXTURES[n]
        make(work, structures[size])
    return 0


if __name__ == "__main__":
    sys.exit(main())
