import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from qdphonon.config import (
    ConfigError,
    campaign_from_config,
    check_cp2k_command,
    replica_seed,
)
from qdphonon.config import CAMPAIGN_CONFIG_FILE, settings_digest, validate_config
from qdphonon import cost
from qdphonon.harmonic import cost as harmonic_cost
from qdphonon.harmonic import plan as harmonic_plan
from qdphonon.figures.names import FIGURE_STEMS

try:
    validate_config(config)
    SYSTEMS = campaign_from_config(config)
    check_cp2k_command(config)
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
    replica=r"r\d+(_T\d+(p\d+)?K)?",
    batch=r"\d+",


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
    """summary.csv, and the figures when a system runs the MD route (they plot its analyses)."""
    figures = [
        f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")
    ]
    return [
        f"{RESULTS}/summary.csv",
        f"{RESULTS}/report/summary.html",
        f"{RESULTS}/{CAMPAIGN_CONFIG_FILE}",
    ] + (figures if MD_SYSTEMS else [])


def claims_targets():
    """Outputs of rules/claims.smk: attribution.csv per system of the MD route (it fits the MD's
    frames) and its figure; the localisation's tables and figure when the runs print it.
    """
    if not MD_SYSTEMS:
        return []
    return (
        [f"{RESULTS}/figures/attribution_vs_size.{ext}" for ext in ("png", "pdf")]
        + [f"{RESULTS}/analysis/{s}/attribution.csv" for s in MD_SYSTEMS]
        + localisation_targets()
        + (
            [f"{RESULTS}/figures/localisation_vs_size.{ext}" for ext in ("png", "pdf")]
            if localisation_targets()
            else []
        )
    )


def localisation_targets():
    """localisation.csv of every MD system, only when md.localisation_every_steps is set (the AIMD
    inputs then print the &PDOS/&LDOS lists the table is read from; otherwise none exist).
    """
    if config["md"].get("localisation_every_steps") is None:
        return []
    return [f"{RESULTS}/analysis/{s}/localisation.csv" for s in MD_SYSTEMS]


def relaxed_wfn_output():
    """The relaxation's last wavefunction (CP2K only; the MD's first SCF starts from it)."""
    if config["engine"] != "cp2k":
        return {}
    return {"wfn": f"{RESULTS}/relaxed/{{system}}.wfn"}


def harmonic_wfn(kind):
    """The tight relaxation's last wavefunction (CP2K only): an output of relax_harmonic, the input every
    single point's SCF starts from."""
    if config["engine"] != "cp2k":
        return {}
    return {kind: f"{RESULTS}/harmonic/{{system}}/relaxed.wfn"}


def quoted_option(flag, path):
    """`flag 'path'` quoted for the shell, or nothing when there is no path."""
    return "" if not path else f"{flag} {shlex.quote(str(path))}"


def seed_of(wildcards):
    return replica_seed(config["md"]["seed"], wildcards.system, wildcards.replica)


def config_settings(*keys, **values):
    """One JSON record of a command's settings keyed by config key, as --settings-json takes it
    (passed quoted: no config string ever reaches the shell unquoted). ``keys``: dotted config keys
    read from the merged config; ``values``: settings resolved per wildcard, under their config key
    (``**{"md.steps": ...}``), or values that are no config setting, under the option's name.
    """
    both = set(keys) & set(values)
    if both:
        raise WorkflowError(
            f"config_settings: {sorted(both)} given both from the config and as values"
        )
    record = {key: config_value(key) for key in keys}
    return json.dumps({**record, **values}, sort_keys=True)


def launch_settings(*keys):
    """A second ``--settings-json`` of the settings that say how to launch CP2K (its command, the MPI
    launcher, the wall-time margin, the SCF watch), as literal shell text rather than a param: they
    do not define a result, so changing them never re-runs a finished run (the engines continue
    unfinished ones with the new settings). Braces doubled for the shell's formatting.
    """
    text = f" --settings-json {shlex.quote(config_settings(*keys))} "
    return text.replace("{", "{{").replace("}", "}}")


def config_value(key):
    """The merged config's value of a dotted key (``scf.eps_scf``)."""
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def system_md_settings(wildcards, *names):
    """The system's own md settings (systems[].md over md), keyed md.NAME."""
    return {f"md.{name}": system_of(wildcards).md[name] for name in names}


SCF_KEYS = ("scf.eps_scf", "scf.max_scf", "scf.smearing_K")
ANALYSIS_KEYS = (
    "analysis.report_temperature_K",
    "analysis.region_edges_meV",
    "analysis.blocks",
    "analysis.band_cutoff_meV",
    "analysis.temperatures_K",
)


