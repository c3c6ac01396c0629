"""The SLURM and workstation profiles, and tiny workflows on a real single-node SLURM cluster.

The cluster (munge + slurmctld + slurmd, no accounting) is started once per session by
tests/slurm/cluster.sh; see tests/slurm/README.md.  Helpers live in tests/slurm_helpers.py.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import slurm_helpers as sh

# the session-scoped `slurm_cluster` fixture lives in conftest.py

PROFILES = sh.REPO / "profiles"


def _load(name: str) -> dict:
    with open(PROFILES / name / "config.yaml") as fh:
        return yaml.safe_load(fh)


# ----------------------------------------------------------------------------- profiles (no cluster)


def test_slurm_profile_settings():
    p = _load("slurm")
    assert p["executor"] == "slurm"
    # without slurmdbd the plugin's default status command (sacct) never sees the jobs
    assert p["slurm-status-command"] == "squeue"
    # editing scripts must not rerun AIMD
    assert set(p["rerun-triggers"]) == {"mtime", "params", "input"}
    assert p["rerun-incomplete"] is True and p["keep-going"] is True
    res = p["default-resources"]
    assert res["cpus_per_task"] == "threads"
    # mem_mb_per_cpu would override every rule's mem_mb in the plugin
    assert "mem_mb_per_cpu" not in res and "mem_mb" in res
    # the launcher is not a resource a --set-resources could replace (issue: jobs fell back to mpirun)
    assert "mpi" not in str(p.get("set-resources") or {})


def test_workstation_profile_settings():
    p = _load("workstation")
    assert p["cores"] == "all"
    assert p["resources"]["tasks"] >= 1
    assert "mpi" not in str(p.get("set-resources") or {})
    assert set(p["rerun-triggers"]) == {"mtime", "params", "input"}


def test_workstation_profile_caps_concurrent_mpi_tasks(tmp_path):
    """`resources: tasks=2` lets only one tasks=2 job run at a time; a tasks=4 job is scaled to 2."""
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""
        rule all:
            input: expand("o{i}.txt", i=range(3)), "big.txt"
        rule a:
            output: "o{i}.txt"
            resources: tasks=2, mpi="mpirun"
            shell: "date +%s.%N > {output}; sleep 1; date +%s.%N >> {output}"
        rule big:
            output: "big.txt"
            resources: tasks=4, mpi="mpirun"
            shell: "echo {resources.tasks} > {output}"
    """))
    proc = subprocess.run(
        ["snakemake", "--profile", str(PROFILES / "workstation"), "--cores", "4", "-q"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    spans = sorted(tuple(map(float, (tmp_path / f"o{i}.txt").read_text().split())) for i in range(3))
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, f"tasks=2 jobs overlapped under the tasks=2 cap: {spans}"
    assert (tmp_path / "big.txt").read_text().strip() == "2"


# ----------------------------------------------------------------------------- real SLURM

SNAKEFILE_OK = """
rule all:
    input: expand("smp{i}.txt", i=range(2)), "mpi.txt", "local.txt"

rule smp:
    output: "smp{i}.txt"
    threads: 1
    shell: "echo job=${{SLURM_JOB_ID:-none}} host=$(hostname) > {output}"

rule mpi:
    output: "mpi.txt"
    resources: tasks=2, mpi="srun"
    shell: "echo job=${{SLURM_JOB_ID:-none}} > {output}; {resources.mpi} -n {resources.tasks} hostname >> {output}"

rule local:
    localrule: True
    input: "mpi.txt"
    output: "local.txt"
    shell: "echo job=${{SLURM_JOB_ID:-none}} > {output}"
"""

SNAKEFILE_FAIL = """
rule all:
    input: "good.txt", "bad.txt"

rule good:
    output: "good.txt"
    shell: "echo job=${{SLURM_JOB_ID:-none}} > {output}"

rule bad:
    output: "bad.txt"
    shell: "echo about to fail; exit 1"
"""

SNAKEFILE_SLOW = """
rule slow:
    output: "slow.txt"
    shell: "sleep 600; touch {output}"
"""


def _job_id(path: Path) -> str:
    m = re.match(r"job=(\d+)", path.read_text())
    assert m, f"{path.name} was not written inside a SLURM job: {path.read_text()!r}"
    return m.group(1)


def _write(tmp_path: Path, text: str) -> Path:
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(text)
    return snakefile


@pytest.mark.slurm
def test_cluster_is_up(slurm_cluster):
    status = sh.cluster_cmd("status", slurm_cluster.workdir)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"export SLURM_CONF={slurm_cluster.slurm_conf}" in status.stdout
    sinfo = subprocess.run(["sinfo", "-h", "-o", "%P %a %t"], capture_output=True, text=True, timeout=30)
    assert sinfo.stdout.split()[:2] == ["debug*", "up"], sinfo.stdout
    print(f"cluster start took {slurm_cluster.start_seconds:.1f} s (started_by_us={slurm_cluster.started_by_us})")


@pytest.mark.slurm
def test_workflow_runs_through_slurm_profile(slurm_cluster, tmp_path):
    run = sh.run_snakemake_slurm(tmp_path, _write(tmp_path, SNAKEFILE_OK), timeout_s=300)
    print(f"4-job workflow on SLURM: {run.seconds:.1f} s")
    assert run.returncode == 0, str(run)

    smp_ids = {_job_id(tmp_path / f"smp{i}.txt") for i in range(2)}
    assert len(smp_ids) == 2, "each job must be its own SLURM job"
    for jid in smp_ids:
        info = sh.scontrol_job(jid)
        assert info.get("JobState") == "COMPLETED", info
        assert info.get("Partition") == "debug", info

    # MPI-style launch: sbatch --ntasks=2, and srun -n 2 inside the allocation ran 2 ranks
    mpi_lines = (tmp_path / "mpi.txt").read_text().split()
    mpi_id = _job_id(tmp_path / "mpi.txt")
    assert len(mpi_lines) == 3, mpi_lines
    info = sh.scontrol_job(mpi_id)
    assert info.get("NumTasks") == "2" and info.get("JobState") == "COMPLETED", info

    # a localrule runs in the Snakemake process itself, not as a SLURM job
    assert (tmp_path / "local.txt").read_text().strip() == "job=none"
    assert sh.squeue_jobs() == []


@pytest.mark.slurm
def test_failing_job_fails_the_run(slurm_cluster, tmp_path):
    run = sh.run_snakemake_slurm(tmp_path, _write(tmp_path, SNAKEFILE_FAIL), timeout_s=300)
    print(f"failing workflow on SLURM: {run.seconds:.1f} s")
    assert run.returncode not in (0, 124), str(run)   # failed, and not by our timeout
    assert "Error in rule bad" in run.output, str(run)
    assert not (tmp_path / "bad.txt").exists()
    # keep-going (profile): the independent job still finished on SLURM
    assert _job_id(tmp_path / "good.txt")
    # the failed job keeps its SLURM log
    logs = list((tmp_path / ".snakemake" / "slurm_logs" / "rule_bad").glob("*.log"))
    assert logs and "about to fail" in logs[0].read_text()


@pytest.mark.slurm
def test_interrupt_cancels_slurm_jobs(slurm_cluster, tmp_path):
    """`timeout -s INT` (as used by run_snakemake_slurm) makes Snakemake scancel its jobs.

    Snakemake only cancels the jobs in its active list, which the status-check loop empties
    while a check runs; SIGINT at that moment leaves the job running (upstream race).  Here the
    first status check comes 30 s after the start and SIGINT at 12 s, so the race cannot hit.
    """
    t0 = time.monotonic()
    run = sh.run_snakemake_slurm(
        tmp_path, _write(tmp_path, SNAKEFILE_SLOW), timeout_s=12,
        profile_overrides={"slurm-init-seconds-before-status-checks": 30,
                           "seconds-between-status-checks": 30},
    )
    print(f"interrupted run: {run.seconds:.1f} s")
    assert run.returncode == 124, str(run)
    m = re.search(r"submitted with SLURM jobid (\d+)", run.output)
    assert m, str(run)
    assert run.leftover_jobs == [], f"Snakemake left {run.leftover_jobs} running:\n{run}"
    # scancel is asynchronous on the slurmctld side: allow a few seconds
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline:
        state = sh.scontrol_job(m.group(1)).get("JobState")
        if state == "CANCELLED":
            break
        time.sleep(1)
    assert state == "CANCELLED", f"job {m.group(1)} is {state} after {time.monotonic() - t0:.0f} s"
    assert not (tmp_path / "slow.txt").exists()
