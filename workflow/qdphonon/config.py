"""Campaign configuration: reading, schema validation, the checks JSON schema cannot express,
and the systems a config implies.

Light on purpose: the Snakefile imports it at parse time, so nothing heavy (pymatgen,
matplotlib, pandas) is imported here. ``snakemake.utils.validate`` (or :func:`validate_config`,
the same schema with shorter messages) checks types and ranges and fills in defaults;
:func:`campaign_from_config` adds the cross-key rules (a shell thicker than the dot, region
edges out of order, duplicate systems, an equilibration longer than the run, ...) and names the
offending key. :func:`load_config_file` reads a YAML/JSON file and names the file and line of a
syntax error or a duplicate key (Snakemake's own loader names neither).

``python -m qdphonon.config FILE...`` runs all three on config files and prints the first
problem of each, as ``FILE: key: message`` or ``FILE:LINE:COLUMN: message``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qdphonon import elements, settings

from qdphonon.settings import SCHEMA_PATH

MD_KEYS_PER_SYSTEM = ("steps", "timestep_fs", "equilibration_fs", "replicas", "trajectory_every_steps", "temperatures_K")




class ConfigError(ValueError):
    """An invalid campaign configuration; the message starts with the offending key
    (or with ``FILE:LINE:COLUMN`` for an unreadable config file)."""


CAMPAIGN_CONFIG_FILE = "campaign_config.json"
"""The merged config of the last Snakemake run, in the results directory (rule record_campaign_config);
``qdphonon status``, ``check`` and ``cost`` read it when given no ``--configfile``."""


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) config file; :class:`ConfigError` naming the file and line
    of a syntax error or a duplicate key, or saying that the file holds no mapping.

    Snakemake reads config files itself (``--configfile`` before the Snakefile is parsed, the
    ``configfile:`` directive when it is reached), silently keeps the last of duplicate keys and
    reports a syntax error without file or line; call this first to get both.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    try:  # JSON first, as Snakemake does (tab-indented JSON is not YAML)
        data = json.loads(text, object_pairs_hook=lambda pairs: _unique_json_object(path, pairs))
    except json.JSONDecodeError:
        pass
    else:
        return _must_be_mapping(path, data)
    try:
        data = yaml.load(text, Loader=_strict_loader())  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        if isinstance(exc, yaml.constructor.ConstructorError):
            raise ConfigError(f"{where}: {exc.problem}") from None
        what = str(exc.problem or exc.context)
        if exc.context and exc.problem:
            context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
            what += f" ({exc.context}{context_line})"
        raise ConfigError(f"{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {exc}") from None
    return _must_be_mapping(path, data)


def _must_be_mapping(path: Path, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        kind = "is empty" if data is None else f"holds a {type(data).__name__}, not a mapping of keys"
        raise ConfigError(f"{path}:1:1: the config file {kind} (top-level keys such as systems: expected)")
    return data


def _unique_json_object(path: Path, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate key {duplicates[0]!r} in a JSON object")
    return dict(pairs)


def _construct_unique_mapping(loader, node, deep=False):
    """SafeLoader's mapping constructor, refusing a key given twice in one mapping."""
    import yaml

    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges are explicit overrides, not duplicates
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # an unhashable key: the base constructor reports it
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first given at line {seen[key]})", key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


@functools.cache
def _strict_loader():
    """A SafeLoader subclass refusing duplicate keys (built on first use: no yaml import at import)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
    return StrictLoader


def config_key_path(path: Sequence[Any]) -> str:
    """``['systems', 0, 'md', 'steps']`` -> ``systems[0].md.steps`` (the spelling of messages)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.lru_cache(maxsize=4)
def _load_schema(path: str) -> dict[str, Any]:
    """The parsed schema (never modified: defaults are deep-copied into configs)."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


def validate_config(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Check ``config`` against the schema and fill in its defaults, in place, as
    ``snakemake.utils.validate`` does; :class:`ConfigError` starting with the offending key
    (``md.timestep_fs: 'fast' is not of type 'number'``). Returns ``config``.
    """
    import jsonschema

    schema = _load_schema(str(schema_path))
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_node):
        if validator.is_type(instance, "object"):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema_node)

    validator = jsonschema.validators.extend(base, {"properties": set_defaults})(schema)
    if not isinstance(config, dict):
        raise ConfigError(f"(top level): the config must be a mapping of keys, got {type(config).__name__}")
    error = next(iter(validator.iter_errors(config)), None)
    if error is None:
        return config
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in known)
        hint = f"; known keys: {', '.join(sorted(known))}" if known else ""
        key = config_key_path([*path, extra[0]]) if extra else config_key_path(path)
        raise ConfigError(f"{key}: unknown key{hint}")
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        raise ConfigError(f"{config_key_path([*path, *missing[:1]]) or '(top level)'}: required key missing")
    if "propertyNames" in error.schema_path:
        raise ConfigError(f"{config_key_path([*path, str(error.instance)])}: invalid key: {error.message}")
    message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    raise ConfigError(f"{config_key_path(path) or '(top level)'}: {message}")


