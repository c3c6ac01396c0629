"""CP2K's binary DCD trajectories (``MOTION/PRINT/TRAJECTORY`` and ``VELOCITIES`` with ``FORMAT DCD``).

What CP2K 2023.1 writes (``src/motion_utils.F`` ``write_trajectory``, ``src/particle_methods.F``
``write_particle_coordinates``, ``src/input/cp_output_handling.F`` ``cp_print_key_unit_nr``; checked
on real runs, ``tests/data/DCD.md``):

Files
    ``{project}-pos-1.dcd`` (positions) and ``{project}-vel-1.dcd`` (velocities): Fortran
    ``UNFORMATTED`` sequential files, native byte order (little-endian on x86-64), every record
    framed by 4-byte length markers (gfortran). The file is opened with ``POSITION APPEND`` for
    every frame and closed after it.
Header (written only when the file does not exist yet, or at step 0 of a fresh run, which rewinds it)
    record 1 (84 bytes): ``CORD`` (positions) or ``VEL `` (velocities), then 20 ``int32``
    ``ICNTRL``: NSET = 0 (never updated: CP2K does not count its frames), ISTART = the MD step of
    the first frame, NSAVC = the print key's ``EACH MD``, five zeros, NAMNF = 0, DELTA = the time
    step **in fs** as ``float32`` (not CHARMM's AKMA unit), 1 (a unit-cell record precedes every
    frame), eight zeros, 24 (CHARMM version). record 2: ``int32`` 2 and two 80-character titles
    (``REMARK CORD DCD file created by CP2K version 2023.1 (revision ...)`` and ``REMARK user@host``).
    record 3: ``int32`` number of atoms.
Frames (one per printed MD step, no step number)
    a 48-byte record of six ``float64`` ``a, gamma, b, beta, alpha, c`` (the cell lengths times the
    same unit factor as the values, angles in degrees), then three records of ``float32`` x, y, z
    of every atom. Positions in Angstrom (``UNIT angstrom``); velocities in bohr per atomic time
    unit (``UNIT bohr*au_t^-1``; their cell record therefore holds the box in bohr). The values
    are ``float32(float32(v_internal) * float32(unit factor))``: within 1.5 float32 ulp of the
    XYZ print of the same run.
Continuations (``EXT_RESTART`` with ``RESTART_COUNTERS``)
    append frames to the same file, header untouched (ISTART stays that of the first segment);
    the restart step itself is not printed again and the print key's ``EACH`` counts the
    absolute MD step, so a segment's frames are the multiples of NSAVC after its restart step.
    Frames of a killed segment beyond the restart step it is continued from are printed again by
    the continuation (later copy wins, as for XYZ).

Mapping frames to MD steps (:func:`frame_steps`) uses the ``.ener`` file, which CP2K writes and
closes every step *before* the trajectory frames of that step, and the restart file *after* them:
every energy line whose step is a multiple of NSAVC has its frame, except possibly the last line of
a killed segment (killed between the two writes). See :func:`frame_steps` for how that one
uncertain frame per killed segment is resolved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from qdphonon.parsers.common import _require_file, _warn
from qdphonon.run.files import run_files

CP2K_BOHR_A = 0.52917720859
"""CP2K 2023.1's bohr in Angstrom (CODATA 2006, ``physcon``): the unit factor of its position prints."""

CP2K_KINDS = {b"CORD": "positions", b"VEL ": "velocities", b"FRC ": "forces", b"FML ": "force_mixing_labels"}
"""The 4-character identifiers CP2K writes in the first header record."""

SYNTHETIC_WORD = "synthetic"
"""A title containing this word (any case) marks a DCD file written by the mock engine."""

_MARKER = 4


def dcd_files(project: str) -> dict[str, str]:
    """CP2K's DCD file names of ``project``: ``{project}-pos-1.dcd`` and ``{project}-vel-1.dcd``."""
    files = run_files(project, None, trajectory_format="dcd")
    return {"positions": files.positions, "velocities": files.velocities}


