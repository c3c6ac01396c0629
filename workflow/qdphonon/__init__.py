"""qdphonon: from AIMD of perovskite quantum dots to the physics of their emission linewidth.

Subpackages by stage: ``structures`` (QD models), ``cp2k`` (CP2K inputs), ``engines`` (real CP2K
and the synthetic mock), ``parsers`` (CP2K output), ``analysis`` (Huang-Rhys spectra,
reorganisation energy, linewidth, VDOS), ``run`` (a CP2K run directory: names, layout, lock,
records, recovery, errors). One owner per contract: ``run`` (the run directory), ``metadata`` (run.json and table sidecars), ``settings`` (defaults from the schema).
Also ``plots``, ``status``, ``provenance``, ``results`` (the Python API), ``jobs`` and ``cli``.
``config``, ``settings``, ``jobs`` and ``units`` are light: the Snakefile imports them.
See docs/architecture.md.
"""

__version__ = "0.1.0"
