"""One option name per config key, across every sub-command, checked against the schema.

An option mirrors a config key when it is declared with ``qdphonon.cli.settings.opt``, which
records the key on the option; its help names the same key (``config md.steps``, written by
``qdphonon.settings.describe``). Its name is the key's own name: the leaf (``--timestep-fs``) or
the section and the leaf (``--md-equilibration-fs``), ``_`` spelt ``-``, units kept
(``--smearing-K``); an object-valued key may add ``-json``. Every key has one name in all
commands (one exception, ``RENAMED``); no visible option spells a schema key without saying it
mirrors it. ``--settings-json`` takes such an option under its config key only (its name is
refused, naming the key), any other option under its name; each command's help example is
accepted. tests/test_settings_records.py dry-runs the rules' records through the same parser.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qdphonon import __version__, settings
from qdphonon.cli import apply_settings, build_parser
from qdphonon.cli.settings import config_key, settings_keys

REPO = Path(__file__).resolve().parents[1]
CONFIG_RE = re.compile(r"\(config ([\w.\[\]]+)[;)]")
RENAMED = {("anharmonicity", "--reference-temperature-K")}
"""Options that mirror a key under another name: the anharmonicity check's reference T_md is md.temperature_K."""


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)  # noqa: SLF001


def visible_options(p: argparse.ArgumentParser):
    for a in p._actions:  # noqa: SLF001
        if a.option_strings and a.help is not argparse.SUPPRESS and a.dest != "help":
            yield a


def allowed_names(key: str) -> set[str]:
    parts = key.replace("[]", "").split(".")
    leaf = parts[-1]
    names = {leaf, "_".join(parts[-2:])}
    if settings.node(key).get("type") == "object":
        names |= {f"{n}_json" for n in names}
    return {"--" + n.replace("_", "-") for n in names}


def test_every_mirrored_option_is_named_after_its_key():
    seen: dict[str, set[str]] = {}
    for command, p in subparsers().items():
        for a in visible_options(p):
            m = CONFIG_RE.search(a.help or "")
            key = config_key(a)
            assert (m and m.group(1)) == key, f"{command} {a.option_strings}: declared for {key}, its help names {m}"
            if key is None:
                continue
            settings.node(key)  # KeyError when the key is not in the schema
            (flag,) = [o for o in a.option_strings if o.startswith("--")]
            if (command, flag) in RENAMED:
                continue
            assert flag in allowed_names(key), f"{command} {flag}: mirrors {key}; expected one of {allowed_names(key)}"
            seen.setdefault(key, set()).add(flag)
    several = {k: v for k, v in seen.items() if len(v) > 1}
    assert not several, f"keys with more than one option name: {several}"
    assert {"md.equilibration_fs", "relax.max_iter", "scf.on_failure", "cp2k.mpi_launcher"} <= set(seen)


def test_no_option_spells_a_key_without_mirroring_it():
    """A visible option named like a schema key (leaf or section_leaf) must say which key it mirrors."""
    spellings = {}
    for key in settings.leaf_keys():
        for name in allowed_names(key):
            spellings.setdefault(name, key)
    for command, p in subparsers().items():
        for a in visible_options(p):
            for flag in a.option_strings:
                if flag in spellings and flag not in ("--seed",):  # cp2k-input --seed: the replica's derived seed
                    assert CONFIG_RE.search(a.help or ""), f"{command} {flag} looks like {spellings[flag]} but says nothing"


def test_structure_means_an_xyz_file_everywhere():
    for command, p in subparsers().items():
        for a in visible_options(p):
            if "--structure" in a.option_strings:
                assert "json" not in (a.help or "").lower(), f"{command} --structure: {a.help}"


def test_campaign_commands_share_configfile_and_time_options_say_their_unit():
    for command in ("status", "check", "cost"):
        flags = {f for a in visible_options(subparsers()[command]) for f in a.option_strings}
        assert "--configfile" in flags and "--config" not in flags
    for command, p in subparsers().items():
        for a in visible_options(p):
            flag = a.option_strings[-1]
            if re.search(r"time|timecon|equilibration", flag) and a.type in (int, float):
                assert re.search(r"-(fs|min|K)$", flag), f"{command} {flag}: a time without its unit"
    units = {a.option_strings[-1] for p in subparsers().values() for a in visible_options(p)
             if re.search(r"wall|runtime", a.option_strings[-1])}  # fmt: skip
    assert units and all(f.endswith("-min") for f in units), units


def test_every_settings_json_help_example_is_accepted():
    for command, p in subparsers().items():
        (action,) = [a for a in p._actions if "--settings-json" in a.option_strings]  # noqa: SLF001
        m = re.search(r"e\.g\. '(\{.*?\})'", action.help)
        assert m, action.help
        example = json.loads(m.group(1).replace("%%", "%"))
        required = [a for a in p._actions if a.required and a.option_strings]  # noqa: SLF001
        required += [g._group_actions[0] for g in p._mutually_exclusive_groups if g.required]  # noqa: SLF001
        args = [command, "--settings-json", json.dumps(example)]
        for a in required:
            filler = list(a.choices)[0] if a.choices else "1" if a.type in (int, float) else "x"
            args += [a.option_strings[0]] + ([filler] * a.nargs if isinstance(a.nargs, int) else [filler])
        ns = apply_settings(build_parser(), args)
        for key, value in example.items():
            assert getattr(ns, settings_keys(p)[key].dest) == value