def aimd_tasks(wildcards):
    """MPI ranks of one CP2K job (qdphonon.cost.aimd_tasks)."""
    return cost.aimd_tasks(config, system_of(wildcards))


def mpi_job_marker(wildcards):
    """The `mpi` resource only tells the SLURM plugin that the job runs its own MPI launcher (so it
    does not wrap the job in `srun -n1`, which would leave the inner srun no resources); the launcher
    itself is the engine's choice (cp2k.mpi_launcher). Empty (not an MPI job) for one rank.
    """
    return "srun" if aimd_tasks(wildcards) > 1 else ""


def aimd_runtime_min(wildcards, resources=None):
    """Wall time of one AIMD job in minutes (qdphonon.cost.aimd_runtime_min)."""
    return cost.aimd_runtime_min(config, system_of(wildcards))


def relax_runtime_min(wildcards):
    """Wall time of one relaxation in minutes (qdphonon.cost.relax_runtime_min)."""
    return cost.relax_runtime_min(config, system_of(wildcards))


def aimd_mem_mb(wildcards):
    """Memory of one CP2K job in MB (qdphonon.cost.aimd_mem_mb)."""
    return cost.aimd_mem_mb(config, system_of(wildcards))


def harmonic_per_job(wildcards):
    """Displacements per single-point job (qdphonon.harmonic.cost.harmonic_displacements_per_job)."""
    return harmonic_cost.harmonic_displacements_per_job(config, system_of(wildcards))


def harmonic_runtime_min(wildcards):
    """Wall time of one single-point job in minutes: its single points x 1.5, at least 15."""
    s = system_of(wildcards)
    if config["engine"] == "mock":
        return 10
    sp_s = harmonic_cost.harmonic_sp_seconds(config, s)
    return int(max(15, 1.5 * harmonic_per_job(wildcards) * sp_s / 60 + 5))


def harmonic_job_retries():
    """Retries of a single-point job (qdphonon.harmonic.cost.harmonic_job_retries); 0 inside a cluster job, where
    a retry would run in the same, spent allocation (see cp2k_job_retries)."""
    return 0 if workflow.remote_exec else harmonic_cost.harmonic_job_retries(config)


def harmonic_batch_files(wildcards):
    """Every batch's completion record of a system's single points."""
    s = system_of(wildcards)
    n = harmonic_plan.n_batches(
        harmonic_plan.n_displacements(config, s), harmonic_per_job(wildcards)
    )
    return [harmonic_plan.batch_record(RESULTS, s.name, b) for b in range(n)]


def harmonic_relax_overrides():
    return harmonic_plan.tight_relax_overrides(config["cp2k"]["overrides"])


def route_linewidths():
    """linewidth.json of every system and route (summary.csv: one row per system and route)."""
    out = []
    for s in SYSTEMS.values():
        for route in s.routes:
            sub = "analysis" if route == "md" else "analysis_harmonic"
            out.append(f"{RESULTS}/{sub}/{s.name}/linewidth.json")
    return out


MD_SYSTEMS = [name for name, s in SYSTEMS.items() if "md" in s.routes]
BOTH_ROUTES = [
    name for name, s in SYSTEMS.items() if {"md", "harmonic"} <= set(s.routes)
]


def route_comparison_targets():
    """route_comparison.csv and its figure for every system run by both routes (docs/physics.md §5.6)."""
    return [
        f"{RESULTS}/analysis_harmonic/{s}/route_comparison.csv" for s in BOTH_ROUTES
    ] + [
        f"{RESULTS}/figures/routes_{s}.{ext}"
        for s in BOTH_ROUTES
        for ext in ("png", "pdf")
    ]


ANHARMONIC_SYSTEMS = [n for n in MD_SYSTEMS if len(SYSTEMS[n].md_temperatures_K) > 1]


def anharmonicity_targets():
    """anharmonicity.csv of every system run at several MD temperatures, and the figure."""
    if not ANHARMONIC_SYSTEMS:
        return []
    return [f"{RESULTS}/figures/anharmonicity.{ext}" for ext in ("png", "pdf")] + [
        f"{RESULTS}/analysis/{s}/anharmonicity.csv" for s in ANHARMONIC_SYSTEMS
    ]


def cp2k_job_retries(steps_key="steps"):
    """Retries of the CP2K rules, "steps" (AIMD) or "relax" (qdphonon.cost.cp2k_job_retries).

    0 inside a cluster job (Snakemake's remote mode): a retry there runs in the same allocation,
    whose time a wall-time stop has used up, so the engine refuses at once, again and again, until
    SLURM kills the job at its limit. The Snakemake that submits the jobs retries in a new one.
    """
    if workflow.remote_exec:
        return 0
    job = "aimd" if steps_key == "steps" else "relax"
    return cost.cp2k_job_retries(config, SYSTEMS.values(), job)
