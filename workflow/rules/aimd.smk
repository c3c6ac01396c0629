rule run_aimd:
    """NVT AIMD of one replica with real CP2K (resuming from the restart file after a crash or a
    wall-time stop) or the synthetic mock engine. CP2K works in the run directory, which is not a
    declared output so Snakemake never deletes a partial trajectory; run.json marks completion.
    """
    input:
        **relaxed_wfn_output(),
        inp=f"{RESULTS}/cp2k/{{system}}/{{replica}}/md.inp",
        xyz=f"{RESULTS}/relaxed/{{system}}.xyz",
    output:
        record=protected(f"{RESULTS}/aimd/{{system}}/{{replica}}/run.json"),
    log:
        f"{RESULTS}/logs/run_aimd/{{system}}/{{replica}}.log",
    retries: cp2k_job_retries("steps")
    localrule: config["engine"] == "mock"
    conda:
        "../../envs/cp2k.yaml"
    threads: 1
    resources:
        tasks=aimd_tasks,
        cpus_per_task=1,
        mpi=mpi_job_marker,
        runtime=aimd_runtime_min,
        mem_mb=aimd_mem_mb,
    params:
        run_dir=lambda wc, output: os.path.dirname(output.record),
        initial_wfn=lambda wc, input: quoted_option("--initial-wfn", input.get("wfn")),
        settings=config_settings(
            "engine",
            "mock",
        ),
    shell:
        "python -m qdphonon run-aimd --input {input.inp:q} --structure {input.xyz:q}"
        " --run-dir {params.run_dir:q} --record {output.record:q} {params.initial_wfn}"
        " --tasks {resources.tasks:q} --threads {resources.cpus_per_task:q}"
        " --runtime-min {resources.runtime:q} --settings-json {params.settings:q}"
        + launch_settings(
            "cp2k.command",
            "cp2k.mpi_launcher",
            "cp2k.walltime_margin_min",
            "scf.on_failure",
        )
        + ">> {log:q} 2>&1"


rule parse_band_edges:
    """Band edges per MD step (every step exactly once across restart segments) and the
    position/velocity trajectory for the phonon DOS. The SCF policy is the one the run recorded
    (segments.json), not passed again."""
    input:
        record=f"{RESULTS}/aimd/{{system}}/{{replica}}/run.json",
        xyz=f"{RESULTS}/relaxed/{{system}}.xyz",
    output:
        csv=f"{RESULTS}/band_edges/{{system}}/{{replica}}.csv",
        npz=temp(f"{RESULTS}/trajectories/{{system}}/{{replica}}.npz"),
    log:
        f"{RESULTS}/logs/parse_band_edges/{{system}}/{{replica}}.log",
    localrule: True
    conda:
        "../../envs/cp2k.yaml"
    params:
        run_dir=lambda wc, input: os.path.dirname(input.record),
    shell:
        "python -m qdphonon parse-cp2k --run-dir {params.run_dir:q} --structure {input.xyz:q}"
        " --out {output.csv:q} --trajectory-out {output.npz:q} > {log:q} 2>&1"
