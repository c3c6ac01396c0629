"""CP2K's ``.ener`` file: kinetic, potential and conserved energy and temperature per step."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Mapping
import numpy as np
from qdphonon.units import HARTREE_eV
from qdphonon.parsers.common import _is_synthetic_line, _text_lines, _warn
from qdphonon.parsers.xyz import dedupe_keep_last


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
            step, row = int(parts[0]), tuple(float(p) for p in parts[1:])
        except ValueError:
            raise ValueError(f"{path}: line {i}: bad number in {s[:80]!r}") from None
        if not all(math.isfinite(v) for v in row):
            raise ValueError(f"{path}: line {i}: non-finite number in {s[:80]!r} (the MD blew up?)")
        steps.append(step)
        rows.append(row)
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


def last_line_step(path: str | os.PathLike) -> int | None:
    """MD step of the last complete line of a CP2K ``.ener`` file (None when absent or unreadable);
    reads only the file's last 4 kB, for progress and status while CP2K writes it."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            tail = fh.read().split(b"\n")
    except FileNotFoundError:
        return None
    for line in reversed(tail[:-1] if tail and tail[-1] else tail):
        fields = line.split()
        if fields and not line.lstrip().startswith(b"#"):
            try:
                return int(fields[0])
            except ValueError:
                return None
    return None


def last_energy_step(run_dir: Path, files: Mapping[str, str | None]) -> int | None:
    """Last MD step with an energy record, or None (no file, empty, or unreadable)."""
    path = run_dir / files["energies"]
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        return int(read_energies(path).step.max())
    except ValueError:
        return None
