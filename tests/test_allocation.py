"""CP2K's WALLTIME from the job's runtime and the SLURM allocation's end (engines.allocation):
SLURM's two ways of telling the end, and a retry inside the allocation getting only what is left."""

from __future__ import annotations

import datetime
import os
import stat
import subprocess

import pytest

from qdphonon.engines.allocation import allocation_end_epoch, cp2k_walltime_s


def fake_squeue(tmp_path, stdout: str, rc: int = 0) -> dict[str, str]:
    """An environment whose ``squeue`` prints ``stdout`` (and records its arguments)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "squeue"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\nprintf '%s\\n' '{stdout}'\nexit {rc}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}


def test_outside_slurm_there_is_no_allocation():
    assert allocation_end_epoch({}) is None
    assert allocation_end_epoch({"SLURM_JOB_END_TIME": "1765000000"}) is None  # no job id: not in a job


def test_slurm_job_end_time_wins_without_asking_squeue():
    def no_squeue(*a, **k):
        raise AssertionError("squeue must not be called")

    assert allocation_end_epoch({"SLURM_JOB_ID": "1", "SLURM_JOB_END_TIME": "1765000000"}, no_squeue) == 1765000000.0


def test_squeue_end_time_is_local_time(tmp_path):
    end = datetime.datetime(2026, 12, 7, 3, 22, 10)
    env = fake_squeue(tmp_path, end.isoformat())
    run = lambda cmd, **kw: subprocess.run(cmd, env=env, **kw)  # noqa: E731
    assert allocation_end_epoch(env, run) == end.timestamp()
    assert (tmp_path / "args").read_text().split() == ["-h", "-j", "4242", "-o", "%e"]


@pytest.mark.parametrize("stdout, rc", [("N/A", 0), ("UNLIMITED", 0), ("", 1), ("slurm_load_jobs error", 1)])
def test_squeue_saying_nothing_usable_is_no_allocation_limit(tmp_path, stdout, rc):
    env = fake_squeue(tmp_path, stdout, rc)
    assert allocation_end_epoch(env, lambda cmd, **kw: subprocess.run(cmd, env=env, **kw)) is None


def test_walltime_is_the_smaller_of_runtime_and_allocation_less_the_margin():
    # first attempt: the configured 60 min, 30 s spent starting, allocation ends in 3 h: runtime rules
    assert cp2k_walltime_s(60, 5, elapsed_s=30, allocation_end=1000 + 3 * 3600, now_epoch=1000) == 60 * 60 - 30 - 300
    # a retry in the same allocation 50 min later: 10 min left, not 60 again
    assert cp2k_walltime_s(60, 5, elapsed_s=2, allocation_end=1000 + 600, now_epoch=1000) == 600 - 300
    assert cp2k_walltime_s(None, 5, elapsed_s=2, allocation_end=1000 + 600, now_epoch=1000) == 300
    assert cp2k_walltime_s(None, 5, elapsed_s=2, allocation_end=None, now_epoch=1000) is None
    assert cp2k_walltime_s(60, 0, elapsed_s=0, allocation_end=None, now_epoch=1000) == 3600


def test_inside_a_real_slurm_job_the_end_is_the_allocations(tmp_path, slurm_cluster):
    """A job with a 3-minute limit on the real single-node SLURM: the end the engine reads (SLURM's
    environment or squeue) is the EndTime scontrol reports, and a configured runtime of 60 min is
    cut to what that allocation leaves."""
    import sys

    import slurm_helpers as sh

    probe = tmp_path / "probe.py"
    probe.write_text("import json, time\n"
                     "from qdphonon.engines.allocation import allocation_end_epoch, cp2k_walltime_s\n"
                     "end = allocation_end_epoch()\n"
                     "now = time.time()\n"
                     "print(json.dumps({'end': end, 'now': now, 'walltime_s': cp2k_walltime_s(60, 1, elapsed_s=0, "
                     "allocation_end=end, now_epoch=now)}))\n")  # fmt: skip
    env = dict(os.environ)
    out = tmp_path / "probe.out"
    job = sh.slurm_command(["sbatch", "--parsable", "--wait", "--time=3", "--ntasks=1", f"--output={out}",
                            f"--chdir={tmp_path}", "--wrap", f"{sys.executable} {probe}"], env, timeout_s=240).strip()  # fmt: skip
    record = __import__("json").loads(out.read_text().strip().splitlines()[-1])
    end_time = sh.scontrol_job(job.split(";")[0])["EndTime"]
    start_time = sh.scontrol_job(job.split(";")[0])["StartTime"]
    assert record["end"] is not None
    # scontrol's EndTime is the limit's end while the job runs; after it ends, the time it ended:
    # the allocation's end is StartTime + 3 min
    limit_end = datetime.datetime.fromisoformat(start_time).timestamp() + 180
    assert record["end"] == pytest.approx(limit_end, abs=1.0), (start_time, end_time)
    assert record["walltime_s"] == pytest.approx(record["end"] - record["now"] - 60.0, abs=1e-6)
    assert record["walltime_s"] < 180 - 60
