"""Campaign config: schema defaults, refusal of bad configs before any job, names, cost model."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qdphonon.config import (
    ConfigError,
    aimd_cost_estimate,
    campaign_from_config,
    cuboid_atom_count,
    replica_seed,
    system_name,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())


def validated(cfg: dict) -> dict:
    from snakemake.utils import validate

    cfg = copy.deepcopy(cfg)
    validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
    return cfg


def dry_run(tmp_path: Path, cfg: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(path)],
        capture_output=True, text=True, timeout=300,
    )


def test_default_campaign_is_the_reference_series():
    systems = campaign_from_config(validated(DEFAULT))
    assert list(systems) == [
        "cspbbr3_3x3x3", "cspbbr3_4x4x4", "cspbbr3_5x5x5", "cspbbr3_6x6x6", "cspbbr3_7x7x7", "cspbbr3_6x6x6_ca1",
    ]
    assert [s.n_atoms for s in systems.values()] == [189, 416, 775, 1296, 2009, 1296]


def test_schema_fills_every_default():
    cfg = validated({"systems": [{"size": [2, 2, 2]}]})
    assert cfg["engine"] == "mock" and cfg["level"] == "pbe"
    assert cfg["md"]["temperature_K"] == 10.0
    assert cfg["analysis"]["region_edges_meV"] == [0.0, 4.5, 12.0, 30.0]
    assert cfg["systems"][0]["shell_layers"] == 0
    assert cfg["scf"]["smearing_K"] is None


def test_every_schema_key_has_description_and_default():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            if path == "" and key == "systems" or path.startswith("systems") and key == "size":
                pass
            elif not path.startswith(("systems.md", "mock.")):
                assert "default" in sub, f"{path}{key} has no default"
            if sub.get("type") == "object":
                walk(sub, f"{path}{key}.")
            if sub.get("type") == "array" and isinstance(sub.get("items"), dict):
                walk(sub["items"], f"{path}{key}.")

    walk(schema, "")


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c.update(colour="blue"), "colour"),
        (lambda c: c["systems"][0].update(size=[3, -1, 3]), "size"),
        (lambda c: c.update(level="b3lyp"), "level"),
        (lambda c: c["md"].update(timestep_fs="fast"), "timestep_fs"),
        (lambda c: c["systems"][5].update(shell_layers=3), "systems[5].shell_layers"),
        (lambda c: c["analysis"].update(region_edges_meV=[0, 12, 4.5]), "analysis.region_edges_meV"),
        (lambda c: c["md"].update(equilibration_fs=1e9), "equilibration_fs"),
        (lambda c: c.update(mock={"lamda_ref_meV": 90}), "lamda_ref_meV"),
    ],
)
def test_invalid_config_refused_before_any_job(tmp_path, mutate, key):
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    result = dry_run(tmp_path, cfg)
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_default_config_dry_run_lists_whole_pipeline(tmp_path):
    result = dry_run(tmp_path, DEFAULT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for rule, count in [("build_structure", 6), ("relax_structure", 6), ("write_cp2k_input", 12),
                        ("run_aimd", 12), ("parse_band_edges", 12), ("analyze_system", 6)]:
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), (rule, out)


def test_names_are_shell_safe_and_distinct():
    assert system_name((6, 6, 6)) == "cspbbr3_6x6x6"
    assert system_name((6, 6, 6), 1, "Ca") == "cspbbr3_6x6x6_ca1"
    assert system_name([2, 3, 4]) == "cspbbr3_2x3x4"
    with pytest.raises(ConfigError, match="duplicate"):
        campaign_from_config(validated({"systems": [{"size": [2, 2, 2]}, {"size": [2, 2, 2]}]}))


def test_per_system_md_override_only_touches_that_system():
    cfg = copy.deepcopy(DEFAULT)
    cfg["systems"][0]["md"] = {"steps": 999}
    systems = campaign_from_config(validated(cfg))
    assert systems["cspbbr3_3x3x3"].md["steps"] == 999
    assert systems["cspbbr3_4x4x4"].md["steps"] == DEFAULT["md"]["steps"]


def test_replica_seeds_are_deterministic_and_distinct():
    seeds = {replica_seed(2022, "cspbbr3_2x2x2", f"r{i}") for i in range(50)}
    assert len(seeds) == 50
    assert replica_seed(2022, "a", "r0") == replica_seed(2022, "a", "r0")


def test_atom_count_formula_matches_cube_series():
    assert [cuboid_atom_count((n, n, n)) for n in range(1, 8)] == [11, 64, 189, 416, 775, 1296, 2009]


def test_cost_model_reproduces_measured_timings():
    """DESIGN §3, 2 cores: xTB 1.2-1.8 s/step at 64 atoms, ~25 s at 189; PBE ~50 s at 64."""
    assert 1.2 <= aimd_cost_estimate(64, "xtb", 1)["seconds_per_step"] <= 1.8
    assert 17 <= aimd_cost_estimate(189, "xtb", 1)["seconds_per_step"] <= 33
    assert 35 <= aimd_cost_estimate(64, "pbe", 1)["seconds_per_step"] <= 65


def test_mock_schema_lists_exactly_the_engines_parameters():
    from qdphonon.engines import MOCK_DEFAULTS

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert set(schema["properties"]["mock"]["properties"]) == set(MOCK_DEFAULTS)
    validated({"systems": [{"size": [2, 2, 2]}], "mock": dict(MOCK_DEFAULTS)})
