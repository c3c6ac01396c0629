"""The workflow itself through --profile profiles/slurm on a real single-node SLURM cluster:
two dots of the default mock campaign and a tiny real CP2K system as an srun MPI job (a failing job:
tests/test_slurm.py; a missing CP2K now fails before any job, tests/test_config_invalid.py)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd

import pytest

import slurm_helpers as sh
from workflow_helpers import REPO, assert_nothing_to_be_done, default_config, snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


def run(workdir, timeout_s=900):
    return sh.run_snakemake_slurm(workdir, REPO / "Snakefile",
                                  ["--configfile", str(workdir / "config.yaml")], timeout_s=timeout_s)


def _last_ener_step(path: Path) -> int | None:
    """Step of the last whole row of a CP2K .ener file, None before the first."""
    try:
        rows = [r.split() for r in path.read_text().splitlines() if r.strip() and not r.lstrip().startswith("#")]
    except FileNotFoundError:
        return None
    whole = [r for r in rows if len(r) >= 6]
    return int(float(whole[-1][0])) if whole else None


def _cp2k_pids(run_dir: Path) -> list[int]:
    """CP2K processes working in ``run_dir`` (the MPI ranks srun started under slurmstepd)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if "cp2k" in (proc / "comm").read_text() and os.path.realpath(proc / "cwd") == str(run_dir.resolve()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def hold_each_segment_past_its_walltime(run_dir: Path, after_steps: int, done: threading.Event) -> None:
    """Once a segment has written ``after_steps`` MD steps, stop its CP2K ranks (SIGSTOP) until the
    segment's WALLTIME has passed, then continue them: CP2K stops at its next check, whatever the
    machine's speed. A segment that reaches its WALLTIME sooner (a slow machine) is left alone."""
    held: set[int] = set()
    while not done.is_set():
        time.sleep(0.2)
        try:
            seg = json.loads((run_dir / "segments.json").read_text())["segments"][-1]
        except (FileNotFoundError, json.JSONDecodeError, IndexError, KeyError):
            continue
        if seg["index"] in held or seg.get("ended") != "running" or not seg.get("walltime_s"):
            continue
        last = _last_ener_step(run_dir / "md-1.ener")
        if last is None or last - seg["start_step"] < after_steps:
            continue
        pids = _cp2k_pids(run_dir)
        if not pids:
            continue
        held.add(seg["index"])
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(max(0.0, seg["started_epoch"] + seg["walltime_s"] + 5.0 - time.time()))  # srun starts CP2K later
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


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
    which replaces the profile's set-resources block) gives CP2K a WALLTIME of the runtime less 0.5 min
    less the engine's start; Snakemake resubmits each stopped job by itself (the rule's retries) and the
    engine continues from the restart file, launching CP2K with srun inside the allocation. Every
    step appears once. So that the stops do not depend on the machine's speed, the test holds CP2K
    (SIGSTOP) past its WALLTIME once a segment has made 150 steps: at least two stops on any machine;
    a machine too slow to make 150 steps in a window (here: 110 with a CPU hog beside it) stops by
    itself, in at most the rule's 6 attempts for 400 steps."""
    steps = 400
    write_config(tmp_path, {
        "systems": [{"size": [1, 1, 1]}], "level": "xtb", "engine": "cp2k",
        "md": {"steps": steps, "equilibration_fs": 100.0, "replicas": 1, "trajectory_every_steps": 10},
        "relax": {"max_iter": 30}, "cp2k": {"walltime_margin_min": 0.5},
    })
    run_dir = tmp_path / "results/aimd/cspbbr3_1x1x1/r0"
    done = threading.Event()
    holder = threading.Thread(target=hold_each_segment_past_its_walltime, args=(run_dir, 150, done), daemon=True)
    holder.start()
    try:
        result = sh.run_snakemake_slurm(tmp_path, REPO / "Snakefile",
                                        ["--configfile", str(tmp_path / "config.yaml"),
                                         "--set-resources", "run_aimd:runtime=1"], timeout_s=1500)  # fmt: skip
    finally:
        done.set()
        holder.join(timeout=120)
    assert result.returncode == 0, str(result)[-6000:]
    segs = json.loads((run_dir / "segments.json").read_text())["segments"]
    ended = [s["ended"] for s in segs]
    assert ended.count("walltime") >= 2 and ended[-1] == "completed", ended
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
