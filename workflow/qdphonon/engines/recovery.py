"""Recovery of an MD run directory after a kill at any moment (part of the run-directory contract).

Called by the engine with the directory's lock held (:mod:`qdphonon.run.lock`), so no
CP2K of this directory runs. Every leftover is recognised, recorded in ``segments.json`` and
set aside under ``set_aside/<segment>/`` (never silently deleted, except the engine's own
half-written temporary JSON files):

========================================  ==================================================
what a kill left                          what recovery does
========================================  ==================================================
``.segments.json.*.tmp``                  removed (the engine was killed writing its state;
                                          ``segments.json`` itself is replaced atomically)
a segment still ``running``, no process   ``killed`` (or ``completed``/``walltime``/
                                          ``external_exit``/``failed`` when CP2K ended)
an empty main output (CP2K start-up)      segment ``empty``; the file moved to set_aside
``EXIT``, ``WAIT`` files (:func:`stop_files`) moved to set_aside (the next call is asked to run)
a torn restart file or wavefunction       set aside; the backup copied over it, so CP2K's
                                          next backup rotation keeps a whole copy
trajectory / energy records past the      cut (a continuation from step k writes k+1, ...
restart step k, torn last line or frame   again); the bytes go to set_aside (DCD frames are
                                          mapped to steps through the ``.ener`` file)
MOLog blocks of steps >= k, a torn block  cut: a continuation re-evaluates step k; the
                                          segment's ``molog_blocks`` records what it left
========================================  ==================================================

After this every shared file holds each MD step up to k exactly once (the MOLog up to k - 1),
and the continuation appends from there.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from qdphonon.parsers.dcd_steps import dcd_length_through_step
from qdphonon.parsers.verdicts import OutputEnd, output_end
from qdphonon.engines.file_cuts import cut_after_step, cut_file, cut_molog_blocks, restart_source, truncate_to_complete_records
from qdphonon.parsers.record_bounds import count_md_blocks, ener_lines
from qdphonon.run.layout import SET_ASIDE_DIR, SegmentEnd

_STALE_TMP = re.compile(r"^\..+\.tmp$")


def stop_files(project: str) -> list[str]:
    """The files that make CP2K stop an MD or pause (``WAIT``; CP2K writes ``WAITING`` meanwhile);
    CP2K looks for them at its first check and then every 20 s of its run time."""
    return ["EXIT", f"{project}.EXIT", "EXIT_MD", f"{project}.EXIT_MD", "WAIT", "WAITING"]


def set_aside_dir(run_dir: Path, segment: Mapping[str, Any] | None) -> Path:
    """``set_aside/seg003`` for segment 3 (``set_aside/before-seg000`` before any segment)."""
    name = Path(segment["output"]).stem if segment else "before-seg000"
    return run_dir / SET_ASIDE_DIR / name


def _move_aside(path: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / path.name
    n = 1
    while dest.exists():
        dest, n = dest_dir / f"{path.name}.{n}", n + 1
    os.replace(path, dest)
    return dest


def _copy_over(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file and ``os.replace`` (a kill leaves either)."""
    tmp = dst.with_name(f".{dst.name}.copy.tmp")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)


