"""DCD frames mapped to MD steps across the segments of a run, and the run-level readers.

A DCD frame carries no step number. The ``.ener`` file, which CP2K writes and closes every step
*before* that step's trajectory frames (and the restart file *after* them), dates them: every energy
line whose step is a multiple of NSAVC has its frame, except possibly the last line of a killed
segment. See :func:`frame_steps`; the file format itself is :mod:`qdphonon.parsers.dcd`'s.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Sequence
import numpy as np
from qdphonon.parsers.common import _require_file
from qdphonon.parsers.xyz import Trajectory, dedupe_keep_last
from qdphonon.units import AU_VELOCITY_A_per_fs
from qdphonon.parsers.dcd import CP2K_BOHR_A, complete_dcd_length, dcd_files, frame_dtype, read_dcd, read_dcd_header


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

def symbols_from_input(path: str | os.PathLike) -> tuple[str, ...]:
    """Element symbols of a CP2K input's ``&COORD`` block, in order (DCD files hold none); read with
    cp2k-input-tools (:func:`qdphonon.cp2k.readback.read_subsys`)."""
    from qdphonon.cp2k.readback import read_subsys

    symbols = read_subsys(path)[0]
    if not symbols:
        raise ValueError(f"{path}: no &COORD block (DCD files carry no element symbols; pass them)")
    return tuple(symbols)


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


def read_dcd_run(run_dir: str | os.PathLike, key: str, symbols: Sequence[str] | None = None, *,
                 project: str | None = None, warn_sink: list[str] | None = None) -> Trajectory | None:  # fmt: skip
    """Positions (``key="positions"``) or velocities of a run directory written as DCD, every step once;
    None when the run has no such DCD file.

    The project and energy file come from :func:`qdphonon.parsers.discover.discover` (unless ``project`` is
    given), and whether the last segment ended normally from its main output. ``symbols`` default
    to the ``&COORD`` of the first segment's input (``seg000.inp``, else the first ``*.inp`` holding
    one). Units are checked from the cell records, which CP2K scales like the values: positions
    against the input's ``ABC`` (Angstrom), velocities against the positions' cell (bohr/au_time,
    CP2K's default); a DCD printed with another ``UNIT`` is a ValueError.
    """
    from qdphonon.parsers.verdicts import output_end
    from qdphonon.parsers.discover import discover
    from qdphonon.run.files import run_files

    run_dir = Path(run_dir)
    layout = discover(run_dir)
    if project is None:
        project = layout.project
    name = dcd_files(project)[key]
    path = run_dir / name
    if not path.is_file():
        return None
    inp, in_symbols, abc = _input_subsys(run_dir)
    if symbols is None:
        if inp is None:
            raise ValueError(f"{path}: no input with a &COORD block in {run_dir}; pass the element symbols")
        symbols = in_symbols
    energies = run_dir / run_files(project)["energies"]
    ended = bool(layout.outputs) and output_end(layout.outputs[-1]).ended
    traj = read_dcd_trajectory(path, energies, symbols, kind=key, last_segment_ended=ended, warn_sink=warn_sink)
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


def _input_subsys(run_dir: Path) -> tuple[Path | None, tuple[str, ...], np.ndarray | None]:
    """(input, its symbols, its ABC in Angstrom) of the first input of a run with a ``&COORD`` block
    (``seg000.inp``, else the ``*.inp`` files in name order; one that does not parse is passed over),
    or (None, (), None)."""
    from qdphonon.cp2k.readback import read_subsys
    from qdphonon.run.files import segment_files

    for p in [run_dir / segment_files(0)[0], *sorted(run_dir.glob("*.inp"))]:
        if not p.is_file():
            continue
        try:
            symbols, abc = read_subsys(p)
        except ValueError:
            continue
        if symbols:
            return p, tuple(symbols), abc
    return None, (), None


def _first_cell(path: Path) -> np.ndarray | None:
    header = read_dcd_header(path)
    if not header["has_cell"] or header["file_bytes"] < header["header_bytes"] + header["frame_bytes"]:
        return None
    rec = np.fromfile(path, dtype=frame_dtype(header["n_atoms"], True, header["endian"]), count=1,
                      offset=header["header_bytes"])  # fmt: skip
    return np.array(rec["cell"], dtype=np.float64)
