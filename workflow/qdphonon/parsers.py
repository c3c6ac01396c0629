"""Parsers of CP2K MD output: band edges, trajectories and energies of a run directory.

A run directory (DESIGN §4, engines) holds segments ``seg000.inp``/``seg000.out``
(first run), ``seg001.inp``/``seg001.out`` (continuation with ``&EXT_RESTART``), ...,
and CP2K's files of project ``md``, shared by all segments and appended to by the
continuations: ``md-pos-1.xyz`` (Angstrom), ``md-vel-1.xyz`` (bohr per atomic time
unit), ``md-1.ener`` and ``md-mo-1.MOLog``. The mock engine writes the same formats
with a first line ``# synthetic (mock engine)``; the flag is carried into every result.

What CP2K 2023.1 writes, and how it is handled here:

* Trajectories and ``.ener``: one record per MD step, numbered; a continuation
  appends from the step after its restart step. Parsed records are deduplicated by
  step number (the later copy, i.e. the continuation's, wins) and sorted.
* ``*.MOLog``: one block per force evaluation with the MO print active, with no step
  number. A continuation re-evaluates its restart step, so that step appears twice;
  a continuation that reads a wavefunction restart (``SCF_GUESS RESTART``) also
  writes a block ``... AFTER SCF STEP 0`` for the guess, which is skipped. Blocks are
  aligned to steps through the main outputs: every segment's force evaluations are
  found in order (the SCF before ``MD_INI|`` is the start or restart step, the SCF
  before ``MD| Step number N`` is step N), and a killed segment's trailing evaluation
  (no step line) is consumed if it wrote a block, and dropped.
* WALLTIME: an SCF that CP2K's ``GLOBAL/WALLTIME`` cuts short prints
  ``*** SCF run terminated - exceeded requested execution time: ...``, then
  ``SCF run NOT converged`` and still the ``ENERGY| Total FORCE_EVAL`` line, but writes
  no MO block; CP2K then stops the MD (``MD run terminated - ...``). Such an evaluation
  (``walltime_stopped``) consumes no block and is no valid MD step for the band edges,
  whether it trails the segment (the usual case) or is the restart step a continuation
  re-evaluates (``MD_INI|`` is printed after it); the next continuation re-evaluates it.
* Band edges: HOMO = orbital ``N_el / 2`` (closed shell; ``Number of electrons`` in
  the main output; ``Number of occupied orbitals`` equals it without smearing, and
  counts fractionally occupied orbitals with smearing), LUMO = HOMO + 1, read by index
  from the MOLog (diagonalisation, ``ADDED_MOS``). Under OT (PBE route) the MOLog has
  only occupied orbitals; the main output's ``MO_CUBES`` print then gives the
  occupied-subspace eigenvalues (HOMO = last) and the lowest unoccupied eigenvalue
  (LUMO) in Hartree at every step, next to ``Fermi Energy [eV]`` and
  ``HOMO - LUMO gap [eV]``.
* SCF: CP2K 2023.1 warns ``SCF run NOT converged`` and goes on (2024.1 and later
  abort); with ``OUTER_SCF`` the outer loop's verdict (``outer SCF loop converged`` /
  ``FAILED to converge``) is the last word. Every evaluation gets a flag; the policy
  of :func:`parse_run_dir` decides what happens to unconverged steps.
* Minimal main output (what the mock engine must write): ``Number of electrons: N``
  before the first evaluation, ``MD_PAR| Time step [fs] dt``, then per MD step the
  SCF verdict (``*** SCF run converged in k steps ***`` or ``SCF run NOT converged``)
  followed by the marker (``MD_INI| MD initialization`` for the first evaluation,
  ``MD| Step number N`` and ``MD| Time [fs] t`` on the next line for the others); a
  marker without SCF lines counts as a converged evaluation.
* A killed run leaves partial last records; these are dropped with a warning
  (:func:`truncate_to_complete_records` removes them from the files before a
  continuation appends). Empty or missing files raise errors naming the file;
  a corrupt line raises ValueError naming file and line number.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from qdphonon.units import AU_VELOCITY_A_per_fs, BOLTZMANN_meV_per_K, HARTREE_eV

SYNTHETIC_LABEL = "# synthetic (mock engine)"
"""First line of every file written by the mock engine."""

PROJECT = "md"
POSITIONS_FILE = f"{PROJECT}-pos-1.xyz"
VELOCITIES_FILE = f"{PROJECT}-vel-1.xyz"
ENERGIES_FILE = f"{PROJECT}-1.ener"
MOLOG_FILE = f"{PROJECT}-mo-1.MOLog"
SEGMENT_GLOB = "seg[0-9][0-9][0-9]*.out"

SCF_POLICIES = ("drop_step", "keep_flagged", "fail")
SMEARING_GAP_FACTOR = 10.0
"""Warn when a smeared gap is below this many k_B T_el (occupations of the edges no longer ~2/0)."""


class ParseWarning(UserWarning):
    """Something in CP2K output was dropped or looks suspect, but parsing went on."""


def _warn(message: str, sink: list[str] | None = None) -> None:
    warnings.warn(message, ParseWarning, stacklevel=3)
    if sink is not None:
        sink.append(message)


def _require_file(path: Path, what: str) -> None:
    """FileNotFoundError / ValueError naming ``path`` when it is missing or empty."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: {what} is empty")


