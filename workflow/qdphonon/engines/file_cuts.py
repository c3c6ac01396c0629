"""Cutting an MD run's shared files back to whole records, or to a restart step, before a
continuation appends; and which restart file (step, whole or cut short) it continues from.

Used by :mod:`qdphonon.engines.recovery` with the directory's lock held. Where records end is
read by :mod:`qdphonon.parsers.record_bounds`; this module only decides what to keep. Cutting a
file (:func:`cut_file`) first copies the removed bytes to a set-aside file (when one is named)
and only then truncates, so a kill in between leaves both and a repeat does the same again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from qdphonon.parsers.record_bounds import (
    complete_lines_length, complete_molog_length, complete_xyz_length, ener_lines, molog_blocks, restart_step, xyz_frames,
)  # fmt: skip


def restart_source(run_dir: Path, files: Mapping[str, str | None]) -> tuple[str | None, int | None, str | None]:
    """(restart file name, its step, wavefunction file name or None) to continue from.

    Prefers CP2K's current restart file and falls back to its backup when the current one is
    cut short; the wavefunction (only an SCF guess) is used when it looks whole (same size as
    its backup), else its backup, else none.
    """
    chosen: tuple[str | None, int | None] = (None, None)
    for name in (files["restart"], f"{files['restart']}.bak-1"):
        step = restart_step(run_dir / name)
        if step is not None:
            chosen = (name, step)
            break
    wfn = None
    main, bak = run_dir / files["wfn"], run_dir / f"{files['wfn']}.bak-1"
    if main.is_file() and (not bak.is_file() or main.stat().st_size == bak.stat().st_size):
        wfn = files["wfn"]
    elif bak.is_file():
        wfn = bak.name
    return chosen[0], chosen[1], wfn


def cut_file(path: Path, keep: int, set_aside: Path | None = None) -> int:
    """Truncate ``path`` to ``keep`` bytes, first copying the removed bytes to ``set_aside``; bytes removed."""
    size = path.stat().st_size
    if keep >= size:
        return 0
    if set_aside is not None:
        set_aside.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src:
            src.seek(keep)
            tail = src.read()
        with open(set_aside, "wb") as fh:
            fh.write(tail)
            fh.flush()
            os.fsync(fh.fileno())
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return size - keep


def _files(run_dir: Path, files: Mapping[str, str | None], keys) -> list[tuple[str, Path]]:
    out = []
    for key in keys:
        name = files.get(key)
        if name and (run_dir / name).is_file():
            out.append((key, run_dir / name))
    return out


def truncate_to_complete_records(run_dir: str | os.PathLike, files: Mapping[str, str | None]) -> dict[str, int]:
    """Cut a killed segment's partial last records from the shared files, before a continuation appends.

    Trims the position and velocity XYZ files to whole frames, the ``.ener`` file to whole
    lines and the MOLog to whole blocks. Complete records are never removed (the parser
    aligns duplicates and a killed step's extra MO block). Returns the number of bytes
    removed per file name (0 for an untouched file; missing files are skipped).
    """
    run_dir = Path(run_dir)
    removed: dict[str, int] = {}
    measures = {"positions": complete_xyz_length, "velocities": complete_xyz_length,
                "energies": complete_lines_length, "molog": complete_molog_length}  # fmt: skip
    for key, path in _files(run_dir, files, measures):
        if key in ("positions", "velocities") and path.suffix != ".xyz":
            continue
        removed[path.name] = cut_file(path, measures[key](path.read_bytes()))
    return removed


def cut_after_step(run_dir: str | os.PathLike, files: Mapping[str, str | None], step: int,
                   set_aside_dir: Path | None = None) -> dict[str, int]:
    """Cut the ``.ener`` and XYZ files at their first whole record past MD step ``step`` (and any
    partial tail): what a continuation from the restart file of ``step`` writes again.

    The removed bytes go to ``set_aside_dir/<file name>`` when given. Returns bytes removed per
    file name.
    """
    run_dir = Path(run_dir)
    removed: dict[str, int] = {}
    readers = {"positions": xyz_frames, "velocities": xyz_frames, "energies": ener_lines}
    for key, path in _files(run_dir, files, readers):
        if key in ("positions", "velocities") and path.suffix != ".xyz":
            continue
        data = path.read_bytes()
        records = readers[key](data)
        if records:
            keep = records[-1].end
        else:
            keep = 0 if key == "energies" else complete_xyz_length(data)
        for r in records:
            if r.step is not None and r.step > step:
                keep = r.start
                break
        removed[path.name] = cut_file(path, keep, None if set_aside_dir is None else set_aside_dir / path.name)
    return removed


def cut_molog_blocks(path: Path, offset: int, keep_md: int, set_aside: Path | None = None) -> tuple[int, int]:
    """Keep the first ``keep_md`` whole MD blocks of a MOLog after byte ``offset`` (and the
    restart-guess blocks among them); cut the rest. Returns (bytes removed, MD blocks kept)."""
    data = path.read_bytes()
    offset = min(offset, len(data))
    cut, kept = offset, 0
    for b in molog_blocks(data, offset):
        if not b.complete:
            break
        if b.guess:
            continue  # kept only when an MD block after it is kept (it lies before the cut)
        if kept == keep_md:
            break
        kept += 1
        cut = b.end
    return cut_file(path, cut, set_aside), kept
