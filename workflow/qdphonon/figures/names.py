"""The campaign's figures, by file stem (owned here, light, so the Snakefile can name the plot rule's
outputs without importing matplotlib)."""

FIGURE_STEMS = ("spectral_densities", "size_dependence", "core_shell_comparison", "phonon_dos",
                "linewidth_vs_temperature", "lineshape")  # fmt: skip