def _is_synthetic_line(line: bytes | str) -> bool:
    """True for the mock engine's label line (a ``#`` line mentioning ``synthetic``)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text.lstrip().startswith("#") and "synthetic" in text.lower()


# ----------------------------------------------------------------------------- XYZ trajectories
@dataclasses.dataclass(frozen=True)
class Trajectory:
    """Per-frame Cartesian vectors of every atom.

    ``values`` has shape (frames, atoms, 3) in ``unit`` (``A`` for positions, ``A/fs``
    for velocities); ``step`` and ``time_fs`` are the CP2K step numbers and times of the
    frames (sorted, unique); ``symbols`` the element of every atom.
    """

    path: str
    symbols: tuple[str, ...]
    step: np.ndarray
    time_fs: np.ndarray
    values: np.ndarray
    unit: str
    synthetic: bool = False

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_atoms(self) -> int:
        return int(self.values.shape[1])


_XYZ_HEADER = re.compile(rb"^\s*i\s*=\s*(-?\d+)\s*,\s*time\s*=\s*([-+0-9.EeDd]+)")


_SPACE, _MINUS, _DOT, _NL = 32, 45, 46, 10


def _fixed_width_layout(row: np.ndarray) -> list[tuple[int, int, int]] | None:
    """Field layout of one atom line ``symbol x y z`` (uint8, ending in newline), as
    (start, dot, end) columns of the three numbers (start = end of the previous token), or None."""
    nonspace = (row != _SPACE) & (row != _NL)
    edges = np.flatnonzero(np.diff(nonspace.astype(np.int8)))
    starts = list(edges[0::2] + 1) if not nonspace[0] else [0] + list(edges[1::2] + 1)
    ends = [int(e) + 1 for e, s in zip(edges, nonspace[edges]) if s]
    if nonspace[-1] or len(ends) != 4:
        return None
    layout = []
    for k in range(1, 4):
        dots = np.flatnonzero(row[starts[k] : ends[k]] == _DOT)
        if dots.size != 1:
            return None
        layout.append((ends[k - 1], int(starts[k] + dots[0]), ends[k]))
    return layout


def _parse_fixed_width(lines: np.ndarray) -> np.ndarray | None:
    """Numbers of fixed-width atom lines (rows, L uint8) as float64 (rows, 3), or None if the
    lines do not share one layout of plain decimals (then the general parser decides).

    Each number is read as an exact integer mantissa (digits accumulated column by
    column) divided by a power of ten, which IEEE division rounds correctly: the
    result equals ``float(text)`` bit for bit.
    """
    layout = _fixed_width_layout(lines[0])
    if layout is None:
        return None
    cols = np.ascontiguousarray(lines.T)
    if not np.all(cols[-1] == _NL):
        return None
    out = np.empty((lines.shape[0], 3), dtype=np.float64)
    for k, (start, dot, end) in enumerate(layout):
        if not np.all(cols[dot] == _DOT):
            return None
        if end < cols.shape[0] - 1 and not np.all(cols[end] == _SPACE):
            return None
        block = cols[start:dot]
        used = np.flatnonzero((block != _SPACE).any(axis=1))
        if used.size == 0:
            return None
        start += int(used[0])
        block = cols[start:dot]
        frac = cols[dot + 1 : end]
        n_frac = end - dot - 1
        if n_frac < 1 or block.shape[0] + n_frac > 18:
            return None
        if not np.all(np.subtract(frac, 48, dtype=np.uint8) <= 9):
            return None
        is_digit = np.subtract(block, 48, dtype=np.uint8) <= 9
        is_space = block == _SPACE
        is_minus = block == _MINUS
        if not (np.all(is_digit | is_space | is_minus) and np.all(is_digit[-1])):
            return None
        prev_used = ~is_space[:-1]
        if np.any(prev_used & (is_space[1:] | is_minus[1:])):
            return None
        acc = np.zeros(lines.shape[0], dtype=np.int64)
        digit = np.empty_like(acc)
        for row in (*block, *frac):
            np.maximum(row, 48, out=digit, dtype=np.int64, casting="unsafe")
            digit -= 48
            acc *= 10
            acc += digit
        if acc.size and int(acc.max()) >= 2**53:
            return None
        value = acc.astype(np.float64)
        value /= float(10**n_frac)
        negative = is_minus.any(axis=0)
        value[negative] *= -1.0
        out[:, k] = value
    return out


def _parse_atom_block(block: bytes, n_rows: int, path: Path, first_line_no: int, lines_per_frame: int) -> np.ndarray:
    """Columns 2-4 of ``n_rows`` atom lines as float64 (n_rows, 3); ValueError naming the first bad line.

    Fast path for CP2K's fixed-width lines (vectorised digit arithmetic); otherwise
    pandas' C tokenizer on whitespace; on any surprise a line-by-line scan finds the
    offending line (slow, errors only).
    """
    if n_rows and len(block) % n_rows == 0:
        lines = np.frombuffer(block, dtype=np.uint8).reshape(n_rows, len(block) // n_rows)
        out = _parse_fixed_width(lines)
        if out is not None:
            return out
    import pandas as pd

    try:
        df = pd.read_csv(
            io.BytesIO(block), sep=r"\s+", header=None, usecols=[1, 2, 3],
            dtype={1: np.float64, 2: np.float64, 3: np.float64}, engine="c", na_filter=False,
        )  # fmt: skip
        out = df.to_numpy(dtype=np.float64, copy=False)
        if out.shape == (n_rows, 3) and np.isfinite(out).all():
            return out
    except (ValueError, pd.errors.ParserError, IndexError):
        pass
    _raise_bad_atom_line(block, path, first_line_no, lines_per_frame)
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_bad_atom_line(block: bytes, path: Path, first_line_no: int, lines_per_frame: int) -> None:
    """Locate the first malformed atom line of a block (atom lines only) and raise ValueError."""
    n_atoms = lines_per_frame - 2
    for i, raw in enumerate(block.split(b"\n")[:-1]):
        frame, row = divmod(i, n_atoms)
        line_no = first_line_no + frame * lines_per_frame + 2 + row
        parts = raw.split()
        if len(parts) != 4:
            raise ValueError(f"{path}: line {line_no}: expected 'symbol x y z', got {raw.decode(errors='replace')!r}")
        try:
            vals = [float(p) for p in parts[1:]]
        except ValueError:
            raise ValueError(f"{path}: line {line_no}: bad number in {raw.decode(errors='replace')!r}") from None
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"{path}: line {line_no}: non-finite number in {raw.decode(errors='replace')!r}")
    raise ValueError(f"{path}: line {first_line_no}: malformed atom lines in this block")


def _frame_blocks(fh, lines_per_frame: int, chunk_bytes: int) -> Iterator[tuple[memoryview, np.ndarray, bytes]]:
    """Read ``fh`` in chunks and yield runs of whole frames as (bytes, offsets of their newlines, b'').

    Bytes after the last whole frame are carried into the next chunk; at the end of the
    file a remaining incomplete frame is yielded once as (b'', empty, leftover bytes).
    """
    carry = b""
    while True:
        new = fh.read(chunk_bytes)
        data = carry + new if carry else new
        if not data:
            return
        arr = np.frombuffer(data, dtype=np.uint8)
        nl = np.flatnonzero(arr == 10)
        n_frames = len(nl) // lines_per_frame
        if n_frames == 0:
            if not new:
                yield b"", nl[:0], data
                return
            carry = data
            continue
        cut = int(nl[n_frames * lines_per_frame - 1]) + 1
        yield memoryview(data)[:cut], nl[: n_frames * lines_per_frame], b""
        carry = data[cut:]
        if not new:
            if carry:
                yield b"", nl[:0], carry
            return


def read_xyz_trajectory(
    path: str | os.PathLike, *, chunk_bytes: int = 1 << 20, warn_sink: list[str] | None = None
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, bool]:
    """Read a CP2K XYZ trajectory fast: (symbols, step, time_fs, values (frames, atoms, 3) float64, synthetic).

    Values are as written (Angstrom for positions, bohr/au_time for velocities).
    Records are kept in file order (no deduplication, see :func:`dedupe_keep_last`).
    The file is read in chunks of whole frames (``chunk_bytes``); header lines are cut
    out by byte offsets (one Python step per frame, none per atom) and the numbers of
    CP2K's fixed-width lines parsed by vectorised digit arithmetic, bit-identical to
    ``float()`` (other layouts: pandas' C parser), so the peak memory stays near 1.5x
    the returned array. A truncated last frame is dropped with a warning; anything
    malformed raises ValueError naming the file and line.
    """
    path = Path(path)
    _require_file(path, "XYZ trajectory")
    with open(path, "rb") as fh:
        first = fh.readline()
        line_offset = 0
        synthetic = False
        if first.lstrip().startswith(b"#"):
            synthetic = _is_synthetic_line(first)
            line_offset = 1
            first = fh.readline()
        if not first.strip():
            raise ValueError(f"{path}: line {line_offset + 1}: expected the atom count, got an empty line")
        try:
            n_atoms = int(first.strip())
        except ValueError:
            raise ValueError(f"{path}: line {line_offset + 1}: expected the atom count, got {first.strip()[:40]!r}") from None
        if n_atoms < 1:
            raise ValueError(f"{path}: line {line_offset + 1}: atom count must be >= 1, got {n_atoms}")
        lines_per_frame = n_atoms + 2
        fh.seek(0)
        if line_offset:
            fh.readline()
        start_pos = fh.tell()
        size = path.stat().st_size - start_pos
        chunk_bytes = max(int(chunk_bytes), 1 << 16)

        symbols: tuple[str, ...] | None = None
        steps: list[int] = []
        times: list[float] = []
        out: np.ndarray | None = None
        n_done = 0
        line_no = line_offset + 1
        leftover = b""
        for data, nl, rest in _frame_blocks(fh, lines_per_frame, chunk_bytes):
            if rest:
                leftover = rest
                break
            n_frames = len(nl) // lines_per_frame
            starts = np.empty(len(nl), dtype=np.int64)
            starts[0] = 0
            starts[1:] = nl[:-1] + 1
            fstart = starts[0::lines_per_frame]
            hstart = starts[1::lines_per_frame]
            astart = starts[2::lines_per_frame]
            aend = nl[lines_per_frame - 1 :: lines_per_frame] + 1
            for f in range(n_frames):
                count = bytes(data[fstart[f] : hstart[f]])
                header = bytes(data[hstart[f] : astart[f]])
                ln = line_no + f * lines_per_frame
                try:
                    ok = int(count) == n_atoms
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(
                        f"{path}: line {ln}: expected the atom count {n_atoms}, got {count.strip()[:40]!r} "
                        "(a frame cut short in the middle of the file? trim killed segments with "
                        "truncate_to_complete_records before appending)"
                    )
                m = _XYZ_HEADER.match(header)
                if m is None:
                    raise ValueError(f"{path}: line {ln + 1}: expected ' i = <step>, time = <fs>, ...', got {header.strip()[:60]!r}")
                steps.append(int(m.group(1)))
                times.append(float(m.group(2).replace(b"D", b"E").replace(b"d", b"e")))
            if symbols is None:
                body = bytes(data[astart[0] : aend[0]]).split(b"\n")[:-1]
                symbols = tuple(line.split()[0].decode() if line.split() else "" for line in body)
            atoms = b"".join(data[a:e] for a, e in zip(astart.tolist(), aend.tolist()))
            values = _parse_atom_block(atoms, n_frames * n_atoms, path, line_no, lines_per_frame)
            if out is None:
                per_frame_bytes = max(1, len(data) // n_frames)
                estimate = max(n_frames, -(-size // per_frame_bytes))
                out = np.empty((estimate, n_atoms, 3), dtype=np.float64)
            if n_done + n_frames > out.shape[0]:
                out.resize((max(n_done + n_frames, int(out.shape[0] * 1.25) + 1), n_atoms, 3), refcheck=False)
            out[n_done : n_done + n_frames] = values.reshape(n_frames, n_atoms, 3)
            n_done += n_frames
            line_no += n_frames * lines_per_frame
            del atoms, values, data
    if leftover.strip():
        n_lines = leftover.count(b"\n") + (0 if leftover.endswith(b"\n") else 1)
        _warn(
            f"{path}: line {line_no}: last frame is incomplete ({n_lines} of {lines_per_frame} lines; "
            "killed run?): dropped",
            warn_sink,
        )
    if out is None or n_done == 0:
        raise ValueError(f"{path}: no complete frame")
    if out.shape[0] != n_done:
        out.resize((n_done, n_atoms, 3), refcheck=False)
    return symbols or (), np.asarray(steps, dtype=np.int64), np.asarray(times, dtype=np.float64), out, synthetic


def dedupe_keep_last(step: np.ndarray) -> np.ndarray:
    """Indices that keep every step once (its last occurrence: a continuation's copy wins), sorted by step."""
    step = np.asarray(step)
    rev = step[::-1]
    uniq, first_in_rev = np.unique(rev, return_index=True)
    return (len(step) - 1 - first_in_rev).astype(np.int64)


def _trajectory(path: Path, unit: str, scale: float, warn_sink: list[str] | None) -> Trajectory:
    symbols, step, time_fs, values, synthetic = read_xyz_trajectory(path, warn_sink=warn_sink)
    keep = dedupe_keep_last(step)
    if len(keep) != len(step) or np.any(np.diff(keep) < 0):
        values = values[keep]
        step, time_fs = step[keep], time_fs[keep]
    if scale != 1.0:
        values *= scale
    return Trajectory(str(path), symbols, step, time_fs, values, unit, synthetic)


def read_positions(path: str | os.PathLike, warn_sink: list[str] | None = None) -> Trajectory:
    """Positions in Angstrom from CP2K's ``*-pos-1.xyz``, every step once."""
    return _trajectory(Path(path), "A", 1.0, warn_sink)


def read_velocities(path: str | os.PathLike, warn_sink: list[str] | None = None) -> Trajectory:
    """Velocities in Angstrom/fs from CP2K's ``*-vel-1.xyz`` (written in bohr per atomic time unit)."""
    return _trajectory(Path(path), "A/fs", AU_VELOCITY_A_per_fs, warn_sink)


# ----------------------------------------------------------------------------- energies
@dataclasses.dataclass(frozen=True)
class Energies:
    """CP2K's ``.ener`` per MD step, every step once; energies converted from Hartree to eV."""

    path: str
    step: np.ndarray
    time_fs: np.ndarray
    kinetic_eV: np.ndarray
    temperature_K: np.ndarray
    potential_eV: np.ndarray
    conserved_eV: np.ndarray
    used_time_s: np.ndarray
    synthetic: bool = False


def _text_lines(path: Path, what: str) -> tuple[list[str], bool]:
    """Lines of a text file (without newlines) and whether its last line is complete."""
    _require_file(path, what)
    text = path.read_bytes().decode("utf-8", "replace")
    complete = text.endswith("\n")
    lines = text.split("\n")
    if complete:
        lines.pop()
    return lines, complete


def read_energies(path: str | os.PathLike, warn_sink: list[str] | None = None) -> Energies:
    """Parse ``md-1.ener`` (step, time [fs], kinetic [Ha], temperature [K], potential [Ha],
    conserved [Ha], used time [s]); a partial last line is dropped with a warning."""
    path = Path(path)
    lines, complete = _text_lines(path, "energies file")
    synthetic = False
    rows: list[tuple[float, ...]] = []
    steps: list[int] = []
    for i, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            synthetic = synthetic or _is_synthetic_line(s)
            continue
        parts = s.split()
        last = i == len(lines)
        if len(parts) != 7 or (last and not complete):
            if last and (not complete or len(parts) < 7):
                _warn(f"{path}: line {i}: incomplete last line (killed run?): dropped", warn_sink)
                break
            raise ValueError(f"{path}: line {i}: expected 7 columns, got {len(parts)}: {s[:80]!r}")
        try:
            steps.append(int(parts[0]))
            rows.append(tuple(float(p) for p in parts[1:]))
        except ValueError:
            raise ValueError(f"{path}: line {i}: bad number in {s[:80]!r}") from None
    if not rows:
        raise ValueError(f"{path}: no energy records")
    step = np.asarray(steps, dtype=np.int64)
    arr = np.asarray(rows, dtype=np.float64)
    keep = dedupe_keep_last(step)
    step, arr = step[keep], arr[keep]
    return Energies(
        str(path), step, arr[:, 0], arr[:, 1] * HARTREE_eV, arr[:, 2], arr[:, 3] * HARTREE_eV,
        arr[:, 4] * HARTREE_eV, arr[:, 5], synthetic,
    )  # fmt: skip


# ----------------------------------------------------------------------------- MOLog
@dataclasses.dataclass(frozen=True)
class MOBlock:
    """One block of CP2K's MO print: orbital indices (1-based), eigenvalues [eV], occupations.

    ``guess`` marks the ``AFTER SCF STEP 0`` block written for a restart guess;
    ``complete`` is False for a block cut short (no ``E(Fermi)`` line).
    """

    line_no: int
    index: np.ndarray
    energy_eV: np.ndarray
    occupation: np.ndarray
    guess: bool
    complete: bool
    fermi_eV: float | None = None

    def orbital(self, index: int) -> tuple[float, float] | None:
        """(eigenvalue [eV], occupation) of orbital ``index``, or None if not printed."""
        hit = np.flatnonzero(self.index == index)
        if hit.size == 0:
            return None
        return float(self.energy_eV[hit[0]]), float(self.occupation[hit[0]])


def read_molog(path: str | os.PathLike) -> tuple[list[MOBlock], bool]:
    """All blocks of a ``*.MOLog`` in file order, and the synthetic flag.

    Rows are ``MO| index eig[a.u.] eig[eV] occupation``; the eV column is used as CP2K
    printed it. A partial last line is ignored. Spin-polarised output is refused.
    """
    path = Path(path)
    lines, complete = _text_lines(path, "MO print file")
    if not complete:
        lines = lines[:-1]
    synthetic = False
    blocks: list[MOBlock] = []
    cur: dict | None = None

    def close() -> None:
        if cur is not None:
            blocks.append(
                MOBlock(
                    cur["line"], np.asarray(cur["idx"], dtype=np.int64), np.asarray(cur["eV"], dtype=np.float64),
                    np.asarray(cur["occ"], dtype=np.float64), cur["guess"], cur["fermi"] is not None, cur["fermi"],
                )  # fmt: skip
            )

    for i, line in enumerate(lines, start=1):
        if "EIGENVALUES AND OCCUPATION NUMBERS" in line:
            if "ALPHA" in line or "BETA" in line:
                raise ValueError(f"{path}: line {i}: spin-polarised MO output is not supported")
            close()
            cur = {"line": i, "idx": [], "eV": [], "occ": [], "guess": "AFTER SCF STEP" in line, "fermi": None}
            continue
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            synthetic = synthetic or _is_synthetic_line(s)
            continue
        if not s.startswith("MO|"):
            raise ValueError(f"{path}: line {i}: unexpected line {s[:80]!r}")
        body = s[3:].split()
        if cur is None:
            raise ValueError(f"{path}: line {i}: MO line before any 'EIGENVALUES AND OCCUPATION NUMBERS' header")
        if not body or body[0] == "Index":
            continue
        if body[0] == "E(Fermi):":
            try:
                cur["fermi"] = float(body[3])
            except (IndexError, ValueError):
                raise ValueError(f"{path}: line {i}: bad E(Fermi) line {s[:80]!r}") from None
            continue
        if body[0] in ("Sum:", "Band") or body[0].endswith(":"):
            continue
        if len(body) != 4:
            raise ValueError(f"{path}: line {i}: expected 'index eig[a.u.] eig[eV] occupation', got {s[:80]!r}")
        try:
            cur["idx"].append(int(body[0]))
            cur["eV"].append(float(body[2]))
            cur["occ"].append(float(body[3]))
        except ValueError:
            raise ValueError(f"{path}: line {i}: bad number in {s[:80]!r}") from None
    close()
    if not blocks:
        raise ValueError(f"{path}: no MO block")
    return blocks, synthetic


# ----------------------------------------------------------------------------- main output
@dataclasses.dataclass
class Evaluation:
    """One force evaluation (SCF) found in a main output.

    kind: ``init`` (the SCF before ``MD_INI|``: start or restart step), ``step`` (the
    SCF before ``MD| Step number N``) or ``trailing`` (no step line after it: killed).
    scf_converged: the last SCF verdict line of the evaluation (None if none was printed).
    walltime_stopped: CP2K's WALLTIME cut the SCF short (``SCF run terminated - exceeded
    requested execution time``): no MO block, not a valid MD step.
    ot_homo_eV / ot_lumo_eV: from the ``MO_CUBES`` eigenvalue print (OT route), else None.
    """

    segment: str
    line_no: int
    kind: str = "trailing"
    step: int | None = None
    time_fs: float | None = None
    scf_converged: bool | None = None
    walltime_stopped: bool = False
    force_done: bool = False
    ot_homo_eV: float | None = None
    ot_lumo_eV: float | None = None
    ot_n_occupied: int = 0
    fermi_eV: float | None = None
    gap_eV: float | None = None
    n_electrons: int | None = None
    n_occupied: int | None = None


@dataclasses.dataclass
class MainOutput:
    """What :func:`read_main_output` takes from one segment's main output.

    timestep_fs: ``MD_PAR| Time step``; smearing_K: electronic temperature when a smearing
    method is active, else None; complete: CP2K printed ``PROGRAM ENDED AT``.
    """

    path: str
    evaluations: list[Evaluation]
    timestep_fs: float | None
    smearing_K: float | None
    cp2k_version: str | None
    synthetic: bool
    complete: bool


_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"
_RE_STEP = re.compile(r"^\s*MD\|\s+Step number\s+(\d+)\s*$")
_RE_TIME = re.compile(rf"^\s*MD\|\s+Time \[fs\]\s+({_FLOAT})\s*$")
_RE_DT = re.compile(rf"^\s*MD_PAR\|\s+Time step \[fs\]\s+({_FLOAT})\s*$")
_RE_NEL = re.compile(r"^\s*Number of electrons:\s+(\d+)\s*$")
_RE_NOCC = re.compile(r"^\s*Number of occupied orbitals:\s+(\d+)\s*$")
_RE_SMEAR = re.compile(r"^\s*Smear method:\s+(\S+)")
_RE_TEL = re.compile(rf"^\s*Electronic temperature \[K\]:\s+({_FLOAT})\s*$")
_RE_FERMI = re.compile(rf"^\s*Fermi Energy \[eV\]\s*:\s*({_FLOAT})\s*$")
_RE_GAP = re.compile(rf"^\s*HOMO - LUMO gap \[eV\]\s*:\s*({_FLOAT})\s*$")
_RE_VERSION = re.compile(r"CP2K\|\s+version string:\s+CP2K version\s+(\S+)")
_SCF_WALLTIME_STOP = "SCF run terminated - exceeded requested execution time"
"""CP2K 2023.1's line when its WALLTIME ends an SCF (followed by ``:  1.000 seconds.``)."""


def _f(text: str) -> float:
    return float(text.replace("D", "E").replace("d", "e"))


def read_main_output(path: str | os.PathLike) -> MainOutput:
    """The force evaluations of one CP2K MD main output, in order, with step, time, SCF verdict
    and (OT route) band edges; plus time step, smearing and version."""
    path = Path(path)
    lines, complete = _text_lines(path, "CP2K main output")
    if not complete:
        lines = lines[:-1]
    out = MainOutput(str(path), [], None, None, None, False, False)
    seg = path.name
    evals = out.evaluations
    cur: Evaluation | None = None
    smear_method: str | None = None
    t_el: float | None = None
    n_el = n_occ = None
    mode = None  # None | "occ" | "unocc"
    occ_last: float | None = None
    occ_count = 0
    for i, line in enumerate(lines, start=1):
        if mode is not None:
            s = line.strip()
            if s.startswith("---") or s.startswith("OT|") or (mode == "unocc" and not s):
                continue
            try:
                vals = [float(t) for t in s.split()]
            except ValueError:
                vals = []
            if vals and mode == "occ":
                occ_last, occ_count = vals[-1], occ_count + len(vals)
                continue
            if vals and mode == "unocc":
                if cur is not None and cur.ot_lumo_eV is None:
                    cur.ot_lumo_eV = vals[0] * HARTREE_eV
                mode = None
                continue
            if mode == "occ" and occ_last is not None and cur is not None:
                cur.ot_homo_eV, cur.ot_n_occupied = occ_last * HARTREE_eV, occ_count
            mode = None
        if i == 1 and line.lstrip().startswith("#"):
            out.synthetic = _is_synthetic_line(line)
            continue
        if "SCF WAVEFUNCTION OPTIMIZATION" in line:
            if cur is None:
                cur = Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ)
                evals.append(cur)
            continue
        if "SCF run converged" in line and "NOT" not in line:
            if cur is None:
                cur = Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ)
                evals.append(cur)
            cur.scf_converged = True
            continue
        if "SCF run NOT converged" in line or "outer SCF loop FAILED to converge" in line:
            if cur is None:
                cur = Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ)
                evals.append(cur)
            cur.scf_converged = False
            continue
        if _SCF_WALLTIME_STOP in line:
            if cur is None:
                cur = Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ)
                evals.append(cur)
            cur.walltime_stopped = True
            continue
        if "outer SCF loop converged" in line:
            if cur is not None:
                cur.scf_converged = True
            continue
        if line.lstrip().startswith("ENERGY| Total FORCE_EVAL"):
            if cur is not None:
                cur.force_done = True
            continue
        if "Eigenvalues of the occupied subspace" in line:
            mode, occ_last, occ_count = "occ", None, 0
            continue
        if "Lowest Eigenvalues of the unoccupied subspace" in line or "Lowest eigenvalues of the unoccupied subspace" in line:
            mode = "unocc"
            continue
        s = line.lstrip()
        if s.startswith("MD_INI| MD initialization"):
            if cur is None:  # an output without SCF prints (the mock engine's minimal one)
                evals.append(Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ))
                cur = evals[-1]
            cur.kind = "init"
            cur = None
            continue
        if s.startswith("MD| Step number"):
            m = _RE_STEP.match(line)
            if m is None:
                raise ValueError(f"{path}: line {i}: bad step line {line.strip()[:80]!r}")
            if cur is None:
                evals.append(Evaluation(seg, i, n_electrons=n_el, n_occupied=n_occ))
                cur = evals[-1]
            cur.kind, cur.step = "step", int(m.group(1))
            if i < len(lines):
                mt = _RE_TIME.match(lines[i])
                if mt:
                    cur.time_fs = _f(mt.group(1))
            cur = None
            continue
        if s.startswith("Number of electrons:"):
            m = _RE_NEL.match(line)
            if m:
                n_el = int(m.group(1))
                if cur is not None:
                    cur.n_electrons = n_el
            continue
        if s.startswith("Number of occupied orbitals:"):
            m = _RE_NOCC.match(line)
            if m:
                n_occ = int(m.group(1))
                if cur is not None:
                    cur.n_occupied = n_occ
            continue
        if s.startswith("Fermi Energy [eV]"):
            m = _RE_FERMI.match(line)
            if m and cur is not None:
                cur.fermi_eV = _f(m.group(1))
            continue
        if s.startswith("HOMO - LUMO gap [eV]"):
            m = _RE_GAP.match(line)
            if m and cur is not None:
                cur.gap_eV = _f(m.group(1))
            continue
        if s.startswith("MD_PAR| Time step [fs]"):
            m = _RE_DT.match(line)
            if m:
                out.timestep_fs = _f(m.group(1))
            continue
        if s.startswith("Smear method:"):
            m = _RE_SMEAR.match(line)
            smear_method = m.group(1) if m else None
            continue
        if s.startswith("Electronic temperature [K]:"):
            m = _RE_TEL.match(line)
            if m:
                t_el = _f(m.group(1))
            continue
        if "version string:" in line and out.cp2k_version is None:
            m = _RE_VERSION.search(line)
            if m:
                out.cp2k_version = m.group(1)
            continue
        if "PROGRAM ENDED AT" in line:
            out.complete = True
    if smear_method is not None and smear_method.upper() != "NONE":
        out.smearing_K = t_el
    _assign_init_steps(evals)
    return out


