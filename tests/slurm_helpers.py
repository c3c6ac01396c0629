"""Helpers to run Snakemake on the real single-node SLURM test cluster.

Used by tests/test_slurm.py and meant for campaign-level SLURM tests::

    from slurm_helpers import run_snakemake_slurm
    res = run_snakemake_slurm(workdir, snakefile=REPO / "workflow" / "Snakefile",
                              extra_args=["--configfile", cfg], timeout_s=900)
    assert res.returncode == 0, res.output

The cluster itself is started by ``tests/slurm/cluster.sh start`` (see the
``slurm_cluster`` fixture in tests/test_slurm.py); the process environment must
carry ``SLURM_CONF`` pointing at the generated slurm.conf (the fixture sets it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm"
DEFAULT_WORKDIR = Path(os.environ.get("QDPHONON_SLURM_WORKDIR", "/tmp/qdphonon-slurm"))
PARTITION = "debug"

_REQUIRED_BINARIES = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "sinfo", "srun")


def slurm_missing() -> str | None:
    """Why a local SLURM test cluster cannot be started here, or None if it can."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    missing = [b for b in _REQUIRED_BINARIES if shutil.which(b, path=path) is None]
    if missing:
        return "SLURM/munge not installed (missing: " + ", ".join(missing) + "; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    if shutil.which("snakemake") is None:
        return "snakemake not on PATH"
    return None


def cluster_cmd(action: str, workdir: Path | str = DEFAULT_WORKDIR, timeout_s: float = 180) -> subprocess.CompletedProcess:
    """Run ``cluster.sh ACTION WORKDIR`` and return the completed process (never raises on rc)."""
    return subprocess.run(
        ["bash", str(CLUSTER_SH), action, str(workdir)],
        capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
    )


def slurm_conf_path(workdir: Path | str = DEFAULT_WORKDIR) -> Path:
    return Path(workdir) / "etc" / "slurm.conf"


@dataclass
class ClusterHandle:
    workdir: Path
    slurm_conf: Path
    started_by_us: bool    # False if an already running healthy cluster was reused
    start_seconds: float

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.slurm_conf)
        return env


