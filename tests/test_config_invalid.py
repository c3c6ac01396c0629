"""Invalid configs are refused before any job runs, with a message naming the key (issue 9).

* In process, for every case: ``snakemake.utils.validate`` against the schema (what the
  Snakefile calls) and :func:`qdphonon.config.validate_config` (the same schema, short
  messages), then :func:`qdphonon.config.campaign_from_config` for the cross-key rules. The
  message must name the offending key. Snakemake's message also dumps the failing part of the
  schema, which lists every sibling key; only its ``ValidationError:`` and ``On instance[...]``
  lines count as naming a key (otherwise the check would be vacuous).
* YAML syntax errors and duplicate keys: :func:`qdphonon.config.load_config_file` names the
  file and line.
* End to end, a representative handful: ``snakemake -n --configfile BAD.yaml`` from a scratch
  directory exits non-zero, names the key in its output and writes nothing under ``results/``.
* Hostile strings in every string setting are refused by the schema; the free-text CP2K
  overrides travel as data (``snakemake -n -p`` and a real mock run to the CP2K input never
  run them).
* Hypothesis: random mutations of a valid config (wrong type, unknown key, out of range) are
  refused naming the mutated key; random valid configs are accepted.
"""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdphonon.config import (
    ConfigError,
    campaign_from_config,
    config_key_path,
    load_config_file,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "workflow/qdphonon/data/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())


# --------------------------------------------------------------------------- helpers

def key_lines(text: str) -> str:
    """The lines of a refusal that name a location: jsonschema's ``ValidationError:`` and
    ``On instance[...]`` lines (not the schema dump) and qdphonon's ConfigError text."""
    keep = [line for line in text.splitlines()
            if line.startswith(("ValidationError:", "On instance")) or "invalid config:" in line]
    return "\n".join(keep)


def spelled(parts) -> str:
    """jsonschema's spelling of a path: ``['systems'][0]['md']``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f"[{p!r}]" for p in parts)


def names_key(message: str, parts: list) -> bool:
    """Does the message name the key at ``parts`` (dotted, or jsonschema's instance path, or
    the parent's instance path and the key itself for unknown/missing keys)?"""
    if config_key_path(parts) in message:
        return True
    here = f"On instance{spelled(parts)}"
    if f"{here}:" in message or f"{here}[" in message:
        return True
    return bool(parts) and f"On instance{spelled(parts[:-1])}:" in message and repr(parts[-1]) in message


def snakemake_refusal(cfg: Any) -> str | None:
    """What the Snakefile does: snakemake.utils.validate, then campaign_from_config."""
    from snakemake.utils import validate
    from snakemake_interface_common.exceptions import WorkflowError

    cfg = copy.deepcopy(cfg)
    try:
        validate(cfg, str(SCHEMA_PATH))
    except WorkflowError as exc:
        return key_lines(str(exc))
    try:
        campaign_from_config(cfg)
    except ConfigError as exc:
        return str(exc)
    return None


def qdphonon_refusal(cfg: Any) -> str | None:
    cfg = copy.deepcopy(cfg)
    try:
        campaign_from_config(validate_config(cfg))
    except ConfigError as exc:
        return str(exc)
    return None


VALIDATORS = {"snakemake": snakemake_refusal, "qdphonon": qdphonon_refusal}


def run_dry(cwd: Path, config_path: str | None, *args: str) -> subprocess.CompletedProcess:
    """``snakemake -n -s REPO/Snakefile [--configfile CONFIG] ARGS`` from ``cwd`` (no copy of the repo).

    Snakemake 9.27 prints its error messages on stdout or stderr depending on where they arise
    (a config-file error: stdout), so the tests read both (``output``)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), *args]
    if config_path is not None:
        cmd += ["--configfile", config_path]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          check=False)


def output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + "\n" + (result.stderr or "")


def mutated(mutate: Callable[[dict], Any]) -> dict:
    cfg = copy.deepcopy(DEFAULT)
    result = mutate(cfg)
    return cfg if result is None else result


EXTERNAL_ENTRY = {"name": "theirs", "level": "xtb"}  # plus run_dir or trajectory (oneOf)


def walk(cfg: dict, path: list, leaf: Any = None) -> Any:
    """The node at ``path``, creating missing mappings; a missing ``external[0]`` becomes a valid
    entry (run_dir, or trajectory when that is the key under test) so only the key under test is wrong."""
    node = cfg
    for i, part in enumerate(path):
        if isinstance(part, str):
            following = path[i + 1] if i + 1 < len(path) else None
            node = node.setdefault(part, [] if isinstance(following, int) else {})
            continue
        if len(node) <= part:
            source = "trajectory" if [*path[i + 1:], leaf][0] == "trajectory" else "run_dir"
            node.append({**EXTERNAL_ENTRY, source: "their_run"})
        node = node[part]
    return node


def setitem(path: list, value: Any) -> Callable[[dict], None]:
    def mutate(cfg):
        walk(cfg, path[:-1], leaf=path[-1])[path[-1]] = value
    return mutate


def delitem(path: list) -> Callable[[dict], None]:
    def mutate(cfg):
        node = cfg
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return mutate


# --------------------------------------------------------------------------- the invalid configs
# (id, mutation of config/config.yaml, path of the key the message must name). The default
# config has six systems; systems[5] is the 6x6x6 dot with one Ca shell layer.

INVALID: list[tuple[str, Callable[[dict], Any], list]] = [
    # unknown keys at every level
    ("unknown-top-level-key", setitem(["colour"], "blue"), ["colour"]),
    ("unknown-key-in-system", setitem(["systems", 0, "sise"], [3, 3, 3]), ["systems", 0, "sise"]),
    ("campaign-only-md-key-per-system", setitem(["systems", 1, "md", "temperature_K"], 300.0),
     ["systems", 1, "md", "temperature_K"]),
    ("unknown-key-in-structure", setitem(["structure", "lattice_a"], 5.87), ["structure", "lattice_a"]),
    ("unknown-key-in-md", setitem(["md", "stepz"], 10), ["md", "stepz"]),
    ("unknown-key-in-scf", setitem(["scf", "eps"], 1e-6), ["scf", "eps"]),
    ("unknown-key-in-relax", setitem(["relax", "maxiter"], 10), ["relax", "maxiter"]),
    ("unknown-key-in-cp2k", setitem(["cp2k", "comand"], "cp2k.psmp"), ["cp2k", "comand"]),
    ("unknown-key-in-mock", setitem(["mock", "lamda_ref_meV"], 90), ["mock", "lamda_ref_meV"]),
    ("unknown-key-in-analysis", setitem(["analysis", "blocs"], 4), ["analysis", "blocs"]),
    ("bad-element-in-mock-table", setitem(["mock", "atom_region_weights"], {"cesium": [1, 0, 0]}),
     ["mock", "atom_region_weights", "cesium"]),
    # missing or empty
    ("no-systems", delitem(["systems"]), ["systems"]),
    ("empty-systems", setitem(["systems"], []), ["systems"]),
    ("system-without-size", delitem(["systems", 2, "size"]), ["systems", 2, "size"]),
    # wrong types
    ("systems-a-mapping", setitem(["systems"], {"size": [3, 3, 3]}), ["systems"]),
    ("size-a-string", setitem(["systems", 0, "size"], "3x3x3"), ["systems", 0, "size"]),
    ("size-non-integer", setitem(["systems", 0, "size"], [3, 2.5, 3]), ["systems", 0, "size", 1]),
    ("size-two-numbers", setitem(["systems", 3, "size"], [6, 6]), ["systems", 3, "size"]),
    ("shell-layers-a-word", setitem(["systems", 5, "shell_layers"], "one"), ["systems", 5, "shell_layers"]),
    ("shell-metal-unknown", setitem(["systems", 5, "shell_metal"], "Mg"), ["systems", 5, "shell_metal"]),
    ("level-unknown", setitem(["level"], "b3lyp"), ["level"]),
    ("engine-unknown", setitem(["engine"], "vasp"), ["engine"]),
    ("structure-a-list", setitem(["structure"], [5.87, 10.0]), ["structure"]),
    ("md-null", setitem(["md"], None), ["md"]),
    ("timestep-a-word", setitem(["md", "timestep_fs"], "fast"), ["md", "timestep_fs"]),
    ("replicas-fractional", setitem(["md", "replicas"], 1.5), ["md", "replicas"]),
    ("steps-boolean", setitem(["md", "steps"], True), ["md", "steps"]),
    ("per-system-md-a-number", setitem(["systems", 0, "md"], 3000), ["systems", 0, "md"]),
    ("smearing-with-unit", setitem(["scf", "smearing_K"], "300K"), ["scf", "smearing_K"]),
    ("on-failure-unknown", setitem(["scf", "on_failure"], "ignore"), ["scf", "on_failure"]),
    ("cp2k-command-a-list", setitem(["cp2k", "command"], ["cp2k.psmp", "-i"]), ["cp2k", "command"]),
    ("cp2k-overrides-a-list", setitem(["cp2k", "overrides"], ["cutoff", 300]), ["cp2k", "overrides"]),
    ("mock-flag-a-word", setitem(["mock", "calibrate_realised_variance"], "yes"),
     ["mock", "calibrate_realised_variance"]),
    ("mock-triple-of-two", setitem(["mock", "region_energies_meV"], [2.0, 7.0]), ["mock", "region_energies_meV"]),
    ("region-edges-a-string", setitem(["analysis", "region_edges_meV"], "0,4.5,12,30"),
     ["analysis", "region_edges_meV"]),
    # out of range
    ("size-zero", setitem(["systems", 0, "size"], [3, 0, 3]), ["systems", 0, "size", 1]),
    ("size-huge", setitem(["systems", 0, "size"], [41, 41, 41]), ["systems", 0, "size", 0]),
    ("shell-layers-negative", setitem(["systems", 5, "shell_layers"], -1), ["systems", 5, "shell_layers"]),
    ("lattice-constant-zero", setitem(["structure", "lattice_A"], 0), ["structure", "lattice_A"]),
    ("lattice-constant-in-nm", setitem(["structure", "lattice_A"], 0.587), ["structure", "lattice_A"]),
    ("vacuum-negative", setitem(["structure", "vacuum_A"], -1.0), ["structure", "vacuum_A"]),
    ("md-temperature-negative", setitem(["md", "temperature_K"], -5.0), ["md", "temperature_K"]),
    ("md-temperature-above-melting", setitem(["md", "temperature_K"], 5000.0), ["md", "temperature_K"]),
    ("timestep-zero", setitem(["md", "timestep_fs"], 0), ["md", "timestep_fs"]),
    ("timestep-in-as", setitem(["md", "timestep_fs"], 500), ["md", "timestep_fs"]),
    ("steps-zero", setitem(["md", "steps"], 0), ["md", "steps"]),
    ("replicas-zero", setitem(["md", "replicas"], 0), ["md", "replicas"]),
    ("per-system-replicas-zero", setitem(["systems", 2, "md"], {"replicas": 0}), ["systems", 2, "md", "replicas"]),
    ("seed-negative", setitem(["md", "seed"], -1), ["md", "seed"]),
    ("seed-beyond-32-bit", setitem(["md", "seed"], 2**40), ["md", "seed"]),
    ("stride-zero", setitem(["md", "trajectory_every_steps"], 0), ["md", "trajectory_every_steps"]),
    ("eps-scf-zero", setitem(["scf", "eps_scf"], 0.0), ["scf", "eps_scf"]),
    ("eps-scf-loose", setitem(["scf", "eps_scf"], 0.5), ["scf", "eps_scf"]),
    ("max-scf-zero", setitem(["scf", "max_scf"], 0), ["scf", "max_scf"]),
    ("smearing-zero", setitem(["scf", "smearing_K"], 0), ["scf", "smearing_K"]),
    ("relax-max-iter-zero", setitem(["relax", "max_iter"], 0), ["relax", "max_iter"]),
    ("walltime-margin-negative", setitem(["cp2k", "walltime_margin_min"], -10), ["cp2k", "walltime_margin_min"]),
    ("mock-surface-fraction-above-one", setitem(["mock", "surface_fraction_ref"], 1.5),
     ["mock", "surface_fraction_ref"]),
    ("mock-weight-negative", setitem(["mock", "atom_region_weights"], {"Cs": [1.2, -0.1, -0.1]}),
     ["mock", "atom_region_weights", "Cs", 0]),
    ("analysis-temperature-zero", setitem(["analysis", "report_temperature_K"], 0), ["analysis", "report_temperature_K"]),
    ("one-region-edge", setitem(["analysis", "region_edges_meV"], [0.0]), ["analysis", "region_edges_meV"]),
    ("negative-region-edge", setitem(["analysis", "region_edges_meV"], [-1.0, 4.5, 12.0]),
     ["analysis", "region_edges_meV", 0]),
    ("one-block", setitem(["analysis", "blocks"], 1), ["analysis", "blocks"]),
    # shell metacharacters where the schema forbids them (more in the hostile-string tests)
    ("command-with-semicolon", setitem(["cp2k", "command"], "cp2k.psmp; touch X;"), ["cp2k", "command"]),
    ("command-with-substitution", setitem(["cp2k", "command"], "$(touch X)"), ["cp2k", "command"]),
    ("command-with-space", setitem(["cp2k", "command"], "mpirun -n 2 cp2k.psmp"), ["cp2k", "command"]),
    ("command-an-option", setitem(["cp2k", "command"], "--version"), ["cp2k", "command"]),
    ("command-empty", setitem(["cp2k", "command"], ""), ["cp2k", "command"]),
    # cross-key rules (campaign_from_config)
    ("shell-thicker-than-dot", setitem(["systems", 5, "shell_layers"], 3), ["systems", 5, "shell_layers"]),
    ("shell-leaves-no-core-exactly", lambda c: c["systems"].append({"size": [2, 2, 2], "shell_layers": 1}),
     ["systems", 6, "shell_layers"]),
    ("shell-thicker-than-thin-axis", lambda c: c["systems"].append({"size": [2, 6, 6], "shell_layers": 1}),
     ["systems", 6, "shell_layers"]),
    ("duplicate-system", lambda c: c["systems"].append({"size": [4, 4, 4]}), ["systems", 6]),
    ("duplicate-system-metal-without-shell", lambda c: c["systems"].append({"size": [5, 5, 5], "shell_metal": "Sr"}),
     ["systems", 6]),
    ("region-edges-out-of-order", setitem(["analysis", "region_edges_meV"], [0.0, 12.0, 4.5, 30.0]),
     ["analysis", "region_edges_meV"]),
    ("region-edges-repeated", setitem(["analysis", "region_edges_meV"], [0.0, 4.5, 4.5, 30.0]),
     ["analysis", "region_edges_meV"]),
    ("equilibration-longer-than-run", setitem(["md", "equilibration_fs"], 1e9), ["md", "equilibration_fs"]),
    ("equilibration-equal-to-run", setitem(["md", "equilibration_fs"], 8000.0), ["md", "equilibration_fs"]),
    ("per-system-run-shorter-than-equilibration", setitem(["systems", 1, "md"], {"steps": 100}),
     ["systems", 1, "md", "steps"]),
    ("per-system-equilibration-too-long", setitem(["systems", 1, "md"], {"equilibration_fs": 9000.0}),
     ["systems", 1, "md", "equilibration_fs"]),
    ("stride-longer-than-run", lambda c: c["md"].update(steps=600, equilibration_fs=100.0,
                                                         trajectory_every_steps=601),
     ["md", "trajectory_every_steps"]),
    ("smearing-with-pbe", setitem(["scf", "smearing_K"], 300.0), ["scf", "smearing_K"]),
]

INVALID_IDS = [case[0] for case in INVALID]


def test_the_invalid_configs_are_many_and_distinct():
    configs = [json.dumps(mutated(m), sort_keys=True) for _, m, _ in INVALID]
    assert len(set(configs)) == len(INVALID) >= 30
    assert len(set(INVALID_IDS)) == len(INVALID_IDS)


def test_the_base_config_is_valid():
    """Otherwise every refusal below could come from the base, not the mutation."""
    for name, refusal in VALIDATORS.items():
        assert refusal(DEFAULT) is None, name


@pytest.mark.parametrize("validator", sorted(VALIDATORS))
@pytest.mark.parametrize("case_id, mutate, key", INVALID, ids=INVALID_IDS)
def test_invalid_config_is_refused_naming_the_key(case_id, mutate, key, validator):
    message = VALIDATORS[validator](mutated(mutate))
    assert message is not None, f"{case_id}: accepted"
    assert names_key(message, key), f"{case_id}: {config_key_path(key)} not named in:\n{message}"


@pytest.mark.parametrize("validator", sorted(VALIDATORS))
def test_the_naming_check_can_fail(validator):
    """names_key is not satisfied by the schema dump in Snakemake's message: an unrelated key
    (listed in that dump whenever md or relax fails) is never 'named'."""
    for case_id, mutate, key in INVALID:
        message = VALIDATORS[validator](mutated(mutate))
        for other in (["md", "thermostat_timecon_fs"], ["relax", "max_iter"], ["structure", "vacuum_A"]):
            if key[:1] != other[:1]:
                assert not names_key(message, other), (case_id, other, message)


def test_own_validator_messages_start_with_the_key():
    """validate_config: the message starts with the dotted key (the ConfigError contract)."""
    for case_id, mutate, key in INVALID:
        message = qdphonon_refusal(mutated(mutate))
        dotted = config_key_path(key)
        if case_id == "per-system-run-shorter-than-equilibration":
            continue  # cross-key: starts with md.equilibration_fs, names systems[1].md.steps later
        assert message.startswith(f"{dotted}:"), (case_id, message)


def test_cross_key_messages_name_both_keys():
    message = qdphonon_refusal(mutated(setitem(["systems", 1, "md"], {"steps": 100})))
    assert message.startswith("md.equilibration_fs: 1000 fs discards the whole 200 fs trajectory of systems[1]")
    assert "systems[1].md.steps 100" in message and "md.timestep_fs 2" in message
    message = qdphonon_refusal(mutated(setitem(["systems", 5, "shell_layers"], 3)))
    assert message == "systems[5].shell_layers: 3 shell layer(s) leave no core in a 6x6x6 dot (need 2*shell_layers < 6)"
    message = qdphonon_refusal(mutated(lambda c: c["systems"].append({"size": [4, 4, 4]})))
    assert message == "systems[6]: duplicate system cspbbr3_4x4x4 (same as systems[1])"


# --------------------------------------------------------------------------- YAML files

YAML_CASES = [
    # (id, text, line, words the message must contain)
    ("unclosed-flow-sequence", "systems:\n  - size: [3, 3, 3\n  - size: [4, 4, 4]\n", 3, ["YAML syntax error", "line 2"]),
    ("tab-indentation", "systems:\n\t- size: [2, 2, 2]\n", 2, ["YAML syntax error", "'\\t'"]),
    ("bad-indentation", "systems:\n  - size: [2, 2, 2]\nmd:\n    steps: 30\n  replicas: 1\n", 5, ["YAML syntax error"]),
    ("unterminated-quote", 'systems:\n  - size: [2, 2, 2]\nlevel: "xtb\nengine: mock\n', 5,
     ["YAML syntax error", "quoted scalar at line 3"]),
    ("colon-in-plain-value", "systems:\n  - size: [2, 2, 2]\nlevel: xtb: pbe\n", 3, ["YAML syntax error"]),
    ("undefined-alias", "systems:\n  - size: *nope\n", 2, ["alias", "nope"]),
    ("unclosed-brace", "systems: [{size: [2, 2, 2]}\nlevel: xtb\n", 2, ["YAML syntax error"]),
    ("python-tag", "systems: !!python/object/apply:os.system [touch X]\n", 1, ["python/object"]),
    ("duplicate-top-level-key", "level: xtb\nsystems:\n  - size: [2, 2, 2]\nlevel: pbe\n", 4,
     ["duplicate key 'level'", "line 1"]),
    ("duplicate-md-key", "systems:\n  - size: [2, 2, 2]\nmd:\n  steps: 30\n  replicas: 1\n  steps: 40\n", 6,
     ["duplicate key 'steps'", "line 4"]),
    ("duplicate-key-in-system", "systems:\n  - size: [2, 2, 2]\n    shell_layers: 0\n    size: [3, 3, 3]\n", 4,
     ["duplicate key 'size'", "line 2"]),
    ("top-level-list", "- size: [2, 2, 2]\n", 1, ["list", "mapping"]),
    ("empty-file", "", 1, ["empty"]),
    ("comments-only", "# systems: [...]\n", 1, ["empty"]),
]


@pytest.mark.parametrize("case_id, text, line, words", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_yaml_error_names_file_and_line(tmp_path, case_id, text, line, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    for word in words:
        assert word in message, (word, message)


def test_yaml_python_tag_is_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("systems: !!python/object/apply:os.system [touch X]\n")
    with pytest.raises(ConfigError):
        load_config_file(tmp_path / "bad.yaml")
    assert not (tmp_path / "X").exists()


def test_json_duplicate_key_and_binary_file_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"systems": [{"size": [2, 2, 2]}], "md": {"steps": 3, "steps": 4}}')
    with pytest.raises(ConfigError, match=r"bad\.json: duplicate key 'steps'"):
        load_config_file(path)
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"systems:\n  - size: [2, 2, 2]\nlevel: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"binary\.yaml: not a UTF-8 text file"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "missing.yaml")


def test_check_config_command_prints_file_line_and_key(tmp_path):
    """``python -m qdphonon.config FILE...``: what a user runs for file:line of a --configfile."""
    (tmp_path / "syntax.yaml").write_text(YAML_CASES[0][1])
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(mutated(setitem(["md", "stepz"], 3))))
    (tmp_path / "good.yaml").write_text((REPO / "config/xtb-smoke.yaml").read_text())
    proc = subprocess.run([sys.executable, "-m", "qdphonon.config", "good.yaml", "syntax.yaml", "schema.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO / "workflow")})
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "good.yaml: valid, 2 system(s): cspbbr3_1x1x1, cspbbr3_1x1x2\n"
    assert "invalid config: syntax.yaml:3:9: YAML syntax error" in proc.stderr
    assert "invalid config: schema.yaml: md.stepz: unknown key" in proc.stderr


# --------------------------------------------------------------------------- end to end

E2E = [
    ("unknown-key-in-system-md", setitem(["systems", 0, "md"], {"temperature_K": 300.0}),
     ["systems", 0, "md", "temperature_K"]),
    ("timestep-a-word", setitem(["md", "timestep_fs"], "fast"), ["md", "timestep_fs"]),
    ("empty-systems", setitem(["systems"], []), ["systems"]),
    ("command-with-semicolon", setitem(["cp2k", "command"], "cp2k.psmp; touch X;"), ["cp2k", "command"]),
    ("shell-thicker-than-dot", setitem(["systems", 5, "shell_layers"], 3), ["systems", 5, "shell_layers"]),
    ("duplicate-system", lambda c: c["systems"].append({"size": [4, 4, 4]}), ["systems", 6]),
    ("equilibration-longer-than-run", setitem(["systems", 1, "md"], {"steps": 100}), ["systems", 1, "md", "steps"]),
    ("region-edges-out-of-order", setitem(["analysis", "region_edges_meV"], [0.0, 12.0, 4.5, 30.0]),
     ["analysis", "region_edges_meV"]),
    # a campaign whose jobs could not start CP2K fails before the first job, not after the queue
    ("cp2k-not-on-path", lambda c: c.update(engine="cp2k", cp2k={"command": "no-such-cp2k"}), ["cp2k", "command"]),
]


@pytest.mark.workflow
@pytest.mark.parametrize("case_id, mutate, key", E2E, ids=[c[0] for c in E2E])
def test_invalid_config_refused_end_to_end(tmp_path, case_id, mutate, key):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(mutated(mutate), sort_keys=False))
    result = run_dry(tmp_path, "bad.yaml")
    assert result.returncode != 0, output(result)[-3000:]
    assert names_key(key_lines(output(result)), key), output(result)[-4000:]
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "X").exists()


@pytest.mark.workflow
def test_yaml_syntax_error_in_configfile_refused_end_to_end(tmp_path):
    """Snakemake 9 parses --configfile in its command line, before the Snakefile runs, and says
    only "Config file is not valid JSON or YAML" (no file, no line): `python -m qdphonon.config
    FILE` gives both (test above). Refused, and nothing written."""
    (tmp_path / "bad.yaml").write_text(YAML_CASES[0][1])
    result = run_dry(tmp_path, "bad.yaml")
    assert result.returncode != 0
    assert "YAML" in output(result), output(result)[-3000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_yaml_syntax_error_in_default_config_names_file_and_line(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(YAML_CASES[0][1])
    result = run_dry(tmp_path, None)
    assert result.returncode != 0
    assert "config/config.yaml:3:9" in output(result), output(result)[-3000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_duplicate_yaml_key_in_configfile_refused_end_to_end(tmp_path):
    text = (REPO / "config/config.yaml").read_text() + "\nlevel: xtb\n"  # a second top-level level:
    (tmp_path / "bad.yaml").write_text(text)
    result = run_dry(tmp_path, "bad.yaml")
    assert result.returncode != 0
    assert "duplicate key 'level'" in output(result), output(result)[-3000:]
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- hostile strings

def schema_leaves(node: dict, path: list) -> list[tuple[list, dict]]:
    """(path, subschema) of every setting; array items as index 0, tables' values as key '*'."""
    out = []
    for key, sub in node.get("properties", {}).items():
        here = [*path, key]
        out.append((here, sub))
        if sub.get("type") == "object":
            out += schema_leaves(sub, here)
            if isinstance(sub.get("additionalProperties"), dict):
                out.append(([*here, "*"], sub["additionalProperties"]))
        if sub.get("type") == "array" and isinstance(sub.get("items"), dict):
            out.append(([*here, 0], sub["items"]))
            out += schema_leaves(sub["items"], [*here, 0])
    return out


STRING_SETTINGS = [path for path, sub in schema_leaves(SCHEMA, [])
                   if sub.get("type") == "string" or "string" in (sub.get("type") or [])]

OBJECTS = [[]] + [path for path, sub in schema_leaves(SCHEMA, [])  # the free-text CP2K tree: end to end below
                  if sub.get("type") == "object" and path != ["cp2k", "overrides"]]


def hostile_values(marker: str) -> list[str]:
    return [
        f"cp2k.psmp; touch {marker};",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"cp2k.psmp && touch {marker}",
        f"cp2k.psmp | tee {marker}",
        f"cp2k.psmp > {marker}",
        f"cp2k.psmp\ntouch {marker}",
        "cp2k.psmp\n",
        "/usr/bin/cp2k.psmp\r",
        "cp2k.psmp\t-i",
        "cp2k.psmp'",
        'cp2k.psmp"',
        "cp2k.psmp $HOME",
        "pbe; touch X",
        "Ca$(touch X)",
        "mock\n",
    ]


def test_every_string_setting_has_an_enum_or_a_pattern():
    assert sorted(map(config_key_path, STRING_SETTINGS)) == [
        "cp2k.command", "cp2k.mpi_launcher", "engine", "external[0].format", "external[0].level",
        "external[0].name", "external[0].run_dir", "external[0].trajectory", "external[0].type_map",
        "harmonic.displacements", "level",
        "md.trajectory_format", "scf.on_failure", "systems[0].route", "systems[0].shell_metal"]
    for path, sub in schema_leaves(SCHEMA, []):
        if path in STRING_SETTINGS:
            assert "enum" in sub or "pattern" in sub, config_key_path(path)
    assert SCHEMA["properties"]["cp2k"]["properties"]["command"]["pattern"] == r"^[A-Za-z0-9_./+][A-Za-z0-9_./+-]*$(?!\n)"


def test_every_object_refuses_unknown_keys_or_restricts_them():
    """No object accepts arbitrary keys, except the free-text CP2K keyword tree."""
    for path, sub in schema_leaves(SCHEMA, []):
        if sub.get("type") != "object" or path == ["cp2k", "overrides"]:
            continue
        assert sub.get("additionalProperties") is False or "propertyNames" in sub, config_key_path(path)
    assert SCHEMA.get("additionalProperties") is False


@pytest.mark.parametrize("validator", sorted(VALIDATORS))
@pytest.mark.parametrize("path", STRING_SETTINGS, ids=[config_key_path(p) for p in STRING_SETTINGS])
def test_hostile_string_settings_are_refused(tmp_path, monkeypatch, path, validator):
    monkeypatch.chdir(tmp_path)
    marker = str(tmp_path / "X")
    for value in hostile_values(marker):
        message = VALIDATORS[validator](mutated(setitem(path, value)))
        assert message is not None, (config_key_path(path), value)
        assert names_key(message, path), (value, message)
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize("path", OBJECTS, ids=[config_key_path(p) or "top" for p in OBJECTS])
def test_hostile_keys_are_refused_at_every_level(path):
    base = mutated(lambda c: None)
    walk(base, path)
    for key in ("x; touch X;", "$(touch X)", "`touch X`", "a b", "Cs\n"):
        cfg = copy.deepcopy(base)
        target = cfg
        for part in path:
            target = target[part]
        target[key] = [0.1, 0.2, 0.3]
        for name, refusal in VALIDATORS.items():
            message = refusal(cfg)
            assert message is not None, (path, key, name)
            assert names_key(message, [*path, key]), (name, message)


def hostile_overrides(tmp: Path) -> tuple[dict, list[Path]]:
    """A CP2K keyword tree with shell metacharacters in keys and values; each would create
    its own marker file (absolute, and X in the working directory) if a shell ever ran it."""
    markers = [tmp / f"pwned{i}" for i in range(7)]
    overrides = {
        f"force_eval; touch {markers[0]};": {"dft": {"scf": {"max_scf": 5}}},
        "global": {
            "print_level": f"$(touch {markers[1]})",
            f"`touch {markers[2]}`": "low",
            "project_name": f"qd' ; touch {markers[3]} ; '",
            "extra": f'qd" ; touch {markers[4]} ; "',
            "multi": f"line\ntouch {markers[5]}\n",
            "relative": "$(touch X) && touch X | tee X > X",
        },
        "motion": {"md": {"comment": f"a\\\"; touch {markers[6]}; #"}},
    }
    return overrides, markers + [tmp / "X"]


def unquoted_words(command: str) -> list[str]:
    """The words a POSIX shell would see outside quotes that start a command or substitution."""
    words = shlex.split(command, posix=True)
    return [w for w in words if w == "touch" or w.startswith(("$(", "`")) or w in (";", "&&", "|")]


@pytest.mark.workflow
@pytest.mark.parametrize("engine", ["mock", "cp2k"])
def test_hostile_overrides_are_never_executed_by_a_dry_run(tmp_path, engine):
    overrides, markers = hostile_overrides(tmp_path)
    cfg = {"systems": [{"size": [1, 1, 1]}], "level": "xtb", "engine": engine,
           "md": {"steps": 10, "equilibration_fs": 2.0, "replicas": 1}, "cp2k": {"overrides": overrides}}
    (tmp_path / "hostile.yaml").write_text(yaml.safe_dump(cfg))
    result = run_dry(tmp_path, "hostile.yaml", "-p")
    assert [m for m in markers if m.exists()] == []
    assert result.returncode == 0 or names_key(key_lines(output(result)), ["cp2k", "overrides"]), output(result)[-3000:]
    commands = [line.split("Shell command:", 1)[1] for line in result.stdout.splitlines() if "Shell command:" in line]
    if result.returncode == 0:
        assert commands, result.stdout[-3000:]
    for command in commands:
        # the overrides (if they are on the command line at all) are one quoted word
        assert unquoted_words(command) == [], command
        for word in shlex.split(command):
            if "pwned1" in word:
                assert f"$(touch {markers[1]})" in word, word
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_hostile_overrides_reach_the_input_writer_as_data(tmp_path):
    """A real (mock-engine) run up to the CP2K input: the keyword tree reaches the generator
    unchanged, which may refuse the unknown keywords; no shell ever runs a part of it."""
    overrides, markers = hostile_overrides(tmp_path)
    cfg = {"systems": [{"size": [1, 1, 1]}], "level": "xtb", "engine": "mock",
           "md": {"steps": 10, "equilibration_fs": 2.0, "replicas": 1}, "cp2k": {"overrides": overrides}}
    (tmp_path / "hostile.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "results/cp2k/cspbbr3_1x1x1/r0/md.inp", "--cores", "1",
           "-s", str(REPO / "Snakefile"), "--configfile", "hostile.yaml"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                            check=False)
    assert [m for m in markers if m.exists()] == [], output(result)[-3000:]
    assert not list(tmp_path.rglob("pwned*")) and not list(tmp_path.rglob("X"))
    # it got as far as running the input writer (success, or the generator's refusal)
    assert result.returncode == 0 or "Error in rule write_cp2k_input" in output(result), output(result)[-3000:]


# --------------------------------------------------------------------------- hypothesis

BASE = {
    "systems": [{"size": [3, 3, 3], "md": {"steps": 300}}, {"size": [4, 4, 5], "shell_layers": 1, "shell_metal": "Sr"}],
    "level": "xtb", "engine": "mock",
    "md": {"steps": 200, "equilibration_fs": 100.0, "replicas": 1},
    "scf": {"smearing_K": 300.0},
    "cp2k": {"overrides": {"force_eval": {"dft": {"mgrid": {"cutoff": 300}}}}},
    "mock": {"region_energies_meV": [2.0, 7.0, 17.0], "modes_per_region": 12, "lambda_ref_meV": 93.8,
             "surface_fraction_ref": 0.8293, "vbm_share": 0.4, "calibrate_realised_variance": True,
             "atom_region_weights": {"Cs": [0.6, 0.35, 0.05]}, "potential_Ha_per_atom": {"Cs": -0.75}},
}
FULL = validate_config(copy.deepcopy(BASE))  # every default filled in: every leaf is present


def present_leaves(schema: dict, cfg: Any, path: list) -> list[tuple[list, dict]]:
    """(path, subschema) of every value present in ``cfg`` that the schema describes."""
    out = []
    if isinstance(cfg, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in cfg.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            out.append(([*path, key], sub))
            out += present_leaves(sub, value, [*path, key])
    elif isinstance(cfg, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(cfg):
            out.append(([*path, i], schema["items"]))
            out += present_leaves(schema["items"], value, [*path, i])
    return out


LEAVES = [(p, s) for p, s in present_leaves(SCHEMA, FULL, []) if p[:2] != ["cp2k", "overrides"] or len(p) == 2]
CLOSED_OBJECTS = [[]] + [p for p, s in LEAVES if s.get("type") == "object"
                         and (s.get("additionalProperties") is False or "pattern" in s.get("propertyNames", {}))]
BOUNDED = [(p, s) for p, s in LEAVES if s.get("type") in ("integer", "number") or s.get("type") == ["number", "null"]
           if any(k in s for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"))]
PROBES = ["text", 1.5, 7, True, None, [1, 2, 3], {"a": 1}]


def _json_type_ok(value: Any, types: Any) -> bool:
    from jsonschema import Draft202012Validator

    types = [types] if isinstance(types, str) else list(types)
    return any(Draft202012Validator.TYPE_CHECKER.is_type(value, t) for t in types)


def _set(cfg: dict, path: list, value: Any) -> None:
    node = cfg
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@st.composite
def wrong_type(draw):
    path, sub = draw(st.sampled_from([(p, s) for p, s in LEAVES if "type" in s]))
    value = draw(st.sampled_from([v for v in PROBES if not _json_type_ok(v, sub["type"])]))
    return path, value, path


@st.composite
def unknown_key(draw):
    path = draw(st.sampled_from(CLOSED_OBJECTS))
    node = FULL
    for part in path:
        node = node[part]
    key = draw(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda k: k not in node))
    value = draw(st.sampled_from([1, 2.5, "x", True, None, [], {}]))
    return [*path, key], value, [*path, key]


@st.composite
def out_of_range(draw):
    path, sub = draw(st.sampled_from(BOUNDED))
    integer = sub.get("type") == "integer"
    options = []
    if "minimum" in sub:
        options.append(("below", sub["minimum"], False))
    if "exclusiveMinimum" in sub:
        options.append(("below", sub["exclusiveMinimum"], True))
    if "maximum" in sub:
        options.append(("above", sub["maximum"], False))
    side, bound, inclusive_fail = draw(st.sampled_from(options))
    if integer:
        delta = draw(st.integers(min_value=0 if inclusive_fail else 1, max_value=10**6))
        value = int(bound) - delta if side == "below" else int(bound) + delta
    else:
        delta = draw(st.floats(min_value=0.0 if inclusive_fail else 1e-6, max_value=1e6, allow_nan=False))
        value = float(bound) - delta if side == "below" else float(bound) + delta
        if value == bound and not inclusive_fail:
            value = bound - 1.0 if side == "below" else bound + 1.0
    return path, value, path


@st.composite
def wrong_length(draw):
    path, sub = draw(st.sampled_from([(p, s) for p, s in LEAVES if s.get("type") == "array"
                                      and ("minItems" in s or "maxItems" in s)]))
    lengths = [n for n in range(6) if n < sub.get("minItems", 0) or n > sub.get("maxItems", 99)]
    n = draw(st.sampled_from(lengths))
    return path, [1] * n, path


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(wrong_type(), unknown_key(), out_of_range(), wrong_length()), st.sampled_from(sorted(VALIDATORS)))
def test_random_invalid_configs_are_refused_naming_the_mutated_key(mutation, validator):
    path, value, named = mutation
    cfg = copy.deepcopy(FULL)
    _set(cfg, path, value)
    message = VALIDATORS[validator](cfg)
    assert message is not None, (config_key_path(path), value)
    assert names_key(message, named), (config_key_path(named), value, message)


@st.composite
def valid_config(draw):
    level = draw(st.sampled_from(["xtb", "pbe"]))
    sizes = draw(st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8)),
                          min_size=1, max_size=4, unique=True))
    systems = []
    for size in sizes:
        entry: dict = {"size": list(size)}
        k = draw(st.integers(0, (min(size) - 1) // 2))
        if k:
            entry["shell_layers"] = k
            entry["shell_metal"] = draw(st.sampled_from(["Ca", "Sr"]))
        systems.append(entry)
    steps = draw(st.integers(1, 100000))
    timestep = draw(st.floats(0.1, 10.0))
    cfg = {
        "systems": systems, "level": level, "engine": draw(st.sampled_from(["mock", "cp2k"])),
        "md": {"steps": steps, "timestep_fs": timestep,
               "equilibration_fs": draw(st.floats(0.0, steps * timestep * 0.99)),
               "replicas": draw(st.integers(1, 100)), "seed": draw(st.integers(0, 2**31 - 1)),
               "temperature_K": draw(st.floats(1.0, 1000.0)),
               "trajectory_every_steps": draw(st.integers(1, steps))},
        "scf": {"smearing_K": None if level == "pbe" else draw(st.none() | st.floats(1.0, 10000.0)),
                "on_failure": draw(st.sampled_from(["fail", "drop_step", "keep_flagged"]))},
        "cp2k": {"command": draw(st.from_regex(r"[A-Za-z0-9_./+][A-Za-z0-9_./+-]{0,30}", fullmatch=True))},
        "analysis": {"region_edges_meV": sorted(draw(st.lists(st.floats(0.0, 1000.0), min_size=2, max_size=6,
                                                              unique=True)))},
    }
    return cfg, [tuple(s) for s in sizes]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_config())
def test_random_valid_configs_are_accepted(case):
    cfg, sizes = case
    for name, refusal in VALIDATORS.items():
        assert refusal(cfg) is None, (name, refusal(cfg))
    systems = campaign_from_config(validate_config(copy.deepcopy(cfg)))
    assert [s.size for s in systems.values()] == sizes
