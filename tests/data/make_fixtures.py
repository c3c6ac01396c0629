#!/usr/bin/env python
"""Regenerate the CP2K 2023.1 parser fixtures under tests/data/cp2k-2023.1/ (see tests/data/README.md).

Runs real CP2K (Debian ``cp2k.psmp``, one MPI rank, one thread) in a work directory and
packs each run directory into ``<name>/run.tar.xz`` (the segment inputs and main outputs,
the trajectories, energies and MOLog, and the structure the MD started from), plus a
``fixture.json`` that records how it was made (commands, CP2K version, date, qdphonon commit).

Every input comes from the current code, the way the engine writes it: ``md.inp`` from
``qdphonon cp2k-input``; each segment ``segNNN.inp`` is that input's tree through
:func:`qdphonon.cp2k.continuation.with_restart_backup` (``BACKUP_COPIES 1``, as
:func:`qdphonon.engines.cp2k.run_cp2k` writes it), continuations through
:func:`qdphonon.cp2k.continuation.continuation_tree` from the restart file that
:func:`qdphonon.engines.file_cuts.restart_source` picks, after
:func:`qdphonon.engines.file_cuts.truncate_to_complete_records`.

Total cost on 2 cores: about 7 minutes (the 64-atom relaxation ~3.5 min, the two PBE runs
~40 s each). Run it under the machine-wide CP2K lock::

    flock /tmp/qdphonon-cp2k.lock python tests/data/make_fixtures.py

``--only NAME`` remakes one fixture, ``--reuse-structures`` skips the relaxations by using
the relaxed structures kept in ``cp2k-2023.1/structures/``.

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
REPO = HERE.parents[1]
OUT = HERE / "cp2k-2023.1"
STRUCTURES = OUT / "structures"
RUN_FILES = ("md-pos-1.xyz", "md-vel-1.xyz", "md-1.ener", "md-mo-1.MOLog")
USED_CODE = ("workflow/qdphonon/cli.py", "workflow/qdphonon/cp2k", "workflow/qdphonon/structures",
             "workflow/qdphonon/run/layout.py", "workflow/qdphonon/engines/relax.py", "workflow/qdphonon/engines/process.py",
             "workflow/qdphonon/data/config.schema.yaml", "tests/data/make_fixtures.py")
"""The code that writes the fixtures' structures and inputs (recorded when it differs from the commit)."""
MAX_ARCHIVE_BYTES = 200_000
"""A fixture archive larger than this is refused (they are kept in git; all are ~15-30 kB)."""
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
"""Cheap PBE (docs/physics.md §3): SZV-MOLOPT-SR-GTH, 150 Ry, 14 Angstrom box: ~5 s per MD step for Cs4PbBr6 here."""
OUTER_SCF_FAILS = {"force_eval": {"dft": {"scf": {"outer_scf": {"max_scf": 1}}}}}
"""With ``--max-scf 3``: the OT inner loop stops after 3 steps and the outer loop after 2 iterations."""


CODE: dict[str, str] = {"rev": "working tree", "commit": "", "path": ""}
"""Where the qdphonon code this run imports comes from (set by :func:`use_code_from`)."""


