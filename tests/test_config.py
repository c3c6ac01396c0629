"""Campaign config: schema defaults, the systems a config implies, names, seeds, atom counts.

Every expectation here is written out by hand (atom counts from the closed-form composition,
seeds computed once from their documented definition, rule counts of the default campaign),
never recomputed by the function under test. Invalid configs: tests/test_config_invalid.py.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from qdphonon.config import (
    ConfigError,
    campaign_from_config,
    cuboid_atom_count,
    load_config_file,
    replica_seed,
    system_name,
    validate_config,
)
from workflow_helpers import planned_jobs, snakemake, write_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/qdphonon/data/config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())


def validated(cfg: dict) -> dict:
    from snakemake.utils import validate

    cfg = copy.deepcopy(cfg)
    validate(cfg, str(SCHEMA))
    return cfg


def test_default_campaign_is_the_reference_series():
    systems = campaign_from_config(validated(DEFAULT))
    assert list(systems) == [
        "cspbbr3_3x3x3", "cspbbr3_4x4x4", "cspbbr3_5x5x5", "cspbbr3_6x6x6", "cspbbr3_7x7x7", "cspbbr3_6x6x6_ca1",
    ]
    assert [s.n_atoms for s in systems.values()] == [189, 416, 775, 1296, 2009, 1296]
    assert [len(s.replicas) for s in systems.values()] == [4] * 6
    assert systems["cspbbr3_6x6x6_ca1"].shell_layers == 1 and systems["cspbbr3_6x6x6_ca1"].shell_metal == "Ca"


def test_schema_fills_every_default():
    cfg = validated({"systems": [{"size": [2, 2, 2]}]})
    assert cfg["engine"] == "mock" and cfg["level"] == "pbe"
    assert cfg["md"] == {"temperature_K": 10.0, "timestep_fs": 2.0, "steps": 4000, "equilibration_fs": 1000.0,
                         "replicas": 4, "seed": 2022, "thermostat_timecon_fs": 100.0, "trajectory_every_steps": 5,
                         "trajectory_format": "xyz", "localisation_every_steps": None, "temperatures_K": None}
    assert cfg["analysis"] == {"report_temperature_K": 300.0, "region_edges_meV": [0.0, 4.5, 12.0, 30.0], "blocks": 4,
                               "band_cutoff_meV": None, "temperatures_K": [4, 10, 25, 50, 77, 100, 150, 200, 250, 300, 350, 400]}
    assert cfg["systems"][0] == {"size": [2, 2, 2], "shell_layers": 0, "shell_metal": "Ca", "route": "md", "md": {}}
    assert cfg["harmonic"] == {"step_A": 0.01, "displacements": "symmetry", "degeneracy_tol_meV": 5.0, "job_minutes": 60}
    assert cfg["scf"] == {"eps_scf": None, "max_scf": 200, "smearing_K": None, "on_failure": "drop_step"}
    assert cfg["cp2k"] == {"command": "cp2k.psmp", "mpi_launcher": "auto", "walltime_margin_min": 10, "overrides": {}}
    assert cfg["structure"] == {"lattice_A": 5.87, "vacuum_A": 5.0}
    assert cfg["relax"] == {"max_iter": 200} and cfg["mock"] == {}


def test_own_validator_fills_the_same_defaults_as_snakemakes():
    """qdphonon.config.validate_config (short messages) and snakemake.utils.validate (what the
    Snakefile calls) give the same validated config."""
    for cfg in (DEFAULT, {"systems": [{"size": [2, 2, 2]}]},
                yaml.safe_load((REPO / "config/xtb-smoke.yaml").read_text())):
        assert validate_config(copy.deepcopy(cfg)) == validated(cfg)


def test_every_schema_key_has_description_and_default():
    schema = yaml.safe_load(SCHEMA.read_text())

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            if path == "" and key == "systems" or path.startswith("systems") and key == "size":
                pass
            elif path == "external." and key in ("name", "level", "run_dir", "trajectory"):  # required
                pass
            elif not path.startswith(("systems.md", "mock.")):
                assert "default" in sub, f"{path}{key} has no default"
            if sub.get("type") == "object":
                walk(sub, f"{path}{key}.")
            if sub.get("type") == "array" and isinstance(sub.get("items"), dict):
                walk(sub["items"], f"{path}{key}.")

    walk(schema, "")


def test_default_config_dry_run_lists_whole_pipeline(tmp_path):
    """6 systems x 4 replicas, plus 2 x 4 for the 3x3x3 dot's anharmonicity check at 100 and 300 K:
    hand-counted jobs per rule (planned_jobs checks the exit status)."""
    write_config(tmp_path, DEFAULT)
    jobs = planned_jobs(snakemake(tmp_path, "-n", timeout_s=300))
    assert jobs == {"build_structure": 6, "relax_structure": 6, "write_cp2k_input": 32, "run_aimd": 32,
                    "parse_band_edges": 32, "analyze_system": 6, "anharmonicity_system": 1, "plot_anharmonicity": 1, "summarize_campaign": 1, "record_campaign_config": 1, "plot_figures": 1, "report_pages": 1,
                    "attribute_system": 6, "plot_claims": 1, "localise_system": 6, "plot_localisation": 1, "all": 1}
    assert not (tmp_path / "results").exists()


def test_names_are_shell_safe_and_distinct():
    assert system_name((6, 6, 6)) == "cspbbr3_6x6x6"
    assert system_name((6, 6, 6), 1, "Ca") == "cspbbr3_6x6x6_ca1"
    assert system_name((6, 6, 6), 2, "Sr") == "cspbbr3_6x6x6_sr2"
    assert system_name([2, 3, 4]) == "cspbbr3_2x3x4"
    assert system_name((5, 5, 5), 0, "Sr") == "cspbbr3_5x5x5"  # no shell, no metal in the name
    for args in [((40, 1, 2), 19, "Sr"), ((1, 1, 1), 0, "Ca"), ((7, 7, 7), 3, "Ca")]:
        assert re.fullmatch(r"cspbbr3_[0-9]+x[0-9]+x[0-9]+(_(ca|sr)[0-9]+)?", system_name(*args)), args
    with pytest.raises(ConfigError, match=r"systems\[1\]: duplicate system cspbbr3_2x2x2"):
        campaign_from_config(validated({"systems": [{"size": [2, 2, 2]}, {"size": [2, 2, 2]}]}))


def test_per_system_md_override_only_touches_that_system():
    cfg = copy.deepcopy(DEFAULT)
    cfg["systems"][0]["md"] = {"steps": 999, "replicas": 3}
    systems = campaign_from_config(validated(cfg))
    assert systems["cspbbr3_3x3x3"].md["steps"] == 999
    assert systems["cspbbr3_3x3x3"].replicas == ["r0", "r1", "r2"]
    assert systems["cspbbr3_3x3x3"].md["timestep_fs"] == 2.0  # not overridden: the campaign's
    for name in ("cspbbr3_4x4x4", "cspbbr3_6x6x6_ca1"):
        assert systems[name].md["steps"] == 2500 and systems[name].replicas == ["r0", "r1", "r2", "r3"]


def test_replica_seeds_are_pinned_and_distinct():
    """Documented definition: the first 4 bytes of sha256(f"{base}:{system}:{replica}"), little
    endian, top bit cleared. The numbers were computed once by hand (hashlib in a shell) from
    that definition: changing the derivation would silently re-run every campaign."""
    assert replica_seed(2022, "cspbbr3_2x2x2", "r0") == 59116226      # sha256 starts c20a8603
    assert replica_seed(2022, "cspbbr3_2x2x2", "r1") == 1382559785    # sha256 starts 29306852
    assert replica_seed(0, "cspbbr3_6x6x6_ca1", "r0") == 1380683971   # sha256 starts c3904bd2
    seeds = {replica_seed(2022, "cspbbr3_2x2x2", f"r{i}") for i in range(50)}
    assert len(seeds) == 50 and all(0 <= s < 2**31 for s in seeds)
    assert replica_seed(2023, "cspbbr3_2x2x2", "r0") != 59116226


def test_atom_count_of_cubes_is_the_hand_written_series():
    assert [cuboid_atom_count((n, n, n)) for n in range(1, 8)] == [11, 64, 189, 416, 775, 1296, 2009]


@pytest.mark.parametrize("n", range(1, 41))
def test_atom_count_of_cubes_follows_the_closed_form_composition(n):
    """Cs_{n^2(n+3)} Pb_{n^3} Br_{3n^2(n+1)}: a neutral dot (Cs+ + 2 Pb2+ = Br-)."""
    cs, pb, br = n * n * (n + 3), n**3, 3 * n * n * (n + 1)
    assert cs + 2 * pb == br
    assert cuboid_atom_count((n, n, n)) == cs + pb + br


def test_atom_count_of_non_cubic_cuboids_by_hand():
    # 2x3x4: Pb 24; Br on corners 3*3*4 + 2*4*4 + 2*3*5 = 36 + 32 + 30 = 98; Cs 98 - 48 = 50 -> 172
    assert cuboid_atom_count((2, 3, 4)) == 172
    assert cuboid_atom_count((4, 3, 2)) == 172
    # 1x1x2: Pb 2; Br 2*1*2 + 1*2*2 + 1*1*3 = 11; Cs 11 - 4 = 7 -> 20
    assert cuboid_atom_count((1, 1, 2)) == 20


def test_load_config_file_reads_the_shipped_configs():
    cfg = load_config_file(REPO / "config/config.yaml")
    assert [s["size"] for s in cfg["systems"]] == [[3, 3, 3], [4, 4, 4], [5, 5, 5], [6, 6, 6], [7, 7, 7], [6, 6, 6]]
    assert load_config_file(REPO / "config/xtb-smoke.yaml")["level"] == "xtb"


def test_load_config_file_reads_json_and_yaml_merges(tmp_path):
    (tmp_path / "c.json").write_text('{\n\t"systems": [{"size": [2, 2, 2]}],\n\t"md": {"steps": 30}\n}\n')
    assert load_config_file(tmp_path / "c.json") == {"systems": [{"size": [2, 2, 2]}], "md": {"steps": 30}}
    (tmp_path / "m.yaml").write_text("md: &md {steps: 10, replicas: 1}\nanalysis:\n  blocks: 3\n"
                                     "systems:\n  - size: [2, 2, 2]\n    md:\n      <<: *md\n      steps: 20\n")
    assert load_config_file(tmp_path / "m.yaml")["systems"][0]["md"] == {"steps": 20, "replicas": 1}


def test_mock_schema_lists_exactly_the_engines_parameters():
    from qdphonon.engines.mock_model import MOCK_DEFAULTS

    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["properties"]["mock"]["properties"]) == set(MOCK_DEFAULTS)
    validated({"systems": [{"size": [2, 2, 2]}], "mock": dict(MOCK_DEFAULTS)})


def test_config_readme_defaults_are_the_schema_defaults():
    """Every default in config/README.md's table is the schema's (one default per setting)."""
    from qdphonon import settings

    rows = re.findall(r"^\| `([A-Za-z0-9_.]+)` \| ([^|]+) \|", (REPO / "config/README.md").read_text(), re.M)
    missing = sorted(set(settings.leaf_keys()) - {key for key, _ in rows})
    assert not missing, f"settings missing from config/README.md: {missing}"
    wrong = []
    for key, shown in rows:
        shown = shown.strip().strip("`")
        if shown in ("(required)", "see below"):
            continue
        value = yaml.safe_load(shown)
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-6 as a string
            except ValueError:
                pass
        if value != settings.default(key):
            wrong.append(f"{key}: README {shown!r}, schema {settings.default(key)!r}")
    assert not wrong, "\n".join(wrong)
