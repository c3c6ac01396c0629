"""CP2K MOLog files: one block of eigenvalues and occupations per force evaluation."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
import numpy as np
from qdphonon.parsers.common import _is_synthetic_line, _text_lines


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


class UnsupportedMOLogFormat(ValueError):
    """A MOLog in a format this reader does not read (CP2K before 8.2: ``MO EIGENVALUES AND MO
    OCCUPATION NUMBERS`` headers and ``# MO index`` tables, without the ``MO|`` prefix)."""


_PRE_82_MARKERS = ("MO EIGENVALUES AND MO OCCUPATION NUMBERS", "# MO index")


def read_molog(path: str | os.PathLike) -> tuple[list[MOBlock], bool]:
    """All blocks of a ``*.MOLog`` in file order, and the synthetic flag.

    Rows are ``MO| index eig[a.u.] eig[eV] occupation``; the eV column is used as CP2K
    printed it (the format of CP2K 8.2 and later). A partial last line is ignored. Spin-polarised
    output is refused; a MOLog of CP2K before 8.2 raises :class:`UnsupportedMOLogFormat`.
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
        if line.lstrip().startswith(_PRE_82_MARKERS) or "EIGENVALUES AND MO OCCUPATION" in line:
            raise UnsupportedMOLogFormat(
                f"{path}: line {i}: {line.strip()[:60]!r}: format not supported: the MOLog format of CP2K before 8.2 "
                "(no 'MO|' rows)"
            )
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
            if not math.isfinite(cur["fermi"]):
                raise ValueError(f"{path}: line {i}: non-finite E(Fermi) in {s[:80]!r}")
            continue
        if body[0] in ("Sum:", "Band") or body[0].endswith(":"):
            continue
        if len(body) != 4:
            raise ValueError(f"{path}: line {i}: expected 'index eig[a.u.] eig[eV] occupation', got {s[:80]!r}")
        try:
            idx, ev, occ = int(body[0]), float(body[2]), float(body[3])
        except ValueError:
            raise ValueError(f"{path}: line {i}: bad number in {s[:80]!r}") from None
        if not (math.isfinite(ev) and math.isfinite(occ)):
            raise ValueError(f"{path}: line {i}: non-finite eigenvalue or occupation in {s[:80]!r}")
        cur["idx"].append(idx)
        cur["eV"].append(ev)
        cur["occ"].append(occ)
    close()
    if not blocks:
        raise ValueError(f"{path}: no MO block")
    return blocks, synthetic
