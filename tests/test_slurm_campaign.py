"""The workflow itself through --profile profiles/slurm on a real single-node SLURM cluster:
two dots of the default mock campaign and a tiny real CP2K system as an srun MPI job (a failing job:
tests/test_slurm.py; a missing CP2K now fails before any job, tests/test_config_invalid.py)."""

from __future__ import annotations

import json

import pandas as pd

import pytest

import slurm_helpers as sh
from workflow_helpers import REPO, assert_nothing_to_be_done, default_config, snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


def run(workdir, timeout_s=900):
    return sh.run_snakemake_slurm(workdir, REPO / "Snakefile",
                                  ["--configfile", str(workdir / "config.yaml")], timeout_s=timeout_s)


def test_mock_campaign_on_slurm(tmp_path, slurm_cluster):
    """The default campaign's settings on two of its dots with two replicas (the whole default campaign
    runs locally in test_workflow_mock): every non-local rule goes through sbatch."""
    config = default_config()
    config["systems"] = config["systems"][:2]
    config["md"].update(replicas=2, steps=1500)
    write_config(tmp_path, config)
    result = run(tmp_path)
    assert result.returncode == 0, str(result)[-6000:]
    assert "SLURM run ID" in result.output
    assert len(pd.read_csv(tmp_path / "results/summary.csv")) == 2
    assert (tmp_path / "results/figures/size_dependence.png").exists()
    assert_nothing_to_be_done(snakemake(tmp_path, "-n"))


@pytest.mark.cp2k
def test_real_cp2k_continues_across_wall_time_stops_on_slurm(tmp_path, slurm_cluster, cp2k_exe):
    """A real CP2K xTB MD whose job runtime (1 min, given with --set-resources on the command line,
    which replaces the profile's set-resources block) lets CP2K's WALLTIME (runtime - 0.5 min) stop it;
    Snakemake resubmits it by itself (the rule's retries) and the engine continues from the restart
    file, launching CP2K with srun inside the allocation. Every step appears once. How many stops
    depends on the machine's speed (CI's machine needed two 30-s windows for 900 steps); one stop already
    takes the resubmission path, so the test asks for at least one."""
    steps = 900
    write_config(tmp_path, {
        "systems": [{"size": [1, 1, 1]}], "level": "xtb", "engine": "cp2k",
        "md": {"steps": steps, "equilibration_fs": 100.0, "replicas": 1, "trajectory_every_steps": 10},
        "relax": {"max_iter": 30}, "cp2k": {"walltime_margin_min": 0.5},
    })
    result = sh.run_snakemake_slurm(tmp_path, REPO / "Snakefile",
                                    ["--configfile", str(tmp_path / "config.yaml"),
                                     "--set-resources", "run_aimd:runtime=1"], timeout_s=1500)  # fmt: skip
    assert result.returncode == 0, str(result)[-6000:]
    run_dir = tmp_path / "results/aimd/cspbbr3_1x1x1/r0"
    segs = json.loads((run_dir / "segments.json").read_text())["segments"]
    ended = [s["ended"] for s in segs]
    assert ended.count("walltime") >= 1 and ended[-1] == "completed", ended
    assert set(ended[:-1]) == {"walltime"}, ended
    # each stopped job ends at once (exit 75), no retry inside its spent allocation until SLURM's limit
    job_logs = sorted((tmp_path / ".snakemake/slurm_logs/rule_run_aimd").rglob("*.log"))
    assert job_logs, "no SLURM log of a stopped run_aimd job (kept only for failed jobs)"
    for log in job_logs:
        text = log.read_text()
        assert "Trying to restart job" not in text and "DUE TO TIME LIMIT" not in text, log
    assert all("srun" in s["command"].split()[0] and " -n 2 " in s["command"] for s in segs), segs[0]["command"]
    assert [s["start_step"] for s in segs[1:]] == [s["end_step"] for s in segs[:-1]]
    out = (run_dir / "seg000.out").read_text()
    assert "Total number of message passing processes                             2" in out
    record = json.loads((run_dir / "run.json").read_text())
    assert record["total_steps"] == steps and record["cp2k_version"] == "2023.1" and record["engine"] == "cp2k"
    edges = pd.read_csv(tmp_path / "results/band_edges/cspbbr3_1x1x1/r0.csv")
    assert list(edges["step"]) == list(range(steps + 1))
    relax = json.loads((tmp_path / "results/relax/cspbbr3_1x1x1/relax.json").read_text())
    assert relax["command"].split()[0].endswith("srun") and " -n 2 " in relax["command"], relax["command"]
    assert pd.read_csv(tmp_path / "results/summary.csv")["level"].tolist() == ["xtb"]
