"""Band-edge localisation of one system from its AIMD run directories: the ``&PDOS``/``&LDOS`` list
files CP2K (or the mock engine) wrote there -> ``localisation.csv`` (+ sidecar), and the summary's
columns from that table (docs/physics.md §6.2).

Each list file is mapped to its region by the atoms of its ``&LDOS`` in the input the engine ran
(the run directory's first segment input), never by position: the rendered input may order the
``&LDOS`` sections differently from the generator (:func:`qdphonon.cp2k.localisation.localisation_lists`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from qdphonon.analysis.localisation import frontier_weights
from qdphonon.cp2k.inputs import homo_index
from qdphonon.cp2k.localisation import LOCALISATION_FILENAME, list_regions
from qdphonon.cp2k.readback import input_ldos_lists
from qdphonon.cp2k.xmlspec import bundled_xmlspec, parse_input_text
from qdphonon.metadata import LEVEL_NOTES, write_table
from qdphonon.parsers.pdos import list_pdos_files, read_list_pdos
from qdphonon.structures.model import REGIONS

EDGES = ("vbm", "cbm")

LOCALISATION_COLUMNS = {
    "replica": "replica (run directory name)",
    "step": "MD step of the print",
    "time_fs": "step x time step (fs)",
    "<edge>_<region>": "weight of the VBM (HOMO) / CBM (LUMO) on the region's atoms: CP2K's projection summed over "
                       "angular momenta; 0 for a region without atoms",
    "<edge>_weight_sum": "sum over the printed lists (1 within the print's 8 decimals)",
}


def _run_lists(record_path: Path) -> tuple[Path, dict, Path, list[list[int]]]:
    """(run directory, run.json record, the first segment's input, its ``&LDOS`` atom lists). Every
    segment must print the same lists (with ``APPEND`` they write into the same files)."""
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path}: run record not found")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    run_dir = record_path.parent
    names = [seg.get("input") for seg in record.get("segments") or []]
    if not names or not all(names) or not all((run_dir / n).is_file() for n in names):
        raise FileNotFoundError(f"{record_path}: a segment input listed in its segments is missing from {run_dir}; "
                                "cannot tell which atoms each &LDOS list holds")  # fmt: skip
    lists = None
    for name in dict.fromkeys(names):
        found = input_ldos_lists(parse_input_text((run_dir / name).read_text(encoding="utf-8"), bundled_xmlspec()))
        if lists is not None and found != lists:
            raise ValueError(f"{run_dir / name}: its &LDOS lists differ from those of {names[0]}")
        lists = found
    return run_dir, record, run_dir / names[0], lists


def replica_weights(record_path: str | os.PathLike, symbols: Sequence[str], regions: Sequence[str],
                    md_equilibration_fs: float = 0.0) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Frontier weights of one replica: one row per printed step after the equilibration (steps whose
    SCF did not converge, run.json ``scf_unconverged_steps``, left out); a column per region of
    :data:`REGIONS`. Returns the table and what the sidecar records about the replica.

    FileNotFoundError when the run printed no list files (``md.localisation_every_steps`` was null);
    ValueError when the lists do not match the structure's regions (names the file)."""
    record_path = Path(record_path)
    run_dir, record, inp, ldos = _run_lists(record_path)
    names = list_regions(ldos, regions, str(inp))
    project = record.get("project") or "md"
    files = list_pdos_files(run_dir, project, LOCALISATION_FILENAME)
    if not files:
        raise FileNotFoundError(f"{run_dir}: no {project}-{LOCALISATION_FILENAME}-list*-1.pdos files (the run printed no "
                                "localisation; set md.localisation_every_steps)")  # fmt: skip
    if len(files) != len(names):
        raise ValueError(f"{run_dir}: {len(files)} list files but {len(names)} &LDOS lists in {inp.name}")
    lists = [read_list_pdos(p) for p in files]
    for lst, name in zip(lists, names):
        if lst.n_atoms != list(regions).count(name):
            raise ValueError(f"{lst.path}: list {lst.list_no} holds {lst.n_atoms} atoms, but region {name!r} has "
                             f"{list(regions).count(name)}")  # fmt: skip
    level = record.get("input_level") or record.get("level")
    if level not in ("xtb", "pbe"):
        raise ValueError(f"{record_path}: input_level {level!r} is not xtb or pbe; cannot tell the HOMO's index")
    homo = homo_index(symbols, level)
    timestep = float(record.get("timestep_fs") or 0.0) or None
    df = frontier_weights(lists, names, homo, timestep)
    for edge in EDGES:
        for region in REGIONS:
            df[f"{edge}_{region}"] = df.get(f"{edge}_{region}", 0.0)
    bad = set(int(s) for s in record.get("scf_unconverged_steps") or [])
    time = df["step"] * (timestep or 0.0)
    keep = ~df["step"].isin(bad) & (time >= float(md_equilibration_fs) - 1e-9)
    df = df.loc[keep].reset_index(drop=True)
    if df.empty:
        raise ValueError(f"{run_dir}: no printed step after the equilibration ({md_equilibration_fs:g} fs) "
                         "with a converged SCF")  # fmt: skip
    df.insert(0, "replica", run_dir.name)
    cols = ["replica", "step"] + (["time_fs"] if "time_fs" in df else [])
    cols += [f"{e}_{r}" for e in EDGES for r in REGIONS] + [f"{e}_weight_sum" for e in EDGES]
    synthetic = bool(record.get("synthetic")) or any(x.synthetic for x in lists)
    info = {"replica": run_dir.name, "homo_index": homo, "level": "mock" if synthetic else level,
            "synthetic": synthetic, "lists": dict(zip([f.name for f in files], names)),
            "steps_dropped_scf": sorted(bad), "input": str(inp)}  # fmt: skip
    return df[cols], info


def localise_system(run_records: Sequence[str | os.PathLike], structure_xyz: str | os.PathLike,
                    out_csv: str | os.PathLike, md_equilibration_fs: float = 0.0,
                    system: str | None = None) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """``localisation.csv`` of one system: every replica's printed steps (after the equilibration),
    one row each, and the sidecar with the mean and spread per edge and region."""
    from qdphonon.structures.io import read_structure

    dot = read_structure(structure_xyz)
    parts, infos = [], []
    for rec in run_records:
        df, info = replica_weights(rec, dot.symbols, dot.regions, md_equilibration_fs)
        parts.append(df)
        infos.append(info)
    table = pd.concat(parts, ignore_index=True)
    synthetic = any(i["synthetic"] for i in infos)
    level = "mock" if synthetic else ",".join(sorted({i["level"] for i in infos}))
    meta = {"system": system or dot.name, "synthetic": synthetic, "level": level, "level_note": LEVEL_NOTES.get(level),
            "md_equilibration_fs": float(md_equilibration_fs), "n_replicas": len(infos), "n_frames": len(table),
            "counts_by_region": {r: list(dot.regions).count(r) for r in REGIONS},
            "weight_sum_max_deviation": float(max(np.abs(table[f"{e}_weight_sum"] - 1).max() for e in EDGES)),
            "summary": weight_statistics(table), "replicas": infos, "column_notes": LOCALISATION_COLUMNS}  # fmt: skip
    write_table(table, Path(out_csv), meta)
    return table, meta


def weight_statistics(table: pd.DataFrame) -> dict:
    """Per ``<edge>_<region>``: ``mean`` over all frames, ``sd`` over frames (the thermal spread of the
    weight, ddof 1), and ``replica_means`` (whose spread shows the sampling error of the mean)."""
    out = {}
    for edge in EDGES:
        for region in REGIONS:
            col = table[f"{edge}_{region}"]
            out[f"{edge}_{region}"] = {"mean": float(col.mean()), "sd": float(col.std(ddof=1)) if len(col) > 1 else None,
                                       "replica_means": [float(v) for v in col.groupby(table["replica"]).mean()]}  # fmt: skip
    return out


SUMMARY_COLUMNS = tuple(f"{edge}_core_weight{suffix}" for edge in EDGES for suffix in ("", "_sd"))
"""summary.csv's localisation columns: mean and spread (sd over frames) of the VBM and CBM weight on the core."""


def localisation_summary_columns(path: str | os.PathLike) -> dict:
    """The summary's columns from a ``localisation.csv`` (all of :data:`SUMMARY_COLUMNS` blank when absent)."""
    path = Path(path)
    if not path.is_file():
        return dict.fromkeys(SUMMARY_COLUMNS)
    stats = weight_statistics(pd.read_csv(path))
    return {f"{edge}_core_weight{suffix}": stats[f"{edge}_core"][key]
            for edge in EDGES for suffix, key in (("", "mean"), ("_sd", "sd"))}  # fmt: skip
