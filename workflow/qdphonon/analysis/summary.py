"""The campaign summary: one row per system, one numeric column per quantity (plain CSV + JSON sidecar)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence
from qdphonon.analysis.inputs import read_structure_json
from qdphonon.analysis.qualifiers import check_linewidth_record, gamma_record, warning_kinds
from qdphonon.analysis.records import Columns, LinewidthRecord, column_names, read_linewidth
from qdphonon.metadata import qdphonon_version, write_table
from qdphonon.typed_records import ABSENT


def _size_triplet(size) -> dict:
    if isinstance(size, (list, tuple)) and len(size) == 3:
        return dict(zip(("nx", "ny", "nz"), (int(x) for x in size)))
    return {"nx": None, "ny": None, "nz": None}


def _edges_nm(edge) -> dict:
    """``edge_x_nm``, ``edge_y_nm``, ``edge_z_nm`` and their mean ``edge_nm`` from a structure's edge list."""
    if isinstance(edge, (int, float)):
        edge = [edge] * 3
    if not isinstance(edge, (list, tuple)) or len(edge) != 3 or any(e is None for e in edge):
        return {"edge_x_nm": None, "edge_y_nm": None, "edge_z_nm": None, "edge_nm": None}
    x, y, z = (float(e) for e in edge)
    return {"edge_x_nm": x, "edge_y_nm": y, "edge_z_nm": z, "edge_nm": (x + y + z) / 3.0}


def _columns(name: str, spec: Columns, value) -> dict:
    """The summary columns of one LinewidthRecord field (blank when the field is absent)."""
    value = None if value is ABSENT else value
    names = column_names(name, spec)
    if spec.kind == "value":
        return {name: value}
    if spec.kind == "interval":
        return dict(zip(names, value if isinstance(value, list) and len(value) == 2 else [None, None]))
    if spec.kind == "size":
        return _size_triplet(value)
    if spec.kind == "edges":
        return _edges_nm(value)
    if spec.kind == "keys":
        return {column: value.get(key) if isinstance(value, dict) else None for key, column in spec.keys}
    row = {}
    for reg in value or []:
        row.update({column.format(name=reg["name"]): reg.get(key) for key, column in spec.keys})
    return row


EXTRA_COLUMNS = ("timestep_fs", "gamma_scaling", "warnings", "qdphonon_version", "config_digest")
"""Columns not read from a LinewidthRecord field: how Gamma was obtained (analysis.qualifiers.gamma_record),
the warning kinds, provenance; the claims columns (attribution.csv) follow them."""


def summary_row(linewidth: LinewidthRecord, structure: dict | None = None, config_digest: str | None = None) -> dict:
    """One summary.csv row: the columns each :class:`LinewidthRecord` field declares, in the model's order
    (the structure sidecar's value wins for structure fields), then :data:`EXTRA_COLUMNS`."""
    st = structure or {}
    row: dict = {}
    for name, meta in LinewidthRecord.field_info().items():
        spec = meta["summary"]
        if spec is not None:
            value = st[name] if spec.structure and st.get(name) is not None else getattr(linewidth, name)
            row.update(_columns(name, spec, value))
    if row["shell_layers"] is None:
        row["shell_layers"] = 0
    if not row["shell_layers"]:
        row["shell_metal"] = None
    row["synthetic"] = bool(row["synthetic"])
    if row["synthetic"]:
        row["level"] = "mock"
    lw = linewidth.to_json()
    row.update(gamma_record(lw))
    row["warnings"] = ";".join(warning_kinds(lw))
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
    return out | anharmonicity_columns(analysis_dir) | localisation_summary_columns(analysis_dir / "localisation.csv")


def anharmonicity_columns(analysis_dir: Path) -> dict:
    """Deviation from harmonic scaling (anharmonicity.csv's headline) when the system ran at several T_md."""
    from qdphonon.analysis.anharmonicity_io import anharmonicity_summary

    path = analysis_dir / "anharmonicity.csv"
    return anharmonicity_summary(path) if path.is_file() else {}


def write_summary(
    linewidth_jsons: Sequence[str | os.PathLike],
    structure_jsons: Sequence[str | os.PathLike] | None,
    out_csv: str | os.PathLike,
    config_digest: str | None = None,
) -> Path:
    """Campaign ``summary.csv``: one row per linewidth.json, joined to structure sidecars by system name.

    Each linewidth.json is read as a :class:`LinewidthRecord` (an unknown, missing or mistyped key is
    refused, naming the file and the key). A structure's system is its ``system`` key (else its file
    stem). Missing structures leave blank columns.
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
        record = read_linewidth(check_linewidth_record(lw, str(p)), str(p))
        rows.append(summary_row(record, structures.get(record.system), config_digest))
        messages.append(list(record.warnings))
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
