"""Writers of what a parsed run directory yields: the band-edge table (plain CSV + JSON sidecar)
and the position/velocity trajectory (``.npz``) for the phonon DOS."""

from __future__ import annotations

import os
from pathlib import Path
import numpy as np
from qdphonon.metadata import LEVEL_NOTES, write_table
from qdphonon.parsers.common import _warn
from qdphonon.parsers.run_dir import RunResult
from qdphonon.parsers.xyz import read_region_labels


def band_edges_metadata(result: RunResult) -> dict:
    """The sidecar of a band-edge table: where it came from and what the analysis must know."""
    level = "mock" if result.synthetic else result.level
    return {
        "synthetic": bool(result.synthetic),
        "level": level,
        "level_note": LEVEL_NOTES.get(level or "", None),
        "cp2k_version": "mock" if result.synthetic else result.cp2k_version,
        "run_dir": result.run_dir,
        "project": result.layout.project,
        "main_outputs": result.segments,
        "set_aside": [p.name for p in result.layout.set_aside],
        "files": {k: v for k, v in result.layout.files.items() if v},
        "band_edges_source": result.band_edges.source,
        "homo_index": int(result.band_edges.homo_index),
        "md_temperature_K": result.md_temperature_K,
        "timestep_fs": result.timestep_fs,
        "smearing_K": result.smearing_K,
        "scf_policy": result.scf_policy,
        "n_scf_unconverged": int(result.n_scf_unconverged),
        "dropped_steps": list(result.dropped_steps),
        "warnings": list(result.warnings),
        "units": {"time_fs": "fs", "vbm_eV": "eV", "cbm_eV": "eV", "gap_eV": "eV"},
    }


def write_band_edges_csv(result: RunResult, path: str | os.PathLike) -> list[Path]:
    """Write ``step,time_fs,vbm_eV,cbm_eV,gap_eV,scf_converged`` as plain CSV and its JSON sidecar
    (:func:`band_edges_metadata`). Returns both paths."""
    import pandas as pd

    e = result.band_edges
    df = pd.DataFrame(
        {"step": e.step, "time_fs": e.time_fs, "vbm_eV": e.vbm_eV, "cbm_eV": e.cbm_eV, "gap_eV": e.gap_eV,
         "scf_converged": e.scf_converged.astype(bool)}
    )  # fmt: skip
    return write_table(df, path, band_edges_metadata(result))


def write_trajectory_npz(result: RunResult, path: str | os.PathLike, regions=None) -> None:
    """Write ``velocities`` (frames, atoms, 3) in A/fs and ``positions`` in A (float32), ``time_fs``,
    ``step``, ``symbols``, ``synthetic``, ``level`` and, when given, ``regions``.

    Only steps present in both trajectories are written. ``regions`` is a sequence of
    per-atom labels or the path of the structure's extended XYZ (``region`` column).
    """
    pos, vel = result.positions, result.velocities
    if pos is None or vel is None:
        missing = [k for k, t in (("positions", pos), ("velocities", vel)) if t is None]
        raise FileNotFoundError(f"{result.run_dir}: no {' and no '.join(missing)} trajectory "
                                f"({', '.join(str(result.layout.files[k]) for k in missing)}) to write {path}")  # fmt: skip
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
        "level": np.asarray("mock" if result.synthetic else (result.level or "")),
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
