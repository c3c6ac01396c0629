# qdphonon: AIMD of perovskite quantum dots -> Huang-Rhys spectra, reorganisation energy, linewidth.
# Usage: snakemake --cores 2 (mock default), snakemake --profile profiles/slurm (cluster),
# snakemake -n (dry run). See README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/structures.smk"
include: "workflow/rules/cp2k.smk"
include: "workflow/rules/aimd.smk"
include: "workflow/rules/analysis.smk"


rule all:
    default_target: True
    input:
        all_targets(),
