import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from qdphonon.config import ConfigError, campaign_from_config, replica_seed
from qdphonon.config import aimd_cost_estimate, settings_digest, validate_config
from qdphonon.figure_names import FIGURE_STEMS
from qdphonon.jobs import job_retries

try:
    validate_config(config)
    SYSTEMS = campaign_from_config(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None

RESULTS = "results"

# Every rule calls the package as `python -m qdphonon`, in or outside a conda env (the envs do
# not install it): jobs inherit this PYTHONPATH, and cluster jobs re-parse this file.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p
        for p in (
            str(Path(workflow.basedir) / "workflow"),
            os.environ.get("PYTHONPATH"),
        )
        if p
    )
)


wildcard_constraints:
    system="|".join(SYSTEMS),
    replica=r"r\d+",


def system_of(wildcards):
    return SYSTEMS[wildcards.system]


def replica_targets(pattern):
    """Expand a pattern over every (system, replica) pair of the campaign."""
    return [
        pattern.format(system=s.name, replica=r)
        for s in SYSTEMS.values()
        for r in s.replicas
    ]


FIGURES = FIGURE_STEMS


def all_targets():
    return [f"{RESULTS}/summary.csv"] + [
        f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")
    ]


def seed_of(wildcards):
    return replica_seed(config["md"]["seed"], wildcards.system, wildcards.replica)


def settings_record(**settings):
    """One JSON record of a command's settings (passed quoted as --settings-json; no config string
    ever reaches the shell unquoted)."""
    return json.dumps(settings, sort_keys=True)


def scf_settings():
    return dict(
        eps_scf=config["scf"]["eps_scf"],
        max_scf=config["scf"]["max_scf"],
        smearing_K=config["scf"]["smearing_K"],
    )


def aimd_tasks(wildcards):
    """MPI ranks of one AIMD job: at least 2 (an MPI job), about 10 atoms a rank at PBE and 100
    at xTB, at most 256; 1 for the mock. Profiles cap it (workstation: global `tasks`).
    """
    if config["engine"] == "mock":
        return 1
    n_atoms = system_of(wildcards).n_atoms
    return max(2, min(256, n_atoms // (10 if config["level"] == "pbe" else 100)))


def mpi_job_marker(wildcards):
    """The `mpi` resource only tells the SLURM plugin that the job runs its own MPI launcher (so it
    does not wrap the job in `srun -n1`, which would leave the inner srun no resources); the launcher
    itself is the engine's choice (cp2k.mpi_launcher). Empty (not an MPI job) for one rank.
    """
    return "srun" if aimd_tasks(wildcards) > 1 else ""


def cp2k_launcher():
    """MPI launcher of the CP2K rules: cp2k.mpi_launcher (auto: srun inside a SLURM allocation,
    else mpirun; the engine decides, so a --set-resources on the command line cannot change it).
    """
    return config["cp2k"]["mpi_launcher"]


def aimd_runtime_min(wildcards, resources=None):
    """Wall time of one AIMD job in minutes from the cost model (docs/physics.md §3 timings), capped at
    48 h: longer trajectories continue from the restart file in the next submission."""
    if config["engine"] == "mock":
        return 10
    s = system_of(wildcards)
    tasks = aimd_tasks(wildcards)
    cost = aimd_cost_estimate(s.n_atoms, config["level"], s.md["steps"], cores=tasks)
    return int(
        min(
            48 * 60,
            max(15, 1.5 * cost["hours"] * 60 + config["cp2k"]["walltime_margin_min"]),
        )
    )


def relax_runtime_min(wildcards):
    """Wall time of one relaxation in minutes: max_iter optimisation steps priced as MD steps
    (each is one SCF with a good guess), capped at 48 h."""
    if config["engine"] == "mock":
        return 10
    s = system_of(wildcards)
    cost = aimd_cost_estimate(
        s.n_atoms,
        config["level"],
        config["relax"]["max_iter"],
        cores=aimd_tasks(wildcards),
    )
    return int(min(48 * 60, max(15, 1.5 * cost["hours"] * 60)))


def aimd_mem_mb(wildcards):
    """Memory of one AIMD job: generous per-atom estimate (PBE needs far more than xTB)."""
    if config["engine"] == "mock":
        return 2000
    per_atom = 40 if config["level"] == "pbe" else 4
    return int(2000 + per_atom * system_of(wildcards).n_atoms)


def cp2k_job_retries(steps_key="steps"):
    """Retries of the CP2K rules (one number for the campaign: the longest system decides)."""
    if config["engine"] == "mock":
        return 0
    worst = 0
    for s in SYSTEMS.values():
        wc = type("W", (), {"system": s.name})()
        steps = s.md["steps"] if steps_key == "steps" else config["relax"]["max_iter"]
        tasks = aimd_tasks(wc)
        hours = aimd_cost_estimate(s.n_atoms, config["level"], steps, cores=tasks)[
            "hours"
        ]
        runtime = (
            aimd_runtime_min(wc) if steps_key == "steps" else relax_runtime_min(wc)
        )
        worst = max(
            worst, job_retries(hours, runtime, config["cp2k"]["walltime_margin_min"])
        )
    return worst