def _assign_init_steps(evals: list[Evaluation]) -> None:
    """Give an ``init`` evaluation the step before the segment's first numbered step (when known)."""
    for k, ev in enumerate(evals):
        if ev.kind != "init":
            continue
        nxt = next((e for e in evals[k + 1 :] if e.kind == "step"), None)
        if nxt is not None:
            ev.step = nxt.step - 1


# ----------------------------------------------------------------------------- band edges
@dataclasses.dataclass(frozen=True)
class BandEdges:
    """Band edges per MD step (every step once, sorted).

    vbm_eV / cbm_eV: HOMO (orbital ``homo_index``) and LUMO (``homo_index + 1``)
    eigenvalues; gap_eV = cbm_eV - vbm_eV. scf_converged: CP2K's verdict for that
    step's SCF. homo_occupation / lumo_occupation: occupations of the two orbitals
    (2 and 0 without smearing; NaN when not printed).
    """

    step: np.ndarray
    time_fs: np.ndarray
    vbm_eV: np.ndarray
    cbm_eV: np.ndarray
    gap_eV: np.ndarray
    scf_converged: np.ndarray
    homo_occupation: np.ndarray
    lumo_occupation: np.ndarray
    homo_index: int
    source: str
    synthetic: bool = False

    def select(self, mask: np.ndarray) -> "BandEdges":
        """The rows where ``mask`` is True."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("step", "time_fs", "vbm_eV", "cbm_eV", "gap_eV", "scf_converged", "homo_occupation", "lumo_occupation"):
            kw[name] = kw[name][mask]
        return BandEdges(**kw)


def segment_outputs(run_dir: str | os.PathLike) -> list[Path]:
    """The segment main outputs ``seg000.out``, ``seg001.out``, ... of a run directory, in order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run directory not found")
    segs = [p for p in run_dir.glob(SEGMENT_GLOB) if re.fullmatch(r"seg\d{3,}\.out", p.name)]
    segs.sort(key=lambda p: int(p.stem[3:]))
    if not segs:
        raise FileNotFoundError(f"{run_dir}: no segment output (seg000.out, ...) found")
    return segs


