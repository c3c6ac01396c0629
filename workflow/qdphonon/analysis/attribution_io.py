"""Region attribution of one system from its files: band-edge CSVs and trajectory NPZs (positions,
regions) of its replicas -> ``attribution.csv`` and ``attribution_spectrum.csv`` (+ JSON sidecars)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from qdphonon.analysis.attribution import CV_FOLDS, Attribution, aligned_displacements, attribute_lambda
from qdphonon.analysis.inputs import check_uniform_time, discard_equilibration, read_band_edges
from qdphonon.analysis.temperature import normalising_temperature
from qdphonon.analysis.vdos import analyze_velocity_file, atomic_masses_amu
from qdphonon.metadata import LEVEL_NOTES, write_table

ATTRIBUTION_ASSUMPTION = (
    "linear coupling dE = sum_i g_i . u_i on the frames where both positions and band edges are printed; "
    "u from the replica's mean structure after removing rigid translation/rotation (mass-weighted Kabsch); "
    "g by ridge regression, penalty by blocked cross-validation; the part of g no fit can see (mass times rigid "
    "directions) is fixed by requiring zero net force and torque, which decides how a share is split between regions"
)

ATTRIBUTION_COLUMNS = {
    "region": "atom region from the structure (core/surface/shell) or 'unexplained' (what the linear fit leaves)",
    "lambda_meV": "Cov(g_R . u_R, dE) / (2 k_B T), T the normalising temperature (normalisation_temperature_K, as in "
                  "linewidth.json), replica mean; rows sum to lambda_total_meV",
    "share": "lambda_meV / lambda_total_meV (rows sum to 1; 'unexplained' included)",
    "coupling_norm_meV_per_A": "|g_R|: Euclidean norm of the fitted couplings of the region's atoms",
    "n_atoms": "atoms in the region",
}


def read_positions_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """(positions (frames, atoms, 3) in A, time_fs, symbols, regions, synthetic) of a trajectory ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trajectory file not found")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in ("positions", "time_fs", "symbols", "regions") if k not in data.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (attribution needs positions and region labels)")
        pos = np.asarray(data["positions"], dtype=float)
        t = np.asarray(data["time_fs"], dtype=float)
        symbols = np.asarray(data["symbols"]).astype(str)
        regions = np.asarray(data["regions"]).astype(str)
        synthetic = bool(np.any(data["synthetic"])) if "synthetic" in data.files else False
    if pos.ndim != 3 or pos.shape[2] != 3 or t.shape != (pos.shape[0],) or regions.shape != (pos.shape[1],):
        raise ValueError(f"{path}: positions {pos.shape}, time_fs {t.shape} and regions {regions.shape} disagree")
    if not np.all(np.isfinite(pos)):
        raise ValueError(f"{path}: positions contain NaN or infinite values")
    return pos, t, symbols, regions, synthetic


