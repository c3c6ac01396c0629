"""What qualifies a system's headline numbers: short warning kinds and the record of how Γ was obtained.

Read from the structured fields of ``linewidth.json`` (never from its warning text), so that the
summary, ``qdphonon status``/``check``, the figures (hollow markers) and the report all show the
same qualifiers. The full warning messages stay in ``linewidth.json`` (and the summary's sidecar).
"""

from __future__ import annotations

from typing import Any, Mapping

from qdphonon.analysis.diagnostics import KINETIC_TEMPERATURE_TOLERANCE
from qdphonon.analysis.system import ABOVE_BAND_WARN_FRACTION

WARNING_KINDS = {
    "stationarity": "the gap variance drifts over a replica (stationarity not demonstrated)",
    "unresolved": "region(s) not resolved by the trajectory length (no region error bar)",
    "kinetic_temperature": "mean kinetic temperature differs from T_md (lambda scales with it)",
    "above_band": "more than 5 % of lambda lies above the phonon band (band_cutoff_meV)",
    "single_replica": "one replica: errors from blocks of one trajectory, not from independent replicas",
    "block_errors": "block errors refused or without a plateau (single trajectory)",
    "region_spill": "spectral weight spills across a region edge (region values mix modes)",
    "other": "another analysis warning (see linewidth.json 'warnings')",
}
"""Warning kind -> what it means (the report's legend). Order is display order."""

REQUIRED_KEYS = ("lambda_meV", "fwhm_meV", "report_temperature_K")
"""Keys every linewidth.json of qdphonon carries; a file without them is not one (refused)."""


def check_linewidth_record(record: Any, source: str) -> dict:
    """``record`` when it is a linewidth.json mapping with numeric :data:`REQUIRED_KEYS`;
    ValueError naming ``source`` and the first missing or non-numeric key otherwise."""
    if not isinstance(record, dict):
        raise ValueError(f"{source}: not a linewidth.json (a JSON {type(record).__name__}, not an object)")
    for key in REQUIRED_KEYS:
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "missing" if key not in record else f"{value!r} is not a number"
            raise ValueError(f"{source}: not a qdphonon linewidth.json: {key} {what}")
    return record


def warning_kinds(lw: Mapping[str, Any]) -> list[str]:
    """The :data:`WARNING_KINDS` that apply to one linewidth.json, in display order."""
    kinds = []
    if any(s.get("stationary") is False for s in lw.get("stationarity") or []):
        kinds.append("stationarity")
    unresolved = [str(r.get("name")) for r in lw.get("regions") or [] if r.get("resolved") is False]
    if unresolved:
        kinds.append("unresolved")
    deviation = lw.get("kinetic_temperature_deviation")
    if isinstance(deviation, (int, float)) and abs(deviation) > KINETIC_TEMPERATURE_TOLERANCE:
        kinds.append("kinetic_temperature")
    above = lw.get("lambda_above_band_fraction")
    if isinstance(above, (int, float)) and above > ABOVE_BAND_WARN_FRACTION:
        kinds.append("above_band")
    if lw.get("n_replicas") == 1:
        kinds.append("single_replica")
    blocks = lw.get("blocks") or {}
    if blocks.get("refused") or blocks.get("plateau_lambda") is False:
        kinds.append("block_errors")
    if lw.get("edge_lines"):
        kinds.append("region_spill")
    if lw.get("warnings") and not kinds:
        kinds.append("other")
    return kinds


GAMMA_SCALING = {"md": "harmonic_from_T_md", "harmonic": "normal_mode_occupations"}
"""How each route reaches Γ(T): the MD route scales the spectrum sampled at T_md as a harmonic system
would (docs/physics.md §1); the harmonic route weights each normal mode by its exact occupation (§5)."""


def gamma_record(lw: Mapping[str, Any]) -> dict[str, Any]:
    """How Γ(report_temperature_K) was obtained: route, T_md, MD time step and the scaling (:data:`GAMMA_SCALING`)."""
    dts = sorted({round(float(d), 9) for d in lw.get("dt_fs_per_replica") or []})
    route = lw.get("route") or "md"
    return {
        "route": route,
        "md_temperature_K": lw.get("md_temperature_K"),
        "timestep_fs": dts[0] if len(dts) == 1 else None,
        "gamma_scaling": GAMMA_SCALING.get(route),
    }
