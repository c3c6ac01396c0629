rule relax_structure:
    """Geometry optimisation at the MD's level (real CP2K, with the AIMD's MPI resources), or the
    ideal cut passed through (mock)."""
    input:
        xyz=f"{RESULTS}/structures/{{system}}.xyz",
    output:
        xyz=f"{RESULTS}/relaxed/{{system}}.xyz",
    log:
        f"{RESULTS}/logs/relax_structure/{{system}}.log",
    localrule: config["engine"] == "mock"
    conda:
        "../../envs/cp2k.yaml"
    threads: 1
    resources:
        tasks=aimd_tasks,
        cpus_per_task=1,
        mpi=aimd_mpi,
        runtime=relax_runtime_min,
        mem_mb=aimd_mem_mb,
    params:
        engine=config["engine"],
        level=config["level"],
        workdir=f"{RESULTS}/relax/{{system}}",
        cp2k_command=config["cp2k"]["command"],
        max_iter=config["relax"]["max_iter"],
        eps_scf=config["scf"]["eps_scf"],
        max_scf=config["scf"]["max_scf"],
        smearing=smearing_arg(),
        overrides=json.dumps(config["cp2k"]["overrides"], sort_keys=True),
    shell:
        "python -m qdphonon relax --structure {input.xyz} --engine {params.engine}"
        " --level {params.level} --workdir {params.workdir} --out {output.xyz}"
        " --cp2k-command {params.cp2k_command} --mpi={resources.mpi:q} --tasks {resources.tasks}"
        " --threads {resources.cpus_per_task} --max-iter {params.max_iter}"
        " --eps-scf {params.eps_scf} --max-scf {params.max_scf} {params.smearing}"
        " --overrides-json {params.overrides:q} > {log} 2>&1"


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
        "../../envs/structures.yaml"
    params:
        level=config["level"],
        temperature=config["md"]["temperature_K"],
        timestep=md_param("timestep_fs"),
        steps=md_param("steps"),
        stride=md_param("trajectory_every_steps"),
        timecon=config["md"]["thermostat_timecon_fs"],
        seed=seed_of,
        eps_scf=config["scf"]["eps_scf"],
        max_scf=config["scf"]["max_scf"],
        smearing=smearing_arg(),
        cp2k_command=config["cp2k"]["command"],
        overrides=json.dumps(config["cp2k"]["overrides"], sort_keys=True),
    shell:
        "python -m qdphonon cp2k-input --structure {input.xyz} --level {params.level}"
        " --temperature {params.temperature} --timestep-fs {params.timestep} --steps {params.steps}"
        " --trajectory-every {params.stride} --thermostat-timecon-fs {params.timecon}"
        " --seed {params.seed} --eps-scf {params.eps_scf} --max-scf {params.max_scf} {params.smearing}"
        " --cp2k-command {params.cp2k_command} --overrides-json {params.overrides:q}"
        " --out {output.inp} > {log} 2>&1"