def _evaluation_times(mains: Sequence[MainOutput]) -> None:
    """Fill step and time of ``init`` evaluations that the segment itself cannot date."""
    last_step: int | None = None
    last_time: float | None = None
    for mo in mains:
        for ev in mo.evaluations:
            if ev.kind == "init":
                if ev.step is None:
                    ev.step = last_step if last_step is not None else 0
                if ev.time_fs is None:
                    if last_step is not None and ev.step == last_step and last_time is not None:
                        ev.time_fs = last_time
                    elif mo.timestep_fs is not None:
                        ev.time_fs = ev.step * mo.timestep_fs
            if ev.kind in ("init", "step") and ev.step is not None:
                last_step, last_time = ev.step, ev.time_fs
            if ev.kind == "step" and ev.time_fs is None and mo.timestep_fs is not None:
                ev.time_fs = ev.step * mo.timestep_fs


def align_mo_blocks(mains: Sequence[MainOutput], blocks: Sequence[MOBlock], molog: str) -> list[tuple[Evaluation, MOBlock]]:
    """Pair every dated evaluation (``init``/``step``) with its MOLog block, in order.

    Guess blocks are skipped. An evaluation whose SCF CP2K's WALLTIME cut short wrote
    no block (although its energy line is printed) and is not paired. A killed
    segment's trailing evaluation consumed a block if it certainly wrote one (its
    energy line is printed), certainly did not (its SCF did not end), or possibly did
    (SCF ended, killed during the post-SCF prints); the possible ones are decided by
    the block count, and an undecidable count raises ValueError, as does any count
    that does not fit.
    """
    md_blocks = [b for b in blocks if not b.guess]
    evals = [ev for mo in mains for ev in mo.evaluations if not ev.walltime_stopped]
    dated = sum(ev.kind != "trailing" for ev in evals)
    certain = [ev for ev in evals if ev.kind == "trailing" and ev.force_done]
    maybe = [ev for ev in evals if ev.kind == "trailing" and not ev.force_done and ev.scf_converged is not None]
    extra = len(md_blocks) - dated - len(certain)
    if extra < 0 or extra > len(maybe):
        raise ValueError(
            f"{molog}: {len(md_blocks)} MO blocks do not fit the {dated} dated force evaluations"
            f" (+{len(certain)} certain and {len(maybe)} possible from killed segments) of "
            + ", ".join(Path(mo.path).name for mo in mains)
        )
    if 0 < extra < len(maybe):
        raise ValueError(
            f"{molog}: cannot tell which of {len(maybe)} killed segments wrote an MO block ({extra} did), so the "
            "blocks cannot be aligned to steps; trim each killed segment's output and MOLog back to its restart step"
        )
    wrote = {id(ev) for ev in certain} | ({id(ev) for ev in maybe} if extra else set())
    pairs: list[tuple[Evaluation, MOBlock]] = []
    k = 0
    for ev in evals:
        if ev.kind == "trailing":
            if id(ev) in wrote:
                k += 1
            continue
        b = md_blocks[k]
        k += 1
        if not b.complete:
            raise ValueError(f"{molog}: line {b.line_no}: MO block cut short, but its step ({ev.step}) completed")
        pairs.append((ev, b))
    return pairs


