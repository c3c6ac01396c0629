rule relax_structure:
    """Geometry optimisation at the MD's level (real CP2K, with the AIMD's MPI resources), or the
    ideal cut passed through (mock). With CP2K its last wavefunction is kept: the MD's first SCF
    starts from it."""
    input:
        xyz=f"{RESULTS}/structures/{{system}}.xyz",
    output:
        **relaxed_wfn_output(),
        xyz=f"{RESULTS}/relaxed/{{system}}.xyz",
    log:
        f"{RESULTS}/logs/relax_structure/{{system}}.log",
    retries: cp2k_job_retries("relax")
    localrule: config["engine"] == "mock"
    conda:
        "../../envs/cp2k.yaml"
    threads: 1
    resources:
        tasks=aimd_tasks,
        cpus_per_task=1,
        mpi=mpi_job_marker,
        runtime=relax_runtime_min,
        mem_mb=aimd_mem_mb,
    params:
        workdir=f"{RESULTS}/relax/{{system}}",
        wfn_out=lambda wc, output: quoted_option("--wfn-out", output.get("wfn")),
        settings=config_settings(
            "engine",
            "level",
            "relax.max_iter",
            "cp2k.overrides",
            *SCF_KEYS,
        ),
    shell:
        "python -m qdphonon relax --structure {input.xyz:q} --workdir {params.workdir:q}"
        " --out {output.xyz:q} {params.wfn_out} --tasks {resources.tasks:q}"
        " --threads {resources.cpus_per_task:q} --settings-json {params.settings:q}"
        + launch_settings("cp2k.command", "cp2k.mpi_launcher")
        + "> {log:q} 2>&1"


rule write_cp2k_input:
    """The NVT AIMD input of one replica, validated against the installed CP2K's input definition."""
    input:
        xyz=f"{RESULTS}/relaxed/{{system}}.xyz",
    output:
        inp=f"{RESULTS}/cp2k/{{system}}/{{replica}}/md.inp",
    log:
        f"{RESULTS}/logs/write_cp2k_input/{{system}}/{{replica}}.log",
    localrule: True
    conda:
        "../../envs/cp2k.yaml"
    params:
        settings=lambda wc: config_settings(
            "level",
            "md.localisation_every_steps",
            "md.trajectory_format",
            "md.thermostat_timecon_fs",
            "cp2k.command",
            "cp2k.overrides",
            *SCF_KEYS,
            **system_md_settings(wc, "timestep_fs", "steps", "trajectory_every_steps"),
            **{"md.temperature_K": system_of(wc).replica_temperature_K(wc.replica)},
            seed=seed_of(wc),
        ),
    shell:
        "python -m qdphonon cp2k-input --structure {input.xyz:q} --out {output.inp:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"