# --- header ------------------------------------------------------------------------------------

def _record(buf: bytes, pos: int, endian: str, path: Path, what: str) -> tuple[bytes, int]:
    """One Fortran sequential record at ``pos``: (payload, position after it); ValueError naming the offset."""
    if pos + _MARKER > len(buf):
        raise ValueError(f"{path}: byte {pos}: file ends inside the DCD header ({what}: no record marker)")
    n = int(np.frombuffer(buf, dtype=endian + "i4", count=1, offset=pos)[0])
    end = pos + _MARKER + n
    if n < 0 or end + _MARKER > len(buf):
        raise ValueError(f"{path}: byte {pos}: file ends inside the DCD header ({what}: record of {n} bytes, "
                         f"{len(buf) - pos - _MARKER} left)")  # fmt: skip
    tail = int(np.frombuffer(buf, dtype=endian + "i4", count=1, offset=end)[0])
    if tail != n:
        raise ValueError(f"{path}: byte {end}: DCD header {what}: closing record marker {tail} != opening {n}")
    return buf[pos + _MARKER : end], end + _MARKER


_HEADER_PROBE = 1 << 16


def read_dcd_header(path: str | os.PathLike) -> dict[str, Any]:
    """The header of a DCD file (no frames read): a dict with ``path``, ``kind`` (``positions`` /
    ``velocities`` / ...; ``id`` the raw 4 characters), ``endian`` (``<`` or ``>``), ``nset``,
    ``istart``, ``nsavc``, ``nstep``, ``delta`` (CP2K: the time step in fs), ``has_cell``,
    ``charmm_version``, ``titles``, ``synthetic`` (a title says so), ``n_atoms``,
    ``header_bytes``, ``frame_bytes``, ``file_bytes``.

    ValueError naming the file and byte offset when the header is cut short or not a DCD
    (4-dimensional and fixed-atom DCDs are refused: CP2K writes neither).
    """
    path = Path(path)
    _require_file(path, "DCD trajectory")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        buf = fh.read(_HEADER_PROBE)
    if len(buf) < _MARKER:
        raise ValueError(f"{path}: byte 0: file ends inside the DCD header ({len(buf)} bytes)")
    endian = None
    for e in ("<", ">"):
        if int(np.frombuffer(buf, dtype=e + "i4", count=1)[0]) == 84:
            endian = e
            break
    if endian is None:
        first = int(np.frombuffer(buf, dtype="<i4", count=1)[0])
        raise ValueError(f"{path}: byte 0: not a DCD file with 4-byte record markers (first record marker "
                         f"{first}, expected 84 in either byte order)")  # fmt: skip
    rec1, pos = _record(buf, 0, endian, path, "record 1")
    ident = rec1[:4]
    icntrl = np.frombuffer(rec1, dtype=endian + "i4", count=20, offset=4)
    delta = float(np.frombuffer(rec1, dtype=endian + "f4", count=1, offset=4 + 9 * 4)[0])
    if icntrl[10] not in (0, 1):
        raise ValueError(f"{path}: byte 48: DCD unit-cell flag {int(icntrl[10])} is neither 0 nor 1")
    if icntrl[11] != 0:
        raise ValueError(f"{path}: byte 52: 4-dimensional DCD (flag {int(icntrl[11])}) is not supported")
    if icntrl[8] != 0:
        raise ValueError(f"{path}: byte 40: DCD with {int(icntrl[8])} fixed atoms is not supported")
    rec2, pos2 = _record(buf, pos, endian, path, "title record")
    if len(rec2) < 4 or (len(rec2) - 4) % 80 != 0:
        raise ValueError(f"{path}: byte {pos}: DCD title record of {len(rec2)} bytes is not 4 + 80*n")
    n_titles = int(np.frombuffer(rec2, dtype=endian + "i4", count=1)[0])
    if n_titles * 80 != len(rec2) - 4:
        raise ValueError(f"{path}: byte {pos}: DCD title record says {n_titles} titles but holds {(len(rec2) - 4) // 80}")
    titles = [rec2[4 + 80 * i : 84 + 80 * i].decode("ascii", "replace").rstrip() for i in range(n_titles)]
    rec3, header_bytes = _record(buf, pos2, endian, path, "atom-count record")
    if len(rec3) != 4:
        raise ValueError(f"{path}: byte {pos2}: DCD atom-count record of {len(rec3)} bytes (expected 4)")
    n_atoms = int(np.frombuffer(rec3, dtype=endian + "i4", count=1)[0])
    if n_atoms < 1:
        raise ValueError(f"{path}: byte {pos2 + 4}: DCD atom count must be >= 1, got {n_atoms}")
    has_cell = bool(icntrl[10])
    frame_bytes = (56 if has_cell else 0) + 3 * (8 + 4 * n_atoms)
    return {
        "path": str(path),
        "id": ident.decode("ascii", "replace"),
        "kind": CP2K_KINDS.get(ident, ident.decode("ascii", "replace").strip().lower()),
        "endian": endian,
        "nset": int(icntrl[0]),
        "istart": int(icntrl[1]),
        "nsavc": int(icntrl[2]),
        "nstep": int(icntrl[3]),
        "delta": delta,
        "has_cell": has_cell,
        "charmm_version": int(icntrl[19]),
        "titles": titles,
        "synthetic": any(SYNTHETIC_WORD in t.lower() for t in titles),
        "n_atoms": n_atoms,
        "header_bytes": header_bytes,
        "frame_bytes": frame_bytes,
        "file_bytes": size,
    }