def common_frames(t_edges: np.ndarray, t_pos: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the band edges, into the positions) of the times both hold (to 1e-3 fs)."""
    a = np.round(np.asarray(t_edges) * 1000).astype(np.int64)
    b = np.round(np.asarray(t_pos) * 1000).astype(np.int64)
    _, ia, ib = np.intersect1d(a, b, assume_unique=False, return_indices=True)
    if ia.size < 2 * CV_FOLDS:
        raise ValueError(f"{source}: only {ia.size} frames have both positions and band edges (need {2 * CV_FOLDS})")
    return ia, ib


def attribute_system(band_edge_csvs: Sequence[str | os.PathLike], trajectory_npzs: Sequence[str | os.PathLike],
                     md_temperature_K: float, discard_fs: float = 0.0, outdir: str | os.PathLike | None = None,
                     system: str | None = None) -> tuple[Attribution, dict]:  # fmt: skip
    """Attribution of one system's replicas (paired by order); writes the tables into ``outdir`` when given.

    Replicas are cut to the shortest common frame count so the region spectra share one grid.
    Returns the attribution and the sidecar record.
    """
    if len(band_edge_csvs) != len(trajectory_npzs) or not band_edge_csvs:
        raise ValueError(f"{len(band_edge_csvs)} band-edge tables but {len(trajectory_npzs)} trajectories: pair one per replica")
    positions, gaps, dts, synthetic, regions, symbols, levels = [], [], [], False, None, None, set()
    for csv, npz in zip(band_edge_csvs, trajectory_npzs):
        edges = discard_equilibration(read_band_edges(csv), discard_fs)
        pos, t, sym, reg, syn = read_positions_npz(npz)
        if regions is None:
            regions, symbols = reg, sym
        elif list(sym) != list(symbols) or list(reg) != list(regions):
            raise ValueError(f"{npz}: atoms or region labels differ from those of {trajectory_npzs[0]}")
        ia, ib = common_frames(edges.time_fs, t, f"{csv} and {npz}")
        dts.append(check_uniform_time(edges.time_fs[ia], f"{csv} (frames with positions in {npz})"))
        positions.append(pos[ib])
        gaps.append(edges.gap_eV[ia] * 1000.0)
        synthetic = synthetic or edges.synthetic or syn
        if edges.level:
            levels.add(edges.level)
    if max(dts) - min(dts) > 1e-6 * max(dts):
        raise ValueError(f"replicas are sampled every {sorted(set(dts))} fs; the attribution needs one time step")
    n = min(len(g) for g in gaps)
    masses = atomic_masses_amu(symbols)
    disp, reference = aligned_displacements([p[:n] for p in positions], masses)
    vel = [analyze_velocity_file(p, discard_fs) for p in trajectory_npzs]
    temp = normalising_temperature(len(gaps), md_temperature_K, [float(np.mean(v.kinetic_temperature_K)) for v in vel],
                                   all(v.dos.rigid_motion_removed for v in vel), system or "system")  # fmt: skip
    att = attribute_lambda(disp, [g[:n] for g in gaps], regions, dts[0], temp.per_replica_K, reference, masses)
    level = "mock" if synthetic else (",".join(sorted(levels)) or None)
    fit = att.fit
    meta = {
        "system": system, "synthetic": bool(synthetic), "level": level, "level_note": LEVEL_NOTES.get(level or ""),
        "md_temperature_K": float(md_temperature_K), **temp.record(), "dt_fs": float(dts[0]), "n_replicas": len(gaps),
        "n_frames_per_replica": att.n_frames_per_replica, "n_coordinates": fit.n_coordinates,
        "lambda_total_meV": att.lambda_total_meV, "lambda_explained_meV": att.lambda_explained_meV,
        "explained_variance": fit.r2, "explained_variance_cv": fit.r2_cv,
        "ridge_alpha_A2": fit.alpha, "cv_folds": CV_FOLDS,
        "assumption": ATTRIBUTION_ASSUMPTION, "column_notes": ATTRIBUTION_COLUMNS,
        "inputs": {"band_edges": [str(p) for p in band_edge_csvs], "trajectories": [str(p) for p in trajectory_npzs]},
    }  # fmt: skip
    if outdir is not None:
        write_attribution(outdir, att, regions, meta)
    return att, meta


def write_attribution(outdir: str | os.PathLike, att: Attribution, regions: np.ndarray, meta: dict) -> list[Path]:
    """``attribution.csv`` (one row per region, then 'unexplained') and ``attribution_spectrum.csv``
    (``energy_meV``, ``S`` and ``S_<region>`` per bin), each with its sidecar."""
    outdir = Path(outdir)
    names = list(att.lambda_meV)
    total = att.lambda_total_meV
    rows = pd.DataFrame({
        "region": names,
        "lambda_meV": [att.lambda_meV[r] for r in names],
        "share": [att.lambda_meV[r] / total if total > 0 else float("nan") for r in names],
        "coupling_norm_meV_per_A": [att.coupling_norm_meV_per_A.get(r, float("nan")) for r in names],
        "n_atoms": [int(np.sum(np.asarray(regions) == r)) for r in names],
    })  # fmt: skip
    spec = {"energy_meV": att.energy_meV, "S": sum(att.spectra.values())}
    spec.update({f"S_{r}": att.spectra[r] for r in names})
    paths = write_table(rows, outdir / "attribution.csv", meta)
    paths += write_table(pd.DataFrame(spec), outdir / "attribution_spectrum.csv",
                         {k: meta[k] for k in ("system", "synthetic", "level", "md_temperature_K", "dt_fs")}
                         | {"note_S": "paper Eq. 1 rectangular periodogram (replica mean) on the attribution's frames; "
                                      "S_<region> its cross-spectral share, summing to S bin by bin"})  # fmt: skip
    return paths


def attribution_summary(path: str | os.PathLike) -> dict:
    """Summary columns from an ``attribution.csv``: the share of lambda of each region
    (``lambda_share_<region>``) and the fit's cross-validated explained variance."""
    from qdphonon.metadata import read_table_metadata

    df = pd.read_csv(path)
    out = {f"lambda_share_{r}": float(s) for r, s in zip(df["region"], df["share"])}
    meta = read_table_metadata(path)
    out["attribution_explained_variance_cv"] = meta.get("explained_variance_cv")
    return out