def _note(state: dict[str, Any], text: str) -> None:
    state.setdefault("recoveries", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": text})


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Remove the engine's half-written temporary files (``.segments.json.XXXX.tmp`` and the like)."""
    removed = []
    for p in run_dir.iterdir():
        if p.is_file() and _STALE_TMP.match(p.name):
            p.unlink()
            removed.append(p.name)
    return sorted(removed)


def _molog_grew(run_dir: Path, seg: Mapping[str, Any], files: Mapping[str, str | None]) -> bool:
    if not files.get("molog") or "molog_start" not in seg:
        return False
    return count_md_blocks(run_dir / files["molog"], int(seg["molog_start"])) > 0


def reconcile_killed(state: dict[str, Any], run_dir: Path, files: Mapping[str, str | None]) -> None:
    """A segment still marked ``running`` lost its engine (SIGKILL, node failure): say how it ended.

    Only called with the lock held, so its CP2K is gone too.
    """
    for seg in state["segments"]:
        if seg.get("ended") != SegmentEnd.RUNNING:
            continue
        out = run_dir / seg["output"]
        seg["end_step"] = restart_source(run_dir, files)[1]
        seg["exit_status"] = None
        seg["wall_s"] = round(out.stat().st_mtime - seg["started_epoch"], 3) if out.is_file() else None
        if (not out.is_file() or out.stat().st_size == 0) and not _molog_grew(run_dir, seg, files):
            seg["ended"], seg["note"] = SegmentEnd.EMPTY.value, "killed before CP2K wrote its output; set aside"
            seg["molog_blocks"] = 0
            continue
        end = output_end(out)
        if not end.ended:
            seg["ended"], seg["note"] = SegmentEnd.KILLED.value, "engine process gone while CP2K ran (killed with its job)"
        elif seg["end_step"] is not None and seg["end_step"] >= state["steps"]:
            seg["ended"], seg["note"] = SegmentEnd.COMPLETED.value, "engine process gone after CP2K finished"
        elif end is OutputEnd.WALLTIME:
            seg["ended"], seg["note"] = SegmentEnd.WALLTIME.value, "engine process gone after CP2K's WALLTIME stop"
        elif end is OutputEnd.EXIT_FILE:
            seg["ended"], seg["note"] = SegmentEnd.EXTERNAL_EXIT.value, "engine process gone after an EXIT-file stop"
        else:
            seg["ended"], seg["note"] = SegmentEnd.FAILED.value, "engine process gone; CP2K ended early for no stated reason"
        if files.get("molog") and "molog_start" in seg:
            seg["molog_blocks"] = count_md_blocks(run_dir / files["molog"], int(seg["molog_start"]))


def prepare_run_dir(run_dir: Path, state: dict[str, Any], files: Mapping[str, str | None], project: str,
                    killed_orphans: list[dict[str, Any]] = ()) -> None:  # fmt: skip
    """Everything a kill can leave, before the engine decides how to go on (see the module docstring)."""
    stale = remove_stale_temp_files(run_dir)
    if stale:
        _note(state, f"removed the engine's half-written temporary files {stale} (killed while writing its state)")
    if killed_orphans:
        _note(state, "killed CP2K processes left by a dead engine: "
                     + ", ".join(f"PID {p['pid']} ({p['cmd'][:60]})" for p in killed_orphans))  # fmt: skip
    reconcile_killed(state, run_dir, files)
    for seg in state["segments"]:
        out = run_dir / seg["output"]
        if seg.get("ended") == SegmentEnd.EMPTY.value and out.is_file() and out.stat().st_size == 0:
            dest = _move_aside(out, set_aside_dir(run_dir, seg))
            seg.setdefault("set_aside", []).append(str(dest.relative_to(run_dir)))
    last = state["segments"][-1] if state["segments"] else None
    for name in stop_files(project):
        if (run_dir / name).exists():
            dest = _move_aside(run_dir / name, set_aside_dir(run_dir, last))
            _note(state, f"moved the stop file {name} to {dest.relative_to(run_dir)} (this call is asked to run)")


def _owner(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """The segment whose records end the shared files: the last one that wrote anything."""
    for seg in reversed(state["segments"]):
        if seg.get("ended") != SegmentEnd.EMPTY.value:
            return seg
    return None


def _cut_dcd(path: Path, ener_steps: list[int], k: int, owner: Mapping[str, Any] | None, run_dir: Path,
             aside: Path) -> int:  # fmt: skip
    """Cut a DCD trajectory at its first frame past step ``k`` (frames mapped to steps through the
    ``.ener`` steps read before that file was cut); a file without a whole header is moved aside
    whole (CP2K writes the header only into a new file)."""

    ended = owner is not None and output_end(run_dir / owner["output"]).ended
    keep = dcd_length_through_step(path, ener_steps, k, last_segment_ended=ended)
    if keep == 0:
        size = path.stat().st_size
        _move_aside(path, aside)
        return size
    return cut_file(path, keep, aside / path.name)


def prepare_continuation(run_dir: Path, state: dict[str, Any], files: Mapping[str, str | None], k: int,
                         restart_name: str, wfn: str | None, *, molog_every_step: bool = True) -> tuple[str, str | None]:
    """Trim the run back to what a continuation from the restart file of step ``k`` rewrites.

    Returns the restart and wavefunction file names the continuation reads (a torn current
    file is set aside and its backup copied over it first). Records what it did in the
    owning segment (``end_step``, ``molog_blocks``, ``set_aside``) and in ``recoveries``.
    Idempotent: a kill part-way and a repeat give the same result.
    """
    owner = _owner(state)
    aside = set_aside_dir(run_dir, owner)
    done: dict[str, Any] = {}
    main_restart = files["restart"]
    if restart_name != main_restart:
        if (run_dir / main_restart).exists():
            done[main_restart] = str(_move_aside(run_dir / main_restart, aside).relative_to(run_dir))
        _copy_over(run_dir / restart_name, run_dir / main_restart)
        restart_name = main_restart
    if wfn is not None and wfn != files["wfn"]:
        if (run_dir / files["wfn"]).exists():
            done[files["wfn"]] = str(_move_aside(run_dir / files["wfn"], aside).relative_to(run_dir))
        _copy_over(run_dir / wfn, run_dir / files["wfn"])
        wfn = files["wfn"]
    ener = run_dir / files["energies"]
    ener_steps = [r.step for r in ener_lines(ener.read_bytes()) if r.step is not None] if ener.is_file() else []
    cut = {n: b for n, b in cut_after_step(run_dir, files, k, aside).items() if b}
    for key in ("positions", "velocities"):
        path = run_dir / files[key] if files.get(key) else None
        if path is not None and path.suffix == ".dcd" and path.is_file():
            removed = _cut_dcd(path, ener_steps, k, owner, run_dir, aside)
            if removed:
                cut[path.name] = removed
    molog = run_dir / files["molog"] if files.get("molog") else None
    if molog is not None and molog.is_file():
        if owner is not None and "molog_start" in owner and molog_every_step:
            keep = max(0, k - int(owner["start_step"]))
            removed, kept = cut_molog_blocks(molog, int(owner["molog_start"]), keep, aside / molog.name)
            owner["molog_blocks"] = kept
            if kept < keep:
                _note(state, f"{molog.name}: segment {owner['output']} left {kept} MD blocks, expected {keep} "
                             f"(steps {owner['start_step']}..{k - 1}); their band edges are missing")  # fmt: skip
        else:
            removed = truncate_to_complete_records(run_dir, {"molog": files["molog"]}).get(molog.name, 0)
        if removed:
            cut[molog.name] = removed
    if owner is not None:
        owner["end_step"] = k
        if cut or done:
            owner.setdefault("set_aside", [])
            owner["set_aside"] = sorted(set(owner["set_aside"]) | {str((aside / n).relative_to(run_dir)) for n in cut}
                                        | set(done.values()))  # fmt: skip
    if cut or done:
        what = ", ".join([f"{n}: {b} bytes" for n, b in cut.items()] + [f"torn {n} replaced by its backup" for n in done])
        _note(state, f"before continuing from MD step {k} ({restart_name}): {what}; moved to {aside.relative_to(run_dir)}")
    return restart_name, wfn
