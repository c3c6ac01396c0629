"""A new user's mistakes, each refused with one line naming the path or key (exit 1, nothing written).

Every command runs as a user runs it: ``python -m qdphonon`` in a scratch directory that is not the
repository (so no ``config/config.yaml`` is at hand unless the test puts one there).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONFIG = {"systems": [{"size": [1, 1, 1]}], "engine": "mock", "md": {"replicas": 2, "steps": 100,
                                                                        "equilibration_fs": 10}}  # fmt: skip


def qdphonon(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qdphonon", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def one_line_error(res: subprocess.CompletedProcess, command: str, *words: str) -> str:
    """The single stderr line of a refused command, checked for exit 1, no stdout and ``words``."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == "" and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"qdphonon {command}: error:"), res.stderr
    assert all(w in lines[0] for w in words), (words, lines[0])
    return lines[0]


@pytest.mark.parametrize("content, key", [
    ("{}", "lambda_meV missing"),
    ("[]", "not an object"),
    ('{"system": "x", "lambda_meV": "big", "fwhm_meV": 1, "report_temperature_K": 300}', "lambda_meV 'big'"),
    ('{"name": "some other tool", "version": 3}', "lambda_meV missing"),
])  # fmt: skip
def test_summarize_refuses_an_empty_or_alien_linewidth_json(tmp_path, content, key):
    alien = tmp_path / "sys" / "linewidth.json"
    alien.parent.mkdir()
    alien.write_text(content)
    out = tmp_path / "summary.csv"
    res = qdphonon("summarize", "--linewidths", str(alien), "--out", str(out), cwd=tmp_path)
    one_line_error(res, "summarize", str(alien), key)
    assert not out.exists()


@pytest.mark.parametrize("command", ["status", "check"])
def test_a_missing_results_directory_is_named(tmp_path, command):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    res = qdphonon(command, "--results", "/no/such/dir", "--configfile", str(cfg), cwd=tmp_path)
    one_line_error(res, command, "results directory not found", "/no/such/dir")


@pytest.mark.parametrize("command", ["status", "check", "cost"])
def test_outside_the_repository_no_config_the_user_did_not_name(tmp_path, command):
    (tmp_path / "results").mkdir()
    res = qdphonon(command, cwd=tmp_path)
    line = one_line_error(res, command, "no config", "--configfile", "config/config.yaml")
    assert str(tmp_path) in line


@pytest.mark.parametrize("command", ["status", "check", "cost"])
def test_configfile_is_the_option_of_every_campaign_command(tmp_path, command):
    """The same ``--configfile`` in status, check and cost; ``--config`` still works, hidden."""
    (tmp_path / "results").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    assert "--configfile" in qdphonon(command, "--help", cwd=tmp_path).stdout
    assert "--config " not in qdphonon(command, "--help", cwd=tmp_path).stdout
    outs = []
    for flag in ("--configfile", "--config"):
        res = qdphonon(command, flag, str(cfg), *(["--json"] if command != "cost" else []), cwd=tmp_path)
        assert res.returncode in (0, 3), res.stderr
        outs.append(res.stdout)
    assert outs[0] == outs[1] and outs[0]


def test_a_named_config_that_is_missing_is_named(tmp_path):
    (tmp_path / "results").mkdir()
    res = qdphonon("status", "--configfile", "nope.yaml", cwd=tmp_path)
    one_line_error(res, "status", "nope.yaml", "not found")


def test_the_repository_config_is_merged_and_said_so(tmp_path):
    """In a campaign directory (config/config.yaml present) a named file is merged over it, as
    Snakemake does, and stderr says which files were read."""
    (tmp_path / "results").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "md": {**CONFIG["md"], "replicas": 3}}))
    extra = tmp_path / "more.yaml"
    extra.write_text(yaml.safe_dump({"md": {"replicas": 2}}))
    res = qdphonon("status", "--configfile", str(extra), "--json", cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert [r["replica"] for r in json.loads(res.stdout)] == ["r0", "r1"]
    assert "config/config.yaml + " in res.stderr and str(extra) in res.stderr