@dataclasses.dataclass(frozen=True)
class SystemConfig:
    """One quantum dot of the campaign and its MD settings (after per-system overrides)."""

    name: str
    size: tuple[int, int, int]
    shell_layers: int
    shell_metal: str
    md: Mapping[str, Any]
    route: str = "md"

    @property
    def routes(self) -> list[str]:
        """``["md"]``, ``["harmonic"]`` or ``["md", "harmonic"]`` (``route: both``)."""
        return ["md", "harmonic"] if self.route == "both" else [self.route]

    @property
    def replicas(self) -> list[str]:
        """Replica names ``r0``, ``r1``, ..."""
        return [f"r{i}" for i in range(int(self.md["replicas"]))]

    @property
    def md_temperatures_K(self) -> list[float]:
        """The system's MD temperatures in K, ascending: ``md.temperatures_K``, or ``[md.temperature_K]``."""
        return sorted(self.md.get("temperatures_K") or [self.md["temperature_K"]])

    def replicas_at(self, temperature_K: float) -> list[str]:
        """Replica names at one MD temperature: :attr:`replicas` at ``md.temperature_K`` (the paths of a
        single-temperature campaign), ``r0_T300K``, ... at the others (:func:`temperature_tag`)."""
        if temperature_K == self.md["temperature_K"]:
            return self.replicas
        return [f"{r}_T{temperature_tag(temperature_K)}K" for r in self.replicas]

    @property
    def all_replicas(self) -> list[str]:
        """Every replica the system runs, at every MD temperature."""
        return [r for T in self.md_temperatures_K for r in self.replicas_at(T)]

    def replica_temperature_K(self, replica: str) -> float:
        """T_md of a replica (as the config gives it); ValueError for a replica this system does not run."""
        for T in self.md_temperatures_K:
            if replica in self.replicas_at(T):
                return self.md["temperature_K"] if T == self.md["temperature_K"] else T
        raise ValueError(f"{self.name}: no replica {replica!r} (replicas: {', '.join(self.all_replicas)})")

    @property
    def n_atoms(self) -> int:
        """Atom count of the neutral CsBr-terminated cuboid (docs/physics.md §2), without building it."""
        return cuboid_atom_count(self.size)


def system_name(size: tuple[int, int, int] | list[int], shell_layers: int = 0, shell_metal: str | None = None) -> str:
    """Filesystem- and shell-safe system name, e.g. ``cspbbr3_6x6x6`` or ``cspbbr3_6x6x6_ca1``: the host
    perovskite's formula in lower case (:func:`qdphonon.elements.system_prefix`), the size, and the
    shell metal (None: the schema's default) and layers if there is a shell."""
    name = f"{elements.system_prefix()}_" + "x".join(str(int(n)) for n in size)
    if shell_layers:
        metal = shell_metal or settings.default("systems[].shell_metal")
        name += f"_{metal.lower()}{int(shell_layers)}"
    return name


def temperature_tag(temperature_K: float) -> str:
    """``300`` for 300 K, ``77p5`` for 77.5 K: a temperature in a replica name (no dot, no sign)."""
    return f"{float(temperature_K):.6f}".rstrip("0").rstrip(".").replace(".", "p")


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


def check_cp2k_command(config: Mapping[str, Any], which=None) -> None:
    """With ``engine: cp2k``, :class:`ConfigError` naming ``cp2k.command`` when that program is not on
    PATH here: a campaign whose jobs cannot start fails before the first job (on a cluster, load
    CP2K's module before starting snakemake; jobs inherit this environment)."""
    import shutil

    if config.get("engine") != "cp2k":
        return
    command = config["cp2k"]["command"]
    if (which or shutil.which)(command) is None:
        raise ConfigError(
            f"cp2k.command: {command!r} is not on PATH (install CP2K, e.g. apt-get install cp2k openmpi-bin, "
            "or load its module before starting snakemake; the jobs inherit this environment)"
        )


