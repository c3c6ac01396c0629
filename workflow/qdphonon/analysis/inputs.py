"""Reading and validating what the analysis consumes: band-edge tables, velocity trajectories,
structure sidecars. Every error names the file (and row) it comes from."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
import numpy as np

from qdphonon.metadata import read_table_metadata



REQUIRED_COLUMNS = ("time_fs", "vbm_eV", "cbm_eV")


@dataclass(frozen=True)
class BandEdgeTrajectory:
    """Band edges of one replica: times in fs, VBM and CBM in eV, plus provenance flags."""

    source: str
    time_fs: np.ndarray
    vbm_eV: np.ndarray
    cbm_eV: np.ndarray
    synthetic: bool = False
    level: str | None = None
    n_scf_unconverged: int = 0
    n_interpolated: int = 0
    md_temperature_K: float | None = None
    timestep_fs: float | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def gap_eV(self) -> np.ndarray:
        """Gap E_CBM - E_VBM at every sample, eV."""
        return self.cbm_eV - self.vbm_eV

    @property
    def n_samples(self) -> int:
        return int(self.time_fs.size)


def _as_bool(values) -> np.ndarray:
    """Interpret a column of 0/1, True/False, 'true'/'false' strings as booleans."""
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v.strip().lower() in {"1", "true", "t", "yes", "y"})
        else:
            out.append(bool(v) and not (isinstance(v, float) and math.isnan(v)))
    return np.array(out, dtype=bool)


def check_uniform_time(time_fs: np.ndarray, source: str, rtol: float = 1e-3) -> float:
    """Return the time step (fs) of a strictly increasing, uniform grid; else ValueError naming ``source``.

    Uniformity is required because the spectrum uses the FFT grid ``w_k = 2 pi k / (N dt)``;
    a dropped step would silently shift every frequency.
    """
    t = np.asarray(time_fs, dtype=float)
    if t.size < 2:
        raise ValueError(f"{source}: need at least 2 samples, got {t.size}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{source}: time_fs contains NaN or infinite values")
    steps = np.diff(t)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise ValueError(f"{source}: time_fs is not strictly increasing (row {i + 1}: {t[i]} -> {t[i + 1]})")
    dt_fs = (t[-1] - t[0]) / (t.size - 1)
    bad = np.abs(steps - dt_fs) > rtol * dt_fs
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"{source}: time_fs is not uniform (step {steps[i]:g} fs at row {i + 1}, mean step {dt_fs:g} fs)"
        )
    return float(dt_fs)


MAX_DROPPED_FRACTION = 0.05
"""Largest fraction of MD steps missing from a band-edge file that is bridged by interpolation."""


def fill_dropped_steps(
    step: np.ndarray, columns: dict[str, np.ndarray], source: str, max_fraction: float = MAX_DROPPED_FRACTION
) -> tuple[dict[str, np.ndarray], int]:
    """Restore a uniform grid where steps were dropped (SCF failures, ``drop_step`` policy).

    The FFT needs a uniform grid, and deleting samples would shift every frequency. Missing
    integer steps between the first and last are filled by linear interpolation of every
    column (time included), and their number is returned so outputs can report it. More
    than ``max_fraction`` missing is refused: interpolation would then shape the spectrum.
    """
    step = np.asarray(step)
    if not np.all(np.isfinite(step)) or np.any(step != np.round(step)):
        raise ValueError(f"{source}: column step must hold integers")
    step = step.astype(np.int64)
    if np.any(np.diff(step) <= 0):
        i = int(np.argmax(np.diff(step) <= 0))
        raise ValueError(f"{source}: step is not strictly increasing (row {i + 1}: {step[i]} -> {step[i + 1]})")
    stride = int(np.gcd.reduce(np.diff(step))) if step.size > 1 else 1
    full = np.arange(step[0], step[-1] + 1, stride)
    n_missing = int(full.size - step.size)
    if n_missing == 0:
        return columns, 0
    if n_missing > max_fraction * full.size:
        raise ValueError(
            f"{source}: {n_missing} of {full.size} MD steps are missing (dropped SCF failures?); "
            f"more than {max_fraction:.0%} cannot be bridged by interpolation"
        )
    warnings.warn(f"{source}: {n_missing} missing MD step(s) filled by linear interpolation", stacklevel=2)
    return {k: np.interp(full, step, v) for k, v in columns.items()}, n_missing


def read_band_edges(path: str | os.PathLike) -> BandEdgeTrajectory:
    """Read and validate a band-edge CSV (docs/architecture.md §3).

    Required columns ``time_fs,vbm_eV,cbm_eV``. What the table is (``synthetic``, ``level``,
    ``md_temperature_K``, ``timestep_fs``) comes from its JSON sidecar (``x.json`` beside
    ``x.csv``, :mod:`qdphonon.metadata`); a table from another code may have none, and may
    carry ``#`` comment lines, which are skipped. Rows flagged ``scf_converged`` false are kept (the
    CSV is what is analysed) but counted. Missing columns, NaNs, fewer than two rows, and
    non-increasing or non-uniform time raise ValueError naming the file and the problem.
    """
    import pandas as pd

    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{src}: band-edge file not found")
    meta = read_table_metadata(path)
    synthetic, level = bool(meta.get("synthetic", False)), meta.get("level")
    try:
        df = pd.read_csv(path, comment="#", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{src}: empty file (no header, no rows)") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{src}: not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{src}: missing required column(s) {', '.join(missing)} (have: {', '.join(df.columns)})")
    if len(df) < 2:
        raise ValueError(f"{src}: {len(df)} data row(s); need at least 2 to define a fluctuation spectrum")
    cols = {}
    for name in REQUIRED_COLUMNS:
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            i = int(np.argmax(~np.isfinite(values)))
            raise ValueError(f"{src}: column {name} has NaN/non-numeric value at data row {i + 1}")
        cols[name] = values
    n_interpolated = 0
    if "step" in df.columns:
        step = pd.to_numeric(df["step"], errors="coerce").to_numpy(dtype=float)
        cols, n_interpolated = fill_dropped_steps(step, cols, src)
    check_uniform_time(cols["time_fs"], src)
    n_flagged = 0
    if "scf_converged" in df.columns:
        n_flagged = int(np.sum(~_as_bool(df["scf_converged"].tolist())))
    if "synthetic" in df.columns and np.any(_as_bool(df["synthetic"].tolist())):
        synthetic = True
    return BandEdgeTrajectory(
        source=src,
        time_fs=cols["time_fs"],
        vbm_eV=cols["vbm_eV"],
        cbm_eV=cols["cbm_eV"],
        synthetic=synthetic,
        level=level,
        n_scf_unconverged=n_flagged,
        n_interpolated=n_interpolated,
        md_temperature_K=meta.get("md_temperature_K"),
        timestep_fs=meta.get("timestep_fs"),
        metadata=meta,
    )


def discard_equilibration(traj: BandEdgeTrajectory, discard_fs: float) -> BandEdgeTrajectory:
    """Drop the samples within ``discard_fs`` of the first time (equilibration); keep the rest."""
    if discard_fs < 0:
        raise ValueError(f"{traj.source}: discard_fs must be >= 0, got {discard_fs}")
    keep = traj.time_fs >= traj.time_fs[0] + discard_fs - 1e-9
    if keep.sum() < 2:
        raise ValueError(
            f"{traj.source}: fewer than 2 samples left after discarding {discard_fs:g} fs "
            f"(trajectory spans {traj.time_fs[-1] - traj.time_fs[0]:g} fs)"
        )
    return dataclasses.replace(traj, time_fs=traj.time_fs[keep], vbm_eV=traj.vbm_eV[keep], cbm_eV=traj.cbm_eV[keep])


@dataclass(frozen=True)
class VelocityTrajectory:
    """Velocities (frames, atoms, 3), times in fs, per-atom symbols and optional regions."""

    source: str
    velocities: np.ndarray
    time_fs: np.ndarray
    symbols: np.ndarray
    regions: np.ndarray | None
    synthetic: bool = False


def read_velocities_npz(path: str | os.PathLike) -> VelocityTrajectory:
    """Read a velocity ``.npz`` (arrays ``velocities``, ``time_fs``, ``symbols``, optional ``regions``)."""
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{src}: velocity file not found")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("velocities", "time_fs", "symbols") if k not in data.files]
        if missing:
            raise ValueError(f"{src}: missing array(s) {', '.join(missing)}")
        vel = np.asarray(data["velocities"])
        t = np.asarray(data["time_fs"], dtype=float)
        symbols = np.asarray(data["symbols"]).astype(str)
        regions = np.asarray(data["regions"]).astype(str) if "regions" in data.files else None
        synthetic = bool(np.any(data["synthetic"])) if "synthetic" in data.files else False
    if vel.ndim != 3 or vel.shape[2] != 3:
        raise ValueError(f"{src}: velocities must have shape (frames, atoms, 3), got {vel.shape}")
    if t.shape != (vel.shape[0],):
        raise ValueError(f"{src}: time_fs has {t.size} entries for {vel.shape[0]} frames")
    if symbols.shape != (vel.shape[1],):
        raise ValueError(f"{src}: symbols has {symbols.size} entries for {vel.shape[1]} atoms")
    if regions is not None and regions.shape != (vel.shape[1],):
        raise ValueError(f"{src}: regions has {regions.size} entries for {vel.shape[1]} atoms")
    if not np.all(np.isfinite(vel)):
        raise ValueError(f"{src}: velocities contain NaN or infinite values")
    check_uniform_time(t, src)
    return VelocityTrajectory(src, vel, t, symbols, regions, synthetic)


def read_structure_json(path: str | os.PathLike | None) -> dict:
    """The structure sidecar as a dict; ``{}`` for None; tolerant of missing keys."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: structure JSON not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def md_temperature_from_sidecars(paths: Sequence[str | os.PathLike]) -> float:
    """T_md (K) that every band-edge table's sidecar records; ValueError when one is missing or they differ."""
    found = {str(p): read_table_metadata(p).get("md_temperature_K") for p in paths}
    missing = [p for p, t in found.items() if t is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no md_temperature_K in the .json sidecar; give --md-temperature-K")
    if len({float(t) for t in found.values()}) > 1:
        raise ValueError("band-edge tables of different MD temperatures: "
                         + ", ".join(f"{p}: {t:g} K" for p, t in found.items()))  # fmt: skip
    return float(next(iter(found.values())))