def start_cluster(workdir: Path | str = DEFAULT_WORKDIR) -> ClusterHandle:
    """Start (or reuse) the test cluster; raise RuntimeError with the logs on failure."""
    workdir = Path(workdir)
    was_running = cluster_cmd("status", workdir).returncode == 0
    t0 = time.monotonic()
    res = cluster_cmd("start", workdir)
    elapsed = time.monotonic() - t0
    if res.returncode != 0:
        raise RuntimeError(
            f"tests/slurm/cluster.sh start failed (rc={res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
    return ClusterHandle(workdir, slurm_conf_path(workdir), not was_running, elapsed)


def stop_cluster(workdir: Path | str = DEFAULT_WORKDIR) -> subprocess.CompletedProcess:
    return cluster_cmd("stop", workdir)


def _load_yaml(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def make_test_profile(
    dest: Path | str,
    *,
    partition: str | None = PARTITION,
    account: str | None = None,
    init_seconds: int = 2,
    default_resources: Mapping[str, object] | None = None,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write an overlay profile ``dest/config.yaml`` for use after ``--profile profiles/slurm``.

    Snakemake merges profiles per top-level key (the later one wins), so the
    overlay repeats profiles/slurm's ``default-resources`` with the placeholders
    replaced: partition set (None: the cluster's default partition) and
    slurm_account dropped unless ``account`` is given (the test cluster has no
    accounting).  It also shortens the status-check intervals.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = _load_yaml(SLURM_PROFILE / "config.yaml")
    res = dict(base.get("default-resources") or {})
    res.pop("slurm_account", None)
    res.pop("slurm_partition", None)
    if partition is not None:
        res["slurm_partition"] = partition
    if account is not None:
        res["slurm_account"] = account
    res.update(default_resources or {})
    overlay: dict[str, object] = {
        "default-resources": res,
        "slurm-init-seconds-before-status-checks": int(init_seconds),
        "seconds-between-status-checks": int(init_seconds),
        "latency-wait": 5,
        "slurm-keep-successful-logs": True,
    }
    overlay.update(extra or {})
    with open(dest / "config.yaml", "w") as fh:
        yaml.safe_dump(overlay, fh, sort_keys=False)
    return dest


@dataclass
class SnakemakeRun:
    args: list[str]
    returncode: int      # 124: killed by our timeout (SIGINT), 137: had to be SIGKILLed
    output: str          # stdout + stderr interleaved
    seconds: float
    run_id: str | None = None          # SLURM job name used by the plugin for this run
    leftover_jobs: list[str] = field(default_factory=list)  # still queued after a timeout; scancelled by us

    @property
    def timed_out(self) -> bool:
        return self.returncode in (124, 137)

    def __str__(self) -> str:  # handy in assertion messages
        return f"$ {' '.join(self.args)}\n[rc={self.returncode}, {self.seconds:.1f} s]\n{self.output}"


def run_snakemake_slurm(
    workdir: Path | str,
    snakefile: Path | str | None = None,
    extra_args: Sequence[str] = (),
    timeout_s: float = 300,
    *,
    slurm_conf: Path | str | None = None,
    profile_overrides: Mapping[str, object] | None = None,
    default_resources: Mapping[str, object] | None = None,
    partition: str | None = PARTITION,
    env: Mapping[str, str] | None = None,
) -> SnakemakeRun:
    """Run ``snakemake --profile profiles/slurm --profile <test overlay>`` in ``workdir``.

    Wrapped in ``timeout --foreground -s INT`` so that on timeout Snakemake
    gets SIGINT and scancels its jobs (SIGKILL 60 s later if it hangs).  Snakemake
    can miss jobs when SIGINT lands during a status check (the executor's
    active-job list is briefly empty then), so after a timeout any job of this run
    still queued is scancelled here and listed in ``leftover_jobs``.
    ``slurm_conf`` (else $SLURM_CONF, else the default test cluster's conf) is
    exported for the client commands.  Never raises on a non-zero exit.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = make_test_profile(
        workdir / ".slurm-test-profile",
        partition=partition,
        default_resources=default_resources,
        extra=profile_overrides,
    )
    run_env = dict(os.environ if env is None else env)
    conf = slurm_conf or run_env.get("SLURM_CONF") or slurm_conf_path(DEFAULT_WORKDIR)
    run_env["SLURM_CONF"] = str(conf)
    # the jobs run `python -m snakemake` with the interpreter found on PATH
    run_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + run_env.get("PATH", "")
    args = [
        "timeout", "--foreground", "-k", "60", "-s", "INT", str(int(timeout_s)),
        "snakemake",
        "--profile", str(SLURM_PROFILE),
        "--profile", str(overlay),
        "--directory", str(workdir),
    ]
    if snakefile is not None:
        args += ["--snakefile", str(snakefile)]
    args += [str(a) for a in extra_args]
    t0 = time.monotonic()
    proc = subprocess.run(
        args, cwd=workdir, env=run_env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    run = SnakemakeRun(args, proc.returncode, proc.stdout, time.monotonic() - t0)
    m = re.search(r"SLURM run ID: (\S+)", proc.stdout)
    run.run_id = m.group(1) if m else None
    if run.timed_out and run.run_id:
        run.leftover_jobs = squeue_jobs(conf, name=run.run_id)
        if run.leftover_jobs:
            slurm_command(["scancel", "--name", run.run_id], env=run_env, timeout_s=60)
    return run


def slurm_command(cmd: list[str], env: Mapping[str, str], timeout_s: float = 30) -> str:
    """stdout of a SLURM client command; RuntimeError naming the command, its exit status and stderr
    when it fails (an unreachable controller must not read as "no jobs")."""
    res = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, timeout=timeout_s)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit status {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def squeue_jobs(slurm_conf: Path | str | None = None, name: str | None = None) -> list[str]:
    """Ids of jobs still pending/running/completing/suspended (optionally: of one job name)."""
    env = dict(os.environ)
    if slurm_conf:
        env["SLURM_CONF"] = str(slurm_conf)
    cmd = ["squeue", "-h", "-t", "PD,R,CG,S", "-o", "%i"]
    if name:
        cmd += ["--name", name]
    return slurm_command(cmd, env).split()


def slurm_cluster_fixture():
    """Body of the session-scoped ``slurm_cluster`` fixture (a generator).

    Missing SLURM/munge/root: skip with the reason, but fail when ``CI`` is set.
    Installed but failing to start: always a failure, with the daemon logs.
    Exports SLURM_CONF into os.environ for the session; stops the cluster at the
    end only if this session started it.
    """
    import pytest

    in_ci = bool(os.environ.get("CI"))
    reason = slurm_missing()
    if reason:
        if in_ci:
            pytest.fail(f"SLURM test cluster unavailable in CI: {reason}")
        pytest.skip(reason)
    try:
        handle = start_cluster(DEFAULT_WORKDIR)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not start the SLURM test cluster: {exc}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(handle.slurm_conf)
    try:
        yield handle
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        if handle.started_by_us:
            stop_cluster(handle.workdir)


def scontrol_job(jobid: str | int, slurm_conf: Path | str | None = None) -> dict[str, str]:
    """``scontrol show job -o ID`` as a dict (finished jobs stay visible for MinJobAge=600 s)."""
    env = dict(os.environ)
    if slurm_conf:
        env["SLURM_CONF"] = str(slurm_conf)
    out = slurm_command(["scontrol", "show", "job", "-o", str(jobid)], env)
    fields: dict[str, str] = {}
    for tok in out.split():
        key, sep, val = tok.partition("=")
        if sep and key not in fields:
            fields[key] = val
    return fields
