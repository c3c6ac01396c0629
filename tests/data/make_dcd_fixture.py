"""Make tests/data/cp2k-2023.1/xtb_cs4pbbr6_dcd_restart/ with real CP2K 2023.1 (see tests/data/DCD.md).

    flock /tmp/qdphonon-cp2k.lock python tests/data/make_dcd_fixture.py [--work DIR]

About a minute on 2 cores. Four GFN1-xTB MDs of the 11-atom Cs4PbBr6 dot (``qdphonon build --size
1 1 1``), 20 steps each, same input and seed apart from the print keys:

- ``reference_xyz``: positions and velocities as XYZ, uninterrupted (the independent reference);
- ``reference_dcd``: the same with ``FORMAT DCD`` (CP2K allows one TRAJECTORY section only, so the
  XYZ comparison needs this second run; the ``.ener`` files of the two are compared for identity);
- ``restart``: as ``reference_dcd``, SIGKILLed part-way, trimmed, continued with ``EXT_RESTART``
  (``qdphonon.cp2k.continuation.continuation_tree``) in the same directory;
- ``restart_overlap``: DCD every 3 steps and the restart file every 4 steps, killed and continued,
  so the continuation re-prints a frame the killed segment already wrote (a restart overlap).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEST = HERE / "cp2k-2023.1" / "xtb_cs4pbbr6_dcd_restart"
STEPS = 20
KILL_AFTER_ENER_LINES = 11
KILL_DELAY_S = 0.02
DCD = {"trajectory": {"format": "DCD"}, "velocities": {"format": "DCD"}}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OPENBLAS_NUM_THREADS="1",
             OMP_NUM_THREADS="1")  # fmt: skip
    return e


def sh(cmd: list[str], cwd: Path, log: list[str], check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    log.append(shlex.join(cmd))
    print(f"[{cwd.name}] $ {shlex.join(cmd)}", file=sys.stderr)
    return subprocess.run(cmd, cwd=cwd, env=env(), check=check, timeout=timeout, capture_output=not check, text=True)


def cp2k_killed(inp: str, out: str, cwd: Path, log: list[str]) -> dict:
    """Start CP2K and SIGKILL it KILL_DELAY_S after md-1.ener has KILL_AFTER_ENER_LINES lines."""
    cmd = ["cp2k.psmp", "-i", inp, "-o", out]
    log.append(f"{shlex.join(cmd)}  # SIGKILL {KILL_DELAY_S} s after md-1.ener has {KILL_AFTER_ENER_LINES} lines")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env())
    ener = cwd / "md-1.ener"
    while proc.poll() is None:
        n = ener.read_bytes().count(b"\n") if ener.exists() else 0
        if n >= KILL_AFTER_ENER_LINES:
            time.sleep(KILL_DELAY_S)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    rc = proc.wait()
    if rc != -signal.SIGKILL:
        raise RuntimeError(f"{cwd}: CP2K was not killed (exit status {rc})")
    return {"killed_after_ener_lines": KILL_AFTER_ENER_LINES, "delay_s": KILL_DELAY_S, "exit_status": rc}


def sizes(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(run.iterdir()) if p.suffix in (".dcd", ".xyz", ".ener")}


def first_input(run: Path, log: list[str], every: int, overrides: dict | None) -> None:
    cmd = ["qdphonon", "cp2k-input", "--structure", "structure.xyz", "--level", "xtb", "--steps", str(STEPS),
           "--trajectory-every-steps", str(every), "--out", "seg000.inp"]  # fmt: skip
    if overrides:
        cmd[-2:-2] = ["--overrides-json", json.dumps({"motion": {"print": overrides}}, sort_keys=True)]
    sh(cmd, run, log)


def continuation(run: Path, log: list[str], k: int) -> None:
    """seg001.inp: seg000.inp's tree as the engine continues it (EXT_RESTART, counters, wfn, remaining steps)."""
    from qdphonon.cp2k.continuation import continuation_tree
    from qdphonon.cp2k.xmlspec import installed_xmlspec, parse_input_text, render_input

    spec, desc = installed_xmlspec("cp2k.psmp")
    tree = continuation_tree(parse_input_text((run / "seg000.inp").read_text(), spec), restart_file="md-1.restart",
                             wfn_file="md-RESTART.wfn", remaining_steps=STEPS - k)  # fmt: skip
    header = f"! qdphonon segment 001 of seg000.inp: continues from MD step {k} (md-1.restart); validated against {desc}\n"
    (run / "seg001.inp").write_text(header + render_input(tree, spec))
    log.append(f"continuation_tree(seg000.inp tree, restart_file='md-1.restart', wfn_file='md-RESTART.wfn', "
               f"remaining_steps={STEPS - k}) -> seg001.inp  # make_dcd_fixture.py")  # fmt: skip


def trim(run: Path, log: list[str]) -> dict[str, int]:
    """What the engine must do before a continuation: whole DCD frames, whole .ener lines and MO blocks."""
    from qdphonon.parsers.dcd import dcd_files, trim_dcd
    from qdphonon.engines.file_cuts import truncate_to_complete_records
    from qdphonon.run.layout import run_files

    files = run_files("md", "mo")
    removed = truncate_to_complete_records(run, {k: v for k, v in files.items() if k in ("energies", "molog")})
    for name in dcd_files("md").values():
        removed[name] = trim_dcd(run / name)
    log.append(f"qdphonon.parsers.dcd.trim_dcd + engines.file_cuts.truncate_to_complete_records('.')  # removed bytes: {removed}")
    return removed


