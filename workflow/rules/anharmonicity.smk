# Anharmonicity check (docs/physics.md §6.3): systems run at several MD temperatures (md.temperatures_K).


rule anharmonicity_system:
    """lambda, Gamma(report T) and band centres at every MD temperature of one system; deviation from harmonic scaling."""
    input:
        csvs=lambda wc: expand(
            f"{RESULTS}/band_edges/{{system}}/{{replica}}.csv",
            system=wc.system,
            replica=system_of(wc).all_replicas,
        ),
        npzs=lambda wc: expand(
            f"{RESULTS}/trajectories/{{system}}/{{replica}}.npz",
            system=wc.system,
            replica=system_of(wc).all_replicas,
        ),
    output:
        table=f"{RESULTS}/analysis/{{system}}/anharmonicity.csv",
    log:
        f"{RESULTS}/logs/anharmonicity_system/{{system}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        settings=lambda wc: config_settings(
            "md.temperature_K",
            "analysis.report_temperature_K",
            "analysis.region_edges_meV",
            "analysis.band_cutoff_meV",
            **system_md_settings(wc, "equilibration_fs"),
        ),
    shell:
        "python -m qdphonon anharmonicity --band-edges {input.csvs:q} --trajectories {input.npzs:q}"
        " --system {wildcards.system:q} --out {output.table:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"


rule plot_anharmonicity:
    """Figure: lambda ratio and Gamma(report T) extrapolated from each MD temperature."""
    input:
        tables=expand(
            f"{RESULTS}/analysis/{{system}}/anharmonicity.csv",
            system=ANHARMONIC_SYSTEMS,
        ),
    output:
        png=report(
            f"{RESULTS}/figures/anharmonicity.png",
            caption="../report/anharmonicity.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/anharmonicity.pdf",
    log:
        f"{RESULTS}/logs/plot_anharmonicity.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        outdir=lambda wc, output: os.path.dirname(output.png),
    shell:
        "python -m qdphonon plot-anharmonicity --tables {input.tables:q} --outdir {params.outdir:q} > {log:q} 2>&1"