def frame_dtype(n_atoms: int, has_cell: bool = True, endian: str = "<") -> np.dtype:
    """The structured dtype of one DCD frame: record markers ``m0``..``m7``, ``cell`` (6 float64), ``x``, ``y``, ``z``."""
    i4, f4, f8 = endian + "i4", endian + "f4", endian + "f8"
    fields: list[tuple] = []
    if has_cell:
        fields += [("m0", i4), ("cell", f8, (6,)), ("m1", i4)]
    for k, axis in enumerate("xyz"):
        fields += [(f"a{2 * k}", i4), (axis, f4, (n_atoms,)), (f"a{2 * k + 1}", i4)]
    return np.dtype(fields)


def _bad_frames(rec: np.ndarray, n_atoms: int, has_cell: bool) -> np.ndarray:
    """Boolean per frame: a record marker differs from the frame layout."""
    bad = np.zeros(rec.shape[0], dtype=bool)
    if has_cell:
        bad |= (rec["m0"] != 48) | (rec["m1"] != 48)
    for k in range(6):
        bad |= rec[f"a{k}"] != 4 * n_atoms
    return bad


def _corrupt_message(path: Path, header: dict[str, Any], frame: int) -> str:
    offset = header["header_bytes"] + frame * header["frame_bytes"]
    return (f"{path}: byte {offset}: DCD frame {frame} has wrong record markers (expected a frame of "
            f"{header['n_atoms']} atoms, {header['frame_bytes']} bytes): corrupt file, or frames of another "
            "layout appended")  # fmt: skip


def complete_dcd_length(path: str | os.PathLike) -> int:
    """Byte length of the header and the whole frames at the start of a DCD file: what a killed segment's
    file must be cut to before a continuation appends (0 when not even the header is whole: then the
    file must be *removed*, not emptied, or CP2K appends frames without a header; see :func:`trim_dcd`).

    A frame with wrong record markers before the last one is corruption, not a kill: ValueError
    naming the file and offset (trimming there would throw away whole frames).
    """
    path = Path(path)
    try:
        header = read_dcd_header(path)
    except ValueError as exc:
        if "file ends inside the DCD header" in str(exc):
            return 0
        raise
    n_whole = (header["file_bytes"] - header["header_bytes"]) // header["frame_bytes"]
    if n_whole:
        rec = np.memmap(path, dtype=frame_dtype(header["n_atoms"], header["has_cell"], header["endian"]),
                        mode="r", offset=header["header_bytes"], shape=(n_whole,))  # fmt: skip
        bad = np.flatnonzero(_bad_frames(rec, header["n_atoms"], header["has_cell"]))
        del rec
        if bad.size:
            raise ValueError(_corrupt_message(path, header, int(bad[0])))
    return header["header_bytes"] + n_whole * header["frame_bytes"]