RELAX = ["relax", "--structure", "s.xyz", "--workdir", "w", "--out", "o.xyz"]


def test_a_record_keyed_by_config_key_sets_the_options():
    record = {"relax.max_iter": "7", "scf.eps_scf": 1e-7, "cp2k.overrides": {"FORCE_EVAL": {}}, "engine": "mock",
              "cp2k.mpi_launcher": "srun", "tasks": 4}  # fmt: skip
    ns = apply_settings(build_parser(), [*RELAX, "--settings-json", json.dumps(record)])
    assert (ns.relax_max_iter, ns.eps_scf, ns.overrides_json, ns.engine, ns.mpi_launcher, ns.tasks) == (
        7, 1e-7, {"FORCE_EVAL": {}}, "mock", "srun", 4)
    ns = apply_settings(build_parser(), [*RELAX, "--relax-max-iter", "9", "--settings-json", json.dumps(record)])
    assert ns.relax_max_iter == 9  # a flag on the command line wins
    ns = apply_settings(build_parser(), ["build", "--out", "o.xyz", "--settings-json", json.dumps(
        {"systems[].size": [2, 3, 4], "systems[].shell_metal": "Sr", "structure.lattice_A": 6.0})])  # fmt: skip
    assert (ns.size, ns.shell_metal, ns.lattice_A) == ([2, 3, 4], "Sr", 6.0)


def test_records_given_twice_merge_and_a_key_in_both_is_refused(capsys):
    """The rules pass what defines a result as a param and how to launch CP2K as a second record."""
    ns = apply_settings(build_parser(), [*RELAX, "--settings-json", json.dumps({"relax.max_iter": 7}),
                                         "--settings-json", json.dumps({"cp2k.mpi_launcher": "srun"})])
    assert (ns.relax_max_iter, ns.mpi_launcher) == (7, "srun")
    with pytest.raises(SystemExit):
        apply_settings(build_parser(), [*RELAX, "--settings-json", json.dumps({"relax.max_iter": 7}),
                                        "--settings-json", json.dumps({"relax.max_iter": 8})])
    assert "relax: --settings-json: relax.max_iter given in two records" in capsys.readouterr().err


@pytest.mark.parametrize("record, said", [
    ({"relax_max_iter": 7}, ["relax: --settings-json:", "'relax_max_iter'", "'relax.max_iter'"]),
    ({"overrides_json": {}, "eps_scf": 1e-6}, ["'overrides_json'", "'cp2k.overrides'", "'eps_scf'", "'scf.eps_scf'"]),
    ({"mpi_launcher": "srun"}, ["'mpi_launcher'", "use 'cp2k.mpi_launcher'"]),
])  # fmt: skip
def test_an_option_name_where_the_config_key_belongs_is_refused_naming_the_key(record, said, capsys):
    with pytest.raises(SystemExit) as exc:
        apply_settings(build_parser(), [*RELAX, "--settings-json", json.dumps(record)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and all(s in err for s in said), err


@pytest.mark.parametrize("record, said", [
    ({"md.steps": 10}, "unknown setting(s) md.steps"),
    ({"relax.maxiter": 10}, "unknown setting(s) relax.maxiter"),
    ({"engine": "nwchem"}, "engine='nwchem' is not one of ['mock', 'cp2k']"),
    ({"scf.max_scf": "many"}, "invalid literal"),
])  # fmt: skip
def test_unknown_keys_and_bad_values_are_refused(record, said, capsys):
    with pytest.raises((SystemExit, ValueError)) as exc:
        apply_settings(build_parser(), [*RELAX, "--settings-json", json.dumps(record)])
    assert said in capsys.readouterr().err + str(exc.value)


def test_options_that_mirror_no_setting_go_by_their_name():
    ns = apply_settings(build_parser(), ["harmonic-run", "--structure", "s.xyz", "--workdir", "w", "--batch", "0",
                                         "--done", "d.json", "--settings-json", json.dumps({"per_job": 3, "threads": 2})])
    assert (ns.per_job, ns.threads) == (3, 2)
    ns = apply_settings(build_parser(), ["cp2k-input", "--structure", "s.xyz", "--out", "md.inp", "--settings-json",
                                         json.dumps({"seed": 5, "md.steps": 20, "md.temperature_K": 300.0})])
    assert (ns.seed, ns.steps, ns.md_temperature_K) == (5, 20, 300.0)


def test_every_option_has_one_settings_key():
    """Config keys and names of options that mirror none never collide within a command."""
    for command, p in subparsers().items():
        keys = settings_keys(p)
        assert len(keys) == len(list(visible_options(p))) - 1, command  # all but --settings-json


def test_version():
    res = subprocess.run([sys.executable, "-m", "qdphonon", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == f"qdphonon {__version__}"


@pytest.mark.parametrize("old, new", [("--discard-fs", "md_equilibration_fs"), ("--regions", "region_edges_meV")])
def test_old_analyze_names_still_work_hidden(old, new):
    ns = apply_settings(build_parser(), ["analyze", "--band-edges", "a.csv", "--outdir", "o", old, "5"])
    assert getattr(ns, new) in (5.0, [5.0])
    assert old not in subparsers()["analyze"].format_help()
