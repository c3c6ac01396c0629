# The harmonic route (systems[].route harmonic or both; docs/physics.md §5): a tight relaxation, the
# single points in batches sized by the cost model (each batch one job), then the assembly and the
# same output files as the MD route, in analysis_harmonic/{system}/.


rule relax_harmonic:
    """Tight geometry optimisation before the single points (GEO_OPT criteria 45x tighter in force than
    CP2K's defaults; the residual forces are reported in linewidth.json)."""
    input:
        xyz=f"{RESULTS}/structures/{{system}}.xyz",
    output:
        **harmonic_wfn("wfn"),
        xyz=f"{RESULTS}/harmonic/{{system}}/relaxed.xyz",
    log:
        f"{RESULTS}/logs/relax_harmonic/{{system}}.log",
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
        workdir=f"{RESULTS}/harmonic/{{system}}/relax",
        wfn_out=lambda wc, output: quoted_option("--wfn-out", output.get("wfn")),
        settings=config_settings(
            "engine",
            "level",
            "relax.max_iter",
            *SCF_KEYS,
            **{"cp2k.overrides": harmonic_relax_overrides()},
        ),
    shell:
        "python -m qdphonon relax --structure {input.xyz:q} --workdir {params.workdir:q}"
        " --out {output.xyz:q} {params.wfn_out} --tasks {resources.tasks:q}"
        " --threads {resources.cpus_per_task:q} --settings-json {params.settings:q}"
        + launch_settings("cp2k.command", "cp2k.mpi_launcher")
        + "> {log:q} 2>&1"


rule harmonic_single_points:
    """One batch of single points (batch 0: the reference); resumable, a displacement at a time; each
    SCF starts from the relaxation's wavefunction. A job that ends early (time limit) is resubmitted
    and goes on with the single points not yet done."""
    input:
        **harmonic_wfn("wfn"),
        xyz=f"{RESULTS}/harmonic/{{system}}/relaxed.xyz",
        cut=f"{RESULTS}/structures/{{system}}.xyz",
    output:
        done=f"{RESULTS}/harmonic/{{system}}/batches/b{{batch}}.json",
    log:
        f"{RESULTS}/logs/harmonic_single_points/{{system}}/b{{batch}}.log",
    retries: harmonic_job_retries()
    localrule: config["engine"] == "mock"
    conda:
        "../../envs/cp2k.yaml"
    threads: 1
    resources:
        tasks=aimd_tasks,
        cpus_per_task=1,
        mpi=mpi_job_marker,
        runtime=harmonic_runtime_min,
        mem_mb=aimd_mem_mb,
    params:
        workdir=f"{RESULTS}/harmonic/{{system}}/sp",
        initial_wfn=lambda wc, input: quoted_option("--initial-wfn", input.get("wfn")),
        settings=lambda wc: config_settings(
            "engine",
            "level",
            "harmonic.step_A",
            "harmonic.displacements",
            "cp2k.overrides",
            per_job=harmonic_per_job(wc),
        ),
    shell:
        "python -m qdphonon harmonic-run --structure {input.xyz:q} --workdir {params.workdir:q}"
        " --batch {wildcards.batch} --done {output.done:q} --cut {input.cut:q} {params.initial_wfn} --tasks {resources.tasks:q}"
        " --threads {resources.cpus_per_task:q} --settings-json {params.settings:q}"
        + launch_settings("cp2k.command", "cp2k.mpi_launcher")
        + "> {log:q} 2>&1"


rule analyze_harmonic:
    """Hessian and band-edge gradients -> modes, S_k, lambda, Gamma(T), lineshape (route harmonic)."""
    input:
        batches=harmonic_batch_files,
        xyz=f"{RESULTS}/harmonic/{{system}}/relaxed.xyz",
        cut=f"{RESULTS}/structures/{{system}}.xyz",
    output:
        linewidth=f"{RESULTS}/analysis_harmonic/{{system}}/linewidth.json",
        spectrum=f"{RESULTS}/analysis_harmonic/{{system}}/spectral_density.csv",
        modes=f"{RESULTS}/analysis_harmonic/{{system}}/spectral_density_modes.csv",
        lineshape=f"{RESULTS}/analysis_harmonic/{{system}}/lineshape.csv",
    log:
        f"{RESULTS}/logs/analyze_harmonic/{{system}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        workdir=f"{RESULTS}/harmonic/{{system}}/sp",
        outdir=lambda wc, output: os.path.dirname(output.linewidth),
        settings=lambda wc: config_settings(
            "level",
            "engine",
            "harmonic.step_A",
            "harmonic.displacements",
            "harmonic.degeneracy_tol_meV",
            "analysis.report_temperature_K",
            "analysis.region_edges_meV",
            system=wc.system,
        ),
    shell:
        "python -m qdphonon harmonic-analyze --structure {input.xyz:q} --cut {input.cut:q} --workdir {params.workdir:q}"
        " --outdir {params.outdir:q} --settings-json {params.settings:q} > {log:q} 2>&1"


rule compare_routes:
    """One system by both routes: route_comparison.csv beside the harmonic analysis, and its figure."""
    input:
        md=f"{RESULTS}/analysis/{{system}}/linewidth.json",
        harmonic=f"{RESULTS}/analysis_harmonic/{{system}}/linewidth.json",
    output:
        table=f"{RESULTS}/analysis_harmonic/{{system}}/route_comparison.csv",
        png=report(
            f"{RESULTS}/figures/routes_{{system}}.png",
            caption="../report/routes.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/routes_{{system}}.pdf",
    log:
        f"{RESULTS}/logs/compare_routes/{{system}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        md=lambda wc, input: os.path.dirname(input.md),
        harmonic=lambda wc, input: os.path.dirname(input.harmonic),
        figdir=lambda wc, output: os.path.dirname(output.png),
    shell:
        "python -m qdphonon compare-routes --md {params.md:q} --harmonic {params.harmonic:q} --out {output.table:q}"
        " --figure-dir {params.figdir:q} --figure-stem routes_{wildcards.system} > {log:q} 2>&1"
