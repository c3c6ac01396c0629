"""A built wheel, installed non-editable into a fresh virtual environment, is a working package.

The wheel is built from a copy of the package's sources (nothing of the repository on the path
afterwards), installed with ``--no-deps`` into a new venv that reuses this environment's
third-party packages through a plain path entry (not a site directory, so the editable install's
``.pth`` hook is not run); then, from a directory outside the repository, ``qdphonon --help``
(whose options take their defaults from the schema), ``qdphonon check`` (validates a config
against the schema) and a Snakemake dry run of the workflow, whose rules import the installed
package, must work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from qdphonon import settings

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(bin directory of a fresh venv holding the wheel, its environment)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    (src / "workflow").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "workflow/qdphonon", src / "workflow/qdphonon",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(root / "dist")], root, env)
    wheel = next((root / "dist").glob("qdphonon-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    site = Path(subprocess.check_output(
        [str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # this environment's dependencies, as a plain path (its .pth files, the editable hook among them, are not run)
    (site / "reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q", "--no-deps",
          "--no-index", str(wheel)], root, env)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return venv / "bin", env


def test_the_installed_package_is_the_wheel_not_the_repository(installed, tmp_path):
    bindir, env = installed
    out = _run([str(bindir / "python"), "-c", "import qdphonon, qdphonon.settings as s;"
                "print(qdphonon.__file__); print(s.SCHEMA_PATH); print(s.default('scf.on_failure'))"],
               tmp_path, env).stdout.split("\n")
    assert str(bindir.parent) in out[0] and str(REPO) not in out[0]
    assert Path(out[1]).is_file() and str(bindir.parent) in out[1]
    assert out[2] == str(settings.default("scf.on_failure"))


def test_the_installed_cli_reads_its_schema_outside_the_repository(installed, tmp_path):
    bindir, env = installed
    assert "cp2k-input" in _run([str(bindir / "qdphonon"), "--help"], tmp_path, env).stdout
    assert "--md-temperature-K" in _run([str(bindir / "qdphonon"), "cp2k-input", "--help"], tmp_path, env).stdout
    config = tmp_path / "campaign.yaml"
    config.write_text("engine: mock\nsystems:\n  - {size: [2, 2, 2]}\n")
    (tmp_path / "results").mkdir()
    proc = subprocess.run([str(bindir / "qdphonon"), "check", "--configfile", str(config), "--results",
                           str(tmp_path / "results")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr  # valid config, nothing computed yet
    assert "Traceback" not in proc.stderr
    config.write_text("engine: mock\nsystems:\n  - {size: [2, 2, 2]}\nmd: {stepz: 3}\n")
    proc = subprocess.run([str(bindir / "qdphonon"), "check", "--configfile", str(config)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "md.stepz" in proc.stderr and "Traceback" not in proc.stderr


def test_the_workflow_runs_on_the_installed_package(installed, tmp_path):
    """The rules and Snakefile without the package's sources beside them: a dry run of the
    quick-start campaign imports only the installed wheel."""
    bindir, env = installed
    for name in ("Snakefile", "config", "workflow/rules", "workflow/report", "envs"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    proc = _run([str(bindir / "python"), "-m", "snakemake", "-n", "--cores", "1", "--quiet", "rules"], tmp_path, env)
    planned = proc.stdout + proc.stderr
    for rule in ("build_structure", "run_aimd", "analyze_system", "summarize_campaign", "plot_figures"):
        assert rule in planned, planned[-2000:]
