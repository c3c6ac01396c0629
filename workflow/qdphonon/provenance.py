"""Provenance of a results tree, so two sites can compare campaigns (``qdphonon check``).

For every system of a campaign: a hash of the settings that define it (its size, shell,
structure, level, engine, MD and SCF settings — not cosmetic keys such as figure settings),
the SHA-256 of its structure file and of each replica's CP2K input, the CP2K version and
engine that ran each replica (from ``run.json``), and whether the outputs are complete.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from qdphonon.config import SystemConfig, campaign_from_config, settings_digest
from qdphonon.run.files import RECORD_FILE
from qdphonon.run.run_record import read_run_record

PHYSICS_KEYS = ("structure", "level", "engine", "md", "scf", "relax", "cp2k", "mock")
"""Top-level config keys that change AIMD results; `analysis` changes only analysis outputs."""


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, or None when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return None
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def system_config_digest(config: Mapping[str, Any], system: SystemConfig) -> str:
    """Hash of everything in the config that determines this system's trajectories."""
    physics = {k: config.get(k) for k in PHYSICS_KEYS}
    physics["md"] = dict(system.md)
    physics["system"] = {"size": list(system.size), "shell_layers": system.shell_layers,
                         "shell_metal": system.shell_metal}
    return settings_digest(physics)


def _run_record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def system_warnings(results: str | Path, system: str) -> list[str] | None:
    """The warning kinds (:data:`qdphonon.analysis.qualifiers.WARNING_KINDS`) of a system's
    ``analysis/{system}/linewidth.json``; None when it is not there (or not readable)."""
    from qdphonon.analysis.qualifiers import warning_kinds

    record = _run_record(Path(results) / "analysis" / system / "linewidth.json")
    return warning_kinds(record) if isinstance(record, dict) and record else None


def harmonic_provenance(results: Path, system: SystemConfig) -> dict[str, Any]:
    """The harmonic route of one system as a ``replicas`` entry: its tight relaxation's input, engine and
    CP2K version (``relax.json``), complete when its analysis (``analysis_harmonic/{system}``) is there."""
    from qdphonon.harmonic.plan import ANALYSIS_DIR, HARMONIC_DIR
    from qdphonon.run.files import RELAX_SUMMARY_FILE

    relax = _run_record(results / HARMONIC_DIR / system.name / "relax" / RELAX_SUMMARY_FILE)
    analysis = results / ANALYSIS_DIR / system.name
    done = all((analysis / f).is_file() for f in ("linewidth.json", "spectral_density.csv", "spectral_density_modes.csv"))
    return {"replica": "harmonic", "input_sha256": file_sha256(results / HARMONIC_DIR / system.name / "relax" / "relax.inp"),
            "engine": relax.get("engine"), "cp2k_version": relax.get("cp2k_version"), "aimd_complete": None,
            "band_edges": None, "complete": done}  # fmt: skip


def system_provenance(results: Path, config: Mapping[str, Any], system: SystemConfig) -> dict[str, Any]:
    """Provenance and completeness of one system under ``results``."""
    replicas = []
    for replica in system.all_replicas if "md" in system.routes else []:
        record = read_run_record(results / "aimd" / system.name / replica / RECORD_FILE)
        replicas.append({
            "replica": replica,
            "input_sha256": file_sha256(results / "cp2k" / system.name / replica / "md.inp"),
            "engine": record.engine if record else None,
            "cp2k_version": record.cp2k_version if record else None,
            "aimd_complete": record is not None,
            "band_edges": (results / "band_edges" / system.name / f"{replica}.csv").is_file(),
        })
    analysis = results / "analysis" / system.name
    complete = all(r["aimd_complete"] and r["band_edges"] for r in replicas) and ("md" not in system.routes or all(
        (analysis / f).is_file() for f in ("spectral_density.csv", "linewidth.json", "vdos.csv")
        + (("anharmonicity.csv",) if len(system.md_temperatures_K) > 1 else ())))
    if "harmonic" in system.routes:
        harmonic = harmonic_provenance(results, system)
        replicas.append(harmonic)
        complete = complete and harmonic["complete"]
    return {
        "system": system.name,
        "config_sha": system_config_digest(config, system),
        "structure_sha256": file_sha256(results / "structures" / f"{system.name}.xyz"),
        "replicas": replicas,
        "complete": complete,
        "warnings": system_warnings(results, system.name),
    }


def campaign_provenance(results: str | Path, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Provenance of every system of a (schema-validated) config under a results tree; each row also
    carries the campaign's ``config_digest`` (the one summary.csv records)."""
    results = Path(results)
    digest = settings_digest(config)
    return [{**system_provenance(results, config, s), "config_digest": digest}
            for s in campaign_from_config(config).values()]  # fmt: skip


def summary_digest_mismatch(results: str | Path, config: Mapping[str, Any]) -> str | None:
    """A sentence when ``results/summary.csv`` was made with another config than ``config`` (its
    ``config_digest`` column differs from :func:`settings_digest`); None when they agree or there is none."""
    import csv

    path = Path(results) / "summary.csv"
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            found = {row.get("config_digest") or "" for row in csv.DictReader(fh)}
    except OSError:
        return None
    found.discard("")
    mine = settings_digest(config)
    if found and found != {mine}:
        return f"{path} was made with config digest {', '.join(sorted(found))}; this config's is {mine}"
    return None


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per replica: system, config hash, structure/input hashes (12 chars), engine, CP2K, complete,
    and the warnings that qualify the system's numbers (``-``: not analysed, ``none``: no warning)."""
    short = lambda h: (h or "-")[:12]  # noqa: E731
    lines = ["system\tconfig\tstructure\treplica\tinput\tengine\tcp2k\tcomplete\twarnings"]
    for row in rows:
        for rep in row["replicas"]:
            lines.append("\t".join([
                row["system"], row["config_sha"], short(row["structure_sha256"]), rep["replica"],
                short(rep["input_sha256"]), rep["engine"] or "-", rep["cp2k_version"] or "-",
                "yes" if row["complete"] else "no", _warnings_text(row.get("warnings")),
            ]))
    return "\n".join(lines)


def _warnings_text(kinds: list[str] | None) -> str:
    return "-" if kinds is None else (",".join(kinds) or "none")
