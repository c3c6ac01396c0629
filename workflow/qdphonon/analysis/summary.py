"""The campaign summary: one row per system, one numeric column per quantity (plain CSV + JSON sidecar)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence
from qdphonon.analysis.inputs import read_structure_json
from qdphonon.analysis.qualifiers import check_linewidth_record, gamma_record, warning_kinds
from qdphonon.metadata import qdphonon_version, write_table


def _size_triplet(structure: dict) -> list:
    size = structure.get("size_octahedra") or structure.get("size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        return [int(x) for x in size]
    return [None, None, None]


def _edges_nm(edge) -> dict:
    """``edge_x_nm``, ``edge_y_nm``, ``edge_z_nm`` and their mean ``edge_nm`` from a structure's edge list."""
    if isinstance(edge, (int, float)):
        edge = [edge] * 3
    if not isinstance(edge, (list, tuple)) or len(edge) != 3 or any(e is None for e in edge):
        return {"edge_x_nm": None, "edge_y_nm": None, "edge_z_nm": None, "edge_nm": None}
    x, y, z = (float(e) for e in edge)
    return {"edge_x_nm": x, "edge_y_nm": y, "edge_z_nm": z, "edge_nm": (x + y + z) / 3.0}


def _interval(key: str, linewidth: dict) -> dict:
    """``<key>_lo`` and ``<key>_hi`` from linewidth.json's ``<key>_interval`` (blank when absent)."""
    iv = linewidth.get(f"{key}_interval") or [None, None]
    stem, unit = key.rsplit("_", 1)
    return {f"{stem}_lo_{unit}": iv[0], f"{stem}_hi_{unit}": iv[1]}


def summary_row(linewidth: dict, structure: dict | None = None, config_digest: str | None = None) -> dict:
    """One summary.csv row from a linewidth.json dict and the system's structure sidecar."""
    st = dict(structure or {})
    for key in ("formula", "n_atoms", "size_octahedra", "edge_nm", "shell_layers", "shell_metal"):
        st.setdefault(key, linewidth.get(key))
    nx, ny, nz = _size_triplet(st)
    counts = st.get("counts_by_region") or linewidth.get("counts_by_region") or {}
    line = linewidth.get("lineshape") or {}
    conv = linewidth.get("convergence") or {}
    row = {
        "system": linewidth.get("system") or st.get("system"),
        "route": linewidth.get("route") or "md",
        "nx": nx,
        "ny": ny,
        "nz": nz,
        **_edges_nm(st.get("edge_nm")),
        "formula": st.get("formula"),
        "shell_layers": st.get("shell_layers") if st.get("shell_layers") is not None else 0,
        "shell_metal": st.get("shell_metal") if st.get("shell_layers") else None,
        "n_atoms": st.get("n_atoms"),
        "n_core": counts.get("core") if isinstance(counts, dict) else None,
        "n_surface": counts.get("surface") if isinstance(counts, dict) else None,
        "n_shell": counts.get("shell") if isinstance(counts, dict) else None,
        "gap_mean_eV": linewidth.get("gap_mean_eV"),
        "gap_std_meV": linewidth.get("gap_std_meV"),
        "lambda_meV": linewidth.get("lambda_meV"),
        "lambda_meV_err": linewidth.get("lambda_meV_err"),
        **_interval("lambda_meV", linewidth), **_interval("fwhm_meV", linewidth),
        "temperature_source": linewidth.get("temperature_source"),
        "normalisation_temperature_K": linewidth.get("normalisation_temperature_K"),
        "report_temperature_K": linewidth.get("report_temperature_K"),
        "fwhm_meV": linewidth.get("fwhm_meV"),
        "fwhm_meV_err": linewidth.get("fwhm_meV_err"),
        "fwhm_quantum_meV": linewidth.get("fwhm_quantum_meV"),
        "fwhm_quantum_meV_err": linewidth.get("fwhm_quantum_meV_err"),
        "fwhm_lineshape_meV": linewidth.get("fwhm_lineshape_meV"),
        "confidence_level": linewidth.get("confidence_level"),
        "band_cutoff_meV": linewidth.get("band_cutoff_meV"),
        "lambda_above_band_meV": linewidth.get("lambda_above_band_meV"),
        "kinetic_temperature_K": linewidth.get("kinetic_temperature_K"),
        "rigid_kinetic_fraction": linewidth.get("rigid_kinetic_fraction"),
        "gaussian_valid": line.get("gaussian_valid"),
        "zpl_weight": line.get("zpl_weight"),
        "stokes_shift_meV": line.get("stokes_shift_meV"),
        "dephasing_time_fs": line.get("dephasing_time_fs"),
        "production_length_needed_fs": conv.get("production_length_needed_fs"),
        "replicas_needed": conv.get("replicas_needed"),
        "n_replicas": linewidth.get("n_replicas"),
        "error_method": linewidth.get("error_method"),
        "duration_fs": linewidth.get("duration_fs"),
    }
    for reg in linewidth.get("regions", []):
        name = reg.get("name")
        row[f"S_{name}"] = reg.get("S")
        row[f"S_{name}_err"] = reg.get("S_err")
        row[f"hw_{name}_meV"] = reg.get("hw_meV")
        row[f"lambda_{name}_meV"] = reg.get("lambda_meV")
        row[f"resolved_{name}"] = reg.get("resolved")
    row["synthetic"] = bool(linewidth.get("synthetic", False))
    row["level"] = "mock" if row["synthetic"] else linewidth.get("level")
    row.update(gamma_record(linewidth))
    row["warnings"] = ";".join(warning_kinds(linewidth))
    row["qdphonon_version"] = qdphonon_version()
    row["config_digest"] = config_digest
    return row