def _molog_rows(pairs, homo: int, molog: str) -> list[tuple] | None:
    """(evaluation, HOMO eV, LUMO eV, HOMO occ., LUMO occ.) per pair; None when the LUMO is not printed (OT)."""
    rows = []
    for ev, b in pairs:
        h, lumo = b.orbital(homo), b.orbital(homo + 1)
        if h is None:
            raise ValueError(f"{molog}: line {b.line_no}: orbital {homo} (HOMO) not printed (MO_INDEX_RANGE?)")
        if lumo is None:
            return None
        rows.append((ev, h[0], lumo[0], h[1], lumo[1]))
    return rows


def _ot_rows(evals: Sequence[Evaluation], homo: int, why: str) -> list[tuple]:
    """Rows of the OT route (main output ``MO_CUBES`` eigenvalues); ValueError naming a step without them."""
    for ev in evals:
        if ev.ot_homo_eV is None or ev.ot_lumo_eV is None:
            raise ValueError(f"{why}, and {ev.segment}: line {ev.line_no}: no MO_CUBES eigenvalue print for step {ev.step}")
        if ev.ot_n_occupied != homo:
            raise ValueError(
                f"{ev.segment}: line {ev.line_no}: {ev.ot_n_occupied} occupied eigenvalues printed, expected {homo}"
            )
    return [(ev, ev.ot_homo_eV, ev.ot_lumo_eV, 2.0, 0.0) for ev in evals]


