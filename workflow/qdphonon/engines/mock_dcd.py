"""A writer of CP2K 2023.1's DCD trajectories (``FORMAT DCD``), byte-compatible with CP2K's, for the mock engine.

Layout (CP2K ``src/motion_utils.F`` ``write_trajectory`` and ``src/particle_methods.F``
``write_particle_coordinates``; read back by :mod:`qdphonon.parsers.dcd`): little-endian Fortran
sequential records with 4-byte markers; a header of three records (``CORD``/``VEL `` + 20 ``int32``
ICNTRL with NSET 0, ISTART, NSAVC, DELTA = time step in fs as ``float32``, unit-cell flag 1, CHARMM
version 24; two 80-character titles; the atom count), then per frame a record of six ``float64``
``a, gamma, b, beta, alpha, c`` and three ``float32`` records x, y, z.

The mock labels its files in the second title: ``REMARK synthetic (mock engine)`` (where CP2K writes
``REMARK user@host``); :func:`qdphonon.parsers.dcd.read_dcd_header` reports ``synthetic`` from it.
Like CP2K, the header is written once (when the file is new) and continuations append frames.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from qdphonon.metadata import SYNTHETIC_LABEL

CP2K_BOHR_A = 0.52917720859
"""CP2K 2023.1's bohr in Angstrom (CODATA 2006): the velocity DCD's cell record holds the box in bohr."""

DCD_IDS = {"positions": b"CORD", "velocities": b"VEL "}
TITLE_WIDTH = 80
CHARMM_VERSION = 24


def mock_titles(kind: str) -> tuple[str, str]:
    """The mock engine's two DCD titles (CP2K's first title names its version, the second ``user@host``)."""
    ident = DCD_IDS[kind].decode()
    return (f"REMARK {ident} DCD file created by qdphonon mock engine (CP2K 2023.1 layout)",
            f"REMARK {SYNTHETIC_LABEL}")  # fmt: skip


def _rec(payload: bytes) -> bytes:
    n = np.array([len(payload)], dtype="<i4").tobytes()
    return n + payload + n


def dcd_header_bytes(kind: str, n_atoms: int, *, istart: int, nsavc: int, timestep_fs: float,
                     titles: Sequence[str] | None = None) -> bytes:  # fmt: skip
    """The three header records CP2K writes when it creates a DCD file (``kind``: positions / velocities;
    ``titles`` default to :func:`mock_titles`, each padded to 80 characters)."""
    ident = DCD_IDS[kind]
    icntrl = np.zeros(20, dtype="<i4")
    icntrl[1], icntrl[2] = int(istart), int(nsavc)
    icntrl[10], icntrl[19] = 1, CHARMM_VERSION
    icntrl[9:10] = np.array([timestep_fs], dtype="<f4").view("<i4")
    titles = list(mock_titles(kind) if titles is None else titles)
    text = b""
    for t in titles:
        raw = t.encode("ascii")
        if len(raw) > TITLE_WIDTH:
            raise ValueError(f"DCD title longer than {TITLE_WIDTH} characters: {t!r}")
        text += raw.ljust(TITLE_WIDTH, b" ")
    return (_rec(ident + icntrl.tobytes())
            + _rec(np.array([len(titles)], dtype="<i4").tobytes() + text)
            + _rec(np.array([n_atoms], dtype="<i4").tobytes()))  # fmt: skip


def cp2k_cell_record(kind: str, box_A: float | Sequence[float], angles_deg: Sequence[float] = (90.0, 90.0, 90.0)) -> np.ndarray:
    """The six ``float64`` CP2K writes before each frame, ``a, gamma, b, beta, alpha, c``: the cell lengths
    times the print's unit factor (Angstrom for positions; bohr for velocities, whose default unit
    factor is 1) and the angles in degrees."""
    abc = np.broadcast_to(np.asarray(box_A, dtype=np.float64), (3,)).copy()
    if kind == "velocities":
        abc = abc / CP2K_BOHR_A
    alpha, beta, gamma = (float(a) for a in angles_deg)
    return np.array([abc[0], gamma, abc[1], beta, alpha, abc[2]], dtype=np.float64)


def dcd_frames_bytes(values: np.ndarray, cell: np.ndarray) -> bytes:
    """Frames ``values`` (n_frames, n_atoms, 3; stored as ``float32``) with the cell record ``cell``
    ((6,) for every frame, or (n_frames, 6)), vectorised through one structured array."""
    values = np.asarray(values)
    if values.ndim != 3 or values.shape[2] != 3:
        raise ValueError(f"DCD frames must have shape (n_frames, n_atoms, 3), got {values.shape}")
    n_frames, n_atoms = values.shape[:2]
    dt = np.dtype([("m0", "<i4"), ("cell", "<f8", (6,)), ("m1", "<i4"),
                   ("a0", "<i4"), ("x", "<f4", (n_atoms,)), ("a1", "<i4"),
                   ("a2", "<i4"), ("y", "<f4", (n_atoms,)), ("a3", "<i4"),
                   ("a4", "<i4"), ("z", "<f4", (n_atoms,)), ("a5", "<i4")])  # fmt: skip
    rec = np.empty(n_frames, dtype=dt)
    rec["m0"] = rec["m1"] = 48
    for k in range(6):
        rec[f"a{k}"] = 4 * n_atoms
    rec["cell"] = np.broadcast_to(np.asarray(cell, dtype=np.float64), (n_frames, 6))
    for k, axis in enumerate("xyz"):
        rec[axis] = values[:, :, k]
    return rec.tobytes()


def write_dcd(path: str | os.PathLike, values: np.ndarray, *, kind: str, istart: int, nsavc: int,
              timestep_fs: float, cell: np.ndarray, titles: Sequence[str] | None = None) -> int:  # fmt: skip
    """Append frames to a DCD file as CP2K does: the header first when the file does not exist yet.

    ``values`` in the units CP2K writes (positions in Angstrom, velocities in bohr/au_time); ``istart``
    is the MD step of the file's first frame, ``nsavc`` the print stride. Returns the bytes written.
    """
    path = Path(path)
    data = b""
    if not path.exists():
        data += dcd_header_bytes(kind, int(np.shape(values)[1]), istart=istart, nsavc=nsavc,
                                 timestep_fs=timestep_fs, titles=titles)  # fmt: skip
    data += dcd_frames_bytes(values, cell)
    with open(path, "ab") as fh:
        fh.write(data)
    return len(data)