def restart_step(run: Path) -> int:
    from qdphonon.parsers.record_bounds import restart_step as rs

    k = rs(run / "md-1.restart")
    if k is None:
        raise RuntimeError(f"{run}: no whole md-1.restart")
    return k


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/qdphonon-dcd-fixture")
    ap.add_argument("--no-pack", action="store_true", help="run CP2K, do not write the fixture")
    ap.add_argument("--pack-only", action="store_true", help="write the fixture from an earlier --work run")
    args = ap.parse_args()
    work = Path(args.work)
    if args.pack_only:
        return pack(work, json.loads((work / "fixture.json").read_text()))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    record: dict = {"name": DEST.name, "runs": {}}
    log: list[str] = []
    sh(["qdphonon", "build", "--size", "1", "1", "1", "--out", "structure.xyz"], work, log)
    record["structure"] = log[:]

    def fresh(name: str) -> Path:
        d = work / name
        d.mkdir()
        shutil.copy(work / "structure.xyz", d / "structure.xyz")
        return d

    # CP2K allows one TRAJECTORY section: a second one (to print XYZ and DCD in one run) is refused.
    probe = fresh("probe_two_trajectory_sections")
    plog: list[str] = []
    first_input(probe, plog, 1, None)
    text = (probe / "seg000.inp").read_text()
    text = text.replace("      &TRAJECTORY ON\n", "      &TRAJECTORY ON\n         FORMAT DCD\n      &END TRAJECTORY\n"
                        "      &TRAJECTORY ON\n", 1)  # fmt: skip
    (probe / "seg000.inp").write_text(text)
    res = sh(["cp2k.psmp", "-i", "seg000.inp", "-o", "seg000.out"], probe, plog, check=False, timeout=120)
    out = (probe / "seg000.out").read_text(errors="replace") if (probe / "seg000.out").exists() else ""
    msg = [ln.strip() for ln in (out + res.stdout + res.stderr).splitlines() if "TRAJECTORY" in ln.upper() and "*" in ln]
    record["two_trajectory_sections"] = {"exit_status": res.returncode, "message": msg[:3]}

    for name, every, extra in (("reference_xyz", 1, None), ("reference_dcd", 1, DCD)):
        run, rlog = fresh(name), []
        first_input(run, rlog, every, extra)
        sh(["cp2k.psmp", "-i", "seg000.inp", "-o", "seg000.out"], run, rlog)
        record["runs"][name] = {"commands": rlog, "bytes": sizes(run)}

    for name, every, extra in (("restart", 1, DCD), ("restart_overlap", 3, {**DCD, "restart": {"each": {"md": 4}}})):
        run, rlog = fresh(name), []
        first_input(run, rlog, every, extra)
        kill = cp2k_killed("seg000.inp", "seg000.out", run, rlog)
        seg0 = sizes(run)
        removed = trim(run, rlog)
        k = restart_step(run)
        continuation(run, rlog, k)
        sh(["cp2k.psmp", "-i", "seg001.inp", "-o", "seg001.out"], run, rlog)
        if restart_step(run) != STEPS:
            raise RuntimeError(f"{run}: seg001 ended at step {restart_step(run)}")
        record["runs"][name] = {"commands": rlog, "kill": kill, "restart_step": k, "bytes_after_seg000": seg0,
                                "trimmed_bytes": removed, "bytes": sizes(run),
                                "trajectory_every_steps": every}  # fmt: skip

    from qdphonon.cp2k.xmlspec import cp2k_version

    record["cp2k"] = f"CP2K {cp2k_version('cp2k.psmp')} (Debian cp2k.psmp, 1 MPI rank, OMP_NUM_THREADS=1)"
    keep = re.compile(r"^(seg\d{3}\.(inp|out)|md-(pos|vel)-1\.(xyz|dcd)|md-1\.ener|md-mo-1\.MOLog|structure\.xyz)$")
    record["files"] = {}
    for name in record["runs"]:
        record["files"][name] = sorted(p.name for p in (work / name).iterdir() if keep.match(p.name))
    (work / "fixture.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return 0 if args.no_pack else pack(work, record)


WHAT = {
    "reference_xyz": "uninterrupted, positions and velocities as XYZ every step: the independent reference",
    "reference_dcd": "the same input with FORMAT DCD (the .ener equals reference_xyz's but for UsedTime)",
    "restart": "as reference_dcd, SIGKILLed part-way, trimmed, continued with EXT_RESTART to step 20 in the same directory",
    "restart_overlap": "DCD every 3 steps, restart file every 4 steps; killed part-way and continued from its "
                       "restart_step: frames the killed segment printed after that step are printed again",
}


def pack(work: Path, record: dict) -> int:
    record = {**record, "what": WHAT, "made_by": "python tests/data/make_dcd_fixture.py (tests/data/DCD.md)"}
    (work / "fixture.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    DEST.mkdir(parents=True, exist_ok=True)
    with tarfile.open(DEST / "run.tar.xz", "w:xz", preset=9) as tar:
        for name, files in record["files"].items():
            for f in files:
                tar.add(work / name / f, arcname=f"{name}/{f}", filter=_clean)
    shutil.copy(work / "fixture.json", DEST / "fixture.json")
    print(f"{DEST}: run.tar.xz {(DEST / 'run.tar.xz').stat().st_size} bytes", file=sys.stderr)
    return 0


def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


if __name__ == "__main__":
    sys.exit(main())
