"""Where the records of CP2K's shared MD files end, which MD step each one holds, and which
restart file (step, whole or cut short) a continuation reads.

Part of the run-directory contract (:mod:`qdphonon.run.layout` re-exports what others use). Works
on bytes only, so it reads a file as a kill left it: XYZ frames (``N``, a comment line with
``i = <step>``, N atom lines), ``.ener`` lines (step first) and MOLog blocks (a line with
``EIGENVALUES AND OCCUPATION NUMBERS``, ``AFTER SCF STEP`` for a restart guess, ending with
its ``E(Fermi)`` line and an optional ``Band gap`` line). A record is whole when all its lines
are, newline included.

Cutting a file (:func:`cut_file`) first copies the removed bytes to a set-aside file (when
one is named) and only then truncates, so a kill in between leaves both and a repeat does the
same again.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from pathlib import Path
from typing import Mapping

_XYZ_STEP = re.compile(rb"^\s*i\s*=\s*(-?\d+)")

# --- restart files ------------------------------------------------------------------------------

_STEP_START = re.compile(r"^\s*STEP_START_VAL\s+(\d+)\s*$", re.MULTILINE)


def restart_step(path: str | os.PathLike) -> int | None:
    """MD step stored in a CP2K restart file (``STEP_START_VAL``), or None if the file is missing or cut short.

    A complete restart file has its ``&END FORCE_EVAL`` and ends with an ``&END`` line (of
    FORCE_EVAL, or of the EXT_RESTART section that continuations append).
    """
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return None
    lines = text.rstrip().splitlines()
    if not lines or not lines[-1].strip().upper().startswith("&END") or "&END FORCE_EVAL" not in text.upper():
        return None
    m = _STEP_START.search(text)
    return int(m.group(1)) if m else 0


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


# --- trajectories, energies, MO blocks -----------------------------------------------------------



@dataclasses.dataclass(frozen=True)
class Record:
    """One whole record of a file: byte range [start, end) and its MD step (None when it has none)."""

    start: int
    end: int
    step: int | None


def xyz_frames(data: bytes) -> list[Record]:
    """The whole frames at the start of an XYZ file, in order (a leading ``#`` label line is skipped)."""
    frames: list[Record] = []
    pos = 0
    if data.lstrip().startswith(b"#"):
        pos = data.index(b"\n") + 1 if b"\n" in data else len(data)
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        try:
            n = int(data[pos:nl])
        except ValueError:
            break
        if n < 1:
            break
        end = nl + 1
        comment_end = data.find(b"\n", end)
        if comment_end < 0:
            break
        m = _XYZ_STEP.match(data[end:comment_end])
        for _ in range(n + 1):
            nl2 = data.find(b"\n", end)
            if nl2 < 0:
                return frames
            end = nl2 + 1
        frames.append(Record(pos, end, int(m.group(1)) if m else None))
        pos = end
    return frames


def complete_xyz_length(data: bytes) -> int:
    """Byte length of the whole frames at the start of an XYZ file (keeps a leading ``#`` line)."""
    frames = xyz_frames(data)
    if frames:
        return frames[-1].end
    if data.lstrip().startswith(b"#") and b"\n" in data:
        return data.index(b"\n") + 1
    return 0


def ener_lines(data: bytes) -> list[Record]:
    """The whole lines of a ``.ener`` file; ``step`` is the first column (None for ``#`` and blank lines)."""
    out: list[Record] = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return out
        line = data[pos:nl].split()
        step = None
        if line and not line[0].startswith(b"#"):
            try:
                step = int(line[0])
            except ValueError:
                step = None
        out.append(Record(pos, nl + 1, step))
        pos = nl + 1


def complete_lines_length(data: bytes) -> int:
    return data.rfind(b"\n") + 1


@dataclasses.dataclass(frozen=True)
class Block:
    """One MOLog block: byte range, restart-guess block (``AFTER SCF STEP``) or not, whole or cut short."""

    start: int
    end: int
    guess: bool
    complete: bool


def molog_blocks(data: bytes, offset: int = 0) -> list[Block]:
    """The blocks of a MOLog from byte ``offset`` on (only whole lines are read).

    A block runs from its header line to its ``E(Fermi)`` line, or to its ``Band gap``
    line when that follows; a block without ``E(Fermi)`` is ``complete=False`` and runs to
    the last whole line before the next header.
    """
    blocks: list[Block] = []
    end_of_lines = data.rfind(b"\n") + 1
    pos = offset
    cur: dict | None = None
    while pos < end_of_lines:
        nl = data.find(b"\n", pos)
        line = data[pos:nl]
        nxt = nl + 1
        if b"EIGENVALUES AND OCCUPATION NUMBERS" in line:
            if cur is not None:
                blocks.append(Block(cur["start"], cur["end"], cur["guess"], cur["complete"]))
            cur = {"start": pos, "end": nxt, "guess": b"AFTER SCF STEP" in line, "complete": False}
        elif cur is not None:
            if b"E(Fermi)" in line:
                cur["end"], cur["complete"] = nxt, True
            elif b"Band gap" in line and cur["complete"]:
                cur["end"] = nxt
                blocks.append(Block(cur["start"], cur["end"], cur["guess"], True))
                cur = None
            elif not cur["complete"]:
                cur["end"] = nxt
        pos = nxt
    if cur is not None:
        blocks.append(Block(cur["start"], cur["end"], cur["guess"], cur["complete"]))
    return blocks


def complete_molog_length(data: bytes, offset: int = 0) -> int:
    """Byte length up to the end of the last whole MO block (blank and ``#`` lines after it kept)."""
    blocks = molog_blocks(data, offset)
    good = offset
    for b in blocks:
        if not b.complete:
            return b.start
        good = b.end
    # blank lines and comment lines after the last whole block (or at the start) are kept
    end_of_lines = data.rfind(b"\n") + 1
    pos = good
    while pos < end_of_lines:
        nl = data.find(b"\n", pos)
        s = data[pos:nl].strip()
        if s and not s.startswith(b"#"):
            break
        pos = good = nl + 1
    return good


def count_md_blocks(path: str | os.PathLike, offset: int = 0) -> int:
    """Whole MD (not restart-guess) blocks of a MOLog from byte ``offset`` on; 0 for a missing file."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return 0
    return sum(1 for b in molog_blocks(data, offset) if b.complete and not b.guess)


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


def fortran_file_whole(path: Path) -> bool:
    """Whether an unformatted sequential Fortran file (CP2K's ``.wfn``) ends with a whole record."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            return False
        (n,) = struct.unpack_from("<i", data, pos)
        if n < 0 or pos + 8 + n > len(data) or struct.unpack_from("<i", data, pos + 4 + n)[0] != n:
            return False
        pos += 8 + n
    return pos > 0
