"""Campaign configuration: the checks JSON schema cannot express, and the systems it implies.

Light on purpose: the Snakefile imports it at parse time, so nothing heavy (pymatgen,
matplotlib, pandas) is imported here. ``snakemake.utils.validate`` has already checked
types and filled in defaults; :func:`campaign_from_config` adds the cross-key rules
(a shell thicker than the dot, region edges out of order) and names the offending key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping

MD_KEYS_PER_SYSTEM = ("steps", "timestep_fs", "equilibration_fs", "replicas", "trajectory_every_steps")


class ConfigError(ValueError):
    """An invalid campaign configuration; the message starts with the offending key."""


@dataclasses.dataclass(frozen=True)
class SystemConfig:
    """One quantum dot of the campaign and its MD settings (after per-system overrides)."""

    name: str
    size: tuple[int, int, int]
    shell_layers: int
    shell_metal: str
    md: Mapping[str, Any]

    @property
    def replicas(self) -> list[str]:
        """Replica names ``r0``, ``r1``, ..."""
        return [f"r{i}" for i in range(int(self.md["replicas"]))]

    @property
    def n_atoms(self) -> int:
        """Atom count of the neutral CsBr-terminated cuboid (DESIGN §2), without building it."""
        return cuboid_atom_count(self.size)


def system_name(size: tuple[int, int, int] | list[int], shell_layers: int = 0, shell_metal: str = "Ca") -> str:
    """Filesystem- and shell-safe system name, e.g. ``cspbbr3_6x6x6`` or ``cspbbr3_6x6x6_ca1``."""
    name = "cspbbr3_" + "x".join(str(int(n)) for n in size)
    if shell_layers:
        name += f"_{shell_metal.lower()}{int(shell_layers)}"
    return name


def cuboid_atom_count(size: tuple[int, int, int] | list[int]) -> int:
    """Atoms of the neutral dot: Pb = nx ny nz, Br on every octahedron corner, Cs = Br - 2 Pb."""
    nx, ny, nz = (int(n) for n in size)
    n_pb = nx * ny * nz
    n_br = (nx + 1) * ny * nz + nx * (ny + 1) * nz + nx * ny * (nz + 1)
    return n_pb + n_br + (n_br - 2 * n_pb)


def replica_seed(base_seed: int, system: str, replica: str) -> int:
    """Deterministic per-replica seed (0 <= seed < 2**31) from the base seed, system and replica."""
    digest = hashlib.sha256(f"{base_seed}:{system}:{replica}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def campaign_from_config(config: Mapping[str, Any]) -> dict[str, SystemConfig]:
    """The systems of a schema-validated config, keyed by name; raises :class:`ConfigError`."""
    edges = list(config["analysis"]["region_edges_meV"])
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ConfigError(f"analysis.region_edges_meV: edges must increase strictly, got {edges}")
    systems: dict[str, SystemConfig] = {}
    for i, entry in enumerate(config["systems"]):
        size = tuple(int(n) for n in entry["size"])
        k = int(entry.get("shell_layers", 0))
        if 2 * k >= min(size):
            raise ConfigError(
                f"systems[{i}].shell_layers: {k} shell layer(s) leave no core in a {'x'.join(map(str, size))} dot "
                f"(need 2*shell_layers < {min(size)})"
            )
        md = {**config["md"], **entry.get("md", {})}
        name = system_name(size, k, entry.get("shell_metal", "Ca"))
        if name in systems:
            raise ConfigError(f"systems[{i}]: duplicate system {name}")
        steps_fs = md["steps"] * md["timestep_fs"]
        if md["equilibration_fs"] >= steps_fs:
            raise ConfigError(
                f"systems[{i}].md.equilibration_fs: {md['equilibration_fs']} fs discards the whole "
                f"{steps_fs:g} fs trajectory of {name}"
            )
        systems[name] = SystemConfig(name, size, k, entry.get("shell_metal", "Ca"), md)
    return systems


def settings_digest(settings: Mapping[str, Any]) -> str:
    """Short stable hash of a settings mapping (provenance and rerun triggers)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


COST_MODEL = {
    # level: (seconds per MD step at the reference size on 2 cores, reference atoms, exponent)
    "xtb": (1.5, 64, 2.6),
    "pbe": (50.0, 64, 2.5),
}
"""Rough per-step cost on 2 cores of CP2K 2023.1 (DESIGN §3 timings; +-30 % at the measured sizes,
an extrapolation beyond them)."""


def aimd_cost_estimate(n_atoms: int, level: str, steps: int, cores: int = 2) -> dict[str, float]:
    """Estimated wall time of an AIMD run: ``seconds_per_step`` and ``hours`` on ``cores`` cores.

    A power law through the measured 2-core timings, assuming ideal parallel scaling;
    used for default SLURM runtimes, not for physics.
    """
    t_ref_s, n_ref, exponent = COST_MODEL[level]
    per_step_s = t_ref_s * (n_atoms / n_ref) ** exponent * 2.0 / max(1, cores)
    return {"seconds_per_step": per_step_s, "hours": per_step_s * (steps + 1) / 3600.0}
