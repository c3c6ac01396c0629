"""The workflow itself through --profile profiles/slurm on a real single-node SLURM cluster:
the default mock campaign, a tiny real CP2K system as an srun MPI job, and a failing job."""

from __future__ import annotations

import csv
import json

import pytest

import slurm_helpers as sh
from workflow_helpers import REPO, default_config, planned_jobs, snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


def run(workdir, timeout_s=900):
    return sh.run_snakemake_slurm(workdir, REPO / "Snakefile",
                                  ["--configfile", str(workdir / "config.yaml")], timeout_s=timeout_s)


def test_default_mock_campaign_on_slurm(tmp_path, slurm_cluster):
    write_config(tmp_path, default_config())
    result = run(tmp_path)
    assert result.returncode == 0, str(result)[-6000:]
    assert "SLURM run ID" in result.output
    rows = list(csv.DictReader(l for l in (tmp_path / "results/summary.csv").open() if not l.startswith("#")))
    assert len(rows) == 6
    assert (tmp_path / "results/figures/size_dependence.png").exists()
    assert planned_jobs(snakemake(tmp_path, "-n")) == {}


def test_tiny_real_cp2k_system_runs_as_mpi_job_on_slurm(tmp_path, slurm_cluster, cp2k_exe):
    write_config(tmp_path, {
        "systems": [{"size": [1, 1, 1]}], "level": "xtb", "engine": "cp2k",
        "md": {"steps": 20, "equilibration_fs": 4.0, "replicas": 1, "trajectory_every_steps": 1},
        "relax": {"max_iter": 30},
    })
    result = run(tmp_path)
    assert result.returncode == 0, str(result)[-6000:]
    state = json.loads((tmp_path / "results/aimd/cspbbr3_1x1x1/r0/segments.json").read_text())
    seg = state["segments"][0]
    assert seg["command"].startswith("srun -n 2 ") or "/srun -n 2 " in seg["command"], seg["command"]
    relax = json.loads((tmp_path / "results/relax/cspbbr3_1x1x1/relax.json").read_text())
    assert "/srun -n 2 " in relax["command"] or relax["command"].startswith("srun -n 2 "), relax["command"]
    out = (tmp_path / "results/aimd/cspbbr3_1x1x1/r0/seg000.out").read_text()
    assert "Total number of message passing processes                             2" in out
    record = json.loads((tmp_path / "results/aimd/cspbbr3_1x1x1/r0/run.json").read_text())
    assert record["total_steps"] == 20 and record["cp2k_version"] == "2023.1" and record["engine"] == "cp2k"
    assert (tmp_path / "results/summary.csv").exists()


def test_failing_job_makes_snakemake_fail_on_slurm(tmp_path, slurm_cluster):
    write_config(tmp_path, {
        "systems": [{"size": [1, 1, 1]}], "level": "xtb", "engine": "cp2k",
        "md": {"steps": 5, "equilibration_fs": 2.0, "replicas": 1},
        "cp2k": {"command": "no-such-cp2k"},
    })
    result = run(tmp_path, timeout_s=600)
    assert result.returncode not in (0, 124, 137), str(result)[-4000:]
    log = (tmp_path / "results/logs/relax_structure/cspbbr3_1x1x1.log").read_text()
    assert "no-such-cp2k" in log and "install" in log.lower()
