"""Metadata that travels with every output: ``run.json`` of an MD run and the ``.json`` sidecar of every table.

Tables are plain CSV (``pandas.read_csv(path)`` opens them with no options, numbers without
binary noise); what describes them (level of theory, synthetic or real, T_md, time step,
CP2K version, qdphonon version, config digest, warnings) is in ``{table}.json`` beside them.
No metadata is ever written as comment lines.

``run.json`` keys: ``engine``, ``level``, ``synthetic``, ``cp2k_version`` (``mock`` for the
mock), ``command`` (first segment's launch line), ``qdphonon_command``, ``qdphonon_version``,
``input``, ``input_sha256``, ``run_dir``, ``project``, ``files``, ``steps_requested``,
``total_steps``, ``timestep_fs``, ``md_temperature_K``, ``seed``, ``smearing_K``, ``segments``
(``index``, ``input``, ``output``, ``start_step``, ``end_step``, ``wall_s``, ``exit_status``,
``signal``, ``ended`` (:class:`qdphonon.run.layout.SegmentEnd`), ``note``, ``command``,
``started_at``, ``restart_file``), ``completed_at``, plus what each engine adds; every key is
described (and checked) in :mod:`qdphonon.run.run_record`.
"""

from __future__ import annotations

import datetime
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from qdphonon.run.layout import read_json, write_json_atomic
from qdphonon.run.run_record import SEGMENT_KEYS, build_run_record

if TYPE_CHECKING:
    import pandas as pd

    from qdphonon.cp2k.readback import MDInput

SYNTHETIC_LABEL = "synthetic (mock engine)"
"""Said by every file, table and figure that comes from the mock engine."""

LEVEL_NOTES = {
    "xtb": "GFN1-xTB exercises the machinery; it badly underestimates the gap of these clusters (not for physics)",
    "pbe": "PBE (no spin-orbit coupling)",
    "mock": SYNTHETIC_LABEL + ": a harmonic model calibrated to the reference study's headline linewidths; not physics",
}



def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def qdphonon_version() -> str:
    from qdphonon import __version__

    return __version__


def run_record(*, engine: str, md: MDInput, input_path: Path, run_dir: Path, segments: list[dict[str, Any]],
               cp2k_version: str, synthetic: bool, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``run.json`` of a complete run (keys described in :mod:`qdphonon.run.run_record`, which checks them)."""
    segs = [{k: s.get(k) for k in SEGMENT_KEYS} for s in segments]
    record = {
        "engine": engine,
        "level": "mock" if synthetic else md.level,
        "input_level": md.level,
        "cp2k_version": cp2k_version,
        "command": segs[0]["command"] if segs else None,
        "qdphonon_command": shlex.join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "qdphonon_version": qdphonon_version(),
        "input": str(input_path),
        "input_sha256": md.sha256,
        "run_dir": str(run_dir),
        "project": md.project,
        "files": dict(md.files),
        "steps_requested": md.steps,
        "total_steps": segs[-1]["end_step"] if segs else None,
        "timestep_fs": md.timestep_fs,
        "md_temperature_K": md.temperature_K,
        "seed": md.seed,
        "smearing_K": md.smearing_K,
        "segments": segs,
        "synthetic": bool(synthetic),
        "completed_at": now_iso(),
    }
    if synthetic:
        record["note"] = SYNTHETIC_LABEL + ": no CP2K was run; files follow CP2K 2023.1 formats"
    record.update(extra or {})
    return build_run_record(record)


def sidecar_path(table: str | os.PathLike) -> Path:
    """The JSON sidecar of a table: ``x.csv`` -> ``x.json``."""
    return Path(table).with_suffix(".json")


def clean_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_table(df: pd.DataFrame, path: str | os.PathLike, metadata: Mapping[str, Any],
                float_format: str = "%.12g") -> list[Path]:
    """Write ``df`` as plain CSV (no index, no comment lines, ``float_format``) and its JSON sidecar.

    ``metadata`` must say ``synthetic`` (bool) and ``level``; a synthetic table also gets
    ``note`` = :data:`SYNTHETIC_LABEL`. Returns both paths. Booleans are written as
    ``True``/``False``; missing values as empty fields.
    """
    if "synthetic" not in metadata or "level" not in metadata:
        raise ValueError(f"{path}: table metadata must say 'synthetic' and 'level'")
    meta = dict(metadata)
    meta.setdefault("qdphonon_version", qdphonon_version())
    meta["columns"] = list(map(str, df.columns))
    if meta["synthetic"]:
        meta["note"] = SYNTHETIC_LABEL
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")
    os.replace(tmp, path)
    write_json_atomic(sidecar_path(path), clean_json(meta))
    return [path, sidecar_path(path)]


def read_table_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of a table (``{}`` when there is none: a table from elsewhere)."""
    return read_json(sidecar_path(path)) or {}
