# External runs (config `external:`): band edges by `qdphonon reevaluate`, then the same analysis,
# summary and figures as the campaign's own systems (docs/physics.md §3.7a).

from qdphonon.external import external_runs, reevaluate_settings, source_option

try:
    EXTERNAL = external_runs(config, SYSTEMS)
except ConfigError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None

ANALYSED = [*MD_SYSTEMS, *EXTERNAL]


wildcard_constraints:
    external="|".join(EXTERNAL) or "(?!)",


rule reevaluate_external:
    """Band edges along an external run's trajectory: CP2K single points at a stride (resumes after a
    kill or a wall-time stop from the work directory, which is not a declared output).
    """
    output:
        csv=f"{RESULTS}/band_edges/{{external}}/external.csv",
    log:
        f"{RESULTS}/logs/reevaluate_external/{{external}}.log",
    conda:
        "../../envs/cp2k.yaml"
    threads: 1
    params:
        workdir=lambda wc: f"{RESULTS}/reevaluate/{wc.external}",
        source=lambda wc: source_option(EXTERNAL[wc.external]),
        settings=lambda wc: config_settings(
            **reevaluate_settings(EXTERNAL[wc.external], config)
        ),
    shell:
        "python -m qdphonon reevaluate {params.source} --workdir {params.workdir:q} --out {output.csv:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"


rule analyze_external:
    """Spectrum, lambda, linewidth and region modes of an external run (no VDOS: no velocities)."""
    input:
        csv=f"{RESULTS}/band_edges/{{external}}/external.csv",
    output:
        spectrum=f"{RESULTS}/analysis/{{external}}/spectral_density.csv",
        linewidth=f"{RESULTS}/analysis/{{external}}/linewidth.json",
        lineshape=f"{RESULTS}/analysis/{{external}}/lineshape.csv",
    log:
        f"{RESULTS}/logs/analyze_external/{{external}}.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    params:
        outdir=lambda wc, output: os.path.dirname(output.linewidth),
        settings=lambda wc: config_settings(
            *ANALYSIS_KEYS,
            **{"md.equilibration_fs": EXTERNAL[wc.external]["equilibration_fs"]},
            system=wc.external,
        ),
    shell:
        "python -m qdphonon analyze --band-edges {input.csv:q} --outdir {params.outdir:q}"
        " --settings-json {params.settings:q} > {log:q} 2>&1"
