"""Where the records of CP2K's files end: XYZ frames, ``.ener`` lines, MOLog blocks, the step a
restart file holds, and whether a Fortran unformatted file (``.wfn``) is whole.

The one reader of these boundaries (the engine's recovery cuts files with them; the relaxation
counts its frames). Works on bytes only, so it reads a file as a kill left it: XYZ frames
(``N``, a comment line with ``i = <step>``, N atom lines), ``.ener`` lines (step first) and
MOLog blocks (a line with ``EIGENVALUES AND OCCUPATION NUMBERS``, ``AFTER SCF STEP`` for a
restart guess, ending with its ``E(Fermi)`` line and an optional ``Band gap`` line). A record is
whole when all its lines are, newline included. A new CP2K print variant of these files is a
change here only.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from pathlib import Path

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


# --- trajectories, energies, MO blocks ---------------------------------------------------------


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
