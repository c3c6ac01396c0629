"""Every ``--settings-json`` record a rule passes is one its sub-command accepts, keyed by config key.

Dry runs (``snakemake -n -p``, mock engine) of the default config and of one with both routes, the
anharmonicity check and external runs print every job's command; each is parsed by
``qdphonon.cli.apply_settings`` as ``qdphonon`` parses it, so a rule that passes a key its command
does not take, or an option's name where the config key belongs, fails here.
"""

from __future__ import annotations

import re
import shlex

import pytest
from workflow_helpers import REPO, check_ok, default_config, snakemake, write_config

from qdphonon.cli import apply_settings, build_parser


def variant_config() -> dict:
    """The default config with one system by both routes at two MD temperatures, one by the harmonic
    route, campaign SCF settings and two external runs (every key an external run can set)."""
    cfg = default_config()
    cfg["level"] = "xtb"
    cfg["systems"] = [{"size": [2, 2, 2], "route": "both", "md": {"steps": 1000, "replicas": 2,
                                                                  "temperatures_K": [10.0, 100.0]}},
                      {"size": [1, 1, 1], "route": "harmonic"}]  # fmt: skip
    cfg["scf"] = {"eps_scf": 1e-6, "smearing_K": 300.0}
    cfg["external"] = [
        {"name": "theirs", "trajectory": "traj.xyz", "format": "extxyz", "type_map": "1=Cs", "cell_A": [20, 20, 20],
         "level": "xtb", "stride_steps": 2, "first_step": 0, "timestep_fs": 1.0, "md_temperature_K": 300.0,
         "equilibration_fs": 100.0},
        {"name": "cp2k_run", "run_dir": "some/run", "level": "pbe"},
    ]  # fmt: skip
    return cfg


def printed_commands(text: str) -> list[list[str]]:
    """The arguments of every ``python -m qdphonon ...`` a dry run printed (without the log redirection)."""
    out = []
    for line in re.findall(r"python -m qdphonon (.*)", text):
        words = shlex.split(line)
        out.append(words[: next((i for i, w in enumerate(words) if w in (">", ">>")), len(words))])
    return out


def commands_given_settings_in_the_rules() -> set[str]:
    """The sub-commands a rule calls with ``--settings-json``."""
    out = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for rule in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            command = re.search(r"python -m qdphonon ([a-z0-9-]+)", rule)
            if command and "--settings-json" in rule:
                out.add(command.group(1))
    return out


def test_every_rule_passes_settings_its_command_accepts(tmp_path, capsys):
    seen: set[str] = set()
    for name, config in (("default", default_config()), ("variant", variant_config())):
        write_config(tmp_path / name, config)
        res = check_ok(snakemake(tmp_path / name, "-n", "-p"), f"dry run ({name} config)")
        text = res.stdout + res.stderr
        for argv in printed_commands(text):
            if "--settings-json" not in argv:
                continue
            try:
                apply_settings(build_parser(), argv)
            except SystemExit:
                pytest.fail(f"{name} config: qdphonon {shlex.join(argv)}\n{capsys.readouterr().err}", pytrace=False)
            seen.add(argv[0])
    rules = commands_given_settings_in_the_rules()
    assert len(rules) >= 12 and rules <= seen, f"never dry-run: {sorted(rules - seen)}"
