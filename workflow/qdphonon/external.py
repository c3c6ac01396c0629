"""External runs of a campaign (config ``external:``): names and the settings of their re-evaluation."""

from __future__ import annotations

import shlex
from typing import Any, Mapping

from qdphonon.config import ConfigError

SOURCE_KEYS = ("run_dir", "trajectory")
REEVALUATE_KEYS = ("format", "type_map", "cell_A", "level", "stride_steps", "first_step", "timestep_fs",
                   "md_temperature_K")  # fmt: skip
CAMPAIGN_KEYS = ("scf.on_failure", "scf.eps_scf", "cp2k.command", "cp2k.mpi_launcher", "cp2k.walltime_margin_min")


def external_runs(config: Mapping[str, Any], system_names) -> dict[str, dict[str, Any]]:
    """The schema-validated ``external`` entries by name; a name used twice or by a system is a ConfigError."""
    runs: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(config.get("external") or []):
        name = entry["name"]
        if name in runs or name in set(system_names):
            raise ConfigError(f"external[{i}].name: {name!r} is already the name of "
                              f"{'another external run' if name in runs else 'a system'}")  # fmt: skip
        runs[name] = dict(entry)
    return runs


def source_option(entry: Mapping[str, Any]) -> str:
    """``--run-dir DIR`` or ``--trajectory FILE``, quoted for the shell."""
    key = next(k for k in SOURCE_KEYS if entry.get(k))
    return f"--{key.replace('_', '-')} {shlex.quote(str(entry[key]))}"


def reevaluate_settings(entry: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``qdphonon reevaluate --settings-json`` record of one external run, keyed by config key: the
    entry's own settings (``external[].level``, ...) and the campaign's CP2K and SCF settings."""
    out = {f"external[].{k}": entry[k] for k in REEVALUATE_KEYS if entry.get(k) is not None}
    for key in CAMPAIGN_KEYS:  # a null (scf.eps_scf: the level's) is the command's default too
        section, name = key.split(".")
        if config[section].get(name) is not None:
            out[key] = config[section][name]
    return out
