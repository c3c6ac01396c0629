rule analyze_system:
    """Huang-Rhys spectrum, reorganisation energy, linewidth (classical and quantum-corrected),
    region modes with error bars across replicas, and the projected phonon DOS of one system.
    """
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
        structure=f"{RESULTS}/structures/{{system}}.json",
    output:
        spectrum=f"{RESULTS}/analysis/{{system}}/spectral_density.csv",
        linewidth=f"{RESULTS}/analysis/{{system}}/linewidth.json",
        vdos=f"{RESULTS}/analysis/{{system}}/vdos.csv",
        lineshape=f"{RESULTS}/analysis/{{system}}/lineshape.csv",
    log:
        f"{RESULTS}/logs/analyze_system/{{system}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        outdir=lambda wc, output: os.path.dirname(output.linewidth),
        settings=lambda wc: config_settings(
            *ANALYSIS_KEYS, **system_md_settings(wc, "equilibration_fs")
        ),
    shell:
        "python -m qdphonon analyze --band-edges {input.csvs:q} --velocities {input.npzs:q}"
        " --structure-json {input.structure:q} --outdir {params.outdir:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"


rule summarize_campaign:
    """One row per system: size, formula, gap, lambda, linewidth with error, region modes."""
    input:
        linewidths=route_linewidths()
        + expand(f"{RESULTS}/analysis/{{system}}/linewidth.json", system=EXTERNAL),
        structures=expand(f"{RESULTS}/structures/{{system}}.json", system=SYSTEMS),
        attributions=expand(
            f"{RESULTS}/analysis/{{system}}/attribution.csv", system=MD_SYSTEMS
        ),
        anharmonicities=expand(
            f"{RESULTS}/analysis/{{system}}/anharmonicity.csv",
            system=ANHARMONIC_SYSTEMS,
        ),
        localisations=localisation_targets(),
    output:
        report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/summarize_campaign.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        digest=settings_digest(config),
    shell:
        "python -m qdphonon summarize --linewidths {input.linewidths:q} --structures {input.structures:q}"
        " --config-digest {params.digest:q} --out {output:q} > {log:q} 2>&1"


rule plot_figures:
    """Size-dependence, spectral-density, core/shell and phonon-DOS figures (PNG and PDF)."""
    input:
        summary=f"{RESULTS}/summary.csv",
        analysis=expand(
            f"{RESULTS}/analysis/{{system}}/linewidth.json", system=ANALYSED
        ),
    output:
        **{
            f"{name}_{ext}": (
                report(
                    f"{RESULTS}/figures/{name}.{ext}",
                    caption=f"../report/{name}.rst",
                    category="Figures",
                )
                if ext == "png"
                else f"{RESULTS}/figures/{name}.{ext}"
            )
            for name in FIGURES
            for ext in ("png", "pdf")
        },
    log:
        f"{RESULTS}/logs/plot_figures.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        dirs=expand(f"{RESULTS}/analysis/{{system}}", system=ANALYSED),
        outdir=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "python -m qdphonon plot --summary {input.summary:q} --analysis-dirs {params.dirs:q}"
        " --outdir {params.outdir:q} > {log:q} 2>&1"


rule report_pages:
    """The summary as an HTML table (a report item) and the report's start page with the
    headline numbers per system."""
    input:
        summary=f"{RESULTS}/summary.csv",
    output:
        html=report(
            f"{RESULTS}/report/summary.html",
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        rst=f"{RESULTS}/report/start.rst",
    log:
        f"{RESULTS}/logs/report_pages.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=config_settings("engine"),
    shell:
        "python -m qdphonon report-pages --summary {input.summary:q} --html-out {output.html:q}"
        " --rst-out {output.rst:q} --settings-json {params.settings:q} > {log:q} 2>&1"


rule record_campaign_config:
    """The merged config of this run (config/config.yaml and every --configfile, defaults filled in),
    so that `qdphonon status`, `check` and `cost` describe this campaign when given no --configfile.
    Rewritten when the config changes (params)."""
    output:
        f"{RESULTS}/{CAMPAIGN_CONFIG_FILE}",
    log:
        f"{RESULTS}/logs/record_campaign_config.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        config=json.dumps(config, sort_keys=True),
    shell:
        "printf '%s\\n' {params.config:q} > {output:q} 2> {log:q}"
