"""A fast reader of CP2K's XYZ trajectories (positions, velocities), and structure region labels."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
from pathlib import Path
from typing import Iterator
import numpy as np
from qdphonon.units import AU_VELOCITY_A_per_fs
from qdphonon.parsers.common import _is_synthetic_line, _require_file, _text_lines, _warn


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