def use_code_from(rev: str, work: Path) -> None:
    """Import qdphonon (here and in the ``python -m qdphonon`` subprocesses) from ``git archive REV workflow``,
    so that uncommitted edits in the working tree do not leak into the fixtures."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    dest = work / f"code-{commit[:12]}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "workflow"], cwd=REPO, capture_output=True,
                             check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    if any(m.startswith("qdphonon") for m in sys.modules):
        raise RuntimeError("qdphonon was imported before the code to use was chosen")
    sys.path.insert(0, str(dest / "workflow"))
    CODE.update(rev=rev, commit=commit, path=str(dest / "workflow"))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if CODE["path"]:
        e["PYTHONPATH"] = CODE["path"] + os.pathsep + e.get("PYTHONPATH", "")
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
    """``qdphonon ARGS`` (run as ``python -m qdphonon`` so that the chosen code is used)."""
    log.append(shlex.join(["qdphonon", *args]))
    print(f"[{cwd.name}] $ qdphonon {shlex.join(args)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "qdphonon", *args], cwd=cwd, env=env(), check=True)


PINNED = {"--md-temperature-K": "10", "--timestep-fs": "2", "--seed": "2022", "--thermostat-timecon-fs": "100",
          "--trajectory-every-steps": "1", "--eps-scf": "1e-6", "--max-scf": "200"}
"""The MD and SCF settings of every fixture, given on the command line so that a change of the config's
defaults (the command line takes its defaults from the schema) cannot change the fixtures."""


def md_input(run: Path, log: list[str], *args: str) -> None:
    """``md.inp`` of the run: ``qdphonon cp2k-input --structure structure.xyz [PINNED] ARGS --out md.inp``."""
    pinned = [x for flag, value in PINNED.items() if flag not in args for x in (flag, value)]
    qd("cp2k-input", "--structure", "structure.xyz", *args, *pinned, "--out", "md.inp", cwd=run, log=log)


def segment_input(run: Path, index: int, log: list[str], *, walltime_s: float | None = None) -> int | None:
    """Write ``seg{index:03d}.inp`` from ``md.inp`` as the engine does; return the restart step it continues from.

    Segment 0 is ``md.inp``'s tree; a later one continues from the restart file (and wavefunction)
    that :func:`qdphonon.engines.file_cuts.restart_source` picks, after trimming partial records, with
    :func:`continuation_tree` and the remaining steps. Every segment gets
    :func:`with_restart_backup`; ``walltime_s`` sets ``GLOBAL/WALLTIME`` in fractional seconds
    (the engine writes whole seconds, too coarse for a 0.06 s MD step).
    """
    from qdphonon.cp2k.continuation import continuation_tree, with_restart_backup
    from qdphonon.cp2k.readback import read_md_input, render_tree
    from qdphonon.cp2k.xmlspec import installed_xmlspec
    from qdphonon.engines.file_cuts import restart_source, truncate_to_complete_records
    from qdphonon.run.layout import segment_files

    md = read_md_input(run / "md.inp")
    inp, _ = segment_files(index)
    k = None
    if index == 0:
        tree, origin, call = md.tree, "fresh start", "md.tree"
    else:
        trimmed = truncate_to_complete_records(run, md.files)
        log.append(f"qdphonon.engines.file_cuts.truncate_to_complete_records('.', md.files)  # removed bytes: {trimmed}")
        restart, k, wfn = restart_source(run, md.files)
        if k is None:
            raise RuntimeError(f"{run}: no readable restart file to continue from")
        tree = continuation_tree(md.tree, restart_file=restart, wfn_file=wfn, remaining_steps=md.steps - k)
        origin = f"continues from MD step {k} ({restart})"
        call = (f"qdphonon.cp2k.continuation.continuation_tree(md.tree, restart_file={restart!r}, "
                f"wfn_file={wfn!r}, remaining_steps={md.steps - k})")  # fmt: skip
    tree = with_restart_backup(tree)
    call = f"qdphonon.cp2k.continuation.with_restart_backup({call})"
    header = f"! qdphonon segment {index:03d} of md.inp (sha256 {md.sha256[:16]}), level {md.level}: {origin}"
    if walltime_s is not None:
        tree.setdefault("+global", {})["walltime"] = f"{walltime_s:.3f}"
        header += f"; GLOBAL/WALLTIME {walltime_s:.3f} s (make_fixtures.py)"
        call += f" + GLOBAL/WALLTIME {walltime_s:.3f}"
    spec, desc = installed_xmlspec("cp2k.psmp")
    (run / inp).write_text(render_tree(tree, spec, header=f"{header}; validated against {desc}\n"))
    log.append(f"{inp} = render_tree({call})  # make_fixtures.segment_input")
    return k


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
        json.dumps({"commands": log + [f"qdphonon.engines.relax.relax(ideal.xyz, relax, {name}, 'xtb', smearing_K={smearing_K})"],
                    "relax": summary, **provenance()}, indent=2, sort_keys=True) + "\n"  # fmt: skip
    )
    return kept


def restart_step(run: Path) -> int:
    from qdphonon.parsers.record_bounds import restart_step as step

    k = step(run / "md-1.restart")
    if k is None:
        raise RuntimeError(f"{run}: md-1.restart missing or cut short")
    return k


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
    import lzma

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
    packed = lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    if len(packed) > MAX_ARCHIVE_BYTES:
        raise RuntimeError(f"{name}: archive of {len(packed)} bytes > {MAX_ARCHIVE_BYTES}; keep fixtures small")
    (dest / "run.tar.xz").write_bytes(packed)
    meta = {"name": name, "files": members, "cp2k": cp2k_version(), **provenance(), **meta}
    (dest / "fixture.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {len(packed)} bytes", file=sys.stderr)


def cp2k_version() -> str:
    from qdphonon.cp2k.xmlspec import cp2k_version as v

    return f"CP2K {v('cp2k.psmp')} (Debian cp2k.psmp, 1 MPI rank, OMP_NUM_THREADS=1)"


def provenance() -> dict[str, str]:
    """When and from which code a fixture was made."""
    if CODE["commit"]:
        import qdphonon

        if not str(Path(qdphonon.__file__)).startswith(CODE["path"]):
            raise RuntimeError(f"qdphonon imported from {qdphonon.__file__}, not from {CODE['path']}")
        return {"made_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "qdphonon_code": f"git archive {CODE['commit']} workflow (--code-from {CODE['rev']})",
                "command": "python tests/data/make_fixtures.py " + shlex.join(sys.argv[1:])}  # fmt: skip
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    try:  # code this script uses that differs from the commit (other work in the tree)
        changed = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", *USED_CODE], cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        changed = ["unknown"]
    return {"made_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "qdphonon_commit": commit,
            "used_code_changed_since_commit": changed,
            "command": "python tests/data/make_fixtures.py " + shlex.join(sys.argv[1:])}  # fmt: skip


def fresh(work: Path, name: str, structure: Path) -> Path:
    run = work / name
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copy(structure, run / "structure.xyz")
    return run


def make_xtb_20steps(work: Path, s1: Path) -> None:
    run, log = fresh(work, "xtb_cs4pbbr6_20steps", s1), []
    md_input(run, log, "--level", "xtb", "--steps", "20")
    segment_input(run, 0, log)
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s1, {"commands": log, "what": "GFN1-xTB NVT MD of relaxed Cs4PbBr6, 20 steps of 2 fs, seed 2022, uninterrupted"})


def make_xtb_restart(work: Path, s1: Path) -> None:
    run, log = fresh(work, "xtb_cs4pbbr6_restart", s1), []
    md_input(run, log, "--level", "xtb", "--steps", "20")
    segment_input(run, 0, log)
    kill = cp2k_killed("seg000.inp", "seg000.out", run, log, after_ener_lines=11, delay_s=0.02)
    k = segment_input(run, 1, log)
    cp2k("seg001.inp", "seg001.out", run, log)
    if restart_step(run) != 20:
        raise RuntimeError(f"{run}: seg001 left md-1.restart at step {restart_step(run)}")
    pack(run.name, run, s1, {
        "commands": log, "kill": kill, "restart_step": k,
        "what": "same input as xtb_cs4pbbr6_20steps; seg000 SIGKILLed part-way, seg001 continues with EXT_RESTART "
                "(wfn restart, CENTER_COORDINATES off) to step 20; compare with xtb_cs4pbbr6_20steps",
    })  # fmt: skip


def make_xtb_killed(work: Path, s1: Path) -> None:
    run, log = fresh(work, "xtb_cs4pbbr6_killed", s1), []
    md_input(run, log, "--level", "xtb", "--steps", "20")
    segment_input(run, 0, log)
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
    md_input(run, log, "--level", "xtb", "--steps", "12", "--max-scf", "14")
    segment_input(run, 0, log)
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s1, {"commands": log, "what": "MAX_SCF 14: some MD steps' SCF not converged (CP2K 2023.1 warns and goes on)"})


def make_pbe_ot(work: Path, s1: Path) -> None:
    run, log = fresh(work, "pbe_cs4pbbr6_ot", s1), []
    md_input(run, log, "--level", "pbe", "--steps", "4", "--overrides-json", json.dumps(CHEAP_PBE, separators=(",", ":")))
    segment_input(run, 0, log)
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s1, {
        "commands": log,
        "what": "cheap PBE (SZV-MOLOPT-SR-GTH, 150 Ry, 14 A box), OT with MO_CUBES band edges, 4 steps from the "
                "xTB-relaxed geometry (a parser fixture, not physics)",
    })  # fmt: skip


def make_pbe_outer_scf(work: Path, s1: Path) -> None:
    """Cheap PBE with an OT inner loop of 3 steps and an outer loop of 2 iterations, 3 MD steps: the first
    evaluations end with ``outer SCF loop FAILED to converge`` (and CP2K's ``SCF run NOT converged``); in a
    later one the inner loop stops unconverged but the outer loop converges (no warning)."""
    import re

    from qdphonon.cp2k.inputs import merge_overrides

    run, log = fresh(work, "pbe_cs4pbbr6_outer_scf", s1), []
    overrides = merge_overrides(CHEAP_PBE, OUTER_SCF_FAILS)
    md_input(run, log, "--level", "pbe", "--steps", "3", "--max-scf", "3",
             "--overrides-json", json.dumps(overrides, separators=(",", ":")))  # fmt: skip
    segment_input(run, 0, log)
    cp2k("seg000.inp", "seg000.out", run, log)
    evals = (run / "seg000.out").read_text().split("SCF WAVEFUNCTION OPTIMIZATION")[1:]
    failed = ["outer SCF loop FAILED" in e for e in evals]
    rescued = ["Leaving inner SCF loop" in e and re.search(r"outer SCF loop converged", e) is not None
               and "NOT converged" not in e for e in evals]  # fmt: skip
    if not any(failed) or not any(rescued):
        raise RuntimeError(f"{run}: expected an evaluation whose outer SCF failed and one rescued by the outer loop: "
                           f"failed {failed}, rescued {rescued}")  # fmt: skip
    pack(run.name, run, s1, {
        "commands": log, "outer_scf_failed": failed, "inner_failed_outer_converged": rescued,
        "what": "cheap PBE (as pbe_cs4pbbr6_ot), OT inner loop MAX_SCF 3, OUTER_SCF MAX_SCF 1, 3 steps: the outer "
                "SCF fails in the first evaluations (CP2K 2023.1 warns and goes on); later the outer loop "
                "converges after an unconverged inner loop",
    })  # fmt: skip


def make_xtb_n2_smearing(work: Path, s2: Path) -> None:
    run, log = fresh(work, "xtb_cs20pb8br36_smearing", s2), []
    md_input(run, log, "--level", "xtb", "--steps", "4", "--smearing-K", "300")
    segment_input(run, 0, log)
    cp2k("seg000.inp", "seg000.out", run, log)
    pack(run.name, run, s2, {"commands": log, "what": "GFN1-xTB Cs20Pb8Br36 with Fermi-Dirac smearing at 300 K, 4 steps"})


SCF_WALLTIME_STOP = "SCF run terminated - exceeded requested execution time"


def make_xtb_walltime(work: Path, s1: Path) -> None:
    """seg000 stopped by WALLTIME in the middle of an SCF (retried with another WALLTIME until it is, at a step
    in 2..17); seg001 continues from the restart file with WALLTIME 0.01 s, so the SCF of the re-evaluated
    restart step is stopped too (after it CP2K prints MD_INI, starts the next step's SCF and stops that one
    as well); seg002 continues again from the same restart file to step 20."""
    import re

    run, log = fresh(work, "xtb_cs4pbbr6_walltime", s1), []
    md_input(run, log, "--level", "xtb", "--steps", "20")
    walltime, attempts = 0.6, []
    for _ in range(15):
        for p in run.iterdir():
            if p.name not in ("md.inp", "structure.xyz"):
                p.unlink()
        tries: list[str] = []
        segment_input(run, 0, tries, walltime_s=walltime)
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
    log.append(f"# WALLTIME attempts: {attempts}")
    log += tries
    for i, wt in ((1, 0.01), (2, None)):
        if segment_input(run, i, log, walltime_s=wt) != k:
            raise RuntimeError(f"{run}: seg{i:03d} does not continue from step {k}")
        cp2k(f"seg{i:03d}.inp", f"seg{i:03d}.out", run, log)
        if restart_step(run) != (k if i == 1 else 20):
            raise RuntimeError(f"{run}: seg{i:03d} left md-1.restart at step {restart_step(run)}")
    seg1 = (run / "seg001.out").read_text()
    m = re.search(re.escape(SCF_WALLTIME_STOP) + r".*?MD_INI\| MD initialization", seg1, re.S)
    if m is None or "MD| Step number" in seg1:
        raise RuntimeError(f"{run}: seg001 did not stop in the SCF of its restart step")
    pack(run.name, run, s1, {
        "commands": log, "restart_step": k, "walltime_attempts": attempts,
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
    "pbe_cs4pbbr6_outer_scf": (make_pbe_outer_scf, 1),
    "xtb_cs20pb8br36_smearing": (make_xtb_n2_smearing, 2),
    "xtb_cs4pbbr6_walltime": (make_xtb_walltime, 1),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/qdphonon-fixtures", help="scratch directory for the CP2K runs")
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES), help="remake only these fixtures")
    ap.add_argument("--reuse-structures", action="store_true", help="use the relaxed structures kept in cp2k-2023.1/structures")
    ap.add_argument("--code-from", default="HEAD", metavar="REV",
                    help="take qdphonon from this commit (git archive), not from the working tree (default HEAD; "
                         "'' for the working tree)")  # fmt: skip
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.code_from:
        use_code_from(args.code_from, work)
        print(f"make_fixtures: qdphonon from {CODE['commit']} ({CODE['path']})", file=sys.stderr)
    t0 = time.monotonic()
    names = args.only or list(FIXTURES)
    sizes = sorted({FIXTURES[n][1] for n in names})
    structures = {s: relaxed_structure(work, s, 300.0 if s == 2 else None, args.reuse_structures) for s in sizes}
    for n in names:
        make, size = FIXTURES[n]
        make(work, structures[size])
    print(f"make_fixtures: {len(names)} fixtures in {time.monotonic() - t0:.0f} s with {cp2k_version()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