def campaign_from_config(config: Mapping[str, Any]) -> dict[str, SystemConfig]:
    """The systems of a schema-validated config, keyed by name; raises :class:`ConfigError`
    (message starting with the offending key) for what the schema cannot express."""
    edges = list(config["analysis"]["region_edges_meV"])
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ConfigError(f"analysis.region_edges_meV: edges must increase strictly, got {edges}")
    if config["level"] == "pbe" and config["scf"]["smearing_K"] is not None:
        raise ConfigError(
            f"scf.smearing_K: {config['scf']['smearing_K']} K smearing is not supported with level pbe "
            "(the PBE input uses OT, which has integer occupations); set scf.smearing_K: null or level: xtb"
        )
    systems: dict[str, SystemConfig] = {}
    first_index: dict[str, int] = {}
    for i, entry in enumerate(config["systems"]):
        size = tuple(int(n) for n in entry["size"])
        k = int(entry.get("shell_layers", 0))
        if 2 * k >= min(size):
            raise ConfigError(
                f"systems[{i}].shell_layers: {k} shell layer(s) leave no core in a {'x'.join(map(str, size))} dot "
                f"(need 2*shell_layers < {min(size)})"
            )
        own_md = entry.get("md", {})
        md = {**config["md"], **own_md}

        def key(name: str, i: int = i, own_md: Mapping[str, Any] = own_md) -> str:
            return f"systems[{i}].md.{name}" if name in own_md else f"md.{name}"

        metal = entry.get("shell_metal", settings.default("systems[].shell_metal"))
        name = system_name(size, k, metal)
        if name in systems:
            raise ConfigError(f"systems[{i}]: duplicate system {name} (same as systems[{first_index[name]}])")
        steps_fs = md["steps"] * md["timestep_fs"]
        if md["equilibration_fs"] >= steps_fs:
            raise ConfigError(
                f"{key('equilibration_fs')}: {md['equilibration_fs']:g} fs discards the whole {steps_fs:g} fs "
                f"trajectory of systems[{i}] ({name}: {key('steps')} {md['steps']} x {key('timestep_fs')} "
                f"{md['timestep_fs']:g} fs)"
            )
        if md["trajectory_every_steps"] > md["steps"]:
            raise ConfigError(
                f"{key('trajectory_every_steps')}: a stride of {md['trajectory_every_steps']} steps leaves no "
                f"trajectory frame after step 0 in the {md['steps']} steps ({key('steps')}) of systems[{i}] ({name})"
            )
        temps = md.pop("temperatures_K", None)  # absent when null: a single-temperature system's md is as before
        if temps is not None:
            md["temperatures_K"] = temps
        if temps is not None and md["temperature_K"] not in temps:
            raise ConfigError(
                f"{key('temperatures_K')}: {temps} must include md.temperature_K ({md['temperature_K']:g} K), "
                f"the temperature of the main analysis of systems[{i}] ({name})"
            )
        if temps is not None and len({temperature_tag(T) for T in temps}) < len(temps):
            raise ConfigError(f"{key('temperatures_K')}: {temps} holds temperatures closer than 1e-6 K")
        systems[name] = SystemConfig(name, size, k, metal, md, entry.get("route", "md"))
        first_index[name] = i
    return systems


def check_config_file(path: str | Path) -> dict[str, SystemConfig]:
    """Read, validate and expand one config file (:func:`load_config_file`, :func:`validate_config`,
    :func:`campaign_from_config`); :class:`ConfigError` prefixed with the file name."""
    config = load_config_file(path)
    try:
        return campaign_from_config(validate_config(config))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def settings_digest(settings: Mapping[str, Any]) -> str:
    """Short stable hash of a settings mapping (provenance and rerun triggers)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qdphonon.config FILE...``: check config files; exit 1 if any is invalid."""
    paths = list(sys.argv[1:] if argv is None else argv) or ["config/config.yaml"]
    status = 0
    for path in paths:
        try:
            systems = check_config_file(path)
        except ConfigError as exc:
            print(f"invalid config: {exc}", file=sys.stderr)
            status = 1
        else:
            print(f"{path}: valid, {len(systems)} system(s): {', '.join(systems)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