def band_edges_from_outputs(
    mains: Sequence[MainOutput], molog_path: Path | None, warn_sink: list[str] | None = None
) -> BandEdges:
    """Band edges of every dated evaluation (restart duplicates resolved: the later copy wins).

    MOLog route when the MOLog holds the LUMO, else the OT route from the main outputs.
    A dated evaluation whose SCF CP2K's WALLTIME cut short is left out (warned).
    """
    _evaluation_times(mains)
    evals = [ev for mo in mains for ev in mo.evaluations if ev.kind != "trailing"]
    for ev in evals:
        if ev.walltime_stopped:
            _warn(
                f"{ev.segment}: line {ev.line_no}: CP2K's WALLTIME stopped the SCF of step {ev.step} (no MO block): "
                "not used for the band edges",
                warn_sink,
            )
    evals = [ev for ev in evals if not ev.walltime_stopped]
    if not evals:
        raise ValueError(f"{', '.join(mo.path for mo in mains)}: no completed MD force evaluation")
    n_el = next((ev.n_electrons for ev in evals if ev.n_electrons is not None), None)
    if n_el is None:
        raise ValueError(f"{mains[0].path}: no 'Number of electrons' line: cannot tell which orbital is the HOMO")
    if n_el % 2:
        raise ValueError(f"{mains[0].path}: odd electron count {n_el}: closed-shell band edges undefined")
    homo = n_el // 2
    smeared = any(mo.smearing_K is not None for mo in mains)
    if not smeared:
        n_occ = {ev.n_occupied for ev in evals if ev.n_occupied is not None}
        if n_occ and n_occ != {homo}:
            _warn(f"{mains[0].path}: 'Number of occupied orbitals' {sorted(n_occ)} differs from N_el/2 = {homo}", warn_sink)
    rows = None
    synthetic = any(mo.synthetic for mo in mains)
    if molog_path is not None and molog_path.is_file():
        blocks, molog_synthetic = read_molog(molog_path)
        synthetic = synthetic or molog_synthetic
        rows = _molog_rows(align_mo_blocks(mains, blocks, str(molog_path)), homo, str(molog_path))
        source = f"{molog_path.name} (orbital {homo} = HOMO, {homo + 1} = LUMO)"
        why = f"{molog_path} does not print orbital {homo + 1} (LUMO)"
    else:
        why = f"{molog_path}: MO print file not found"
        if not any(ev.ot_lumo_eV is not None for ev in evals):
            raise FileNotFoundError(why)
    if rows is None:
        rows = _ot_rows(evals, homo, why)
        source = f"main output MO_CUBES eigenvalues (HOMO = orbital {homo}, last of the occupied subspace; LUMO = lowest unoccupied)"
    step = np.asarray([r[0].step for r in rows], dtype=np.int64)
    keep = dedupe_keep_last(step)
    rows = [rows[i] for i in keep]
    time_fs = np.asarray([np.nan if r[0].time_fs is None else r[0].time_fs for r in rows], dtype=np.float64)
    vbm = np.asarray([r[1] for r in rows], dtype=np.float64)
    cbm = np.asarray([r[2] for r in rows], dtype=np.float64)
    conv = np.asarray([r[0].scf_converged is not False for r in rows], dtype=bool)
    return BandEdges(
        step[keep], time_fs, vbm, cbm, cbm - vbm, conv,
        np.asarray([r[3] for r in rows], dtype=np.float64), np.asarray([r[4] for r in rows], dtype=np.float64),
        homo, source, synthetic,
    )  # fmt: skip


