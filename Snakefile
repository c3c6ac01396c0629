# qdphonon: AIMD of perovskite quantum dots -> Huang-Rhys spectra, reorganisation energy, linewidth.
# Usage: snakemake --cores 2 (mock default), snakemake --profile profiles/slurm (cluster),
# snakemake -n (dry run). See README.md.

import os
import sys

from snakemake.utils import min_version

min_version("9.0")
sys.path.insert(0, os.path.join(workflow.basedir, "workflow"))
from qdphonon.config import ConfigError, load_config_file

# Snakemake's loader names no file or line and silently keeps the last of duplicate keys.
for _path in ["config/config.yaml", *map(str, workflow.configfiles)]:
    if os.path.exists(_path):
        try:
            load_config_file(_path)
        except ConfigError as exc:
            raise WorkflowError(f"invalid config file: {exc}") from None


configfile: "config/config.yaml"


# The report's start page: the campaign's headline numbers once rule report_pages has written them.
START_PAGE = os.path.abspath("results/report/start.rst")


report: START_PAGE if os.path.exists(START_PAGE) else "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/structures.smk"
include: "workflow/rules/cp2k.smk"
include: "workflow/rules/aimd.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/harmonic.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/anharmonicity.smk"


rule all:
    default_target: True
    input:
        all_targets(),
        claims_targets(),
        route_comparison_targets(),
        anharmonicity_targets(),