def claims_columns(analysis_dir: Path) -> dict:
    """Headline numbers of the study's further claims found beside linewidth.json (attribution.csv;
    localisation.csv: its columns always present, blank when the run printed no localisation)."""
    from qdphonon.analysis.attribution_io import attribution_summary
    from qdphonon.analysis.localisation_run import localisation_summary_columns

    path = analysis_dir / "attribution.csv"
    out = attribution_summary(path) if path.is_file() else {}
    return out | localisation_summary_columns(analysis_dir / "localisation.csv")


def write_summary(
    linewidth_jsons: Sequence[str | os.PathLike],
    structure_jsons: Sequence[str | os.PathLike] | None,
    out_csv: str | os.PathLike,
    config_digest: str | None = None,
) -> Path:
    """Campaign ``summary.csv``: one row per linewidth.json, joined to structure sidecars by system name.

    A linewidth file's system is its ``system`` key (else its directory name); a structure's
    is its ``system`` key (else its file stem). Missing structures leave blank columns.
    """
    import pandas as pd

    structures: dict[str, dict] = {}
    for p in structure_jsons or []:
        st = read_structure_json(p)
        structures[st.get("system") or Path(p).stem] = st
    rows, messages = [], []
    for p in linewidth_jsons:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: linewidth JSON not found")
        try:
            lw = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not valid JSON ({exc})") from None
        check_linewidth_record(lw, str(p))
        lw.setdefault("system", p.parent.name)
        rows.append(summary_row(lw, structures.get(lw["system"]), config_digest))
        messages.append(list(lw.get("warnings") or []))
        rows[-1].update(claims_columns(p.parent))
    if not rows:
        raise ValueError("no linewidth files given")
    out = Path(out_csv)
    synthetic = any(r["synthetic"] for r in rows)
    levels = sorted({str(r["level"]) for r in rows if r["level"]})
    meta = {"synthetic": synthetic, "level": ",".join(levels) or None, "config_digest": config_digest,
            "systems": [r["system"] for r in rows], "inputs": [str(p) for p in linewidth_jsons],
            "warnings": {r["system"]: m for r, m in zip(rows, messages)},
            "units": {c: c.rsplit("_", 1)[-1] for c in rows[0] if c.endswith(("_nm", "_meV", "_eV", "_K", "_fs"))}}
    write_table(pd.DataFrame(rows), out, meta, float_format="%.8g")
    return out