# ----------------------------------------------------------------------------- run directory
@dataclasses.dataclass
class RunResult:
    """Everything parsed from one run directory.

    band_edges: after the SCF policy. positions (A) / velocities (A/fs) / energies:
    every step once. level: ``xtb``/``pbe`` when known (from the segment inputs).
    n_scf_unconverged: steps whose SCF did not converge (before the policy);
    dropped_steps: steps removed by the policy. warnings: every ParseWarning raised.
    """

    run_dir: str
    segments: list[str]
    band_edges: BandEdges
    positions: Trajectory
    velocities: Trajectory
    energies: Energies
    level: str | None
    cp2k_version: str | None
    smearing_K: float | None
    synthetic: bool
    scf_policy: str
    n_scf_unconverged: int
    dropped_steps: list[int]
    warnings: list[str]


_RE_LEVEL_HEADER = re.compile(r"^!\s*qdphonon .*\blevel\s+(\w+)", re.MULTILINE)


def detect_level(run_dir: str | os.PathLike) -> str | None:
    """Level of theory of a run from its first segment input: the qdphonon header, else the method."""
    run_dir = Path(run_dir)
    for inp in sorted(run_dir.glob("seg*.inp")) + [run_dir / "md.inp"]:
        if not inp.is_file():
            continue
        text = inp.read_text(errors="replace")
        m = _RE_LEVEL_HEADER.search(text)
        if m:
            return m.group(1).lower()
        upper = text.upper()
        if re.search(r"^\s*METHOD\s+XTB\b", upper, re.MULTILINE):
            return "xtb"
        if re.search(r"XC_FUNCTIONAL\s+PBE\b", upper):
            return "pbe"
    return None


def parse_run_dir(run_dir: str | os.PathLike, on_scf_failure: str = "drop_step") -> RunResult:
    """Parse a run directory (segments and CP2K files of project ``md``) into one result.

    on_scf_failure: what to do with band edges of steps whose SCF did not converge:
    ``drop_step`` (remove them, warn), ``keep_flagged`` (keep, ``scf_converged`` False)
    or ``fail`` (ValueError listing them). Trajectories and energies are not affected.
    """
    if on_scf_failure not in SCF_POLICIES:
        raise ValueError(f"on_scf_failure must be one of {', '.join(SCF_POLICIES)}, got {on_scf_failure!r}")
    run_dir = Path(run_dir)
    sink: list[str] = []
    segs = segment_outputs(run_dir)
    mains = [read_main_output(p) for p in segs]
    for mo in mains[:-1]:
        if mo.evaluations and mo.evaluations[-1].kind == "trailing":
            by = " by CP2K's WALLTIME" if mo.evaluations[-1].walltime_stopped else ""
            _warn(f"{mo.path}: segment was cut short{by} during step {_next_step(mo)}; its partial step is dropped", sink)
    last = mains[-1]
    if last.evaluations and last.evaluations[-1].kind == "trailing":
        ev = last.evaluations[-1]
        why = " after an unconverged SCF (CP2K >= 2024.1 aborts there)" if ev.scf_converged is False else ""
        if ev.walltime_stopped:
            why = " (CP2K's WALLTIME stopped its SCF; a continuation re-evaluates it)"
        _warn(f"{last.path}: run ended during step {_next_step(last)}{why}; that step is dropped", sink)
    edges = band_edges_from_outputs(mains, run_dir / MOLOG_FILE, sink)
    positions = read_positions(run_dir / POSITIONS_FILE, sink)
    velocities = read_velocities(run_dir / VELOCITIES_FILE, sink)
    energies = read_energies(run_dir / ENERGIES_FILE, sink)
    smearing = next((mo.smearing_K for mo in mains if mo.smearing_K is not None), None)
    if smearing is not None:
        threshold_eV = SMEARING_GAP_FACTOR * BOLTZMANN_meV_per_K * smearing * 1e-3
        small = edges.gap_eV < threshold_eV
        if small.any():
            _warn(
                f"{run_dir}: gap below {SMEARING_GAP_FACTOR:g} k_B T_el = {threshold_eV:.3f} eV (T_el = {smearing:g} K) "
                f"at {int(small.sum())} of {small.size} steps (min {edges.gap_eV.min():.4f} eV): the smearing "
                "changes the frontier occupations (recorded)",
                sink,
            )
    bad = ~edges.scf_converged
    n_bad = int(bad.sum())
    dropped: list[int] = []
    if n_bad:
        listed = ", ".join(str(s) for s in edges.step[bad][:20]) + (" ..." if n_bad > 20 else "")
        if on_scf_failure == "fail":
            raise ValueError(f"{run_dir}: SCF not converged at {n_bad} step(s): {listed}")
        if on_scf_failure == "drop_step":
            dropped = [int(s) for s in edges.step[bad]]
            edges = edges.select(~bad)
            _warn(f"{run_dir}: SCF not converged at {n_bad} step(s) ({listed}): dropped from the band edges", sink)
        else:
            _warn(f"{run_dir}: SCF not converged at {n_bad} step(s) ({listed}): kept, flagged", sink)
    synthetic = edges.synthetic or positions.synthetic or velocities.synthetic or energies.synthetic
    return RunResult(
        run_dir=str(run_dir),
        segments=[p.name for p in segs],
        band_edges=edges,
        positions=positions,
        velocities=velocities,
        energies=energies,
        level=detect_level(run_dir),
        cp2k_version=next((mo.cp2k_version for mo in mains if mo.cp2k_version), None),
        smearing_K=smearing,
        synthetic=synthetic,
        scf_policy=on_scf_failure,
        n_scf_unconverged=n_bad,
        dropped_steps=dropped,
        warnings=sink,
    )


def _next_step(mo: MainOutput) -> int | str:
    dated = [ev.step for ev in mo.evaluations if ev.kind != "trailing" and ev.step is not None]
    return dated[-1] + 1 if dated else "?"


# ----------------------------------------------------------------------------- trimming killed runs
def _complete_xyz_length(path: Path) -> int:
    """Byte length of the whole frames at the start of an XYZ file (keeps a leading ``#`` line)."""
    data = path.read_bytes()
    pos = 0
    if data.lstrip().startswith(b"#"):
        pos = data.index(b"\n") + 1 if b"\n" in data else len(data)
    good = pos
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        try:
            n = int(data[pos:nl])
        except ValueError:
            break
        end = pos
        for _ in range(n + 2):
            nl2 = data.find(b"\n", end)
            if nl2 < 0:
                return good
            end = nl2 + 1
        good = pos = end
    return good


def _complete_lines_length(path: Path) -> int:
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


