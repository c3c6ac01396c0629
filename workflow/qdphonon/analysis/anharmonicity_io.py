"""The anharmonicity check of one system from its files: the band-edge CSVs (and trajectory NPZs) of
its replicas at every MD temperature -> ``anharmonicity.csv`` (+ JSON sidecar); the summary's
columns from it. The temperature of each table is the one its run recorded (the sidecar's
``md_temperature_K``), so the grouping cannot be told wrong by a command line."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from qdphonon.analysis.anharmonicity import ANHARMONICITY_ASSUMPTION, anharmonicity_table, headline
from qdphonon.analysis.inputs import check_uniform_time, discard_equilibration, read_band_edges
from qdphonon.analysis.temperature import normalising_temperature
from qdphonon.analysis.uncertainty import CONFIDENCE_LEVEL
from qdphonon.metadata import LEVEL_NOTES, read_table_metadata, write_table

MOCK_CAVEAT = ("the mock engine is harmonic by construction (its gap is linear in harmonic oscillators whose "
               "variance is 2 lambda k_B T_md): lambda_ratio = 1 is its input, not a finding; it cannot show "
               "anharmonicity, only exercise the chain")  # fmt: skip

COLUMN_NOTES = {
    "md_temperature_K": "T_md of the runs (their sidecars' md_temperature_K)",
    "normalisation_temperature_K": "mean temperature lambda is divided by (internal kinetic temperature of each "
                                   "replica when trajectories with positions are given, else T_md)",
    "gap_mean_eV": "mean gap over the replicas' production windows (moves with T_md when the gap is not linear "
                   "in the displacements)",
    "lambda_meV": "Var(dE)/(2 k_B T), replica mean; _lo/_hi its interval at confidence_level",
    "fwhm_report_meV": "Gamma at report_temperature_K extrapolated harmonically (paper Eq. 2) from this T_md's lambda",
    "lambda_ratio": "lambda(T_md)/lambda(reference_temperature_K): 1 for harmonic motion and a linear gap",
    "fwhm_deviation": "sqrt(lambda_ratio) - 1: how far Gamma(report T) from the reference run misses the one from "
                      "this T_md (positive: the reference run underestimates it)",
    "centre_<region>_meV": "lambda-weighted centre of the region's band in the replica-mean Hann spectrum",
    "shift_<region>_meV": "centre change from the reference run (_err: Student-t over replicas, blank for one)",
}


def _group_key(T: float) -> float:
    return round(float(T), 6)


def anharmonicity_system(band_edge_csvs: Sequence[str | os.PathLike],
                         trajectory_npzs: Sequence[str | os.PathLike] | None = None, *,
                         reference_K: float | None = None, report_temperature_K: float = 300.0,
                         region_edges_meV: Sequence[float] = (0.0, 4.5, 12.0, 30.0),
                         band_cutoff_meV: float | None = None, discard_fs: float = 0.0,
                         out_csv: str | os.PathLike | None = None, system: str | None = None,
                         ) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """The anharmonicity table of one system and its sidecar record; written to ``out_csv`` when given.

    Tables are grouped by their recorded ``md_temperature_K`` (ValueError naming a table without
    one). ``trajectory_npzs`` (paired with the tables by order) give each replica's internal
    temperature, as in the main analysis; without them T_md normalises, with a warning.
    """
    if not band_edge_csvs:
        raise ValueError("no band-edge files given")
    if trajectory_npzs and len(trajectory_npzs) != len(band_edge_csvs):
        raise ValueError(f"{len(band_edge_csvs)} band-edge tables but {len(trajectory_npzs)} trajectories: "
                         "pair one per replica or give none")  # fmt: skip
    from qdphonon.analysis.vdos import analyze_velocity_file

    groups: dict[float, list] = {}
    synthetic, levels = False, set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, csv in enumerate(band_edge_csvs):
            tr = discard_equilibration(read_band_edges(csv), discard_fs)
            if tr.md_temperature_K is None:
                raise ValueError(f"{csv}: no md_temperature_K in its .json sidecar; the anharmonicity check groups "
                                 "tables by the temperature their run recorded")  # fmt: skip
            dt = check_uniform_time(tr.time_fs, tr.source)
            vel = analyze_velocity_file(trajectory_npzs[i], discard_fs) if trajectory_npzs else None
            groups.setdefault(_group_key(tr.md_temperature_K), []).append((tr, dt, vel))
            synthetic = synthetic or tr.synthetic or bool(vel and vel.synthetic)
            if tr.level:
                levels.add(tr.level)
        gaps, dts, norm, sources = {}, {}, {}, {}
        for T, runs in sorted(groups.items()):
            step = {round(dt, 9) for _, dt, _ in runs}
            if len(step) > 1:
                raise ValueError(f"T_md = {T:g} K: replicas sampled every {sorted(step)} fs; one time step expected")
            vels = [v for _, _, v in runs if v is not None]
            temp = normalising_temperature(len(runs), T, [float(np.mean(v.kinetic_temperature_K)) for v in vels],
                                           bool(vels) and all(v.dos.rigid_motion_removed for v in vels),
                                           f"{system or 'system'} at {T:g} K")  # fmt: skip
            gaps[T], dts[T], norm[T] = [tr.gap_eV for tr, _, _ in runs], runs[0][1], list(temp.per_replica_K)
            sources[T] = {"band_edges": [tr.source for tr, _, _ in runs], "temperature_source": temp.source.value}
        table = anharmonicity_table(gaps, dts, region_edges_meV, report_temperature_K, normalising_K_by_T=norm,
                                    reference_K=reference_K, band_cutoff_meV=band_cutoff_meV)  # fmt: skip
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    ref = float(table["md_temperature_K"].min() if reference_K is None else reference_K)
    level = "mock" if synthetic else (",".join(sorted(levels)) or None)
    meta = {
        "system": system, "synthetic": bool(synthetic), "level": level, "level_note": LEVEL_NOTES.get(level or ""),
        "reference_temperature_K": ref, "report_temperature_K": float(report_temperature_K),
        "confidence_level": CONFIDENCE_LEVEL, "discard_fs": float(discard_fs),
        "region_edges_meV": [float(e) for e in region_edges_meV], "band_cutoff_meV": band_cutoff_meV,
        "headline": headline(table, float(report_temperature_K), ref), "assumption": ANHARMONICITY_ASSUMPTION,
        "column_notes": COLUMN_NOTES, "warnings": messages,
        "inputs": {f"{T:g}": s for T, s in sources.items()} | {"trajectories": [str(p) for p in trajectory_npzs or []]},
    }  # fmt: skip
    if synthetic:
        meta["mock_caveat"] = MOCK_CAVEAT
    if out_csv is not None:
        write_table(table, out_csv, meta)
    return table, meta


def anharmonicity_summary(path: str | os.PathLike) -> dict:
    """Summary columns from an ``anharmonicity.csv``: its sidecar's headline (ratio and Gamma deviation of
    the run nearest the report temperature against the reference run, with intervals)."""
    df, meta = pd.read_csv(path), read_table_metadata(path)
    head = headline(df, float(meta.get("report_temperature_K", 300.0)),
                    float(meta.get("reference_temperature_K", df["md_temperature_K"].min())))  # fmt: skip
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in head.items()}


def read_anharmonicity(path: str | os.PathLike) -> tuple[str, pd.DataFrame, dict]:
    """(system, table, sidecar) of an ``anharmonicity.csv`` (the system from the sidecar, else the directory)."""
    path = Path(path)
    meta = read_table_metadata(path)
    return meta.get("system") or path.parent.name, pd.read_csv(path), meta
