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

import itertools
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qdphonon.parsers.common import _require_file, _warn
from qdphonon.parsers.xyz import Trajectory, dedupe_keep_last
from qdphonon.units import AU_VELOCITY_A_per_fs

CP2K_BOHR_A = 0.52917720859
"""CP2K 2023.1's bohr in Angstrom (CODATA 2006, ``physcon``): the unit factor of its position prints."""

CP2K_KINDS = {b"CORD": "positions", b"VEL ": "velocities", b"FRC ": "forces", b"FML ": "force_mixing_labels"}
"""The 4-character identifiers CP2K writes in the first header record."""

SYNTHETIC_WORD = "synthetic"
"""A title containing this word (any case) marks a DCD file written by the mock engine."""

_MARKER = 4


def dcd_files(project: str) -> dict[str, str]:
    """CP2K's DCD file names of ``project``: ``{project}-pos-1.dcd`` and ``{project}-vel-1.dcd``."""
    return {"positions": f"{project}-pos-1.dcd", "velocities": f"{project}-vel-1.dcd"}


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

def ener_steps_in_file_order(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(step, time_fs) of every whole line of a CP2K ``.ener`` file in file order, duplicates kept
    (``#`` lines skipped; an incomplete last line dropped, as :func:`qdphonon.parsers.energies.read_energies` does)."""
    path = Path(path)
    _require_file(path, "energies file")
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    steps, times = [], []
    for i, line in enumerate(data.split(b"\n")[:-1], start=1):
        s = line.strip()
        if not s or s.startswith(b"#"):
            continue
        parts = s.split()
        try:
            steps.append(int(parts[0]))
            times.append(float(parts[1]))
        except (ValueError, IndexError):
            raise ValueError(f"{path}: line {i}: expected 'step time ...', got {s[:80]!r}") from None
    return np.asarray(steps, dtype=np.int64), np.asarray(times, dtype=np.float64)


def _runs(ener_steps: np.ndarray) -> list[np.ndarray]:
    """The energy steps cut where a segment restarts (a step not above the previous one)."""
    if ener_steps.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(ener_steps) <= 0) + 1
    return np.split(ener_steps, cuts)


def _overlap_mismatch(steps: np.ndarray, frames: np.ndarray) -> float | None:
    """Largest difference between two copies of the same step (None when no step repeats)."""
    order = np.argsort(steps, kind="stable")
    s = steps[order]
    same = np.flatnonzero(s[1:] == s[:-1])
    if same.size == 0:
        return None
    a, b = order[same], order[same + 1]
    return float(np.max(np.abs(frames[a] - frames[b])))


def _motion_scale(frames: np.ndarray) -> float:
    """Typical largest change between consecutive frames (the yardstick of a misaligned overlap)."""
    if frames.shape[0] < 2:
        return 0.0
    d = np.abs(np.diff(frames, axis=0)).max(axis=(1, 2))
    d = d[d > 0]
    return float(np.median(d)) if d.size else 0.0


MAX_HYPOTHESES = 4096
OVERLAP_TOLERANCE = 0.05
"""Copies of a step from two segments agree to this fraction of one frame-to-frame change (seen:
1e-4 and below; a restart overlap reproduces the step within the restart file's precision)."""


def frame_steps(n_frames: int, header: dict[str, Any], ener_steps: Sequence[int], frames: np.ndarray | None = None,
                *, last_segment_ended: bool = False, path: str | os.PathLike = "DCD") -> np.ndarray:  # fmt: skip
    """The MD step of every frame of a DCD file, in file order (restart overlaps still repeated).

    Evidence: the ``.ener`` steps in file order, ``ISTART`` and ``NSAVC`` of the header. CP2K
    writes, flushes and closes an energy line at every step before the frames of that step, and
    the restart file after them (``md_energies.F`` ``md_write_output``, then ``md_run.F``). So:

    - a segment boundary is where the energy step does not increase (a continuation re-runs the
      steps after its restart step); a continuation that starts right after the killed segment's
      last energy line shows no boundary and needs none (that segment's restart file, written
      after its last frames, is where it continues from);
    - every energy line whose step is a multiple of NSAVC, from ISTART on, has its frame, except
      possibly the last line of a segment (killed between the energy line and the frames); at the
      end of the file that is at most one frame (a torn last frame is not counted), and none when
      the last segment ended normally (``last_segment_ended``: its main output has ``PROGRAM ENDED
      AT``, also after a WALLTIME stop).

    When fewer frames remain than candidates and more than one segment end could be the one that
    lost its frame, the alignment whose repeated steps agree is taken (copies of a step from two
    segments differ by the restart file's precision, a misaligned pair by a whole step of motion);
    ``frames`` (the values) are needed for that. Anything else is a ValueError naming ``path``.
    """
    ener_steps = np.asarray(ener_steps, dtype=np.int64)
    istart, nsavc = int(header["istart"]), int(header["nsavc"])
    if nsavc < 1:
        raise ValueError(f"{path}: DCD header NSAVC = {nsavc}; cannot map frames to steps")
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64)
    cand: list[np.ndarray] = []
    ends: list[int] = []  # index (into all candidates) of a segment's last frame when a kill may have skipped it
    offset = 0
    for run in _runs(ener_steps):
        c = run[(run >= istart) & (run % nsavc == 0)]
        lo, hi = max(int(run[0]), istart), int(run[-1])
        expected = np.arange(-(-lo // nsavc) * nsavc, hi + 1, nsavc)
        if c.size != expected.size or np.any(c != expected):
            missing = sorted(set(expected.tolist()) - set(c.tolist()))[:5]
            raise ValueError(f"{path}: the energy file does not list every frame step of a segment (e.g. steps "
                             f"{missing}; is MD/PRINT/ENERGY printed less often than NSAVC = {nsavc}?)")  # fmt: skip
        if c.size and int(run[-1]) == int(c[-1]):
            ends.append(offset + c.size - 1)
        cand.append(c)
        offset += c.size
    allc = np.concatenate(cand) if cand else np.zeros(0, dtype=np.int64)
    if allc.size == 0 or allc[0] != istart:
        raise ValueError(f"{path}: DCD header ISTART = {istart} is not the first frame step the energy file "
                         f"lists ({allc[:1].tolist() or 'none'}): frames and energies do not belong together")  # fmt: skip
    if n_frames > allc.size:
        raise ValueError(f"{path}: {n_frames} DCD frames but the energy file accounts for only {allc.size} "
                         f"(steps >= {istart} that are multiples of NSAVC = {nsavc}; ADD_LAST set, or energies "
                         "of another run?)")  # fmt: skip
    n_missing = allc.size - n_frames
    tail_ok = bool(ends) and ends[-1] == allc.size - 1 and not last_segment_ended
    inner = [e for e in ends if e != allc.size - 1]

    def assign(drop: tuple[int, ...]) -> np.ndarray:
        keep = np.ones(allc.size, dtype=bool)
        keep[list(drop)] = False
        return allc[keep][:n_frames]

    hypotheses: list[tuple[int, ...]] = []
    for tail in ((0, 1) if tail_ok else (0,)):
        k = n_missing - tail
        if 0 <= k <= len(inner):
            for drop in itertools.combinations(inner, k):
                hypotheses.append(drop)
                if len(hypotheses) > MAX_HYPOTHESES:
                    raise ValueError(f"{path}: too many ways to align {n_frames} DCD frames with the energy file")
    if not hypotheses:
        raise ValueError(f"{path}: {n_frames} DCD frames cannot be aligned with the {allc.size} frame steps of the "
                         f"energy file (at most one frame per killed segment can be missing; frames of "
                         f"{len(ends)} segment ends could be)")  # fmt: skip
    if len(hypotheses) == 1:
        return assign(hypotheses[0])
    if frames is None:
        raise ValueError(f"{path}: {n_frames} DCD frames for {allc.size} frame steps of the energy file and "
                         f"{len(hypotheses)} ways to align them; pass the frames to compare restart overlaps")  # fmt: skip
    scale = _motion_scale(frames)
    consistent, scores = [], []
    for drop in hypotheses:
        steps = assign(drop)
        score = _overlap_mismatch(steps, frames)
        scores.append(score)
        if score is None or score <= OVERLAP_TOLERANCE * scale:
            consistent.append(steps)
    if len(consistent) != 1:
        shown = ", ".join("no repeated step" if s is None else f"{s:.3g}" for s in scores[:6])
        raise ValueError(f"{path}: cannot tell which segment lost a DCD frame: {len(consistent)} of "
                         f"{len(hypotheses)} alignments are consistent (repeated steps differ by {shown}; "
                         f"one frame-to-frame change is {scale:.3g})")  # fmt: skip
    return consistent[0]


def dcd_length_through_step(path: str | os.PathLike, ener_steps: Sequence[int], step: int, *,
                            last_segment_ended: bool = False) -> int:  # fmt: skip
    """Byte length of a DCD file up to its first whole frame past MD step ``step`` (and without a torn
    tail): what a continuation from the restart file of ``step`` leaves, as ``cut_after_step`` does
    for XYZ. ``ener_steps``: the ``.ener`` steps in file order **before** that file is cut (they map the
    frames, :func:`frame_steps`). 0 when not even the header is whole: then remove the file, do not
    empty it (CP2K writes the header only for a new file).
    """
    path = Path(path)
    if complete_dcd_length(path) == 0:
        return 0
    values, header = read_dcd(path, partial="ignore")
    steps = frame_steps(values.shape[0], header, ener_steps, values, last_segment_ended=last_segment_ended, path=path)
    past = np.flatnonzero(steps > int(step))
    n = int(past[0]) if past.size else int(values.shape[0])
    return header["header_bytes"] + n * header["frame_bytes"]


# --- run directories ---------------------------------------------------------------------------

_COORD_BLOCK = re.compile(r"^\s*&COORD\b[^\n]*\n(.*?)^\s*&END\s+COORD\b", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def symbols_from_input(path: str | os.PathLike) -> tuple[str, ...]:
    """Element symbols of a CP2K input's ``&COORD`` block, in order (DCD files hold none)."""
    path = Path(path)
    text = path.read_text(errors="replace")
    m = _COORD_BLOCK.search(text)
    if m is None:
        raise ValueError(f"{path}: no &COORD block (DCD files carry no element symbols; pass them)")
    out = []
    for line in m.group(1).splitlines():
        s = line.split("!")[0].split("#")[0].split()
        if not s or s[0].upper() in ("UNIT", "SCALED"):
            continue
        out.append(s[0])
    return tuple(out)


def read_dcd_trajectory(path: str | os.PathLike, energies_path: str | os.PathLike, symbols: Sequence[str], *,
                        kind: str | None = None, partial: str = "warn", last_segment_ended: bool = False,
                        warn_sink: list[str] | None = None) -> Trajectory:  # fmt: skip
    """A DCD trajectory of a run directory as a :class:`~qdphonon.parsers.xyz.Trajectory`, every step once.

    ``symbols``: the element of every atom (from the input or structure: DCD has none).
    ``energies_path``: the run's ``.ener`` file, which maps frames to steps (:func:`frame_steps`);
    repeated steps keep their later copy (the continuation's), as the XYZ reader does.
    ``kind``: ``positions`` (Angstrom, as written) or ``velocities`` (converted from bohr/au_time to
    Angstrom/fs); default from the header's ``CORD`` / ``VEL `` identifier. ``time_fs`` comes from
    the energy line of each step. ``partial``: see :func:`read_dcd` (a torn last frame of a killed
    last segment is dropped with a warning by default, as for XYZ). ``last_segment_ended``: the last
    segment's main output ended normally, so no frame can be missing at the end (:func:`frame_steps`).
    """
    path = Path(path)
    values, header = read_dcd(path, partial=partial, warn_sink=warn_sink)
    kind = kind or header["kind"]
    if kind not in ("positions", "velocities"):
        raise ValueError(f"{path}: DCD of {header['kind']!r} ({header['id']!r}); expected positions or velocities")
    symbols = tuple(symbols)
    if len(symbols) != header["n_atoms"]:
        raise ValueError(f"{path}: {header['n_atoms']} atoms in the DCD header but {len(symbols)} symbols given")
    ener_steps, ener_times = ener_steps_in_file_order(energies_path)
    steps = frame_steps(values.shape[0], header, ener_steps, values, last_segment_ended=last_segment_ended, path=path)
    keep = dedupe_keep_last(steps)
    if len(keep) != len(steps) or np.any(np.diff(keep) < 0):
        values = values[keep]
    steps = steps[keep]
    last_time = dict(zip(ener_steps.tolist(), ener_times.tolist()))
    time_fs = np.array([last_time[s] for s in steps.tolist()], dtype=np.float64)
    if kind == "velocities":
        values *= AU_VELOCITY_A_per_fs
        unit = "A/fs"
    else:
        unit = "A"
    return Trajectory(str(path), symbols, steps, time_fs, values, unit, bool(header["synthetic"]))


def velocity_unit_factor(positions_cells: np.ndarray, velocities_cells: np.ndarray) -> float:
    """The unit factor CP2K applied to a velocity DCD relative to bohr/au_time (1.0 for the default
    ``UNIT bohr*au_t^-1``), from the cell records: CP2K multiplies the cell lengths by the same
    factor as the values, so the positions' cell (Angstrom) and the velocities' cell give it."""
    a_pos = float(positions_cells[0, 0])
    a_vel = float(velocities_cells[0, 0])
    return a_vel / (a_pos / CP2K_BOHR_A)


_ABC = re.compile(r"^\s*ABC\s+([-+0-9.eEdD]+)\s+([-+0-9.eEdD]+)\s+([-+0-9.eEdD]+)\s*$", re.IGNORECASE | re.MULTILINE)


def _input_abc_A(text: str) -> np.ndarray | None:
    """``&CELL ABC`` of an input when given plainly in Angstrom (no ``[unit]``), else None."""
    m = _ABC.search(text)
    return None if m is None else np.array([float(x.replace("d", "e").replace("D", "e")) for x in m.groups()])


def read_dcd_run(run_dir: str | os.PathLike, key: str, symbols: Sequence[str] | None = None, *,
                 project: str | None = None, warn_sink: list[str] | None = None) -> Trajectory | None:  # fmt: skip
    """Positions (``key="positions"``) or velocities of a run directory written as DCD, every step once;
    None when the run has no such DCD file.

    The project and energy file come from :func:`qdphonon.rundir.discover` (unless ``project`` is
    given), and whether the last segment ended normally from its main output. ``symbols`` default
    to the ``&COORD`` of the first segment's input (``seg000.inp``, else the first ``*.inp`` holding
    one). Units are checked from the cell records, which CP2K scales like the values: positions
    against the input's ``ABC`` (Angstrom), velocities against the positions' cell (bohr/au_time,
    CP2K's default); a DCD printed with another ``UNIT`` is a ValueError.
    """
    from qdphonon.rundir import discover, output_ended, run_files  # here: rundir may import this module

    run_dir = Path(run_dir)
    layout = discover(run_dir)
    if project is None:
        project = layout.project
    name = dcd_files(project)[key]
    path = run_dir / name
    if not path.is_file():
        return None
    inp = next((p for p in [run_dir / "seg000.inp", *sorted(run_dir.glob("*.inp"))]
                if p.is_file() and _COORD_BLOCK.search(p.read_text(errors="replace"))), None)  # fmt: skip
    if symbols is None:
        if inp is None:
            raise ValueError(f"{path}: no input with a &COORD block in {run_dir}; pass the element symbols")
        symbols = symbols_from_input(inp)
    energies = run_dir / run_files(project)["energies"]
    ended = bool(layout.outputs) and output_ended(layout.outputs[-1])
    traj = read_dcd_trajectory(path, energies, symbols, kind=key, last_segment_ended=ended, warn_sink=warn_sink)
    abc = _input_abc_A(inp.read_text(errors="replace")) if inp is not None else None
    cell = _first_cell(path)
    if key == "positions" and abc is not None and cell is not None:
        factor = float(cell[0, 0]) / float(abc[0])
        if abs(factor - 1.0) > 1e-6:
            raise ValueError(f"{path}: positions written in a unit {factor:.6g} x Angstrom (cell record {cell[0, 0]:g} "
                             f"vs ABC {abc[0]:g} of {inp.name}); CP2K's default UNIT angstrom is expected")  # fmt: skip
    if key == "velocities":
        pos = run_dir / dcd_files(project)["positions"]
        if pos.is_file():
            ph, vh = _first_cell(pos), cell
            if ph is not None and vh is not None:
                factor = velocity_unit_factor(ph, vh)
                if abs(factor - 1.0) > 1e-5:
                    raise ValueError(f"{path}: velocities written in a unit {factor:.6g} x bohr/au_time (cell "
                                     "record vs the positions' one); CP2K's default UNIT bohr*au_t^-1 is expected")  # fmt: skip
    return traj


def _first_cell(path: Path) -> np.ndarray | None:
    header = read_dcd_header(path)
    if not header["has_cell"] or header["file_bytes"] < header["header_bytes"] + header["frame_bytes"]:
        return None
    rec = np.fromfile(path, dtype=frame_dtype(header["n_atoms"], True, header["endian"]), count=1,
                      offset=header["header_bytes"])  # fmt: skip
    return np.array(rec["cell"], dtype=np.float64)
