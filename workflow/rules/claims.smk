# The study's further claims (docs/physics.md): where in the dot the gap coupling lives, and
# where the band edges live.


rule attribute_system:
    """Region attribution of lambda: linear fit of the gap to the displacements, lambda split by atom region."""
    input:
        csvs=lambda wc: expand(
            f"{RESULTS}/band_edges/{{system}}/{{replica}}.csv",
            system=wc.system,
            replica=system_of(wc).replicas,
        ),
        npzs=lambda wc: expand(
            f"{RESULTS}/trajectories/{{system}}/{{replica}}.npz",
            system=wc.system,
            replica=system_of(wc).replicas,
        ),
    output:
        attribution=f"{RESULTS}/analysis/{{system}}/attribution.csv",
        spectrum=f"{RESULTS}/analysis/{{system}}/attribution_spectrum.csv",
    log:
        f"{RESULTS}/logs/attribute_system/{{system}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        outdir=lambda wc, output: os.path.dirname(output.attribution),
        settings=lambda wc: config_settings(
            **system_md_settings(wc, "equilibration_fs")
        ),
    shell:
        "python -m qdphonon attribute --band-edges {input.csvs:q} --trajectories {input.npzs:q}"
        " --system {wildcards.system:q} --outdir {params.outdir:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"


rule plot_claims:
    """Figure: share of lambda per atom region vs size."""
    input:
        summary=f"{RESULTS}/summary.csv",
    output:
        png=report(
            f"{RESULTS}/figures/attribution_vs_size.png",
            caption="../report/attribution_vs_size.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/attribution_vs_size.pdf",
    log:
        f"{RESULTS}/logs/plot_claims.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        outdir=lambda wc, output: os.path.dirname(output.png),
    shell:
        "python -m qdphonon plot-claims --summary {input.summary:q} --outdir {params.outdir:q} > {log:q} 2>&1"


rule localise_system:
    """Band-edge localisation: the weight of the VBM and CBM on every region, from the &PDOS/&LDOS
    lists the AIMD runs printed (requested only when md.localisation_every_steps is set).
    """
    input:
        records=lambda wc: expand(
            f"{RESULTS}/aimd/{{system}}/{{replica}}/run.json",
            system=wc.system,
            replica=system_of(wc).replicas,
        ),
        xyz=f"{RESULTS}/relaxed/{{system}}.xyz",
    output:
        csv=f"{RESULTS}/analysis/{{system}}/localisation.csv",
    log:
        f"{RESULTS}/logs/localise_system/{{system}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=lambda wc: config_settings(
            **system_md_settings(wc, "equilibration_fs")
        ),
    shell:
        "python -m qdphonon localise --run-records {input.records:q} --structure {input.xyz:q}"
        " --system {wildcards.system:q} --out {output.csv:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"


rule plot_localisation:
    """Figure: weight of the VBM and CBM on the core vs size."""
    input:
        summary=f"{RESULTS}/summary.csv",
    output:
        png=report(
            f"{RESULTS}/figures/localisation_vs_size.png",
            caption="../report/localisation_vs_size.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/localisation_vs_size.pdf",
    log:
        f"{RESULTS}/logs/plot_localisation.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        outdir=lambda wc, output: os.path.dirname(output.png),
    shell:
        "python -m qdphonon plot-claims --summary {input.summary:q} --figures localisation"
        " --outdir {params.outdir:q} > {log:q} 2>&1"
