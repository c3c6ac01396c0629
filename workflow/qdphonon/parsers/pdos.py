"""CP2K ``&PDOS`` files of atom lists (``&LDOS``): the weight of every printed orbital on a list of atoms.

CP2K 2023.1 writes one file per list, ``{project}-{filename}-list{k}-1.pdos``, and with
``APPEND`` one block per print::

    # Projected DOS for list 1 of 4 atoms, at iteration step i = 4, E(Fermi) =    -0.337127 a.u.
    #     MO Eigenvalue [a.u.]      Occupation                 s                 p                 d
           1         -0.731892        2.000000        0.02295857        0.19297491

The weight of an orbital on the list is the sum of its angular-momentum columns (s, p, d, ...;
with ``COMPONENTS`` the m-resolved columns): over all lists that partition the atoms the weights of
one orbital sum to 1 within the print's 8 decimals. Energies in Hartree as printed.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from qdphonon.parsers.common import _is_synthetic_line, _text_lines

_HEADER = re.compile(r"#\s*Projected DOS for list\s+(\d+)\s+of\s+(\d+)\s+atoms, at iteration step i =\s*(\d+)"
                     r"(?:, E\(Fermi\) =\s*(\S+)\s*a\.u\.)?")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ListPDOS:
    """Blocks of one list file: ``step`` (MD step of each block), ``index`` (orbital, 1-based, same in
    every block), ``energy_Ha`` and ``weight`` (blocks x orbitals), ``n_atoms`` of the list, ``list_no``."""

    path: str
    list_no: int
    n_atoms: int
    step: np.ndarray
    index: np.ndarray
    energy_Ha: np.ndarray
    occupation: np.ndarray
    weight: np.ndarray
    synthetic: bool


def read_list_pdos(path: str | Path) -> ListPDOS:
    """Read one ``-list{k}-`` PDOS file. ValueError naming the file and line for a malformed row, a
    header it cannot read, or blocks that list different orbitals; a block cut short at the end (an
    interrupted run) is dropped; a step printed twice (``APPEND`` across a restart: the continuation
    re-runs the steps after its restart point) keeps its last block. Blocks in step order."""
    path = Path(path)
    lines, complete = _text_lines(path, "PDOS file")
    synthetic = bool(lines) and _is_synthetic_line(lines[0])
    if not complete:
        lines = lines[:-1]  # a row cut short by an interrupted run; its block is dropped below
    blocks: list[tuple[int, list[list[float]]]] = []
    list_no = n_atoms = None
    for no, line in enumerate(lines, 1):
        if not line.strip() or (no == 1 and synthetic):
            continue
        if line.startswith("#"):
            m = _HEADER.match(line.strip())
            if m:
                list_no, n_atoms = int(m.group(1)), int(m.group(2))
                blocks.append((int(m.group(3)), []))
            elif "MO" not in line:
                raise ValueError(f"{path}:{no}: unexpected header {line.strip()!r}")
            continue
        if not blocks:
            raise ValueError(f"{path}:{no}: orbital row before the first 'Projected DOS for list' header")
        parts = line.split()
        try:
            row = [float(x) for x in parts]
        except ValueError:
            raise ValueError(f"{path}:{no}: not a row of numbers: {line.strip()!r}") from None
        if len(row) < 4:
            raise ValueError(f"{path}:{no}: expected index, eigenvalue, occupation and weights, got {len(row)} values")
        blocks[-1][1].append(row)
    if not complete and blocks:
        blocks.pop()
    if not blocks:
        raise ValueError(f"{path}: no PDOS block")
    widths = {len(b[1]) for b in blocks}
    if len(widths) != 1:
        if blocks and len(blocks[-1][1]) < max(widths):
            blocks.pop()  # the last block cut short
        widths = {len(b[1]) for b in blocks}
        if len(widths) != 1:
            raise ValueError(f"{path}: blocks list different numbers of orbitals {sorted(widths)}")
    last = {step: i for i, (step, _) in enumerate(blocks)}  # a continuation re-prints the steps after its restart
    blocks = [blocks[i] for _, i in sorted(last.items())]
    arrays = [np.array(rows) for _, rows in blocks]
    index = arrays[0][:, 0].astype(int)
    for (step, _), a in zip(blocks, arrays):
        if not np.array_equal(a[:, 0].astype(int), index):
            raise ValueError(f"{path}: the block of step {step} lists other orbitals than the first")
    return ListPDOS(str(path), int(list_no), int(n_atoms), np.array([b[0] for b in blocks]), index,
                    np.stack([a[:, 1] for a in arrays]), np.stack([a[:, 2] for a in arrays]),
                    np.stack([a[:, 3:].sum(axis=1) for a in arrays]), synthetic)  # fmt: skip


def list_pdos_files(run_dir: str | Path, project: str, filename: str) -> list[Path]:
    """The ``{project}-{filename}-list{k}-1.pdos`` files of a run directory, by list number."""
    found = {}
    for p in Path(run_dir).glob(f"{project}-{filename}-list*-1.pdos"):
        m = re.fullmatch(rf"{re.escape(project)}-{re.escape(filename)}-list(\d+)-1\.pdos", p.name)
        if m:
            found[int(m.group(1))] = p
    return [found[k] for k in sorted(found)]