def _complete_molog_length(path: Path) -> int:
    """Byte length up to the end of the last complete MO block (through its ``E(Fermi)`` and optional ``Band gap`` lines)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    pos = 0
    good = 0
    open_block = False
    for line in lines:
        pos += len(line) + 1
        if b"EIGENVALUES AND OCCUPATION NUMBERS" in line:
            open_block = True
            continue
        if b"E(Fermi)" in line or b"Band gap" in line:
            open_block = False
            good = pos
            continue
        if not open_block and not line.strip():
            good = pos
        if not open_block and line.lstrip().startswith(b"#"):
            good = pos
    return good


def truncate_to_complete_records(run_dir: str | os.PathLike) -> dict[str, int]:
    """Cut a killed segment's partial last records from the shared files, before a continuation appends.

    Trims ``md-pos-1.xyz`` / ``md-vel-1.xyz`` to whole frames, ``md-1.ener`` to whole
    lines and ``md-mo-1.MOLog`` to whole blocks. Complete records are never removed
    (the parser aligns duplicates and a killed step's extra MO block). Returns the
    number of bytes removed per file name (0 for an untouched file; missing files are skipped).
    """
    run_dir = Path(run_dir)
    removed: dict[str, int] = {}
    for name, measure in (
        (POSITIONS_FILE, _complete_xyz_length),
        (VELOCITIES_FILE, _complete_xyz_length),
        (ENERGIES_FILE, _complete_lines_length),
        (MOLOG_FILE, _complete_molog_length),
    ):
        path = run_dir / name
        if not path.is_file():
            continue
        size = path.stat().st_size
        keep = measure(path)
        if keep < size:
            with open(path, "r+b") as fh:
                fh.truncate(keep)
        removed[name] = size - keep
    return removed


# ----------------------------------------------------------------------------- writers
LEVEL_NOTES = {
    "xtb": "GFN1-xTB exercises the machinery; it badly underestimates the gap of these clusters (not for physics)",
    "pbe": "PBE (no spin-orbit coupling)",
}


def read_region_labels(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(species, region) of every atom of an extended XYZ whose comment line declares
    ``Properties=species:S:1:pos:R:3:region:S:1...`` (the structure files of ``qdphonon build``)."""
    path = Path(path)
    lines, _ = _text_lines(path, "structure file")
    try:
        n = int(lines[0].strip())
    except (ValueError, IndexError):
        raise ValueError(f"{path}: line 1: expected the atom count") from None
    if len(lines) < 2:
        raise ValueError(f"{path}: line 2: missing comment line")
    m = re.search(r"Properties=(\S+)", lines[1])
    if m is None:
        raise ValueError(f"{path}: line 2: no Properties= in the comment line")
    fields = m.group(1).split(":")
    columns: dict[str, int] = {}
    col = 0
    try:
        for name, width in zip(fields[0::3], fields[2::3]):
            columns[name] = col
            col += int(width)
    except ValueError:
        raise ValueError(f"{path}: line 2: bad Properties={m.group(1)}") from None
    if "region" not in columns or "species" not in columns:
        raise ValueError(f"{path}: line 2: Properties has no 'species' or no 'region' column")
    species, regions = [], []
    for ln in range(3, n + 3):
        if ln > len(lines):
            raise ValueError(f"{path}: line {ln}: file ends before atom {ln - 2} of {n}")
        parts = lines[ln - 1].split()
        if len(parts) < col:
            raise ValueError(f"{path}: line {ln}: expected {col} columns, got {len(parts)}")
        species.append(parts[columns["species"]])
        regions.append(parts[columns["region"]])
    return species, regions


def csv_header_lines(result: RunResult) -> list[str]:
    """The ``#`` comment lines that head a band-edge CSV."""
    lines = []
    if result.synthetic:
        lines.append(SYNTHETIC_LABEL)
    version = f"CP2K {result.cp2k_version}" if result.cp2k_version else "CP2K (version not printed)"
    lines.append(f"# source: {version} run directory {result.run_dir} (segments {', '.join(result.segments)})")
    lines.append(f"# band edges: {result.band_edges.source}")
    if result.level:
        lines.append(f"# level: {result.level}")
        if result.level in LEVEL_NOTES:
            lines.append(f"# note: {LEVEL_NOTES[result.level]}")
    if result.smearing_K is not None:
        lines.append(f"# smearing: Fermi-Dirac, T_el = {result.smearing_K:g} K (frontier occupations changed)")
    lines.append(
        f"# scf: {result.n_scf_unconverged} step(s) not converged; policy {result.scf_policy}"
        + (f"; dropped steps {' '.join(map(str, result.dropped_steps))}" if result.dropped_steps else "")
    )
    lines.extend(f"# warning: {w}" for w in result.warnings)
    return lines


def write_band_edges_csv(result: RunResult, path: str | os.PathLike) -> None:
    """Write ``step,time_fs,vbm_eV,cbm_eV,gap_eV,scf_converged`` with ``#`` provenance lines
    (``# synthetic (mock engine)`` first when synthetic). Floats are written round-trip exact."""
    import pandas as pd

    e = result.band_edges
    df = pd.DataFrame(
        {"step": e.step, "time_fs": e.time_fs, "vbm_eV": e.vbm_eV, "cbm_eV": e.cbm_eV, "gap_eV": e.gap_eV,
         "scf_converged": e.scf_converged.astype(bool)}
    )  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(csv_header_lines(result)) + "\n")
        df.to_csv(fh, index=False, lineterminator="\n")


def write_trajectory_npz(result: RunResult, path: str | os.PathLike, regions=None) -> None:
    """Write ``velocities`` (frames, atoms, 3) in A/fs and ``positions`` in A (float32), ``time_fs``,
    ``step``, ``symbols``, ``synthetic``, ``level`` and, when given, ``regions``.

    Only steps present in both trajectories are written. ``regions`` is a sequence of
    per-atom labels or the path of the structure's extended XYZ (``region`` column).
    """
    pos, vel = result.positions, result.velocities
    if pos.symbols != vel.symbols:
        raise ValueError(f"{pos.path} and {vel.path} list different atoms")
    common, ip, iv = np.intersect1d(pos.step, vel.step, assume_unique=True, return_indices=True)
    if common.size < max(pos.n_frames, vel.n_frames):
        _warn(
            f"{result.run_dir}: positions ({pos.n_frames} frames) and velocities ({vel.n_frames}) differ; "
            f"writing the {common.size} common steps",
            result.warnings,
        )
    arrays = {
        "velocities": vel.values[iv].astype(np.float32),
        "positions": pos.values[ip].astype(np.float32),
        "time_fs": pos.time_fs[ip].astype(np.float64),
        "step": common.astype(np.int64),
        "symbols": np.asarray(pos.symbols, dtype=str),
        "synthetic": np.asarray(result.synthetic),
        "level": np.asarray(result.level or ""),
    }
    if regions is not None:
        if isinstance(regions, (str, os.PathLike)):
            species, labels = read_region_labels(regions)
            if tuple(species) != tuple(pos.symbols):
                raise ValueError(f"{regions}: atoms differ from those of {pos.path} (order or elements)")
        else:
            labels = list(regions)
        if len(labels) != len(pos.symbols):
            raise ValueError(f"{len(labels)} region labels for {len(pos.symbols)} atoms")
        arrays["regions"] = np.asarray(labels, dtype=str)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