def trim_dcd(path: str | os.PathLike) -> int:
    """Cut a DCD file to its whole frames (remove it when its header is not whole); bytes removed (0 if untouched)."""
    path = Path(path)
    if not path.is_file():
        return 0
    size = path.stat().st_size
    keep = complete_dcd_length(path) if size else 0
    if keep == 0:
        path.unlink()
        return size
    if keep < size:
        with open(path, "r+b") as fh:
            fh.truncate(keep)
    return size - keep


# --- frames ------------------------------------------------------------------------------------

def read_dcd(path: str | os.PathLike, *, dtype: Any = np.float64, partial: str = "error",
             warn_sink: list[str] | None = None) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Read a DCD file: (frames (n_frames, n_atoms, 3) in ``dtype``, header dict).

    Values are as written (CP2K: positions in Angstrom, velocities in bohr/au_time). The header dict is
    :func:`read_dcd_header`'s plus ``n_frames`` and ``cells`` ((n_frames, 6) ``a, gamma, b, beta, alpha,
    c``; None without a unit-cell record). The file is read in one go through a structured dtype
    (no Python step per frame or atom); peak memory about the file size plus the result.

    ``partial``: what to do with bytes after the last whole frame (a frame torn by a kill):
    ``error`` (ValueError naming the file, the byte offset and the frame), ``warn`` (drop it with a
    ParseWarning) or ``ignore``. A frame with wrong record markers is always an error naming the
    file, offset and frame.
    """
    if partial not in ("error", "warn", "ignore"):
        raise ValueError(f"partial must be 'error', 'warn' or 'ignore', got {partial!r}")
    path = Path(path)
    header = read_dcd_header(path)
    n_atoms, frame_bytes, start = header["n_atoms"], header["frame_bytes"], header["header_bytes"]
    body = header["file_bytes"] - start
    n_frames, extra = divmod(body, frame_bytes)
    rec = np.fromfile(path, dtype=frame_dtype(n_atoms, header["has_cell"], header["endian"]),
                      count=n_frames, offset=start)  # fmt: skip
    if rec.shape[0] != n_frames:
        raise ValueError(f"{path}: byte {start + rec.shape[0] * frame_bytes}: file shrank while being read")
    bad = np.flatnonzero(_bad_frames(rec, n_atoms, header["has_cell"]))
    if bad.size:
        raise ValueError(_corrupt_message(path, header, int(bad[0])))
    if extra:
        msg = (f"{path}: byte {start + n_frames * frame_bytes}: DCD frame {n_frames} is torn ({extra} of "
               f"{frame_bytes} bytes; killed run?)")  # fmt: skip
        if partial == "error":
            raise ValueError(msg + "; trim it with qdphonon.parsers.dcd.trim_dcd before reading or appending")
        if partial == "warn":
            _warn(msg + ": dropped", warn_sink)
    out = np.empty((n_frames, n_atoms, 3), dtype=dtype)
    for k, axis in enumerate("xyz"):
        out[:, :, k] = rec[axis]
    if not np.isfinite(out).all():
        f = int(np.flatnonzero(~np.isfinite(out).all(axis=(1, 2)))[0])
        raise ValueError(f"{path}: byte {start + f * frame_bytes}: DCD frame {f} holds a non-finite value")
    header["n_frames"] = int(n_frames)
    header["cells"] = np.array(rec["cell"], dtype=np.float64) if header["has_cell"] else None
    return out, header


# --- frames to MD steps ------------------------------------------------------------------------
